//! Simulated peers for `stanza-router demo` and the load generator, on plain std threads and
//! blocking loopback sockets so they run inside the router's process or in a separate binary.
//!
//! - [`sip_pool`]: the internal SIP side (a Lync-like pool) facing the router's SIP gateway.
//! - [`sip_uas`]: its sans-IO answering core.
//! - [`s2s_partner`]: a federated partner's side of S2S streams (STARTTLS + SASL EXTERNAL, both
//!   directions).

pub mod s2s_partner;
pub mod sip_pool;
pub mod sip_uas;

pub use sip_pool::{PoolConfig, SendPlan, SendReport, SipPool, SubscribeReport};
pub use sip_uas::{AnswerPlan, NotifyReport, PoolStats, SubscribeCounts};
