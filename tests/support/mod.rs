//! Test support: real XMPP peers (Prosody, ejabberd) on loopback, a minimal c2s client, a scripted
//! S2S peer and a loopback DNS server. See README.md in this directory.
#![allow(dead_code)]

pub mod c2s;
pub mod dialogue;
pub mod dns_server;
pub mod ejabberd;
pub mod gateway_world;
pub mod peers;
pub mod prosody;
pub mod router;
pub mod s2s_peer;
pub mod sip_script;
pub mod sipp;
pub mod workdir;
