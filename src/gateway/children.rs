//! Reading the direct children of a stanza for the mappings: name, `xml:lang`, `xmlns` and
//! character data of each, in order. Bounded by the framer's caps (the stanza passed them); no
//! recursion; text of grandchildren is skipped.

use quick_xml::events::{BytesStart, Event};

use crate::xml::Stanza;

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
    let mut r = quick_xml::Reader::from_reader(s.as_bytes());
    let mut depth = 0usize;
    // The child being read, and its text.
    let mut current: Option<Open> = None;
    let mut text = String::new();
    loop {
        match r.read_event().ok()? {
            Event::Start(e) => {
                depth += 1;
                if depth == 2 {
                    let (lang, xmlns) = lang_and_ns(&e);
                    current = Some(Open {
                        name: e.local_name().as_ref().to_vec(),
                        lang,
                        xmlns,
                    });
                    text.clear();
                }
            }
            Event::Empty(e) if depth == 1 => {
                let (lang, xmlns) = lang_and_ns(&e);
                f(Child {
                    name: e.local_name().as_ref(),
                    lang,
                    xmlns: xmlns.as_deref(),
                    text: String::new(),
                });
            }
            Event::Text(t) if depth == 2 => text.push_str(&t.unescape().ok()?),
            Event::CData(t) if depth == 2 => text.push_str(std::str::from_utf8(&t).ok()?),
            Event::End(_) => {
                if depth == 2 {
                    if let Some(c) = current.take() {
                        f(Child {
                            name: &c.name,
                            lang: c.lang,
                            xmlns: c.xmlns.as_deref(),
                            text: std::mem::take(&mut text),
                        });
                    }
                }
                depth = depth.saturating_sub(1);
            }
            Event::Eof => return Some(()),
            _ => {}
        }
    }
}

/// A child whose start tag was read.
struct Open {
    name: Vec<u8>,
    lang: Option<String>,
    xmlns: Option<Vec<u8>>,
}

fn lang_and_ns(e: &BytesStart<'_>) -> (Option<String>, Option<Vec<u8>>) {
    let mut lang = None;
    let mut xmlns = None;
    for a in e.attributes().flatten() {
        match a.key.as_ref() {
            b"xml:lang" => lang = a.unescape_value().ok().map(|v| v.into_owned()),
            b"xmlns" => xmlns = Some(a.value.into_owned()),
            _ => {}
        }
    }
    (lang, xmlns)
}
