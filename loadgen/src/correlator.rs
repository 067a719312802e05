//! Matching answers to requests, wherever the answer is observed.
//!
//! Every request carries a sequence number: in the stanza id (`lg-<seq>`) and, for messages, in
//! the body (`seq=<seq>`), so the answer can be matched whether it comes back over the router's
//! outbound XMPP stream (iq result, bounce) or is observed on the far side (a SIP sink that sees
//! the translated MESSAGE body). Writers [`Correlator::register`] a request before sending it;
//! any thread that observes its fate calls [`Correlator::complete`] (or [`Correlator::delivered`])
//! with the instant it saw it, and records the returned [`Completed`] in its own [`Recorder`]
//! (one per thread, merged at the end, so recording takes no lock).
//!
//! The pending table is a ring of atomics indexed by `seq % capacity`: register and complete are
//! a few atomic operations, no allocation, no lock. A slot is reused only once its request is
//! complete, so a writer that laps the ring waits (which the open-loop latency then shows).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::Thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::second_log::SecondLog;

/// Prefix of the stanza ids the loadgen sends.
pub const ID_PREFIX: &str = "lg-";
/// Marker before the sequence number in a message body.
pub const BODY_MARKER: &str = "seq=";

/// The stanza error conditions of RFC 6120 §8.3.3, in a fixed order (report keys).
pub const CONDITIONS: [&str; 22] = [
    "bad-request",
    "conflict",
    "feature-not-implemented",
    "forbidden",
    "gone",
    "internal-server-error",
    "item-not-found",
    "jid-malformed",
    "not-acceptable",
    "not-allowed",
    "not-authorized",
    "policy-violation",
    "recipient-unavailable",
    "redirect",
    "registration-required",
    "remote-server-not-found",
    "remote-server-timeout",
    "resource-constraint",
    "service-unavailable",
    "subscription-required",
    "undefined-condition",
    "unexpected-request",
];

/// A bounce's stanza error condition: an index into [`CONDITIONS`], or `None` for a condition
/// outside RFC 6120 (or none found).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Condition(pub Option<u8>);

impl Condition {
    /// The condition named `name`.
    pub fn named(name: &str) -> Condition {
        Condition(CONDITIONS.iter().position(|c| *c == name).map(|i| i as u8))
    }

    /// Its name (`other` outside RFC 6120).
    pub fn name(self) -> &'static str {
        self.0
            .and_then(|i| CONDITIONS.get(i as usize).copied())
            .unwrap_or("other")
    }
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An iq was answered with a result.
    Answered,
    /// A message reached its destination (observed by a sink, e.g. the SIP pool).
    Delivered,
    /// The router bounced it with a stanza error.
    Bounced(Condition),
    /// The router refused a SIP request with this final status (the SIP source).
    Refused(u16),
    /// A presence subscription was granted (`subscribed`).
    Subscribed,
    /// A presence subscription was refused (`unsubscribed`).
    Unsubscribed,
    /// An answer of any other kind.
    Unexpected,
}

/// What the workload sent (kept in the pending slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `iq get` ping.
    Ping,
    /// `message`.
    Message,
}

/// A request matched to its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed {
    /// Its sequence number.
    pub seq: u64,
    /// From the intended send time (coordinated-omission corrected), ns.
    pub corrected_ns: u64,
    /// From the actual send time, ns.
    pub uncorrected_ns: u64,
    /// When it completed, ns from the epoch.
    pub done_ns: u64,
    /// Recorded (false during warm-up).
    pub measured: bool,
    /// What was sent.
    pub kind: Kind,
}

/// Closed-loop credit of one connection: how many of its requests are outstanding, and its
/// writer to wake when one completes.
#[derive(Debug, Default)]
pub struct Credit {
    inflight: AtomicU64,
    waiting: AtomicBool,
    writer: std::sync::OnceLock<Thread>,
}

impl Credit {
    /// Requests of this connection not yet complete.
    pub fn inflight(&self) -> u64 {
        self.inflight.load(Ordering::Acquire)
    }

    /// Blocks the calling writer (which must be the one registered by [`Correlator::credit`])
    /// until fewer than `window` requests are outstanding or `timeout` passes.
    pub fn wait_below(&self, window: u64, timeout: Duration) {
        let _ = self.writer.set(std::thread::current());
        self.waiting.store(true, Ordering::SeqCst);
        if self.inflight.load(Ordering::SeqCst) >= window {
            std::thread::park_timeout(timeout);
        }
        self.waiting.store(false, Ordering::SeqCst);
    }

    fn release(&self) {
        self.inflight.fetch_sub(1, Ordering::AcqRel);
        if self.waiting.load(Ordering::SeqCst) {
            if let Some(t) = self.writer.get() {
                t.unpark();
            }
        }
    }
}

/// One pending request. `tag` is `seq + 1` while pending, 0 when free; the other fields are
/// written only while the slot is free and read only while it is pending.
#[derive(Default)]
struct Slot {
    tag: AtomicU64,
    intended_ns: AtomicU64,
    sent_ns: AtomicU64,
    /// Connection index << 2 | measured << 1 | kind.
    meta: AtomicU64,
}

/// Shared table of pending requests and run totals.
pub struct Correlator {
    epoch: Instant,
    slots: Box<[Slot]>,
    mask: u64,
    credits: Box<[Credit]>,
    registered: AtomicU64,
    completed: AtomicU64,
    unmatched: AtomicU64,
    seconds: SecondLog,
}

impl Correlator {
    /// A table for at least `capacity` outstanding requests (rounded up to a power of two) over
    /// `connections` writers; times are measured from `epoch`.
    pub fn new(epoch: Instant, capacity: usize, connections: usize) -> Correlator {
        let cap = capacity.max(2).next_power_of_two();
        Correlator {
            epoch,
            slots: (0..cap).map(|_| Slot::default()).collect(),
            mask: cap as u64 - 1,
            credits: (0..connections).map(|_| Credit::default()).collect(),
            registered: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            unmatched: AtomicU64::new(0),
            seconds: SecondLog::new(0),
        }
    }

    /// Also keeps the corrected latency of measured completions second by second, for
    /// `seconds` seconds from the epoch (see [`SecondLog`]).
    pub fn with_second_log(mut self, seconds: usize) -> Correlator {
        self.seconds = SecondLog::new(seconds);
        self
    }

    /// The latency-over-time log (empty unless [`Self::with_second_log`]).
    pub fn second_log(&self) -> &SecondLog {
        &self.seconds
    }

    /// The run's time origin.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }

    /// Nanoseconds from the epoch to `at` (0 before it).
    pub fn offset_ns(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Slots in the ring.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Connection `conn`'s closed-loop credit.
    pub fn credit(&self, conn: usize) -> &Credit {
        &self.credits[conn % self.credits.len()]
    }

    /// Records request `seq` as pending. Returns `false` (nothing recorded) when its slot still
    /// holds a request one lap older: the caller sends later.
    pub fn register(
        &self,
        seq: u64,
        intended_ns: u64,
        sent_ns: u64,
        conn: usize,
        measured: bool,
        kind: Kind,
    ) -> bool {
        let slot = &self.slots[(seq & self.mask) as usize];
        if slot.tag.load(Ordering::Acquire) != 0 {
            return false;
        }
        slot.intended_ns.store(intended_ns, Ordering::Relaxed);
        slot.sent_ns.store(sent_ns, Ordering::Relaxed);
        let meta = (conn as u64) << 2 | u64::from(measured) << 1 | u64::from(kind == Kind::Message);
        slot.meta.store(meta, Ordering::Relaxed);
        slot.tag.store(seq + 1, Ordering::Release);
        self.credit(conn).inflight.fetch_add(1, Ordering::AcqRel);
        self.registered.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Whether the slot for `seq` is free to [`Self::register`].
    pub fn slot_free(&self, seq: u64) -> bool {
        self.slots[(seq & self.mask) as usize]
            .tag
            .load(Ordering::Acquire)
            == 0
    }

    /// Request `seq` was answered at `at`. `None` when it is not pending (a duplicate, a
    /// stale or foreign id): counted as unmatched.
    pub fn complete(&self, seq: u64, at: Instant) -> Option<Completed> {
        let slot = &self.slots[(seq & self.mask) as usize];
        if slot.tag.load(Ordering::Acquire) != seq + 1 {
            self.unmatched.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        // Read before releasing: once the tag is 0 a writer may reuse the slot.
        let intended = slot.intended_ns.load(Ordering::Relaxed);
        let sent = slot.sent_ns.load(Ordering::Relaxed);
        let meta = slot.meta.load(Ordering::Relaxed);
        if slot
            .tag
            .compare_exchange(seq + 1, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            self.unmatched.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.completed.fetch_add(1, Ordering::Relaxed);
        self.credit((meta >> 2) as usize).release();
        let now = self.offset_ns(at);
        let measured = meta & 2 != 0;
        if measured {
            self.seconds.record(now, now.saturating_sub(intended));
        }
        Some(Completed {
            seq,
            corrected_ns: now.saturating_sub(intended),
            uncorrected_ns: now.saturating_sub(sent),
            done_ns: now,
            measured,
            kind: if meta & 1 != 0 {
                Kind::Message
            } else {
                Kind::Ping
            },
        })
    }

    /// A sink saw message `seq` delivered at `at`: [`Self::complete`] recorded as
    /// [`Outcome::Delivered`] in `rec`.
    pub fn delivered(&self, seq: u64, at: Instant, rec: &mut Recorder) {
        if let Some(c) = self.complete(seq, at) {
            rec.record(&c, Outcome::Delivered);
        }
    }

    /// Requests registered so far.
    pub fn registered(&self) -> u64 {
        self.registered.load(Ordering::Relaxed)
    }

    /// Requests completed so far.
    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    /// Answers that matched no pending request.
    pub fn unmatched(&self) -> u64 {
        self.unmatched.load(Ordering::Relaxed)
    }

    /// Registered and not completed.
    pub fn pending(&self) -> u64 {
        self.registered().saturating_sub(self.completed())
    }

    /// Pending requests by (measured, warm-up), scanned from the table (call once the senders
    /// and observers have stopped).
    pub fn lost(&self) -> (u64, u64) {
        let (mut measured, mut warm) = (0, 0);
        for s in self.slots.iter() {
            if s.tag.load(Ordering::Acquire) != 0 {
                if s.meta.load(Ordering::Relaxed) & 2 != 0 {
                    measured += 1;
                } else {
                    warm += 1;
                }
            }
        }
        (measured, warm)
    }
}

/// A sequence number written as 1 to 19 ASCII digits (no sign, no overflow), as the loadgen
/// puts it in local parts and Call-IDs.
pub fn parse_seq(d: &[u8]) -> Option<u64> {
    if d.is_empty() || d.len() > 19 || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(d.iter().fold(0u64, |n, c| n * 10 + u64::from(c - b'0')))
}

/// The sequence number in a stanza id `lg-<seq>`.
pub fn seq_from_id(id: &str) -> Option<u64> {
    id.strip_prefix(ID_PREFIX)?.parse().ok()
}

/// The sequence number in a message body (`seq=<digits>` anywhere in it): what a SIP sink
/// extracts from the MESSAGE body.
pub fn seq_from_body(body: &str) -> Option<u64> {
    let rest = &body[body.find(BODY_MARKER)? + BODY_MARKER.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// [`seq_from_body`] over raw bytes (a SIP body, a stanza), without a UTF-8 check.
pub fn seq_from_body_bytes(body: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(body, BODY_MARKER.as_bytes())? + BODY_MARKER.len();
    let digits = body[at..].iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    Some(
        body[at..at + digits]
            .iter()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')),
    )
}

/// Latency histograms and outcome counts of one observing thread.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// Corrected latency (from intended send time), ns, measured requests only.
    pub corrected: Histogram<u64>,
    /// Uncorrected latency (from actual send time), ns, measured requests only.
    pub uncorrected: Histogram<u64>,
    /// Iq results.
    pub answered: u64,
    /// Deliveries seen by a sink.
    pub delivered: u64,
    /// Bounces by condition index ([`CONDITIONS`] order, last = other).
    pub bounced: [u64; CONDITIONS.len() + 1],
    /// SIP requests refused, by final status.
    pub refused: std::collections::BTreeMap<u16, u64>,
    /// Subscriptions granted.
    pub subscribed: u64,
    /// Subscriptions refused.
    pub unsubscribed: u64,
    /// Presence stanzas that answer no request (updates after a subscription).
    pub presence_updates: u64,
    /// Answers of another kind.
    pub unexpected: u64,
    /// Offset from the epoch of the last measured completion, ns.
    pub last_done_ns: u64,
    /// Completions during warm-up (not in the histograms).
    pub warmup: u64,
}

/// Highest latency the histograms hold: one hour.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// Empty histograms (1 ns to 1 h, 3 significant digits).
    pub fn new() -> Recorder {
        let h = || Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("constant bounds");
        Recorder {
            corrected: h(),
            uncorrected: h(),
            answered: 0,
            delivered: 0,
            bounced: [0; CONDITIONS.len() + 1],
            refused: std::collections::BTreeMap::new(),
            subscribed: 0,
            unsubscribed: 0,
            presence_updates: 0,
            unexpected: 0,
            last_done_ns: 0,
            warmup: 0,
        }
    }

    /// Counts `c` under `outcome` and, when measured, records its latencies.
    pub fn record(&mut self, c: &Completed, outcome: Outcome) {
        match outcome {
            Outcome::Answered => self.answered += 1,
            Outcome::Delivered => self.delivered += 1,
            Outcome::Bounced(cond) => {
                let i = cond.0.map_or(CONDITIONS.len(), usize::from);
                self.bounced[i.min(CONDITIONS.len())] += 1;
            }
            Outcome::Refused(code) => *self.refused.entry(code).or_default() += 1,
            Outcome::Subscribed => self.subscribed += 1,
            Outcome::Unsubscribed => self.unsubscribed += 1,
            Outcome::Unexpected => self.unexpected += 1,
        }
        if c.measured {
            self.corrected.saturating_record(c.corrected_ns.max(1));
            self.uncorrected.saturating_record(c.uncorrected_ns.max(1));
            self.last_done_ns = self.last_done_ns.max(c.done_ns);
        } else {
            self.warmup += 1;
        }
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Recorder) {
        // Same bounds on both sides, so `add` cannot fail.
        let _ = self.corrected.add(&other.corrected);
        let _ = self.uncorrected.add(&other.uncorrected);
        self.answered += other.answered;
        self.delivered += other.delivered;
        for (a, b) in self.bounced.iter_mut().zip(other.bounced.iter()) {
            *a += b;
        }
        for (code, n) in &other.refused {
            *self.refused.entry(*code).or_default() += n;
        }
        self.subscribed += other.subscribed;
        self.unsubscribed += other.unsubscribed;
        self.presence_updates += other.presence_updates;
        self.unexpected += other.unexpected;
        self.last_done_ns = self.last_done_ns.max(other.last_done_ns);
        self.warmup += other.warmup;
    }

    /// All completions counted.
    pub fn total(&self) -> u64 {
        self.answered
            + self.delivered
            + self.bounced.iter().sum::<u64>()
            + self.refused.values().sum::<u64>()
            + self.subscribed
            + self.unsubscribed
            + self.unexpected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(c: &Correlator, ns: u64) -> Instant {
        c.epoch() + Duration::from_nanos(ns)
    }

    #[test]
    fn corrected_latency_counts_from_the_intended_time() {
        let c = Correlator::new(Instant::now(), 16, 1);
        // Intended at 1 ms, the sender was late and sent at 5 ms, answered at 6 ms.
        assert!(c.register(7, 1_000_000, 5_000_000, 0, true, Kind::Ping));
        let done = c.complete(7, at(&c, 6_000_000)).unwrap();
        assert_eq!(done.corrected_ns, 5_000_000);
        assert_eq!(done.uncorrected_ns, 1_000_000);
        assert!(done.measured);
        assert_eq!(done.kind, Kind::Ping);
    }

    #[test]
    fn stalled_sender_shows_in_corrected_histogram_only() {
        // 100 requests due every 1 ms; the sender stalls 50 ms before request 50 and sends the
        // backlog at once; each answer comes 100 µs after its actual send.
        let c = Correlator::new(Instant::now(), 256, 1);
        let mut rec = Recorder::new();
        for n in 0..100u64 {
            let intended = n * 1_000_000;
            let sent = if (50..100).contains(&n) {
                intended.max(100_000_000)
            } else {
                intended
            };
            assert!(c.register(n, intended, sent, 0, true, Kind::Ping));
            let done = c.complete(n, at(&c, sent + 100_000)).unwrap();
            rec.record(&done, Outcome::Answered);
        }
        assert_eq!(rec.uncorrected.value_at_quantile(0.99), 100_031);
        let p99 = rec.corrected.value_at_quantile(0.99);
        assert!(p99 > 45_000_000, "corrected p99 {p99} hides the stall");
        assert_eq!(rec.answered, 100);
    }

    #[test]
    fn duplicate_and_unknown_answers_are_unmatched() {
        let c = Correlator::new(Instant::now(), 16, 1);
        assert!(c.register(3, 0, 0, 0, true, Kind::Message));
        assert!(c.complete(3, at(&c, 10)).is_some());
        assert!(c.complete(3, at(&c, 20)).is_none());
        assert!(c.complete(99, at(&c, 20)).is_none());
        assert_eq!(c.unmatched(), 2);
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn slot_is_reused_only_after_completion() {
        let c = Correlator::new(Instant::now(), 4, 1);
        assert!(c.register(1, 0, 0, 0, true, Kind::Ping));
        assert!(!c.slot_free(5));
        assert!(!c.register(5, 0, 0, 0, true, Kind::Ping));
        c.complete(1, at(&c, 1)).unwrap();
        assert!(c.register(5, 0, 0, 0, true, Kind::Ping));
        // An answer for the older lap no longer matches.
        assert!(c.complete(1, at(&c, 2)).is_none());
    }

    #[test]
    fn lost_counts_pending_by_phase() {
        let c = Correlator::new(Instant::now(), 16, 2);
        assert!(c.register(0, 0, 0, 0, false, Kind::Ping));
        assert!(c.register(1, 0, 0, 1, true, Kind::Ping));
        assert!(c.register(2, 0, 0, 1, true, Kind::Ping));
        c.complete(2, at(&c, 1)).unwrap();
        assert_eq!(c.lost(), (1, 1));
        assert_eq!(c.credit(1).inflight(), 1);
    }

    #[test]
    fn sink_delivery_is_matched_by_body_sequence() {
        let c = Correlator::new(Instant::now(), 16, 1);
        let mut rec = Recorder::new();
        assert!(c.register(42, 0, 0, 0, true, Kind::Message));
        let seq = seq_from_body("loadgen seq=42 xxxxxxxx").unwrap();
        c.delivered(seq, at(&c, 1_000), &mut rec);
        assert_eq!(rec.delivered, 1);
        assert_eq!(rec.corrected.len(), 1);
    }

    #[test]
    fn ids_and_bodies_carry_the_sequence() {
        assert_eq!(seq_from_id("lg-123"), Some(123));
        assert_eq!(seq_from_id("x-123"), None);
        assert_eq!(seq_from_id("lg-"), None);
        assert_eq!(seq_from_body("seq=9"), Some(9));
        assert_eq!(seq_from_body("no sequence"), None);
        assert_eq!(seq_from_body_bytes(b"<body>seq=77 x</body>"), Some(77));
        assert_eq!(seq_from_body_bytes(b"seq=x"), None);
    }

    #[test]
    fn conditions_round_trip_and_unknown_is_other() {
        assert_eq!(
            Condition::named("service-unavailable").name(),
            "service-unavailable"
        );
        assert_eq!(Condition::named("made-up").name(), "other");
    }
}
