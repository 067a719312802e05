//! Which shard owns what (DESIGN.md "Ownership decides the shard").

use std::hash::{Hash, Hasher};

/// The shard owning `key` (a domain or a bare JID), case-insensitively, among `shards`.
///
/// A stable hash: SipHash with fixed zero keys, over the ASCII-lowercased key, so every shard of
/// every process of the same build agrees.
pub fn shard_of(key: &str, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    #[allow(deprecated)] // SipHasher's fixed keys are what we want: stable, not DoS-randomised
    let mut h = std::hash::SipHasher::new();
    for b in key.bytes() {
        b.to_ascii_lowercase().hash(&mut h);
    }
    (h.finish() % shards as u64) as usize
}

/// The shard owning the outbound stream to `domain`.
pub fn domain_shard(domain: &str, shards: usize) -> usize {
    shard_of(domain, shards)
}

/// The shard owning the gateway state of the user with bare JID `bare`.
pub fn user_shard(bare: &str, shards: usize) -> usize {
    shard_of(bare, shards)
}

/// The CPU shard `shard` is pinned to: the process's allowed CPUs (its affinity mask, e.g. a
/// systemd `CPUAffinity=` or `taskset`) taken in order and reused round-robin. `None` when the
/// mask is unknown (empty).
pub fn shard_cpu(shard: usize, allowed: &[usize]) -> Option<usize> {
    (!allowed.is_empty()).then(|| allowed[shard % allowed.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_follow_the_allowed_cpus_in_order_and_wrap() {
        let allowed = [2, 3, 7];
        let cpus: Vec<_> = (0..5).map(|i| shard_cpu(i, &allowed)).collect();
        assert_eq!(cpus, [Some(2), Some(3), Some(7), Some(2), Some(3)]);
        assert_eq!(shard_cpu(0, &[]), None);
    }

    #[test]
    fn placement_ignores_case_and_is_in_range() {
        for n in 1..8 {
            let s = shard_of("Bob@Corp.Test", n);
            assert!(s < n);
            assert_eq!(s, shard_of("bob@corp.test", n));
        }
    }

    #[test]
    fn placement_spreads_keys() {
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            counts[shard_of(&format!("user{i}@corp.test"), 4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
    }
}
