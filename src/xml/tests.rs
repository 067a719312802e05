//! Framer behaviour tests: events, views, every restricted-XML violation and cap, by name, and
//! split-invariance properties.

use proptest::prelude::*;

use super::*;
use crate::xmpp::error::StreamCondition;

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
    to='a.example' from='b.example' id='s1' version='1.0' xml:lang='en'>";

/// Feeds `chunks` one by one, draining events after each; stops at the first error.
fn run_chunks(chunks: &[&[u8]], limits: FramerLimits) -> (Vec<Event>, Option<FramerError>) {
    let mut f = Framer::new(limits);
    let mut events = Vec::new();
    for c in chunks {
        f.feed(c);
        loop {
            match f.next_event() {
                Ok(Some(e)) => events.push(e),
                Ok(None) => break,
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, None)
}

fn run(input: &str) -> (Vec<Event>, Option<FramerError>) {
    run_chunks(&[input.as_bytes()], FramerLimits::post_auth())
}

/// The stanzas of a stream that must frame without error.
fn stanzas(body: &str) -> Vec<Stanza> {
    let (events, err) = run(&format!("{HEADER}{body}"));
    assert_eq!(err, None, "unexpected error");
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::Stanza(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn one(body: &str) -> Stanza {
    let mut s = stanzas(body);
    assert_eq!(s.len(), 1, "expected exactly one stanza");
    s.remove(0)
}

/// The error a stream body produces (after the standard header).
fn error_of(body: &str) -> FramerError {
    let (_, err) = run(&format!("{HEADER}{body}"));
    err.expect("expected an error")
}

fn condition_of(body: &str) -> StreamCondition {
    error_of(body).condition()
}

#[test]
fn reports_stream_header_fields_and_bindings() {
    let (events, err) = run(HEADER);
    assert_eq!(err, None);
    let Event::StreamOpen(h) = &events[0] else {
        panic!("no header: {events:?}")
    };
    assert_eq!(h.local_name, "stream");
    assert_eq!(h.prefix.as_deref(), Some("stream"));
    assert_eq!(h.namespace.as_deref(), Some(NS_STREAMS));
    assert_eq!(h.default_ns.as_deref(), Some(NS_SERVER));
    assert_eq!(h.dialback_ns.as_deref(), Some(NS_DIALBACK));
    assert_eq!(h.to.as_deref(), Some("a.example"));
    assert_eq!(h.from.as_deref(), Some("b.example"));
    assert_eq!(h.id.as_deref(), Some("s1"));
    assert_eq!(h.version.as_deref(), Some("1.0"));
    assert_eq!(h.lang.as_deref(), Some("en"));
}

#[test]
fn header_without_declaration_is_accepted() {
    let (events, err) = run("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>");
    assert_eq!(err, None);
    assert!(matches!(&events[..], [Event::StreamOpen(h)] if h.default_ns.is_none()));
}

#[test]
fn frames_message_as_view_with_header_attributes() {
    let raw = "<message to='x@a.example' from='y@b.example/r' type='chat' id='m&amp;1' \
               xml:lang='de'><body>hi</body></message>";
    let s = one(raw);
    assert_eq!(s.as_bytes(), raw.as_bytes());
    assert_eq!(s.kind(), StanzaKind::Message);
    assert_eq!(s.name(), "message");
    assert_eq!(s.namespace().as_deref(), Some(NS_SERVER));
    assert_eq!(s.to().as_deref(), Some("x@a.example"));
    assert_eq!(s.from().as_deref(), Some("y@b.example/r"));
    assert_eq!(s.stanza_type().as_deref(), Some("chat"));
    assert_eq!(s.id().as_deref(), Some("m&1"));
    assert_eq!(s.attr_raw(HeaderAttr::Id), Some("m&amp;1"));
    assert_eq!(s.lang().as_deref(), Some("de"));
    let child = s.first_child().expect("child");
    assert_eq!(child.local_name, "body");
    assert_eq!(child.namespace.as_deref(), Some(NS_SERVER));
}

#[test]
fn classifies_kinds_by_namespace_and_name() {
    let cases = [
        ("<presence/>", StanzaKind::Presence),
        ("<iq type='get' id='1'/>", StanzaKind::Iq),
        ("<db:result to='a' from='b'>key</db:result>", StanzaKind::DialbackResult),
        ("<db:verify to='a' from='b' id='i'>key</db:verify>", StanzaKind::DialbackVerify),
        ("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", StanzaKind::StartTls),
        ("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", StanzaKind::TlsProceed),
        ("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", StanzaKind::TlsFailure),
        ("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>", StanzaKind::SaslAuth),
        ("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>", StanzaKind::SaslSuccess),
        ("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>", StanzaKind::SaslFailure),
        ("<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>", StanzaKind::Features),
        ("<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>", StanzaKind::StreamError),
        ("<message xmlns='jabber:client'/>", StanzaKind::Message),
        ("<x:message xmlns:x='urn:other'/>", StanzaKind::Other),
        ("<message xmlns='jabber&#x3A;server'/>", StanzaKind::Message),
    ];
    for (raw, kind) in cases {
        assert_eq!(one(raw).kind(), kind, "{raw}");
    }
}

#[test]
fn text_returns_dialback_key_and_sasl_payload() {
    let s = one("<db:result to='a' from='b'>abc&amp;<![CDATA[<def>]]>ghi</db:result>");
    assert_eq!(s.text().unwrap(), "abc&<def>ghi");
    let s = one("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>PQ==</auth>");
    assert!(matches!(
        s.text().unwrap(),
        std::borrow::Cow::Borrowed("PQ==")
    ));
    assert_eq!(
        one("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
            .text()
            .unwrap(),
        ""
    );
}

#[test]
fn text_of_element_with_children_is_invalid_xml() {
    let s = one("<db:result to='a' from='b'>k<x/></db:result>");
    assert_eq!(s.text(), Err(FramerError::UnexpectedChildElement));
    assert_eq!(
        FramerError::UnexpectedChildElement.condition(),
        StreamCondition::InvalidXml
    );
}

#[test]
fn write_children_reserializes_and_reescapes() {
    let s = one(
        "<message to='a' from='b'><body a=\"it's &lt;\">x &amp; y &gt; <![CDATA[<z>&]]>\r</body>\
         <db:x/><n:y xmlns:n='urn:n'><n:z/></n:y><e/></message>",
    );
    let mut out = Vec::new();
    s.write_children(&mut out);
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "<body a='it&apos;s &lt;'>x &amp; y &gt; &lt;z&gt;&amp;\n</body>\
         <db:x xmlns:db='jabber:server:dialback'/><n:y xmlns:n='urn:n'><n:z/></n:y><e/>"
    );
}

#[test]
fn write_children_handles_maximum_depth_iteratively() {
    let depth = 60;
    let body = format!(
        "<message>{}{}</message>",
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    );
    let s = one(&body);
    let mut out = Vec::new();
    s.write_children(&mut out);
    assert_eq!(
        out,
        format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth)).as_bytes()
    );
}

#[test]
fn whitespace_keepalives_yield_no_event_but_count() {
    let mut f = Framer::new(FramerLimits::pre_auth());
    f.feed(HEADER.as_bytes());
    assert!(matches!(f.next_event(), Ok(Some(Event::StreamOpen(_)))));
    let seen = f.bytes_seen();
    f.feed(b" \n\t\r ");
    assert_eq!(f.next_event(), Ok(None));
    assert_eq!(f.bytes_seen(), seen + 5);
    assert_eq!(f.buffered(), 0);
}

#[test]
fn stream_close_is_reported_and_trailing_whitespace_allowed() {
    let (events, err) = run(&format!("{HEADER}<presence/>\n</stream:stream>\n"));
    assert_eq!(err, None);
    assert!(matches!(events.last(), Some(Event::StreamClose)));
    assert_eq!(events.len(), 3);
}

#[test]
fn content_after_stream_close_is_not_well_formed() {
    assert_eq!(
        condition_of("</stream:stream><presence/>"),
        StreamCondition::NotWellFormed
    );
}

#[test]
fn greater_than_inside_quoted_attribute_does_not_end_the_tag() {
    let s = one("<message id='a>b' to=\"c/>d\"><body>x</body></message>");
    assert_eq!(s.id().as_deref(), Some("a>b"));
    assert_eq!(s.to().as_deref(), Some("c/>d"));
}

#[test]
fn multibyte_utf8_split_across_reads_is_accepted() {
    let raw = format!("{HEADER}<message><body>héllo ✓ 😀</body></message>");
    let bytes = raw.as_bytes();
    let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
    let (events, err) = run_chunks(&chunks, FramerLimits::pre_auth());
    assert_eq!(err, None);
    assert_eq!(events.len(), 2);
}

#[test]
fn reset_discards_bytes_buffered_after_starttls() {
    let mut f = Framer::new(FramerLimits::pre_auth());
    f.feed(HEADER.as_bytes());
    f.feed(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message to='smuggled'/>");
    assert!(matches!(f.next_event(), Ok(Some(Event::StreamOpen(_)))));
    let Ok(Some(Event::Stanza(s))) = f.next_event() else {
        panic!("no starttls")
    };
    assert_eq!(s.kind(), StanzaKind::StartTls);
    let smuggled = "<message to='smuggled'/>".len();
    assert_eq!(f.reset(), smuggled);
    assert_eq!(f.buffered(), 0);
    assert_eq!(f.next_event(), Ok(None));
    // The restarted stream starts with a new (optional) declaration and header.
    f.feed(HEADER.as_bytes());
    assert!(matches!(f.next_event(), Ok(Some(Event::StreamOpen(_)))));
    assert_eq!(f.next_event(), Ok(None));
}

#[test]
fn shrink_releases_buffer_when_idle() {
    let mut f = Framer::new(FramerLimits::post_auth());
    f.feed(HEADER.as_bytes());
    f.feed(format!("<message><body>{}</body></message>", "x".repeat(100_000)).as_bytes());
    assert!(matches!(f.next_event(), Ok(Some(Event::StreamOpen(_)))));
    assert!(matches!(f.next_event(), Ok(Some(Event::Stanza(_)))));
    assert_eq!(f.next_event(), Ok(None));
    f.shrink();
    assert_eq!(f.buffer_capacity(), 0);
}

#[test]
fn set_limits_raises_stanza_cap_after_authentication() {
    let big = format!("<message><body>{}</body></message>", "x".repeat(20_000));
    let (_, err) = run_chunks(
        &[HEADER.as_bytes(), big.as_bytes()],
        FramerLimits::pre_auth(),
    );
    assert_eq!(err, Some(FramerError::LimitExceeded(Limit::StanzaBytes)));
    let mut f = Framer::new(FramerLimits::pre_auth());
    f.feed(HEADER.as_bytes());
    assert!(matches!(f.next_event(), Ok(Some(Event::StreamOpen(_)))));
    f.set_limits(FramerLimits::post_auth());
    f.feed(big.as_bytes());
    assert!(matches!(f.next_event(), Ok(Some(Event::Stanza(s))) if s.len() == big.len()));
}

#[test]
fn errors_are_sticky_and_later_input_is_ignored() {
    let mut f = Framer::new(FramerLimits::pre_auth());
    f.feed(HEADER.as_bytes());
    f.feed(b"<!-- c --><presence/>");
    assert!(matches!(f.next_event(), Ok(Some(Event::StreamOpen(_)))));
    let e = f.next_event().unwrap_err();
    assert_eq!(e, FramerError::Comment);
    f.feed(b"<presence/>");
    assert_eq!(f.buffered(), 0);
    assert_eq!(f.next_event(), Err(e.clone()));
    f.reset();
    f.feed(HEADER.as_bytes());
    assert_eq!(f.next_event(), Err(e));
}

// ---- restricted XML (RFC 6120 §11.1) ----

#[test]
fn rejects_doctype_with_restricted_xml() {
    let (_, err) = run("<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><stream:stream>");
    assert_eq!(err, Some(FramerError::Doctype));
    assert_eq!(
        FramerError::Doctype.condition(),
        StreamCondition::RestrictedXml
    );
    assert_eq!(
        condition_of("<message><!ENTITY x 'y'></message>"),
        StreamCondition::RestrictedXml
    );
}

#[test]
fn rejects_processing_instruction_with_restricted_xml() {
    assert_eq!(error_of("<?php x?>"), FramerError::ProcessingInstruction);
    assert_eq!(
        condition_of("<message><?pi x?></message>"),
        StreamCondition::RestrictedXml
    );
    // A second XML declaration is a processing instruction too.
    assert_eq!(
        error_of("<?xml version='1.0'?>"),
        FramerError::ProcessingInstruction
    );
    let (_, err) = run(" <?xml version='1.0'?><stream:stream>");
    assert_eq!(err, Some(FramerError::ProcessingInstruction));
}

#[test]
fn rejects_comment_with_restricted_xml() {
    assert_eq!(error_of("<!-- hi -->"), FramerError::Comment);
    assert_eq!(
        condition_of("<message><body><!-- x --></body></message>"),
        StreamCondition::RestrictedXml
    );
    let (_, err) = run("<!-- before --><stream:stream>");
    assert_eq!(err, Some(FramerError::Comment));
}

#[test]
fn rejects_undefined_entity_with_restricted_xml() {
    assert_eq!(
        error_of("<message><body>&lol9;</body></message>"),
        FramerError::EntityReference
    );
    assert_eq!(
        error_of("<message id='&ent;'/>"),
        FramerError::EntityReference
    );
    assert_eq!(
        condition_of("<message>&nbsp;</message>"),
        StreamCondition::RestrictedXml
    );
}

#[test]
fn rejects_reference_to_disallowed_character_with_restricted_xml() {
    for r in [
        "&#0;",
        "&#x1;",
        "&#xFFFE;",
        "&#xD800;",
        "&#x110000;",
        "&#99999999999999;",
    ] {
        let e = error_of(&format!("<message><body>{r}</body></message>"));
        assert_eq!(e, FramerError::InvalidCharReference, "{r}");
        assert_eq!(e.condition(), StreamCondition::RestrictedXml);
    }
}

#[test]
fn accepts_predefined_entities_and_valid_character_references() {
    let s = one("<message id='&lt;&gt;&amp;&apos;&quot;&#65;&#x263a;&#x1F600;'><body>&#9;&#xA;</body></message>");
    assert_eq!(s.id().as_deref(), Some("<>&'\"A☺😀"));
}

#[test]
fn rejects_malformed_reference_with_not_well_formed() {
    for r in ["&;", "&#;", "&#x;", "&#xZZ;", "&lt ", "&1a;", "&a#b;"] {
        let e = error_of(&format!("<message><body>{r}</body></message>"));
        assert_eq!(e, FramerError::MalformedReference, "{r}");
        assert_eq!(e.condition(), StreamCondition::NotWellFormed);
    }
}

#[test]
fn accepts_cdata_sections_in_stanzas() {
    let s = one("<message><body><![CDATA[a <b> & ]] ]>]]></body></message>");
    let mut out = Vec::new();
    s.write_children(&mut out);
    assert_eq!(out, b"<body>a &lt;b&gt; &amp; ]] ]&gt;</body>");
}

#[test]
fn rejects_cdata_at_stream_level_with_not_well_formed() {
    assert_eq!(error_of("<![CDATA[x]]>"), FramerError::TextAtStreamLevel);
}

// ---- well-formedness ----

#[test]
fn rejects_invalid_utf8_with_not_well_formed() {
    let mut bytes = HEADER.as_bytes().to_vec();
    bytes.extend_from_slice(b"<message><body>\xC3\x28</body></message>");
    let (_, err) = run_chunks(&[&bytes], FramerLimits::pre_auth());
    assert_eq!(err, Some(FramerError::InvalidUtf8));
    assert_eq!(
        FramerError::InvalidUtf8.condition(),
        StreamCondition::NotWellFormed
    );
    // Overlong encoding and a lone continuation byte in an attribute.
    for bad in [
        &b"<message id='\xC0\xAF'/>"[..],
        b"<message id='\x80'/>",
        b"<m\xFF/>",
    ] {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(bad);
        let (_, err) = run_chunks(&[&bytes], FramerLimits::pre_auth());
        assert_eq!(err, Some(FramerError::InvalidUtf8));
    }
}

#[test]
fn rejects_control_characters_with_not_well_formed() {
    assert_eq!(
        error_of("<message><body>a\u{0}b</body></message>"),
        FramerError::IllegalChar
    );
    assert_eq!(error_of("<message id='\u{1b}'/>"), FramerError::IllegalChar);
    assert_eq!(
        error_of("<message><body>\u{FFFF}</body></message>"),
        FramerError::IllegalChar
    );
    assert_eq!(
        FramerError::IllegalChar.condition(),
        StreamCondition::NotWellFormed
    );
}

#[test]
fn rejects_mismatched_tag_with_not_well_formed() {
    assert_eq!(
        error_of("<message><body></message></body>"),
        FramerError::MismatchedTag
    );
    assert_eq!(
        error_of("<message></stream:stream>"),
        FramerError::MismatchedTag
    );
    assert_eq!(error_of("</presence>"), FramerError::MismatchedTag);
    assert_eq!(
        FramerError::MismatchedTag.condition(),
        StreamCondition::NotWellFormed
    );
}

#[test]
fn rejects_lt_in_attribute_value_with_not_well_formed() {
    assert_eq!(
        error_of("<message id='a<b'/>"),
        FramerError::LtInAttributeValue
    );
    assert_eq!(
        FramerError::LtInAttributeValue.condition(),
        StreamCondition::NotWellFormed
    );
}

#[test]
fn rejects_duplicate_attribute_with_not_well_formed() {
    assert_eq!(
        error_of("<message to='a' to='b'/>"),
        FramerError::DuplicateAttribute
    );
    assert_eq!(
        FramerError::DuplicateAttribute.condition(),
        StreamCondition::NotWellFormed
    );
}

#[test]
fn rejects_text_at_stream_level_with_not_well_formed() {
    assert_eq!(
        error_of("  hello <presence/>"),
        FramerError::TextAtStreamLevel
    );
    assert_eq!(error_of("<presence/>x"), FramerError::TextAtStreamLevel);
    assert_eq!(
        FramerError::TextAtStreamLevel.condition(),
        StreamCondition::NotWellFormed
    );
}

#[test]
fn rejects_garbage_with_not_well_formed() {
    for g in [
        "<'/>",
        "< message/>",
        "<message id=x/>",
        "<message id='1'id='2'/>",
        "<message/ >",
        "<a:b:c/>",
        "<:a/>",
        "<message id 'x'/>",
        "</ message>",
        "<!x>",
        "<!-x>",
        "<![CDAT[x]]>",
        "<message>]]></message>",
    ] {
        let e = error_of(g);
        assert_eq!(e.condition(), StreamCondition::NotWellFormed, "{g}: {e:?}");
    }
    let (_, err) = run("GET / HTTP/1.1\r\n");
    assert_eq!(
        err.map(|e| e.condition()),
        Some(StreamCondition::NotWellFormed)
    );
    let (_, err) = run("<stream:stream/>");
    assert_eq!(err, Some(FramerError::BadStreamHeader));
}

#[test]
fn rejects_nested_stream_header_with_invalid_xml() {
    // Invalid rather than not-well-formed: a nested <stream:stream> is well-formed XML, but the
    // streams schema (RFC 6120 appendix A.1) does not allow it; `invalid-xml` names that.
    for body in [
        "<stream:stream>",
        "<message><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
        "<message><stream xmlns='http://etherx.jabber.org/streams'/></message>",
        "<s:stream xmlns:s='http://etherx.jabber.org/&#115;treams'/>",
        "<message><body><stream:stream/></body></message>",
    ] {
        assert_eq!(error_of(body), FramerError::NestedStream, "{body}");
    }
    assert_eq!(
        FramerError::NestedStream.condition(),
        StreamCondition::InvalidXml
    );
    // A `stream` element in another namespace is just an element.
    assert_eq!(
        one("<message><stream xmlns='urn:x'/></message>").kind(),
        StanzaKind::Message
    );
}

#[test]
fn rejects_unbound_prefix_with_bad_namespace_prefix() {
    assert_eq!(error_of("<foo:message/>"), FramerError::UnboundPrefix);
    assert_eq!(
        error_of("<message foo:bar='x'/>"),
        FramerError::UnboundPrefix
    );
    assert_eq!(
        error_of("<message><n:x xmlns:n='urn:n'/><n:y/></message>"),
        FramerError::UnboundPrefix
    );
    assert_eq!(
        FramerError::UnboundPrefix.condition(),
        StreamCondition::BadNamespacePrefix
    );
    let (_, err) = run("<stream:stream xmlns='jabber:server'>");
    assert_eq!(err, Some(FramerError::UnboundPrefix));
    // Prefixes bound by the header, the stanza itself or `xml` are fine.
    one("<message xml:lang='en' xmlns:n='urn:n'><n:x n:a='1'/><db:y/></message>");
}

#[test]
fn rejects_declaration_with_other_encoding_as_unsupported_encoding() {
    let (_, err) = run("<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream>");
    assert_eq!(err, Some(FramerError::UnsupportedEncoding));
    assert_eq!(
        FramerError::UnsupportedEncoding.condition(),
        StreamCondition::UnsupportedEncoding
    );
    let (_, err) = run("<?xml version='1.0' encoding='utf-8'?><stream:stream xmlns:stream='x'>");
    assert_eq!(err, None);
}

// ---- caps (policy-violation) ----

fn tight() -> FramerLimits {
    FramerLimits {
        max_stanza_bytes: 200,
        max_header_bytes: 400,
        max_depth: 3,
        max_attributes: 10,
        max_elements: 5,
    }
}

fn tight_error(body: &str) -> Option<FramerError> {
    run_chunks(&[HEADER.as_bytes(), body.as_bytes()], tight()).1
}

#[test]
fn rejects_oversized_stanza_with_policy_violation_before_buffering_it() {
    let mut f = Framer::new(tight());
    f.feed(HEADER.as_bytes());
    assert!(matches!(f.next_event(), Ok(Some(Event::StreamOpen(_)))));
    f.feed(b"<message><body>");
    f.feed(&[b'x'; 185]);
    assert_eq!(
        f.next_event(),
        Ok(None),
        "200 bytes is still within the cap"
    );
    f.feed(b"y");
    let e = f.next_event().unwrap_err();
    assert_eq!(e, FramerError::LimitExceeded(Limit::StanzaBytes));
    assert_eq!(e.condition(), StreamCondition::PolicyViolation);
    assert_eq!(f.buffered(), 0);
    // Exactly at the cap is fine.
    let exact = format!("<message>{}</message>", "x".repeat(200 - 19));
    assert_eq!(tight_error(&exact), None);
}

#[test]
fn rejects_deep_nesting_with_policy_violation() {
    assert_eq!(tight_error("<a><b><c></c></b></a>"), None);
    assert_eq!(
        tight_error("<a><b><c><d>"),
        Some(FramerError::LimitExceeded(Limit::Depth))
    );
}

#[test]
fn rejects_too_many_attributes_with_policy_violation() {
    let attrs = |n: usize| (0..n).map(|i| format!(" a{i}='{i}'")).collect::<String>();
    assert_eq!(tight_error(&format!("<a{}/>", attrs(10))), None);
    assert_eq!(
        tight_error(&format!("<a{}/>", attrs(11))),
        Some(FramerError::LimitExceeded(Limit::Attributes))
    );
}

#[test]
fn rejects_too_many_elements_with_policy_violation() {
    assert_eq!(tight_error("<a><b/><b/><b/><b/></a>"), None);
    assert_eq!(
        tight_error("<a><b/><b/><b/><b/><b/>"),
        Some(FramerError::LimitExceeded(Limit::Elements))
    );
    // The count is per stanza.
    assert_eq!(
        tight_error("<a><b/><b/><b/><b/></a><a><b/><b/><b/><b/></a>"),
        None
    );
}

#[test]
fn rejects_oversized_header_with_policy_violation() {
    let header = format!(
        "<stream:stream xmlns:stream='{NS_STREAMS}' id='{}'>",
        "x".repeat(400)
    );
    let (_, err) = run_chunks(&[header.as_bytes()], tight());
    assert_eq!(err, Some(FramerError::LimitExceeded(Limit::HeaderBytes)));
}

// ---- split invariance ----

const STREAMS: &[&str] = &[
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
     xmlns:db='jabber:server:dialback' to='a.example' from='b.example' version='1.0'>\n\
     <db:result from='b.example' to='a.example'>3a6f&#x32;</db:result> \n\
     <message from='juliet@b.example/balcony' to='romeo@a.example' type='chat' id='m1' xml:lang='en'>\
     <body>Wherefore art thou, Rom&#233;o? &lt;3 &amp; ✓ 😀</body><thread>t1</thread></message>\
     <presence from='juliet@b.example/balcony' to='romeo@a.example'><show>away</show>\
     <status xml:lang='fr'>à bientôt</status><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' \
     node='n>ode' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>\t\
     <iq type='get' id=\"i'1\" to='a.example'><query xmlns='jabber:iq:version'/></iq>\
     <message><body><![CDATA[<raw> & ]]></body></message>\r\n</stream:stream>",
    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:server'><stream:features>\
     <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>\
     <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>   ",
    // Errors must appear at the same event index whatever the splits.
    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' xmlns='jabber:server'>\
     <presence/><message><body>a&#0;</body></message><presence/>",
    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><message><body>é\\xE9</body></message>",
    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><presence/><!-- x --><presence/>",
    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><iq><stream:stream>",
    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><message id='1' id='1'>",
    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><a>]]></a>",
    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><a>&unknown;</a>",
    "<?xml version='1.0'?><!DOCTYPE stream>",
    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>\
     <message><body>aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\
     aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\
     aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\
     <!-- also a comment, but after the size cap --></body></message>",
    "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><a><b><c><d/></c></b></a>",
];

/// Raw bytes of a corpus stream (`\\xE9` stands for a lone Latin-1 byte: invalid UTF-8).
fn corpus_bytes(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = s.as_bytes();
    while !rest.is_empty() {
        if rest.starts_with(b"\\xE9") {
            out.push(0xE9);
            rest = &rest[4..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

fn split_limits() -> FramerLimits {
    FramerLimits {
        max_stanza_bytes: 300,
        max_header_bytes: 300,
        max_depth: 3,
        ..FramerLimits::post_auth()
    }
}

fn run_split(bytes: &[u8], cuts: &[usize]) -> (Vec<Event>, Option<FramerError>) {
    let mut chunks = Vec::new();
    let mut last = 0;
    for &c in cuts {
        let c = c.clamp(last, bytes.len());
        chunks.push(&bytes[last..c]);
        last = c;
    }
    chunks.push(&bytes[last..]);
    run_chunks(&chunks, split_limits())
}

#[test]
fn corpus_streams_have_the_expected_outcomes() {
    let outcomes: Vec<_> = STREAMS
        .iter()
        .map(|s| run_split(&corpus_bytes(s), &[]))
        .collect();
    assert_eq!(outcomes[0].1, None);
    assert_eq!(outcomes[0].0.len(), 7);
    assert_eq!(outcomes[1].1, None);
    assert_eq!(outcomes[1].0.len(), 3);
    let errors: Vec<_> = outcomes[2..]
        .iter()
        .map(|o| (o.0.len(), o.1.clone()))
        .collect();
    use FramerError::*;
    assert_eq!(
        errors,
        vec![
            (2, Some(InvalidCharReference)),
            (1, Some(InvalidUtf8)),
            (2, Some(Comment)),
            (1, Some(NestedStream)),
            (1, Some(DuplicateAttribute)),
            (1, Some(CdataEndInText)),
            (1, Some(EntityReference)),
            (0, Some(Doctype)),
            (1, Some(LimitExceeded(Limit::StanzaBytes))),
            (1, Some(LimitExceeded(Limit::Depth))),
        ]
    );
}

#[test]
fn every_two_way_split_yields_the_same_events_and_errors() {
    for s in STREAMS {
        let bytes = corpus_bytes(s);
        let whole = run_split(&bytes, &[]);
        for cut in 0..=bytes.len() {
            assert_eq!(run_split(&bytes, &[cut]), whole, "split at {cut} of {s}");
        }
    }
}

#[test]
fn one_byte_reads_yield_the_same_events_and_errors() {
    for s in STREAMS {
        let bytes = corpus_bytes(s);
        let cuts: Vec<usize> = (1..bytes.len()).collect();
        assert_eq!(run_split(&bytes, &cuts), run_split(&bytes, &[]), "{s}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_multi_way_splits_yield_the_same_events_and_errors(
        which in 0..STREAMS.len(),
        mut cuts in proptest::collection::vec(0usize..1200, 0..40),
    ) {
        let bytes = corpus_bytes(STREAMS[which]);
        cuts.sort_unstable();
        prop_assert_eq!(run_split(&bytes, &cuts), run_split(&bytes, &[]));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_split_identically(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        cut in 0usize..300,
    ) {
        let mut bytes = HEADER.as_bytes().to_vec();
        bytes.extend_from_slice(&data);
        prop_assert_eq!(run_split(&bytes, &[HEADER.len() + cut]), run_split(&bytes, &[]));
    }
}
