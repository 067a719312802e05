//! Maps keyed by our own counters (transaction ids, delivery tokens) or by tokens we generated
//! (SIP branches).
//!
//! The keys are values we hand out, never chosen by a peer, so the DoS-resistant SipHash of
//! `HashMap`'s default hasher buys nothing: a peer's lookups can only probe the slots of our
//! keys. A multiplicative hash spreads them over the table's control bits for a fraction of the
//! cost (the pending-MESSAGE table was ≈2.5% of the router's CPU on the inbound S2S → SIP
//! path; SipHash of the branch, four times per MESSAGE, ≈1.4% of the gateway's instructions).

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

/// A `HashMap` for string keys we generated (SIP branches: a random prefix and a counter).
pub type TokenMap<K, V> = HashMap<K, V, BuildHasherDefault<TokenHasher>>;

/// Word-at-a-time multiply-rotate hash of bytes (the FxHash construction).
#[derive(Debug, Default, Clone, Copy)]
pub struct TokenHasher(u64);

impl TokenHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for TokenHasher {
    fn finish(&self) -> u64 {
        // hashbrown takes its control byte from the top bits; fold the low bits up into them.
        self.0 ^ (self.0 >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branches_differing_in_the_counter_spread_and_stay_distinct() {
        let key = |i: u64| format!("z9hG4bK0123456789abcdef01234567.{i}");
        let tops: std::collections::HashSet<u64> = (0u64..128)
            .map(|i| {
                let mut h = TokenHasher::default();
                h.write(key(i).as_bytes());
                h.finish() >> 57
            })
            .collect();
        assert!(tops.len() > 64, "{}", tops.len());
        let mut m: TokenMap<String, u64> = TokenMap::default();
        for i in 0..10_000 {
            m.insert(key(i), i);
        }
        assert!((0..10_000).all(|i| m.get(&key(i)) == Some(&i)));
        assert_eq!(m.get("z9hG4bK0123456789abcdef01234567.10000"), None);
    }

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
