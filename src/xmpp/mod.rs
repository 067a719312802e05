//! XMPP server-to-server protocol: stream and stanza errors, the S2S stream state machine,
//! dialback and SASL EXTERNAL, domain names.

pub mod error;
