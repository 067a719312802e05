//! stanza-router: an XMPP federation edge and XMPP⇄SIP gateway, thread-per-core on io_uring.
//!
//! The protocol logic lives in sans-IO state machines (`xml`, `xmpp`, `config`, parts of `edge`)
//! that take bytes, events and a `now`, and return bytes, events and timers. The glommio drivers in
//! `edge` and `runtime` only move bytes and timers.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod edge;
pub mod gateway;
pub mod ops;
pub mod pki;
pub mod runtime;
pub mod sim;
pub mod sip;
pub mod xml;
pub mod xmpp;
