//! loadgen: plays federated XMPP partners against stanza-router and measures it.
//!
//! Each partner opens S2S streams to the router (STARTTLS or direct TLS, SASL EXTERNAL,
//! certificates from a throw-away CA) and accepts the router's outbound streams back, on which
//! answers arrive: iq results for pings, bounces (or, with the SIP gateway, deliveries observed
//! by a sink) for messages. With `--direction outbound|both` a SIP source sends MESSAGEs to the
//! router's SIP listener, completed when the router's stanza reaches a partner
//! ([`sip_source`]); `--workload mix` adds presence probes and subscriptions
//! ([`workload::Mix`]), and SUBSCRIBEs to the source, each dialog ended by the source
//! ([`sip_uac`]). Requests are paced open-loop (constant arrival rate, latency from the
//! intended send time, so coordinated omission is corrected) or closed-loop (a window of
//! outstanding requests). See [`run::run`], [`correlator::Correlator`] and [`report::Report`].
#![warn(missing_docs)]

pub mod cli;
pub mod component;
pub mod correlator;
pub mod hiccup;
pub mod html;
pub mod notifier;
pub mod procstat;
pub mod report;
pub mod run;
pub mod rx_stamp;
pub mod s2s;
pub mod schedule;
pub mod second_log;
pub mod setup;
pub mod sip_sink;
pub mod sip_source;
pub mod sip_uac;
pub mod sweep;
pub mod workload;
