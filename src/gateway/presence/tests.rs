use super::*;

fn p(available: bool, show: Option<Show>, status: &[(Option<&str>, &str)]) -> XmppPresence {
    XmppPresence {
        available,
        show,
        status: status
            .iter()
            .map(|(l, t)| (l.map(str::to_owned), (*t).to_owned()))
            .collect(),
        priority: 0,
    }
}

#[test]
fn show_to_rpid_activity_table() {
    let rows: &[(Option<Show>, Option<&str>)] = &[
        (None, None),
        (Some(Show::Away), Some("away")),
        (Some(Show::Xa), Some("away")),
        (Some(Show::Dnd), Some("busy")),
        (Some(Show::Chat), None),
    ];
    for &(show, act) in rows {
        assert_eq!(rpid_activity_for_show(show), act, "{show:?}");
    }
}

#[test]
fn rpid_activity_to_show_table() {
    let rows: &[(&str, Option<Show>)] = &[
        ("away", Some(Show::Away)),
        ("busy", Some(Show::Dnd)),
        ("on-the-phone", Some(Show::Dnd)),
        ("meeting", Some(Show::Dnd)),
        ("presentation", Some(Show::Dnd)),
        ("vacation", Some(Show::Xa)),
        ("holiday", Some(Show::Xa)),
        ("permanent-absence", Some(Show::Xa)),
        ("unknown", None),
        ("sleeping", None),
    ];
    for &(act, show) in rows {
        assert_eq!(show_for_rpid_activity(act), show, "{act}");
    }
}

#[test]
fn lync_availability_table() {
    use Availability::*;
    let rows: &[(u32, Availability)] = &[
        (0, Available(None)),
        (3500, Available(None)),
        (4499, Available(None)),
        (4500, Available(Some(Show::Xa))),
        (5999, Available(Some(Show::Xa))),
        (6000, Available(Some(Show::Dnd))),
        (7499, Available(Some(Show::Dnd))),
        (7500, Available(Some(Show::Xa))),
        (8999, Available(Some(Show::Xa))),
        (9000, Available(Some(Show::Dnd))),
        (11999, Available(Some(Show::Dnd))),
        (12000, Available(Some(Show::Away))),
        (14999, Available(Some(Show::Away))),
        (15000, Available(Some(Show::Away))),
        (17999, Available(Some(Show::Away))),
        (18000, Unavailable),
        (u32::MAX, Unavailable),
    ];
    for &(n, a) in rows {
        assert_eq!(availability_for_lync(n), a, "{n}");
    }
}

#[test]
fn pidf_carries_status_without_show_unlike_kamailio() {
    let doc = pidf_from_presence(
        "sip:juliet@example.com",
        &p(true, None, &[(Some("en"), "at the ball")]),
        "balcony",
    );
    assert!(doc.contains("<basic>open</basic>"), "{doc}");
    assert!(
        doc.contains("<note xml:lang=\"en\">at the ball</note>"),
        "{doc}"
    );
    assert!(!doc.contains("activities"), "{doc}");
    assert_eq!(
        presence_from_pidf(doc.as_bytes()),
        Ok(p(true, None, &[(Some("en"), "at the ball")]))
    );
}

#[test]
fn pidf_escapes_entity_note_and_id() {
    let doc = pidf_from_presence(
        "sip:a@example.com?x=\"<>&",
        &p(true, Some(Show::Dnd), &[(None, "<b>&'\"")]),
        "9 bad id",
    );
    assert!(
        doc.contains("entity=\"sip:a@example.com?x=&quot;&lt;&gt;&amp;\""),
        "{doc}"
    );
    assert!(doc.contains("<note>&lt;b&gt;&amp;'\"</note>"), "{doc}");
    assert!(doc.contains("<tuple id=\"t9_bad_id\">"), "{doc}");
    assert!(doc.contains("<rpid:busy/>"), "{doc}");
    let back = presence_from_pidf(doc.as_bytes()).unwrap();
    assert_eq!(back, p(true, Some(Show::Dnd), &[(None, "<b>&'\"")]));
}

#[test]
fn round_trips_each_show_through_pidf() {
    let rows: &[(Option<Show>, Option<Show>)] = &[
        (None, None),
        (Some(Show::Away), Some(Show::Away)),
        (Some(Show::Xa), Some(Show::Away)),
        (Some(Show::Dnd), Some(Show::Dnd)),
        (Some(Show::Chat), None),
    ];
    for &(sent, got) in rows {
        let doc = pidf_from_presence("sip:a@b", &p(true, sent, &[]), "r");
        assert_eq!(
            presence_from_pidf(doc.as_bytes()).unwrap().show,
            got,
            "{sent:?}"
        );
    }
}

#[test]
fn unavailable_is_closed_and_keeps_several_languages() {
    let sent = p(
        false,
        Some(Show::Away),
        &[(Some("en"), "bye"), (Some("fr"), "au revoir")],
    );
    let doc = pidf_from_presence("sip:a@b", &sent, "r");
    assert!(doc.contains("<basic>closed</basic>"));
    assert!(
        !doc.contains("activities"),
        "no activity while closed: {doc}"
    );
    let got = presence_from_pidf(doc.as_bytes()).unwrap();
    assert_eq!(
        got,
        p(
            false,
            None,
            &[(Some("en"), "bye"), (Some("fr"), "au revoir")]
        )
    );
}

#[test]
fn picks_first_open_tuple_among_several() {
    let doc = br#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b">
      <tuple id="t1"><status><basic>closed</basic></status><note>phone off</note></tuple>
      <tuple id="t2"><status><basic>open</basic></status><note>on laptop</note></tuple>
      <tuple id="t3"><status><basic>open</basic></status><note>on tablet</note></tuple>
    </presence>"#;
    assert_eq!(
        presence_from_pidf(doc),
        Ok(p(true, None, &[(None, "on laptop")]))
    );
}

#[test]
fn falls_back_to_presence_then_person_notes_and_inherits_lang() {
    let doc = br#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xml:lang="de"
        xmlns:d="urn:ietf:params:xml:ns:pidf:data-model"
        xmlns:r="urn:ietf:params:xml:ns:pidf:rpid" entity="sip:a@b">
      <tuple id="t"><status><basic>open</basic></status></tuple>
      <d:person id="p"><r:activities><r:on-the-phone/></r:activities>
        <d:note>Im Gespr&#228;ch</d:note></d:person>
    </presence>"#;
    assert_eq!(
        presence_from_pidf(doc),
        Ok(p(
            true,
            Some(Show::Dnd),
            &[(Some("de"), "Im Gespr\u{e4}ch")]
        ))
    );
    let doc2 = br#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b">
      <tuple id="t"><status><basic>open</basic></status></tuple>
      <note xml:lang="en">top-level</note></presence>"#;
    assert_eq!(
        presence_from_pidf(doc2),
        Ok(p(true, None, &[(Some("en"), "top-level")]))
    );
}

#[test]
fn no_tuples_is_unavailable() {
    let doc = br#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b"/>"#;
    assert_eq!(presence_from_pidf(doc), Ok(p(false, None, &[])));
}

#[test]
fn ignores_elements_in_wrong_namespace() {
    let doc = br#"<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:a@b">
      <tuple id="t"><status><basic xmlns="urn:other">open</basic></status></tuple></presence>"#;
    assert!(!presence_from_pidf(doc).unwrap().available);
}

#[test]
fn refuses_bad_documents() {
    let rows: &[&[u8]] = &[
        b"",
        b"<presence xmlns='urn:other'/>",
        b"<presence xmlns='urn:ietf:params:xml:ns:pidf'>",
        b"<presence xmlns='urn:ietf:params:xml:ns:pidf'></tuple>",
        b"<!DOCTYPE p [<!ENTITY x 'y'>]><presence xmlns='urn:ietf:params:xml:ns:pidf'/>",
        b"<presence xmlns='urn:ietf:params:xml:ns:pidf'><note>&x;</note></presence>",
        b"<presence xmlns='urn:ietf:params:xml:ns:pidf'/><presence xmlns='urn:ietf:params:xml:ns:pidf'/>",
        b"<presence xmlns='urn:ietf:params:xml:ns:pidf'><note>\xff</note></presence>",
    ];
    for doc in rows {
        assert!(
            presence_from_pidf(doc).is_err(),
            "{}",
            String::from_utf8_lossy(doc)
        );
    }
}

#[test]
fn refuses_deep_nesting_without_recursion() {
    let mut doc = b"<presence xmlns='urn:ietf:params:xml:ns:pidf'>".to_vec();
    for _ in 0..5000 {
        doc.extend_from_slice(b"<x>");
    }
    // Over the size cap is refused as too large; under it, as too deep.
    assert!(matches!(presence_from_pidf(&doc), Err(MapError::TooDeep)));
}

#[test]
fn refuses_oversized_document() {
    let doc = vec![b' '; MAX_PIDF_BYTES + 1];
    assert!(matches!(
        presence_from_pidf(&doc),
        Err(MapError::TooLarge { .. })
    ));
}

#[test]
fn xmpp_subscription_to_sip_action_table() {
    use SipPresenceAction::*;
    let rows: &[(SubscriptionType, SipPresenceAction)] = &[
        (
            SubscriptionType::Subscribe,
            Subscribe(SubscribeExpires::Refreshing),
        ),
        (
            SubscriptionType::Unsubscribe,
            Subscribe(SubscribeExpires::Zero),
        ),
        (SubscriptionType::Probe, Subscribe(SubscribeExpires::Zero)),
        (
            SubscriptionType::Subscribed,
            Notify(SubscriptionState::Active, None),
        ),
        (
            SubscriptionType::Unsubscribed,
            Notify(SubscriptionState::Terminated, Some("rejected")),
        ),
    ];
    for &(t, a) in rows {
        assert_eq!(sip_action_for_xmpp(t), a, "{t:?}");
    }
}

#[test]
fn subscription_state_to_xmpp_table() {
    use NotifyOutcome::*;
    use SubscriptionState::*;
    let rows: &[(SubscriptionState, Option<&str>, NotifyOutcome)] = &[
        (Active, None, Xmpp(SubscriptionType::Subscribed)),
        (Pending, None, Nothing),
        (
            Terminated,
            Some("rejected"),
            Xmpp(SubscriptionType::Unsubscribed),
        ),
        (
            Terminated,
            Some("noresource"),
            Xmpp(SubscriptionType::Unsubscribed),
        ),
        (
            Terminated,
            Some("invariant"),
            Xmpp(SubscriptionType::Unsubscribed),
        ),
        (Terminated, Some("deactivated"), Resubscribe),
        (Terminated, Some("timeout"), Resubscribe),
        (Terminated, Some("probation"), Resubscribe),
        (Terminated, Some("giveup"), Resubscribe),
        (Terminated, Some("x-vendor"), Resubscribe),
        (Terminated, None, Resubscribe),
    ];
    for &(s, r, want) in rows {
        assert_eq!(xmpp_type_for_subscription_state(s, r), want, "{s:?} {r:?}");
    }
}

#[test]
fn parses_subscription_state_tokens() {
    assert_eq!(
        SubscriptionState::parse("Active"),
        Some(SubscriptionState::Active)
    );
    assert_eq!(
        SubscriptionState::parse(" pending"),
        Some(SubscriptionState::Pending)
    );
    assert_eq!(
        SubscriptionState::parse("TERMINATED"),
        Some(SubscriptionState::Terminated)
    );
    assert_eq!(SubscriptionState::parse("waiting"), None);
}

#[test]
fn inbound_subscribe_table() {
    let rows: &[(bool, u32, Option<SubscriptionType>)] = &[
        (false, 3600, Some(SubscriptionType::Subscribe)),
        (false, 0, Some(SubscriptionType::Probe)),
        (true, 3600, None),
        (true, 0, Some(SubscriptionType::Unsubscribe)),
    ];
    for &(existing, expires, want) in rows {
        assert_eq!(xmpp_type_for_inbound_subscribe(existing, expires), want);
    }
}

#[test]
fn priority_maps_to_the_contact_qvalue_and_back() {
    let rows: &[(i8, &str)] = &[
        (-128, "0.000"),
        (-1, "0.000"),
        (0, "0.000"),
        (1, "0.008"),
        (5, "0.039"),
        (64, "0.504"),
        (127, "1"),
    ];
    for &(p, q) in rows {
        assert_eq!(qvalue_for_priority(p), q, "{p}");
        assert_eq!(priority_for_qvalue(q), Some(p.max(0)), "{q}");
    }
    assert_eq!(priority_for_qvalue("0.5"), Some(64));
    assert_eq!(priority_for_qvalue("1.000"), Some(127));
    for bad in ["", "2", "1.001", "0.1234", "-0.5", "0.x", ".5"] {
        assert_eq!(priority_for_qvalue(bad), None, "{bad:?}");
    }
}

#[test]
fn priority_survives_a_pidf_round_trip() {
    let p = XmppPresence {
        available: true,
        show: Some(Show::Away),
        status: vec![(Some("de".into()), "weg".into())],
        priority: 5,
    };
    let doc = pidf_from_presence("sip:bob@corp.test", &p, "r1");
    assert!(
        doc.contains("<contact priority=\"0.039\">sip:bob@corp.test</contact>"),
        "{doc}"
    );
    assert_eq!(presence_from_pidf(doc.as_bytes()).unwrap(), p);
    let gone = pidf_from_presence("sip:bob@corp.test", &XmppPresence::default(), "r1");
    assert!(
        !gone.contains("<contact"),
        "no contact for an unavailable presence: {gone}"
    );
}
