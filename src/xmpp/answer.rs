//! The stanzas the router answers by itself until the gateway exists (issue 2 §7): XEP-0199 ping,
//! XEP-0030 disco#info and XEP-0092 version for our domains, and `service-unavailable` for users.
//!
//! Replies are built from parsed, checked fields and escaped; the original payload is never echoed
//! (no smuggling, no depth to recurse on). An error is never answered with an error, nor a result.

use crate::xml::escape_attr;
use crate::xml::{Stanza, StanzaKind};
use crate::xmpp::error::StanzaCondition;
use crate::xmpp::jid;

/// `urn:xmpp:ping`
pub const NS_PING: &str = "urn:xmpp:ping";
/// `http://jabber.org/protocol/disco#info`
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// `jabber:iq:version`
pub const NS_VERSION: &str = "jabber:iq:version";

/// A reply to send back to the stanza's sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Our domain sending the reply (the original `to` domain).
    pub from_domain: String,
    /// Domain of the recipient (the original sender): selects the outbound stream.
    pub to_domain: String,
    /// The serialized stanza.
    pub bytes: Vec<u8>,
}

fn open(out: &mut Vec<u8>, name: &str, from: &str, to: &str, id: Option<&str>, ty: &str) {
    out.push(b'<');
    out.extend_from_slice(name.as_bytes());
    for (k, v) in [
        ("from", Some(from)),
        ("to", Some(to)),
        ("id", id),
        ("type", Some(ty)),
    ] {
        if let Some(v) = v {
            out.push(b' ');
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b"='");
            escape_attr(v, out);
            out.push(b'\'');
        }
    }
}

/// `<NAME from to id type='error'><error type><COND/></error></NAME>` answering `s`.
pub fn error_reply(s: &Stanza, name: &str, cond: StanzaCondition) -> Option<Reply> {
    let (from, to) = (s.from()?, s.to()?);
    let mut out = Vec::with_capacity(256);
    open(&mut out, name, &to, &from, s.id().as_deref(), "error");
    out.extend_from_slice(b"><error type='");
    out.extend_from_slice(cond.error_type().as_str().as_bytes());
    out.extend_from_slice(b"'><");
    out.extend_from_slice(cond.as_str().as_bytes());
    out.extend_from_slice(b" xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></");
    out.extend_from_slice(name.as_bytes());
    out.push(b'>');
    Some(Reply {
        from_domain: jid::domain_of(&to).to_ascii_lowercase(),
        to_domain: jid::domain_of(&from).to_ascii_lowercase(),
        bytes: out,
    })
}

/// Answers a stanza addressed to one of our domains themselves (no localpart).
pub fn answer_domain(s: &Stanza) -> Option<Reply> {
    let ty = s.stanza_type();
    match s.kind() {
        StanzaKind::Iq => match ty.as_deref() {
            Some("get") => {
                let child = s.first_child();
                let ns = child.as_ref().and_then(|c| c.namespace.as_deref());
                match (child.as_ref().map(|c| c.local_name), ns) {
                    (Some("ping"), Some(NS_PING)) => iq_result(s, None),
                    (Some("query"), Some(NS_DISCO_INFO)) => iq_result(
                        s,
                        Some(
                            "<query xmlns='http://jabber.org/protocol/disco#info'>\
                             <identity category='server' type='im' name='stanza-router'/>\
                             <feature var='http://jabber.org/protocol/disco#info'/>\
                             <feature var='urn:xmpp:ping'/>\
                             <feature var='jabber:iq:version'/></query>",
                        ),
                    ),
                    (Some("query"), Some(NS_VERSION)) => iq_result(
                        s,
                        Some(concat!(
                            "<query xmlns='jabber:iq:version'><name>stanza-router</name><version>",
                            env!("CARGO_PKG_VERSION"),
                            "</version></query>"
                        )),
                    ),
                    _ => error_reply(s, "iq", StanzaCondition::ServiceUnavailable),
                }
            }
            Some("set") => error_reply(s, "iq", StanzaCondition::ServiceUnavailable),
            // result/error: never answered; a missing/unknown type is a bad request.
            Some("result") | Some("error") => None,
            _ => error_reply(s, "iq", StanzaCondition::BadRequest),
        },
        StanzaKind::Message => match ty.as_deref() {
            Some("error") | Some("headline") => None,
            _ => error_reply(s, "message", StanzaCondition::ServiceUnavailable),
        },
        // Presence to a server domain is not routed further (RFC 6121 §8.5.1 analogue).
        _ => None,
    }
}

/// Answers a stanza addressed to a user of ours while no gateway serves users: the owning shard
/// replies `service-unavailable` (RFC 6121 §8.5.2, ⚠ presence rows from memory of the RFC:
/// subscribe and probe get `unsubscribed`, other presence is ignored).
pub fn answer_user(s: &Stanza) -> Option<Reply> {
    let ty = s.stanza_type();
    match s.kind() {
        StanzaKind::Iq => match ty.as_deref() {
            Some("get") | Some("set") => error_reply(s, "iq", StanzaCondition::ServiceUnavailable),
            Some("result") | Some("error") => None,
            _ => error_reply(s, "iq", StanzaCondition::BadRequest),
        },
        StanzaKind::Message => match ty.as_deref() {
            Some("error") | Some("headline") => None,
            _ => error_reply(s, "message", StanzaCondition::ServiceUnavailable),
        },
        StanzaKind::Presence => match ty.as_deref() {
            Some("subscribe") | Some("probe") => {
                let (from, to) = (s.from()?, s.to()?);
                let bare_to = &to[..jid::Jid::parse(&to).ok()?.bare_len()];
                let bare_from_len = jid::Jid::parse(&from).ok()?.bare_len();
                let mut out = Vec::with_capacity(128);
                open(
                    &mut out,
                    "presence",
                    bare_to,
                    &from[..bare_from_len],
                    None,
                    "unsubscribed",
                );
                out.extend_from_slice(b"/>");
                Some(Reply {
                    from_domain: jid::domain_of(&to).to_ascii_lowercase(),
                    to_domain: jid::domain_of(&from).to_ascii_lowercase(),
                    bytes: out,
                })
            }
            _ => None,
        },
        _ => None,
    }
}

fn iq_result(s: &Stanza, payload: Option<&str>) -> Option<Reply> {
    let (from, to) = (s.from()?, s.to()?);
    let mut out = Vec::with_capacity(128 + payload.map_or(0, str::len));
    open(&mut out, "iq", &to, &from, s.id().as_deref(), "result");
    match payload {
        None => out.extend_from_slice(b"/>"),
        Some(p) => {
            out.push(b'>');
            out.extend_from_slice(p.as_bytes());
            out.extend_from_slice(b"</iq>");
        }
    }
    Some(Reply {
        from_domain: jid::domain_of(&to).to_ascii_lowercase(),
        to_domain: jid::domain_of(&from).to_ascii_lowercase(),
        bytes: out,
    })
}
