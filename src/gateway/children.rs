//! Reading the direct children of a stanza for the mappings: name, `xml:lang`, `xmlns` and
//! character data of each, in order. Bounded by the framer's caps (the stanza passed them); no
//! recursion; text of grandchildren is skipped.
//!
//! A direct byte scan, not a general XML reader: every [`Stanza`] was checked by the framer's
//! scanner (well-formed restricted XML, UTF-8, matching tags, no comments, PIs or DTDs), so
//! only the shapes it lets through need reading. Anything else ends the scan with `None`, never
//! a panic. This runs once per gatewayed message; quick-xml here cost about a fifth of the
//! gateway's instructions per message.

use memchr::{memchr, memmem};

use crate::xml::Stanza;
use crate::xml::{decode_attr, decode_text, read_start_tag};

/// One direct child of a stanza.
pub struct Child<'a> {
    /// Local name.
    pub name: &'a [u8],
    /// Its `xml:lang`, if any.
    pub lang: Option<String>,
    /// Its `xmlns` attribute as written, if any.
    pub xmlns: Option<&'a [u8]>,
    /// Its character data (entities resolved, CDATA included).
    pub text: String,
}

/// Calls `f` for each direct child of `s`. `None` when the stanza cannot be read to its end
/// (children before the fault were passed to `f`).
pub fn for_each_child(s: &Stanza, mut f: impl FnMut(Child<'_>)) -> Option<()> {
    let b = s.as_bytes();
    let Some(mut pos) = s.content_start() else {
        return Some(());
    };
    // Element depth below the stanza: 0 between children, 1 inside a child, more in its
    // descendants.
    let mut depth = 0usize;
    // The child being read (name, lang, xmlns) and its text.
    let mut current: Option<Open<'_>> = None;
    let mut text = String::new();
    loop {
        let lt = pos + memchr(b'<', b.get(pos..)?)?;
        if depth == 1 && lt > pos {
            text.push_str(&decode_text(as_str(&b[pos..lt])?));
        }
        match *b.get(lt + 1)? {
            b'/' => {
                pos = lt + 2 + memchr(b'>', b.get(lt + 2..)?)? + 1;
                if depth == 0 {
                    // The stanza's own end tag.
                    return Some(());
                }
                if depth == 1 {
                    let c = current.take()?;
                    f(Child {
                        name: c.name,
                        lang: c.lang,
                        xmlns: c.xmlns,
                        text: std::mem::take(&mut text),
                    });
                }
                depth -= 1;
            }
            b'!' => {
                const OPEN: &[u8] = b"<![CDATA[";
                if b.get(lt..lt + OPEN.len())? != OPEN {
                    return None;
                }
                let start = lt + OPEN.len();
                let end = start + memmem::find(b.get(start..)?, b"]]>")?;
                if depth == 1 {
                    text.push_str(as_str(&b[start..end])?);
                }
                pos = end + 3;
            }
            _ => {
                let (mut lang, mut xmlns) = (None, None);
                let tag = read_start_tag(b, lt, |key, value| {
                    if depth != 0 {
                        return;
                    }
                    match key {
                        b"xml:lang" => lang = Some(value),
                        b"xmlns" => xmlns = Some(&b[value]),
                        _ => {}
                    }
                })?;
                pos = tag.end;
                if depth == 0 {
                    let qname = &b[tag.name];
                    let open = Open {
                        name: memchr(b':', qname).map_or(qname, |c| &qname[c + 1..]),
                        lang: match lang {
                            Some(v) => Some(decode_attr(as_str(&b[v])?).into_owned()),
                            None => None,
                        },
                        xmlns,
                    };
                    if tag.empty {
                        f(Child {
                            name: open.name,
                            lang: open.lang,
                            xmlns: open.xmlns,
                            text: String::new(),
                        });
                        continue;
                    }
                    current = Some(open);
                    text.clear();
                }
                if !tag.empty {
                    depth += 1;
                }
            }
        }
    }
}

/// A child whose start tag was read.
struct Open<'a> {
    name: &'a [u8],
    lang: Option<String>,
    xmlns: Option<&'a [u8]>,
}

fn as_str(b: &[u8]) -> Option<&str> {
    // The framer validated UTF-8; a slice boundary is always at ASCII markup.
    std::str::from_utf8(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xml::{Event, Framer, FramerLimits};

    fn stanza(xml: &str) -> Stanza {
        let mut f = Framer::new(FramerLimits::post_auth());
        f.feed(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0'>");
        f.feed(xml.as_bytes());
        match (f.next_event(), f.next_event()) {
            (Ok(Some(Event::StreamOpen(_))), Ok(Some(Event::Stanza(s)))) => s,
            other => panic!("fixture {xml}: {other:?}"),
        }
    }

    /// (name, lang, xmlns, text) of each child.
    type Seen = Vec<(String, Option<String>, Option<String>, String)>;

    fn children(xml: &str) -> (Option<()>, Seen) {
        let s = stanza(xml);
        let mut seen = Vec::new();
        let done = for_each_child(&s, |c| {
            seen.push((
                String::from_utf8(c.name.to_vec()).unwrap(),
                c.lang,
                c.xmlns.map(|x| String::from_utf8(x.to_vec()).unwrap()),
                c.text,
            ))
        });
        (done, seen)
    }

    fn child(name: &str, lang: Option<&str>, xmlns: Option<&str>, text: &str) -> Seen {
        vec![(
            name.to_owned(),
            lang.map(str::to_owned),
            xmlns.map(str::to_owned),
            text.to_owned(),
        )]
    }

    #[test]
    fn reads_names_languages_namespaces_and_text_in_order() {
        let (done, seen) = children(
            "<message to='a@b' xml:lang='en'><body>hi</body><body xml:lang=\"de\">hallo</body>\
             <active xmlns='http://jabber.org/protocol/chatstates'/><thread>t1</thread></message>",
        );
        assert_eq!(done, Some(()));
        let mut want = child("body", None, None, "hi");
        want.extend(child("body", Some("de"), None, "hallo"));
        want.extend(child(
            "active",
            None,
            Some("http://jabber.org/protocol/chatstates"),
            "",
        ));
        want.extend(child("thread", None, None, "t1"));
        assert_eq!(seen, want);
    }

    #[test]
    fn resolves_references_joins_cdata_and_normalizes_line_ends() {
        let (done, seen) =
            children("<message><body>a &lt;3 &#x263A;<![CDATA[<raw> & ]]>b\r\nc</body></message>");
        assert_eq!(done, Some(()));
        assert_eq!(seen, child("body", None, None, "a <3 ☺<raw> & b\nc"));
    }

    #[test]
    fn skips_grandchildren_text_and_keeps_the_childs_own() {
        let (_, seen) = children(
            "<message><html xmlns='http://jabber.org/protocol/xhtml-im'>x<body><p>deep</p></body>y</html></message>",
        );
        assert_eq!(
            seen,
            child(
                "html",
                None,
                Some("http://jabber.org/protocol/xhtml-im"),
                "xy"
            )
        );
    }

    #[test]
    fn attribute_values_may_hold_markup_characters_and_spaces_around_equals() {
        let (_, seen) = children(
            "<message><body a='x>y/' xml:lang = 'fr' b=\"'\" >salut</body><x:e xmlns:x='urn:x' c='&gt;'/></message>",
        );
        let mut want = child("body", Some("fr"), None, "salut");
        want.extend(child("e", None, None, ""));
        assert_eq!(seen, want);
    }

    #[test]
    fn empty_stanza_and_childless_stanza_have_no_children() {
        assert_eq!(children("<message to='a@b'/>"), (Some(()), vec![]));
        assert_eq!(children("<message>text only</message>"), (Some(()), vec![]));
    }

    #[test]
    fn language_values_are_decoded() {
        let (_, seen) = children("<message><subject xml:lang='e&#x6E;'>s</subject></message>");
        assert_eq!(seen, child("subject", Some("en"), None, "s"));
    }

    /// The reading this scanner replaced, on quick-xml: the oracle for the differential test.
    fn quick_xml_children(s: &Stanza) -> (Option<()>, Seen) {
        use quick_xml::events::Event as Q;
        let mut r = quick_xml::Reader::from_reader(s.as_bytes());
        let mut seen = Vec::new();
        let mut depth = 0usize;
        let mut current = None;
        let mut text = String::new();
        let attrs = |e: &quick_xml::events::BytesStart<'_>| {
            let (mut lang, mut xmlns) = (None, None);
            for a in e.attributes().flatten() {
                match a.key.as_ref() {
                    b"xml:lang" => lang = Some(decode_attr(as_str(&a.value).unwrap()).into_owned()),
                    b"xmlns" => xmlns = Some(String::from_utf8(a.value.to_vec()).unwrap()),
                    _ => {}
                }
            }
            (lang, xmlns)
        };
        let name = |e: &quick_xml::events::BytesStart<'_>| {
            String::from_utf8(e.local_name().as_ref().to_vec()).unwrap()
        };
        loop {
            let Ok(ev) = r.read_event() else {
                return (None, seen);
            };
            match ev {
                Q::Start(e) => {
                    depth += 1;
                    if depth == 2 {
                        let (lang, xmlns) = attrs(&e);
                        current = Some((name(&e), lang, xmlns));
                        text.clear();
                    }
                }
                Q::Empty(e) if depth == 1 => {
                    let (lang, xmlns) = attrs(&e);
                    seen.push((name(&e), lang, xmlns, String::new()));
                }
                Q::Text(t) if depth == 2 => text.push_str(&decode_text(as_str(&t).unwrap())),
                Q::CData(t) if depth == 2 => text.push_str(as_str(&t).unwrap()),
                Q::End(_) => {
                    if depth == 2 {
                        let (n, l, x) = current.take().unwrap();
                        seen.push((n, l, x, std::mem::take(&mut text)));
                    }
                    depth -= 1;
                }
                Q::Eof => return (Some(()), seen),
                _ => {}
            }
        }
    }

    #[test]
    fn agrees_with_a_general_xml_reader_on_generated_stanzas() {
        // Pieces a stanza's content is built from; a fixed xorshift picks them, so the run is
        // the same every time and covers nesting, attributes, references, CDATA and whitespace.
        const PIECES: &[&str] = &[
            "<body>plain</body>",
            "<body xml:lang='de'>mit &amp; &#228;</body>",
            "<body\n xml:lang=\"en-GB\"\t>x<![CDATA[]]>y</body>",
            "<subject>s&gt;</subject>",
            "<thread parent='p'>t</thread>",
            "<composing xmlns='http://jabber.org/protocol/chatstates'/>",
            "<x:data xmlns:x='urn:x' x:a='1'><x:f>v</x:f></x:data>",
            "<html xmlns='http://jabber.org/protocol/xhtml-im'><body><p>a<b>c</b></p></body></html>",
            "<e/>",
            "<e a='&apos;&quot;' />",
            "<body>line\r\nend</body>",
            "  \n",
            "<r><r><r><r>deep</r></r></r></r>",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for round in 0..500 {
            let mut xml = String::from("<message to='a@b'>");
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            for k in 0..(state % 6) {
                let pick = (state >> (8 * k)) as usize % PIECES.len();
                xml.push_str(PIECES[pick]);
            }
            xml.push_str("</message>");
            let s = stanza(&xml);
            let mut seen = Vec::new();
            let done = for_each_child(&s, |c| {
                seen.push((
                    String::from_utf8(c.name.to_vec()).unwrap(),
                    c.lang,
                    c.xmlns.map(|x| String::from_utf8(x.to_vec()).unwrap()),
                    c.text,
                ))
            });
            assert_eq!((done, seen), quick_xml_children(&s), "round {round}: {xml}");
        }
    }
}
