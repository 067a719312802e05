//! Why the framer rejected a stream, and the RFC 6120 stream condition each reason maps to.

use std::fmt;

use crate::xmpp::error::StreamCondition;

/// Which cap of [`crate::xml::FramerLimits`] was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `max_stanza_bytes`.
    StanzaBytes,
    /// `max_header_bytes`.
    HeaderBytes,
    /// `max_depth`.
    Depth,
    /// `max_attributes`.
    Attributes,
    /// `max_elements`.
    Elements,
}

/// A violation found in the peer's XML. The peer is always the side at fault; once returned, the
/// framer stays failed and returns the same error on every later call (it never resynchronizes:
/// resyncing after a parse error is how stanza smuggling works).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FramerError {
    /// Bytes that are not UTF-8 (RFC 6120 §11.6).
    InvalidUtf8,
    /// A character outside the XML 1.0 `Char` production (e.g. U+0000, U+FFFE).
    IllegalChar,
    /// An end tag that does not match the open element.
    MismatchedTag,
    /// A `<` inside an attribute value.
    LtInAttributeValue,
    /// The same attribute twice on one element.
    DuplicateAttribute,
    /// Non-whitespace character data between stanzas, or anything after `</stream:stream>`.
    TextAtStreamLevel,
    /// `]]>` in character data.
    CdataEndInText,
    /// A malformed `&...;` reference (no `;`, bad characters).
    MalformedReference,
    /// A name that is not a valid qualified name (empty prefix or local part, several colons).
    BadName,
    /// `<stream:stream/>` or a header that is not a start tag.
    BadStreamHeader,
    /// Any other syntax error; the string says what was expected.
    Syntax(&'static str),
    /// A DOCTYPE or other DTD markup declaration (RFC 6120 §11.1).
    Doctype,
    /// A processing instruction other than the leading XML declaration (RFC 6120 §11.1).
    ProcessingInstruction,
    /// A comment (RFC 6120 §11.1).
    Comment,
    /// An entity reference other than the five predefined ones (RFC 6120 §11.1).
    EntityReference,
    /// A character reference to a character XML does not allow (`&#0;`).
    InvalidCharReference,
    /// A `stream` start tag in the streams namespace inside the stream (the nested-stream
    /// smuggling attack). Well-formed XML, but invalid against the streams schema: `invalid-xml`.
    NestedStream,
    /// A prefix used on an element or attribute without a namespace declaration in scope.
    UnboundPrefix,
    /// An XML declaration naming an encoding other than UTF-8.
    UnsupportedEncoding,
    /// A cap of [`crate::xml::FramerLimits`] was crossed.
    LimitExceeded(Limit),
    /// [`crate::xml::Stanza::text`] was asked for the text of an element that has child elements.
    UnexpectedChildElement,
}

impl FramerError {
    /// The RFC 6120 §4.9.3 stream error condition to close the stream with.
    pub fn condition(&self) -> StreamCondition {
        use FramerError::*;
        match self {
            InvalidUtf8 | IllegalChar | MismatchedTag | LtInAttributeValue | DuplicateAttribute
            | TextAtStreamLevel | CdataEndInText | MalformedReference | BadName
            | BadStreamHeader | Syntax(_) => StreamCondition::NotWellFormed,
            Doctype | ProcessingInstruction | Comment | EntityReference | InvalidCharReference => {
                StreamCondition::RestrictedXml
            }
            NestedStream | UnexpectedChildElement => StreamCondition::InvalidXml,
            UnboundPrefix => StreamCondition::BadNamespacePrefix,
            UnsupportedEncoding => StreamCondition::UnsupportedEncoding,
            LimitExceeded(_) => StreamCondition::PolicyViolation,
        }
    }
}

impl fmt::Display for FramerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use FramerError::*;
        let what = match self {
            InvalidUtf8 => "invalid UTF-8",
            IllegalChar => "character not allowed in XML",
            MismatchedTag => "end tag does not match the open element",
            LtInAttributeValue => "'<' in an attribute value",
            DuplicateAttribute => "duplicate attribute",
            TextAtStreamLevel => "character data at stream level",
            CdataEndInText => "']]>' in character data",
            MalformedReference => "malformed reference",
            BadName => "invalid qualified name",
            BadStreamHeader => "invalid stream header",
            Syntax(s) => return write!(f, "peer sent malformed XML: {s} (not-well-formed)"),
            Doctype => "DTD markup",
            ProcessingInstruction => "processing instruction",
            Comment => "comment",
            EntityReference => "entity reference",
            InvalidCharReference => "reference to a character XML does not allow",
            NestedStream => "nested stream header",
            UnboundPrefix => "unbound namespace prefix",
            UnsupportedEncoding => "encoding other than UTF-8",
            LimitExceeded(l) => return write!(f, "peer exceeded {l:?} limit (policy-violation)"),
            UnexpectedChildElement => "child element where only text is allowed",
        };
        write!(f, "peer sent {what} ({})", self.condition())
    }
}

impl std::error::Error for FramerError {}
