//! TLS on an accepted or connected socket (direct TLS, or after `<proceed/>`), returning the peer's
//! certificate chain for the stream state machine to judge.

use std::sync::Arc;

use futures_rustls::{client, server, TlsAcceptor, TlsConnector};
use glommio::net::TcpStream;
use rustls_pki_types::{CertificateDer, ServerName};

/// The peer's certificate chain (empty when it presented none).
pub type PeerChain = Vec<CertificateDer<'static>>;

/// Server side of the handshake (inbound streams).
pub async fn accept(
    cfg: Arc<rustls::ServerConfig>,
    tcp: TcpStream,
) -> std::io::Result<(server::TlsStream<TcpStream>, PeerChain)> {
    let tls = TlsAcceptor::from(cfg).accept(tcp).await?;
    let chain = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.to_vec())
        .unwrap_or_default();
    Ok((tls, chain))
}

/// Client side of the handshake (outbound streams), SNI = the remote XMPP domain.
pub async fn connect(
    cfg: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
    tcp: TcpStream,
) -> std::io::Result<(client::TlsStream<TcpStream>, PeerChain)> {
    let tls = TlsConnector::from(cfg).connect(name, tcp).await?;
    let chain = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.to_vec())
        .unwrap_or_default();
    Ok((tls, chain))
}
