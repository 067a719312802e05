//! Thread-per-core runtime: shard placement, the queue mesh between shards, and starting the
//! pinned glommio executors.

pub mod id_map;
pub mod mesh;
pub mod placement;
pub mod shards;
