//! runtime (filled in by its module owner).
