//! The SIP sink's presence server: a SUBSCRIBE from the router (an XMPP `subscribe` of a
//! partner user to an internal user) gets a 200 that forms the dialog, then a NOTIFY in it
//! (RFC 6665 §4.2.1.2) carrying a PIDF `open` document, so that the router can tell the partner
//! `subscribed` — which is what the loadgen observes end to end.
//!
//! Off the hot path: SUBSCRIBEs are a small share of a mix, so they are parsed with the
//! project's full parser and answered with its builders.

use stanza_router::gateway::presence::{pidf_from_presence, XmppPresence};
use stanza_router::sip::headers::HeaderName;
use stanza_router::sip::message::SipMessage;
use stanza_router::sip::serialize::Request;
use stanza_router::sip::transaction::response_to;

/// Expires granted when the SUBSCRIBE asks for none (RFC 3856 §6.4 suggests an hour).
const DEFAULT_EXPIRES: u32 = 3600;

/// The 200 and the NOTIFY answering SUBSCRIBE `raw`, as the presence server at `local`
/// (`host:port`, for Via and Contact); `n` makes the To tag, branch and NOTIFY CSeq unique on
/// this connection. `None` when the request lacks what a dialog needs (it is then answered 400
/// by the caller's generic path, or not at all).
pub fn answer_subscribe(raw: &[u8], local: &str, n: u64) -> Option<(Vec<u8>, Vec<u8>)> {
    let sub = SipMessage::parse(raw.to_vec().into()).ok()?;
    sub.validate().ok()?;
    let expires = sub.expires().unwrap_or(DEFAULT_EXPIRES);
    let from = sub.from().ok()?;
    let to = sub.to().ok()?;
    let tag = to
        .tag()
        .map(str::to_owned)
        .unwrap_or_else(|| format!("lgsub{n}"));
    let contact = format!("sip:pool@{local};transport=tcp");
    let ok = response_to(&sub, 200, "OK", Some(&tag))
        .and_then(|b| b.expires(expires).contact(&contact).finish())
        .ok()?;
    let target = sub
        .contacts()
        .next()
        .and_then(Result::ok)
        .map_or(from.uri, |c| c.uri);
    let (host, port) = match local.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().ok()),
        None => (local, None),
    };
    let state = if expires == 0 {
        "terminated;reason=timeout".to_string()
    } else {
        format!("active;expires={expires}")
    };
    let event = sub
        .header(HeaderName::Event)
        .and_then(|e| std::str::from_utf8(e).ok())
        .unwrap_or("presence");
    let mut b =
        Request::builder("NOTIFY", target).via("TCP", host, port, &format!("z9hG4bKlgn{n}"), true);
    // The route set is the SUBSCRIBE's Record-Route, in order (RFC 3261 §12.1.1).
    for rr in sub.header_values(HeaderName::RecordRoute) {
        b = b.header(HeaderName::Route, std::str::from_utf8(rr).ok()?);
    }
    let presence = XmppPresence {
        available: true,
        ..XmppPresence::default()
    };
    let body = pidf_from_presence(to.uri, &presence, "lg");
    let notify = b
        .max_forwards(70)
        .from(None, to.uri, Some(&tag))
        .to(None, from.uri, from.tag())
        .call_id(sub.call_id().ok()?)
        .cseq(
            u32::try_from(n % u64::from(u32::MAX)).unwrap_or(1).max(1),
            "NOTIFY",
        )
        .header(HeaderName::Event, event)
        .header(HeaderName::SubscriptionState, &state)
        .contact(&contact)
        .body("application/pidf+xml", body.as_bytes())
        .ok()?;
    Some((ok, notify))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: &str = "SUBSCRIBE sip:user3@corp.test SIP/2.0\r\n\
        Via: SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bKs1\r\nMax-Forwards: 70\r\n\
        From: <sip:lgs7@p0.partner.test>;tag=gw1\r\nTo: <sip:user3@corp.test>\r\n\
        Call-ID: c7\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:gw@127.0.0.1:5060;transport=tcp>\r\n\
        Event: presence\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn subscribe_gets_200_then_an_active_notify_in_the_dialog() {
        let (ok, notify) = answer_subscribe(SUB.as_bytes(), "127.0.0.1:5070", 4).unwrap();
        let ok = SipMessage::parse(ok.into()).unwrap();
        ok.validate().unwrap();
        assert_eq!(ok.status(), Some(200));
        assert_eq!(ok.to().unwrap().tag(), Some("lgsub4"));
        assert_eq!(ok.expires().ok(), Some(600));
        let n = SipMessage::parse(notify.into()).unwrap();
        n.validate().unwrap();
        assert_eq!(n.method(), Some("NOTIFY"));
        assert_eq!(n.request_uri(), Some("sip:gw@127.0.0.1:5060;transport=tcp"));
        assert_eq!(n.call_id().unwrap(), "c7");
        assert_eq!(n.from().unwrap().tag(), Some("lgsub4"));
        assert_eq!(n.to().unwrap().tag(), Some("gw1"));
        let state = n.header(HeaderName::SubscriptionState).unwrap();
        assert!(state.starts_with(b"active"));
        assert!(String::from_utf8_lossy(&n.body()).contains("open"));
    }

    #[test]
    fn malformed_subscribe_is_not_answered_here() {
        assert!(answer_subscribe(b"SUBSCRIBE sip:a SIP/2.0\r\nl: 0\r\n\r\n", "h:1", 1).is_none());
    }
}
