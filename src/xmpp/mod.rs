//! XMPP server-to-server protocol: stream and stanza errors, the S2S stream state machines,
//! dialback keys, JIDs and the stanzas the router answers by itself.

pub mod answer;
pub mod dialback;
pub mod error;
pub mod jid;
pub mod stream;
