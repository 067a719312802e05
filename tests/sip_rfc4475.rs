//! RFC 4475 torture messages (tests/fixtures/rfc4475/, see its README for which are
//! reconstructions): valid ones parse and validate with the right values, invalid ones fail.

use bytes::Bytes;
use stanza_router::sip::{HeaderName, ParseError, SipMessage, SipUri, ValueError};

fn load(name: &str) -> Bytes {
    let path = format!(
        "{}/tests/fixtures/rfc4475/{name}.sip",
        env!("CARGO_MANIFEST_DIR")
    );
    Bytes::from(std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
}

fn valid(name: &str) -> SipMessage {
    let m = SipMessage::parse(load(name)).unwrap_or_else(|e| panic!("{name}: parse: {e}"));
    m.validate()
        .unwrap_or_else(|e| panic!("{name}: validate: {e}"));
    m
}

fn invalid(name: &str) -> ParseError {
    match SipMessage::parse(load(name)) {
        Err(e) => e,
        Ok(m) => m.validate().expect_err(name),
    }
}

#[test]
fn accepts_short_tortuous_invite_with_right_values() {
    let m = valid("wsinv");
    assert_eq!(m.method(), Some("INVITE"));
    assert_eq!(m.max_forwards(), Ok(68));
    assert_eq!(m.cseq().unwrap().seq, 9);
    assert_eq!(m.content_length(), Ok(150));
    assert_eq!(m.body().len(), 150);
    let to = m.to().unwrap();
    assert_eq!(
        (to.uri, to.tag()),
        ("sip:vivekg@chair-dnrc.example.com", Some("1918181833n"))
    );
    let from = m.from().unwrap();
    assert_eq!(from.display_name.as_deref(), Some(r#"J Rosenberg \""#));
    assert_eq!(from.tag(), Some("98asjd8"));
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 3);
    assert_eq!(
        (vias[0].transport, vias[0].host, vias[0].branch()),
        ("UDP", "192.0.2.2", Some("390skdjuw"))
    );
    assert_eq!(
        (vias[1].transport, vias[1].host, vias[1].branch()),
        ("TCP", "spindle.example.com", Some("z9hG4bK9ikj8"))
    );
    assert_eq!(
        (vias[2].host, vias[2].branch()),
        ("192.168.255.111", Some("z9hG4bK30239"))
    );
    assert_eq!(m.subject(), Ok(""));
    assert_eq!(
        m.other_header("UnknownHeaderWithUnusualValue"),
        Some(&b";;,,;;,;"[..])
    );
    assert_eq!(
        m.other_header("newfangledheader"),
        Some(&b"newfangled value\r\n continued newfangled value"[..])
    );
    let contact = m.contacts().next().unwrap().unwrap();
    assert_eq!(contact.display_name.as_deref(), Some(r#"Quoted string """#));
    assert_eq!(contact.params.get("newparam"), Some(Some("newvalue")));
    assert_eq!(contact.params.get("secondparam"), Some(None));
    assert_eq!(contact.params.get("q"), Some(Some("0.33")));
    let route = m.routes().next().unwrap().unwrap().sip_uri().unwrap();
    assert_eq!(route.param("unknown-no-value"), Some(None));
}

#[test]
fn accepts_wide_range_of_valid_characters() {
    let m = valid("intmeth");
    assert_eq!(
        m.method(),
        Some("!interesting-Method0123456789_*+`.%indeed'~")
    );
    let uri = SipUri::parse(m.request_uri().unwrap()).unwrap();
    assert_eq!(
        uri.user,
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        uri.password,
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(
        m.call_id(),
        Ok("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{")
    );
    assert_eq!(m.from().unwrap().tag(), Some("_token~1'+`*%!-."));
    assert_eq!(
        m.to().unwrap().display_name.as_deref(),
        Some("BEL:\x07 NUL:\0 DEL:\x7f")
    );
    assert_eq!(m.max_forwards(), Ok(255));
}

#[test]
fn accepts_escapes_and_decodes_user_parts() {
    let m = valid("esc01");
    let ruri = SipUri::parse(m.request_uri().unwrap()).unwrap();
    assert_eq!(
        ruri.user_decoded().unwrap().as_deref(),
        Some("sips:user@example.com")
    );
    assert_eq!(
        m.to()
            .unwrap()
            .sip_uri()
            .unwrap()
            .user_decoded()
            .unwrap()
            .as_deref(),
        Some("user")
    );
    assert_eq!(m.content_type().unwrap().subtype, "sdp");
    let m = valid("escnull");
    let users: Vec<_> = m
        .contacts()
        .map(|c| {
            c.unwrap()
                .sip_uri()
                .unwrap()
                .user_decoded()
                .unwrap()
                .unwrap()
                .into_owned()
        })
        .collect();
    assert_eq!(users, ["\0", "\0\0"]);
    let m = valid("esc02");
    assert_eq!(m.method(), Some("RE%47IST%45R"));
    // `C%6Fntact` is an unknown header, not Contact.
    assert_eq!(m.contacts().count(), 2);
}

#[test]
fn accepts_remaining_valid_messages() {
    assert_eq!(
        valid("lwsdisp").from().unwrap().display_name.as_deref(),
        Some("caller")
    );
    let m = valid("dblreq");
    assert_eq!(m.method(), Some("REGISTER"));
    assert!(m.body().is_empty());
    let m = valid("semiuri");
    let u = SipUri::parse(m.request_uri().unwrap()).unwrap();
    assert_eq!(
        (u.user, u.host),
        (Some("user;par=u%40example.net"), "example.com")
    );
    assert_eq!(m.header_values(HeaderName::Accept).count(), 6);
    let t = valid("transports");
    let transports: Vec<_> = t.vias().map(|v| v.unwrap().transport).collect();
    assert_eq!(transports, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    let m = valid("unreason");
    assert_eq!(m.status(), Some(200));
    assert!(std::str::from_utf8(m.reason().unwrap())
        .unwrap()
        .starts_with("= 2**3 * 5**2 но"));
    let m = valid("noreason");
    assert_eq!((m.status(), m.reason()), (Some(100), Some(&b""[..])));
}

#[test]
fn accepts_bad_date_because_date_is_never_read() {
    valid("baddate");
}

#[test]
fn rejects_invalid_messages_for_the_rfc_reason() {
    use ParseError::*;
    let cases: &[(&str, ParseError)] = &[
        (
            "badinv01",
            InvalidHeader {
                name: HeaderName::Via,
                error: ValueError::Syntax,
            },
        ),
        ("clerr", BodyTruncated),
        ("ncl", BadContentLength),
        (
            "scalar02",
            InvalidHeader {
                name: HeaderName::CSeq,
                error: ValueError::OutOfRange,
            },
        ),
        (
            "scalarlg",
            InvalidHeader {
                name: HeaderName::CSeq,
                error: ValueError::OutOfRange,
            },
        ),
        (
            "quotbal",
            InvalidHeader {
                name: HeaderName::To,
                error: ValueError::Syntax,
            },
        ),
        ("ltgtruri", BadRequestUri),
        ("lwsruri", BadStartLine),
        ("lwsstart", BadStartLine),
        ("trws", BadStartLine),
        ("escruri", BadRequestUri),
        (
            "regbadct",
            InvalidHeader {
                name: HeaderName::Contact,
                error: ValueError::Syntax,
            },
        ),
        (
            "badaspec",
            InvalidHeader {
                name: HeaderName::To,
                error: ValueError::Syntax,
            },
        ),
        (
            "baddn",
            InvalidHeader {
                name: HeaderName::From,
                error: ValueError::Syntax,
            },
        ),
        ("badvers", UnsupportedVersion),
        ("mismatch01", CSeqMethodMismatch),
        ("mismatch02", CSeqMethodMismatch),
        ("bigcode", BadStartLine),
        ("insuf", MissingHeader(HeaderName::From)),
        ("multi01", DuplicateHeader(HeaderName::From)),
        ("mcl01", BadContentLength),
    ];
    for (name, want) in cases {
        assert_eq!(invalid(name), *want, "{name}");
    }
}

#[test]
fn every_truncation_of_every_fixture_fails_cleanly_or_parses() {
    let dir = format!("{}/tests/fixtures/rfc4475", env!("CARGO_MANIFEST_DIR"));
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "sip") {
            let data = std::fs::read(&path).unwrap();
            for cut in 0..data.len() {
                if let Ok(m) = SipMessage::parse(Bytes::copy_from_slice(&data[..cut])) {
                    let _ = m.validate();
                    let _ = (m.vias().count(), m.contacts().count(), m.routes().count());
                }
            }
        }
    }
}

fn exercise(m: &SipMessage) {
    let _ = m.validate();
    let _ = (
        m.vias().count(),
        m.contacts().count(),
        m.routes().count(),
        m.record_routes().count(),
    );
    let _ = (
        m.from(),
        m.to(),
        m.cseq(),
        m.call_id(),
        m.max_forwards(),
        m.expires(),
    );
    let _ = (
        m.content_type(),
        m.event(),
        m.subscription_state(),
        m.retry_after(),
        m.subject(),
    );
    let _ = m.content_languages().count();
    for c in m.contacts().flatten() {
        if let Ok(u) = c.sip_uri() {
            let _ = (u.user_decoded(), u.to_string());
        }
    }
    if let Some(u) = m.request_uri() {
        let _ = SipUri::parse(u).map(|u| u.user_decoded());
    }
}

proptest::proptest! {
    #[test]
    fn mutated_torture_messages_never_panic(
        which in 0usize..4,
        edits in proptest::collection::vec((0usize..2000, proptest::num::u8::ANY), 1..20),
    ) {
        let name = ["wsinv", "intmeth", "esc01", "badinv01"][which];
        let mut data = load(name).to_vec();
        for (pos, byte) in edits {
            let len = data.len();
            data[pos % len] = byte;
        }
        if let Ok(m) = SipMessage::parse(Bytes::from(data.clone())) {
            exercise(&m);
        }
        let mut f = stanza_router::sip::SipFramer::default();
        if f.feed(&data).is_ok() {
            while let Some(Ok(stanza_router::sip::Framed::Message(m))) = f.poll() {
                exercise(&m);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
        if let Ok(m) = SipMessage::parse(Bytes::from(data.clone())) {
            exercise(&m);
        }
    }
}
