//! The stanza view: one complete top-level element as a shared byte slice plus its header.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use quick_xml::events::{BytesStart, Event as XmlEvent};
use quick_xml::Reader;
use smallvec::SmallVec;

use super::error::FramerError;
use super::escape::{decode_attr, decode_text, escape_attr, escape_text, unescape};
use super::header::NsContext;
use super::{NS_CLIENT, NS_DIALBACK, NS_SASL, NS_SERVER, NS_STREAMS, NS_TLS, NS_XML};

/// What a top-level element is, by (namespace, local name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StanzaKind {
    /// `message` in `jabber:server` or `jabber:client`.
    Message,
    /// `presence` in `jabber:server` or `jabber:client`.
    Presence,
    /// `iq` in `jabber:server` or `jabber:client`.
    Iq,
    /// `db:result` (XEP-0220).
    DialbackResult,
    /// `db:verify` (XEP-0220).
    DialbackVerify,
    /// `<starttls/>`.
    StartTls,
    /// `<proceed/>` (TLS).
    TlsProceed,
    /// `<failure/>` (TLS).
    TlsFailure,
    /// SASL `<auth/>`.
    SaslAuth,
    /// SASL `<success/>`.
    SaslSuccess,
    /// SASL `<failure/>`.
    SaslFailure,
    /// `<stream:features/>`.
    Features,
    /// `<stream:error/>`.
    StreamError,
    /// Anything else.
    Other,
}

impl StanzaKind {
    fn of(ns: Option<&str>, local: &[u8]) -> StanzaKind {
        use StanzaKind::*;
        match (ns.unwrap_or(""), local) {
            (NS_SERVER | NS_CLIENT, b"message") => Message,
            (NS_SERVER | NS_CLIENT, b"presence") => Presence,
            (NS_SERVER | NS_CLIENT, b"iq") => Iq,
            (NS_DIALBACK, b"result") => DialbackResult,
            (NS_DIALBACK, b"verify") => DialbackVerify,
            (NS_TLS, b"starttls") => StartTls,
            (NS_TLS, b"proceed") => TlsProceed,
            (NS_TLS, b"failure") => TlsFailure,
            (NS_SASL, b"auth") => SaslAuth,
            (NS_SASL, b"success") => SaslSuccess,
            (NS_SASL, b"failure") => SaslFailure,
            (NS_STREAMS, b"features") => Features,
            (NS_STREAMS, b"error") => StreamError,
            _ => Other,
        }
    }
}

/// The header attributes whose positions a [`Stanza`] records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeaderAttr {
    /// `type`.
    Type = 0,
    /// `to`.
    To = 1,
    /// `from`.
    From = 2,
    /// `id`.
    Id = 3,
    /// `xml:lang`.
    Lang = 4,
}

/// Where the element's namespace comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NsSrc {
    None,
    Static(&'static str),
    /// A declaration on the element itself: raw value range in the bytes.
    Own(u32, u32),
    HeaderDefault,
    HeaderPrefix(u8),
}

/// The first child element of a stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildRef<'a> {
    /// Its local name.
    pub local_name: &'a str,
    /// Its namespace, `None` when no declaration is in scope.
    pub namespace: Option<Cow<'a, str>>,
}

/// A complete top-level element, borrowed from the framer's buffer without a copy.
///
/// The bytes are exactly the element, checked by the framer (restricted XML, UTF-8, caps).
/// Header attribute values are unescaped lazily. Forward content with
/// [`Stanza::write_children`], never by splicing [`Stanza::as_bytes`].
#[derive(Clone)]
pub struct Stanza {
    bytes: Bytes,
    /// The qualified name is `bytes[1..name_end]`.
    name_end: u32,
    /// Offset of the prefix colon in `bytes`, 0 when unprefixed.
    colon: u32,
    /// Offset of the start tag's `>`, or of the `/` of `/>` (an empty element).
    tag_end: u32,
    ns: NsSrc,
    kind: StanzaKind,
    /// Raw value ranges of the [`HeaderAttr`]s; `start == 0` means absent (offset 0 is `<`).
    attrs: [(u32, u32); 5],
    ctx: Arc<NsContext>,
}

fn as_str(b: &[u8]) -> &str {
    // The framer validated UTF-8 before building the view; never panic regardless.
    std::str::from_utf8(b).unwrap_or("")
}

fn offset_in(base: &[u8], part: &[u8]) -> Option<u32> {
    let off = (part.as_ptr() as usize).checked_sub(base.as_ptr() as usize)?;
    (off + part.len() <= base.len())
        .then_some(off)?
        .try_into()
        .ok()
}

impl Stanza {
    /// Reads the start tag of `bytes` (a complete element checked by the scanner, its start tag
    /// ending at `tag_end`).
    pub(crate) fn parse(
        bytes: Bytes,
        tag_end: usize,
        ctx: &Arc<NsContext>,
    ) -> Result<Stanza, FramerError> {
        let malformed = FramerError::Syntax("stanza start tag");
        let b = &bytes[..];
        let qname_end = 1 + b
            .get(1..)
            .and_then(|n| {
                n.iter()
                    .position(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'/' | b'>'))
            })
            .ok_or_else(|| malformed.clone())?;
        let prefix = memchr::memchr(b':', &b[1..qname_end]).map(|c| &b[1..1 + c]);
        let mut attrs = [(0u32, 0u32); 5];
        let mut own_ns = None;
        let tag = super::read_start_tag(b, 0, |key, value| {
            let slot = match key {
                b"type" => Some(HeaderAttr::Type),
                b"to" => Some(HeaderAttr::To),
                b"from" => Some(HeaderAttr::From),
                b"id" => Some(HeaderAttr::Id),
                b"xml:lang" => Some(HeaderAttr::Lang),
                _ => None,
            };
            // Stanzas are capped far below 4 GiB by the framer.
            let range = (value.start as u32, value.end as u32);
            match slot {
                Some(s) => attrs[s as usize] = range,
                None => {
                    let is_own_ns = match prefix {
                        None => key == b"xmlns",
                        Some(p) => key.strip_prefix(b"xmlns:") == Some(p),
                    };
                    if is_own_ns {
                        own_ns = Some(range);
                    }
                }
            }
        })
        .ok_or_else(|| malformed.clone())?;
        if tag.name.end != qname_end || tag.end != tag_end + 1 + usize::from(tag.empty) {
            return Err(malformed);
        }
        let name_end = qname_end;
        let colon = prefix.map_or(0, |p| 1 + p.len());
        let ns = match (own_ns, prefix) {
            (Some((s, e)), _) => {
                let v = unescape(as_str(&bytes[s as usize..e as usize]));
                match [
                    NS_SERVER,
                    NS_CLIENT,
                    NS_DIALBACK,
                    NS_TLS,
                    NS_SASL,
                    NS_STREAMS,
                ]
                .into_iter()
                .find(|k| *k == v)
                {
                    Some(k) => NsSrc::Static(k),
                    None => NsSrc::Own(s, e),
                }
            }
            (None, Some(b"xml")) => NsSrc::Static(NS_XML),
            (None, Some(p)) => match ctx.prefixes.iter().position(|(k, _)| k.as_bytes() == p) {
                Some(i) => NsSrc::HeaderPrefix(u8::try_from(i).map_err(|_| malformed.clone())?),
                None => NsSrc::None,
            },
            (None, None) if ctx.default.is_some() => NsSrc::HeaderDefault,
            (None, None) => NsSrc::None,
        };
        let mut s = Stanza {
            bytes,
            name_end: name_end as u32,
            colon: colon as u32,
            tag_end: u32::try_from(tag_end).map_err(|_| malformed.clone())?,
            ns,
            kind: StanzaKind::Other,
            attrs,
            ctx: Arc::clone(ctx),
        };
        s.kind = StanzaKind::of(s.namespace().as_deref(), s.local_name().as_bytes());
        Ok(s)
    }

    /// The element's bytes, exactly as received. For logs and metrics; forward with
    /// [`Stanza::write_children`].
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Where the element's content starts (just after the start tag's `>`); `None` for an empty
    /// element (`<x/>`).
    pub fn content_start(&self) -> Option<usize> {
        let end = self.tag_end as usize;
        (self.bytes.get(end) == Some(&b'>')).then_some(end + 1)
    }

    /// Length of the element in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: an element has at least `<x/>`.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// What the element is.
    pub fn kind(&self) -> StanzaKind {
        self.kind
    }

    /// The qualified name, e.g. `db:result`.
    pub fn name(&self) -> &str {
        as_str(&self.bytes[1..self.name_end as usize])
    }

    /// The local name, e.g. `result`.
    pub fn local_name(&self) -> &str {
        let start = if self.colon == 0 {
            1
        } else {
            self.colon as usize + 1
        };
        as_str(&self.bytes[start..self.name_end as usize])
    }

    /// The prefix, e.g. `db`.
    pub fn prefix(&self) -> Option<&str> {
        (self.colon != 0).then(|| as_str(&self.bytes[1..self.colon as usize]))
    }

    /// The resolved namespace: the element's own declaration, else the stream header's.
    pub fn namespace(&self) -> Option<Cow<'_, str>> {
        match self.ns {
            NsSrc::None => None,
            NsSrc::Static(s) => Some(Cow::Borrowed(s)),
            NsSrc::Own(s, e) => Some(unescape(as_str(&self.bytes[s as usize..e as usize]))),
            NsSrc::HeaderDefault => self.ctx.default.as_deref().map(Cow::Borrowed),
            NsSrc::HeaderPrefix(i) => self
                .ctx
                .prefixes
                .get(usize::from(i))
                .map(|(_, ns)| Cow::Borrowed(&**ns)),
        }
    }

    /// The raw (still escaped) value of a header attribute.
    pub fn attr_raw(&self, which: HeaderAttr) -> Option<&str> {
        let (s, e) = self.attrs[which as usize];
        (s != 0).then(|| as_str(&self.bytes[s as usize..e as usize]))
    }

    /// The value of a header attribute as an XML parser reports it (normalized, unescaped;
    /// borrowed unless it holds references or literal TAB/LF/CR).
    pub fn attr(&self, which: HeaderAttr) -> Option<Cow<'_, str>> {
        self.attr_raw(which).map(decode_attr)
    }

    /// `type`.
    pub fn stanza_type(&self) -> Option<Cow<'_, str>> {
        self.attr(HeaderAttr::Type)
    }

    /// `to`.
    pub fn to(&self) -> Option<Cow<'_, str>> {
        self.attr(HeaderAttr::To)
    }

    /// `from`.
    pub fn from(&self) -> Option<Cow<'_, str>> {
        self.attr(HeaderAttr::From)
    }

    /// `id`.
    pub fn id(&self) -> Option<Cow<'_, str>> {
        self.attr(HeaderAttr::Id)
    }

    /// `xml:lang`.
    pub fn lang(&self) -> Option<Cow<'_, str>> {
        self.attr(HeaderAttr::Lang)
    }

    fn reader(&self) -> Reader<&[u8]> {
        Reader::from_reader(&self.bytes[..])
    }

    /// Namespace of `prefix` (empty: default) declared on `el`, an element of these bytes.
    fn declared_on(&self, el: &BytesStart<'_>, prefix: &[u8]) -> Option<Cow<'_, str>> {
        let mut it = el.attributes();
        it.with_checks(false);
        it.flatten().find_map(|a| {
            let key = a.key.into_inner();
            let hit = if prefix.is_empty() {
                key == b"xmlns"
            } else {
                key.strip_prefix(b"xmlns:") == Some(prefix)
            };
            if !hit {
                return None;
            }
            match a.value {
                Cow::Borrowed(v) => Some(unescape(as_str(self.slice_of(v)))),
                Cow::Owned(v) => Some(Cow::Owned(unescape(as_str(&v)).into_owned())),
            }
        })
    }

    /// Namespace of `prefix` bound on the stanza element or the stream header.
    fn outer_ns(&self, top: &BytesStart<'_>, prefix: &[u8]) -> Option<Cow<'_, str>> {
        if prefix == b"xml" {
            return Some(Cow::Borrowed(NS_XML));
        }
        if let Some(ns) = self.declared_on(top, prefix) {
            return Some(ns);
        }
        if prefix.is_empty() {
            self.namespace()
        } else {
            self.ctx.prefix(prefix).map(Cow::Borrowed)
        }
    }

    /// The first child element, if any.
    pub fn first_child(&self) -> Option<ChildRef<'_>> {
        let mut r = self.reader();
        let top = match r.read_event() {
            Ok(XmlEvent::Start(s)) => s,
            _ => return None,
        };
        loop {
            match r.read_event() {
                Ok(XmlEvent::Start(c)) | Ok(XmlEvent::Empty(c)) => {
                    let qname = c.name();
                    let (local, prefix) = qname.decompose();
                    let local = offset_in(&self.bytes, local.into_inner())
                        .map(|o| &self.bytes[o as usize..o as usize + local.into_inner().len()])?;
                    let p = prefix.map_or(&b""[..], |p| p.into_inner());
                    let namespace = match self.declared_on(&c, p) {
                        Some(ns) => Some(ns),
                        None => self.outer_ns(&top, p),
                    };
                    return Some(ChildRef {
                        local_name: as_str(local),
                        namespace,
                    });
                }
                Ok(XmlEvent::End(_)) | Ok(XmlEvent::Eof) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The character data of the element (a dialback key, a SASL payload), when it has no child
    /// elements; borrowed when it is one run without references.
    pub fn text(&self) -> Result<Cow<'_, str>, FramerError> {
        let mut r = self.reader();
        match r.read_event() {
            Ok(XmlEvent::Start(_)) => {}
            Ok(XmlEvent::Empty(_)) => return Ok(Cow::Borrowed("")),
            _ => return Err(FramerError::Syntax("stanza start tag")),
        }
        let mut out: Cow<'_, str> = Cow::Borrowed("");
        loop {
            let piece: Cow<'_, str> = match r.read_event() {
                Ok(XmlEvent::Text(t)) => match t.into_inner() {
                    Cow::Borrowed(b) => decode_text(as_str(b)),
                    Cow::Owned(b) => Cow::Owned(decode_text(as_str(&b)).into_owned()),
                },
                Ok(XmlEvent::CData(c)) => match c.into_inner() {
                    Cow::Borrowed(b) => Cow::Borrowed(as_str(b)),
                    Cow::Owned(b) => Cow::Owned(as_str(&b).to_owned()),
                },
                Ok(XmlEvent::Start(_)) | Ok(XmlEvent::Empty(_)) => {
                    return Err(FramerError::UnexpectedChildElement)
                }
                Ok(XmlEvent::End(_)) | Ok(XmlEvent::Eof) => return Ok(out),
                Ok(_) => continue,
                Err(_) => return Err(FramerError::Syntax("stanza content")),
            };
            if out.is_empty() {
                out = piece;
            } else if !piece.is_empty() {
                out.to_mut().push_str(&piece);
            }
        }
    }

    /// Appends the children of the element (elements, text, CDATA as text), re-serialized from
    /// parsed events: names as received, every attribute value and text re-escaped, so what is
    /// forwarded is well-formed whatever the received bytes were. Iterative, never recursive.
    ///
    /// A prefix that a child uses but that is bound outside the children (on the stanza element
    /// or the stream header, e.g. `db:`) gets its declaration written on the outermost child
    /// using it, so the output stands alone. Unprefixed children without their own `xmlns`
    /// inherit the default namespace where they are written (a `<body/>` follows its stanza,
    /// `jabber:client` or `jabber:server`).
    pub fn write_children(&self, out: &mut Vec<u8>) {
        let mut r = self.reader();
        let top = match r.read_event() {
            Ok(XmlEvent::Start(s)) => s,
            _ => return,
        };
        // Prefixes declared in the output so far, with the depth that declared them.
        let mut declared: SmallVec<[(&[u8], u32); 8]> = SmallVec::new();
        let mut depth: u32 = 0;
        loop {
            match r.read_event() {
                Ok(XmlEvent::Start(e)) => {
                    depth += 1;
                    self.write_start(&top, &e, depth, &mut declared, out);
                    out.push(b'>');
                }
                Ok(XmlEvent::Empty(e)) => {
                    self.write_start(&top, &e, depth + 1, &mut declared, out);
                    out.extend_from_slice(b"/>");
                    declared.retain(|d| d.1 <= depth);
                }
                Ok(XmlEvent::End(e)) => {
                    if depth == 0 {
                        return;
                    }
                    out.extend_from_slice(b"</");
                    out.extend_from_slice(e.name().as_ref());
                    out.push(b'>');
                    declared.retain(|d| d.1 < depth);
                    depth -= 1;
                }
                Ok(XmlEvent::Text(t)) => escape_text(&decode_text(as_str(&t)), out),
                Ok(XmlEvent::CData(c)) => escape_text(as_str(&c), out),
                Ok(XmlEvent::Eof) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    fn write_start<'a>(
        &'a self,
        top: &BytesStart<'_>,
        e: &BytesStart<'_>,
        depth: u32,
        declared: &mut SmallVec<[(&'a [u8], u32); 8]>,
        out: &mut Vec<u8>,
    ) {
        let qname = e.name();
        out.push(b'<');
        out.extend_from_slice(qname.as_ref());
        let mut used: SmallVec<[&'a [u8]; 4]> = SmallVec::new();
        if let Some(p) = qname.prefix() {
            used.push(self.slice_of(p.into_inner()));
        }
        let mut it = e.attributes();
        it.with_checks(false);
        for a in it.flatten() {
            let key = a.key.into_inner();
            if let Some(p) = key.strip_prefix(b"xmlns:") {
                declared.push((self.slice_of(p), depth));
            } else if let Some(p) = a.key.prefix() {
                used.push(self.slice_of(p.into_inner()));
            }
            out.push(b' ');
            out.extend_from_slice(key);
            out.extend_from_slice(b"='");
            escape_attr(&decode_attr(as_str(&a.value)), out);
            out.push(b'\'');
        }
        for p in used {
            if p == b"xml" || p == b"xmlns" || declared.iter().any(|d| d.0 == p) {
                continue;
            }
            if let Some(ns) = self.outer_ns(top, p) {
                out.extend_from_slice(b" xmlns:");
                out.extend_from_slice(p);
                out.extend_from_slice(b"='");
                escape_attr(&ns, out);
                out.push(b'\'');
                declared.push((p, depth));
            }
        }
    }

    /// `part` re-borrowed from the stanza bytes (quick-xml hands out slices of them), so it
    /// outlives the event it came from.
    fn slice_of(&self, part: &[u8]) -> &[u8] {
        match offset_in(&self.bytes, part) {
            Some(o) => &self.bytes[o as usize..o as usize + part.len()],
            None => b"",
        }
    }
}

impl PartialEq for Stanza {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes && self.namespace() == other.namespace()
    }
}

impl fmt::Debug for Stanza {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stanza")
            .field("kind", &self.kind)
            .field("bytes", &String::from_utf8_lossy(&self.bytes))
            .finish()
    }
}
