//! OPTIONS health probe of the SIP next hop (`[sip] options_interval`), sans-IO: when to send,
//! and what an outcome means for the flow. The owner ([`MessageGateway`]) runs the request as
//! an ordinary client transaction and, on [`Verdict::Down`], ends the flow with
//! [`SipHandle::reset_flow`] so that the connection fails over to the next target.
//!
//! One probe at a time per flow: a new one is sent `interval` after the previous was sent, and
//! only once that one has ended. Any final response shows the next hop alive (RFC 3261 §11:
//! OPTIONS is answered like any request), except 503 (it says it cannot serve); no final
//! response within Timer F declares it dead. The request carries `Max-Forwards: 0`, so a proxy
//! answers it itself instead of forwarding it (RFC 3261 §16.3 item 2).
//!
//! [`MessageGateway`]: super::outbound_message::MessageGateway
//! [`SipHandle::reset_flow`]: crate::sip::transport::SipHandle::reset_flow

use std::time::{Duration, Instant};

use crate::gateway::errors::SipFailure;
use crate::sip::serialize::{BuildError, Request};
use crate::sip::transaction::{Outcome, TxId};

/// What a probe's outcome means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The next hop answered: the flow stays.
    Healthy,
    /// The next hop failed the probe on flow `epoch`: end that flow.
    Down {
        /// The flow the probe was sent on.
        epoch: u64,
    },
    /// Not the current probe, or its flow is already gone: nothing to do.
    Ignore,
}

/// The probe schedule of one flow at a time.
#[derive(Debug, Clone)]
pub struct OptionsProbe {
    interval: Duration,
    /// Flow currently up, and when to probe it next.
    flow: Option<(u64, Instant)>,
    /// The probe in flight: its transaction and flow.
    outstanding: Option<(TxId, u64)>,
}

impl OptionsProbe {
    /// A schedule with `interval` between probes; zero turns probing off.
    pub fn new(interval: Duration) -> Self {
        OptionsProbe {
            interval,
            flow: None,
            outstanding: None,
        }
    }

    /// Whether probing is on.
    pub fn enabled(&self) -> bool {
        !self.interval.is_zero()
    }

    /// Flow `epoch` came up: the first probe goes out one interval later.
    pub fn on_flow_up(&mut self, epoch: u64, now: Instant) {
        self.outstanding = None;
        self.flow = self.enabled().then(|| (epoch, now + self.interval));
    }

    /// The flow went down: nothing to probe until the next one is up.
    pub fn on_flow_down(&mut self) {
        self.flow = None;
        self.outstanding = None;
    }

    /// When [`due`](Self::due) may first answer `Some`, if a probe is scheduled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.flow, self.outstanding) {
            (Some((_, at)), None) => Some(at),
            _ => None,
        }
    }

    /// The flow to probe now, if a probe is due.
    pub fn due(&self, now: Instant) -> Option<u64> {
        match (self.flow, self.outstanding) {
            (Some((epoch, at)), None) if at <= now => Some(epoch),
            _ => None,
        }
    }

    /// A probe for flow `epoch` went out as transaction `tx`.
    pub fn sent(&mut self, tx: TxId, epoch: u64, now: Instant) {
        self.outstanding = Some((tx, epoch));
        if let Some((e, at)) = &mut self.flow {
            if *e == epoch {
                *at = now + self.interval;
            }
        }
    }

    /// Sending failed before a transaction existed: try again one interval later.
    pub fn not_sent(&mut self, now: Instant) {
        if let Some((_, at)) = &mut self.flow {
            *at = now + self.interval;
        }
    }

    /// Transaction `tx` ended with `outcome`.
    pub fn on_outcome(&mut self, tx: TxId, outcome: Outcome) -> Verdict {
        let Some((probe, epoch)) = self.outstanding else {
            return Verdict::Ignore;
        };
        if probe != tx {
            return Verdict::Ignore;
        }
        self.outstanding = None;
        match outcome {
            Outcome::Success(_) => Verdict::Healthy,
            Outcome::Failure(SipFailure::Status(503)) | Outcome::Failure(SipFailure::Timeout) => {
                Verdict::Down { epoch }
            }
            Outcome::Failure(SipFailure::Status(_)) => Verdict::Healthy,
            // The flow failed under the probe: the transport already reports it down.
            Outcome::Failure(SipFailure::Transport) => Verdict::Ignore,
        }
    }
}

/// The probe request: `OPTIONS <uri>` with `Max-Forwards: 0`, from `from_uri`, over TCP/TLS
/// with our `via_host` and `branch`.
pub fn options_request(
    uri: &str,
    via_host: &str,
    from_uri: &str,
    branch: &str,
    tag: &str,
    call_id: &str,
) -> Result<Vec<u8>, BuildError> {
    Request::builder("OPTIONS", uri)
        .via("TCP", via_host, None, branch, true)
        .max_forwards(0)
        .from(None, from_uri, Some(tag))
        .to(None, uri, None)
        .call_id(call_id)
        .cseq(1, "OPTIONS")
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::SipMessage;

    const EVERY: Duration = Duration::from_secs(30);

    fn probed(now: Instant) -> OptionsProbe {
        let mut p = OptionsProbe::new(EVERY);
        p.on_flow_up(7, now);
        assert_eq!(p.due(now), None);
        assert_eq!(p.poll_timeout(), Some(now + EVERY));
        assert_eq!(p.due(now + EVERY), Some(7));
        p.sent(TxId(1), 7, now + EVERY);
        p
    }

    #[test]
    fn probes_one_interval_after_flow_up_and_one_at_a_time() {
        let now = Instant::now();
        let mut p = probed(now);
        // While the probe is out, nothing else is due.
        assert_eq!(p.poll_timeout(), None);
        assert_eq!(p.due(now + EVERY * 5), None);
        assert_eq!(
            p.on_outcome(TxId(1), Outcome::Success(200)),
            Verdict::Healthy
        );
        assert_eq!(p.poll_timeout(), Some(now + EVERY * 2));
    }

    #[test]
    fn timeout_and_503_declare_the_flow_down() {
        let now = Instant::now();
        let mut p = probed(now);
        assert_eq!(
            p.on_outcome(TxId(1), Outcome::Failure(SipFailure::Timeout)),
            Verdict::Down { epoch: 7 }
        );
        let mut p = probed(now);
        assert_eq!(
            p.on_outcome(TxId(1), Outcome::Failure(SipFailure::Status(503))),
            Verdict::Down { epoch: 7 }
        );
    }

    #[test]
    fn other_final_responses_show_the_hop_alive() {
        let now = Instant::now();
        for code in [405, 483, 404, 500] {
            let mut p = probed(now);
            assert_eq!(
                p.on_outcome(TxId(1), Outcome::Failure(SipFailure::Status(code))),
                Verdict::Healthy,
                "{code}"
            );
        }
    }

    #[test]
    fn transport_failure_and_foreign_transactions_are_ignored() {
        let now = Instant::now();
        let mut p = probed(now);
        assert_eq!(
            p.on_outcome(TxId(2), Outcome::Failure(SipFailure::Timeout)),
            Verdict::Ignore
        );
        assert_eq!(
            p.on_outcome(TxId(1), Outcome::Failure(SipFailure::Transport)),
            Verdict::Ignore
        );
    }

    #[test]
    fn flow_down_stops_probing_and_forgets_the_probe() {
        let now = Instant::now();
        let mut p = probed(now);
        p.on_flow_down();
        assert_eq!(p.poll_timeout(), None);
        assert_eq!(p.due(now + EVERY * 10), None);
        assert_eq!(
            p.on_outcome(TxId(1), Outcome::Failure(SipFailure::Timeout)),
            Verdict::Ignore
        );
    }

    #[test]
    fn zero_interval_is_off() {
        let now = Instant::now();
        let mut p = OptionsProbe::new(Duration::ZERO);
        assert!(!p.enabled());
        p.on_flow_up(1, now);
        assert_eq!(p.poll_timeout(), None);
        assert_eq!(p.due(now + EVERY), None);
    }

    #[test]
    fn not_sent_retries_one_interval_later() {
        let now = Instant::now();
        let mut p = OptionsProbe::new(EVERY);
        p.on_flow_up(3, now);
        p.not_sent(now + EVERY);
        assert_eq!(p.poll_timeout(), Some(now + EVERY * 2));
    }

    #[test]
    fn request_is_a_valid_options_with_max_forwards_zero() {
        let bytes = options_request(
            "sip:pool.corp.test;transport=tcp",
            "127.0.0.1",
            "sip:corp.test",
            "z9hG4bK-probe1",
            "t1",
            "c1",
        )
        .unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with("OPTIONS sip:pool.corp.test;transport=tcp SIP/2.0\r\n"));
        assert!(text.contains("Max-Forwards: 0\r\n"), "{text}");
        let m = SipMessage::parse(bytes::Bytes::from(bytes)).unwrap();
        assert!(m.validate().is_ok());
        assert_eq!(m.method(), Some("OPTIONS"));
    }
}
