//! What we write on an S2S stream: headers, features, negotiation elements, errors.
//!
//! Every attribute value and text goes through the escaping writer; nothing a peer sent is copied
//! into our output unescaped.

use crate::xml::{escape_attr, escape_text};
use crate::xmpp::error::{StanzaCondition, StreamCondition};

/// `http://etherx.jabber.org/streams`
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
/// `jabber:server`
pub const NS_SERVER: &str = "jabber:server";
/// `jabber:server:dialback`
pub const NS_DIALBACK: &str = "jabber:server:dialback";
/// `urn:ietf:params:xml:ns:xmpp-tls`
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// `urn:ietf:params:xml:ns:xmpp-sasl`
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// `urn:ietf:params:xml:ns:xmpp-streams`
pub const NS_STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// `urn:ietf:params:xml:ns:xmpp-stanzas`
pub const NS_STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// `urn:xmpp:features:dialback` (XEP-0220 stream feature)
pub const NS_DIALBACK_FEATURE: &str = "urn:xmpp:features:dialback";

fn attr(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"='");
    escape_attr(value, out);
    out.push(b'\'');
}

/// Our stream header. `to` is omitted when unknown (a peer whose header failed validation).
pub fn stream_header(out: &mut Vec<u8>, from: Option<&str>, to: Option<&str>, id: Option<&str>) {
    out.extend_from_slice(
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
          xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'",
    );
    if let Some(f) = from {
        attr(out, "from", f);
    }
    if let Some(t) = to {
        attr(out, "to", t);
    }
    if let Some(i) = id {
        attr(out, "id", i);
    }
    out.extend_from_slice(b" version='1.0'>");
}

/// What we offer in `<stream:features/>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// STARTTLS offered; `Some(true)` when required.
    pub starttls: Option<bool>,
    /// SASL EXTERNAL offered.
    pub sasl_external: bool,
    /// Dialback (XEP-0220 feature, with error support).
    pub dialback: bool,
}

/// `<stream:features>…</stream:features>`.
pub fn features(out: &mut Vec<u8>, f: Features) {
    out.extend_from_slice(b"<stream:features>");
    if let Some(required) = f.starttls {
        out.extend_from_slice(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>");
        if required {
            out.extend_from_slice(b"<required/>");
        }
        out.extend_from_slice(b"</starttls>");
    }
    if f.sasl_external {
        out.extend_from_slice(
            b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms>",
        );
    }
    if f.dialback {
        out.extend_from_slice(b"<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>");
    }
    out.extend_from_slice(b"</stream:features>");
}

/// `<stream:error>` with an optional text, then the closing tag.
pub fn stream_error(out: &mut Vec<u8>, cond: StreamCondition, text: Option<&str>) {
    out.extend_from_slice(b"<stream:error><");
    out.extend_from_slice(cond.as_str().as_bytes());
    out.extend_from_slice(b" xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>");
    if let Some(t) = text {
        out.extend_from_slice(b"<text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>");
        escape_text(t, out);
        out.extend_from_slice(b"</text>");
    }
    out.extend_from_slice(b"</stream:error></stream:stream>");
}

/// `</stream:stream>`
pub fn stream_close(out: &mut Vec<u8>) {
    out.extend_from_slice(b"</stream:stream>");
}

/// `<starttls/>`, `<proceed/>`, `<failure/>` of the TLS namespace.
pub fn tls_element(out: &mut Vec<u8>, name: &str) {
    out.push(b'<');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b" xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
}

/// `<auth mechanism='EXTERNAL'>` with a base64 authzid (or `=` for none).
pub fn sasl_auth_external(out: &mut Vec<u8>, authzid_b64: &str) {
    out.extend_from_slice(b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>");
    escape_text(authzid_b64, out);
    out.extend_from_slice(b"</auth>");
}

/// `<success/>` of SASL.
pub fn sasl_success(out: &mut Vec<u8>) {
    out.extend_from_slice(b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
}

/// `<failure><CONDITION/></failure>` of SASL (RFC 6120 §6.5).
pub fn sasl_failure(out: &mut Vec<u8>, condition: &str) {
    out.extend_from_slice(b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><");
    out.extend_from_slice(condition.as_bytes());
    out.extend_from_slice(b"/></failure>");
}

/// Which dialback element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbElement {
    /// `<db:result/>`
    Result,
    /// `<db:verify/>`
    Verify,
}

impl DbElement {
    fn name(self) -> &'static [u8] {
        match self {
            DbElement::Result => b"db:result",
            DbElement::Verify => b"db:verify",
        }
    }
}

/// A dialback request carrying a key: `<db:result from to>KEY</db:result>` or `<db:verify … id>KEY`.
pub fn db_request(
    out: &mut Vec<u8>,
    el: DbElement,
    from: &str,
    to: &str,
    id: Option<&str>,
    key: &str,
) {
    out.push(b'<');
    out.extend_from_slice(el.name());
    attr(out, "from", from);
    attr(out, "to", to);
    if let Some(i) = id {
        attr(out, "id", i);
    }
    out.push(b'>');
    escape_text(key, out);
    out.extend_from_slice(b"</");
    out.extend_from_slice(el.name());
    out.push(b'>');
}

/// A dialback answer: `type='valid'|'invalid'`, or `type='error'` with a stanza error condition.
pub fn db_answer(
    out: &mut Vec<u8>,
    el: DbElement,
    from: &str,
    to: &str,
    id: Option<&str>,
    answer: Result<bool, StanzaCondition>,
) {
    out.push(b'<');
    out.extend_from_slice(el.name());
    attr(out, "from", from);
    attr(out, "to", to);
    if let Some(i) = id {
        attr(out, "id", i);
    }
    match answer {
        Ok(valid) => {
            attr(out, "type", if valid { "valid" } else { "invalid" });
            out.extend_from_slice(b"/>");
        }
        Err(cond) => {
            attr(out, "type", "error");
            out.extend_from_slice(b"><error type='");
            out.extend_from_slice(cond.error_type().as_str().as_bytes());
            out.extend_from_slice(b"'><");
            out.extend_from_slice(cond.as_str().as_bytes());
            out.extend_from_slice(b" xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></");
            out.extend_from_slice(el.name());
            out.push(b'>');
        }
    }
}

/// A fresh random stream id (128 bits, hex).
pub fn new_stream_id() -> String {
    let mut raw = [0u8; 16];
    getrandom::getrandom(&mut raw).expect("the OS random source is available");
    hex::encode(raw)
}
