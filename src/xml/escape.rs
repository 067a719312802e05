//! The XML escaping writer and the lazy unescaper for values the framer has already validated.
//!
//! Characters XML 1.0 does not allow (C0 controls other than TAB, LF, CR; U+FFFE; U+FFFF) are
//! replaced by U+FFFD rather than rejected: the writer is used to re-serialize content that must
//! still go out, and a replacement keeps the output well-formed. (Surrogates cannot occur in `str`.)

use std::borrow::Cow;

/// What replaces a character XML 1.0 does not allow.
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// Whether `c` matches the XML 1.0 `Char` production.
pub const fn is_xml_char(c: u32) -> bool {
    matches!(c, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
}

/// Appends `s` escaped for character data: `& < >` as entities, CR as `&#xD;` (so end-of-line
/// normalization at the receiver does not eat it), disallowed characters as U+FFFD.
pub fn escape_text(s: &str, out: &mut Vec<u8>) {
    escape(s, out, false)
}

/// Appends `s` escaped for an attribute value in either quote style: `& < > ' "` as entities,
/// TAB/LF/CR as character references (attribute-value normalization would turn them into
/// spaces), disallowed characters as U+FFFD.
pub fn escape_attr(s: &str, out: &mut Vec<u8>) {
    escape(s, out, true)
}

/// Appends `<NAME from='…' to='…' [id='…'] [type='…']` (values escaped, start tag left open
/// for more attributes or `>`): the head every stanza the router writes starts with.
pub fn open_stanza(
    out: &mut Vec<u8>,
    name: &str,
    from: &str,
    to: &str,
    id: Option<&str>,
    ty: Option<&str>,
) {
    out.push(b'<');
    out.extend_from_slice(name.as_bytes());
    for (k, v) in [
        ("from", Some(from)),
        ("to", Some(to)),
        ("id", id),
        ("type", ty),
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

fn escape(s: &str, out: &mut Vec<u8>, attr: bool) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len());
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let rep: Option<&[u8]> = match b {
            b'&' => Some(b"&amp;"),
            b'<' => Some(b"&lt;"),
            b'>' => Some(b"&gt;"),
            b'\r' => Some(b"&#xD;"),
            b'\'' if attr => Some(b"&apos;"),
            b'"' if attr => Some(b"&quot;"),
            b'\t' if attr => Some(b"&#x9;"),
            b'\n' if attr => Some(b"&#xA;"),
            b'\t' | b'\n' => None,
            0..=0x1F => Some(REPLACEMENT),
            // U+FFFE and U+FFFF are EF BF BE / EF BF BF.
            0xEF if bytes.get(i + 1) == Some(&0xBF)
                && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)) =>
            {
                out.extend_from_slice(&bytes[run..i]);
                out.extend_from_slice(REPLACEMENT);
                i += 3;
                run = i;
                continue;
            }
            _ => None,
        };
        if let Some(rep) = rep {
            out.extend_from_slice(&bytes[run..i]);
            out.extend_from_slice(rep);
            run = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(&bytes[run..]);
}

/// Resolves the five predefined entities and character references in `raw`.
///
/// Borrowed when `raw` holds no reference (the common case). `raw` is text the framer has
/// validated; anything that is not a valid reference is copied verbatim, so this never fails.
pub fn unescape(raw: &str) -> Cow<'_, str> {
    let b = raw.as_bytes();
    let Some(first) = memchr::memchr(b'&', b) else {
        return Cow::Borrowed(raw);
    };
    let mut out = String::with_capacity(raw.len());
    // `run` is where the text not yet copied starts; every cut is at an ASCII `&` or `;`, so
    // on a char boundary.
    let mut run = 0;
    let mut amp = first;
    loop {
        let reference = memchr::memchr(b';', &b[amp + 1..])
            .map(|semi| amp + 1 + semi)
            .and_then(|semi| Some((semi, resolve_reference(&raw[amp + 1..semi])?)));
        let next_from = match reference {
            Some((semi, c)) => {
                out.push_str(&raw[run..amp]);
                out.push(c);
                run = semi + 1;
                run
            }
            // Not a reference: the `&` stays, copied with the run.
            None => amp + 1,
        };
        match memchr::memchr(b'&', &b[next_from..]) {
            Some(i) => amp = next_from + i,
            None => break,
        }
    }
    out.push_str(&raw[run..]);
    Cow::Owned(out)
}

/// Character data as a parser reports it: line ends normalized (CRLF and CR to LF, XML 1.0
/// §2.11), then references resolved.
pub(crate) fn decode_text(raw: &str) -> Cow<'_, str> {
    if memchr::memchr(b'\r', raw.as_bytes()).is_none() {
        return unescape(raw);
    }
    let normalized = raw.replace("\r\n", "\n").replace('\r', "\n");
    Cow::Owned(unescape(&normalized).into_owned())
}

/// An attribute value as a parser reports it: literal TAB, LF, CR, CRLF become a space (XML 1.0
/// §3.3.3 attribute-value normalization), then references resolved (so `&#xA;` stays a LF).
pub(crate) fn decode_attr(raw: &str) -> Cow<'_, str> {
    let b = raw.as_bytes();
    // Attribute values are short (addresses, ids, languages): one plain pass beats the setup
    // of two SIMD searches, and most values need nothing.
    if !b.iter().any(|&c| matches!(c, b'\t' | b'\n' | b'\r' | b'&')) {
        return Cow::Borrowed(raw);
    }
    if memchr::memchr3(b'\t', b'\n', b'\r', b).is_none() {
        return unescape(raw);
    }
    let normalized = raw.replace("\r\n", " ").replace(['\r', '\n', '\t'], " ");
    Cow::Owned(unescape(&normalized).into_owned())
}

/// The character `&name;` stands for, if it is predefined or a reference to an allowed character.
pub(crate) fn resolve_reference(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => {
            let num = name.strip_prefix('#')?;
            let v = match num.strip_prefix('x') {
                Some(hex) => parse_digits(hex, 16)?,
                None => parse_digits(num, 10)?,
            };
            if is_xml_char(v) {
                char::from_u32(v)
            } else {
                None
            }
        }
    }
}

/// Digits in `radix`, saturating far above U+10FFFF so a long run cannot overflow.
pub(crate) fn parse_digits(s: &str, radix: u32) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    let mut v: u32 = 0;
    for c in s.chars() {
        let d = c.to_digit(radix)?;
        v = v.saturating_mul(radix).saturating_add(d).min(0x0100_0000);
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> String {
        let mut v = Vec::new();
        escape_text(s, &mut v);
        String::from_utf8(v).unwrap()
    }
    fn attr(s: &str) -> String {
        let mut v = Vec::new();
        escape_attr(s, &mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escape_text_escapes_markup_and_keeps_quotes() {
        assert_eq!(text("a<b>&c'\"d"), "a&lt;b&gt;&amp;c'\"d");
        assert_eq!(text("line\r\nnext\ttab"), "line&#xD;\nnext\ttab");
        assert_eq!(text("héllo ✓ 😀"), "héllo ✓ 😀");
    }

    #[test]
    fn escape_attr_escapes_quotes_and_whitespace_controls() {
        assert_eq!(attr("a'b\"c<&>"), "a&apos;b&quot;c&lt;&amp;&gt;");
        assert_eq!(attr("a\tb\nc\rd"), "a&#x9;b&#xA;c&#xD;d");
    }

    #[test]
    fn escape_replaces_characters_xml_does_not_allow() {
        assert_eq!(text("a\u{0}b\u{1b}c"), "a\u{FFFD}b\u{FFFD}c");
        assert_eq!(
            attr("x\u{FFFE}y\u{FFFF}z\u{FFFD}"),
            "x\u{FFFD}y\u{FFFD}z\u{FFFD}"
        );
    }

    #[test]
    fn unescape_resolves_predefined_and_char_references() {
        assert!(matches!(unescape("plain"), Cow::Borrowed("plain")));
        assert_eq!(
            unescape("a&lt;b&amp;&#x263A;&#65;&quot;&apos;&gt;"),
            "a<b&☺A\"'>"
        );
    }

    #[test]
    fn unescape_keeps_what_is_not_a_reference() {
        assert_eq!(unescape("a & b"), "a & b");
        assert_eq!(unescape("&bogus; &lt"), "&bogus; &lt");
        assert_eq!(unescape("&&amp;;&#0;&#x41;"), "&&;&#0;A");
        assert_eq!(unescape("é&amp;ü&#xE9;"), "é&üé");
    }

    #[test]
    fn decoding_normalizes_line_ends_and_attribute_whitespace() {
        assert_eq!(decode_text("a\r\nb\rc&#xD;"), "a\nb\nc\r");
        assert_eq!(decode_attr("a\r\nb\tc\nd&#xA;"), "a b c d\n");
        assert!(matches!(decode_attr("plain"), Cow::Borrowed("plain")));
    }

    #[test]
    fn escape_then_unescape_round_trips() {
        for s in ["", "a<&>'\"b", "\t\n\r x", "ünï 😀 &amp;"] {
            assert_eq!(unescape(&attr(s)), s);
            assert_eq!(unescape(&text(s)), s);
        }
    }
}
