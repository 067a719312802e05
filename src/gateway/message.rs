//! XMPP `<message/>` ⇄ SIP MESSAGE (RFC 7572, RFC 3428) and XEP-0085 chat states ⇄ RFC 3994
//! isComposing.
//!
//! | XMPP | SIP MESSAGE |
//! |---|---|
//! | `<body/>` | body, `Content-Type: text/plain; charset=UTF-8` |
//! | `xml:lang` of the body | `Content-Language` |
//! | `<subject/>` | `Subject` header |
//! | `<thread/>` | `Call-ID` (verbatim when it is a valid Call-ID, else %-encoded) |
//! | type chat/normal/headline | MESSAGE; SIP → XMPP yields `chat` |
//! | type groupchat | refused (RFC 7702 territory) |
//! | chat state (no body) | `application/im-iscomposing+xml` |
//!
//! Verification: ⚠ RFC 7572 text could not be read in the stored corpora (opening page only);
//! rows are protocol-facts §2 and the brief. Our choices, marked in the code: one body is sent
//! (several `<body xml:lang>`: the one in the stanza's language, else the first without a
//! language, else the first); SIP → XMPP type is `chat` (Lync IM is person-to-person chat).
//! The 1300-byte rule is RFC 3428 §8 as known (a MESSAGE outside a session must not exceed
//! 1300 bytes unless the path is congestion-controlled). RFC 3994 element names/namespace
//! (`isComposing`, `state` active|idle, `refresh`, `contenttype`, `lastactive`) were checked
//! against several independent implementations, not the RFC text.

use std::borrow::Cow;

use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;

use super::MapError;
use crate::xml::escape_text;

/// Content type of a gatewayed text body.
pub const TEXT_PLAIN_UTF8: &str = "text/plain; charset=UTF-8";
/// Content type of an RFC 3994 composition indication.
pub const ISCOMPOSING_TYPE: &str = "application/im-iscomposing+xml";
const NS_ISCOMPOSING: &[u8] = b"urn:ietf:params:xml:ns:im-iscomposing";
/// RFC 3428 size limit for a MESSAGE on a path that is not congestion-safe.
pub const NON_CONGESTION_SAFE_LIMIT: usize = 1300;
/// Largest isComposing document accepted.
const MAX_ISCOMPOSING: usize = 4096;
/// Refresh interval we announce with `active` (seconds); receivers time the state out after it.
pub const COMPOSING_REFRESH_SECS: u32 = 60;

/// XMPP message `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// `chat`
    Chat,
    /// `normal` (also the default when absent)
    Normal,
    /// `headline`
    Headline,
    /// `groupchat` — refused.
    Groupchat,
}

/// XEP-0085 chat states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatState {
    /// `<active/>`
    Active,
    /// `<composing/>`
    Composing,
    /// `<paused/>`
    Paused,
    /// `<inactive/>`
    Inactive,
    /// `<gone/>`
    Gone,
}

/// The XMPP message fields the gateway maps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XmppMessage {
    /// `type`; `None` is `normal`.
    pub kind: Option<MessageType>,
    /// The stanza's `xml:lang`.
    pub lang: Option<String>,
    /// Each `<body xml:lang>`: (language, text).
    pub bodies: Vec<(Option<String>, String)>,
    /// `<subject/>` (first one).
    pub subject: Option<String>,
    /// `<thread/>`.
    pub thread: Option<String>,
    /// XEP-0085 chat state child, if any.
    pub chat_state: Option<ChatState>,
}

/// The SIP MESSAGE fields the gateway fills or reads (header values unfolded, body as bytes).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SipMessage {
    /// `Content-Type`.
    pub content_type: String,
    /// `Content-Language`, if any.
    pub content_language: Option<String>,
    /// `Subject`, if any.
    pub subject: Option<String>,
    /// `Call-ID`: `None` on the way out means "let the SIP layer generate one".
    pub call_id: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// Size policy for gatewayed messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageLimits {
    /// Largest body accepted either way (413 on the SIP side, policy-violation on the XMPP side).
    pub max_body: usize,
    /// Whether the SIP path is congestion-safe (TCP/TLS to a known proxy); if not, the RFC 3428
    /// 1300-byte rule also applies.
    pub congestion_safe: bool,
}

impl Default for MessageLimits {
    fn default() -> Self {
        MessageLimits {
            max_body: 64 * 1024,
            congestion_safe: true,
        }
    }
}

impl MessageLimits {
    /// The effective body cap.
    pub fn body_cap(&self) -> usize {
        if self.congestion_safe {
            self.max_body
        } else {
            self.max_body.min(NON_CONGESTION_SAFE_LIMIT)
        }
    }

    /// Checks a whole serialized MESSAGE request (the SIP layer calls this once it knows it):
    /// on a path that is not congestion-safe, more than 1300 bytes is refused.
    pub fn check_request_len(&self, len: usize) -> Result<(), MapError> {
        if !self.congestion_safe && len > NON_CONGESTION_SAFE_LIMIT {
            return Err(MapError::TooLarge {
                len,
                cap: NON_CONGESTION_SAFE_LIMIT,
            });
        }
        Ok(())
    }
}

/// XMPP → SIP. `Ok(None)` when there is nothing to send (no body and no chat state that maps).
///
/// A body wins over a chat state (RFC 3994: receiving content ends the "active" indication).
/// Header values are made safe: CR/LF/controls in the subject become spaces, an `xml:lang` that
/// is not a language tag is dropped.
pub fn sip_from_xmpp(
    m: &XmppMessage,
    limits: &MessageLimits,
) -> Result<Option<SipMessage>, MapError> {
    Ok(sip_parts_from_xmpp(m, limits)?.map(SipParts::into_owned))
}

/// The fields [`sip_from_xmpp`] maps, borrowed from the XMPP message where they can be: the
/// gateway's MESSAGE writer copies each value once, into the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipParts<'a> {
    /// `Content-Type`.
    pub content_type: &'static str,
    /// `Content-Language`, if any.
    pub content_language: Option<&'a str>,
    /// `Subject`, if any, made header-safe.
    pub subject: Option<Cow<'a, str>>,
    /// `Call-ID` from the thread; `None` means "let the SIP layer generate one".
    pub call_id: Option<String>,
    /// The body.
    pub body: Cow<'a, str>,
}

impl SipParts<'_> {
    /// The owned [`SipMessage`].
    pub fn into_owned(self) -> SipMessage {
        SipMessage {
            content_type: self.content_type.to_owned(),
            content_language: self.content_language.map(str::to_owned),
            subject: self.subject.map(Cow::into_owned),
            call_id: self.call_id,
            body: self.body.into_owned().into_bytes(),
        }
    }
}

/// [`sip_from_xmpp`] without copying the values.
pub fn sip_parts_from_xmpp<'a>(
    m: &'a XmppMessage,
    limits: &MessageLimits,
) -> Result<Option<SipParts<'a>>, MapError> {
    if m.kind == Some(MessageType::Groupchat) {
        return Err(MapError::Groupchat);
    }
    let call_id = m.thread.as_deref().map(call_id_for_thread);
    let Some((lang, text)) = pick_body(m) else {
        let Some(state) = m.chat_state.and_then(composing_for_chat_state) else {
            return Ok(None);
        };
        return Ok(Some(SipParts {
            content_type: ISCOMPOSING_TYPE,
            content_language: None,
            subject: None,
            call_id,
            body: Cow::Owned(iscomposing_xml(state)),
        }));
    };
    let cap = limits.body_cap();
    if text.len() > cap {
        return Err(MapError::TooLarge {
            len: text.len(),
            cap,
        });
    }
    Ok(Some(SipParts {
        content_type: TEXT_PLAIN_UTF8,
        content_language: lang.filter(|l| is_language_tag(l)),
        subject: m.subject.as_deref().map(header_safe),
        call_id,
        body: Cow::Borrowed(text),
    }))
}

/// SIP → XMPP. `text/plain` (charset absent or UTF-8) becomes a `chat` message with one body;
/// `application/im-iscomposing+xml` becomes a body-less chat-state message. Other types are
/// refused with 415; a non-UTF-8 body with 400; an oversized one with 413.
pub fn xmpp_from_sip(s: &SipMessage, limits: &MessageLimits) -> Result<XmppMessage, MapError> {
    let (media, charset) = parse_content_type(&s.content_type);
    // The RFC 3428 1300-byte rule binds the sender of a MESSAGE; on receipt only our own cap.
    let cap = limits.max_body;
    if s.body.len() > cap {
        return Err(MapError::TooLarge {
            len: s.body.len(),
            cap,
        });
    }
    let thread = s.call_id.clone();
    if media.eq_ignore_ascii_case("application/im-iscomposing+xml") {
        let state = parse_iscomposing(&s.body)?;
        return Ok(XmppMessage {
            kind: Some(MessageType::Chat),
            thread,
            chat_state: Some(chat_state_for_composing(state)),
            ..XmppMessage::default()
        });
    }
    if !media.eq_ignore_ascii_case("text/plain") {
        return Err(MapError::UnsupportedMediaType);
    }
    if charset.is_some_and(|c| !c.eq_ignore_ascii_case("utf-8")) {
        // RFC 3428 lets the sender pick a charset; we only accept UTF-8 (and US-ASCII, a subset).
        if !charset.is_some_and(|c| c.eq_ignore_ascii_case("us-ascii")) || !s.body.is_ascii() {
            return Err(MapError::UnsupportedMediaType);
        }
    }
    let text = std::str::from_utf8(&s.body).map_err(|_| MapError::BadText)?;
    if text.chars().any(|c| !crate::xml::is_xml_char(c as u32)) {
        return Err(MapError::BadText);
    }
    // Content-Language may list several tags; the body is in the first.
    let lang = s
        .content_language
        .as_deref()
        .and_then(|l| l.split(',').next())
        .map(str::trim)
        .filter(|l| is_language_tag(l))
        .map(str::to_owned);
    Ok(XmppMessage {
        kind: Some(MessageType::Chat),
        lang: None,
        bodies: vec![(lang, text.to_owned())],
        subject: s.subject.clone().filter(|x| !x.is_empty()),
        thread,
        chat_state: None,
    })
}

/// Picks the one body to send: the stanza's language, else one without language, else the first.
fn pick_body(m: &XmppMessage) -> Option<(Option<&str>, &str)> {
    fn lang_of<'a>(m: &'a XmppMessage, b: &'a (Option<String>, String)) -> Option<&'a str> {
        b.0.as_deref().or(m.lang.as_deref())
    }
    let b = m
        .bodies
        .iter()
        .find(|b| m.lang.is_some() && lang_of(m, b) == m.lang.as_deref())
        .or_else(|| m.bodies.iter().find(|b| b.0.is_none()))
        .or_else(|| m.bodies.first())?;
    Some((lang_of(m, b), b.1.as_str()))
}

/// RFC 3261 `word` characters (Call-ID = word ["@" word]).
fn is_word_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~()<>:\\\"/[]?{}".contains(&b)
}

/// `<thread/>` → Call-ID: verbatim if it already is a valid Call-ID without `%`; otherwise
/// every byte outside `word` (and `%` itself) is %-encoded. Call-ID → `<thread/>` is verbatim,
/// so threads that needed encoding do not come back byte-identical (the driver keeps a map if
/// it needs them).
pub fn call_id_for_thread(thread: &str) -> String {
    let b = thread.as_bytes();
    let at = b.iter().filter(|&&c| c == b'@').count();
    let valid = !b.is_empty()
        && at <= 1
        && !b.contains(&b'%')
        && b.split(|&c| c == b'@')
            .all(|w| !w.is_empty() && w.iter().all(|&c| is_word_char(c)));
    if valid {
        return thread.to_owned();
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(b.len() * 3);
    for &c in b {
        if is_word_char(c) && c != b'%' {
            out.push(c as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(c >> 4)] as char);
            out.push(HEX[usize::from(c & 0xF)] as char);
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

/// Replaces CR, LF and other controls (header injection) with spaces.
fn header_safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
    )
}

/// A BCP 47-shaped tag: 1–8 alphanumerics in `-`-separated subtags, at most 64 bytes.
fn is_language_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.split('-')
            .all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// `type/subtype` and the `charset` parameter of a Content-Type value.
fn parse_content_type(v: &str) -> (&str, Option<&str>) {
    let mut parts = v.split(';');
    let media = parts.next().unwrap_or("").trim();
    let charset = parts.find_map(|p| {
        let (k, val) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| val.trim().trim_matches('"'))
    });
    (media, charset)
}

/// RFC 3994 `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComposingState {
    /// `active`: the user is composing.
    Active,
    /// `idle`: the user stopped composing.
    Idle,
}

/// XEP-0085 → RFC 3994 (our choice, ⚠): composing → active; paused, inactive, gone → idle;
/// `active` → none (it accompanies bodies, and a body already ends the indication).
pub fn composing_for_chat_state(s: ChatState) -> Option<ComposingState> {
    match s {
        ChatState::Composing => Some(ComposingState::Active),
        ChatState::Paused | ChatState::Inactive | ChatState::Gone => Some(ComposingState::Idle),
        ChatState::Active => None,
    }
}

/// RFC 3994 → XEP-0085: active → composing; idle → paused (stopped composing).
pub fn chat_state_for_composing(s: ComposingState) -> ChatState {
    match s {
        ComposingState::Active => ChatState::Composing,
        ComposingState::Idle => ChatState::Paused,
    }
}

/// The isComposing document for `state` (`refresh` only with `active`, as RFC 3994 uses it).
pub fn iscomposing_xml(state: ComposingState) -> String {
    let mut o = Vec::with_capacity(256);
    o.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<isComposing xmlns=\"");
    o.extend_from_slice(NS_ISCOMPOSING);
    o.extend_from_slice(b"\"><state>");
    match state {
        ComposingState::Active => {
            o.extend_from_slice(b"active</state><contenttype>");
            escape_text("text/plain", &mut o);
            o.extend_from_slice(b"</contenttype><refresh>");
            o.extend_from_slice(COMPOSING_REFRESH_SECS.to_string().as_bytes());
            o.extend_from_slice(b"</refresh>");
        }
        ComposingState::Idle => {
            o.extend_from_slice(b"idle</state><contenttype>text/plain</contenttype>")
        }
    }
    o.extend_from_slice(b"</isComposing>\n");
    String::from_utf8(o).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Reads the `state` of an isComposing document (bounded: 4 KiB, depth 4, no DTD).
pub fn parse_iscomposing(xml: &[u8]) -> Result<ComposingState, MapError> {
    const MAX_DEPTH: usize = 4;
    if xml.len() > MAX_ISCOMPOSING {
        return Err(MapError::TooLarge {
            len: xml.len(),
            cap: MAX_ISCOMPOSING,
        });
    }
    if std::str::from_utf8(xml).is_err() {
        return Err(MapError::BadXml("not UTF-8"));
    }
    let mut r = NsReader::from_reader(xml);
    let mut depth = 0usize;
    let mut in_state = false;
    let mut state_text = String::new();
    let mut state = None;
    loop {
        let (ours, ev) = r
            .read_resolved_event()
            .map(|(res, ev)| {
                let ours = matches!(res, ResolveResult::Bound(Namespace(n)) if n == NS_ISCOMPOSING);
                (ours, ev)
            })
            .map_err(|_| MapError::BadXml("not well-formed"))?;
        match ev {
            Event::Start(e) => {
                if depth == 0 && !(ours && e.local_name().as_ref() == b"isComposing") {
                    return Err(MapError::BadXml("root is not <isComposing>"));
                }
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(MapError::TooDeep);
                }
                in_state = depth == 2 && ours && e.local_name().as_ref() == b"state";
                state_text.clear();
            }
            Event::Empty(_) if depth == 0 => {
                return Err(MapError::BadXml("empty <isComposing>"));
            }
            Event::End(_) => {
                if in_state {
                    state = match state_text.trim() {
                        "active" => Some(ComposingState::Active),
                        "idle" => Some(ComposingState::Idle),
                        _ => return Err(MapError::BadXml("unknown isComposing state")),
                    };
                    in_state = false;
                }
                depth = depth.saturating_sub(1);
            }
            Event::Text(t) if in_state => {
                state_text.push_str(&t.unescape().map_err(|_| MapError::BadXml("bad entity"))?);
            }
            Event::DocType(_) => return Err(MapError::BadXml("DTD not allowed")),
            Event::Eof => break,
            _ => {}
        }
    }
    if depth != 0 {
        return Err(MapError::BadXml("truncated document"));
    }
    state.ok_or(MapError::BadXml("isComposing without <state>"))
}

/// XEP-0085 namespace.
pub const NS_CHATSTATES: &str = "http://jabber.org/protocol/chatstates";

impl ChatState {
    /// The element name.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatState::Active => "active",
            ChatState::Composing => "composing",
            ChatState::Paused => "paused",
            ChatState::Inactive => "inactive",
            ChatState::Gone => "gone",
        }
    }

    /// The state named `name` (an element of [`NS_CHATSTATES`]).
    pub fn from_name(name: &[u8]) -> Option<ChatState> {
        Some(match name {
            b"active" => ChatState::Active,
            b"composing" => ChatState::Composing,
            b"paused" => ChatState::Paused,
            b"inactive" => ChatState::Inactive,
            b"gone" => ChatState::Gone,
            _ => return None,
        })
    }
}

impl MessageType {
    /// The `type` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Chat => "chat",
            MessageType::Normal => "normal",
            MessageType::Headline => "headline",
            MessageType::Groupchat => "groupchat",
        }
    }
}

/// Serializes `m` as a `<message/>` stanza from `from` to `to`, appended to `out`. Every value
/// is escaped: nothing from the SIP side reaches the stream unescaped.
pub fn write_message_stanza(
    from: &str,
    to: &str,
    id: Option<&str>,
    m: &XmppMessage,
    out: &mut Vec<u8>,
) {
    use crate::xml::{escape_attr, open_stanza};
    let text_el = |out: &mut Vec<u8>, name: &[u8], lang: Option<&str>, v: &str| {
        out.push(b'<');
        out.extend_from_slice(name);
        if let Some(l) = lang {
            out.extend_from_slice(b" xml:lang='");
            escape_attr(l, out);
            out.push(b'\'');
        }
        out.push(b'>');
        escape_text(v, out);
        out.extend_from_slice(b"</");
        out.extend_from_slice(name);
        out.push(b'>');
    };
    let ty = m.kind.unwrap_or(MessageType::Normal).as_str();
    open_stanza(out, "message", from, to, id, Some(ty));
    if let Some(l) = &m.lang {
        out.extend_from_slice(b" xml:lang='");
        escape_attr(l, out);
        out.push(b'\'');
    }
    out.push(b'>');
    if let Some(s) = &m.subject {
        text_el(out, b"subject", None, s);
    }
    for (lang, text) in &m.bodies {
        text_el(out, b"body", lang.as_deref(), text);
    }
    if let Some(t) = &m.thread {
        text_el(out, b"thread", None, t);
    }
    if let Some(cs) = m.chat_state {
        out.push(b'<');
        out.extend_from_slice(cs.as_str().as_bytes());
        out.extend_from_slice(b" xmlns='");
        out.extend_from_slice(NS_CHATSTATES.as_bytes());
        out.extend_from_slice(b"'/>");
    }
    out.extend_from_slice(b"</message>");
}

#[cfg(test)]
mod tests;
