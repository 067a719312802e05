//! Caps the framer enforces while scanning (RFC 6120 §13.12: resource exhaustion).

/// Per-stream caps, checked as soon as the scan crosses them (never after buffering the excess).
///
/// Exceeding any of them is a `policy-violation` stream error. They are raised after the peer has
/// authenticated ([`crate::xml::Framer::set_limits`]): unauthenticated peers get small caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramerLimits {
    /// Maximum bytes of one top-level element (stanza or nonza), tags included.
    pub max_stanza_bytes: usize,
    /// Maximum bytes of the stream header, including an XML declaration and leading whitespace.
    pub max_header_bytes: usize,
    /// Maximum element depth inside a stanza; the stanza element itself is depth 1.
    pub max_depth: u32,
    /// Maximum attributes (namespace declarations included) on one element.
    pub max_attributes: u32,
    /// Maximum elements in one stanza, the stanza element included.
    pub max_elements: u32,
}

impl FramerLimits {
    /// Caps before the peer is authenticated: Prosody's minimum stanza size (10000 bytes),
    /// ejabberd's 32 elements before auth.
    pub const fn pre_auth() -> Self {
        FramerLimits {
            max_stanza_bytes: 10_000,
            max_header_bytes: 4_096,
            max_depth: 8,
            max_attributes: 32,
            max_elements: 32,
        }
    }

    /// Caps after authentication: 512 KiB stanzas as Prosody and ejabberd's example config.
    pub const fn post_auth() -> Self {
        FramerLimits {
            max_stanza_bytes: 524_288,
            max_header_bytes: 4_096,
            max_depth: 64,
            max_attributes: 64,
            max_elements: 16_384,
        }
    }
}

impl Default for FramerLimits {
    /// The pre-authentication caps: a new stream starts unauthenticated.
    fn default() -> Self {
        Self::pre_auth()
    }
}
