//! The SIP source: the internal SIP side sending MESSAGEs to the router's `[sip] listen`
//! address, addressed to partner users (`userN@<partner>`), from an internal user of the
//! router's SIP domain, each body carrying `seq=<n>`. The router turns them into `<message/>`
//! stanzas on its outbound S2S streams, where the partners' answer readers complete them
//! (delivered); the SIP final response is checked here: 2xx is counted, any other final status
//! completes the request as refused by that status (the stanza will not come).
//!
//! It must out-run the router, so requests are formatted into a reused batch buffer (one write
//! per batch, see `run`), and responses are read with a minimal byte scan (start line, Call-ID
//! and Content-Length only), as in the SIP sink. [`SourceTemplates`] and [`ResponseScanner`]
//! are sans-IO; [`read_responses`] is the blocking reader thread of one connection.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::correlator::{Correlator, Outcome, Recorder, ID_PREFIX};
use crate::sip_sink::{
    find_crlf, head_len, header_of, parse_len, push_num, trim, Hdr, SinkError, MAX_BODY, MAX_HEAD,
};
use crate::workload::BodySize;

/// Socket read size.
const READ_BYTES: usize = 256 * 1024;
const PADDING: [u8; 1024] = [b'x'; 1024];

/// Writes one SIP connection's MESSAGEs. The constant parts are rendered once.
#[derive(Debug, Clone)]
pub struct SourceTemplates {
    /// `SIP/2.0\r\nVia: SIP/2.0/TCP <local>;branch=z9hG4bKlg` (after the request URI).
    via: String,
    /// `Max-Forwards … From: <sip:lgC@DOMAIN>;tag=lgC\r\nTo: <sip:user`.
    from_to: String,
    partners: Vec<String>,
    users: u64,
    body: BodySize,
}

impl SourceTemplates {
    /// MESSAGEs of connection `conn` (local address `local`, put in the Via) from
    /// `lg<conn>@<sip_domain>` to `user<N>@<partner>`: request `seq` goes to partner
    /// `seq % partners.len()` and user `(seq / partners.len()) % users`.
    pub fn new(
        conn: usize,
        local: SocketAddr,
        sip_domain: &str,
        partners: &[String],
        users: u64,
        body: BodySize,
    ) -> SourceTemplates {
        SourceTemplates {
            via: format!(" SIP/2.0\r\nVia: SIP/2.0/TCP {local};branch=z9hG4bKlg"),
            from_to: format!(
                "\r\nMax-Forwards: 70\r\nFrom: <sip:lg{conn}@{sip_domain}>;tag=lg{conn}\r\nTo: <sip:user"
            ),
            partners: partners.to_vec(),
            users: users.max(1),
            body,
        }
    }

    /// Appends MESSAGE `seq` to `out`.
    pub fn write(&self, seq: u64, out: &mut Vec<u8>) {
        let np = self.partners.len().max(1) as u64;
        let partner = self
            .partners
            .get((seq % np) as usize)
            .map_or("", String::as_str);
        let user = (seq / np) % self.users;
        let pad = self.body.for_seq(seq);
        // Body: `seq=<n> ` then padding; its length without formatting twice.
        let body_len = 4 + digits(seq) + 1 + pad;
        out.extend_from_slice(b"MESSAGE sip:user");
        push_num(out, user);
        out.push(b'@');
        out.extend_from_slice(partner.as_bytes());
        out.extend_from_slice(self.via.as_bytes());
        push_num(out, seq);
        out.extend_from_slice(self.from_to.as_bytes());
        push_num(out, user);
        out.push(b'@');
        out.extend_from_slice(partner.as_bytes());
        out.extend_from_slice(b">\r\nCall-ID: ");
        out.extend_from_slice(ID_PREFIX.as_bytes());
        push_num(out, seq);
        out.extend_from_slice(
            b"\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: ",
        );
        push_num(out, body_len as u64);
        out.extend_from_slice(b"\r\n\r\nseq=");
        push_num(out, seq);
        out.push(b' ');
        let mut left = pad;
        while left > 0 {
            let n = left.min(PADDING.len());
            out.extend_from_slice(&PADDING[..n]);
            left -= n;
        }
    }
}

fn digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// What the SIP source saw on its connections.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SourceCounts {
    /// Connections to the router's SIP listener established.
    pub connections: u64,
    /// MESSAGEs written.
    pub sent: u64,
    /// 2xx final responses.
    pub ok: u64,
    /// Non-2xx final responses.
    pub refused: u64,
    /// Provisional (1xx) responses.
    pub provisional: u64,
    /// Final responses without a loadgen Call-ID.
    pub foreign: u64,
    /// Requests from the router on these flows (not answered).
    pub requests: u64,
    /// Connections closed on unframeable input.
    pub framing_errors: u64,
    /// Connections lost before the end.
    pub closed_early: u64,
}

impl SourceCounts {
    /// Adds `o` into `self`.
    pub fn add(&mut self, o: &SourceCounts) {
        self.connections += o.connections;
        self.sent += o.sent;
        self.ok += o.ok;
        self.refused += o.refused;
        self.provisional += o.provisional;
        self.foreign += o.foreign;
        self.requests += o.requests;
        self.framing_errors += o.framing_errors;
        self.closed_early += o.closed_early;
    }

    /// MESSAGEs sent without a final response (must be 0).
    pub fn unanswered(&self) -> u64 {
        self.sent.saturating_sub(self.ok + self.refused)
    }
}

/// One response (or request) found by the [`ResponseScanner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanned {
    /// A response: its status and the loadgen sequence number in its Call-ID, if any.
    Response(u16, Option<u64>),
    /// A request from the router (counted, not answered).
    Request,
}

/// Frames the router's responses on one connection (sans-IO).
#[derive(Debug, Default)]
pub struct ResponseScanner;

impl ResponseScanner {
    /// Handles every complete message at the start of `buf`, calling `seen` for each; returns
    /// the bytes consumed (the rest is incomplete: feed it again with more bytes).
    pub fn process(
        &mut self,
        buf: &[u8],
        mut seen: impl FnMut(Scanned),
    ) -> Result<usize, SinkError> {
        let mut at = 0;
        loop {
            let rest = &buf[at..];
            // CRLF keepalives between messages.
            if rest.starts_with(b"\r\n") {
                at += 2;
                continue;
            }
            let Some(head_len) = head_len(rest)? else {
                return Ok(at);
            };
            let head = &rest[..head_len - 2];
            let first_end = find_crlf(head).ok_or(SinkError::BadStartLine)?;
            let start = &head[..first_end];
            let status = if let Some(s) = start.strip_prefix(b"SIP/2.0 ") {
                let code = s.get(..3).and_then(|c| {
                    c.iter()
                        .all(u8::is_ascii_digit)
                        .then(|| c.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
                });
                Some(
                    code.filter(|c| (100..700).contains(c))
                        .ok_or(SinkError::BadStartLine)?,
                )
            } else if start.ends_with(b" SIP/2.0") {
                None
            } else {
                return Err(SinkError::BadStartLine);
            };
            let mut content_length = None;
            let mut call_id: Option<&[u8]> = None;
            let mut pos = first_end + 2;
            while pos < head.len() {
                let nl = find_crlf(&head[pos..]).map_or(head.len(), |p| pos + p);
                let line = &head[pos..nl];
                if let Some(colon) = memchr::memchr(b':', line) {
                    match header_of(trim(&line[..colon])) {
                        Hdr::ContentLength => {
                            if content_length.is_some() {
                                return Err(SinkError::BadContentLength);
                            }
                            content_length = Some(
                                parse_len(&line[colon + 1..]).ok_or(SinkError::BadContentLength)?,
                            );
                        }
                        Hdr::CallId => call_id = Some(trim(&line[colon + 1..])),
                        _ => {}
                    }
                }
                pos = nl + 2;
            }
            let cl = content_length.ok_or(SinkError::BadContentLength)?;
            if cl > MAX_BODY {
                return Err(SinkError::BadContentLength);
            }
            if rest.len() < head_len + cl {
                return Ok(at);
            }
            at += head_len + cl;
            match status {
                Some(code) => seen(Scanned::Response(code, call_id.and_then(seq_of_call_id))),
                None => seen(Scanned::Request),
            }
        }
    }
}

/// The sequence number in a Call-ID `lg-<seq>`.
fn seq_of_call_id(v: &[u8]) -> Option<u64> {
    let d = v.strip_prefix(ID_PREFIX.as_bytes())?;
    if d.is_empty() || d.len() > 19 || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(d.iter().fold(0u64, |n, c| n * 10 + u64::from(c - b'0')))
}

/// Reads the router's responses on one source connection until `stop` (or the router closes):
/// counts them, and completes each non-2xx final one in `corr` as refused by its status. Its
/// recorder holds those refusals. Every final response is also counted in `finals` (the run
/// waits for them in its drain).
pub fn read_responses(
    mut tcp: TcpStream,
    corr: &Correlator,
    finals: &AtomicU64,
    stop: &AtomicBool,
) -> (Recorder, SourceCounts) {
    let mut rec = Recorder::new();
    let mut counts = SourceCounts::default();
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(100)));
    let mut scanner = ResponseScanner;
    let mut buf = vec![0u8; READ_BYTES * 2];
    let mut have = 0;
    loop {
        if stop.load(Ordering::Acquire) {
            break;
        }
        if have == buf.len() {
            if buf.len() >= MAX_HEAD + MAX_BODY + READ_BYTES {
                counts.framing_errors += 1;
                break;
            }
            buf.resize(buf.len() * 2, 0);
        }
        let n = match tcp.read(&mut buf[have..]) {
            Ok(0) => {
                counts.closed_early += u64::from(!stop.load(Ordering::Acquire));
                break;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(_) => {
                counts.closed_early += u64::from(!stop.load(Ordering::Acquire));
                break;
            }
        };
        let at = Instant::now();
        have += n;
        let before = counts.ok + counts.refused;
        let used = scanner.process(&buf[..have], |s| match s {
            Scanned::Request => counts.requests += 1,
            Scanned::Response(code, _) if code < 200 => counts.provisional += 1,
            Scanned::Response(_, None) => counts.foreign += 1,
            Scanned::Response(code, Some(_)) if code < 300 => counts.ok += 1,
            Scanned::Response(code, Some(seq)) => {
                counts.refused += 1;
                // The stanza will not come: the request ends here.
                if let Some(c) = corr.complete(seq, at) {
                    rec.record(&c, Outcome::Refused(code));
                }
            }
        });
        finals.fetch_add(counts.ok + counts.refused - before, Ordering::AcqRel);
        match used {
            Ok(u) => {
                buf.copy_within(u..have, 0);
                have -= u;
            }
            Err(_) => {
                counts.framing_errors += 1;
                break;
            }
        }
    }
    (rec, counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stanza_router::sip::message::SipMessage;

    fn templates() -> SourceTemplates {
        SourceTemplates::new(
            2,
            "127.0.0.1:40000".parse().unwrap(),
            "corp.test",
            &["p0.partner.test".into(), "p1.partner.test".into()],
            10,
            BodySize::Fixed { bytes: 30 },
        )
    }

    #[test]
    fn written_message_is_valid_sip_addressed_to_a_partner_user() {
        let mut out = Vec::new();
        templates().write(123, &mut out);
        let m = SipMessage::parse(out.clone().into()).unwrap();
        m.validate().unwrap();
        assert_eq!(m.method(), Some("MESSAGE"));
        // 123 % 2 = 1 → p1; (123 / 2) % 10 = 1 → user1.
        assert_eq!(m.request_uri(), Some("sip:user1@p1.partner.test"));
        assert_eq!(m.from().unwrap().uri, "sip:lg2@corp.test");
        assert_eq!(m.call_id().unwrap(), "lg-123");
        assert_eq!(
            &m.body()[..],
            &b"seq=123 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"[..]
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("branch=z9hG4bKlg123\r\n"), "{text}");
    }

    #[test]
    fn batch_of_messages_frames_back_one_by_one() {
        let t = templates();
        let mut out = Vec::new();
        for s in [0, 9, 10, 99_999] {
            t.write(s, &mut out);
        }
        let mut n = 0;
        let used = ResponseScanner
            .process(&out, |s| {
                assert_eq!(s, Scanned::Request);
                n += 1;
            })
            .unwrap();
        assert_eq!((used, n), (out.len(), 4));
    }

    #[test]
    fn scans_status_and_sequence_of_responses() {
        let r = |code: &str, cid: &str| {
            format!(
                "SIP/2.0 {code}\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKlg1\r\nFrom: <sip:a@b>;tag=1\r\n\
                 To: <sip:c@d>;tag=gw\r\ni: {cid}\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"
            )
        };
        let mut input = r("200 OK", "lg-5").into_bytes();
        input.extend(r("404 Not Found", "lg-77").into_bytes());
        input.extend(b"\r\n");
        input.extend(r("100 Trying", "x").into_bytes());
        let partial = r("200 OK", "lg-9");
        input.extend(&partial.as_bytes()[..20]);
        let mut seen = Vec::new();
        let used = ResponseScanner.process(&input, |s| seen.push(s)).unwrap();
        assert_eq!(used, input.len() - 20);
        assert_eq!(
            seen,
            [
                Scanned::Response(200, Some(5)),
                Scanned::Response(404, Some(77)),
                Scanned::Response(100, None)
            ]
        );
    }

    #[test]
    fn rejects_unframeable_responses() {
        let mut s = ResponseScanner;
        assert_eq!(
            s.process(b"SIP/2.0 2x OK\r\nl: 0\r\n\r\n", |_| {}),
            Err(SinkError::BadStartLine)
        );
        assert_eq!(
            s.process(b"SIP/2.0 200 OK\r\nCall-ID: lg-1\r\n\r\n", |_| {}),
            Err(SinkError::BadContentLength)
        );
        assert_eq!(seq_of_call_id(b"lg-"), None);
        assert_eq!(seq_of_call_id(b"lg-12a"), None);
    }

    #[test]
    fn refused_response_completes_the_request_and_ok_does_not() {
        let corr = Correlator::new(Instant::now(), 16, 1);
        assert!(corr.register(1, 0, 0, 0, true, crate::correlator::Kind::Message));
        assert!(corr.register(2, 0, 0, 0, true, crate::correlator::Kind::Message));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            use std::io::Write;
            let (mut s, _) = l.accept().unwrap();
            s.write_all(
                b"SIP/2.0 200 OK\r\nCall-ID: lg-1\r\nContent-Length: 0\r\n\r\n\
                  SIP/2.0 480 Temporarily Unavailable\r\nCall-ID: lg-2\r\nContent-Length: 0\r\n\r\n",
            )
            .unwrap();
        });
        let tcp = TcpStream::connect(addr).unwrap();
        let stop = AtomicBool::new(false);
        let finals = AtomicU64::new(0);
        let (rec, counts) = read_responses(tcp, &corr, &finals, &stop);
        assert_eq!(finals.load(Ordering::Relaxed), 2);
        server.join().unwrap();
        assert_eq!((counts.ok, counts.refused, counts.closed_early), (1, 1, 1));
        assert_eq!(rec.refused.get(&480), Some(&1));
        assert_eq!(corr.pending(), 1, "the 200 leaves request 1 to its stanza");
    }
}
