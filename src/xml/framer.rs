//! The sans-IO stanza framer: bytes in, stream events out.

use std::sync::Arc;

use bytes::{Buf, BytesMut};

use super::error::{FramerError, Limit};
use super::header::{NsContext, StreamHeader};
use super::limits::FramerLimits;
use super::scan::{Phase, Scanner, Step};
use super::stanza::Stanza;

/// Smallest buffer growth, so a stream of tiny reads does not reallocate per read.
const MIN_RESERVE: usize = 4096;

/// What the framer found in the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The peer's stream header (after an optional XML declaration). Boxed: it is large and
    /// rare, and events are moved on the per-stanza path.
    StreamOpen(Box<StreamHeader>),
    /// A complete top-level element: a stanza or a nonza (features, dialback, SASL, TLS...).
    Stanza(Stanza),
    /// `</stream:stream>`.
    StreamClose,
}

/// Incremental, zero-copy framer of one XMPP stream direction.
///
/// Feed it what the socket (or TLS session) produced, then pull events until `Ok(None)`.
/// Whitespace between stanzas (keepalives) yields no event but counts in [`Framer::bytes_seen`].
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    scan: Scanner,
    limits: FramerLimits,
    ctx: Arc<NsContext>,
    failed: Option<FramerError>,
    /// `buf[..utf8_ok]` is known to be UTF-8 made of XML characters.
    utf8_ok: usize,
    bytes_seen: u64,
}

impl Framer {
    /// A framer at the start of a stream.
    pub fn new(limits: FramerLimits) -> Self {
        Framer {
            buf: BytesMut::new(),
            scan: Scanner::new(),
            limits,
            ctx: Arc::new(NsContext::default()),
            failed: None,
            utf8_ok: 0,
            bytes_seen: 0,
        }
    }

    /// Replaces the caps (raised once the peer is authenticated); applies from the next scan,
    /// including to the element in progress.
    pub fn set_limits(&mut self, limits: FramerLimits) {
        self.limits = limits;
    }

    /// The caps in force.
    pub fn limits(&self) -> FramerLimits {
        self.limits
    }

    /// Appends bytes read from the peer. Ignored once the framer has failed.
    pub fn feed(&mut self, data: &[u8]) {
        if self.failed.is_some() || data.is_empty() {
            return;
        }
        if self.buf.capacity() - self.buf.len() < data.len() {
            self.buf.reserve(data.len().max(MIN_RESERVE));
        }
        self.buf.extend_from_slice(data);
    }

    /// Pulls the next complete event; `Ok(None)` when more bytes are needed. After an error,
    /// every call returns the same error.
    pub fn next_event(&mut self) -> Result<Option<Event>, FramerError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.advance() {
            Ok(ev) => Ok(ev),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = BytesMut::new();
                Err(e)
            }
        }
    }

    /// Stream restart (after STARTTLS `<proceed/>` or SASL success): drops every buffered unread
    /// byte and all parser state, and returns how many bytes were dropped. Those bytes are never
    /// processed (clear text sent along with `<starttls/>` must not be acted on after TLS).
    /// A failed framer stays failed.
    pub fn reset(&mut self) -> usize {
        let dropped = self.buf.len();
        self.buf = BytesMut::new();
        self.scan = Scanner::new();
        self.ctx = Arc::new(NsContext::default());
        self.utf8_ok = 0;
        dropped
    }

    /// Bytes buffered and not yet returned as events.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes of buffer memory held (0 after [`Framer::shrink`] on an idle stream).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Bytes of the stream consumed into events or whitespace keepalives so far (bytes dropped
    /// by [`Framer::reset`] are not counted). A change means the peer is alive.
    pub fn bytes_seen(&self) -> u64 {
        self.bytes_seen
    }

    /// Releases buffer memory: to nothing when no partial element is buffered (an idle stream),
    /// else to a buffer the size of the partial element.
    pub fn shrink(&mut self) {
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        } else if self.buf.capacity() > 2 * self.buf.len() + MIN_RESERVE {
            self.buf = BytesMut::from(&self.buf[..]);
        }
    }

    fn advance(&mut self) -> Result<Option<Event>, FramerError> {
        if self.scan.phase != Phase::Prolog && self.scan.between_items() {
            let ws = self
                .buf
                .iter()
                .take_while(|&&b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
                .count();
            if ws > 0 {
                self.buf.advance(ws);
                self.bytes_seen += ws as u64;
            }
            if self.buf.is_empty() {
                return Ok(None);
            }
        }
        let (cap, limit) = match self.scan.phase {
            Phase::Prolog => (self.limits.max_header_bytes, Limit::HeaderBytes),
            _ => (self.limits.max_stanza_bytes, Limit::StanzaBytes),
        };
        let window = self.buf.len().min(cap);
        let step = self.scan.step(&self.buf[..window], &self.limits, &self.ctx);
        // Characters are checked up to where the scan stopped, so an encoding error before a
        // syntax error wins, whatever the read boundaries were.
        let upto = self.scan.pos.min(window);
        if upto > self.utf8_ok {
            self.utf8_ok += validate_chars(&self.buf[self.utf8_ok..upto])?;
        }
        match step? {
            Step::NeedMore => {
                if self.buf.len() > cap {
                    return Err(FramerError::LimitExceeded(limit));
                }
                Ok(None)
            }
            Step::Header { tag_start, end } => {
                let (header, ctx) = StreamHeader::parse(&self.buf[tag_start..end])?;
                self.scan.stream_name.clear();
                self.scan.stream_name.extend_from_slice(
                    &self.buf[tag_start + 1..tag_start + 1 + header_name_len(&header)],
                );
                self.ctx = Arc::new(ctx);
                self.consume(end);
                self.scan.phase = Phase::Stream;
                Ok(Some(Event::StreamOpen(Box::new(header))))
            }
            Step::Stanza(end) => {
                let bytes = self.buf.split_to(end).freeze();
                let tag_end = self.scan.top_tag_end;
                self.after_item(end);
                Ok(Some(Event::Stanza(Stanza::parse(
                    bytes, tag_end, &self.ctx,
                )?)))
            }
            Step::Close(end) => {
                self.consume(end);
                Ok(Some(Event::StreamClose))
            }
        }
    }

    fn consume(&mut self, n: usize) {
        self.buf.advance(n);
        self.after_item(n);
    }

    fn after_item(&mut self, n: usize) {
        self.bytes_seen += n as u64;
        self.utf8_ok = 0;
        self.scan.item_consumed();
    }
}

fn header_name_len(h: &StreamHeader) -> usize {
    h.local_name.len() + h.prefix.as_ref().map_or(0, |p| p.len() + 1)
}

/// Checks `chunk` is UTF-8 made of XML characters; returns how many bytes are known good (an
/// incomplete character at the end is left for later).
fn validate_chars(chunk: &[u8]) -> Result<usize, FramerError> {
    // Fast path, eight bytes per step: ASCII without C0 controls other than TAB/LF/CR is valid
    // as it stands. One test per word says whether any byte is below 0x20 or above 0x7F (then
    // its bytes are looked at); the per-byte fold this replaces was ≈ 1.5 instructions a byte,
    // ≈ 5% of the receive path's.
    #[inline]
    fn suspect(b: u8) -> bool {
        ((b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r')) | (b >= 0x80)
    }
    const LOW: u64 = 0x2020_2020_2020_2020;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = chunk.chunks_exact(8);
    let mut clean = 0;
    let mut all_clean = true;
    for w in &mut words {
        let x = u64::from_le_bytes(w.try_into().unwrap_or([0; 8]));
        // Exact for "some byte < 0x20 or ≥ 0x80" (the has-less-than bit trick).
        if (x.wrapping_sub(LOW) | x) & HIGH != 0 && w.iter().any(|&b| suspect(b)) {
            all_clean = false;
            break;
        }
        clean += 8;
    }
    if all_clean && !words.remainder().iter().any(|&b| suspect(b)) {
        return Ok(chunk.len());
    }
    let rest = &chunk[clean..];
    let (good, bad_utf8) = match std::str::from_utf8(rest) {
        Ok(_) => (rest.len(), false),
        Err(e) => (e.valid_up_to(), e.error_len().is_some()),
    };
    if has_illegal_char(&rest[..good]) {
        return Err(FramerError::IllegalChar);
    }
    if bad_utf8 {
        return Err(FramerError::InvalidUtf8);
    }
    Ok(clean + good)
}

/// C0 controls other than TAB/LF/CR, U+FFFE and U+FFFF, in valid UTF-8.
fn has_illegal_char(s: &[u8]) -> bool {
    #[inline]
    fn bad(b: u8) -> bool {
        ((b < 0x20) & (b != b'\t') & (b != b'\n') & (b != b'\r')) | (b == 0xEF)
    }
    // U+FFFE / U+FFFF are EF BF BE / EF BF BF; a valid prefix never cuts a character.
    let slow = |i: usize| {
        let b = s[i];
        if b == 0xEF {
            s.get(i + 1) == Some(&0xBF) && matches!(s.get(i + 2), Some(0xBE | 0xBF))
        } else {
            b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')
        }
    };
    let mut start = 0;
    for c in s.chunks(32) {
        if c.iter().fold(false, |acc, &b| acc | bad(b)) && (start..start + c.len()).any(slow) {
            return true;
        }
        start += c.len();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one character at a time.
    fn reference(chunk: &[u8]) -> Result<usize, FramerError> {
        let (good, bad_utf8) = match std::str::from_utf8(chunk) {
            Ok(_) => (chunk.len(), false),
            Err(e) => (e.valid_up_to(), e.error_len().is_some()),
        };
        let text = std::str::from_utf8(&chunk[..good]).unwrap_or_default();
        if text.chars().any(|c| !crate::xml::is_xml_char(c as u32)) {
            return Err(FramerError::IllegalChar);
        }
        if bad_utf8 {
            return Err(FramerError::InvalidUtf8);
        }
        Ok(good)
    }

    #[test]
    fn the_word_at_a_time_check_agrees_with_the_definition() {
        // Every byte value at every position of the first, a middle and the last word and of
        // the tail, in ASCII text of lengths around word multiples; and some UTF-8 cut short.
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for len in [1usize, 7, 8, 9, 31, 32, 33, 40] {
            for at in [0, len / 2, len - 1] {
                for b in 0..=255u8 {
                    let mut v = vec![b'a'; len];
                    v[at] = b;
                    inputs.push(v);
                }
            }
        }
        for s in [
            "\u{e9}t\u{e9}",
            "\u{1F339}",
            "\u{FFFE}",
            "\u{FFFF}",
            "a\tb\nc\r\nd",
        ] {
            let mut v = b"<message>0123456789".to_vec();
            v.extend_from_slice(s.as_bytes());
            for cut in 0..=v.len() {
                inputs.push(v[..cut].to_vec());
            }
        }
        for v in &inputs {
            assert_eq!(validate_chars(v), reference(v), "{v:?}");
        }
    }
}
