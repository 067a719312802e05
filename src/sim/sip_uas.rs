//! The answering logic of the simulated SIP pool, sans-IO: fed framed items from one connection,
//! it writes the bytes to send back, counts everything in a shared book, and reports NOTIFYs
//! so a waiting [`subscribe`](super::sip_pool::SipPool::subscribe) can see them. The thread that
//! owns the socket (in [`sip_pool`](super::sip_pool)) only moves bytes.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;

use crate::gateway::presence::{pidf_from_presence, presence_from_pidf, XmppPresence};
use crate::sip::framer::{Framed, FramerError};
use crate::sip::headers::HeaderName;
use crate::sip::message::SipMessage;
use crate::sip::parse::{find_head_end, parse_head, Limits, ParseError};
use crate::sip::serialize::Request;
use crate::sip::transaction::{random_hex, response_to, BranchGen};

/// How the pool answers requests from the router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerPlan {
    /// Final status for a MESSAGE (normally 200).
    pub message_status: u16,
    /// `(n, code)`: every n-th MESSAGE received by the pool (1-based, pool-wide) gets `code`
    /// instead of `message_status`.
    pub error_every: Option<(u32, u16)>,
    /// After the 200 to a SUBSCRIBE, send a NOTIFY with a PIDF `open` document on the same
    /// connection (`Subscription-State: terminated` when the SUBSCRIBE had `Expires: 0`).
    pub notify_after_subscribe: bool,
    /// Every n-th MESSAGE (1-based, pool-wide) is never answered: for timeout tests. Takes
    /// precedence over `error_every`.
    pub silent_every: Option<u32>,
}

impl Default for AnswerPlan {
    fn default() -> Self {
        AnswerPlan {
            message_status: 200,
            error_every: None,
            notify_after_subscribe: true,
            silent_every: None,
        }
    }
}

/// SUBSCRIBEs received, told apart by To-tag and Expires.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeCounts {
    /// No To-tag and `Expires` > 0 (or absent).
    pub initial: u64,
    /// A To-tag and `Expires` > 0 (or absent).
    pub refresh: u64,
    /// `Expires: 0`.
    pub unsubscribe: u64,
}

/// A snapshot of what the pool saw and did, over all its connections (including the ones
/// opened by [`send_messages`](super::sip_pool::SipPool::send_messages) and
/// [`subscribe`](super::sip_pool::SipPool::subscribe) for requests arriving on them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections accepted on the pool's listener.
    pub connections_accepted: u64,
    /// Connections refused because the pool already serves its maximum.
    pub connections_refused: u64,
    /// Valid MESSAGE requests received.
    pub messages_received: u64,
    /// MESSAGE answers sent, by status.
    pub messages_answered: BTreeMap<u16, u64>,
    /// MESSAGEs deliberately left unanswered ([`AnswerPlan::silent_every`]).
    pub messages_silenced: u64,
    /// SUBSCRIBEs received (each answered 200).
    pub subscribes: SubscribeCounts,
    /// NOTIFYs the pool sent after a SUBSCRIBE.
    pub notifies_sent: u64,
    /// Final responses to those NOTIFYs, by status.
    pub notify_responses: BTreeMap<u16, u64>,
    /// NOTIFYs received (each answered 200).
    pub notifies_received: u64,
    /// OPTIONS received (each answered 200).
    pub options_received: u64,
    /// Other requests, by method (answered 405 for known SIP methods, 501 otherwise; ACK unanswered).
    pub other_requests: BTreeMap<String, u64>,
    /// RFC 5626 double-CRLF pings answered with a CRLF pong.
    pub crlf_pings: u64,
    /// Malformed input: unframeable bytes, invalid requests or responses. Each closes its
    /// connection.
    pub malformed: u64,
    /// Of those, how many were answered: 400, or 413 for a body over the cap (requests whose
    /// header section was readable enough to address a response).
    pub malformed_answered: u64,
    /// Responses matching no request the pool sent.
    pub stray_responses: u64,
}

/// A NOTIFY as seen by the subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyReport {
    /// Call-ID (the subscription dialog).
    pub call_id: String,
    /// CSeq number.
    pub cseq: u32,
    /// `Subscription-State` token (`active`, `pending`, `terminated`), empty if absent/invalid.
    pub state: String,
    /// Its `expires` parameter.
    pub expires: Option<u32>,
    /// Its `reason` parameter.
    pub reason: Option<String>,
    /// PIDF `<basic>` decoded: `Some("open")`/`Some("closed")`, `None` without a readable PIDF.
    pub basic: Option<String>,
    /// It arrived on a connection the router opened to the pool (its next hop), not on the
    /// subscriber's own connection.
    pub via_next_hop: bool,
}

/// What the pool keeps across connections; one lock guards it.
#[derive(Debug, Default)]
pub(crate) struct Book {
    pub stats: PoolStats,
    pub samples: Vec<String>,
    pub samples_cap: usize,
}

impl Book {
    fn sample(&mut self, m: &SipMessage) {
        if self.samples.len() < self.samples_cap {
            self.samples
                .push(String::from_utf8_lossy(&m.bytes()).into_owned());
        }
    }
}

/// What one step asks the socket owner to do.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Bytes to write, in order.
    pub send: Vec<Vec<u8>>,
    /// Close the connection after writing.
    pub close: bool,
    /// NOTIFYs received, for subscribers waiting on their Call-ID.
    pub notifies: Vec<NotifyReport>,
}

/// Methods RFC 3261 and its extensions define: answered 405 rather than 501.
const KNOWN_METHODS: &[&str] = &[
    "INVITE", "BYE", "CANCEL", "REGISTER", "PRACK", "UPDATE", "INFO", "REFER", "PUBLISH",
];

/// What the pool allows, for `Allow` in 405 answers.
const ALLOW: &str = "MESSAGE, SUBSCRIBE, NOTIFY, OPTIONS, ACK";

/// Default Expires echoed to a SUBSCRIBE without one (RFC 3856 §6.4 suggests an hour).
const DEFAULT_EXPIRES: u32 = 3600;

/// One connection's answering state.
#[derive(Debug)]
pub(crate) struct Uas {
    plan: AnswerPlan,
    /// `host:port` for Via and Contact.
    local: String,
    via_next_hop: bool,
    branches: BranchGen,
    notify_cseq: u32,
    /// NOTIFYs sent and not yet finally answered: (Call-ID, CSeq).
    awaiting: HashSet<(String, u32)>,
    tags: u64,
    tag_prefix: String,
}

impl Uas {
    /// `local` is this pool's `host:port` (Via, Contact); `via_next_hop` marks connections the
    /// router opened to us.
    pub fn new(plan: AnswerPlan, local: String, via_next_hop: bool) -> Uas {
        let seed = random_hex(6).unwrap_or_else(|_| "5eed".to_string());
        Uas {
            plan,
            local,
            via_next_hop,
            branches: BranchGen::with_prefix(&seed),
            notify_cseq: 0,
            awaiting: HashSet::new(),
            tags: 0,
            tag_prefix: seed,
        }
    }

    fn new_tag(&mut self) -> String {
        self.tags += 1;
        format!("pool{}.{}", self.tag_prefix, self.tags)
    }

    /// Handles one framed item.
    pub fn on_framed(&mut self, item: Framed, book: &mut Book, out: &mut Output) {
        match item {
            Framed::Ping => {
                book.stats.crlf_pings += 1;
                out.send.push(b"\r\n".to_vec());
            }
            Framed::Pong => {}
            Framed::Message(m) => self.on_message(&m, book, out),
        }
    }

    /// Handles bytes the framer could not frame (`tail`: what it had buffered, `err`: why):
    /// when they start with a readable request header section, a 400 (413 for a body over the
    /// cap); then close.
    pub fn on_unframeable(
        &mut self,
        tail: &[u8],
        err: Option<FramerError>,
        limits: &Limits,
        book: &mut Book,
        out: &mut Output,
    ) {
        book.stats.malformed += 1;
        out.close = true;
        let Some(m) = head_only(tail, limits) else {
            return;
        };
        if !m.is_request() || m.method() == Some("ACK") {
            return;
        }
        let (code, text) = match err {
            Some(FramerError::Parse(ParseError::BodyTooLarge { .. })) => {
                (413, "Request Entity Too Large")
            }
            _ => (400, "Bad Request"),
        };
        if let Ok(r) = response_to(&m, code, text, None).and_then(|b| b.finish()) {
            book.stats.malformed_answered += 1;
            out.send.push(r);
        }
    }

    fn on_message(&mut self, m: &SipMessage, book: &mut Book, out: &mut Output) {
        if m.validate().is_err() {
            book.stats.malformed += 1;
            out.close = true;
            if m.is_request() && m.method() != Some("ACK") {
                book.sample(m);
                if let Ok(r) = response_to(m, 400, "Bad Request", None).and_then(|b| b.finish()) {
                    book.stats.malformed_answered += 1;
                    out.send.push(r);
                }
            }
            return;
        }
        if !m.is_request() {
            return self.on_response(m, book);
        }
        book.sample(m);
        let method = m.method().unwrap_or("");
        let reply = match method {
            "MESSAGE" => self.on_message_request(m, book),
            "SUBSCRIBE" => return self.on_subscribe(m, book, out),
            "NOTIFY" => {
                book.stats.notifies_received += 1;
                out.notifies.push(notify_report(m, self.via_next_hop));
                response_to(m, 200, "OK", None)
                    .and_then(|b| b.finish())
                    .ok()
            }
            "OPTIONS" => {
                book.stats.options_received += 1;
                response_to(m, 200, "OK", None)
                    .and_then(|b| b.header(HeaderName::Allow, ALLOW).finish())
                    .ok()
            }
            "ACK" => {
                *book
                    .stats
                    .other_requests
                    .entry(method.to_string())
                    .or_default() += 1;
                None
            }
            _ => {
                *book
                    .stats
                    .other_requests
                    .entry(method.to_string())
                    .or_default() += 1;
                if KNOWN_METHODS.contains(&method) {
                    response_to(m, 405, "Method Not Allowed", None)
                        .and_then(|b| b.header(HeaderName::Allow, ALLOW).finish())
                        .ok()
                } else {
                    response_to(m, 501, "Not Implemented", None)
                        .and_then(|b| b.finish())
                        .ok()
                }
            }
        };
        out.send.extend(reply);
    }

    fn on_message_request(&mut self, m: &SipMessage, book: &mut Book) -> Option<Vec<u8>> {
        book.stats.messages_received += 1;
        // Pool-wide sequence number, 1-based; u32 wrap after 4e9 messages is harmless here.
        let n = book.stats.messages_received as u32;
        if self.plan.silent_every.is_some_and(|k| k > 0 && n % k == 0) {
            book.stats.messages_silenced += 1;
            return None;
        }
        let code = match self.plan.error_every {
            Some((k, code)) if k > 0 && n % k == 0 => code,
            _ => self.plan.message_status,
        };
        let tag = self.new_tag();
        let r = response_to(m, code, reason(code), Some(&tag))
            .and_then(|b| b.finish())
            .ok()?;
        *book.stats.messages_answered.entry(code).or_default() += 1;
        Some(r)
    }

    fn on_subscribe(&mut self, m: &SipMessage, book: &mut Book, out: &mut Output) {
        let expires = match m.expires() {
            Ok(e) => e,
            Err(_) => DEFAULT_EXPIRES,
        };
        let existing = m.to().ok().and_then(|t| t.tag().map(str::to_owned));
        let s = &mut book.stats.subscribes;
        match (expires, &existing) {
            (0, _) => s.unsubscribe += 1,
            (_, Some(_)) => s.refresh += 1,
            (_, None) => s.initial += 1,
        }
        let tag = existing.unwrap_or_else(|| self.new_tag());
        let contact = format!("sip:pool@{};transport=tcp", self.local);
        let Ok(ok) = response_to(m, 200, "OK", Some(&tag))
            .and_then(|b| b.expires(expires).contact(&contact).finish())
        else {
            return;
        };
        out.send.push(ok);
        if !self.plan.notify_after_subscribe {
            return;
        }
        if let Some(n) = self.notify_for(m, &tag, expires, &contact) {
            book.stats.notifies_sent += 1;
            out.send.push(n);
        }
    }

    /// The NOTIFY that follows a 200 to `sub` (RFC 6665 §4.2.1.2), carrying PIDF `open`.
    fn notify_for(
        &mut self,
        sub: &SipMessage,
        tag: &str,
        expires: u32,
        contact: &str,
    ) -> Option<Vec<u8>> {
        let from = sub.from().ok()?;
        let to = sub.to().ok()?;
        let call_id = sub.call_id().ok()?.to_string();
        let target = sub
            .contacts()
            .next()
            .and_then(Result::ok)
            .map_or(from.uri, |c| c.uri);
        self.notify_cseq += 1;
        let cseq = self.notify_cseq;
        let branch = self.branches.next_branch();
        let event = sub
            .header(HeaderName::Event)
            .and_then(|e| std::str::from_utf8(e).ok())
            .unwrap_or("presence");
        let state = if expires == 0 {
            "terminated;reason=timeout".to_string()
        } else {
            format!("active;expires={expires}")
        };
        let (host, port) = split_host_port(&self.local);
        let mut b = Request::builder("NOTIFY", target).via("TCP", host, port, &branch, true);
        // The route set is the SUBSCRIBE's Record-Route, in order (RFC 3261 §12.1.1).
        for rr in sub.header_values(HeaderName::RecordRoute) {
            b = b.header(HeaderName::Route, std::str::from_utf8(rr).ok()?);
        }
        let presence = XmppPresence {
            available: true,
            ..XmppPresence::default()
        };
        let body = pidf_from_presence(to.uri, &presence, "t1");
        let bytes = b
            .max_forwards(70)
            .from(None, to.uri, Some(tag))
            .to(None, from.uri, from.tag())
            .call_id(&call_id)
            .cseq(cseq, "NOTIFY")
            .header(HeaderName::Event, event)
            .header(HeaderName::SubscriptionState, &state)
            .contact(contact)
            .body("application/pidf+xml", body.as_bytes())
            .ok()?;
        self.awaiting.insert((call_id, cseq));
        Some(bytes)
    }

    fn on_response(&mut self, m: &SipMessage, book: &mut Book) {
        let (Ok(call_id), Ok(cseq), Some(status)) = (m.call_id(), m.cseq(), m.status()) else {
            return;
        };
        let key = (call_id.to_string(), cseq.seq);
        if cseq.method != "NOTIFY" || !self.awaiting.contains(&key) {
            book.stats.stray_responses += 1;
            return;
        }
        if status >= 200 {
            self.awaiting.remove(&key);
            *book.stats.notify_responses.entry(status).or_default() += 1;
        }
    }
}

/// The header section at the start of `tail` (leading CRLFs skipped) as a message without
/// body, whatever its Content-Length says: enough to address an error response.
fn head_only(tail: &[u8], limits: &Limits) -> Option<SipMessage> {
    let start = tail.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let tail = &tail[start..];
    let end = find_head_end(tail, 0)?;
    let any_body = Limits {
        max_body_bytes: usize::MAX,
        ..*limits
    };
    let head = parse_head(tail, end, &any_body).ok()?;
    Some(SipMessage::from_parts(
        Bytes::copy_from_slice(&tail[..end]),
        head.start,
        head.headers,
        end..end,
    ))
}

/// What a subscriber learns from a NOTIFY.
pub(crate) fn notify_report(m: &SipMessage, via_next_hop: bool) -> NotifyReport {
    let ss = m.subscription_state().ok();
    let body = m.body();
    let basic = if body.is_empty() {
        None
    } else {
        presence_from_pidf(&body)
            .ok()
            .map(|p| if p.available { "open" } else { "closed" }.to_string())
    };
    NotifyReport {
        call_id: m.call_id().unwrap_or("").to_string(),
        cseq: m.cseq().map_or(0, |c| c.seq),
        state: ss.map(|s| s.state.to_string()).unwrap_or_default(),
        expires: ss.and_then(|s| s.expires),
        reason: ss.and_then(|s| s.reason.map(str::to_owned)),
        basic,
        via_next_hop,
    }
}

/// `host` and optional port of `host:port` (IPv6 literals in brackets keep them).
pub(crate) fn split_host_port(s: &str) -> (&str, Option<u16>) {
    match s.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && (!h.contains(':') || h.ends_with(']')) => {
            match p.parse() {
                Ok(port) => (h, Some(port)),
                Err(_) => (s, None),
            }
        }
        _ => (s, None),
    }
}

/// A reason phrase for the codes a plan is likely to use.
pub(crate) fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Simulated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::framer::SipFramer;

    fn feed(uas: &mut Uas, book: &mut Book, text: &str) -> Output {
        let mut f = SipFramer::default();
        f.feed(text.as_bytes()).unwrap();
        let mut out = Output::default();
        while let Some(item) = f.poll() {
            match item {
                Ok(i) => uas.on_framed(i, book, &mut out),
                Err(e) => {
                    uas.on_unframeable(text.as_bytes(), Some(e), &Limits::default(), book, &mut out)
                }
            }
        }
        out
    }

    fn parse(b: &[u8]) -> SipMessage {
        SipMessage::parse(Bytes::copy_from_slice(b)).unwrap()
    }

    fn message(n: u32) -> String {
        format!(
            "MESSAGE sip:bob@corp.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@partner.test>;tag=a{n}\r\nTo: <sip:bob@corp.test>\r\n\
             Call-ID: c{n}\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi"
        )
    }

    #[test]
    fn error_and_silent_plans_pick_by_pool_wide_sequence() {
        let plan = AnswerPlan {
            error_every: Some((2, 486)),
            silent_every: Some(3),
            ..AnswerPlan::default()
        };
        let mut uas = Uas::new(plan, "127.0.0.1:5070".into(), true);
        let mut book = Book::default();
        let codes: Vec<Option<u16>> = (1..=6)
            .map(|n| {
                let out = feed(&mut uas, &mut book, &message(n));
                out.send.first().map(|r| parse(r).status().unwrap())
            })
            .collect();
        assert_eq!(
            codes,
            [Some(200), Some(486), None, Some(486), Some(200), None]
        );
        assert_eq!(book.stats.messages_silenced, 2);
        assert_eq!(book.stats.messages_answered.get(&486), Some(&2));
    }

    #[test]
    fn subscribe_gets_200_then_notify_whose_answer_is_counted() {
        let mut uas = Uas::new(AnswerPlan::default(), "127.0.0.1:5070".into(), true);
        let mut book = Book::default();
        let sub = "SUBSCRIBE sip:bob@corp.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bKs\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@partner.test>;tag=a1\r\nTo: <sip:bob@corp.test>\r\n\
             Call-ID: s1\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:gw@127.0.0.1:5060;transport=tcp>\r\n\
             Record-Route: <sip:127.0.0.1:5060;lr>\r\nEvent: presence\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n";
        let out = feed(&mut uas, &mut book, sub);
        assert_eq!(out.send.len(), 2);
        let ok = parse(&out.send[0]);
        assert_eq!(ok.status(), Some(200));
        assert!(ok.to().unwrap().tag().is_some());
        assert_eq!(ok.expires(), Ok(600));
        let notify = parse(&out.send[1]);
        notify.validate().unwrap();
        assert_eq!(
            notify.request_uri(),
            Some("sip:gw@127.0.0.1:5060;transport=tcp")
        );
        assert_eq!(notify.to().unwrap().tag(), Some("a1"));
        assert_eq!(notify.from().unwrap().tag(), ok.to().unwrap().tag());
        assert_eq!(
            notify.routes().next().unwrap().unwrap().uri,
            "sip:127.0.0.1:5060;lr"
        );
        let report = notify_report(&notify, false);
        assert_eq!(
            (report.state.as_str(), report.expires),
            ("active", Some(600))
        );
        assert_eq!(report.basic.as_deref(), Some("open"));
        let answer = response_to(&notify, 200, "OK", None)
            .unwrap()
            .finish()
            .unwrap();
        feed(&mut uas, &mut book, std::str::from_utf8(&answer).unwrap());
        assert_eq!(book.stats.notify_responses.get(&200), Some(&1));
        assert_eq!(book.stats.stray_responses, 0);
        assert_eq!(book.stats.subscribes.initial, 1);
    }

    #[test]
    fn invalid_request_gets_400_and_closes() {
        let mut uas = Uas::new(AnswerPlan::default(), "127.0.0.1:5070".into(), true);
        let mut book = Book::default();
        let bad = message(1).replace("CSeq: 1 MESSAGE", "CSeq: 1 INVITE");
        let out = feed(&mut uas, &mut book, &bad);
        assert!(out.close);
        assert_eq!(parse(&out.send[0]).status(), Some(400));
        assert_eq!(book.stats.malformed_answered, 1);
    }

    #[test]
    fn splits_host_and_port() {
        assert_eq!(split_host_port("127.0.0.1:5070"), ("127.0.0.1", Some(5070)));
        assert_eq!(split_host_port("[::1]:5070"), ("[::1]", Some(5070)));
        assert_eq!(split_host_port("::1"), ("::1", None));
    }
}
