//! Reading a start tag of bytes the framer's scanner already checked (well-formed, UTF-8,
//! quoted values, no `<` in values): its name and each attribute's raw value, by position.
//!
//! No general XML reader: only the shapes the scanner lets through need reading, so this is a
//! few memchr calls per tag. Anything else yields `None`, never a panic. It runs for every
//! stanza (the header attributes) and every child a gateway maps.

use std::ops::Range;

use memchr::memchr;

/// A start tag read by [`read_start_tag`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StartTag {
    /// The qualified name.
    pub name: Range<usize>,
    /// `/>`.
    pub empty: bool,
    /// Just after the tag.
    pub end: usize,
}

/// Reads the start tag whose `<` is at `lt` in `b`, calling `attr(key, value)` for each
/// attribute with the raw (still escaped) value's range in `b`.
pub(crate) fn read_start_tag<'a>(
    b: &'a [u8],
    lt: usize,
    mut attr: impl FnMut(&'a [u8], Range<usize>),
) -> Option<StartTag> {
    let name_start = lt + 1;
    let mut i = name_start;
    while !matches!(*b.get(i)?, b' ' | b'\t' | b'\n' | b'\r' | b'/' | b'>') {
        i += 1;
    }
    let name = name_start..i;
    loop {
        match *b.get(i)? {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'>' => {
                return Some(StartTag {
                    name,
                    empty: false,
                    end: i + 1,
                })
            }
            b'/' => {
                if *b.get(i + 1)? != b'>' {
                    return None;
                }
                return Some(StartTag {
                    name,
                    empty: true,
                    end: i + 2,
                });
            }
            _ => {
                let eq = i + memchr(b'=', b.get(i..)?)?;
                let key = b.get(i..eq)?.trim_ascii_end();
                let q = eq + 1 + b.get(eq + 1..)?.iter().position(|c| !is_ws(*c))?;
                let quote = *b.get(q)?;
                if quote != b'\'' && quote != b'"' {
                    return None;
                }
                let value_start = q + 1;
                let value_end = value_start + memchr(quote, b.get(value_start..)?)?;
                attr(key, value_start..value_end);
                i = value_end + 1;
            }
        }
    }
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> Option<(StartTag, Vec<(String, String)>)> {
        let b = s.as_bytes();
        let mut attrs = Vec::new();
        let tag = read_start_tag(b, 0, |k, v| {
            attrs.push((
                String::from_utf8(k.to_vec()).unwrap(),
                String::from_utf8(b[v].to_vec()).unwrap(),
            ))
        })?;
        Some((tag, attrs))
    }

    #[test]
    fn names_values_and_ends() {
        let (tag, attrs) = read("<db:result a='1' b = \"x>'y\"\n c='&amp;'>rest").unwrap();
        assert_eq!((tag.name, tag.empty, tag.end), (1..10, false, 39));
        assert_eq!(
            attrs,
            [("a", "1"), ("b", "x>'y"), ("c", "&amp;")].map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        let (tag, attrs) = read("<x/>").unwrap();
        assert_eq!(
            (tag.name, tag.empty, tag.end, attrs.len()),
            (1..2, true, 4, 0)
        );
        let (tag, _) = read("<x a='b' />").unwrap();
        assert_eq!((tag.empty, tag.end), (true, 11));
    }

    #[test]
    fn what_the_scanner_never_passes_is_none_not_a_panic() {
        for bad in ["<x", "<x a='1'", "<x a=1>", "<x a>", "<x /", "<x a='1", "<"] {
            assert_eq!(read(bad), None, "{bad}");
        }
    }
}
