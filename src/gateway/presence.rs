//! Presence mapping (RFC 8048).
