use super::*;

fn body(lang: Option<&str>, t: &str) -> (Option<String>, String) {
    (lang.map(str::to_owned), t.to_owned())
}

fn chat(bodies: Vec<(Option<String>, String)>) -> XmppMessage {
    XmppMessage {
        kind: Some(MessageType::Chat),
        bodies,
        ..XmppMessage::default()
    }
}

fn sip(ct: &str, body: &[u8]) -> SipMessage {
    SipMessage {
        content_type: ct.to_owned(),
        body: body.to_vec(),
        ..SipMessage::default()
    }
}

const L: MessageLimits = MessageLimits {
    max_body: 64 * 1024,
    congestion_safe: true,
};

#[test]
fn body_lang_subject_thread_map_to_sip_fields() {
    let mut m = chat(vec![body(Some("en"), "Wherefore art thou?")]);
    m.subject = Some("Question".into());
    m.thread = Some("e0ffe42b28561960c6b12b944a092794b9683a38".into());
    let s = sip_from_xmpp(&m, &L).unwrap().unwrap();
    assert_eq!(s.content_type, "text/plain; charset=UTF-8");
    assert_eq!(s.content_language.as_deref(), Some("en"));
    assert_eq!(s.subject.as_deref(), Some("Question"));
    assert_eq!(
        s.call_id.as_deref(),
        Some("e0ffe42b28561960c6b12b944a092794b9683a38")
    );
    assert_eq!(s.body, b"Wherefore art thou?");
}

#[test]
fn message_type_table() {
    let rows: &[(Option<MessageType>, bool)] = &[
        (None, true),
        (Some(MessageType::Chat), true),
        (Some(MessageType::Normal), true),
        (Some(MessageType::Headline), true),
        (Some(MessageType::Groupchat), false),
    ];
    for &(kind, ok) in rows {
        let mut m = chat(vec![body(None, "hi")]);
        m.kind = kind;
        assert_eq!(sip_from_xmpp(&m, &L).is_ok(), ok, "{kind:?}");
    }
    let mut g = chat(vec![body(None, "hi")]);
    g.kind = Some(MessageType::Groupchat);
    assert_eq!(sip_from_xmpp(&g, &L), Err(MapError::Groupchat));
}

#[test]
fn several_bodies_pick_stanza_language_then_unlabelled_then_first() {
    type Bodies = Vec<(Option<String>, String)>;
    let rows: &[(Option<&str>, Bodies, &str, Option<&str>)] = &[
        (
            Some("fr"),
            vec![body(Some("en"), "hi"), body(Some("fr"), "salut")],
            "salut",
            Some("fr"),
        ),
        (
            Some("fr"),
            vec![body(Some("en"), "hi"), body(None, "salut")],
            "salut",
            Some("fr"),
        ),
        (
            None,
            vec![body(Some("en"), "hi"), body(None, "hallo")],
            "hallo",
            None,
        ),
        (
            None,
            vec![body(Some("en"), "hi"), body(Some("de"), "hallo")],
            "hi",
            Some("en"),
        ),
    ];
    for (lang, bodies, want, want_lang) in rows {
        let mut m = chat(bodies.clone());
        m.lang = lang.map(str::to_owned);
        let s = sip_from_xmpp(&m, &L).unwrap().unwrap();
        assert_eq!(s.body, want.as_bytes());
        assert_eq!(s.content_language.as_deref(), *want_lang);
    }
}

#[test]
fn header_values_cannot_inject_headers() {
    let mut m = chat(vec![body(Some("en\r\nX-Evil: 1"), "hi")]);
    m.subject = Some("a\r\nX-Evil: 1".into());
    m.thread = Some("t\r\nX-Evil: 1".into());
    let s = sip_from_xmpp(&m, &L).unwrap().unwrap();
    assert_eq!(s.content_language, None);
    assert_eq!(s.subject.as_deref(), Some("a  X-Evil: 1"));
    let cid = s.call_id.unwrap();
    assert!(!cid.contains('\r') && !cid.contains(' '), "{cid}");
}

#[test]
fn thread_to_call_id_table() {
    let rows: &[(&str, &str)] = &[
        ("abc123", "abc123"),
        (
            "a84b4c76e66710@pc33.atlanta.com",
            "a84b4c76e66710@pc33.atlanta.com",
        ),
        ("two words", "two%20words"),
        ("100%", "100%25"),
        ("a@b@c", "a%40b%40c"),
        ("\u{e9}", "%C3%A9"),
        ("", "%00"),
    ];
    for (thread, cid) in rows {
        assert_eq!(call_id_for_thread(thread), *cid, "{thread}");
    }
}

#[test]
fn size_cap_and_1300_byte_rule() {
    let big = "x".repeat(1301);
    let m = chat(vec![body(None, &big)]);
    assert!(
        sip_from_xmpp(&m, &L).is_ok(),
        "congestion-safe path takes 1301 bytes"
    );
    let unsafe_path = MessageLimits {
        congestion_safe: false,
        ..L
    };
    let e = sip_from_xmpp(&m, &unsafe_path).unwrap_err();
    assert_eq!(
        e,
        MapError::TooLarge {
            len: 1301,
            cap: 1300
        }
    );
    assert_eq!(e.sip_status(), 413);
    assert_eq!(
        e.condition(),
        crate::xmpp::error::StanzaCondition::PolicyViolation
    );
    let small = MessageLimits { max_body: 10, ..L };
    assert!(matches!(
        xmpp_from_sip(&sip("text/plain", &[b'a'; 11]), &small),
        Err(MapError::TooLarge { len: 11, cap: 10 })
    ));
    assert!(unsafe_path.check_request_len(1300).is_ok());
    assert!(unsafe_path.check_request_len(1301).is_err());
    assert!(L.check_request_len(100_000).is_ok());
}

#[test]
fn sip_text_to_xmpp_fields() {
    let mut s = sip("Text/Plain; charset=\"utf-8\"", "Ciao \u{e8}".as_bytes());
    s.content_language = Some("it, en".into());
    s.subject = Some("Oggetto".into());
    s.call_id = Some("cid-1@host".into());
    let m = xmpp_from_sip(&s, &L).unwrap();
    assert_eq!(m.kind, Some(MessageType::Chat));
    assert_eq!(m.bodies, vec![body(Some("it"), "Ciao \u{e8}")]);
    assert_eq!(m.subject.as_deref(), Some("Oggetto"));
    assert_eq!(m.thread.as_deref(), Some("cid-1@host"));
}

#[test]
fn sip_content_type_table() {
    let rows: &[(&str, &[u8], Result<(), MapError>)] = &[
        ("text/plain", b"hi", Ok(())),
        ("text/plain; charset=UTF-8", b"hi", Ok(())),
        ("text/plain;charset=us-ascii", b"hi", Ok(())),
        (
            "text/plain; charset=iso-8859-1",
            b"hi",
            Err(MapError::UnsupportedMediaType),
        ),
        (
            "text/html",
            b"<b>hi</b>",
            Err(MapError::UnsupportedMediaType),
        ),
        ("message/cpim", b"x", Err(MapError::UnsupportedMediaType)),
        ("text/plain", b"\xff\xfe", Err(MapError::BadText)),
        ("text/plain", b"a\x01b", Err(MapError::BadText)),
    ];
    for (ct, b, want) in rows {
        assert_eq!(xmpp_from_sip(&sip(ct, b), &L).map(|_| ()), *want, "{ct}");
    }
    assert_eq!(MapError::UnsupportedMediaType.sip_status(), 415);
}

#[test]
fn chat_state_to_iscomposing_table() {
    let rows: &[(ChatState, Option<ComposingState>)] = &[
        (ChatState::Composing, Some(ComposingState::Active)),
        (ChatState::Paused, Some(ComposingState::Idle)),
        (ChatState::Inactive, Some(ComposingState::Idle)),
        (ChatState::Gone, Some(ComposingState::Idle)),
        (ChatState::Active, None),
    ];
    for &(c, want) in rows {
        assert_eq!(composing_for_chat_state(c), want, "{c:?}");
    }
}

#[test]
fn iscomposing_to_chat_state_table() {
    assert_eq!(
        chat_state_for_composing(ComposingState::Active),
        ChatState::Composing
    );
    assert_eq!(
        chat_state_for_composing(ComposingState::Idle),
        ChatState::Paused
    );
}

#[test]
fn standalone_chat_state_becomes_iscomposing_message_and_back() {
    let m = XmppMessage {
        kind: Some(MessageType::Chat),
        chat_state: Some(ChatState::Composing),
        thread: Some("t1".into()),
        ..XmppMessage::default()
    };
    let s = sip_from_xmpp(&m, &L).unwrap().unwrap();
    assert_eq!(s.content_type, ISCOMPOSING_TYPE);
    let xml = String::from_utf8(s.body.clone()).unwrap();
    assert!(xml.contains("<state>active</state>"), "{xml}");
    assert!(xml.contains("<refresh>60</refresh>"), "{xml}");
    assert!(
        xml.contains("<contenttype>text/plain</contenttype>"),
        "{xml}"
    );
    let back = xmpp_from_sip(&s, &L).unwrap();
    assert_eq!(back.chat_state, Some(ChatState::Composing));
    assert!(back.bodies.is_empty());
    assert_eq!(back.thread.as_deref(), Some("t1"));
}

#[test]
fn body_wins_over_chat_state_and_active_alone_sends_nothing() {
    let mut m = chat(vec![body(None, "hi")]);
    m.chat_state = Some(ChatState::Active);
    assert_eq!(
        sip_from_xmpp(&m, &L).unwrap().unwrap().content_type,
        TEXT_PLAIN_UTF8
    );
    let alone = XmppMessage {
        chat_state: Some(ChatState::Active),
        ..XmppMessage::default()
    };
    assert_eq!(sip_from_xmpp(&alone, &L), Ok(None));
    assert_eq!(sip_from_xmpp(&XmppMessage::default(), &L), Ok(None));
}

#[test]
fn parses_iscomposing_documents() {
    let rows: &[(&[u8], Result<ComposingState, ()>)] = &[
        (
            br#"<?xml version="1.0" encoding="UTF-8"?>
<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<state>idle</state><lastactive>2003-01-27T10:43:00Z</lastactive>
<contenttype>audio</contenttype></isComposing>"#,
            Ok(ComposingState::Idle),
        ),
        (
            br#"<c:isComposing xmlns:c="urn:ietf:params:xml:ns:im-iscomposing"><c:state> active </c:state><c:refresh>90</c:refresh></c:isComposing>"#,
            Ok(ComposingState::Active),
        ),
        (br#"<isComposing xmlns="urn:other"><state>active</state></isComposing>"#, Err(())),
        (br#"<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"/>"#, Err(())),
        (br#"<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>typing</state></isComposing>"#, Err(())),
        (br#"<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><refresh>9</refresh></isComposing>"#, Err(())),
        (br#"<!DOCTYPE x><isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>idle</state></isComposing>"#, Err(())),
        (br#"<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><a><b><c><d>x</d></c></b></a><state>idle</state></isComposing>"#, Err(())),
        (br#"<isComposing xmlns="urn:ietf:params:xml:ns:im-iscomposing"><state>idle</state>"#, Err(())),
    ];
    for (doc, want) in rows {
        assert_eq!(
            parse_iscomposing(doc).map_err(|_| ()),
            *want,
            "{}",
            String::from_utf8_lossy(doc)
        );
    }
    assert!(matches!(
        parse_iscomposing(&vec![b' '; 5000]),
        Err(MapError::TooLarge { .. })
    ));
}

#[test]
fn writes_sip_text_as_an_escaped_chat_message_that_the_framer_accepts() {
    let sip = SipMessage {
        content_type: "text/plain; charset=UTF-8".into(),
        content_language: Some("fr".into()),
        subject: Some("a<b".into()),
        call_id: Some("c1@corp".into()),
        body: "salut & </message><x/>".as_bytes().to_vec(),
    };
    let m = xmpp_from_sip(&sip, &MessageLimits::default()).unwrap();
    let mut out = Vec::new();
    write_message_stanza(
        "bob@corp.test",
        "alice@partner.test",
        Some("i'1"),
        &m,
        &mut out,
    );
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "<message from='bob@corp.test' to='alice@partner.test' id='i&apos;1' type='chat'>\
         <subject>a&lt;b</subject><body xml:lang='fr'>salut &amp; &lt;/message&gt;&lt;x/&gt;</body>\
         <thread>c1@corp</thread></message>"
    );
    let mut f = crate::xml::Framer::new(crate::xml::FramerLimits::post_auth());
    f.feed(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>");
    f.feed(&out);
    assert!(matches!(
        f.next_event(),
        Ok(Some(crate::xml::Event::StreamOpen(_)))
    ));
    match f.next_event() {
        Ok(Some(crate::xml::Event::Stanza(s))) => {
            assert_eq!(s.to().as_deref(), Some("alice@partner.test"));
            let back = crate::gateway::outbound_message::xmpp_message(&s).unwrap();
            assert_eq!(
                back.bodies,
                vec![(Some("fr".into()), "salut & </message><x/>".into())]
            );
            assert_eq!(back.subject.as_deref(), Some("a<b"));
            assert_eq!(back.thread.as_deref(), Some("c1@corp"));
        }
        other => panic!("expected the message stanza, got {other:?}"),
    }
}

#[test]
fn writes_a_chat_state_without_body() {
    let m = XmppMessage {
        kind: Some(MessageType::Chat),
        chat_state: Some(ChatState::Composing),
        ..XmppMessage::default()
    };
    let mut out = Vec::new();
    write_message_stanza("a@b", "c@d", None, &m, &mut out);
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        "<message from='a@b' to='c@d' type='chat'>\
         <composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
    );
}

#[test]
fn chat_state_names_round_trip() {
    for s in [
        ChatState::Active,
        ChatState::Composing,
        ChatState::Paused,
        ChatState::Inactive,
        ChatState::Gone,
    ] {
        assert_eq!(ChatState::from_name(s.as_str().as_bytes()), Some(s));
    }
    assert_eq!(ChatState::from_name(b"typing"), None);
}
