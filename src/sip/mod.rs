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
pub mod token;
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

/// The RFC 3261 §21 reason phrase of `code` (class default for codes without one of their own).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        200 => "OK",
        202 => "Accepted",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        489 => "Bad Event",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        600 => "Busy Everywhere",
        603 => "Decline",
        100..=199 => "Trying",
        201..=299 => "Success",
        300 | 303..=399 => "Redirect",
        402 | 407 | 409 | 411 | 412 | 414 | 417..=479 | 481..=485 | 487..=499 => "Client Error",
        502 | 504..=599 => "Server Error",
        _ => "Global Failure",
    }
}
