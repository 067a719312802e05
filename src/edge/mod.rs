//! edge (filled in by its module owner).

pub mod identity;
pub mod tls;
