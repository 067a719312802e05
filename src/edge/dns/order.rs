//! Connection order of SRV records: RFC 2782 priority and weight, with the XEP-0368 mix of
//! direct-TLS (`_xmpps-server`) and STARTTLS (`_xmpp-server`) records.
//!
//! The randomness is an input ([`SplitMix64`] from a caller-chosen seed) so that tests are
//! deterministic.

use super::message::SrvRecord;

/// Small deterministic PRNG (SplitMix64). Used for weighted SRV selection and DNS message IDs;
/// the driver seeds it from the OS for every resolution, tests seed it with a constant.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform-enough value in `0..=max` (modulo bias is below 2^-32 for the sums SRV
    /// weights can reach).
    pub fn up_to(&mut self, max: u64) -> u64 {
        match max.checked_add(1) {
            Some(n) => self.next_u64() % n,
            None => self.next_u64(),
        }
    }
}

/// Which connection method to put first among SRV records of equal priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsPreference {
    /// XEP-0368 §3 rule 1 (SHOULD): treat `_xmpps-` and `_xmpp-` records as one set, mixing
    /// priorities and weights, so the domain's operator decides.
    #[default]
    Mixed,
    /// XEP-0368 allows a client to prefer one type (MAY): at equal priority, direct-TLS
    /// records first (each subgroup still weight-ordered).
    DirectTlsFirst,
    /// At equal priority, STARTTLS records first.
    StartTlsFirst,
}

/// Orders SRV records for connection attempts. Each record comes with `direct_tls` (true for
/// `_xmpps-server`). Records are sorted by priority ascending; within a priority, RFC 2782's
/// weighted selection is applied (after splitting by `pref` unless it is `Mixed`).
pub fn order_srv(
    mut records: Vec<(SrvRecord, bool)>,
    pref: TlsPreference,
    rng: &mut SplitMix64,
) -> Vec<(SrvRecord, bool)> {
    // Stable: within a priority the received order is kept, which RFC 2782 allows ("any
    // order") apart from weight-0 records going first (done in `weighted`).
    records.sort_by_key(|(r, _)| r.priority);
    let mut out = Vec::with_capacity(records.len());
    let mut rest = records.as_slice();
    while let Some((first, _)) = rest.first() {
        let n = rest
            .iter()
            .take_while(|(r, _)| r.priority == first.priority)
            .count();
        let (group, tail) = rest.split_at(n);
        rest = tail;
        match pref {
            TlsPreference::Mixed => weighted(group.to_vec(), rng, &mut out),
            TlsPreference::DirectTlsFirst | TlsPreference::StartTlsFirst => {
                let want_direct = pref == TlsPreference::DirectTlsFirst;
                let (preferred, other): (Vec<_>, Vec<_>) =
                    group.iter().cloned().partition(|(_, d)| *d == want_direct);
                weighted(preferred, rng, &mut out);
                weighted(other, rng, &mut out);
            }
        }
    }
    out
}

/// RFC 2782 "Weight" selection for one priority level: weight-0 records first, then
/// repeatedly draw a number in `0..=sum` and take the first record whose running sum reaches
/// it. (This is the algorithm as written; its erratum discussion notes the first record gets
/// one extra share, which we accept to stay literal.)
fn weighted(
    mut group: Vec<(SrvRecord, bool)>,
    rng: &mut SplitMix64,
    out: &mut Vec<(SrvRecord, bool)>,
) {
    group.sort_by_key(|(r, _)| r.weight != 0);
    while !group.is_empty() {
        let sum: u64 = group.iter().map(|(r, _)| u64::from(r.weight)).sum();
        let pick = rng.up_to(sum);
        let mut running = 0u64;
        let idx = group
            .iter()
            .position(|(r, _)| {
                running += u64::from(r.weight);
                running >= pick
            })
            .unwrap_or(0);
        out.push(group.remove(idx));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::Name;

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port,
            target: Name::from_ascii(target).unwrap(),
        }
    }

    fn ports(v: &[(SrvRecord, bool)]) -> Vec<u16> {
        v.iter().map(|(r, _)| r.port).collect()
    }

    #[test]
    fn orders_by_priority_ascending() {
        let recs = vec![
            (srv(20, 0, 3, "c."), false),
            (srv(10, 0, 1, "a."), true),
            (srv(15, 0, 2, "b."), false),
        ];
        let out = order_srv(recs, TlsPreference::Mixed, &mut SplitMix64::new(1));
        assert_eq!(ports(&out), vec![1, 2, 3]);
    }

    #[test]
    fn weighted_selection_is_deterministic_for_a_seed() {
        let recs: Vec<_> = (0..6)
            .map(|i| (srv(10, 10 + i, 100 + i, "x."), i % 2 == 0))
            .collect();
        let a = order_srv(recs.clone(), TlsPreference::Mixed, &mut SplitMix64::new(42));
        let b = order_srv(recs, TlsPreference::Mixed, &mut SplitMix64::new(42));
        assert_eq!(a, b);
        assert_eq!(a.len(), 6);
    }

    #[test]
    fn weight_zero_never_beats_heavy_weight_often() {
        // With weights {0, 1000} the weight-0 record is first only when the draw is 0.
        let mut rng = SplitMix64::new(7);
        let mut zero_first = 0;
        for _ in 0..1000 {
            let recs = vec![(srv(1, 1000, 1, "a."), false), (srv(1, 0, 2, "b."), false)];
            let out = order_srv(recs, TlsPreference::Mixed, &mut rng);
            if out[0].0.port == 2 {
                zero_first += 1;
            }
        }
        assert!(zero_first < 20, "weight 0 first {zero_first} times of 1000");
    }

    #[test]
    fn weights_shape_first_choice_proportionally() {
        let mut rng = SplitMix64::new(99);
        let mut heavy_first = 0;
        for _ in 0..2000 {
            let recs = vec![
                (srv(1, 10, 1, "light."), false),
                (srv(1, 90, 2, "heavy."), true),
            ];
            if order_srv(recs, TlsPreference::Mixed, &mut rng)[0].0.port == 2 {
                heavy_first += 1;
            }
        }
        // Expected ~1782/2000 (90 of 101 shares); bounds are loose, the RNG is fixed.
        assert!((1600..1950).contains(&heavy_first), "{heavy_first}");
    }

    #[test]
    fn preference_puts_chosen_kind_first_within_priority_only() {
        let recs = vec![
            (srv(5, 50, 1, "starttls."), false),
            (srv(5, 1, 2, "direct."), true),
            (srv(1, 1, 3, "starttls-better-prio."), false),
        ];
        let out = order_srv(
            recs.clone(),
            TlsPreference::DirectTlsFirst,
            &mut SplitMix64::new(3),
        );
        assert_eq!(ports(&out), vec![3, 2, 1]);
        let out = order_srv(recs, TlsPreference::StartTlsFirst, &mut SplitMix64::new(3));
        assert_eq!(ports(&out), vec![3, 1, 2]);
    }

    #[test]
    fn up_to_stays_in_range() {
        let mut rng = SplitMix64::new(5);
        for max in [0u64, 1, 2, 65535, u64::MAX] {
            for _ in 0..100 {
                assert!(rng.up_to(max) <= max);
            }
        }
    }
}
