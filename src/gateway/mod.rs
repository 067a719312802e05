//! XMPP⇄SIP gateway: the pure mapping tables (RFC 7247 addresses and errors, RFC 8048 presence,
//! RFC 7572 messages, RFC 3994 isComposing).
//!
//! Nothing here depends on the SIP parser: SIP values are plain `u16` status codes and `&str`
//! URIs/header values, so the gateway driver wires both sides together later.
//!
//! Verification status: the stored corpora only gave the opening pages of RFC 7247, 7572 and
//! 8048, not the sections holding the tables, so most rows are from knowledge of the RFCs and
//! marked ⚠ per table. RFC 3261 grammar and RFC 6665 reason codes are from the RFC text as known;
//! RFC 3994 element names were checked against several independent implementations.

pub mod address;
pub mod children;
pub mod errors;
pub mod inbound;
pub mod message;
pub mod message_request;
pub mod notify_queue;
pub mod options_probe;
pub mod outbound_message;
pub mod presence;
pub mod presence_gateway;
pub mod subscription;

use std::fmt;

use crate::xmpp::error::StanzaCondition;

/// Why a value could not be mapped across the gateway, naming the side whose input was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MapError {
    /// The address has no XMPP/SIP counterpart (`tel:`, `user=phone`, other schemes).
    NoMapping(&'static str),
    /// A SIP URI is malformed.
    BadSipUri(&'static str),
    /// A JID (given or produced) is malformed.
    BadJid(&'static str),
    /// The domain is not a valid internationalized domain name (IDNA/UTS #46 refused it).
    UnicodeDomain,
    /// A PIDF or isComposing document was refused (malformed, wrong namespace, DTD, ...).
    BadXml(&'static str),
    /// A document or body is larger than the configured cap.
    TooLarge {
        /// Size received, in bytes.
        len: usize,
        /// The cap that applied.
        cap: usize,
    },
    /// A document nests deeper than the cap.
    TooDeep,
    /// `type='groupchat'`: RFC 7572 does not cover groupchat (RFC 7702 does; not supported).
    Groupchat,
    /// A SIP body in a media type the gateway does not map.
    UnsupportedMediaType,
    /// A SIP body that is not valid UTF-8 text.
    BadText,
}

impl MapError {
    /// The XMPP stanza error to return to the XMPP sender when its stanza was refused.
    pub fn condition(&self) -> StanzaCondition {
        match self {
            MapError::NoMapping(_) => StanzaCondition::ItemNotFound,
            MapError::BadSipUri(_) | MapError::BadJid(_) | MapError::UnicodeDomain => {
                StanzaCondition::JidMalformed
            }
            MapError::BadXml(_) | MapError::TooDeep | MapError::BadText => {
                StanzaCondition::BadRequest
            }
            MapError::TooLarge { .. } => StanzaCondition::PolicyViolation,
            MapError::Groupchat => StanzaCondition::FeatureNotImplemented,
            MapError::UnsupportedMediaType => StanzaCondition::NotAcceptable,
        }
    }

    /// The SIP status to return to the SIP sender when its request was refused.
    pub fn sip_status(&self) -> u16 {
        match self {
            MapError::NoMapping(_) => 404,
            // 416 Unsupported URI Scheme would be for the scheme; a bad user part is 400.
            MapError::BadSipUri(_) | MapError::BadJid(_) | MapError::UnicodeDomain => 400,
            MapError::BadXml(_) | MapError::TooDeep | MapError::BadText => 400,
            MapError::TooLarge { .. } => 413,
            MapError::Groupchat => 405,
            MapError::UnsupportedMediaType => 415,
        }
    }
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::NoMapping(what) => write!(f, "no mapping: {what}"),
            MapError::BadSipUri(why) => write!(f, "malformed SIP URI: {why}"),
            MapError::BadJid(why) => write!(f, "malformed JID: {why}"),
            MapError::UnicodeDomain => f.write_str("not a valid internationalized domain name"),
            MapError::BadXml(why) => write!(f, "refused XML document: {why}"),
            MapError::TooLarge { len, cap } => write!(f, "{len} bytes exceed the cap of {cap}"),
            MapError::TooDeep => f.write_str("document nests too deeply"),
            MapError::Groupchat => f.write_str("groupchat messages are not gatewayed"),
            MapError::UnsupportedMediaType => f.write_str("unsupported SIP body media type"),
            MapError::BadText => f.write_str("SIP body is not valid UTF-8 text"),
        }
    }
}

impl std::error::Error for MapError {}
