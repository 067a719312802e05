//! What the gateway interop tests share: a real XMPP server (Prosody or ejabberd) with `alice`
//! logged in, federated with a test router whose `[sip]` section the test writes.

use std::net::Ipv4Addr;

use stanza_router::pki::ThrowawayCa;

use super::c2s::C2sClient;
use super::peers::{Ejabberd, HarnessError, Peer, PeerOptions, Prosody};
use super::router::{PartnerEntry, RouterSetup, TestRouter};
use super::workdir::free_port;

/// Which real server hosts the XMPP user.
#[derive(Clone, Copy, Debug)]
pub enum XmppServer {
    Prosody,
    Ejabberd,
}

impl XmppServer {
    /// Its XMPP domain.
    pub fn domain(self) -> &'static str {
        match self {
            XmppServer::Prosody => "a.test",
            XmppServer::Ejabberd => "b.test",
        }
    }
}

/// The peer's start result, or a panic naming it.
pub fn started<T>(what: &str, r: Result<T, HarnessError>) -> T {
    r.unwrap_or_else(|e| panic!("{what} did not start: {e}"))
}

/// The router and the XMPP server federated with it, `alice` logged in there.
pub struct Federated {
    pub router: TestRouter,
    /// The router's shard count.
    pub shards: usize,
    pub peer: Box<dyn Peer>,
    pub alice: C2sClient,
}

/// Starts the router on `router_ip` with `router_sip` as its `[sip]` section (and whatever else
/// the test appends there), then `server` on `peer_ip` federating with it (TLS required, SASL
/// EXTERNAL or dialback), and logs `alice` in.
pub fn start_federated(
    server: XmppServer,
    router_ip: Ipv4Addr,
    peer_ip: Ipv4Addr,
    router_sip: String,
) -> Federated {
    let domain = server.domain();
    let ca = ThrowawayCa::new("interop CA").unwrap();
    let mut opts = PeerOptions {
        domain: domain.into(),
        ip: peer_ip,
        s2s_port: free_port(peer_ip).unwrap(),
        s2s_tls_port: None,
        c2s_port: free_port(peer_ip).unwrap(),
        // DNS-ID only: ejabberd 23.01 crashes on XmppAddr SANs (tests/support/README.md).
        cert: ca.issue_with(&[domain], false).unwrap(),
        trust_ca_pem: Some(ca.cert_pem()),
        routes: Vec::new(),
        require_encryption: true,
        stanza_size_limit: None,
        users: vec![("alice".into(), "alicepw".into())],
    };
    let mut setup = RouterSetup::new(router_ip, &ca);
    setup.partners.push(PartnerEntry {
        domain: domain.into(),
        toml: format!(
            "type = \"federated\"\ntls = \"required\"\nsasl = \"optional\"\n\
             dialback = true\nproxy_fqdn = \"{}\"",
            opts.s2s_addr()
        ),
    });
    setup.extra = router_sip;
    let shards = setup.shards;
    let router = TestRouter::start(setup);
    opts.routes = vec![("corp.test".into(), router.s2s)];
    let peer: Box<dyn Peer> = match server {
        XmppServer::Prosody => Box::new(started("prosody", Prosody::start(opts))),
        XmppServer::Ejabberd => Box::new(started("ejabberd", Ejabberd::start(opts))),
    };
    let alice = C2sClient::login(peer.c2s_addr(), domain, "alice", "alicepw", "t")
        .unwrap_or_else(|e| panic!("login: {e}\n{}", peer.log_tail(40)));
    Federated {
        router,
        shards,
        peer,
        alice,
    }
}
