//! Test support: real XMPP peers (Prosody, ejabberd) on loopback and a minimal c2s client.
//! See README.md in this directory.
#![allow(dead_code)]

pub mod c2s;
pub mod ejabberd;
pub mod peers;
pub mod prosody;
pub mod workdir;
