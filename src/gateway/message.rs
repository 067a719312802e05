//! Message mapping (RFC 7572).
