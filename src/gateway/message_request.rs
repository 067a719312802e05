//! The SIP MESSAGE (RFC 3428) a partner's `<message/>` becomes, written in one pass into one
//! buffer sized up front.
//!
//! The generic [`Builder`](crate::sip::serialize::Builder) took ≈ 6.6% of the router's CPU at
//! inbound saturation on this path: every call moved the builder and scanned its value, and
//! every value (URIs, branch, tag, Call-ID, body) was first built in a string of its own. Here
//! the constant text goes in as a few literals, the generated values are written in place as
//! bytes, and the values from outside the generators are checked as the builder checked them.
//! The bytes are the builder's (a test compares them).

use std::ops::Range;

use super::message::SipParts;
use super::MapError;
use crate::sip::serialize::{clean, decimal};
use crate::sip::token::TokenGen;
use crate::sip::transaction::BranchGen;

/// What one MESSAGE carries besides the generated branch, tag and Call-ID.
#[derive(Debug)]
pub struct MessageRequest<'a> {
    /// Host of our Via (`SIP/2.0/TCP host;branch=…;rport`).
    pub via_host: &'a str,
    /// Request-URI and To: the internal user's URI.
    pub to_uri: &'a str,
    /// From: the partner user's URI (RFC 7247).
    pub from_uri: &'a str,
    /// Body and headers from the XMPP message.
    pub parts: &'a SipParts<'a>,
}

/// A written request.
#[derive(Debug)]
pub struct WrittenRequest {
    /// The request.
    pub bytes: Vec<u8>,
    /// Where its branch is in `bytes`.
    pub branch: Range<usize>,
}

#[cfg(test)]
impl WrittenRequest {
    /// The branch (the client transaction's key).
    fn branch(&self) -> &str {
        std::str::from_utf8(&self.bytes[self.branch.clone()]).unwrap_or_default()
    }
}

/// Bytes of the constant text of a request, rounded up.
const CONSTANT_LEN: usize = 192;
/// Longest branch, tag and Call-ID we generate, together.
const TOKENS_LEN: usize = 64 + 16 + 32;

impl MessageRequest<'_> {
    /// Writes the request, drawing its branch from `branches` and its From tag (and Call-ID,
    /// unless the message's thread gave one) from `tokens`. `Err` when a value would break the
    /// framing.
    pub fn write(
        &self,
        branches: &mut BranchGen,
        tokens: &mut TokenGen,
    ) -> Result<WrittenRequest, MapError> {
        let p = self.parts;
        let values_ok = clean(self.to_uri, false)
            && clean(self.from_uri, false)
            && clean(self.via_host, false)
            && p.content_language.is_none_or(|l| clean(l, true))
            && p.subject.as_deref().is_none_or(|s| clean(s, true))
            && p.call_id.as_deref().is_none_or(|c| clean(c, false));
        if !values_ok {
            return Err(MapError::BadText);
        }
        let len = CONSTANT_LEN
            + TOKENS_LEN
            + 2 * self.to_uri.len()
            + self.via_host.len()
            + self.from_uri.len()
            + p.content_language.map_or(0, str::len)
            + p.subject.as_deref().map_or(0, str::len)
            + p.call_id.as_deref().map_or(0, str::len)
            + p.content_type.len()
            + p.body.len();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(b"MESSAGE ");
        out.extend_from_slice(self.to_uri.as_bytes());
        out.extend_from_slice(b" SIP/2.0\r\nVia: SIP/2.0/TCP ");
        out.extend_from_slice(self.via_host.as_bytes());
        out.extend_from_slice(b";branch=");
        let branch_start = out.len();
        branches.push_next_branch(&mut out);
        let branch = branch_start..out.len();
        out.extend_from_slice(b";rport\r\nMax-Forwards: 70\r\nFrom: <");
        out.extend_from_slice(self.from_uri.as_bytes());
        out.extend_from_slice(b">;tag=");
        tokens.push_hex64(&mut out);
        out.extend_from_slice(b"\r\nTo: <");
        out.extend_from_slice(self.to_uri.as_bytes());
        out.extend_from_slice(b">\r\nCall-ID: ");
        match &p.call_id {
            Some(c) => out.extend_from_slice(c.as_bytes()),
            None => tokens.push_hex128(&mut out),
        }
        out.extend_from_slice(b"\r\nCSeq: 1 MESSAGE\r\n");
        if let Some(l) = p.content_language {
            out.extend_from_slice(b"Content-Language: ");
            out.extend_from_slice(l.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if let Some(s) = &p.subject {
            out.extend_from_slice(b"Subject: ");
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(p.content_type.as_bytes());
        out.extend_from_slice(b"\r\nContent-Length: ");
        let mut digits = [0u8; 20];
        out.extend_from_slice(decimal(p.body.len() as u64, &mut digits));
        out.extend_from_slice(b"\r\n\r\n");
        out.extend_from_slice(p.body.as_bytes());
        Ok(WrittenRequest { bytes: out, branch })
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::gateway::address::jid_to_sip_uri;
    use crate::sip::headers::HeaderName;
    use crate::sip::serialize::Request;
    use crate::sip::SipMessage;
    use crate::xmpp::jid::Jid;

    fn parts<'a>(
        lang: Option<&'a str>,
        subject: Option<&'a str>,
        thread: Option<&str>,
    ) -> SipParts<'a> {
        SipParts {
            content_type: crate::gateway::message::TEXT_PLAIN_UTF8,
            content_language: lang,
            subject: subject.map(Cow::Borrowed),
            call_id: thread.map(str::to_owned),
            body: Cow::Borrowed("Wherefore art thou, Romeo? <3 \u{1F339}"),
        }
    }

    /// The generic builder's request with the values `w` drew.
    fn with_builder(r: &MessageRequest<'_>, w: &WrittenRequest) -> Vec<u8> {
        let m = SipMessage::parse(bytes::Bytes::from(w.bytes.clone())).expect("parses");
        let from = m.from().expect("From");
        let tag = from.tag().expect("tag").to_owned();
        let call_id = std::str::from_utf8(m.header(HeaderName::CallId).expect("Call-ID")).unwrap();
        let mut b = Request::builder("MESSAGE", r.to_uri)
            .via("TCP", r.via_host, None, w.branch(), true)
            .max_forwards(70)
            .from(None, r.from_uri, Some(&tag))
            .to(None, r.to_uri, None)
            .call_id(call_id)
            .cseq(1, "MESSAGE");
        if let Some(l) = r.parts.content_language {
            b = b.header(HeaderName::ContentLanguage, l);
        }
        if let Some(s) = &r.parts.subject {
            b = b.header(HeaderName::Subject, s);
        }
        b.body(r.parts.content_type, r.parts.body.as_bytes())
            .unwrap()
    }

    #[test]
    fn writes_the_bytes_the_generic_builder_writes() {
        let mut branches = BranchGen::with_prefix("0a1b2c");
        let mut tokens = TokenGen::with_key(1, 2);
        let cases = [
            ("Juliet@A.example/balcony", parts(None, None, None)),
            (
                "juliet@a.example",
                parts(Some("en"), Some("Re: roses"), Some("t-42@x")),
            ),
            ("J\u{fc}lie@a.example", parts(Some("de-CH"), None, None)),
        ];
        for (from_jid, parts) in &cases {
            let from_uri = jid_to_sip_uri(from_jid).unwrap();
            assert!(Jid::parse(from_jid).is_ok());
            let r = MessageRequest {
                via_host: "192.0.2.7",
                to_uri: "sip:romeo@b.example",
                from_uri: &from_uri,
                parts,
            };
            let w = r.write(&mut branches, &mut tokens).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&w.bytes),
                String::from_utf8_lossy(&with_builder(&r, &w))
            );
            assert!(w.branch().starts_with("z9hG4bK0a1b2c."), "{}", w.branch());
            let m = SipMessage::parse(bytes::Bytes::from(w.bytes.clone())).unwrap();
            m.validate().unwrap();
            assert_eq!(m.top_via_branch(), Some(w.branch()));
        }
    }

    #[test]
    fn each_request_draws_fresh_tokens() {
        let mut branches = BranchGen::with_prefix("p");
        let mut tokens = TokenGen::with_key(7, 9);
        let p = parts(None, None, None);
        let r = MessageRequest {
            via_host: "127.0.0.1",
            to_uri: "sip:romeo@b.example",
            from_uri: "sip:juliet@a.example",
            parts: &p,
        };
        let a = r.write(&mut branches, &mut tokens).unwrap();
        let b = r.write(&mut branches, &mut tokens).unwrap();
        assert_ne!(a.branch(), b.branch());
        let ids = |w: &WrittenRequest| {
            let m = SipMessage::parse(bytes::Bytes::from(w.bytes.clone())).unwrap();
            (
                m.from().unwrap().tag().unwrap().to_owned(),
                m.header(HeaderName::CallId).unwrap().to_vec(),
            )
        };
        let (ta, ca) = ids(&a);
        let (tb, cb) = ids(&b);
        assert_ne!(ta, tb);
        assert_ne!(ca, cb);
        assert_eq!(ca.len(), 32);
    }

    #[test]
    fn values_that_would_break_the_framing_are_refused() {
        let mut branches = BranchGen::with_prefix("p");
        let mut tokens = TokenGen::with_key(7, 9);
        let bad_subject = parts(None, Some("a\r\nInjected: yes"), None);
        let bad_call_id = parts(None, None, Some("a b"));
        let ok = parts(None, None, None);
        let (good, spaced, broken) = (
            "sip:romeo@b.example",
            "sip:ro meo@b.example",
            "sip:romeo@b.example\r\nX: y",
        );
        for (to_uri, from_uri, p) in [
            (good, good, &bad_subject),
            (good, good, &bad_call_id),
            (spaced, good, &ok),
            (broken, good, &ok),
            (good, spaced, &ok),
            (good, broken, &ok),
        ] {
            let r = MessageRequest {
                via_host: "127.0.0.1",
                to_uri,
                from_uri,
                parts: p,
            };
            assert_eq!(
                r.write(&mut branches, &mut tokens).unwrap_err(),
                MapError::BadText,
                "{to_uri} {p:?}"
            );
        }
    }
}
