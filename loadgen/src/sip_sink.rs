//! The SIP sink: the internal SIP pool the router's `[sip] next_hop` points to. It answers every
//! MESSAGE (200, or a chosen error for a chosen share), SUBSCRIBE (200 then a NOTIFY, off the
//! hot path: [`crate::notifier`]), OPTIONS and other requests, and
//! completes each delivered message in the [`Correlator`] from the `seq=` in its body.
//!
//! It must out-run the router, so the hot path is a minimal byte scan rather than the full
//! parser: the header section is found with `memchr`, only the lines a response copies (Via,
//! From, To, Call-ID, CSeq) and Content-Length are looked at, and all the answers to one read
//! go out in one write. [`SinkConn`] is sans-IO; [`serve`] is the blocking thread per
//! connection (the router opens one TCP flow per shard).

use std::fmt;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::correlator::{seq_from_body_bytes, Correlator, Recorder};

/// Largest header section accepted (the router's are well under 1 KiB).
pub const MAX_HEAD: usize = 64 * 1024;
/// Largest body accepted.
pub const MAX_BODY: usize = 1024 * 1024;
/// Socket read size.
const READ_BYTES: usize = 256 * 1024;

/// Error answers for a share of the MESSAGEs (`--sip-errors CODE:SHARE`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SipErrors {
    /// Final status, 300..=699.
    pub code: u16,
    /// Share of MESSAGEs answered with it, 0..=1.
    pub share: f64,
}

impl std::str::FromStr for SipErrors {
    type Err = String;

    /// `486:2%` or `486:0.02`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (code, share) = s
            .split_once(':')
            .ok_or_else(|| format!("{s:?}: expected CODE:SHARE, e.g. 486:2%"))?;
        let code: u16 = code
            .trim()
            .parse()
            .ok()
            .filter(|c| (300..=699).contains(c))
            .ok_or_else(|| format!("{s:?}: the code must be a SIP final error status 300..699"))?;
        let share = share.trim();
        let share = match share.strip_suffix('%') {
            Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
            None => share.parse::<f64>(),
        }
        .ok()
        .filter(|x| x.is_finite() && (0.0..=1.0).contains(x))
        .ok_or_else(|| format!("{s:?}: the share must be 0..100% or 0..1"))?;
        Ok(SipErrors { code, share })
    }
}

/// Why a connection's input could not be framed (the router is at fault; the connection closes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkError {
    /// A header section over [`MAX_HEAD`].
    HeadTooLarge,
    /// No, a malformed or an oversized Content-Length.
    BadContentLength,
    /// The start line is not a SIP request or response line.
    BadStartLine,
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SinkError::HeadTooLarge => "router sent a SIP header section over 64 KiB",
            SinkError::BadContentLength => {
                "router sent a SIP message without a valid Content-Length"
            }
            SinkError::BadStartLine => "router sent something that is not a SIP start line",
        })
    }
}

impl std::error::Error for SinkError {}

/// What one connection saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SinkCounts {
    /// MESSAGE requests.
    pub messages: u64,
    /// Of those, answered with the error code.
    pub errors_sent: u64,
    /// Of the 2xx-answered ones, without a `seq=` in the body.
    pub no_seq: u64,
    /// OPTIONS requests.
    pub options: u64,
    /// SUBSCRIBE requests answered 200 + NOTIFY (see [`crate::notifier`]).
    pub subscribes: u64,
    /// Other requests (answered 200, ACK not answered).
    pub other: u64,
    /// Responses (ignored: the sink sends no requests).
    pub responses: u64,
    /// RFC 5626 CRLF keepalive pings answered.
    pub pings: u64,
}

impl SinkCounts {
    fn add(&mut self, o: &SinkCounts) {
        self.messages += o.messages;
        self.errors_sent += o.errors_sent;
        self.no_seq += o.no_seq;
        self.options += o.options;
        self.subscribes += o.subscribes;
        self.other += o.other;
        self.responses += o.responses;
        self.pings += o.pings;
    }
}

/// One connection's answering state (sans-IO).
#[derive(Debug)]
pub struct SinkConn {
    errors: Option<SipErrors>,
    /// MESSAGEs seen by the whole sink, for the error share (exact over all connections).
    n: Arc<AtomicU64>,
    tag: u64,
    /// `host:port` of the sink (Via and Contact of NOTIFYs).
    local: String,
    /// What this connection saw.
    pub counts: SinkCounts,
}

/// The reason phrase for a status.
pub(crate) fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        486 => "Busy Here",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Error",
    }
}

/// The header a line names, among those the sink looks at (full and compact forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hdr {
    Via,
    From,
    To,
    CallId,
    CSeq,
    ContentLength,
    Other,
}

pub(crate) fn header_of(name: &[u8]) -> Hdr {
    let eq = |s: &[u8]| name.eq_ignore_ascii_case(s);
    match name.len() {
        1 => match name[0].to_ascii_lowercase() {
            b'v' => Hdr::Via,
            b'f' => Hdr::From,
            b't' => Hdr::To,
            b'i' => Hdr::CallId,
            b'l' => Hdr::ContentLength,
            _ => Hdr::Other,
        },
        2 if eq(b"to") => Hdr::To,
        3 if eq(b"via") => Hdr::Via,
        4 if eq(b"from") => Hdr::From,
        4 if eq(b"cseq") => Hdr::CSeq,
        7 if eq(b"call-id") => Hdr::CallId,
        14 if eq(b"content-length") => Hdr::ContentLength,
        _ => Hdr::Other,
    }
}

pub(crate) fn trim(mut b: &[u8]) -> &[u8] {
    while let [x, rest @ ..] = b {
        if x.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., x] = b {
        if x.is_ascii_whitespace() {
            b = rest;
        } else {
            break;
        }
    }
    b
}

pub(crate) fn parse_len(v: &[u8]) -> Option<usize> {
    let v = trim(v);
    if v.is_empty() || v.len() > 9 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(v.iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0')))
}

/// Whether a To value carries a `tag` parameter (outside the `<…>` of the address).
fn has_tag(to: &[u8]) -> bool {
    let params = match memchr::memrchr(b'>', to) {
        Some(gt) => &to[gt..],
        None => to,
    };
    params
        .windows(5)
        .any(|w| w[0] == b';' && w[1..].eq_ignore_ascii_case(b"tag="))
}

impl SinkConn {
    /// A connection answering MESSAGEs 200, or `errors.code` for `errors.share` of them.
    pub fn new(errors: Option<SipErrors>) -> SinkConn {
        SinkConn::sharing(errors, Arc::new(AtomicU64::new(0)))
    }

    /// As [`SinkConn::new`], the error share counted over every connection sharing `n`.
    pub fn sharing(errors: Option<SipErrors>, n: Arc<AtomicU64>) -> SinkConn {
        SinkConn {
            errors,
            n,
            tag: 0,
            local: "127.0.0.1".into(),
            counts: SinkCounts::default(),
        }
    }

    /// The sink's own address, for the NOTIFYs that follow SUBSCRIBEs.
    pub fn with_local(mut self, local: String) -> SinkConn {
        self.local = local;
        self
    }

    /// Whether the next MESSAGE gets the error code: spread evenly, `share` of them.
    fn next_is_error(&mut self) -> bool {
        match self.errors {
            Some(e) if e.share > 0.0 => {
                let n = self.n.fetch_add(1, Ordering::Relaxed) + 1;
                let before = ((n - 1) as f64 * e.share).floor();
                let after = (n as f64 * e.share).floor();
                after > before
            }
            _ => false,
        }
    }

    /// Handles every complete item at the start of `buf`, appending the answers to `out` and
    /// calling `delivered(seq)` for each MESSAGE answered 2xx. Returns the bytes consumed
    /// (the rest is an incomplete message: feed it again with more bytes).
    pub fn process(
        &mut self,
        buf: &[u8],
        out: &mut Vec<u8>,
        mut delivered: impl FnMut(u64),
    ) -> Result<usize, SinkError> {
        let mut at = 0;
        loop {
            let rest = &buf[at..];
            // RFC 5626 keepalives between messages: a double CRLF gets a single CRLF.
            if rest.starts_with(b"\r\n\r\n") {
                self.counts.pings += 1;
                out.extend_from_slice(b"\r\n");
                at += 4;
                continue;
            }
            if rest.starts_with(b"\r\n") && rest.len() > 2 && rest[2] != b'\r' {
                at += 2;
                continue;
            }
            if rest.first() == Some(&b'\r') {
                return Ok(at);
            }
            let Some(head_len) = head_len(rest)? else {
                return Ok(at);
            };
            let n = self.message(rest, head_len, out, &mut delivered)?;
            match n {
                Some(n) => at += n,
                None => return Ok(at),
            }
        }
    }

    /// One message whose header section is `m[..head_len]`: its total length, or `None` when
    /// the body is not all there yet.
    fn message(
        &mut self,
        m: &[u8],
        head_len: usize,
        out: &mut Vec<u8>,
        delivered: &mut impl FnMut(u64),
    ) -> Result<Option<usize>, SinkError> {
        let head = &m[..head_len - 2];
        let first_end = find_crlf(head).ok_or(SinkError::BadStartLine)?;
        let start = &head[..first_end];
        let is_response = start.starts_with(b"SIP/2.0 ");
        let method = if is_response {
            &b""[..]
        } else {
            let sp = memchr::memchr(b' ', start).ok_or(SinkError::BadStartLine)?;
            if !start.ends_with(b" SIP/2.0") || sp == 0 {
                return Err(SinkError::BadStartLine);
            }
            &start[..sp]
        };
        // Header lines; folded continuation lines (leading space) belong to the previous one.
        let mut content_length = None;
        let mut copy: [(usize, usize, Hdr); 16] = [(0, 0, Hdr::Other); 16];
        let mut ncopy = 0;
        let mut pos = first_end + 2;
        while pos < head.len() {
            let nl = find_crlf(&head[pos..]).map_or(head.len(), |p| pos + p);
            let line = &head[pos..nl];
            if let Some(colon) = memchr::memchr(b':', line) {
                if !line.starts_with(b" ") && !line.starts_with(b"\t") {
                    let h = header_of(trim(&line[..colon]));
                    match h {
                        Hdr::ContentLength => {
                            if content_length.is_some() {
                                return Err(SinkError::BadContentLength);
                            }
                            content_length = Some(
                                parse_len(&line[colon + 1..]).ok_or(SinkError::BadContentLength)?,
                            );
                        }
                        Hdr::Other => {}
                        _ if ncopy < copy.len() => {
                            copy[ncopy] = (pos + colon + 1, nl, h);
                            ncopy += 1;
                        }
                        _ => {}
                    }
                }
            }
            pos = nl + 2;
        }
        let cl = content_length.ok_or(SinkError::BadContentLength)?;
        if cl > MAX_BODY {
            return Err(SinkError::BadContentLength);
        }
        let total = head_len + cl;
        if m.len() < total {
            return Ok(None);
        }
        if is_response {
            self.counts.responses += 1;
            return Ok(Some(total));
        }
        let code = match method {
            b"MESSAGE" => {
                self.counts.messages += 1;
                if self.next_is_error() {
                    self.counts.errors_sent += 1;
                    self.errors.map_or(200, |e| e.code)
                } else {
                    match seq_from_body_bytes(&m[head_len..total]) {
                        Some(seq) => delivered(seq),
                        None => self.counts.no_seq += 1,
                    }
                    200
                }
            }
            b"OPTIONS" => {
                self.counts.options += 1;
                200
            }
            b"SUBSCRIBE" => {
                self.tag += 1;
                if let Some((ok, notify)) =
                    crate::notifier::answer_subscribe(&m[..total], &self.local, self.tag)
                {
                    self.counts.subscribes += 1;
                    out.extend_from_slice(&ok);
                    out.extend_from_slice(&notify);
                    return Ok(Some(total));
                }
                self.counts.other += 1;
                400
            }
            b"ACK" => {
                self.counts.other += 1;
                return Ok(Some(total));
            }
            _ => {
                self.counts.other += 1;
                200
            }
        };
        self.respond(code, head, &copy[..ncopy], out);
        Ok(Some(total))
    }

    fn respond(&mut self, code: u16, head: &[u8], copy: &[(usize, usize, Hdr)], out: &mut Vec<u8>) {
        out.extend_from_slice(b"SIP/2.0 ");
        push_num(out, u64::from(code));
        out.push(b' ');
        out.extend_from_slice(reason(code).as_bytes());
        out.extend_from_slice(b"\r\n");
        for &(from, to, h) in copy {
            let name: &[u8] = match h {
                Hdr::Via => b"Via:",
                Hdr::From => b"From:",
                Hdr::To => b"To:",
                Hdr::CallId => b"Call-ID:",
                Hdr::CSeq => b"CSeq:",
                Hdr::ContentLength | Hdr::Other => continue,
            };
            out.extend_from_slice(name);
            out.extend_from_slice(&head[from..to]);
            if h == Hdr::To && !has_tag(&head[from..to]) {
                self.tag += 1;
                out.extend_from_slice(b";tag=sink");
                push_num(out, self.tag);
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    }
}

/// The blank line ending a header section; the searcher is built once (per call it cost more
/// than the search).
static HEAD_END: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));

/// Length of the header section at the start of `rest` (through the blank line); `None` while
/// it is incomplete. Over [`MAX_HEAD`] either way is an error.
pub(crate) fn head_len(rest: &[u8]) -> Result<Option<usize>, SinkError> {
    match HEAD_END.find(rest) {
        Some(end) if end + 4 <= MAX_HEAD => Ok(Some(end + 4)),
        None if rest.len() <= MAX_HEAD => Ok(None),
        _ => Err(SinkError::HeadTooLarge),
    }
}

/// The first CRLF in `b`.
pub(crate) fn find_crlf(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let lf = from + memchr::memchr(b'\n', b.get(from..)?)?;
        if lf > 0 && b[lf - 1] == b'\r' {
            return Some(lf - 1);
        }
        from = lf + 1;
    }
}

/// Appends `n` in decimal.
pub(crate) fn push_num(out: &mut Vec<u8>, mut n: u64) {
    let mut d = [0u8; 20];
    let mut i = d.len();
    loop {
        i -= 1;
        d[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&d[i..]);
}

/// What the sink saw over all its connections.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SinkTotals {
    /// Connections accepted.
    pub connections: u64,
    /// Connections closed on unframeable input.
    pub framing_errors: u64,
    /// Summed per-connection counts.
    pub counts: SinkCounts,
}

/// A running sink: acceptor thread plus one thread per connection.
pub struct SipSink {
    acceptor: JoinHandle<(Vec<Recorder>, SinkTotals)>,
}

impl SipSink {
    /// Serves `listener` (and `accepted`, connections taken from it already) until `stop`;
    /// deliveries complete in `corr`.
    pub fn start(
        listener: TcpListener,
        accepted: Vec<TcpStream>,
        errors: Option<SipErrors>,
        corr: Arc<Correlator>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<SipSink> {
        listener.set_nonblocking(true)?;
        let acceptor = thread::Builder::new()
            .name("sip-sink".into())
            .spawn(move || accept_loop(&listener, accepted, errors, &corr, &stop))?;
        Ok(SipSink { acceptor })
    }

    /// Waits for every thread (after `stop` was set): their recorders and the totals.
    pub fn join(self) -> (Vec<Recorder>, SinkTotals) {
        self.acceptor.join().unwrap_or_default()
    }
}

/// Waits up to `within` for a connection on `l` (the router's SIP flow) and takes it; `None`
/// when none came.
pub fn await_connection(l: &TcpListener, within: Duration) -> io::Result<Option<TcpStream>> {
    l.set_nonblocking(true)?;
    let deadline = Instant::now() + within;
    loop {
        match l.accept() {
            Ok((tcp, _)) => return Ok(Some(tcp)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        match crate::s2s::readable_within(l.as_raw_fd(), left) {
            Err(e) if e.kind() != io::ErrorKind::Interrupted => return Err(e),
            _ => {}
        }
    }
}

fn accept_loop(
    l: &TcpListener,
    accepted: Vec<TcpStream>,
    errors: Option<SipErrors>,
    corr: &Arc<Correlator>,
    stop: &Arc<AtomicBool>,
) -> (Vec<Recorder>, SinkTotals) {
    let mut conns: Vec<JoinHandle<(Recorder, SinkCounts, bool)>> = Vec::new();
    let mut totals = SinkTotals::default();
    let framing = Arc::new(AtomicU64::new(0));
    let messages = Arc::new(AtomicU64::new(0));
    let mut accepted = accepted.into_iter();
    while !stop.load(Ordering::Acquire) {
        match accepted
            .next()
            .map_or_else(|| l.accept().map(|(t, _)| t), Ok)
        {
            Ok(tcp) => {
                totals.connections += 1;
                let (corr, stop) = (corr.clone(), stop.clone());
                let local = tcp
                    .local_addr()
                    .map_or_else(|_| "127.0.0.1".to_string(), |a| a.to_string());
                let conn = SinkConn::sharing(errors, messages.clone()).with_local(local);
                let h = thread::Builder::new()
                    .name(format!("sip-sink-{}", totals.connections))
                    .spawn(move || serve(tcp, conn, &corr, &stop));
                if let Ok(h) = h {
                    conns.push(h);
                }
            }
            // Polled so that `stop` is seen; 1 ms keeps the router's first flow waiting little.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(1));
            }
            Err(_) => thread::sleep(Duration::from_millis(10)),
        }
    }
    let mut recs = Vec::new();
    for h in conns {
        if let Ok((rec, counts, framing_error)) = h.join() {
            recs.push(rec);
            totals.counts.add(&counts);
            if framing_error {
                framing.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    totals.framing_errors = framing.load(Ordering::Relaxed);
    (recs, totals)
}

/// Serves one connection until `stop`, end of stream or unframeable input: its recorder, its
/// counts and whether it ended on a framing error.
pub fn serve(
    mut tcp: TcpStream,
    mut conn: SinkConn,
    corr: &Correlator,
    stop: &AtomicBool,
) -> (Recorder, SinkCounts, bool) {
    let mut rec = Recorder::new();
    let _ = tcp.set_nonblocking(false);
    let _ = tcp.set_nodelay(true);
    let _ = tcp.set_read_timeout(Some(Duration::from_millis(100)));
    let _ = tcp.set_write_timeout(Some(crate::s2s::WRITE_STALL));
    // Without timestamps a delivery ends when this thread reads it (see `rx_stamp`).
    let _ = crate::rx_stamp::enable(&tcp);
    let mut buf = vec![0u8; READ_BYTES * 2];
    let mut have = 0;
    let mut out = Vec::with_capacity(64 * 1024);
    let mut framing_error = false;
    while !stop.load(Ordering::Acquire) {
        if have == buf.len() {
            // One message larger than the buffer: grow up to the caps.
            if buf.len() >= MAX_HEAD + MAX_BODY + READ_BYTES {
                framing_error = true;
                break;
            }
            buf.resize(buf.len() * 2, 0);
        }
        let (n, at) = match crate::rx_stamp::read(&tcp, &mut buf[have..]) {
            Ok(r) if r.n == 0 => break,
            Ok(r) => (r.n, r.at),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        have += n;
        let used = match conn.process(&buf[..have], &mut out, |seq| {
            corr.delivered(seq, at, &mut rec)
        }) {
            Ok(u) => u,
            Err(_) => {
                framing_error = true;
                break;
            }
        };
        buf.copy_within(used..have, 0);
        have -= used;
        if !out.is_empty() {
            if tcp.write_all(&out).is_err() {
                break;
            }
            out.clear();
        }
    }
    let _ = tcp.shutdown(std::net::Shutdown::Both);
    (rec, conn.counts, framing_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(seq: u64, to_tag: bool) -> Vec<u8> {
        let body = format!("seq={seq} xxxxxxxxxx");
        let to = if to_tag {
            "<sip:user1@corp.test>;tag=abc"
        } else {
            "<sip:user1@corp.test>"
        };
        format!(
            "MESSAGE sip:user1@corp.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK{seq}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:lg0@p0.partner.test>;tag=f{seq}\r\nTo: {to}\r\n\
             Call-ID: c{seq}\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn await_connection_takes_the_waiting_connection() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let got = await_connection(&l, Duration::from_secs(10)).unwrap();
        let got = got.expect("the waiting connection");
        assert_eq!(got.peer_addr().unwrap(), c.local_addr().unwrap());
    }

    #[test]
    fn await_connection_gives_up_when_none_comes() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(await_connection(&l, Duration::from_millis(20))
            .unwrap()
            .is_none());
    }

    #[test]
    fn answers_each_message_200_and_reports_its_sequence() {
        let mut c = SinkConn::new(None);
        let mut input = msg(7, false);
        input.extend(msg(8, true));
        let mut out = Vec::new();
        let mut seen = Vec::new();
        let used = c.process(&input, &mut out, |s| seen.push(s)).unwrap();
        assert_eq!(used, input.len());
        assert_eq!(seen, [7, 8]);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("SIP/2.0 200 OK\r\n").count(), 2);
        assert!(text.contains("To: <sip:user1@corp.test>;tag=sink1\r\n"));
        assert!(text.contains("To: <sip:user1@corp.test>;tag=abc\r\n"));
        assert!(text.contains("Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK7\r\n"));
        assert!(text.contains("Call-ID: c8\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n"));
    }

    #[test]
    fn responses_parse_with_the_project_parser() {
        let mut c = SinkConn::new(None);
        let mut out = Vec::new();
        c.process(&msg(1, false), &mut out, |_| {}).unwrap();
        let r = stanza_router::sip::message::SipMessage::parse(out.into()).unwrap();
        r.validate().unwrap();
        assert_eq!(r.status(), Some(200));
        assert_eq!(r.call_id().unwrap(), "c1");
        assert!(r.to().unwrap().tag().is_some());
    }

    #[test]
    fn waits_for_the_rest_of_a_split_message() {
        let mut c = SinkConn::new(None);
        let m = msg(3, false);
        let mut out = Vec::new();
        let mut seen = Vec::new();
        for cut in [10, m.len() - 5] {
            assert_eq!(c.process(&m[..cut], &mut out, |s| seen.push(s)).unwrap(), 0);
        }
        assert!(out.is_empty() && seen.is_empty());
        assert_eq!(c.process(&m, &mut out, |s| seen.push(s)).unwrap(), m.len());
        assert_eq!(seen, [3]);
    }

    #[test]
    fn error_share_is_spread_and_not_counted_as_delivered() {
        let e: SipErrors = "486:25%".parse().unwrap();
        assert_eq!(
            e,
            SipErrors {
                code: 486,
                share: 0.25
            }
        );
        let mut c = SinkConn::new(Some(e));
        let mut out = Vec::new();
        let mut seen = 0;
        for s in 0..100 {
            c.process(&msg(s, false), &mut out, |_| seen += 1).unwrap();
        }
        assert_eq!(c.counts.errors_sent, 25);
        assert_eq!(seen, 75);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("SIP/2.0 486 Busy Here").count(), 25);
    }

    #[test]
    fn keepalives_options_and_responses() {
        let mut c = SinkConn::new(None);
        let opts = b"OPTIONS sip:pool SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKo\r\nFrom: <sip:r>;tag=1\r\n\
                     To: <sip:pool>\r\nCall-ID: o\r\nCSeq: 2 OPTIONS\r\nl: 0\r\n\r\n";
        let resp = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        let mut input = b"\r\n\r\n".to_vec();
        input.extend_from_slice(opts);
        input.extend_from_slice(resp);
        let mut out = Vec::new();
        assert_eq!(c.process(&input, &mut out, |_| {}).unwrap(), input.len());
        assert!(out.starts_with(b"\r\nSIP/2.0 200 OK\r\n"));
        assert_eq!(
            (c.counts.pings, c.counts.options, c.counts.responses),
            (1, 1, 1)
        );
    }

    #[test]
    fn rejects_unframeable_input() {
        let mut c = SinkConn::new(None);
        let mut out = Vec::new();
        let no_len = b"MESSAGE sip:a SIP/2.0\r\nVia: x\r\n\r\n";
        assert_eq!(
            c.process(no_len, &mut out, |_| {}),
            Err(SinkError::BadContentLength)
        );
        assert_eq!(
            c.process(b"hello world\r\n\r\n", &mut out, |_| {}),
            Err(SinkError::BadStartLine)
        );
        let huge = vec![b'a'; MAX_HEAD + 10];
        assert_eq!(
            c.process(&huge, &mut out, |_| {}),
            Err(SinkError::HeadTooLarge)
        );
        assert!("486".parse::<SipErrors>().is_err());
        assert!("200:5%".parse::<SipErrors>().is_err());
        assert!("486:150%".parse::<SipErrors>().is_err());
    }
}
