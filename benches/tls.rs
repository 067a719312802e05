//! TLS cost of an S2S connection, in memory (no sockets): rustls client and server connections
//! built from our `client_config` / `server_config` pump records to each other through `Vec`
//! buffers.
//!
//! - `handshake/tls13_mutual`: full TLS 1.3 handshake, client presents its certificate (what an
//!   S2S peer does for SASL EXTERNAL). Comparisons: `tls13_server_only` (client presents none,
//!   the dialback-only case) and `tls13_mutual_resumed` (what our configs do on a reconnect, since
//!   rustls resumes by default with its in-memory session caches).
//! - `identity/check_peer_*`: the post-handshake chain + name check, trusted and untrusted.
//! - `record/seal_open_*`: encrypt on one side, decrypt on the other, after the handshake.
//!
//! Certificates come from `ThrowawayCa` (ECDSA P-256).

use std::io::{Read, Write};
use std::ops::DerefMut;
use std::sync::Arc;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rustls::client::Resumption;
use rustls::crypto::ring;
use rustls::{ClientConfig, ClientConnection, ConnectionCommon, HandshakeKind, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use stanza_router::edge::tls::{
    check_peer, client_config, identity_from_pem, roots_from_pem, server_config, server_name, Alpn,
    DeferredPeerVerifier, PeerCertStatus, Purpose,
};
use stanza_router::pki::ThrowawayCa;

/// Moves every pending record from `src` to `dst` and lets `dst` process it; returns the bytes moved.
fn transfer<A, B>(
    src: &mut impl DerefMut<Target = ConnectionCommon<A>>,
    dst: &mut impl DerefMut<Target = ConnectionCommon<B>>,
    buf: &mut Vec<u8>,
) -> usize {
    buf.clear();
    while src.wants_write() {
        src.write_tls(buf).expect("write_tls into a Vec");
    }
    let mut rd = &buf[..];
    while !rd.is_empty() {
        dst.read_tls(&mut rd).expect("read_tls from a slice");
        dst.process_new_packets().expect("peer records are valid");
    }
    buf.len()
}

/// Runs the handshake to completion, including the server's session tickets reaching the client.
fn handshake(client: &mut ClientConnection, server: &mut ServerConnection, buf: &mut Vec<u8>) {
    loop {
        let moved = transfer(client, server, buf) + transfer(server, client, buf);
        if moved == 0 && !client.is_handshaking() && !server.is_handshaking() {
            return;
        }
    }
}

/// One in-memory connection pair for `client_cfg` → `server_cfg`, handshake done.
fn connected(
    client_cfg: &Arc<ClientConfig>,
    server_cfg: &Arc<rustls::ServerConfig>,
    buf: &mut Vec<u8>,
) -> (ClientConnection, ServerConnection) {
    let mut c = ClientConnection::new(client_cfg.clone(), server_name("a.test").unwrap()).unwrap();
    let mut s = ServerConnection::new(server_cfg.clone()).unwrap();
    handshake(&mut c, &mut s, buf);
    (c, s)
}

/// `cfg` with session resumption off, so every connection is a full handshake.
fn no_resumption(cfg: &Arc<ClientConfig>) -> Arc<ClientConfig> {
    let mut c = (**cfg).clone();
    c.resumption = Resumption::disabled();
    Arc::new(c)
}

/// Seals `plain` on `tx` into one record, opens it on `rx`, reads it back into `out`.
fn seal_open<A, B>(
    tx: &mut impl DerefMut<Target = ConnectionCommon<A>>,
    rx: &mut impl DerefMut<Target = ConnectionCommon<B>>,
    plain: &[u8],
    out: &mut [u8],
    buf: &mut Vec<u8>,
) -> usize {
    tx.writer().write_all(plain).unwrap();
    transfer(tx, rx, buf);
    let mut got = 0;
    while got < plain.len() {
        got += rx.reader().read(&mut out[got..]).unwrap();
    }
    got
}

fn bench(c: &mut Criterion) {
    let ca = ThrowawayCa::new("bench CA").unwrap();
    let server_leaf = ca.issue(&["a.test"]).unwrap();
    let client_leaf = ca.issue(&["b.test"]).unwrap();
    let server_id = identity_from_pem(&server_leaf.cert_pem, &server_leaf.key_pem).unwrap();
    let client_id = identity_from_pem(&client_leaf.cert_pem, &client_leaf.key_pem).unwrap();
    let server_cfg = server_config(&server_id, &[], Alpn::None).unwrap();
    let mutual_resuming = client_config(&client_id, Alpn::None).unwrap();
    let mutual = no_resumption(&mutual_resuming);
    // The same client without a certificate: what a dialback-only peer presents.
    let provider = Arc::new(ring::default_provider());
    let server_only = Arc::new(
        ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(DeferredPeerVerifier::new(&provider)))
            .with_no_client_auth(),
    );
    let server_only = no_resumption(&server_only);

    let mut buf = Vec::with_capacity(64 * 1024);
    // Sanity: what is being measured is what the names say.
    {
        let (c1, s1) = connected(&mutual, &server_cfg, &mut buf);
        assert_eq!(c1.handshake_kind(), Some(HandshakeKind::Full));
        assert_eq!(
            c1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
        assert_eq!(s1.peer_certificates().map(<[_]>::len), Some(1));
        eprintln!(
            "negotiated {:?}, key exchange {:?}",
            c1.negotiated_cipher_suite().unwrap().suite(),
            c1.negotiated_key_exchange_group().unwrap().name()
        );
        let (c2, s2) = connected(&server_only, &server_cfg, &mut buf);
        assert_eq!(c2.handshake_kind(), Some(HandshakeKind::Full));
        assert!(s2.peer_certificates().is_none());
        connected(&mutual_resuming, &server_cfg, &mut buf);
        let (c3, s3) = connected(&mutual_resuming, &server_cfg, &mut buf);
        assert_eq!(c3.handshake_kind(), Some(HandshakeKind::Resumed));
        // The resumed server still knows the client chain, so check_peer keeps working.
        assert_eq!(s3.peer_certificates().map(<[_]>::len), Some(1));
    }

    let mut g = c.benchmark_group("handshake");
    g.throughput(Throughput::Elements(1));
    g.bench_function("tls13_mutual", |b| {
        b.iter(|| connected(&mutual, &server_cfg, &mut buf))
    });
    g.bench_function("tls13_server_only", |b| {
        b.iter(|| connected(&server_only, &server_cfg, &mut buf))
    });
    g.bench_function("tls13_mutual_resumed", |b| {
        b.iter(|| connected(&mutual_resuming, &server_cfg, &mut buf))
    });
    g.finish();

    // check_peer as the inbound edge calls it: the client's chain, our roots, ServerOrClientAuth.
    let roots = roots_from_pem(&[&ca.cert_pem()]).unwrap();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(client_leaf.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    let stranger = ThrowawayCa::self_signed(&["b.test"]).unwrap();
    let stranger_chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(stranger.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    // 2026-01-01T00:00:00Z, inside the certificates' validity.
    let now = UnixTime::since_unix_epoch(Duration::from_secs(1_767_225_600));
    let purpose = Purpose::ServerOrClientAuth;
    assert_eq!(
        check_peer(&chain, &roots, "b.test", purpose, now),
        PeerCertStatus::Trusted
    );
    assert!(matches!(
        check_peer(&stranger_chain, &roots, "b.test", purpose, now),
        PeerCertStatus::Untrusted(_)
    ));
    let mut g = c.benchmark_group("identity");
    g.throughput(Throughput::Elements(1));
    g.bench_function("check_peer_trusted", |b| {
        b.iter(|| check_peer(black_box(&chain), &roots, "b.test", purpose, now))
    });
    g.bench_function("check_peer_untrusted_self_signed", |b| {
        b.iter(|| check_peer(black_box(&stranger_chain), &roots, "b.test", purpose, now))
    });
    g.finish();

    let (mut client, mut server) = connected(&mutual, &server_cfg, &mut buf);
    let mut g = c.benchmark_group("record");
    for (name, size) in [("seal_open_1k", 1024usize), ("seal_open_16k", 16 * 1024)] {
        let plain = vec![0x5a_u8; size];
        let mut out = vec![0u8; size];
        assert_eq!(
            seal_open(&mut client, &mut server, &plain, &mut out, &mut buf),
            size
        );
        assert_eq!(out, plain);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(name, |b| {
            b.iter(|| seal_open(&mut client, &mut server, &plain, &mut out, &mut buf))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .sample_size(20);
    targets = bench
}
criterion_main!(benches);
