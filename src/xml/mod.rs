//! XML for XMPP streams: the sans-IO zero-copy stanza framer, the stanza view, the escaping writer.
//!
//! [`Framer`] takes the bytes read from a stream and yields [`Event`]s: the stream header, each
//! complete top-level element as a [`Stanza`] (a view into a shared buffer, no copy), the stream
//! close. It enforces RFC 6120 §11 restricted XML and the [`FramerLimits`] caps while scanning;
//! any violation is a [`FramerError`] that maps to the stream condition to close with, and the
//! framer never resynchronizes after one. Content forwarded elsewhere is re-serialized
//! ([`Stanza::write_children`], [`escape_text`], [`escape_attr`]), never spliced as raw bytes.

mod error;
mod escape;
mod framer;
mod header;
mod limits;
mod scan;
mod stanza;
mod tag;

pub use error::{FramerError, Limit};
pub(crate) use escape::{decode_attr, decode_text};
pub use escape::{escape_attr, escape_text, is_xml_char, open_stanza, unescape};
pub use framer::{Event, Framer};
pub use header::StreamHeader;
pub use limits::FramerLimits;
pub use stanza::{ChildRef, HeaderAttr, Stanza, StanzaKind};
pub(crate) use tag::read_start_tag;

/// The streams namespace (RFC 6120 §4.8.1).
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
/// The default content namespace of server-to-server streams.
pub const NS_SERVER: &str = "jabber:server";
/// The default content namespace of client-to-server streams.
pub const NS_CLIENT: &str = "jabber:client";
/// The server dialback namespace (XEP-0220), usually bound to the `db` prefix.
pub const NS_DIALBACK: &str = "jabber:server:dialback";
/// The STARTTLS namespace (RFC 6120 §5).
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// The SASL namespace (RFC 6120 §6).
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// The namespace bound to the `xml` prefix by definition.
pub const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";

#[cfg(test)]
mod tests;
