//! SIP message layer (RFC 3261 §7, §18.3, §19, §20), sans-IO: parsing into zero-copy views,
//! typed header accessors, a stream framer for TCP/TLS, and a serializer with a builder API.
//!
//! Every error here names the peer as the culprit: what we parse was sent to us.

pub mod framer;
pub mod headers;
pub mod message;
pub mod next_hop;
pub mod parse;
pub mod serialize;
pub mod transaction;
pub mod transport;
pub mod typed;
pub mod uri;

pub use framer::{Framed, FramerError, SipFramer};
pub use headers::HeaderName;
pub use message::{HeaderRef, SipMessage};
pub use parse::{Limits, ParseError};
pub use serialize::{BuildError, Builder, Request, Response};
pub use typed::{
    CSeq, MediaType, NameAddr, Params, RetryAfter, SubscriptionState, TokenParams, ValueError, Via,
};
pub use uri::{SipUri, UriError};
