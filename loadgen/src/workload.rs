//! What the loadgen sends and how it reads the answers: stanza templates written into a reused
//! batch buffer (no allocation per stanza), body sizes, and answer classification.

use std::fmt;
use std::io::Write;

use stanza_router::xml::{HeaderAttr, Stanza, StanzaKind};

use crate::correlator::{parse_seq, seq_from_id, Condition, Kind, Outcome, BODY_MARKER, ID_PREFIX};

/// Which requests to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// `message` to `userN@DOMAIN` (bounced without a SIP gateway, delivered with one).
    Messages,
    /// `iq get` XEP-0199 ping to `DOMAIN`, answered by the router.
    Pings,
    /// Nothing: open `--connections` authenticated sessions and hold them for `--duration`
    /// (memory per idle session).
    Idle,
    /// Messages, presence probes and subscriptions in the `--mix` proportions (needs the SIP
    /// sink: see [`Mix`] for what each item measures).
    Mix,
}

impl Workload {
    /// The request kind.
    pub fn kind(self) -> Kind {
        match self {
            Workload::Messages | Workload::Mix => Kind::Message,
            Workload::Pings | Workload::Idle => Kind::Ping,
        }
    }
}

/// The proportions of `--workload mix` (weights, normalised to their sum). Each item is
/// completed end to end:
/// * `messages`: `<message/>` to `userN@DOMAIN`, delivered when the SIP sink sees the MESSAGE
///   (as `--workload messages`).
/// * `presence`: `<presence type='probe'/>` from a fresh partner user `lgp<seq>@PARTNER` to
///   `userN@DOMAIN`; the router's presence tables (on the shard owning the user) answer it
///   `unsubscribed` (no subscription), completed as answered at the partner. Available
///   presence with show/status is not used: the router turns it into a NOTIFY only inside an
///   existing SIP subscription dialog, so alone it has no observable effect.
/// * `subscriptions`: `<presence type='subscribe'/>` from a fresh partner user
///   `lgs<seq>@PARTNER` to `userN@DOMAIN`; the router sends a SIP SUBSCRIBE to the sink, which
///   answers 200 and a NOTIFY (active, PIDF open); the router then tells the partner
///   `subscribed`, completed as subscribed (`unsubscribed` counts as refused). Each creates a
///   subscriber dialog that the router keeps and refreshes: its table holds 65,536 per shard,
///   so keep rate × share × run length under that.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Mix {
    /// Weight of messages.
    pub messages: u32,
    /// Weight of presence probes.
    pub presence: u32,
    /// Weight of subscriptions.
    pub subscriptions: u32,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            messages: 80,
            presence: 15,
            subscriptions: 5,
        }
    }
}

/// One request of a mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MixItem {
    /// A message.
    Message,
    /// A presence probe.
    Presence,
    /// A subscription request.
    Subscription,
}

impl std::str::FromStr for Mix {
    type Err = String;

    /// `messages=80,presence=15,subscriptions=5` (any subset; missing items weigh 0).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut m = Mix {
            messages: 0,
            presence: 0,
            subscriptions: 0,
        };
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected ITEM=WEIGHT"))?;
            let v: u32 = v
                .trim()
                .trim_end_matches('%')
                .parse()
                .ok()
                .filter(|v| *v <= 1_000_000)
                .ok_or_else(|| format!("{part:?}: the weight must be a whole number"))?;
            match k.trim() {
                "messages" => m.messages = v,
                "presence" => m.presence = v,
                "subscriptions" => m.subscriptions = v,
                other => {
                    return Err(format!(
                        "{other:?}: mix items are messages, presence and subscriptions"
                    ))
                }
            }
        }
        if m.total() == 0 {
            return Err(format!("{s:?}: the weights sum to 0"));
        }
        Ok(m)
    }
}

impl Mix {
    fn total(&self) -> u64 {
        u64::from(self.messages) + u64::from(self.presence) + u64::from(self.subscriptions)
    }

    /// The SIP source's proportions: its messages and subscriptions (it has no presence
    /// item, so that weight is dropped). Both at 0 is refused by the CLI.
    pub fn outbound(&self) -> Mix {
        Mix {
            presence: 0,
            ..*self
        }
    }

    /// The item of request `seq`: a reproducible choice spread evenly in the proportions.
    pub fn item(&self, seq: u64) -> MixItem {
        let r = splitmix(seq ^ 0x5bd1_e995) % self.total().max(1);
        if r < u64::from(self.messages) {
            MixItem::Message
        } else if r < u64::from(self.messages) + u64::from(self.presence) {
            MixItem::Presence
        } else {
            MixItem::Subscription
        }
    }
}

/// splitmix64: a well-spread reproducible hash of a sequence number.
fn splitmix(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Local part prefix of the partner user sending a mix's presence probe.
pub const PROBE_USER: &str = "lgp";
/// Local part prefix of the partner user sending a mix's subscription request.
pub const SUBSCRIBE_USER: &str = "lgs";

/// Message body sizes (bytes of padding after the sequence marker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BodySize {
    /// Always `bytes`.
    Fixed {
        /// Body bytes.
        bytes: usize,
    },
    /// Uniform in `min..=max`, chosen by a hash of the sequence number (reproducible).
    Uniform {
        /// Smallest body.
        min: usize,
        /// Largest body.
        max: usize,
    },
}

/// Largest body accepted: well under the router's 512 KiB stanza cap.
pub const MAX_BODY: usize = 256 * 1024;

/// Why a body size was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodySizeError(String);

impl fmt::Display for BodySizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BodySizeError {}

impl std::str::FromStr for BodySize {
    type Err = BodySizeError;

    /// `N`, `fixed:N` or `uniform:A-B` (bytes; `KiB` units allowed).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let size = |t: &str| {
            stanza_router::config::size::parse_size(t)
                .map_err(|e| BodySizeError(format!("body size {t:?}: {e}")))
                .and_then(|n| {
                    usize::try_from(n)
                        .ok()
                        .filter(|n| *n <= MAX_BODY)
                        .ok_or_else(|| {
                            BodySizeError(format!("body size {t:?}: at most {MAX_BODY} bytes"))
                        })
                })
        };
        let s = s.trim();
        if let Some(range) = s.strip_prefix("uniform:") {
            let (a, b) = range
                .split_once('-')
                .ok_or_else(|| BodySizeError(format!("{s:?}: expected uniform:MIN-MAX")))?;
            let (min, max) = (size(a)?, size(b)?);
            if min > max {
                return Err(BodySizeError(format!("{s:?}: MIN is larger than MAX")));
            }
            return Ok(BodySize::Uniform { min, max });
        }
        let n = s.strip_prefix("fixed:").unwrap_or(s);
        Ok(BodySize::Fixed { bytes: size(n)? })
    }
}

impl BodySize {
    /// The body length for request `seq`.
    pub fn for_seq(self, seq: u64) -> usize {
        match self {
            BodySize::Fixed { bytes } => bytes,
            BodySize::Uniform { min, max } => {
                min + (splitmix(seq) % (max - min + 1) as u64) as usize
            }
        }
    }
}

/// Writes one connection's requests. The constant parts are rendered once.
#[derive(Debug, Clone)]
pub struct Templates {
    workload: Workload,
    /// `' from='…' to='` (messages) or `' from='…' to='DOMAIN'><ping…/></iq>` (pings).
    middle: String,
    domain: String,
    partner: String,
    users: u64,
    body: BodySize,
    mix: Mix,
}

const PADDING: [u8; 1024] = [b'x'; 1024];

impl Templates {
    /// Requests from `lg<conn>@<partner>/lg` to `domain` (pings) or `user<N>@domain`, N over
    /// `users` (messages).
    pub fn new(
        workload: Workload,
        partner: &str,
        conn: usize,
        domain: &str,
        users: u64,
        body: BodySize,
    ) -> Templates {
        let middle = match workload {
            Workload::Pings => format!(
                "' from='lg{conn}@{partner}/lg' to='{domain}'><ping xmlns='urn:xmpp:ping'/></iq>"
            ),
            Workload::Messages | Workload::Mix => {
                format!("' from='lg{conn}@{partner}/lg' to='user")
            }
            Workload::Idle => String::new(),
        };
        Templates {
            workload,
            middle,
            domain: domain.to_string(),
            partner: partner.to_string(),
            users: users.max(1),
            body,
            mix: Mix::default(),
        }
    }

    /// The proportions of a `Workload::Mix`.
    pub fn with_mix(mut self, mix: Mix) -> Templates {
        self.mix = mix;
        self
    }

    fn message(&self, seq: u64, out: &mut Vec<u8>) {
        // Pushed by hand: `write!` was a few percent of the loadgen's CPU at 160k messages/s.
        out.extend_from_slice(b"<message type='chat' id='");
        out.extend_from_slice(ID_PREFIX.as_bytes());
        crate::sip_sink::push_num(out, seq);
        out.extend_from_slice(self.middle.as_bytes());
        crate::sip_sink::push_num(out, seq % self.users);
        out.push(b'@');
        out.extend_from_slice(self.domain.as_bytes());
        out.extend_from_slice(b"'><body>");
        out.extend_from_slice(BODY_MARKER.as_bytes());
        crate::sip_sink::push_num(out, seq);
        out.push(b' ');
        let mut left = self.body.for_seq(seq);
        while left > 0 {
            let n = left.min(PADDING.len());
            out.extend_from_slice(&PADDING[..n]);
            left -= n;
        }
        out.extend_from_slice(b"</body></message>");
    }

    fn presence(&self, seq: u64, ty: &str, user: &str, out: &mut Vec<u8>) {
        let _ = write!(
            out,
            "<presence type='{ty}' id='{ID_PREFIX}{seq}' from='{user}{seq}@{}' to='user{}@{}'/>",
            self.partner,
            seq % self.users,
            self.domain
        );
    }

    /// Appends request `seq` to `out`.
    pub fn write(&self, seq: u64, out: &mut Vec<u8>) {
        // Writes into a Vec cannot fail.
        let _ = match self.workload {
            Workload::Idle => Ok(()),
            Workload::Pings => write!(out, "<iq type='get' id='{ID_PREFIX}{seq}{}", self.middle),
            Workload::Messages => {
                self.message(seq, out);
                Ok(())
            }
            Workload::Mix => {
                match self.mix.item(seq) {
                    MixItem::Message => self.message(seq, out),
                    MixItem::Presence => self.presence(seq, "probe", PROBE_USER, out),
                    MixItem::Subscription => self.presence(seq, "subscribe", SUBSCRIBE_USER, out),
                }
                Ok(())
            }
        };
    }
}

/// Classifies an answer from the router: its sequence number (from the id) and outcome.
/// `None` for stanzas that carry no loadgen id.
pub fn classify(s: &Stanza) -> Option<(u64, Outcome)> {
    let seq = seq_from_id(s.attr_raw(HeaderAttr::Id)?)?;
    let ty = s.attr_raw(HeaderAttr::Type).unwrap_or("");
    let outcome = match (s.kind(), ty) {
        (StanzaKind::Iq, "result") => Outcome::Answered,
        (_, "error") => Outcome::Bounced(condition(s.as_bytes())),
        _ => Outcome::Unexpected,
    };
    Some((seq, outcome))
}

/// Classifies the router's answer to a mix's presence item, which carries no id: the sequence
/// number is in the addressee's local part (`lgp<seq>` probe, `lgs<seq>` subscription).
/// `None` for other stanzas (available presence after a subscription, for one).
pub fn classify_presence(s: &Stanza) -> Option<(u64, Outcome)> {
    if s.kind() != StanzaKind::Presence {
        return None;
    }
    let ty = s.attr_raw(HeaderAttr::Type)?;
    let to = s.attr_raw(HeaderAttr::To)?;
    let local = &to[..to.find('@')?];
    let num = |rest: &str| parse_seq(rest.as_bytes());
    if let Some(seq) = local.strip_prefix(PROBE_USER).and_then(num) {
        return matches!(ty, "unsubscribed" | "subscribed").then_some((seq, Outcome::Answered));
    }
    let seq = local.strip_prefix(SUBSCRIBE_USER).and_then(num)?;
    match ty {
        "subscribed" => Some((seq, Outcome::Subscribed)),
        "unsubscribed" => Some((seq, Outcome::Unsubscribed)),
        _ => None,
    }
}

/// Classifies a presence stanza the router sent a partner for the SIP source: the sequence
/// number of the source's SUBSCRIBE is in the sender's local part (`lgw<seq>`,
/// [`crate::sip_source::WATCHER_USER`]). `Some((seq, true))` for the `subscribe` that completes
/// it, `Some((seq, false))` for another type (the `unsubscribe` when the source ends the
/// dialog), `None` when the sender is not a watcher of ours.
pub fn classify_outbound_presence(s: &Stanza) -> Option<(u64, bool)> {
    if s.kind() != StanzaKind::Presence {
        return None;
    }
    let from = s.attr_raw(HeaderAttr::From)?;
    let local = &from[..from.find('@')?];
    let seq = parse_seq(
        local
            .strip_prefix(crate::sip_source::WATCHER_USER)?
            .as_bytes(),
    )?;
    Some((seq, s.attr_raw(HeaderAttr::Type) == Some("subscribe")))
}

/// The stanza error condition: the name of the element declared in the stanzas namespace.
fn condition(bytes: &[u8]) -> Condition {
    const NS: &[u8] = b"urn:ietf:params:xml:ns:xmpp-stanzas";
    let Some(at) = bytes.windows(NS.len()).position(|w| w == NS) else {
        return Condition(None);
    };
    let Some(lt) = bytes[..at].iter().rposition(|b| *b == b'<') else {
        return Condition(None);
    };
    let name = &bytes[lt + 1..at];
    let end = name
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == b'/' || *b == b'>')
        .unwrap_or(name.len());
    std::str::from_utf8(&name[..end]).map_or(Condition(None), Condition::named)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stanza_router::xml::{Event, Framer, FramerLimits};

    fn stanza(xml: &str) -> Stanza {
        let mut f = Framer::new(FramerLimits::post_auth());
        f.feed(b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>");
        f.feed(xml.as_bytes());
        assert!(matches!(f.next_event(), Ok(Some(Event::StreamOpen(_)))));
        match f.next_event() {
            Ok(Some(Event::Stanza(s))) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ping_result_is_answered() {
        let s =
            stanza("<iq type='result' id='lg-17' from='corp.test' to='lg0@p0.partner.test/lg'/>");
        assert_eq!(classify(&s), Some((17, Outcome::Answered)));
    }

    #[test]
    fn bounce_reports_its_condition() {
        let s = stanza(
            "<message type='error' id='lg-5'><error type='cancel'>\
             <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        );
        assert_eq!(
            classify(&s),
            Some((5, Outcome::Bounced(Condition::named("service-unavailable"))))
        );
    }

    #[test]
    fn foreign_ids_are_ignored() {
        assert_eq!(classify(&stanza("<iq type='result' id='x1'/>")), None);
    }

    #[test]
    fn written_requests_parse_and_carry_the_sequence() {
        let t = Templates::new(
            Workload::Messages,
            "p1.partner.test",
            3,
            "corp.test",
            10,
            BodySize::Fixed { bytes: 2000 },
        );
        let mut out = Vec::new();
        t.write(42, &mut out);
        let s = stanza(std::str::from_utf8(&out).unwrap());
        assert_eq!(s.attr_raw(HeaderAttr::To), Some("user2@corp.test"));
        assert_eq!(s.attr_raw(HeaderAttr::Id), Some("lg-42"));
        let body = String::from_utf8_lossy(s.as_bytes()).into_owned();
        assert_eq!(crate::correlator::seq_from_body(&body), Some(42));
        assert!(out.len() > 2000);
        let p = Templates::new(
            Workload::Pings,
            "p0.partner.test",
            0,
            "corp.test",
            1,
            BodySize::Fixed { bytes: 0 },
        );
        out.clear();
        p.write(7, &mut out);
        let s = stanza(std::str::from_utf8(&out).unwrap());
        assert_eq!(s.kind(), StanzaKind::Iq);
        assert_eq!(s.attr_raw(HeaderAttr::To), Some("corp.test"));
    }

    #[test]
    fn mix_parses_and_spreads_in_proportion() {
        let m: Mix = "messages=80,presence=15,subscriptions=5".parse().unwrap();
        assert_eq!(m, Mix::default());
        let mut n = [0u32; 3];
        for seq in 0..100_000 {
            n[m.item(seq) as usize] += 1;
        }
        for (got, want) in n.iter().zip([80_000, 15_000, 5_000]) {
            assert!(got.abs_diff(want) < 1_000, "{n:?}");
        }
        let only: Mix = "presence=1".parse().unwrap();
        assert!((0..100).all(|s| only.item(s) == MixItem::Presence));
        for bad in [
            "",
            "messages=0",
            "mails=3",
            "messages",
            "messages=-1",
            "presence=x",
        ] {
            assert!(bad.parse::<Mix>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn mix_writes_probes_and_subscriptions_whose_answers_carry_the_sequence() {
        let only = |spec: &str| {
            Templates::new(
                Workload::Mix,
                "p0.partner.test",
                0,
                "corp.test",
                10,
                BodySize::Fixed { bytes: 5 },
            )
            .with_mix(spec.parse().unwrap())
        };
        let mut out = Vec::new();
        only("presence=1").write(12, &mut out);
        let s = stanza(std::str::from_utf8(&out).unwrap());
        assert_eq!(s.kind(), StanzaKind::Presence);
        assert_eq!(s.attr_raw(HeaderAttr::Type), Some("probe"));
        assert_eq!(s.attr_raw(HeaderAttr::From), Some("lgp12@p0.partner.test"));
        assert_eq!(s.attr_raw(HeaderAttr::To), Some("user2@corp.test"));
        out.clear();
        only("subscriptions=1").write(13, &mut out);
        let s = stanza(std::str::from_utf8(&out).unwrap());
        assert_eq!(s.attr_raw(HeaderAttr::Type), Some("subscribe"));
        assert_eq!(s.attr_raw(HeaderAttr::From), Some("lgs13@p0.partner.test"));
        out.clear();
        only("messages=1").write(14, &mut out);
        assert!(out.starts_with(b"<message"));
        let answer = |xml: &str| classify_presence(&stanza(xml));
        assert_eq!(
            answer(
                "<presence type='unsubscribed' from='user2@corp.test' to='lgp12@p0.partner.test'/>"
            ),
            Some((12, Outcome::Answered))
        );
        assert_eq!(
            answer(
                "<presence type='subscribed' from='user3@corp.test' to='lgs13@p0.partner.test'/>"
            ),
            Some((13, Outcome::Subscribed))
        );
        assert_eq!(
            answer(
                "<presence type='unsubscribed' from='user3@corp.test' to='lgs13@p0.partner.test'/>"
            ),
            Some((13, Outcome::Unsubscribed))
        );
        assert_eq!(
            answer("<presence from='user3@corp.test' to='lgs13@p0.partner.test'/>"),
            None
        );
        assert_eq!(
            answer("<presence type='subscribed' to='lg0@p0.partner.test'/>"),
            None
        );
    }

    #[test]
    fn body_size_parses_fixed_and_uniform() {
        assert_eq!("100".parse(), Ok(BodySize::Fixed { bytes: 100 }));
        assert_eq!("fixed:1KiB".parse(), Ok(BodySize::Fixed { bytes: 1024 }));
        assert_eq!(
            "uniform:10-20".parse(),
            Ok(BodySize::Uniform { min: 10, max: 20 })
        );
        assert!("uniform:20-10".parse::<BodySize>().is_err());
        assert!("uniform:5".parse::<BodySize>().is_err());
        assert!("1GiB".parse::<BodySize>().is_err());
        let u = BodySize::Uniform { min: 10, max: 20 };
        assert!((0..1000).all(|s| (10..=20).contains(&u.for_seq(s))));
    }
}
