//! Maps keyed by our own counters (transaction ids, delivery tokens).
//!
//! The keys are sequential numbers we hand out, never chosen by a peer, so the DoS-resistant
//! SipHash of `HashMap`'s default hasher buys nothing; a multiplicative hash spreads them over
//! the table's control bits for a fraction of the cost (the pending-MESSAGE table was ≈2.5% of
//! the router's CPU on the inbound S2S → SIP path).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` for keys that hash as one integer we generated.
pub type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Fibonacci hashing of one integer; other input falls back to FNV-1a.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0 ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_ids_spread_over_the_top_bits() {
        // hashbrown takes its control byte from the top 7 bits: sequential keys must vary there.
        let tops: std::collections::HashSet<u64> = (0u64..128)
            .map(|i| {
                let mut h = IdHasher::default();
                h.write_u64(i);
                h.finish() >> 57
            })
            .collect();
        assert!(tops.len() > 64, "{}", tops.len());
        let mut m: IdMap<u64, u64> = IdMap::default();
        for i in 0..10_000 {
            m.insert(i, i * 2);
        }
        assert!((0..10_000).all(|i| m.get(&i) == Some(&(i * 2))));
    }
}
