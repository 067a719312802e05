//! The SIP source's presence subscriptions, as the subscriber (RFC 6665 §4.1), sans-IO.
//!
//! Each SUBSCRIBE the source sends (see [`SourceTemplates::write_subscribe`]) is one dialog
//! with the router's notifier, lived through once so that the router's tables stay bounded
//! however long the run:
//! 1. SUBSCRIBE → 2xx (the dialog: the router's To tag and Contact) and a NOTIFY `pending`,
//!    while the router asks the partner user (`<presence type='subscribe'/>`, which completes
//!    the request at the partner);
//! 2. at once, the unsubscribe: SUBSCRIBE in the dialog with Expires: 0 (RFC 6665 §4.1.2.3)
//!    → 2xx and a NOTIFY `terminated`, and the router withdraws the request at the partner
//!    (`unsubscribe`).
//!
//! A dialog is closed when its unsubscribe has a final response and its `terminated` NOTIFY
//! came (in either order), or at once when the unsubscribe is refused. Every NOTIFY is
//! answered: 200 in a dialog of ours, 481 otherwise (RFC 6665 §4.1.3). Only the first 2xx of a
//! SUBSCRIBE forms a dialog (the router does not fork). These requests are a small share of a
//! run, so they are parsed with the project's full parser, off the MESSAGE path.

use std::collections::HashMap;

use stanza_router::sip::headers::HeaderName;
use stanza_router::sip::message::SipMessage;
use stanza_router::sip::transaction::response_to;

use crate::sip_source::{seq_of_call_id, SourceCounts, SourceTemplates};

/// One dialog's progress towards its end.
#[derive(Debug, Default, Clone, Copy)]
struct Dialog {
    /// The unsubscribe has a 2xx.
    unsubscribed: bool,
    /// The `terminated` NOTIFY came.
    terminated: bool,
}

/// The subscriber side of one source connection's SUBSCRIBE dialogs.
#[derive(Debug, Default)]
pub struct SubscribeUac {
    /// Open dialogs by request sequence number (its Call-ID `lg-<seq>`).
    dialogs: HashMap<u64, Dialog>,
}

impl SubscribeUac {
    /// Dialogs formed and not closed yet.
    pub fn open(&self) -> usize {
        self.dialogs.len()
    }

    /// A 2xx to the initial SUBSCRIBE of request `seq` (`response`, the whole message): forms
    /// the dialog and appends its unsubscribe to `out`. A 2xx without what the unsubscribe
    /// needs is a dialog error (the router keeps that dialog until it expires).
    pub fn on_accepted(
        &mut self,
        seq: u64,
        response: &[u8],
        t: &SourceTemplates,
        out: &mut Vec<u8>,
        counts: &mut SourceCounts,
    ) {
        counts.subscribed += 1;
        if self.dialogs.contains_key(&seq) {
            // A second 2xx to one request: nothing new to end.
            counts.dialog_errors += 1;
            return;
        }
        let Ok(m) = SipMessage::parse(response.to_vec().into()) else {
            counts.dialog_errors += 1;
            return;
        };
        let to_tag = m.to().ok().and_then(|t| t.tag()).filter(|t| plain(t));
        // RFC 6665 §4.1.2.1: the remote target is the 2xx's Contact.
        let target = m
            .contacts()
            .next()
            .and_then(Result::ok)
            .map(|c| c.uri)
            .filter(|u| plain(u) && u.starts_with("sip"));
        let (Some(tag), Some(target)) = (to_tag, target) else {
            counts.dialog_errors += 1;
            return;
        };
        t.write_subscribe(seq, Some((tag, target)), out);
        counts.unsubscribes += 1;
        self.dialogs.insert(seq, Dialog::default());
    }

    /// The final response `code` to the unsubscribe of request `seq`.
    pub fn on_unsubscribe_answer(&mut self, seq: u64, code: u16, counts: &mut SourceCounts) {
        let Some(d) = self.dialogs.get_mut(&seq) else {
            counts.foreign += 1;
            return;
        };
        if (200..300).contains(&code) {
            counts.unsubscribed += 1;
            d.unsubscribed = true;
            if d.terminated {
                self.dialogs.remove(&seq);
            }
        } else {
            // No `terminated` NOTIFY will follow a refused unsubscribe.
            counts.dialog_errors += 1;
            self.dialogs.remove(&seq);
        }
    }

    /// A request from the router (`raw`, the whole message): appends its answer to `out`.
    pub fn on_request(&mut self, raw: &[u8], out: &mut Vec<u8>, counts: &mut SourceCounts) {
        let Ok(m) = SipMessage::parse(raw.to_vec().into()) else {
            // Framed but not parseable: no headers to answer with.
            counts.requests += 1;
            return;
        };
        let answer = |code, reason, out: &mut Vec<u8>| {
            let b = response_to(&m, code, reason, None).map(|b| {
                if code == 405 {
                    b.header(HeaderName::Allow, "NOTIFY")
                } else {
                    b
                }
            });
            if let Ok(bytes) = b.and_then(|b| b.finish()) {
                out.extend_from_slice(&bytes);
            }
        };
        match m.method() {
            Some("NOTIFY") => {}
            Some("ACK") => {
                counts.requests += 1;
                return;
            }
            _ => {
                counts.requests += 1;
                answer(405, "Method Not Allowed", out);
                return;
            }
        }
        let seq = m.call_id().ok().and_then(|c| seq_of_call_id(c.as_bytes()));
        let Some((seq, d)) = seq.and_then(|s| self.dialogs.get_mut(&s).map(|d| (s, d))) else {
            counts.dialog_errors += 1;
            answer(481, "Subscription Does Not Exist", out);
            return;
        };
        counts.notifies += 1;
        answer(200, "OK", out);
        let terminated = m
            .subscription_state()
            .is_ok_and(|s| s.state.eq_ignore_ascii_case("terminated"));
        if terminated {
            counts.notifies_terminated += 1;
            d.terminated = true;
            if d.unsubscribed {
                self.dialogs.remove(&seq);
            }
        }
    }
}

/// Header text copied from the router into a request: visible ASCII only (no CR, LF, space).
fn plain(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{BodySize, Mix};

    fn templates() -> SourceTemplates {
        SourceTemplates::new(
            1,
            "127.0.0.1:40000".parse().unwrap(),
            "corp.test",
            &["p0.partner.test".into()],
            10,
            BodySize::Fixed { bytes: 0 },
        )
        .with_mix(Some(Mix {
            messages: 0,
            presence: 0,
            subscriptions: 1,
        }))
    }

    /// The router's 2xx to SUBSCRIBE `seq`, with To tag `tag` and a Contact.
    fn ok(seq: u64, tag: &str) -> Vec<u8> {
        format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1:40000;branch=z9hG4bKlg{seq}\r\n\
             From: <sip:lgw{seq}@corp.test>;tag=lg1\r\nTo: <sip:user0@p0.partner.test>;tag={tag}\r\n\
             Call-ID: lg-{seq}\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:gw@127.0.0.1:5060;transport=tcp>\r\n\
             Expires: 600\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn notify(seq: u64, state: &str) -> Vec<u8> {
        format!(
            "NOTIFY sip:lg1@127.0.0.1:40000;transport=tcp SIP/2.0\r\n\
             Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKn{seq}{}\r\nMax-Forwards: 70\r\n\
             From: <sip:user0@p0.partner.test>;tag=gt\r\nTo: <sip:lgw{seq}@corp.test>;tag=lg1\r\n\
             Call-ID: lg-{seq}\r\nCSeq: 1 NOTIFY\r\nEvent: presence\r\n\
             Subscription-State: {state}\r\nContent-Length: 0\r\n\r\n",
            state.len()
        )
        .into_bytes()
    }

    fn parse(b: &[u8]) -> SipMessage {
        let m = SipMessage::parse(b.to_vec().into()).unwrap();
        m.validate().unwrap();
        m
    }

    #[test]
    fn accepted_subscribe_is_ended_in_its_dialog() {
        let t = templates();
        let mut uac = SubscribeUac::default();
        let mut c = SourceCounts::default();
        let mut out = Vec::new();
        uac.on_accepted(7, &ok(7, "gt"), &t, &mut out, &mut c);
        assert_eq!((uac.open(), c.subscribed, c.unsubscribes), (1, 1, 1));
        let un = parse(&out);
        assert_eq!(un.method(), Some("SUBSCRIBE"));
        assert_eq!(
            un.request_uri(),
            Some("sip:gw@127.0.0.1:5060;transport=tcp")
        );
        assert_eq!(un.to().unwrap().tag(), Some("gt"));
        assert_eq!(un.from().unwrap().tag(), Some("lg1"));
        assert_eq!(un.from().unwrap().uri, "sip:lgw7@corp.test");
        assert_eq!(un.call_id().unwrap(), "lg-7");
        assert_eq!(un.cseq().unwrap().seq, 2);
        assert_eq!(un.expires().unwrap(), 0);
        assert_eq!(un.top_via_branch(), Some("z9hG4bKlgu7"));

        // NOTIFY pending, then the unsubscribe's 200, then NOTIFY terminated: closed.
        out.clear();
        uac.on_request(&notify(7, "pending;expires=600"), &mut out, &mut c);
        let r = parse(&out);
        assert_eq!((r.status(), r.call_id().unwrap()), (Some(200), "lg-7"));
        assert_eq!(r.cseq().unwrap().method, "NOTIFY");
        uac.on_unsubscribe_answer(7, 200, &mut c);
        assert_eq!(uac.open(), 1, "the terminated NOTIFY is still due");
        out.clear();
        uac.on_request(&notify(7, "terminated"), &mut out, &mut c);
        assert_eq!(parse(&out).status(), Some(200));
        assert_eq!(uac.open(), 0);
        assert_eq!(
            (
                c.notifies,
                c.notifies_terminated,
                c.unsubscribed,
                c.dialog_errors
            ),
            (2, 1, 1, 0)
        );
    }

    #[test]
    fn terminated_notify_before_the_unsubscribe_answer_also_closes() {
        let t = templates();
        let mut uac = SubscribeUac::default();
        let mut c = SourceCounts::default();
        let mut out = Vec::new();
        uac.on_accepted(3, &ok(3, "x"), &t, &mut out, &mut c);
        uac.on_request(&notify(3, "terminated;reason=timeout"), &mut out, &mut c);
        assert_eq!(uac.open(), 1);
        uac.on_unsubscribe_answer(3, 200, &mut c);
        assert_eq!((uac.open(), c.dialog_errors), (0, 0));
    }

    #[test]
    fn refused_unsubscribe_closes_as_an_error() {
        let t = templates();
        let mut uac = SubscribeUac::default();
        let mut c = SourceCounts::default();
        let mut out = Vec::new();
        uac.on_accepted(3, &ok(3, "x"), &t, &mut out, &mut c);
        uac.on_unsubscribe_answer(3, 481, &mut c);
        assert_eq!((uac.open(), c.dialog_errors, c.unsubscribed), (0, 1, 0));
    }

    #[test]
    fn notify_outside_our_dialogs_gets_481() {
        let mut uac = SubscribeUac::default();
        let mut c = SourceCounts::default();
        let mut out = Vec::new();
        uac.on_request(&notify(99, "active"), &mut out, &mut c);
        assert_eq!(parse(&out).status(), Some(481));
        assert_eq!((c.notifies, c.dialog_errors), (0, 1));
    }

    #[test]
    fn other_requests_get_405_and_ack_nothing() {
        let mut uac = SubscribeUac::default();
        let mut c = SourceCounts::default();
        let mut out = Vec::new();
        let info = String::from_utf8(notify(1, "active"))
            .unwrap()
            .replace("NOTIFY", "INFO");
        uac.on_request(info.as_bytes(), &mut out, &mut c);
        let r = parse(&out);
        assert_eq!(r.status(), Some(405));
        assert_eq!(r.header(HeaderName::Allow), Some(&b"NOTIFY"[..]));
        out.clear();
        let ack = info.replace("INFO", "ACK");
        uac.on_request(ack.as_bytes(), &mut out, &mut c);
        assert!(out.is_empty());
        assert_eq!(c.requests, 2);
    }

    #[test]
    fn a_2xx_the_unsubscribe_cannot_use_is_a_dialog_error() {
        let t = templates();
        let mut uac = SubscribeUac::default();
        let mut c = SourceCounts::default();
        let mut out = Vec::new();
        let no_tag = String::from_utf8(ok(4, "t")).unwrap().replace(";tag=t", "");
        uac.on_accepted(4, no_tag.as_bytes(), &t, &mut out, &mut c);
        let no_contact = String::from_utf8(ok(5, "t"))
            .unwrap()
            .replace("Contact: <sip:gw@127.0.0.1:5060;transport=tcp>\r\n", "");
        uac.on_accepted(5, no_contact.as_bytes(), &t, &mut out, &mut c);
        uac.on_accepted(6, &ok(6, "t"), &t, &mut out, &mut c);
        let before = out.len();
        uac.on_accepted(6, &ok(6, "t"), &t, &mut out, &mut c);
        assert_eq!(out.len(), before, "one unsubscribe per dialog");
        assert_eq!((c.subscribed, c.unsubscribes, c.dialog_errors), (4, 1, 3));
        assert_eq!(uac.open(), 1);
    }
}
