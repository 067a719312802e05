//! The XMPP error vocabulary (RFC 6120 §4.9.3 stream errors, §8.3.3 stanza errors) and who failed.
//!
//! Every internal error type maps to one of these in one place; this module only names them.

use std::fmt;

/// Which side of the router misbehaved or failed: drives logs, metrics labels and retry decisions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Side {
    /// A federated XMPP peer sent something wrong or failed.
    Peer,
    /// The internal SIP side failed.
    InternalSip,
    /// The configuration is wrong.
    Config,
    /// Our own fault (a bug or resource exhaustion here).
    Ours,
}

/// A stream error condition (RFC 6120 §4.9.3). The element is in the
/// `urn:ietf:params:xml:ns:xmpp-streams` namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // each variant is the RFC 6120 condition of the same name
pub enum StreamCondition {
    BadFormat,
    BadNamespacePrefix,
    Conflict,
    ConnectionTimeout,
    HostGone,
    HostUnknown,
    ImproperAddressing,
    InternalServerError,
    InvalidFrom,
    InvalidNamespace,
    InvalidXml,
    NotAuthorized,
    NotWellFormed,
    PolicyViolation,
    RemoteConnectionFailed,
    Reset,
    ResourceConstraint,
    RestrictedXml,
    SeeOtherHost,
    SystemShutdown,
    UndefinedCondition,
    UnsupportedEncoding,
    UnsupportedFeature,
    UnsupportedStanzaType,
    UnsupportedVersion,
}

impl StreamCondition {
    /// The element name of the condition, e.g. `not-well-formed`.
    pub const fn as_str(self) -> &'static str {
        use StreamCondition::*;
        match self {
            BadFormat => "bad-format",
            BadNamespacePrefix => "bad-namespace-prefix",
            Conflict => "conflict",
            ConnectionTimeout => "connection-timeout",
            HostGone => "host-gone",
            HostUnknown => "host-unknown",
            ImproperAddressing => "improper-addressing",
            InternalServerError => "internal-server-error",
            InvalidFrom => "invalid-from",
            InvalidNamespace => "invalid-namespace",
            InvalidXml => "invalid-xml",
            NotAuthorized => "not-authorized",
            NotWellFormed => "not-well-formed",
            PolicyViolation => "policy-violation",
            RemoteConnectionFailed => "remote-connection-failed",
            Reset => "reset",
            ResourceConstraint => "resource-constraint",
            RestrictedXml => "restricted-xml",
            SeeOtherHost => "see-other-host",
            SystemShutdown => "system-shutdown",
            UndefinedCondition => "undefined-condition",
            UnsupportedEncoding => "unsupported-encoding",
            UnsupportedFeature => "unsupported-feature",
            UnsupportedStanzaType => "unsupported-stanza-type",
            UnsupportedVersion => "unsupported-version",
        }
    }
}

impl fmt::Display for StreamCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error type of a stanza error (RFC 6120 §8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum StanzaErrorType {
    Auth,
    Cancel,
    Continue,
    Modify,
    Wait,
}

impl StanzaErrorType {
    /// The attribute value, e.g. `cancel`.
    pub const fn as_str(self) -> &'static str {
        match self {
            StanzaErrorType::Auth => "auth",
            StanzaErrorType::Cancel => "cancel",
            StanzaErrorType::Continue => "continue",
            StanzaErrorType::Modify => "modify",
            StanzaErrorType::Wait => "wait",
        }
    }
}

/// A stanza error condition (RFC 6120 §8.3.3), namespace `urn:ietf:params:xml:ns:xmpp-stanzas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // each variant is the RFC 6120 condition of the same name
pub enum StanzaCondition {
    BadRequest,
    Conflict,
    FeatureNotImplemented,
    Forbidden,
    Gone,
    InternalServerError,
    ItemNotFound,
    JidMalformed,
    NotAcceptable,
    NotAllowed,
    NotAuthorized,
    PolicyViolation,
    RecipientUnavailable,
    Redirect,
    RegistrationRequired,
    RemoteServerNotFound,
    RemoteServerTimeout,
    ResourceConstraint,
    ServiceUnavailable,
    SubscriptionRequired,
    UndefinedCondition,
    UnexpectedRequest,
}

impl StanzaCondition {
    /// The element name of the condition and its default error type (RFC 6120 §8.3.3 examples).
    pub const fn parts(self) -> (&'static str, StanzaErrorType) {
        use StanzaCondition::*;
        use StanzaErrorType as T;
        match self {
            BadRequest => ("bad-request", T::Modify),
            Conflict => ("conflict", T::Cancel),
            FeatureNotImplemented => ("feature-not-implemented", T::Cancel),
            Forbidden => ("forbidden", T::Auth),
            Gone => ("gone", T::Cancel),
            InternalServerError => ("internal-server-error", T::Cancel),
            ItemNotFound => ("item-not-found", T::Cancel),
            JidMalformed => ("jid-malformed", T::Modify),
            NotAcceptable => ("not-acceptable", T::Modify),
            NotAllowed => ("not-allowed", T::Cancel),
            NotAuthorized => ("not-authorized", T::Auth),
            PolicyViolation => ("policy-violation", T::Modify),
            RecipientUnavailable => ("recipient-unavailable", T::Wait),
            Redirect => ("redirect", T::Modify),
            RegistrationRequired => ("registration-required", T::Auth),
            RemoteServerNotFound => ("remote-server-not-found", T::Cancel),
            RemoteServerTimeout => ("remote-server-timeout", T::Wait),
            ResourceConstraint => ("resource-constraint", T::Wait),
            ServiceUnavailable => ("service-unavailable", T::Cancel),
            SubscriptionRequired => ("subscription-required", T::Auth),
            UndefinedCondition => ("undefined-condition", T::Cancel),
            UnexpectedRequest => ("unexpected-request", T::Wait),
        }
    }

    /// The element name of the condition, e.g. `service-unavailable`.
    pub const fn as_str(self) -> &'static str {
        self.parts().0
    }

    /// The default error type for this condition.
    pub const fn error_type(self) -> StanzaErrorType {
        self.parts().1
    }
}

impl fmt::Display for StanzaCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
