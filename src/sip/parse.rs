//! Parsing the start line and header section into ranges over the buffer (no copies), with
//! limits. Shared by [`SipMessage::parse`](super::message::SipMessage::parse) (datagrams,
//! complete buffers) and the stream [`SipFramer`](super::framer::SipFramer).

use super::headers::{is_token_byte, HeaderName};
use super::message::{HeaderEntry, Headers, StartLine};
use super::typed::{parse_num, ValueError};
use std::fmt;

/// Caps applied to every message; a message over them is the peer's fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes in start line + headers + the blank line.
    pub max_header_bytes: usize,
    /// Bytes in the body (Content-Length).
    pub max_body_bytes: usize,
    /// Header lines (folded continuation lines count with their header).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 64 * 1024,
            max_body_bytes: 1024 * 1024,
            max_headers: 128,
        }
    }
}

/// Why a message was rejected. Every variant is the sending peer's fault (a gateway answers a
/// request with 400, or closes the stream when framing is lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The header section has no terminating blank line.
    Incomplete,
    /// The start line is neither a Request-Line nor a Status-Line.
    BadStartLine,
    /// SIP version other than `SIP/2.0`.
    UnsupportedVersion,
    /// A line is not terminated by CRLF (bare LF or CR).
    BadLineEnding,
    /// A header line has no `name:` or starts with a continuation.
    BadHeaderLine,
    /// More header lines than [`Limits::max_headers`].
    TooManyHeaders {
        /// The cap.
        limit: usize,
    },
    /// Header section larger than [`Limits::max_header_bytes`].
    HeaderSectionTooLarge {
        /// The cap.
        limit: usize,
    },
    /// Content-Length above [`Limits::max_body_bytes`].
    BodyTooLarge {
        /// Declared length.
        declared: usize,
        /// The cap.
        limit: usize,
    },
    /// Content-Length is malformed, negative or repeated.
    BadContentLength,
    /// Content-Length is larger than the bytes that follow (datagram).
    BodyTruncated,
    /// Content-Length absent on a stream transport (RFC 3261 §18.3: mandatory there).
    MissingContentLength,
    /// A header the gateway relies on is malformed.
    InvalidHeader {
        /// Which header.
        name: HeaderName,
        /// What is wrong.
        error: ValueError,
    },
    /// A mandatory header is missing.
    MissingHeader(HeaderName),
    /// A single-valued header appears more than once.
    DuplicateHeader(HeaderName),
    /// CSeq method differs from the request method (RFC 4475 §3.1.2.17/18).
    CSeqMethodMismatch,
    /// The Request-URI is not an absolute URI, or is a SIP URI with headers or a bad syntax.
    BadRequestUri,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Incomplete => f.write_str("SIP header section not terminated"),
            ParseError::BadStartLine => f.write_str("malformed SIP start line"),
            ParseError::UnsupportedVersion => f.write_str("SIP version is not SIP/2.0"),
            ParseError::BadLineEnding => f.write_str("SIP line not terminated by CRLF"),
            ParseError::BadHeaderLine => f.write_str("malformed SIP header line"),
            ParseError::TooManyHeaders { limit } => write!(f, "more than {limit} SIP headers"),
            ParseError::HeaderSectionTooLarge { limit } => {
                write!(f, "SIP header section over {limit} bytes")
            }
            ParseError::BodyTooLarge { declared, limit } => {
                write!(f, "SIP body of {declared} bytes over the {limit}-byte cap")
            }
            ParseError::BadContentLength => f.write_str("malformed or repeated Content-Length"),
            ParseError::BodyTruncated => f.write_str("SIP body shorter than Content-Length"),
            ParseError::MissingContentLength => {
                f.write_str("Content-Length missing on a stream transport")
            }
            ParseError::InvalidHeader { name, error } => write!(f, "{name:?} header: {error}"),
            ParseError::MissingHeader(h) => write!(f, "missing {h:?} header"),
            ParseError::DuplicateHeader(h) => write!(f, "repeated {h:?} header"),
            ParseError::CSeqMethodMismatch => {
                f.write_str("CSeq method differs from request method")
            }
            ParseError::BadRequestUri => f.write_str("malformed Request-URI"),
        }
    }
}

impl std::error::Error for ParseError {}

/// A parsed header section: ranges relative to the message start.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub start: StartLine,
    pub headers: Headers,
    /// Length of start line + headers + blank line.
    pub head_len: usize,
    pub content_length: Option<usize>,
}

/// Finds the end (exclusive, after CRLFCRLF) of the header section, searching from `from`.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let from = from.saturating_sub(3);
    HEAD_END
        .find(&buf[from.min(buf.len())..])
        .map(|p| from + p + 4)
}

/// The searcher for the blank line, built once: building it per call cost more than the
/// search over a typical header section.
static HEAD_END: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\r\n\r\n"));

fn r32(a: usize, b: usize) -> std::ops::Range<u32> {
    // Header sections are capped far below 4 GiB, so these never truncate.
    (a as u32)..(b as u32)
}

/// Parses `buf[..head_len]`, which ends with CRLFCRLF.
pub(crate) fn parse_head(buf: &[u8], head_len: usize, limits: &Limits) -> Result<Head, ParseError> {
    if head_len > limits.max_header_bytes {
        return Err(ParseError::HeaderSectionTooLarge {
            limit: limits.max_header_bytes,
        });
    }
    let head = &buf[..head_len];
    // One scan per line: the first CR or LF must be a CR followed by LF.
    let line_end = |from: usize| -> Result<usize, ParseError> {
        let cr = memchr::memchr2(b'\r', b'\n', &head[from..]).ok_or(ParseError::Incomplete)? + from;
        if head[cr] != b'\r' || head.get(cr + 1) != Some(&b'\n') {
            return Err(ParseError::BadLineEnding);
        }
        Ok(cr)
    };
    let sl_end = line_end(0)?;
    let start = parse_start_line(&head[..sl_end])?;
    // Room for a typical message's headers without growing.
    let mut headers = Headers::with_capacity(12);
    let mut pos = sl_end + 2;
    let mut content_length = None;
    // Stop before the final CRLF (the blank line).
    while pos < head_len - 2 {
        let end = line_end(pos)?;
        let line = &head[pos..end];
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // Folded continuation: extend the previous header's value.
            let last = headers.last_mut().ok_or(ParseError::BadHeaderLine)?;
            let trimmed_end = end
                - line
                    .iter()
                    .rev()
                    .take_while(|b| matches!(b, b' ' | b'\t'))
                    .count();
            if trimmed_end > pos && line.iter().any(|b| !matches!(b, b' ' | b'\t')) {
                if last.value.start == last.value.end {
                    let first = pos
                        + line
                            .iter()
                            .take_while(|b| matches!(b, b' ' | b'\t'))
                            .count();
                    last.value = r32(first, trimmed_end);
                } else {
                    last.value.end = trimmed_end as u32;
                }
            }
        } else {
            let name_len = line.iter().take_while(|&&b| is_token_byte(b)).count();
            let mut i = name_len;
            while i < line.len() && matches!(line[i], b' ' | b'\t') {
                i += 1;
            }
            if name_len == 0 || line.get(i) != Some(&b':') {
                return Err(ParseError::BadHeaderLine);
            }
            i += 1;
            while i < line.len() && matches!(line[i], b' ' | b'\t') {
                i += 1;
            }
            let mut vend = line.len();
            while vend > i && matches!(line[vend - 1], b' ' | b'\t') {
                vend -= 1;
            }
            if headers.len() >= limits.max_headers {
                return Err(ParseError::TooManyHeaders {
                    limit: limits.max_headers,
                });
            }
            headers.push(HeaderEntry {
                name: HeaderName::from_bytes(&line[..name_len]),
                name_range: r32(pos, pos + name_len),
                value: r32(pos + i, pos + vend),
            });
        }
        pos = end + 2;
    }
    for h in headers
        .iter()
        .filter(|h| h.name == HeaderName::ContentLength)
    {
        if content_length.is_some() {
            return Err(ParseError::BadContentLength);
        }
        let v = &head[h.value.start as usize..h.value.end as usize];
        let n: usize = parse_num(v).map_err(|_| ParseError::BadContentLength)?;
        if n > limits.max_body_bytes {
            return Err(ParseError::BodyTooLarge {
                declared: n,
                limit: limits.max_body_bytes,
            });
        }
        content_length = Some(n);
    }
    Ok(Head {
        start,
        headers,
        head_len,
        content_length,
    })
}

fn parse_start_line(line: &[u8]) -> Result<StartLine, ParseError> {
    if let Some(rest) = line.strip_prefix(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let sp = memchr::memchr(b' ', rest).ok_or(ParseError::BadStartLine)?;
        if &rest[..sp] != b"2.0" {
            return Err(ParseError::UnsupportedVersion);
        }
        let code = &rest[sp + 1..];
        if code.len() < 4 || code[3] != b' ' || !code[..3].iter().all(u8::is_ascii_digit) {
            return Err(ParseError::BadStartLine);
        }
        let n = u16::from(code[0] - b'0') * 100
            + u16::from(code[1] - b'0') * 10
            + u16::from(code[2] - b'0');
        if !(100..=699).contains(&n) {
            return Err(ParseError::BadStartLine);
        }
        let reason_start = 4 + sp + 1 + 4;
        return Ok(StartLine::Response {
            code: n,
            reason: r32(reason_start, line.len()),
        });
    }
    // Request-Line = Method SP Request-URI SP SIP-Version, single spaces (RFC 4475 §3.1.2.9/10).
    let sp1 = memchr::memchr(b' ', line).ok_or(ParseError::BadStartLine)?;
    let sp2 = memchr::memchr(b' ', &line[sp1 + 1..]).ok_or(ParseError::BadStartLine)? + sp1 + 1;
    let (method, uri, version) = (&line[..sp1], &line[sp1 + 1..sp2], &line[sp2 + 1..]);
    if method.is_empty() || !method.iter().all(|&b| is_token_byte(b)) {
        return Err(ParseError::BadStartLine);
    }
    if !version.starts_with(b"SIP/") || version.contains(&b' ') {
        return Err(ParseError::BadStartLine);
    }
    if version != b"SIP/2.0" {
        return Err(ParseError::UnsupportedVersion);
    }
    // absoluteURI: scheme ":" then visible characters.
    let colon = memchr::memchr(b':', uri).ok_or(ParseError::BadRequestUri)?;
    let scheme_ok = uri.first().is_some_and(u8::is_ascii_alphabetic)
        && uri[..colon]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok || colon + 1 == uri.len() || uri.iter().any(|&b| b <= b' ' || b == 0x7f) {
        return Err(ParseError::BadRequestUri);
    }
    Ok(StartLine::Request {
        method: r32(0, sp1),
        uri: r32(sp1 + 1, sp2),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> Result<Head, ParseError> {
        let end = find_head_end(s.as_bytes(), 0).ok_or(ParseError::Incomplete)?;
        parse_head(s.as_bytes(), end, &Limits::default())
    }

    #[test]
    fn rejects_request_line_spacing_errors() {
        assert!(head("OPTIONS  sip:u@h SIP/2.0\r\n\r\n").is_err());
        assert_eq!(
            head("OPTIONS sip:u@h SIP/2.0 \r\n\r\n").unwrap_err(),
            ParseError::BadStartLine
        );
        assert_eq!(
            head("OPTIONS sip:u@h SIP/7.0\r\n\r\n").unwrap_err(),
            ParseError::UnsupportedVersion
        );
        assert_eq!(
            head("INVITE <sip:u@h> SIP/2.0\r\n\r\n").unwrap_err(),
            ParseError::BadRequestUri
        );
    }

    #[test]
    fn rejects_bare_lf_and_leading_continuation() {
        assert_eq!(
            head("OPTIONS sip:u@h SIP/2.0\nTo: x\r\n\r\n").unwrap_err(),
            ParseError::BadLineEnding
        );
        assert_eq!(
            head("OPTIONS sip:u@h SIP/2.0\r\n x\r\n\r\n").unwrap_err(),
            ParseError::BadHeaderLine
        );
    }

    #[test]
    fn status_line_parses_code_and_empty_reason() {
        let h = head("SIP/2.0 100 \r\nl: 0\r\n\r\n").unwrap();
        assert!(
            matches!(h.start, StartLine::Response { code: 100, ref reason } if reason.is_empty())
        );
        assert_eq!(h.content_length, Some(0));
        assert_eq!(
            head("SIP/2.0 4294967301 x\r\n\r\n").unwrap_err(),
            ParseError::BadStartLine
        );
    }

    #[test]
    fn caps_header_count_and_body_size() {
        let limits = Limits {
            max_headers: 2,
            ..Limits::default()
        };
        let s = b"OPTIONS sip:u@h SIP/2.0\r\na: 1\r\nb: 2\r\nc: 3\r\n\r\n";
        assert_eq!(
            parse_head(s, s.len(), &limits).unwrap_err(),
            ParseError::TooManyHeaders { limit: 2 }
        );
        assert!(matches!(
            head("OPTIONS sip:u@h SIP/2.0\r\nContent-Length: 99999999999\r\n\r\n"),
            Err(ParseError::BodyTooLarge { .. })
        ));
        assert_eq!(
            head("OPTIONS sip:u@h SIP/2.0\r\nl: 1\r\nContent-Length: 1\r\n\r\n").unwrap_err(),
            ParseError::BadContentLength
        );
    }
}
