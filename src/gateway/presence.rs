//! Presence ⇄ PIDF (RFC 8048, RFC 3863 PIDF, RFC 4479 data model, RFC 4480 RPID), Lync
//! availability numbers, and the subscription state table (RFC 8048 §4, RFC 6665).
//!
//! Verification: ⚠ RFC 8048 and RFC 4480 text could not be read in the stored corpora (only
//! opening pages). Element names and namespaces (`urn:ietf:params:xml:ns:pidf`, `…:pidf:data-model`,
//! `…:pidf:rpid`, `tuple/status/basic`, `note xml:lang`, `dm:person`, `rpid:activities`) are as
//! known from RFC 3863/4479/4480 and match the PJSIP RPID API docs (activities away, busy). The
//! Lync ranges are protocol-facts §1 ✅; the Lync → `<show/>` table is that section's proposal.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::NsReader;

use super::MapError;
use crate::xml::{escape_attr, escape_text};

const NS_PIDF: &[u8] = b"urn:ietf:params:xml:ns:pidf";
const NS_DM: &[u8] = b"urn:ietf:params:xml:ns:pidf:data-model";
const NS_RPID: &[u8] = b"urn:ietf:params:xml:ns:pidf:rpid";

/// Largest PIDF document accepted.
pub const MAX_PIDF_BYTES: usize = 64 * 1024;
/// Deepest element nesting accepted in a PIDF document.
pub const MAX_PIDF_DEPTH: usize = 16;
/// Most elements accepted in a PIDF document.
const MAX_ELEMENTS: usize = 2048;
/// Most tuples and notes kept (further ones are ignored, not refused).
const MAX_KEPT: usize = 32;

/// XMPP `<show/>` (RFC 6121 §4.7.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Show {
    /// `away`
    Away,
    /// `chat`
    Chat,
    /// `dnd`
    Dnd,
    /// `xa`
    Xa,
}

/// The XMPP presence fields the gateway maps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XmppPresence {
    /// `false` for `type='unavailable'`.
    pub available: bool,
    /// `<show/>`, if any.
    pub show: Option<Show>,
    /// Each `<status xml:lang>`: (language, text).
    pub status: Vec<(Option<String>, String)>,
    /// `<priority/>`, carried as the PIDF `<contact priority>` q-value ([`qvalue_for_priority`]).
    pub priority: i8,
}

/// RPID activity for a `<show/>` (XMPP → SIP).
///
/// | show | RPID activity | note |
/// |---|---|---|
/// | none | none | available |
/// | away | `away` | ⚠ RFC 8048 |
/// | xa | `away` | ⚠ RPID has no "extended away"; `away` is the nearest |
/// | dnd | `busy` | ⚠ RFC 8048 |
/// | chat | none | RPID has no "free for chat"; plain `open` is sent |
pub fn rpid_activity_for_show(show: Option<Show>) -> Option<&'static str> {
    match show {
        None | Some(Show::Chat) => None,
        Some(Show::Away) | Some(Show::Xa) => Some("away"),
        Some(Show::Dnd) => Some("busy"),
    }
}

/// `<show/>` for an RPID activity (SIP → XMPP); `None` when the activity does not change
/// availability (then plain available is shown).
///
/// `away` → away and `busy` → dnd reverse the table above (⚠ RFC 8048); the other rows are our
/// choice for what Lync and SIP clients publish: in a call or meeting is "do not disturb", on
/// holiday or absent is "extended away".
pub fn show_for_rpid_activity(activity: &str) -> Option<Show> {
    match activity {
        "away" => Some(Show::Away),
        "busy" | "on-the-phone" | "meeting" | "presentation" => Some(Show::Dnd),
        "vacation" | "holiday" | "permanent-absence" => Some(Show::Xa),
        _ => None,
    }
}

/// Availability derived from a Lync/Skype for Business availability number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Send `type='unavailable'`.
    Unavailable,
    /// Send available presence with this `<show/>`.
    Available(Option<Show>),
}

/// Lync availability number → XMPP (protocol-facts §1 ranges ✅, mapping is its proposal):
/// Available → no show; Available-Idle, Busy-Idle → xa; Busy, DND → dnd; BRB, Away → away;
/// Offline → unavailable.
pub fn availability_for_lync(n: u32) -> Availability {
    match n {
        0..=4499 => Availability::Available(None),
        4500..=5999 => Availability::Available(Some(Show::Xa)),
        6000..=7499 => Availability::Available(Some(Show::Dnd)),
        7500..=8999 => Availability::Available(Some(Show::Xa)),
        9000..=11999 => Availability::Available(Some(Show::Dnd)),
        12000..=14999 => Availability::Available(Some(Show::Away)),
        15000..=17999 => Availability::Available(Some(Show::Away)),
        _ => Availability::Unavailable,
    }
}

/// The PIDF `<contact priority>` (RFC 3863 §4.1.5, a q-value 0–1 with up to three decimals) for
/// an XMPP `<priority/>` (−128–127, RFC 6121 §4.7.2.3): 0–127 scale to 0–1; a negative priority
/// ("never deliver to this resource") becomes 0. ⚠ Our mapping: RFC 8048's text on priority
/// could not be read here.
pub fn qvalue_for_priority(priority: i8) -> String {
    let thousandths = (i32::from(priority.max(0)) * 1000 + 63) / 127;
    match thousandths {
        1000 => "1".to_owned(),
        t => format!("0.{t:03}"),
    }
}

/// The XMPP `<priority/>` for a PIDF contact q-value: the inverse of [`qvalue_for_priority`]
/// (rounded); `None` for text that is not a q-value.
pub fn priority_for_qvalue(q: &str) -> Option<i8> {
    let q = q.trim();
    let (int, frac) = q.split_once('.').unwrap_or((q, ""));
    if !matches!(int, "0" | "1") || frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: i32 = int.parse::<i32>().ok()? * 1000;
    if !frac.is_empty() {
        thousandths += frac.parse::<i32>().ok()? * 10i32.pow(3 - frac.len() as u32);
    }
    if thousandths > 1000 {
        return None;
    }
    i8::try_from((thousandths * 127 + 500) / 1000).ok()
}

/// Builds a PIDF document (`application/pidf+xml`) for `p`.
///
/// One `<tuple>` (id from `tuple_id`, made a valid XML ID), `<basic>open|closed</basic>`, when
/// available a `<contact priority>` (the entity, with the XMPP priority as q-value), one
/// `<note xml:lang>` per `<status/>` (emitted whether or not `<show/>` is present — Kamailio's
/// pua_xmpp drops the text in that case), and a `dm:person` with `rpid:activities` when the
/// show maps to one. All values are escaped.
pub fn pidf_from_presence(entity_uri: &str, p: &XmppPresence, tuple_id: &str) -> String {
    let mut o: Vec<u8> = Vec::with_capacity(512);
    o.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<presence xmlns=\"");
    o.extend_from_slice(NS_PIDF);
    o.extend_from_slice(b"\" xmlns:dm=\"");
    o.extend_from_slice(NS_DM);
    o.extend_from_slice(b"\" xmlns:rpid=\"");
    o.extend_from_slice(NS_RPID);
    o.extend_from_slice(b"\" entity=\"");
    escape_attr(entity_uri, &mut o);
    o.extend_from_slice(b"\">\n<tuple id=\"");
    let id = xml_id(tuple_id);
    escape_attr(&id, &mut o);
    o.extend_from_slice(b"\"><status><basic>");
    o.extend_from_slice(if p.available { b"open" } else { b"closed" });
    o.extend_from_slice(b"</basic></status>");
    if p.available {
        o.extend_from_slice(b"<contact priority=\"");
        o.extend_from_slice(qvalue_for_priority(p.priority).as_bytes());
        o.extend_from_slice(b"\">");
        escape_text(entity_uri, &mut o);
        o.extend_from_slice(b"</contact>");
    }
    for (lang, text) in &p.status {
        o.extend_from_slice(b"<note");
        if let Some(l) = lang {
            o.extend_from_slice(b" xml:lang=\"");
            escape_attr(l, &mut o);
            o.push(b'"');
        }
        o.push(b'>');
        escape_text(text, &mut o);
        o.extend_from_slice(b"</note>");
    }
    o.extend_from_slice(b"</tuple>\n");
    if let Some(act) = rpid_activity_for_show(p.show).filter(|_| p.available) {
        o.extend_from_slice(b"<dm:person id=\"p-");
        escape_attr(&id, &mut o);
        o.extend_from_slice(b"\"><rpid:activities><rpid:");
        o.extend_from_slice(act.as_bytes());
        o.extend_from_slice(b"/></rpid:activities></dm:person>\n");
    }
    o.extend_from_slice(b"</presence>\n");
    String::from_utf8(o).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Makes `s` an XML `ID` (NCName): other characters become `_`, a leading non-letter gets `t`.
fn xml_id(s: &str) -> String {
    let mut id = String::with_capacity(s.len() + 1);
    if !s.starts_with(|c: char| c.is_alphabetic() || c == '_') {
        id.push('t');
    }
    id.extend(s.chars().map(|c| {
        if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') {
            c
        } else {
            '_'
        }
    }));
    id
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ns {
    Pidf,
    Dm,
    Rpid,
    Other,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum NoteOwner {
    Presence,
    Tuple,
    Person,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Presence,
    Tuple,
    Status,
    Basic,
    Note(NoteOwner),
    Person,
    Activities,
    Other,
}

#[derive(Default)]
struct Tuple {
    open: bool,
    notes: Vec<(Option<String>, String)>,
    /// Its `<contact priority>`, mapped to an XMPP priority.
    priority: Option<i8>,
}

/// Reads a PIDF document into an [`XmppPresence`].
///
/// Bounded: at most [`MAX_PIDF_BYTES`], [`MAX_PIDF_DEPTH`] levels and 2048 elements; a DTD is
/// refused; no recursion. Several tuples (our choice, ⚠ RFC 8048's rule could not be read): the
/// presence is available if any tuple is `open`, and the text comes from the first open tuple
/// (else the first tuple) — XMPP shows one resource per SIP entity here. Notes come from that
/// tuple, else the presence-level notes, else the `dm:person` notes; each keeps its `xml:lang`
/// (inherited from `<presence xml:lang>` when the note has none). `<show/>` comes from the first
/// RPID activity that maps to one. A document without tuples is unavailable.
pub fn presence_from_pidf(xml: &[u8]) -> Result<XmppPresence, MapError> {
    if xml.len() > MAX_PIDF_BYTES {
        return Err(MapError::TooLarge {
            len: xml.len(),
            cap: MAX_PIDF_BYTES,
        });
    }
    if std::str::from_utf8(xml).is_err() {
        return Err(MapError::BadXml("not UTF-8"));
    }
    let mut r = NsReader::from_reader(xml);
    let mut stack: Vec<Ctx> = Vec::with_capacity(MAX_PIDF_DEPTH);
    let mut elements = 0usize;
    let mut seen_root = false;
    let mut root_lang: Option<String> = None;
    let mut tuples: Vec<Tuple> = Vec::new();
    let mut presence_notes = Vec::new();
    let mut person_notes = Vec::new();
    let mut show: Option<Show> = None;
    let mut text = String::new();
    let mut note_lang: Option<String> = None;
    loop {
        let (ns, ev) = r
            .read_resolved_event()
            .map(|(res, ev)| (ns_of(&res), ev))
            .map_err(|_| MapError::BadXml("not well-formed"))?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                elements += 1;
                if elements > MAX_ELEMENTS {
                    return Err(MapError::BadXml("too many elements"));
                }
                if stack.is_empty() && seen_root {
                    return Err(MapError::BadXml("content after the root element"));
                }
                let parent = stack.last().copied();
                let local = e.local_name();
                let ctx = match (parent, ns, local.as_ref()) {
                    (None, Ns::Pidf, b"presence") => {
                        seen_root = true;
                        root_lang = lang_attr(e)?;
                        Ctx::Presence
                    }
                    (None, _, _) => return Err(MapError::BadXml("root is not a PIDF <presence>")),
                    (Some(Ctx::Presence), Ns::Pidf, b"tuple") => {
                        if tuples.len() < MAX_KEPT {
                            tuples.push(Tuple::default());
                            Ctx::Tuple
                        } else {
                            Ctx::Other
                        }
                    }
                    (Some(Ctx::Tuple), Ns::Pidf, b"status") => Ctx::Status,
                    (Some(Ctx::Status), Ns::Pidf, b"basic") => Ctx::Basic,
                    (Some(Ctx::Tuple), Ns::Pidf, b"contact") => {
                        if let Some(t) = tuples.last_mut() {
                            t.priority = t.priority.or(contact_priority(e)?);
                        }
                        Ctx::Other
                    }
                    (Some(Ctx::Tuple), Ns::Pidf, b"note") => Ctx::Note(NoteOwner::Tuple),
                    (Some(Ctx::Presence), Ns::Pidf, b"note") => Ctx::Note(NoteOwner::Presence),
                    (Some(Ctx::Presence), Ns::Dm, b"person") => Ctx::Person,
                    (Some(Ctx::Person), Ns::Dm, b"note") => Ctx::Note(NoteOwner::Person),
                    (Some(Ctx::Person | Ctx::Tuple), Ns::Rpid, b"activities") => Ctx::Activities,
                    (Some(Ctx::Activities), Ns::Rpid, name) => {
                        if show.is_none() {
                            show = std::str::from_utf8(name)
                                .ok()
                                .and_then(show_for_rpid_activity);
                        }
                        Ctx::Other
                    }
                    _ => Ctx::Other,
                };
                if let Ctx::Note(_) = ctx {
                    note_lang = lang_attr(e)?.or_else(|| root_lang.clone());
                }
                if matches!(ctx, Ctx::Note(_) | Ctx::Basic) {
                    text.clear();
                }
                if empty {
                    // `<note/>` and `<basic/>` end immediately.
                    finish(
                        ctx,
                        &text,
                        &mut note_lang,
                        &mut tuples,
                        &mut presence_notes,
                        &mut person_notes,
                    );
                    if stack.is_empty() {
                        seen_root = true;
                    }
                } else {
                    if stack.len() >= MAX_PIDF_DEPTH {
                        return Err(MapError::TooDeep);
                    }
                    stack.push(ctx);
                }
            }
            Event::End(_) => {
                let ctx = stack.pop().ok_or(MapError::BadXml("unbalanced end tag"))?;
                finish(
                    ctx,
                    &text,
                    &mut note_lang,
                    &mut tuples,
                    &mut presence_notes,
                    &mut person_notes,
                );
            }
            Event::Text(t) => {
                if matches!(stack.last(), Some(Ctx::Note(_) | Ctx::Basic)) {
                    let s = t.unescape().map_err(|_| MapError::BadXml("bad entity"))?;
                    text.push_str(&s);
                }
            }
            Event::CData(t) => {
                if matches!(stack.last(), Some(Ctx::Note(_) | Ctx::Basic)) {
                    let s = std::str::from_utf8(&t).map_err(|_| MapError::BadXml("not UTF-8"))?;
                    text.push_str(s);
                }
            }
            Event::DocType(_) => return Err(MapError::BadXml("DTD not allowed")),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() || !seen_root {
        return Err(MapError::BadXml("truncated document"));
    }
    let chosen = tuples.iter().position(|t| t.open).unwrap_or(0);
    let available = tuples.iter().any(|t| t.open);
    let priority = tuples.get(chosen).and_then(|t| t.priority).unwrap_or(0);
    let mut status = tuples
        .get_mut(chosen)
        .map(|t| std::mem::take(&mut t.notes))
        .unwrap_or_default();
    if status.is_empty() {
        status = presence_notes;
    }
    if status.is_empty() {
        status = person_notes;
    }
    Ok(XmppPresence {
        available,
        show: show.filter(|_| available),
        status,
        priority,
    })
}

/// Completes an element whose text was being collected.
fn finish(
    ctx: Ctx,
    text: &str,
    note_lang: &mut Option<String>,
    tuples: &mut [Tuple],
    presence_notes: &mut Vec<(Option<String>, String)>,
    person_notes: &mut Vec<(Option<String>, String)>,
) {
    match ctx {
        Ctx::Basic => {
            if let Some(t) = tuples.last_mut() {
                t.open = text.trim() == "open";
            }
        }
        Ctx::Note(owner) => {
            let notes = match owner {
                NoteOwner::Tuple => match tuples.last_mut() {
                    Some(t) => &mut t.notes,
                    None => return,
                },
                NoteOwner::Presence => presence_notes,
                NoteOwner::Person => person_notes,
            };
            let body = text.trim();
            if !body.is_empty() && notes.len() < MAX_KEPT {
                notes.push((note_lang.take(), body.to_owned()));
            }
        }
        _ => {}
    }
}

fn ns_of(res: &ResolveResult<'_>) -> Ns {
    match res {
        ResolveResult::Bound(Namespace(n)) if *n == NS_PIDF => Ns::Pidf,
        ResolveResult::Bound(Namespace(n)) if *n == NS_DM => Ns::Dm,
        ResolveResult::Bound(Namespace(n)) if *n == NS_RPID => Ns::Rpid,
        _ => Ns::Other,
    }
}

/// The `priority` attribute of a `<contact>`, as an XMPP priority; a malformed one is ignored.
fn contact_priority(e: &BytesStart<'_>) -> Result<Option<i8>, MapError> {
    for a in e.attributes() {
        let a = a.map_err(|_| MapError::BadXml("malformed attribute"))?;
        if a.key.as_ref() == b"priority" {
            return Ok(std::str::from_utf8(&a.value)
                .ok()
                .and_then(priority_for_qvalue));
        }
    }
    Ok(None)
}

fn lang_attr(e: &BytesStart<'_>) -> Result<Option<String>, MapError> {
    for a in e.attributes() {
        let a = a.map_err(|_| MapError::BadXml("malformed attribute"))?;
        if a.key.as_ref() == b"xml:lang" {
            let v = a
                .unescape_value()
                .map_err(|_| MapError::BadXml("bad entity in attribute"))?;
            return Ok(Some(v.into_owned()).filter(|v| !v.is_empty()));
        }
    }
    Ok(None)
}

/// XMPP presence subscription types (RFC 6121 §3) the gateway maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionType {
    /// `subscribe`
    Subscribe,
    /// `subscribed`
    Subscribed,
    /// `unsubscribe`
    Unsubscribe,
    /// `unsubscribed`
    Unsubscribed,
    /// `probe`
    Probe,
}

/// `Expires` of a SUBSCRIBE the gateway sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeExpires {
    /// The configured duration; the gateway refreshes it itself, never visible on the XMPP side
    /// (XMPP subscriptions are permanent, SIP ones expire).
    Refreshing,
    /// `Expires: 0`: ends a subscription, or on a new dialog is a one-shot fetch (RFC 6665 §4.1.2.3).
    Zero,
}

/// `Subscription-State` values (RFC 6665 §8.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    /// `active`
    Active,
    /// `pending`
    Pending,
    /// `terminated`
    Terminated,
}

impl SubscriptionState {
    /// Parses the header's state token (case-insensitive); `None` for extension values.
    pub fn parse(s: &str) -> Option<SubscriptionState> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("active") {
            Some(SubscriptionState::Active)
        } else if s.eq_ignore_ascii_case("pending") {
            Some(SubscriptionState::Pending)
        } else if s.eq_ignore_ascii_case("terminated") {
            Some(SubscriptionState::Terminated)
        } else {
            None
        }
    }
}

/// What the gateway does on the SIP side for an XMPP subscription stanza.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SipPresenceAction {
    /// Send SUBSCRIBE (`Event: presence`, `Accept: application/pidf+xml`) with this Expires.
    Subscribe(SubscribeExpires),
    /// Send NOTIFY on the inbound SIP subscription with this state (and `reason=` when given).
    Notify(SubscriptionState, Option<&'static str>),
}

/// XMPP subscription stanza → SIP action (⚠ RFC 8048 §4 from protocol-facts; reasons RFC 6665):
///
/// | XMPP | SIP |
/// |---|---|
/// | subscribe | SUBSCRIBE, Expires = configured, refreshed by the gateway |
/// | unsubscribe | SUBSCRIBE Expires: 0 |
/// | probe | SUBSCRIBE Expires: 0 on a new dialog (fetch: one NOTIFY with current state) |
/// | subscribed | NOTIFY Subscription-State: active on the pending inbound subscription |
/// | unsubscribed | NOTIFY Subscription-State: terminated;reason=rejected (authorization withdrawn) |
pub fn sip_action_for_xmpp(t: SubscriptionType) -> SipPresenceAction {
    use SipPresenceAction::*;
    match t {
        SubscriptionType::Subscribe => Subscribe(SubscribeExpires::Refreshing),
        SubscriptionType::Unsubscribe => Subscribe(SubscribeExpires::Zero),
        SubscriptionType::Probe => Subscribe(SubscribeExpires::Zero),
        SubscriptionType::Subscribed => Notify(SubscriptionState::Active, None),
        SubscriptionType::Unsubscribed => Notify(SubscriptionState::Terminated, Some("rejected")),
    }
}

/// What a NOTIFY on the gateway's own SIP subscription means for the XMPP side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyOutcome {
    /// Send this subscription stanza to the XMPP subscriber.
    Xmpp(SubscriptionType),
    /// Subscribe again silently (after `retry-after` when given): XMPP subscriptions are permanent.
    Resubscribe,
    /// Nothing to tell the XMPP side.
    Nothing,
}

/// `Subscription-State` (+ `reason`) of a NOTIFY → XMPP. The driver calls this on state
/// *transitions* only (an `active` NOTIFY that refreshes an already active subscription is not
/// re-announced).
///
/// | state | reason (RFC 6665 §4.1.3) | XMPP |
/// |---|---|---|
/// | active | – | `subscribed` |
/// | pending | – | nothing (authorization awaited) |
/// | terminated | rejected, noresource, invariant | `unsubscribed` (re-subscribing would not help) |
/// | terminated | deactivated, timeout, probation, giveup, none, unknown | re-subscribe silently |
pub fn xmpp_type_for_subscription_state(
    state: SubscriptionState,
    reason: Option<&str>,
) -> NotifyOutcome {
    match state {
        SubscriptionState::Active => NotifyOutcome::Xmpp(SubscriptionType::Subscribed),
        SubscriptionState::Pending => NotifyOutcome::Nothing,
        SubscriptionState::Terminated => match reason.map(str::trim) {
            Some(r)
                if r.eq_ignore_ascii_case("rejected")
                    || r.eq_ignore_ascii_case("noresource")
                    || r.eq_ignore_ascii_case("invariant") =>
            {
                NotifyOutcome::Xmpp(SubscriptionType::Unsubscribed)
            }
            _ => NotifyOutcome::Resubscribe,
        },
    }
}

/// An inbound SIP SUBSCRIBE (`Event: presence`) → XMPP stanza to send, if any.
///
/// | dialog | Expires | XMPP |
/// |---|---|---|
/// | new | > 0 | `subscribe` (dialog pending until the XMPP side answers) |
/// | new | 0 | `probe` (fetch) |
/// | existing | > 0 | nothing (refresh, hidden from XMPP) |
/// | existing | 0 | `unsubscribe` |
pub fn xmpp_type_for_inbound_subscribe(
    existing_dialog: bool,
    expires: u32,
) -> Option<SubscriptionType> {
    match (existing_dialog, expires) {
        (false, 0) => Some(SubscriptionType::Probe),
        (false, _) => Some(SubscriptionType::Subscribe),
        (true, 0) => Some(SubscriptionType::Unsubscribe),
        (true, _) => None,
    }
}

#[cfg(test)]
mod tests;
