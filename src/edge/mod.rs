//! Edge: listeners, TLS sessions, inbound/outbound S2S drivers, DNS resolution, policy.

pub mod dns;
