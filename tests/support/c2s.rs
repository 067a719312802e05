//! A minimal blocking XMPP client for tests: plain TCP to an IP:port (no TLS, no DNS),
//! SASL PLAIN, resource binding, initial presence; send raw XML, receive top-level elements.
//!
//! Every wait has a deadline. Elements that arrive while waiting for something else are kept
//! and offered to later waits, so a message arriving during a ping is not lost.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fmt;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Default bound on each client operation.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Largest element (or stream header) the client buffers.
const MAX_ELEMENT: usize = 1 << 20;

/// What went wrong on the client side.
#[derive(Debug)]
pub enum ClientError {
    /// Socket error.
    Io(std::io::Error),
    /// Deadline passed while waiting for `what`.
    Timeout(String),
    /// The server closed the stream or the connection (with its stream error, if any).
    Closed(String),
    /// Unparseable or oversized XML from the server.
    Xml(String),
    /// SASL or bind refused.
    Auth(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "client socket: {e}"),
            ClientError::Timeout(what) => write!(f, "client timed out waiting for {what}"),
            ClientError::Closed(why) => write!(f, "server closed the stream: {why}"),
            ClientError::Xml(why) => write!(f, "bad XML from server: {why}"),
            ClientError::Auth(why) => write!(f, "login refused: {why}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// One complete top-level element received, with its root name and attributes parsed.
#[derive(Clone, Debug)]
pub struct Stanza {
    /// The element's serialized XML, as received.
    pub xml: String,
    name: String,
    attrs: Vec<(String, String)>,
}

impl Stanza {
    fn parse(xml: String) -> Result<Stanza, ClientError> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(&xml);
        loop {
            match reader.read_event() {
                Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                    let mut attrs = Vec::new();
                    for a in e.attributes() {
                        let a = a.map_err(|e| ClientError::Xml(e.to_string()))?;
                        let k = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                        let v = a
                            .unescape_value()
                            .map_err(|e| ClientError::Xml(e.to_string()))?
                            .into_owned();
                        attrs.push((k, v));
                    }
                    return Ok(Stanza { xml, name, attrs });
                }
                Ok(Event::Eof) => return Err(ClientError::Xml(format!("no element in {xml:?}"))),
                Ok(_) => {}
                Err(e) => return Err(ClientError::Xml(e.to_string())),
            }
        }
    }

    /// Qualified root name as written (`message`, `iq`, `stream:features`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Root attribute value (unescaped).
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether some descendant element has local name `local`.
    pub fn has_child(&self, local: &str) -> bool {
        self.find_child(local).is_some()
    }

    /// Text of the first descendant element with local name `local` (e.g. `body`, `jid`).
    pub fn child_text(&self, local: &str) -> Option<String> {
        self.find_child(local).map(|(_, text)| text)
    }

    /// Namespace-free search: the first descendant named `local` (any prefix), its text.
    fn find_child(&self, local: &str) -> Option<((), String)> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(&self.xml);
        let mut depth = 0usize;
        let mut inside: Option<usize> = None;
        let mut text = String::new();
        loop {
            match reader.read_event() {
                Ok(Event::Start(e)) => {
                    depth += 1;
                    if inside.is_none() && depth > 1 && e.local_name().as_ref() == local.as_bytes()
                    {
                        inside = Some(depth);
                    }
                }
                Ok(Event::Empty(e)) => {
                    if inside.is_none() && depth >= 1 && e.local_name().as_ref() == local.as_bytes()
                    {
                        return Some(((), String::new()));
                    }
                }
                Ok(Event::Text(t)) => {
                    if inside.is_some() {
                        text.push_str(&t.unescape().ok()?);
                    }
                }
                Ok(Event::CData(t)) => {
                    if inside.is_some() {
                        text.push_str(&String::from_utf8_lossy(&t));
                    }
                }
                Ok(Event::End(_)) => {
                    if inside == Some(depth) {
                        return Some(((), text));
                    }
                    depth = depth.saturating_sub(1);
                }
                Ok(Event::Eof) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// An `<iq type='result'>`.
    pub fn is_iq_result(&self) -> bool {
        self.name == "iq" && self.attr("type") == Some("result")
    }

    /// An `<iq type='error'>`.
    pub fn is_iq_error(&self) -> bool {
        self.name == "iq" && self.attr("type") == Some("error")
    }

    /// The `from` attribute without its resource.
    pub fn sender_bare(&self) -> Option<&str> {
        self.attr("from").map(|f| f.split('/').next().unwrap_or(f))
    }
}

/// What the splitter found at the top of the buffer.
#[derive(Debug, PartialEq)]
enum Frame {
    /// `<stream:stream ...>` (its XML).
    Header(String),
    /// A complete depth-1 element.
    Element(String),
    /// `</stream:stream>`.
    End,
}

/// Depth-counting framer: splits a stream into its header, top-level elements and end tag.
/// Not a validating parser: the server is a trusted test peer; elements are parsed afterwards.
#[derive(Default)]
struct Splitter {
    buf: Vec<u8>,
    stream_open: bool,
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// End (index of `>`) of the tag starting at `start`, skipping quoted attribute values.
fn tag_end(buf: &[u8], start: usize) -> Option<usize> {
    let mut quote: Option<u8> = None;
    for (i, &b) in buf.iter().enumerate().skip(start + 1) {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'>' => return Some(i),
            None => {}
        }
    }
    None
}

impl Splitter {
    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Next frame if the buffer holds one complete.
    fn next(&mut self) -> Result<Option<Frame>, ClientError> {
        let buf = &self.buf;
        let mut i = 0usize;
        let mut depth = 0usize;
        let mut start: Option<usize> = None;
        while let Some(lt) = find(buf, i, b"<") {
            let rest = &buf[lt..];
            if rest.len() < 2 {
                break;
            }
            let end = if rest.starts_with(b"<?") {
                match find(buf, lt, b"?>") {
                    Some(e) => e + 1,
                    None => break,
                }
            } else if rest.starts_with(b"<!--") {
                match find(buf, lt, b"-->") {
                    Some(e) => e + 2,
                    None => break,
                }
            } else if rest.starts_with(b"<![CDATA[") {
                match find(buf, lt, b"]]>") {
                    Some(e) => e + 2,
                    None => break,
                }
            } else if rest.len() < 9
                && (b"<![CDATA[".starts_with(rest) || b"<!--".starts_with(rest))
            {
                break;
            } else if rest[1] == b'/' {
                let Some(e) = tag_end(buf, lt) else { break };
                if depth == 0 {
                    self.buf.drain(..=e);
                    self.stream_open = false;
                    return Ok(Some(Frame::End));
                }
                depth -= 1;
                if depth == 0 {
                    let s = start.unwrap_or(lt);
                    return Ok(Some(self.take(s, e)));
                }
                e
            } else {
                let Some(e) = tag_end(buf, lt) else { break };
                let self_closing = e > 0 && buf[e - 1] == b'/';
                if !self.stream_open {
                    let header = String::from_utf8_lossy(&buf[lt..=e]).into_owned();
                    self.buf.drain(..=e);
                    self.stream_open = true;
                    return Ok(Some(Frame::Header(header)));
                }
                if depth == 0 {
                    start = Some(lt);
                }
                if self_closing {
                    if depth == 0 {
                        return Ok(Some(self.take(lt, e)));
                    }
                } else {
                    depth += 1;
                }
                e
            };
            i = end + 1;
        }
        if self.buf.len() > MAX_ELEMENT {
            return Err(ClientError::Xml(format!(
                "more than {MAX_ELEMENT} bytes without a complete element"
            )));
        }
        Ok(None)
    }

    /// Removes `buf[..=end]`, returns `buf[start..=end]` as an element.
    fn take(&mut self, start: usize, end: usize) -> Frame {
        let xml = String::from_utf8_lossy(&self.buf[start..=end]).into_owned();
        self.buf.drain(..=end);
        Frame::Element(xml)
    }
}

/// XML-escapes text or an attribute value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(T[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A logged-in client session.
pub struct C2sClient {
    stream: TcpStream,
    splitter: Splitter,
    pending: VecDeque<Stanza>,
    jid: String,
    domain: String,
    timeout: Duration,
    next_id: u64,
}

impl C2sClient {
    /// Connects to `addr` (an IP literal: no DNS), authenticates `user@domain` with SASL PLAIN,
    /// binds `resource` and sends initial presence (so messages to the bare JID are delivered).
    pub fn login(
        addr: SocketAddr,
        domain: &str,
        user: &str,
        password: &str,
        resource: &str,
    ) -> Result<C2sClient, ClientError> {
        let mut c = C2sClient::login_without_presence(addr, domain, user, password, resource)?;
        c.send("<presence/>")?;
        Ok(c)
    }

    /// Like [`C2sClient::login`] but stays unavailable (no initial presence).
    pub fn login_without_presence(
        addr: SocketAddr,
        domain: &str,
        user: &str,
        password: &str,
        resource: &str,
    ) -> Result<C2sClient, ClientError> {
        let stream = TcpStream::connect_timeout(&addr, DEFAULT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(DEFAULT_TIMEOUT))?;
        let mut c = C2sClient {
            stream,
            splitter: Splitter::default(),
            pending: VecDeque::new(),
            jid: String::new(),
            domain: domain.to_string(),
            timeout: DEFAULT_TIMEOUT,
            next_id: 0,
        };
        let deadline = Instant::now() + c.timeout;
        c.open_stream(deadline)?;
        let features = c.recv_raw(deadline, "stream features")?;
        if !features.xml.contains(">PLAIN<") {
            return Err(ClientError::Auth(format!(
                "PLAIN not offered: {}",
                features.xml
            )));
        }
        let mut creds = Vec::new();
        creds.push(0u8);
        creds.extend_from_slice(user.as_bytes());
        creds.push(0u8);
        creds.extend_from_slice(password.as_bytes());
        c.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{}</auth>",
            base64(&creds)
        ))?;
        let outcome = c.recv_raw(deadline, "SASL outcome")?;
        if outcome.name() != "success" {
            return Err(ClientError::Auth(outcome.xml));
        }
        c.open_stream(deadline)?;
        let _features = c.recv_raw(deadline, "post-auth stream features")?;
        c.send(&format!(
            "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>{}</resource></bind></iq>",
            escape(resource)
        ))?;
        let bound = c.recv_raw(deadline, "bind result")?;
        if !bound.is_iq_result() {
            return Err(ClientError::Auth(format!("bind: {}", bound.xml)));
        }
        c.jid = bound
            .child_text("jid")
            .unwrap_or_else(|| format!("{user}@{domain}/{resource}"));
        Ok(c)
    }

    fn open_stream(&mut self, deadline: Instant) -> Result<(), ClientError> {
        // A restart (after SASL) opens a new stream: the next start tag is its header again.
        self.splitter.stream_open = false;
        self.send(&format!(
            "<?xml version='1.0'?><stream:stream to='{}' version='1.0' xml:lang='en' \
             xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
            escape(&self.domain)
        ))?;
        match self.next_frame(deadline, "stream header")? {
            Frame::Header(_) => Ok(()),
            Frame::End => Err(ClientError::Closed("before stream header".into())),
            Frame::Element(x) => Err(ClientError::Xml(format!("element before header: {x}"))),
        }
    }

    /// The bound full JID.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// Bound used by `ping`, `wait_message_from` (default [`DEFAULT_TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// A fresh stanza id.
    pub fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    /// Sends raw XML.
    pub fn send(&mut self, xml: &str) -> Result<(), ClientError> {
        self.stream.write_all(xml.as_bytes())?;
        Ok(())
    }

    fn next_frame(&mut self, deadline: Instant, what: &str) -> Result<Frame, ClientError> {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(f) = self.splitter.next()? {
                return Ok(f);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::Timeout(what.to_string()));
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            self.stream.set_read_timeout(Some(wait))?;
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(ClientError::Closed(format!("EOF waiting for {what}"))),
                Ok(n) => self.splitter.push(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Next top-level element off the wire (no pending queue, no auto-replies).
    fn recv_raw(&mut self, deadline: Instant, what: &str) -> Result<Stanza, ClientError> {
        match self.next_frame(deadline, what)? {
            Frame::Element(x) => {
                let s = Stanza::parse(x)?;
                if s.name() == "stream:error" {
                    return Err(ClientError::Closed(s.xml));
                }
                Ok(s)
            }
            Frame::End => Err(ClientError::Closed(format!("waiting for {what}"))),
            Frame::Header(h) => Err(ClientError::Xml(format!("unexpected header {h}"))),
        }
    }

    /// Next element: a kept one first, else off the wire. Answers pings from the server.
    pub fn recv(&mut self, deadline: Instant) -> Result<Stanza, ClientError> {
        if let Some(s) = self.pending.pop_front() {
            return Ok(s);
        }
        self.recv_wire(deadline, "an element")
    }

    fn recv_wire(&mut self, deadline: Instant, what: &str) -> Result<Stanza, ClientError> {
        loop {
            let s = self.recv_raw(deadline, what)?;
            if s.name() == "iq" && s.attr("type") == Some("get") && s.has_child("ping") {
                let reply = format!(
                    "<iq type='result' id='{}' to='{}'/>",
                    escape(s.attr("id").unwrap_or("")),
                    escape(s.attr("from").unwrap_or(&self.domain))
                );
                self.send(&reply)?;
                continue;
            }
            return Ok(s);
        }
    }

    /// The first element (kept or new) satisfying `pred`; others are kept for later.
    pub fn recv_until(
        &mut self,
        pred: impl Fn(&Stanza) -> bool,
        deadline: Instant,
    ) -> Result<Stanza, ClientError> {
        if let Some(pos) = self.pending.iter().position(&pred) {
            if let Some(s) = self.pending.remove(pos) {
                return Ok(s);
            }
        }
        loop {
            let s = self.recv_wire(deadline, "a matching element")?;
            if pred(&s) {
                return Ok(s);
            }
            self.pending.push_back(s);
        }
    }

    /// XEP-0199 ping of `to` (a domain or JID); returns the `iq` result or error with that id.
    pub fn ping(&mut self, to: &str) -> Result<Stanza, ClientError> {
        let id = self.new_id("ping");
        self.send(&format!(
            "<iq type='get' id='{}' to='{}'><ping xmlns='urn:xmpp:ping'/></iq>",
            escape(&id),
            escape(to)
        ))?;
        let deadline = Instant::now() + self.timeout;
        self.recv_until(
            |s| {
                s.name() == "iq"
                    && s.attr("id") == Some(id.as_str())
                    && matches!(s.attr("type"), Some("result") | Some("error"))
            },
            deadline,
        )
    }

    /// Sends a chat message; returns its id.
    pub fn send_message(&mut self, to: &str, body: &str) -> Result<String, ClientError> {
        let id = self.new_id("msg");
        self.send(&format!(
            "<message type='chat' id='{}' to='{}'><body>{}</body></message>",
            escape(&id),
            escape(to),
            escape(body)
        ))?;
        Ok(id)
    }

    /// Waits (client timeout) for a `<message>` from `from`: a bare JID matches any resource,
    /// a full JID only itself. Message errors count too (check `type`).
    pub fn wait_message_from(&mut self, from: &str) -> Result<Stanza, ClientError> {
        let deadline = Instant::now() + self.timeout;
        let full = from.contains('/');
        self.recv_until(
            |s| {
                s.name() == "message"
                    && if full {
                        s.attr("from") == Some(from)
                    } else {
                        s.sender_bare() == Some(from)
                    }
            },
            deadline,
        )
    }

    /// Closes the stream politely.
    pub fn close(mut self) {
        let _ = self.send("</stream:stream>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_frames_header_elements_and_end() {
        let mut s = Splitter::default();
        s.push(b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' id='a>b'>");
        s.push(b"<stream:features><x a='1'/></stream:features><presence/>");
        s.push(b"<message><body><![CDATA[</body>]]></body></mess");
        assert!(matches!(s.next().unwrap(), Some(Frame::Header(_))));
        assert_eq!(
            s.next().unwrap(),
            Some(Frame::Element(
                "<stream:features><x a='1'/></stream:features>".into()
            ))
        );
        assert_eq!(
            s.next().unwrap(),
            Some(Frame::Element("<presence/>".into()))
        );
        assert_eq!(s.next().unwrap(), None);
        s.push(b"age></stream:stream>");
        assert!(matches!(s.next().unwrap(), Some(Frame::Element(x)) if x.ends_with("</message>")));
        assert_eq!(s.next().unwrap(), Some(Frame::End));
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"\0u\0p"), "AHUAcA==");
    }
}
