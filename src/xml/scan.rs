//! The incremental restricted-XML scanner behind the framer.
//!
//! A byte-level state machine over the framer's buffer: it resumes exactly where the previous
//! call stopped (so input dripped one byte per read costs O(n) in total), skips character data
//! and attribute values with memchr, tracks element depth, names and namespace declarations, and
//! reports where complete top-level elements end. Every check happens at a fixed byte position
//! of the input, so the outcome never depends on how the input was split into reads.

use memchr::{memchr, memchr3};

use super::error::{FramerError, Limit};
use super::escape::{is_xml_char, parse_digits, unescape};
use super::header::{check_declaration, NsContext};
use super::limits::FramerLimits;
use super::NS_STREAMS;

/// Where the stream is, at the top level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Before the stream header (an XML declaration may come first).
    Prolog,
    /// Inside the stream: top-level elements are stanzas.
    Stream,
    /// After `</stream:stream>`: only whitespace may follow.
    Closed,
}

/// Lexical state at `Scanner::pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// Character data, or stream-level whitespace when depth is 0.
    Content,
    /// After `<`.
    Lt,
    /// After `<!`.
    Bang,
    /// After `<!-`.
    BangDash,
    /// Matched this many bytes of `[CDATA[` after `<!`.
    CdataOpen(u8),
    /// Inside a CDATA section; `tok` is where its content starts.
    Cdata,
    /// After `<?`.
    Pi,
    /// Inside the leading `<?xml ...?>`.
    XmlDecl,
    /// In a start-tag name starting at `tok`.
    StartName,
    /// In a start tag, after the name or an attribute; `ws`: whitespace seen since.
    InTag { ws: bool },
    /// In an attribute name starting at `tok`.
    AttrName,
    /// Between an attribute name and `=`.
    AfterAttrName,
    /// Between `=` and the opening quote.
    BeforeValue,
    /// In an attribute value quoted by `quote`, starting at `tok`.
    Value { quote: u8 },
    /// After `/` in a start tag.
    EmptyClose,
    /// In an end-tag name starting at `tok`.
    EndName,
    /// Whitespace after an end-tag name.
    EndSpace,
    /// In a `&...;` reference starting at `ref_start`; `quote` is 0 in content, else the
    /// quote of the attribute value it is in.
    Ref { quote: u8 },
}

/// What a scan step found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// The buffer ends inside an item: feed more.
    NeedMore,
    /// The stream header start tag is `tag_start..end` (an XML declaration may precede it).
    Header { tag_start: usize, end: usize },
    /// A complete top-level element is `0..end`.
    Stanza(usize),
    /// The stream close tag is `0..end`.
    Close(usize),
}

type Span = (usize, usize);

#[derive(Debug, Clone, Copy)]
struct AttrSpan {
    name: Span,
    value: Span,
}

/// A namespace declaration in scope inside the current stanza (`prefix` empty: default ns).
#[derive(Debug, Clone, Copy)]
struct NsDecl {
    prefix: Span,
    value: Span,
    depth: u32,
}

/// The scanner state. Positions are offsets into the framer's buffer, whose start is always the
/// start of the current item (the framer splits off each completed one).
#[derive(Debug)]
pub(crate) struct Scanner {
    /// Every byte before `pos` has been examined.
    pub(crate) pos: usize,
    pub(crate) phase: Phase,
    lex: Lex,
    depth: u32,
    elements: u32,
    tok: usize,
    ref_start: usize,
    lt: usize,
    tag_name: Span,
    /// The stanza element's start tag: `<` at 0, `>` (or the `/` of `/>`) at `top_tag_end`.
    pub(crate) top_tag_end: usize,
    decl_seen: bool,
    /// Qualified name of the stream element, to match `</stream:stream>`.
    pub(crate) stream_name: Vec<u8>,
    names: Vec<Span>,
    attrs: Vec<AttrSpan>,
    ns: Vec<NsDecl>,
}

const WS: u8 = 1;
const NAME: u8 = 2;
const START: u8 = 4;
const SQ_STOP: u8 = 8;
const DQ_STOP: u8 = 16;

/// Byte classes, so the per-byte loops are one table lookup.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut c = 0;
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            c |= WS;
        }
        if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 {
            c |= START | NAME;
        }
        if b.is_ascii_digit() || matches!(b, b'-' | b'.' | b':') {
            c |= NAME;
        }
        if matches!(b, b'\'' | b'<' | b'&') {
            c |= SQ_STOP;
        }
        if matches!(b, b'"' | b'<' | b'&') {
            c |= DQ_STOP;
        }
        t[i] = c;
        i += 1;
    }
    t
};

#[inline]
fn is_ws(b: u8) -> bool {
    CLASS[b as usize] & WS != 0
}

#[inline]
fn is_name_start(b: u8) -> bool {
    CLASS[b as usize] & START != 0
}

#[inline]
fn is_name_byte(b: u8) -> bool {
    CLASS[b as usize] & NAME != 0
}

#[inline]
fn is_ref_byte(b: u8) -> bool {
    is_name_byte(b) || b == b'#'
}

/// First byte of `hay` that ends an attribute value quoted by `quote` (the quote, `<`, `&`).
/// Values are mostly short: a table loop first, memchr past that.
#[inline]
fn find_value_stop(hay: &[u8], quote: u8) -> Option<usize> {
    const SHORT: usize = 48;
    let mask = if quote == b'\'' { SQ_STOP } else { DQ_STOP };
    let head = &hay[..hay.len().min(SHORT)];
    match head.iter().position(|&b| CLASS[b as usize] & mask != 0) {
        Some(i) => Some(i),
        None if hay.len() > SHORT => memchr3(quote, b'<', b'&', &hay[SHORT..]).map(|i| i + SHORT),
        None => None,
    }
}

/// A qualified name: `local` or `prefix:local`, both parts non-empty NCNames.
fn check_qname(name: &[u8]) -> Result<(), FramerError> {
    match name.iter().position(|&b| b == b':') {
        None => Ok(()),
        Some(c) => {
            let local = &name[c + 1..];
            if c == 0 || local.is_empty() || !is_name_start(local[0]) || local.contains(&b':') {
                Err(FramerError::BadName)
            } else {
                Ok(())
            }
        }
    }
}

fn split_qname(name: &[u8]) -> (Option<&[u8]>, &[u8]) {
    match name.iter().position(|&b| b == b':') {
        Some(c) => (Some(&name[..c]), &name[c + 1..]),
        None => (None, name),
    }
}

/// Checks the text between `&` and `;`.
fn check_reference(name: &[u8]) -> Result<(), FramerError> {
    match name {
        b"lt" | b"gt" | b"amp" | b"apos" | b"quot" => Ok(()),
        [b'#', num @ ..] => {
            let num = std::str::from_utf8(num).map_err(|_| FramerError::MalformedReference)?;
            let v = match num.strip_prefix('x') {
                Some(hex) => parse_digits(hex, 16),
                None => parse_digits(num, 10),
            }
            .ok_or(FramerError::MalformedReference)?;
            if is_xml_char(v) {
                Ok(())
            } else {
                Err(FramerError::InvalidCharReference)
            }
        }
        [first, ..] if is_name_start(*first) || *first == b':' => {
            if name.contains(&b'#') {
                Err(FramerError::MalformedReference)
            } else {
                Err(FramerError::EntityReference)
            }
        }
        _ => Err(FramerError::MalformedReference),
    }
}

const CDATA_OPEN: &[u8; 7] = b"[CDATA[";

impl Scanner {
    pub(crate) fn new() -> Self {
        Scanner {
            pos: 0,
            phase: Phase::Prolog,
            lex: Lex::Content,
            depth: 0,
            elements: 0,
            tok: 0,
            ref_start: 0,
            lt: 0,
            tag_name: (0, 0),
            top_tag_end: 0,
            decl_seen: false,
            stream_name: Vec::new(),
            names: Vec::new(),
            attrs: Vec::new(),
            ns: Vec::new(),
        }
    }

    /// True between items at stream level, where the framer drops whitespace keepalives.
    pub(crate) fn between_items(&self) -> bool {
        self.lex == Lex::Content && self.depth == 0 && self.pos == 0
    }

    /// Forgets the completed item: the framer has split it off the buffer.
    pub(crate) fn item_consumed(&mut self) {
        self.pos = 0;
        self.lex = Lex::Content;
        self.depth = 0;
        self.elements = 0;
        self.names.clear();
        self.attrs.clear();
        self.ns.clear();
    }

    /// Scans `buf` (the buffer, cut at the current size cap) from where the last call stopped.
    /// On error, `pos` is the offending byte.
    pub(crate) fn step(
        &mut self,
        buf: &[u8],
        limits: &FramerLimits,
        ctx: &NsContext,
    ) -> Result<Step, FramerError> {
        macro_rules! byte {
            () => {
                match buf.get(self.pos) {
                    Some(&b) => b,
                    None => return Ok(Step::NeedMore),
                }
            };
        }
        macro_rules! fail {
            ($e:expr) => {
                return Err($e)
            };
        }
        loop {
            match self.lex {
                Lex::Content if self.depth == 0 => {
                    let b = byte!();
                    if is_ws(b) {
                        self.pos += 1;
                    } else if b == b'<' && self.phase != Phase::Closed {
                        self.lt = self.pos;
                        self.pos += 1;
                        self.lex = Lex::Lt;
                    } else {
                        fail!(FramerError::TextAtStreamLevel);
                    }
                }
                Lex::Content => match memchr3(b'<', b'&', b'>', &buf[self.pos..]) {
                    None => {
                        self.pos = buf.len();
                        return Ok(Step::NeedMore);
                    }
                    Some(i) => {
                        let p = self.pos + i;
                        match buf[p] {
                            b'<' => {
                                self.lt = p;
                                self.lex = Lex::Lt;
                            }
                            b'&' => {
                                self.ref_start = p;
                                self.lex = Lex::Ref { quote: 0 };
                            }
                            _ => {
                                // Both bytes before a '>' in content are content themselves
                                // (tags, references and CDATA sections end in '>' or ';').
                                if p >= 2 && &buf[p - 2..p] == b"]]" {
                                    self.pos = p;
                                    fail!(FramerError::CdataEndInText);
                                }
                            }
                        }
                        self.pos = p + 1;
                    }
                },
                Lex::Lt => {
                    let b = byte!();
                    match b {
                        b'/' => {
                            if self.phase != Phase::Stream {
                                fail!(FramerError::Syntax("end tag outside the stream"));
                            }
                            self.pos += 1;
                            self.tok = self.pos;
                            self.lex = Lex::EndName;
                        }
                        b'!' => {
                            self.pos += 1;
                            self.lex = Lex::Bang;
                        }
                        b'?' => {
                            self.pos += 1;
                            self.lex = Lex::Pi;
                        }
                        b if is_name_start(b) => {
                            if self.phase == Phase::Stream {
                                if self.depth >= limits.max_depth {
                                    fail!(FramerError::LimitExceeded(Limit::Depth));
                                }
                                if self.elements >= limits.max_elements {
                                    fail!(FramerError::LimitExceeded(Limit::Elements));
                                }
                            }
                            self.attrs.clear();
                            self.tok = self.pos;
                            self.pos += 1;
                            self.lex = Lex::StartName;
                        }
                        _ => fail!(FramerError::Syntax("a name after '<'")),
                    }
                }
                Lex::Bang => {
                    let b = byte!();
                    match b {
                        b'-' => self.lex = Lex::BangDash,
                        b'[' => self.lex = Lex::CdataOpen(1),
                        b'A'..=b'Z' => fail!(FramerError::Doctype),
                        _ => fail!(FramerError::Syntax("'--', '[CDATA[' after '<!'")),
                    }
                    self.pos += 1;
                }
                Lex::BangDash => {
                    if byte!() == b'-' {
                        fail!(FramerError::Comment);
                    }
                    fail!(FramerError::Syntax("'<!--'"));
                }
                Lex::CdataOpen(n) => {
                    if byte!() != CDATA_OPEN[usize::from(n)] {
                        fail!(FramerError::Syntax("'<![CDATA['"));
                    }
                    self.pos += 1;
                    if usize::from(n) + 1 == CDATA_OPEN.len() {
                        if self.depth == 0 {
                            fail!(FramerError::TextAtStreamLevel);
                        }
                        self.tok = self.pos;
                        self.lex = Lex::Cdata;
                    } else {
                        self.lex = Lex::CdataOpen(n + 1);
                    }
                }
                Lex::Cdata => match memchr(b'>', &buf[self.pos..]) {
                    None => {
                        self.pos = buf.len();
                        return Ok(Step::NeedMore);
                    }
                    Some(i) => {
                        let p = self.pos + i;
                        self.pos = p + 1;
                        if p >= self.tok + 2 && &buf[p - 2..p] == b"]]" {
                            self.lex = Lex::Content;
                        }
                    }
                },
                Lex::Pi => {
                    // Only the very first bytes of a stream may be an XML declaration.
                    if self.phase == Phase::Prolog && self.lt == 0 && !self.decl_seen {
                        if buf.len() < self.pos + 4 {
                            return Ok(Step::NeedMore);
                        }
                        if &buf[self.pos..self.pos + 3] == b"xml" && is_ws(buf[self.pos + 3]) {
                            self.pos += 4;
                            self.lex = Lex::XmlDecl;
                            continue;
                        }
                    }
                    fail!(FramerError::ProcessingInstruction);
                }
                Lex::XmlDecl => match memchr(b'>', &buf[self.pos..]) {
                    None => {
                        self.pos = buf.len();
                        return Ok(Step::NeedMore);
                    }
                    Some(i) => {
                        let p = self.pos + i;
                        self.pos = p;
                        if buf[p - 1] != b'?' {
                            fail!(FramerError::Syntax("'?>' to end the XML declaration"));
                        }
                        check_declaration(&buf[self.lt..p + 1])?;
                        self.decl_seen = true;
                        self.pos = p + 1;
                        self.lex = Lex::Content;
                    }
                },
                Lex::StartName | Lex::AttrName | Lex::EndName => {
                    let rest = &buf[self.pos..];
                    let Some(i) = rest.iter().position(|&b| !is_name_byte(b)) else {
                        self.pos = buf.len();
                        return Ok(Step::NeedMore);
                    };
                    self.pos += i;
                    let name = (self.tok, self.pos);
                    if name.0 == name.1 {
                        fail!(FramerError::Syntax("a name"));
                    }
                    check_qname(&buf[name.0..name.1])?;
                    match self.lex {
                        Lex::StartName => {
                            self.tag_name = name;
                            self.lex = Lex::InTag { ws: false };
                        }
                        Lex::AttrName => {
                            let new = &buf[name.0..name.1];
                            if self.attrs.iter().any(|a| &buf[a.name.0..a.name.1] == new) {
                                self.pos = name.0;
                                fail!(FramerError::DuplicateAttribute);
                            }
                            self.attrs.push(AttrSpan {
                                name,
                                value: (0, 0),
                            });
                            self.lex = Lex::AfterAttrName;
                        }
                        _ => {
                            self.tag_name = name;
                            self.lex = Lex::EndSpace;
                            if !is_name_start(buf[name.0]) {
                                fail!(FramerError::Syntax("a name after '</'"));
                            }
                        }
                    }
                }
                Lex::InTag { ws } => {
                    let b = byte!();
                    if is_ws(b) {
                        self.pos += 1;
                        self.lex = Lex::InTag { ws: true };
                    } else if b == b'>' {
                        if let Some(step) = self.finish_start(buf, false, ctx)? {
                            return Ok(step);
                        }
                    } else if b == b'/' {
                        self.pos += 1;
                        self.lex = Lex::EmptyClose;
                    } else if is_name_start(b) {
                        if !ws {
                            fail!(FramerError::Syntax("whitespace before an attribute"));
                        }
                        if self.attrs.len() >= limits.max_attributes as usize {
                            fail!(FramerError::LimitExceeded(Limit::Attributes));
                        }
                        self.tok = self.pos;
                        self.pos += 1;
                        self.lex = Lex::AttrName;
                    } else {
                        fail!(FramerError::Syntax("an attribute, '>' or '/>'"));
                    }
                }
                Lex::AfterAttrName => {
                    let b = byte!();
                    if b == b'=' {
                        self.lex = Lex::BeforeValue;
                    } else if !is_ws(b) {
                        fail!(FramerError::Syntax("'=' after an attribute name"));
                    }
                    self.pos += 1;
                }
                Lex::BeforeValue => {
                    let b = byte!();
                    if b == b'\'' || b == b'"' {
                        self.tok = self.pos + 1;
                        self.lex = Lex::Value { quote: b };
                    } else if !is_ws(b) {
                        fail!(FramerError::Syntax("a quoted attribute value"));
                    }
                    self.pos += 1;
                }
                Lex::Value { quote } => match find_value_stop(&buf[self.pos..], quote) {
                    None => {
                        self.pos = buf.len();
                        return Ok(Step::NeedMore);
                    }
                    Some(i) => {
                        let p = self.pos + i;
                        let b = buf[p];
                        if b == b'<' {
                            self.pos = p;
                            fail!(FramerError::LtInAttributeValue);
                        }
                        if b == b'&' {
                            self.ref_start = p;
                            self.lex = Lex::Ref { quote };
                        } else {
                            if let Some(a) = self.attrs.last_mut() {
                                a.value = (self.tok, p);
                            }
                            self.lex = Lex::InTag { ws: false };
                        }
                        self.pos = p + 1;
                    }
                },
                Lex::Ref { quote } => {
                    let rest = &buf[self.pos..];
                    let Some(i) = rest.iter().position(|&b| !is_ref_byte(b)) else {
                        self.pos = buf.len();
                        return Ok(Step::NeedMore);
                    };
                    let p = self.pos + i;
                    self.pos = p;
                    if buf[p] != b';' {
                        fail!(FramerError::MalformedReference);
                    }
                    check_reference(&buf[self.ref_start + 1..p])?;
                    self.pos = p + 1;
                    self.lex = if quote == 0 {
                        Lex::Content
                    } else {
                        Lex::Value { quote }
                    };
                }
                Lex::EmptyClose => {
                    if byte!() != b'>' {
                        fail!(FramerError::Syntax("'>' after '/'"));
                    }
                    if let Some(step) = self.finish_start(buf, true, ctx)? {
                        return Ok(step);
                    }
                }
                Lex::EndSpace => {
                    let b = byte!();
                    if b == b'>' {
                        if let Some(step) = self.finish_end(buf)? {
                            return Ok(step);
                        }
                    } else if is_ws(b) {
                        self.pos += 1;
                    } else {
                        fail!(FramerError::Syntax("'>' to end the end tag"));
                    }
                }
            }
        }
    }

    /// Whether `prefix` is bound inside the stanza or by the stream header.
    fn prefix_bound(&self, buf: &[u8], prefix: &[u8], ctx: &NsContext) -> bool {
        prefix == b"xml"
            || self
                .ns
                .iter()
                .any(|d| d.prefix.0 != d.prefix.1 && &buf[d.prefix.0..d.prefix.1] == prefix)
            || ctx.prefix(prefix).is_some()
    }

    /// Whether `prefix` (`None`: the default namespace) resolves to `ns` at the current element.
    fn resolves_to(&self, buf: &[u8], prefix: Option<&[u8]>, ctx: &NsContext, ns: &str) -> bool {
        let p = prefix.unwrap_or(b"");
        if let Some(d) = self
            .ns
            .iter()
            .rev()
            .find(|d| &buf[d.prefix.0..d.prefix.1] == p)
        {
            let raw = std::str::from_utf8(&buf[d.value.0..d.value.1]).unwrap_or("");
            return unescape(raw) == ns;
        }
        match prefix {
            Some(p) => ctx.prefix(p) == Some(ns),
            None => ctx.default.as_deref() == Some(ns),
        }
    }

    /// At the `>` of a start tag (`empty`: it was `/>`).
    fn finish_start(
        &mut self,
        buf: &[u8],
        empty: bool,
        ctx: &NsContext,
    ) -> Result<Option<Step>, FramerError> {
        let end = self.pos + 1;
        if self.phase == Phase::Prolog {
            if empty {
                return Err(FramerError::BadStreamHeader);
            }
            self.pos = end;
            self.lex = Lex::Content;
            return Ok(Some(Step::Header {
                tag_start: self.lt,
                end,
            }));
        }
        let depth = self.depth + 1;
        for a in &self.attrs {
            let name = &buf[a.name.0..a.name.1];
            if name == b"xmlns" {
                self.ns.push(NsDecl {
                    prefix: (a.name.1, a.name.1),
                    value: a.value,
                    depth,
                });
            } else if name.starts_with(b"xmlns:") {
                if a.value.0 == a.value.1 {
                    // Namespaces in XML 1.0 forbids undeclaring a prefix.
                    return Err(FramerError::UnboundPrefix);
                }
                self.ns.push(NsDecl {
                    prefix: (a.name.0 + 6, a.name.1),
                    value: a.value,
                    depth,
                });
            }
        }
        let (prefix, local) = split_qname(&buf[self.tag_name.0..self.tag_name.1]);
        if let Some(p) = prefix {
            if p == b"xmlns" || !self.prefix_bound(buf, p, ctx) {
                return Err(FramerError::UnboundPrefix);
            }
        }
        for a in &self.attrs {
            if let (Some(p), _) = split_qname(&buf[a.name.0..a.name.1]) {
                if p != b"xmlns" && !self.prefix_bound(buf, p, ctx) {
                    return Err(FramerError::UnboundPrefix);
                }
            }
        }
        if local == b"stream" && self.resolves_to(buf, prefix, ctx, NS_STREAMS) {
            return Err(FramerError::NestedStream);
        }
        if depth == 1 {
            self.top_tag_end = if empty { self.pos - 1 } else { self.pos };
        }
        self.depth = depth;
        self.elements += 1;
        self.pos = end;
        self.lex = Lex::Content;
        if empty {
            self.close_element();
        } else {
            self.names.push(self.tag_name);
        }
        Ok((self.depth == 0).then_some(Step::Stanza(end)))
    }

    /// At the `>` of an end tag.
    fn finish_end(&mut self, buf: &[u8]) -> Result<Option<Step>, FramerError> {
        let end = self.pos + 1;
        let name = &buf[self.tag_name.0..self.tag_name.1];
        if self.depth == 0 {
            if self.phase == Phase::Stream && name == self.stream_name.as_slice() {
                self.pos = end;
                self.lex = Lex::Content;
                self.phase = Phase::Closed;
                return Ok(Some(Step::Close(end)));
            }
            return Err(FramerError::MismatchedTag);
        }
        match self.names.pop() {
            Some(open) if &buf[open.0..open.1] == name => {}
            _ => return Err(FramerError::MismatchedTag),
        }
        self.close_element();
        self.pos = end;
        self.lex = Lex::Content;
        Ok((self.depth == 0).then_some(Step::Stanza(end)))
    }

    fn close_element(&mut self) {
        let depth = self.depth;
        while self.ns.last().is_some_and(|d| d.depth >= depth) {
            self.ns.pop();
        }
        self.depth -= 1;
    }
}
