//! Shared dialogue steps for scenario tests: a scripted a.test peer (TLS configs from a certificate),
//! its inbound stream to the router up to TLS, and the router's outbound stream to its listener.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use stanza_router::edge::tls::{client_config, identity_from_pem, server_config, Alpn};
use stanza_router::pki::IssuedCert;

use super::router::{PartnerEntry, TestRouter};
use super::s2s_peer::{header, response_header, PeerConn, PeerListener};

/// The STARTTLS namespace.
pub const TLS_NS: &str = "urn:ietf:params:xml:ns:xmpp-tls";

pub struct Peer {
    pub client: Arc<rustls::ClientConfig>,
    pub server: Arc<rustls::ServerConfig>,
}

pub fn peer_tls(cert: &IssuedCert) -> Peer {
    let id = identity_from_pem(&cert.cert_pem, &cert.key_pem).unwrap();
    Peer {
        client: client_config(&id, Alpn::None).unwrap(),
        server: server_config(&id, &[], Alpn::None).unwrap(),
    }
}

pub fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

pub fn listener(last: u8) -> PeerListener {
    PeerListener::bind(SocketAddr::new(ip(last).into(), 0))
}

pub fn partner(listener: &PeerListener, policy: &str) -> PartnerEntry {
    PartnerEntry {
        domain: "a.test".into(),
        toml: format!("{policy}\nproxy_fqdn = \"{}\"", listener.addr()),
    }
}

/// Inbound: header, features, STARTTLS, TLS, header again; returns the router's stream id.
pub fn inbound_tls(router: &TestRouter, peer: &Peer) -> (PeerConn, String) {
    let mut c = PeerConn::connect(router.s2s);
    c.send(&header("a.test", "corp.test"));
    c.expect_header();
    c.expect("<starttls");
    c.send(&format!("<starttls xmlns='{TLS_NS}'/>"));
    c.expect("<proceed");
    c.starttls_client(peer.client.clone(), "corp.test");
    c.send(&header("a.test", "corp.test"));
    let id = c.expect_header().expect("stream id");
    (c, id)
}

/// Outbound (router → our listener): header, features with STARTTLS, TLS, header again.
pub fn outbound_tls(l: &PeerListener, peer: &Peer, id: &str, features_after_tls: &str) -> PeerConn {
    let mut o = l.accept();
    o.expect_header();
    o.send(&response_header(
        "a.test",
        "corp.test",
        &format!("{id}-plain"),
    ));
    o.send(&format!(
        "<stream:features><starttls xmlns='{TLS_NS}'><required/></starttls></stream:features>"
    ));
    o.expect("<starttls");
    o.send(&format!("<proceed xmlns='{TLS_NS}'/>"));
    o.starttls_server(peer.server.clone());
    o.expect_header();
    o.send(&response_header("a.test", "corp.test", id));
    o.send(&format!(
        "<stream:features>{features_after_tls}</stream:features>"
    ));
    o
}

/// Inbound a.test → router up to an authenticated stream (STARTTLS + SASL EXTERNAL, restart).
pub fn inbound_sasl(router: &TestRouter, peer: &Peer) -> PeerConn {
    let (mut c, _) = inbound_tls(router, peer);
    c.expect("<mechanism>EXTERNAL</mechanism>");
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>");
    c.expect("<success");
    c.restart();
    c.send(&header("a.test", "corp.test"));
    c.expect_header();
    c.expect("stream:features");
    c
}

/// The router's outbound stream to our listener, accepted with SASL EXTERNAL, ready for stanzas.
pub fn outbound_sasl(l: &PeerListener, peer: &Peer) -> PeerConn {
    let mut o = outbound_tls(
        l,
        peer,
        "out-1",
        "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms>",
    );
    o.expect("mechanism='EXTERNAL'");
    o.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    o.restart();
    o.expect_header();
    o.send(&response_header("a.test", "corp.test", "out-2"));
    o.send("<stream:features/>");
    o
}
