//! The SIP source: the internal SIP side sending requests to the router's `[sip] listen`
//! address, addressed to partner users (`userN@<partner>`):
//! - MESSAGEs from an internal user of the router's SIP domain, each body carrying `seq=<n>`.
//!   The router turns them into `<message/>` stanzas on its outbound S2S streams, where the
//!   partners' answer readers complete them (delivered).
//! - With `--workload mix`, SUBSCRIBEs (`Event: presence`) for the mix's subscription share,
//!   from watcher `lgw<n>`: the router answers 2xx and asks the partner user with
//!   `<presence type='subscribe' from='lgw<n>@…'/>`, which completes the request at the
//!   partner; the source then ends the dialog ([`crate::sip_uac`]).
//!
//! The SIP final response is checked here: 2xx is counted, any other final status completes
//! the request as refused by that status (the stanza will not come).
//!
//! It must out-run the router, so requests are formatted into a reused batch buffer (one write
//! per batch, see `run`), and responses are read with a minimal byte scan (start line, Call-ID,
//! CSeq and Content-Length only), as in the SIP sink. [`SourceTemplates`] and
//! [`ResponseScanner`] are sans-IO; [`read_responses`] is the blocking reader thread of one
//! connection.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::correlator::{parse_seq, Correlator, Outcome, Recorder, ID_PREFIX};
use crate::sip_sink::{
    find_crlf, head_len, header_of, parse_len, push_num, trim, Hdr, SinkError, MAX_BODY, MAX_HEAD,
};
use crate::sip_uac::SubscribeUac;
use crate::workload::{BodySize, Mix, MixItem};

/// Socket read size.
const READ_BYTES: usize = 256 * 1024;
const PADDING: [u8; 1024] = [b'x'; 1024];

/// Expires of the source's SUBSCRIBEs, seconds (the router grants at least its 60 s minimum;
/// each dialog is ended by an unsubscribe long before).
pub const SUBSCRIBE_EXPIRES: u32 = 600;

/// Local part prefix of the internal user (the watcher) of a SUBSCRIBE: `lgw<seq>`. The router
/// names it in the `from` of the `subscribe` it sends the partner, where the sequence number
/// completes the request. One watcher per request: the router keeps one dialog per (partner
/// user, internal user) pair.
pub const WATCHER_USER: &str = "lgw";

/// Writes one SIP connection's requests. The constant parts are rendered once.
#[derive(Debug, Clone)]
pub struct SourceTemplates {
    /// `SIP/2.0\r\nVia: SIP/2.0/TCP <local>;branch=z9hG4bKlg` (after the request URI).
    via: String,
    /// `Max-Forwards … From: <sip:lgC@DOMAIN>;tag=lgC\r\nTo: <sip:user`.
    from_to: String,
    /// `@DOMAIN>;tag=lgC\r\nTo: <sip:user` (a SUBSCRIBE's From after the watcher's number).
    watcher_to: String,
    /// `Contact: <sip:lgC@<local>;transport=tcp>` and the SUBSCRIBE headers after it, up to
    /// `Expires: `.
    subscribe_tail: String,
    partners: Vec<String>,
    users: u64,
    body: BodySize,
    mix: Option<Mix>,
}

impl SourceTemplates {
    /// Requests of connection `conn` (local address `local`, put in the Via) to
    /// `user<N>@<partner>`: request `seq` goes to partner `seq % partners.len()` and user
    /// `(seq / partners.len()) % users`. MESSAGEs come from `lg<conn>@<sip_domain>`.
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
            watcher_to: format!("@{sip_domain}>;tag=lg{conn}\r\nTo: <sip:user"),
            subscribe_tail: format!(
                "Contact: <sip:lg{conn}@{local};transport=tcp>\r\nEvent: presence\r\n\
                 Accept: application/pidf+xml\r\nExpires: "
            ),
            partners: partners.to_vec(),
            users: users.max(1),
            body,
            mix: None,
        }
    }

    /// Sends a SUBSCRIBE instead of a MESSAGE for the requests `mix` picks as subscriptions
    /// (its presence weight is not used: the source has no presence item).
    pub fn with_mix(mut self, mix: Option<Mix>) -> SourceTemplates {
        self.mix = mix;
        self
    }

    /// Whether request `seq` is a SUBSCRIBE.
    pub fn is_subscribe(&self, seq: u64) -> bool {
        self.mix
            .is_some_and(|m| m.item(seq) == MixItem::Subscription)
    }

    /// (partner, user number) of request `seq`.
    fn target(&self, seq: u64) -> (&str, u64) {
        let np = self.partners.len().max(1) as u64;
        let partner = self
            .partners
            .get((seq % np) as usize)
            .map_or("", String::as_str);
        (partner, (seq / np) % self.users)
    }

    /// Appends request `seq` to `out`.
    pub fn write(&self, seq: u64, out: &mut Vec<u8>) {
        if self.is_subscribe(seq) {
            self.write_subscribe(seq, None, out);
        } else {
            self.write_message(seq, out);
        }
    }

    fn write_message(&self, seq: u64, out: &mut Vec<u8>) {
        let (partner, user) = self.target(seq);
        let pad = self.body.for_seq(seq);
        // Body: `seq=<n> ` then padding; its length without formatting twice.
        let body_len = 4 + digits(seq) + 1 + pad;
        out.extend_from_slice(b"MESSAGE sip:user");
        push_user_at(out, user, partner);
        out.extend_from_slice(self.via.as_bytes());
        push_num(out, seq);
        out.extend_from_slice(self.from_to.as_bytes());
        push_user_at(out, user, partner);
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

    /// The SUBSCRIBE of request `seq` from watcher `lgw<seq>`: the initial one (`dialog`
    /// `None`: CSeq 1, Expires [`SUBSCRIBE_EXPIRES`]) or the unsubscribe ending its dialog
    /// (`Some((to_tag, remote_target))`: CSeq 2, Expires 0, sent to the router's Contact). The
    /// caller checks that tag and target are plain header text.
    pub fn write_subscribe(&self, seq: u64, dialog: Option<(&str, &str)>, out: &mut Vec<u8>) {
        let (partner, user) = self.target(seq);
        out.extend_from_slice(b"SUBSCRIBE ");
        match dialog {
            Some((_, target)) => out.extend_from_slice(target.as_bytes()),
            None => {
                out.extend_from_slice(b"sip:user");
                push_user_at(out, user, partner);
            }
        }
        out.extend_from_slice(self.via.as_bytes());
        if dialog.is_some() {
            // Its own transaction: a branch unlike the initial request's.
            out.extend_from_slice(b"u");
        }
        push_num(out, seq);
        out.extend_from_slice(b"\r\nMax-Forwards: 70\r\nFrom: <sip:");
        out.extend_from_slice(WATCHER_USER.as_bytes());
        push_num(out, seq);
        out.extend_from_slice(self.watcher_to.as_bytes());
        push_user_at(out, user, partner);
        out.push(b'>');
        if let Some((tag, _)) = dialog {
            out.extend_from_slice(b";tag=");
            out.extend_from_slice(tag.as_bytes());
        }
        out.extend_from_slice(b"\r\nCall-ID: ");
        out.extend_from_slice(ID_PREFIX.as_bytes());
        push_num(out, seq);
        out.extend_from_slice(match dialog {
            Some(_) => b"\r\nCSeq: 2 SUBSCRIBE\r\n".as_slice(),
            None => b"\r\nCSeq: 1 SUBSCRIBE\r\n".as_slice(),
        });
        out.extend_from_slice(self.subscribe_tail.as_bytes());
        push_num(
            out,
            u64::from(if dialog.is_some() {
                0
            } else {
                SUBSCRIBE_EXPIRES
            }),
        );
        out.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
    }
}

/// Appends `<user>@<partner>` (after a `sip:user` or `<sip:user` already written).
fn push_user_at(out: &mut Vec<u8>, user: u64, partner: &str) {
    push_num(out, user);
    out.push(b'@');
    out.extend_from_slice(partner.as_bytes());
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
    /// Requests written (MESSAGEs and initial SUBSCRIBEs).
    pub sent: u64,
    /// 2xx final responses to them.
    pub ok: u64,
    /// Non-2xx final responses to them.
    pub refused: u64,
    /// Provisional (1xx) responses.
    pub provisional: u64,
    /// Final responses without a loadgen Call-ID.
    pub foreign: u64,
    /// SUBSCRIBEs answered 2xx: dialogs formed, each then ended by an unsubscribe.
    pub subscribed: u64,
    /// Unsubscribes (in-dialog SUBSCRIBE, Expires: 0) sent.
    pub unsubscribes: u64,
    /// Of those, answered 2xx.
    pub unsubscribed: u64,
    /// NOTIFYs from the router, answered 200.
    pub notifies: u64,
    /// Of those, `terminated` (the last of a dialog).
    pub notifies_terminated: u64,
    /// Dialogs that could not be ended properly: a 2xx without a To tag or with an unusable
    /// Contact, a refused unsubscribe, a NOTIFY not in a dialog of ours (answered 481).
    pub dialog_errors: u64,
    /// Dialogs still open when the run stopped (unsubscribe or final NOTIFY missing).
    pub dialogs_left: u64,
    /// Other requests from the router on these flows (answered 405, ACK not answered).
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
        self.subscribed += o.subscribed;
        self.unsubscribes += o.unsubscribes;
        self.unsubscribed += o.unsubscribed;
        self.notifies += o.notifies;
        self.notifies_terminated += o.notifies_terminated;
        self.dialog_errors += o.dialog_errors;
        self.dialogs_left += o.dialogs_left;
        self.requests += o.requests;
        self.framing_errors += o.framing_errors;
        self.closed_early += o.closed_early;
    }

    /// Requests sent without a final response (must be 0).
    pub fn unanswered(&self) -> u64 {
        self.sent.saturating_sub(self.ok + self.refused)
    }
}

/// The method in a response's CSeq, as far as the source cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CseqMethod {
    /// `MESSAGE`.
    Message,
    /// `SUBSCRIBE` with this CSeq number (1 initial, 2 the unsubscribe).
    Subscribe(u32),
    /// Another method, or no CSeq.
    Other,
}

/// One response (or request) found by the [`ResponseScanner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scanned<'a> {
    /// A response.
    Response {
        /// Its status.
        code: u16,
        /// The loadgen sequence number in its Call-ID, if any.
        seq: Option<u64>,
        /// What it answers.
        method: CseqMethod,
        /// The whole message.
        raw: &'a [u8],
    },
    /// A request from the router (the whole message).
    Request(&'a [u8]),
}

/// Frames the router's responses on one connection (sans-IO).
#[derive(Debug, Default)]
pub struct ResponseScanner;

impl ResponseScanner {
    /// Handles every complete message at the start of `buf`, calling `seen` for each; returns
    /// the bytes consumed (the rest is incomplete: feed it again with more bytes).
    pub fn process<'a>(
        &mut self,
        buf: &'a [u8],
        mut seen: impl FnMut(Scanned<'a>),
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
            let mut method = CseqMethod::Other;
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
                        Hdr::CSeq => method = cseq_method(trim(&line[colon + 1..])),
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
            let raw = &rest[..head_len + cl];
            at += head_len + cl;
            match status {
                Some(code) => seen(Scanned::Response {
                    code,
                    seq: call_id.and_then(seq_of_call_id),
                    method,
                    raw,
                }),
                None => seen(Scanned::Request(raw)),
            }
        }
    }
}

/// `1 MESSAGE`, `2 SUBSCRIBE`.
fn cseq_method(v: &[u8]) -> CseqMethod {
    let digits = v.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 9 {
        return CseqMethod::Other;
    }
    let n = v[..digits]
        .iter()
        .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    match trim(&v[digits..]) {
        b"MESSAGE" => CseqMethod::Message,
        b"SUBSCRIBE" => CseqMethod::Subscribe(n),
        _ => CseqMethod::Other,
    }
}

/// The sequence number in a Call-ID `lg-<seq>`.
pub fn seq_of_call_id(v: &[u8]) -> Option<u64> {
    parse_seq(v.strip_prefix(ID_PREFIX.as_bytes())?)
}

/// One source connection's socket, written by its writer (batches of requests) and by its
/// reader (answers to the router's NOTIFYs, unsubscribes). A batch must not be cut by another
/// write, so writes take the lock; the reader never blocks on it nor on the socket (it must
/// keep reading, or a router waiting to write to us would stop reading our writer's requests).
#[derive(Debug)]
pub struct SourceWire {
    tcp: TcpStream,
    lock: Mutex<()>,
}

impl SourceWire {
    /// Wraps a connected socket.
    pub fn new(tcp: TcpStream) -> SourceWire {
        SourceWire {
            tcp,
            lock: Mutex::new(()),
        }
    }

    /// The socket (to clone for the reader, or to shut down).
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Writes all of `batch` (blocking), between the reader's writes. A write that fails
    /// part-way shuts the sending side: what the reader writes next would be read as the rest
    /// of the cut request.
    pub fn write_all(&self, batch: &[u8]) -> io::Result<()> {
        let _turn = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        let r = (&self.tcp).write_all(batch);
        if r.is_err() {
            let _ = self.tcp.shutdown(Shutdown::Write);
        }
        r
    }

    /// Writes what the socket takes now of `bytes` without blocking; the caller holds the lock.
    fn send_now(&self, bytes: &[u8]) -> io::Result<usize> {
        // SAFETY: the pointer and length come from a live slice; the descriptor is owned by
        // `self.tcp`, open for the duration of the call.
        let n = unsafe {
            libc::send(
                self.tcp.as_raw_fd(),
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
            _ => Err(e),
        }
    }
}

/// What a source connection's reader shares with the run.
#[derive(Debug, Default)]
pub struct SourceProgress {
    /// Final responses to the requests the writers sent (the drain waits for all of them).
    pub finals: AtomicU64,
    /// SUBSCRIBE dialogs formed and not closed, plus one per connection while answers or
    /// unsubscribes wait to be written (the drain waits for all of it).
    pub dialogs_open: AtomicI64,
}

/// How long a read waits while answers wait for the socket (the writer holds it): short, so
/// they go out soon after it lets go.
const OWED_POLL: Duration = Duration::from_millis(1);
/// How long a read waits otherwise (the stop flag is checked in between).
const IDLE_POLL: Duration = Duration::from_millis(100);

/// Reads the router's responses and requests on one source connection until `stop` (or the
/// router closes): counts them; completes each non-2xx final response in `corr` as refused by
/// its status (its recorder holds those refusals); answers the router's NOTIFYs and ends each
/// SUBSCRIBE dialog ([`SubscribeUac`]), writing on `wire` between the writer's batches.
pub fn read_responses(
    wire: &SourceWire,
    templates: &SourceTemplates,
    corr: &Correlator,
    progress: &SourceProgress,
    stop: &AtomicBool,
) -> (Recorder, SourceCounts) {
    let mut rec = Recorder::new();
    let mut counts = SourceCounts::default();
    let Ok(mut tcp) = wire.tcp().try_clone() else {
        counts.closed_early += 1;
        return (rec, counts);
    };
    let mut poll = IDLE_POLL;
    let _ = tcp.set_read_timeout(Some(poll));
    let mut scanner = ResponseScanner;
    let mut uac = SubscribeUac::default();
    let mut buf = vec![0u8; READ_BYTES * 2];
    let mut have = 0;
    // Answers and unsubscribes not yet written, and how much of them is.
    let mut owed: Vec<u8> = Vec::new();
    let mut owed_done = 0;
    let mut turn: Option<MutexGuard<'_, ()>> = None;
    // Open work published for the drain: open dialogs, and owed bytes as one more.
    let mut open = 0i64;
    let publish = |open: &mut i64, now: i64| {
        if now != *open {
            progress
                .dialogs_open
                .fetch_add(now - *open, Ordering::AcqRel);
            *open = now;
        }
    };
    loop {
        if owed_done < owed.len() {
            if turn.is_none() {
                turn = wire.lock.try_lock().ok();
            }
            if turn.is_some() {
                match wire.send_now(&owed[owed_done..]) {
                    Ok(n) => owed_done += n,
                    Err(_) => {
                        counts.closed_early += u64::from(!stop.load(Ordering::Acquire));
                        break;
                    }
                }
            }
            if owed_done == owed.len() {
                // All out: the writer may go on.
                turn = None;
                owed.clear();
                owed_done = 0;
            }
        }
        publish(&mut open, uac.open() as i64 + i64::from(!owed.is_empty()));
        // Checked after the flush: what was owed when the drain ended goes out first.
        if stop.load(Ordering::Acquire) {
            break;
        }
        let want = if owed.is_empty() {
            IDLE_POLL
        } else {
            OWED_POLL
        };
        if want != poll {
            poll = want;
            let _ = tcp.set_read_timeout(Some(poll));
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
            Scanned::Request(raw) => uac.on_request(raw, &mut owed, &mut counts),
            Scanned::Response { code, .. } if code < 200 => counts.provisional += 1,
            Scanned::Response { seq: None, .. } => counts.foreign += 1,
            Scanned::Response {
                code,
                seq: Some(seq),
                method: CseqMethod::Subscribe(n),
                ..
            } if n > 1 => uac.on_unsubscribe_answer(seq, code, &mut counts),
            Scanned::Response {
                code,
                seq: Some(seq),
                method,
                raw,
            } if code < 300 => {
                counts.ok += 1;
                if method == CseqMethod::Subscribe(1) {
                    uac.on_accepted(seq, raw, templates, &mut owed, &mut counts);
                }
            }
            Scanned::Response {
                code,
                seq: Some(seq),
                ..
            } => {
                counts.refused += 1;
                // The stanza will not come: the request ends here.
                if let Some(c) = corr.complete(seq, at) {
                    rec.record(&c, Outcome::Refused(code));
                }
            }
        });
        // Open work first: the drain reads the finals first, so it never sees the final
        // response of a SUBSCRIBE without the dialog it opened.
        publish(&mut open, uac.open() as i64 + i64::from(!owed.is_empty()));
        progress
            .finals
            .fetch_add(counts.ok + counts.refused - before, Ordering::AcqRel);
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
    if owed_done > 0 && owed_done < owed.len() {
        // Half an answer went out: nothing may follow it on this stream (the writer's next
        // batch would be read as its rest).
        let _ = wire.tcp().shutdown(Shutdown::Write);
    }
    counts.dialogs_left = uac.open() as u64;
    progress.dialogs_open.fetch_sub(open, Ordering::AcqRel);
    (rec, counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stanza_router::sip::message::SipMessage;
    use stanza_router::sip::transaction::response_to;

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

    fn subscribing(t: SourceTemplates, messages: u32) -> SourceTemplates {
        t.with_mix(Some(Mix {
            messages,
            presence: 0,
            subscriptions: 1,
        }))
    }

    #[test]
    fn written_subscribe_names_its_watcher_and_asks_for_presence() {
        let t = subscribing(templates(), 0);
        assert!(t.is_subscribe(123));
        let mut out = Vec::new();
        t.write(123, &mut out);
        let m = SipMessage::parse(out.into()).unwrap();
        m.validate().unwrap();
        assert_eq!(m.method(), Some("SUBSCRIBE"));
        assert_eq!(m.request_uri(), Some("sip:user1@p1.partner.test"));
        assert_eq!(m.from().unwrap().uri, "sip:lgw123@corp.test");
        assert_eq!(m.from().unwrap().tag(), Some("lg2"));
        assert_eq!(m.to().unwrap().uri, "sip:user1@p1.partner.test");
        assert_eq!(m.to().unwrap().tag(), None);
        assert_eq!(m.call_id().unwrap(), "lg-123");
        assert_eq!(m.cseq().unwrap().seq, 1);
        assert_eq!(m.event().unwrap().token, "presence");
        assert_eq!(m.expires().unwrap(), SUBSCRIBE_EXPIRES);
        let contact = m.contacts().next().unwrap().unwrap();
        assert_eq!(contact.uri, "sip:lg2@127.0.0.1:40000;transport=tcp");
        assert_eq!(m.top_via_branch(), Some("z9hG4bKlg123"));
    }

    #[test]
    fn mix_sends_subscribes_in_its_share_and_messages_otherwise() {
        let t = subscribing(templates(), 3);
        let subs = (0..4000).filter(|s| t.is_subscribe(*s)).count();
        assert!(
            (800..1200).contains(&subs),
            "{subs} of 4000, expected ≈ 1000"
        );
        assert!(!templates().is_subscribe(1), "no mix: MESSAGEs only");
        let mut out = Vec::new();
        let msg = (0..).find(|s| !t.is_subscribe(*s)).unwrap();
        t.write(msg, &mut out);
        assert!(out.starts_with(b"MESSAGE "));
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
                assert!(matches!(s, Scanned::Request(_)), "{s:?}");
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
        let used = ResponseScanner
            .process(&input, |s| match s {
                Scanned::Response {
                    code, seq, method, ..
                } => seen.push((code, seq, method)),
                Scanned::Request(_) => panic!("no request here"),
            })
            .unwrap();
        assert_eq!(used, input.len() - 20);
        let m = CseqMethod::Message;
        assert_eq!(
            seen,
            [(200, Some(5), m), (404, Some(77), m), (100, None, m)]
        );
        assert_eq!(cseq_method(b"2 SUBSCRIBE"), CseqMethod::Subscribe(2));
        assert_eq!(cseq_method(b"1  NOTIFY"), CseqMethod::Other);
        assert_eq!(cseq_method(b"SUBSCRIBE"), CseqMethod::Other);
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
        let wire = SourceWire::new(TcpStream::connect(addr).unwrap());
        let stop = AtomicBool::new(false);
        let progress = SourceProgress::default();
        let (rec, counts) = read_responses(&wire, &templates(), &corr, &progress, &stop);
        assert_eq!(progress.finals.load(Ordering::Relaxed), 2);
        server.join().unwrap();
        assert_eq!((counts.ok, counts.refused, counts.closed_early), (1, 1, 1));
        assert_eq!(rec.refused.get(&480), Some(&1));
        assert_eq!(corr.pending(), 1, "the 200 leaves request 1 to its stanza");
    }

    /// Reads one SIP message from `s` (header section and Content-Length body).
    fn read_message(s: &mut TcpStream, buf: &mut Vec<u8>) -> SipMessage {
        loop {
            if let Ok(Some(h)) = head_len(buf) {
                let m = SipMessage::parse(buf[..h].to_vec().into()).unwrap();
                let total = h + m.content_length().unwrap();
                if buf.len() >= total {
                    let m = SipMessage::parse(buf[..total].to_vec().into()).unwrap();
                    buf.drain(..total);
                    return m;
                }
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).unwrap();
            assert!(n > 0, "closed while a message was due");
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// A stand-in notifier on a socket (the reader's I/O under test; the real router is in
    /// `tests/outbound.rs`): the reader answers NOTIFYs and ends the dialog it formed.
    #[test]
    fn reader_answers_notifies_and_ends_the_dialog_on_the_shared_socket() {
        use std::io::Write;
        let corr = Correlator::new(Instant::now(), 16, 1);
        assert!(corr.register(4, 0, 0, 0, true, crate::correlator::Kind::Message));
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut buf = Vec::new();
            let notify = |state: &str, n: u32| {
                format!(
                    "NOTIFY sip:lg2@127.0.0.1:40000 SIP/2.0\r\n\
                     Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKn{n}\r\nMax-Forwards: 70\r\n\
                     From: <sip:user0@p0.partner.test>;tag=gt\r\nTo: <sip:lgw4@corp.test>;tag=lg2\r\n\
                     Call-ID: lg-4\r\nCSeq: {n} NOTIFY\r\nEvent: presence\r\n\
                     Subscription-State: {state}\r\nContent-Length: 0\r\n\r\n"
                )
            };
            let ok = "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1:40000;branch=z9hG4bKlg4\r\n\
                      From: <sip:lgw4@corp.test>;tag=lg2\r\nTo: <sip:user0@p0.partner.test>;tag=gt\r\n\
                      Call-ID: lg-4\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:gw@127.0.0.1:5060>\r\n\
                      Expires: 600\r\nContent-Length: 0\r\n\r\n";
            s.write_all(format!("{ok}{}", notify("pending;expires=600", 1)).as_bytes())
                .unwrap();
            // The unsubscribe and the NOTIFY's 200, in either order.
            let (mut unsub, mut answered) = (None, false);
            while unsub.is_none() || !answered {
                let m = read_message(&mut s, &mut buf);
                match m.method() {
                    Some("SUBSCRIBE") => unsub = Some(m),
                    None => {
                        assert_eq!(m.status(), Some(200));
                        answered = true;
                    }
                    other => panic!("{other:?}"),
                }
            }
            let unsub = unsub.unwrap();
            assert_eq!(unsub.expires().unwrap(), 0);
            assert_eq!(unsub.request_uri(), Some("sip:gw@127.0.0.1:5060"));
            let unsub_ok = response_to(&unsub, 200, "OK", None)
                .unwrap()
                .finish()
                .unwrap();
            s.write_all(&unsub_ok).unwrap();
            s.write_all(notify("terminated", 2).as_bytes()).unwrap();
            let last = read_message(&mut s, &mut buf);
            assert_eq!((last.status(), last.cseq().unwrap().seq), (Some(200), 2));
        });
        let wire = SourceWire::new(TcpStream::connect(addr).unwrap());
        let stop = AtomicBool::new(false);
        let progress = SourceProgress::default();
        let t = subscribing(templates(), 0);
        let (_, counts) = read_responses(&wire, &t, &corr, &progress, &stop);
        server.join().unwrap();
        assert_eq!(
            (
                counts.ok,
                counts.subscribed,
                counts.unsubscribes,
                counts.unsubscribed
            ),
            (1, 1, 1, 1)
        );
        assert_eq!((counts.notifies, counts.notifies_terminated), (2, 1));
        assert_eq!((counts.dialog_errors, counts.dialogs_left), (0, 0));
        assert_eq!(progress.dialogs_open.load(Ordering::Relaxed), 0);
        assert_eq!(corr.pending(), 1, "completed at the partner, not here");
    }
}
