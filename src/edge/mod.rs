//! The federation edge: listeners, TLS, inbound and outbound S2S drivers, DNS, routing.

pub mod context;
pub mod dns;
pub mod identity;
pub mod inbound;
pub mod outbound;
pub mod pump;
pub mod route;
pub mod tls;
pub mod upgrade;
