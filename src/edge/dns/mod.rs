//! DNS resolution for outbound federation (where to connect for an XMPP domain) and for the
//! SIP next hop.
//!
//! The protocol logic is sans-IO: [`S2sResolution`] and [`HostResolution`] yield
//! [`Transmit`]s (DNS queries to send), consume the bytes that come back, and are told the
//! time; nothing in them touches a socket or a clock. [`resolve_s2s`] and [`resolve_host`]
//! are the thin glommio drivers that move those bytes over UDP (and TCP after a truncated
//! answer).
//!
//! Specifications followed: RFC 6120 §3.2 (SRV lookup, fallback to A/AAAA on 5269),
//! XEP-0368 (`_xmpps-server` direct-TLS records mixed with `_xmpp-server` ones),
//! RFC 2782 (priority/weight ordering, target "." means "decidedly not available"),
//! RFC 2181 §9 (a truncated answer is discarded and asked again over TCP),
//! RFC 5452 (responses must match ID, source and question); for the SIP next hop, RFC 3263 §4
//! (NAPTR, then SRV `_sips._tcp` / `_sip._tcp`, then A/AAAA: [`SipResolution`]).

mod driver;
mod error;
mod exchange;
mod message;
mod order;
mod plan;
mod resolv_conf;
mod sip_plan;

pub use driver::{resolve_host, resolve_s2s, resolve_sip};
pub use error::ResolveError;
pub use exchange::{QueryToken, Transmit, Transport};
pub use message::{build_query, digest_response, Digest, NaptrRecord, Reject, SrvRecord};
pub use order::{order_srv, SplitMix64, TlsPreference};
pub use plan::{
    AddressOrder, DnsMachine, HostResolution, S2sOptions, S2sResolution, S2sTarget,
    DEFAULT_S2S_PORT,
};
pub use resolv_conf::servers_from_resolv_conf;
pub use sip_plan::{SipResolution, SipTarget, SipUriHints, MAX_NAPTR};
