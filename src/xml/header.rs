//! The stream header (`<stream:stream ...>`) and the namespace bindings it declares.

use quick_xml::events::Event as XmlEvent;
use quick_xml::Reader;
use smallvec::SmallVec;

use super::error::FramerError;
use super::escape::unescape;

/// What a peer's stream header said, as owned small fields. The framer only reports it: the
/// stream state machine checks the namespaces, `version`, `to` and `from`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamHeader {
    /// Local name of the element (`stream` on a valid stream).
    pub local_name: String,
    /// Prefix of the element name (`stream` by convention), `None` when unprefixed.
    pub prefix: Option<String>,
    /// Namespace the element name resolves to (must be the streams namespace).
    pub namespace: Option<String>,
    /// Default namespace declared on the header (`jabber:server` on S2S).
    pub default_ns: Option<String>,
    /// Namespace bound to the `db` prefix, if declared (`jabber:server:dialback`).
    pub dialback_ns: Option<String>,
    /// `to` attribute.
    pub to: Option<String>,
    /// `from` attribute.
    pub from: Option<String>,
    /// `id` attribute.
    pub id: Option<String>,
    /// `version` attribute.
    pub version: Option<String>,
    /// `xml:lang` attribute.
    pub lang: Option<String>,
}

/// Namespace bindings in scope for every stanza of a stream: those the header declared.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct NsContext {
    pub(crate) default: Option<Box<str>>,
    pub(crate) prefixes: SmallVec<[(Box<str>, Box<str>); 4]>,
}

impl NsContext {
    /// The namespace bound to `prefix` by the header.
    pub(crate) fn prefix(&self, prefix: &[u8]) -> Option<&str> {
        self.prefixes
            .iter()
            .find(|(p, _)| p.as_bytes() == prefix)
            .map(|(_, ns)| &**ns)
    }
}

fn owned(raw: &[u8]) -> Result<String, FramerError> {
    let s = std::str::from_utf8(raw).map_err(|_| FramerError::InvalidUtf8)?;
    Ok(unescape(s).into_owned())
}

impl StreamHeader {
    /// Reads a stream header start tag (`<...>`, already checked by the scanner) with quick-xml.
    pub(crate) fn parse(tag: &[u8]) -> Result<(StreamHeader, NsContext), FramerError> {
        let mut reader = Reader::from_reader(tag);
        let start = match reader.read_event() {
            Ok(XmlEvent::Start(s)) => s,
            _ => return Err(FramerError::BadStreamHeader),
        };
        let mut h = StreamHeader::default();
        let mut ctx = NsContext::default();
        let qname = start.name();
        let (local, prefix) = qname.decompose();
        h.local_name = owned(local.as_ref())?;
        h.prefix = prefix.map(|p| owned(p.as_ref())).transpose()?;
        let mut used_prefixes: SmallVec<[&[u8]; 4]> = SmallVec::new();
        for attr in start.attributes() {
            let attr = attr.map_err(|_| FramerError::Syntax("stream header attribute"))?;
            let key: &[u8] = attr.key.into_inner();
            let value = || owned(&attr.value);
            match key {
                b"xmlns" => {
                    let v = value()?;
                    ctx.default = Some(v.clone().into_boxed_str());
                    h.default_ns = Some(v);
                }
                b"to" => h.to = Some(value()?),
                b"from" => h.from = Some(value()?),
                b"id" => h.id = Some(value()?),
                b"version" => h.version = Some(value()?),
                b"xml:lang" => h.lang = Some(value()?),
                _ => {
                    if let Some(p) = key.strip_prefix(b"xmlns:") {
                        let v = value()?;
                        if p == b"db" {
                            h.dialback_ns = Some(v.clone());
                        }
                        ctx.prefixes
                            .push((owned(p)?.into_boxed_str(), v.into_boxed_str()));
                    } else if let Some(colon) = memchr::memchr(b':', key) {
                        used_prefixes.push(&key[..colon]);
                    }
                }
            }
        }
        for p in used_prefixes {
            if p != b"xml" && ctx.prefix(p).is_none() {
                return Err(FramerError::UnboundPrefix);
            }
        }
        h.namespace = match prefix {
            Some(p) => match p.as_ref() {
                b"xmlns" => return Err(FramerError::UnboundPrefix),
                p => Some(ctx.prefix(p).ok_or(FramerError::UnboundPrefix)?.to_owned()),
            },
            None => h.default_ns.clone(),
        };
        Ok((h, ctx))
    }
}

/// Checks an XML declaration (`<?xml ...?>`): only UTF-8 may be declared (RFC 6120 §11.6).
pub(crate) fn check_declaration(decl: &[u8]) -> Result<(), FramerError> {
    let mut reader = Reader::from_reader(decl);
    match reader.read_event() {
        Ok(XmlEvent::Decl(d)) => match d.encoding() {
            None => Ok(()),
            Some(Ok(enc)) if enc.eq_ignore_ascii_case(b"utf-8") => Ok(()),
            Some(Ok(_)) => Err(FramerError::UnsupportedEncoding),
            Some(Err(_)) => Err(FramerError::Syntax("XML declaration")),
        },
        _ => Err(FramerError::Syntax("XML declaration")),
    }
}
