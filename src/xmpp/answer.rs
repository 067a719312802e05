//! The stanzas the router answers by itself until the gateway exists (issue 2 §7): XEP-0199 ping,
//! XEP-0030 disco#info and XEP-0092 version for our domains, and `service-unavailable` for users.
//!
//! Replies are built from parsed, checked fields and escaped; the original payload is never echoed
//! (no smuggling, no depth to recurse on). An error is never answered with an error, nor a result.

use crate::xml::open_stanza;
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

/// `<NAME from to id type='error'><error type><COND/></error></NAME>` answering `s`.
pub fn error_reply(s: &Stanza, name: &str, cond: StanzaCondition) -> Option<Reply> {
    let (from, to) = (s.from()?, s.to()?);
    Some(error_to(name, &to, &from, s.id().as_deref(), cond))
}

/// An error stanza `NAME` from our `from` (the original recipient) to `to` (the original sender).
pub fn error_to(
    name: &str,
    from: &str,
    to: &str,
    id: Option<&str>,
    cond: StanzaCondition,
) -> Reply {
    let mut out = Vec::with_capacity(256);
    open_stanza(&mut out, name, from, to, id, Some("error"));
    out.extend_from_slice(b"><error type='");
    out.extend_from_slice(cond.error_type().as_str().as_bytes());
    out.extend_from_slice(b"'><");
    out.extend_from_slice(cond.as_str().as_bytes());
    out.extend_from_slice(b" xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></");
    out.extend_from_slice(name.as_bytes());
    out.push(b'>');
    Reply {
        from_domain: jid::domain_of(from).to_ascii_lowercase(),
        to_domain: jid::domain_of(to).to_ascii_lowercase(),
        bytes: out,
    }
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
                open_stanza(
                    &mut out,
                    "presence",
                    bare_to,
                    &from[..bare_from_len],
                    None,
                    Some("unsubscribed"),
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
    open_stanza(
        &mut out,
        "iq",
        &to,
        &from,
        s.id().as_deref(),
        Some("result"),
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{Event, Framer, FramerLimits};

    const HEADER: &str = "<stream:stream xmlns='jabber:server' \
        xmlns:stream='http://etherx.jabber.org/streams' from='a.test' to='corp.test' version='1.0'>";

    /// The stanza as a peer's stream delivers it: header, then the element, through the framer.
    fn stanza(xml: &str) -> Stanza {
        let mut f = Framer::new(FramerLimits::default());
        f.feed(HEADER.as_bytes());
        f.feed(xml.as_bytes());
        assert!(matches!(f.next_event(), Ok(Some(Event::StreamOpen(_)))));
        match f.next_event() {
            Ok(Some(Event::Stanza(s))) => s,
            other => panic!("{xml}: expected a stanza, got {other:?}"),
        }
    }

    #[derive(Clone, Copy)]
    enum To {
        Domain,
        User,
    }

    fn answer(to: To, xml: &str) -> Option<String> {
        let s = stanza(xml);
        let reply = match to {
            To::Domain => answer_domain(&s),
            To::User => answer_user(&s),
        }?;
        Some(String::from_utf8(reply.bytes).expect("replies are UTF-8"))
    }

    fn error(name: &str, to: &str, id: &str, ty: &str, cond: &str) -> String {
        format!(
            "<{name} from='corp.test' to='{to}' id='{id}' type='error'><error type='{ty}'>\
             <{cond} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></{name}>"
        )
    }

    #[test]
    fn answers_by_table() {
        let disco = "<iq from='corp.test' to='alice@a.test/r' id='d1' type='result'>\
            <query xmlns='http://jabber.org/protocol/disco#info'>\
            <identity category='server' type='im' name='stanza-router'/>\
            <feature var='http://jabber.org/protocol/disco#info'/>\
            <feature var='urn:xmpp:ping'/>\
            <feature var='jabber:iq:version'/></query></iq>"
            .to_string();
        let version = format!(
            "<iq from='corp.test' to='alice@a.test/r' id='v1' type='result'>\
             <query xmlns='jabber:iq:version'><name>stanza-router</name>\
             <version>{}</version></query></iq>",
            env!("CARGO_PKG_VERSION")
        );
        let unavailable = |name: &str, id: &str| {
            error(name, "alice@a.test/r", id, "cancel", "service-unavailable")
        };
        let cases: Vec<(&str, To, &str, Option<String>)> = vec![
            (
                "ping: result with from/to swapped and id kept",
                To::Domain,
                "<iq from='alice@a.test/r' to='corp.test' id='p1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
                Some("<iq from='corp.test' to='alice@a.test/r' id='p1' type='result'/>".into()),
            ),
            (
                "disco#info: server/im identity and three features",
                To::Domain,
                "<iq from='alice@a.test/r' to='corp.test' id='d1' type='get'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
                Some(disco),
            ),
            (
                "version: our name",
                To::Domain,
                "<iq from='alice@a.test/r' to='corp.test' id='v1' type='get'><query xmlns='jabber:iq:version'/></iq>",
                Some(version),
            ),
            (
                "unknown iq get to the domain",
                To::Domain,
                "<iq from='alice@a.test/r' to='corp.test' id='u1' type='get'><query xmlns='jabber:iq:roster'/></iq>",
                Some(unavailable("iq", "u1")),
            ),
            (
                "ping element in the wrong namespace",
                To::Domain,
                "<iq from='alice@a.test/r' to='corp.test' id='u2' type='get'><ping xmlns='urn:example'/></iq>",
                Some(unavailable("iq", "u2")),
            ),
            (
                "iq set to the domain",
                To::Domain,
                "<iq from='alice@a.test/r' to='corp.test' id='s1' type='set'><ping xmlns='urn:xmpp:ping'/></iq>",
                Some(unavailable("iq", "s1")),
            ),
            (
                "iq without a type is a bad request",
                To::Domain,
                "<iq from='alice@a.test/r' to='corp.test' id='b1'><ping xmlns='urn:xmpp:ping'/></iq>",
                Some(error("iq", "alice@a.test/r", "b1", "modify", "bad-request")),
            ),
            (
                "iq result to the domain",
                To::Domain,
                "<iq from='alice@a.test/r' to='corp.test' id='r1' type='result'/>",
                None,
            ),
            (
                "iq error to the domain",
                To::Domain,
                "<iq from='alice@a.test/r' to='corp.test' id='e1' type='error'/>",
                None,
            ),
            (
                "message to the domain",
                To::Domain,
                "<message from='alice@a.test/r' to='corp.test' id='m1'><body>hi</body></message>",
                Some(unavailable("message", "m1")),
            ),
            (
                "iq get to a user",
                To::User,
                "<iq from='alice@a.test/r' to='bob@corp.test' id='u3' type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
                Some(error("iq", "alice@a.test/r", "u3", "cancel", "service-unavailable")
                    .replace("from='corp.test'", "from='bob@corp.test'")),
            ),
            (
                "iq result to a user",
                To::User,
                "<iq from='alice@a.test/r' to='bob@corp.test' id='r2' type='result'/>",
                None,
            ),
            (
                "iq error to a user",
                To::User,
                "<iq from='alice@a.test/r' to='bob@corp.test' id='e2' type='error'/>",
                None,
            ),
            (
                "chat message to a user",
                To::User,
                "<message from='alice@a.test/r' to='bob@corp.test' id='m2' type='chat'><body>hi</body></message>",
                Some(unavailable("message", "m2").replace("from='corp.test'", "from='bob@corp.test'")),
            ),
            (
                "error message to a user: never an error for an error",
                To::User,
                "<message from='alice@a.test/r' to='bob@corp.test' id='m3' type='error'/>",
                None,
            ),
            (
                "headline message to a user",
                To::User,
                "<message from='alice@a.test/r' to='bob@corp.test' id='m4' type='headline'><body>x</body></message>",
                None,
            ),
            (
                "error message to the domain",
                To::Domain,
                "<message from='alice@a.test/r' to='corp.test' type='error'/>",
                None,
            ),
            (
                "presence subscribe to a user: unsubscribed between bare JIDs",
                To::User,
                "<presence from='alice@a.test/r' to='bob@corp.test/desk' id='s1' type='subscribe'/>",
                Some("<presence from='bob@corp.test' to='alice@a.test' type='unsubscribed'/>".into()),
            ),
            (
                "presence probe to a user",
                To::User,
                "<presence from='alice@a.test' to='bob@corp.test' type='probe'/>",
                Some("<presence from='bob@corp.test' to='alice@a.test' type='unsubscribed'/>".into()),
            ),
            (
                "available presence to a user",
                To::User,
                "<presence from='alice@a.test/r' to='bob@corp.test'/>",
                None,
            ),
            (
                "unavailable presence to a user",
                To::User,
                "<presence from='alice@a.test/r' to='bob@corp.test' type='unavailable'/>",
                None,
            ),
            (
                "unsubscribed presence to a user",
                To::User,
                "<presence from='alice@a.test' to='bob@corp.test' type='unsubscribed'/>",
                None,
            ),
            (
                "presence to the domain",
                To::Domain,
                "<presence from='alice@a.test/r' to='corp.test' type='subscribe'/>",
                None,
            ),
            (
                "no from: nobody to answer",
                To::Domain,
                "<iq to='corp.test' id='n1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
                None,
            ),
        ];
        for (why, to, input, expected) in cases {
            assert_eq!(answer(to, input), expected, "{why}");
        }
    }

    #[test]
    fn reply_addresses_the_sender_domain_from_ours() {
        let s = stanza(
            "<iq from='alice@A.test/r' to='Corp.test' id='p1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
        );
        let r = answer_domain(&s).expect("a ping is answered");
        assert_eq!(
            (r.from_domain.as_str(), r.to_domain.as_str()),
            ("corp.test", "a.test")
        );
        let s = stanza("<presence from='alice@a.test/r' to='bob@corp.test' type='subscribe'/>");
        let r = answer_user(&s).expect("a subscription is refused");
        assert_eq!(
            (r.from_domain.as_str(), r.to_domain.as_str()),
            ("corp.test", "a.test")
        );
    }

    #[test]
    fn attribute_values_are_escaped_in_replies() {
        let ping = answer(
            To::Domain,
            "<iq from=\"alice@a.test/o'neil&amp;co&lt;\" to='corp.test' id=\"a'b&amp;c&lt;d\" type='get'>\
             <ping xmlns='urn:xmpp:ping'/></iq>",
        );
        assert_eq!(
            ping.as_deref(),
            Some(
                "<iq from='corp.test' to='alice@a.test/o&apos;neil&amp;co&lt;' \
                 id='a&apos;b&amp;c&lt;d' type='result'/>"
            )
        );
        let err = answer(
            To::User,
            "<message from=\"alice@a.test/x'y\" to='bob@corp.test' id=\"&lt;m&amp;'\"/>",
        )
        .expect("a message to a user is refused");
        assert!(
            err.starts_with(
                "<message from='bob@corp.test' to='alice@a.test/x&apos;y' id='&lt;m&amp;&apos;' type='error'>"
            ),
            "{err}"
        );
    }
}
