//! TLS setup for S2S (RFC 6120 §5, RFC 7590, XEP-0368) and the post-handshake peer check.
//!
//! The handshake never fails because of the peer's certificate: XMPP decides afterwards between
//! SASL EXTERNAL (certificate chains to our roots and names the stream's domain) and dialback
//! (XEP-0220). So both configs install [`DeferredPeerVerifier`], which accepts any chain but still
//! verifies the handshake signatures with the *ring* provider's algorithms (proof that the peer
//! holds the key of the certificate it sent). [`check_peer`] then does the real validation.
//!
//! Policy fixed here: *ring* provider only (never aws-lc-rs), TLS 1.2 and 1.3 only. rustls
//! implements neither renegotiation, TLS compression, nor SSLv3/TLS 1.0/1.1, and 0-RTT stays off
//! (`max_early_data_size` 0) because stream restarts must not be replayable.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider,
    WebPkiSupportedAlgorithms,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme, SupportedProtocolVersion,
};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::identity::{matches_domain, presented_ids};

/// ALPN protocol id for direct-TLS S2S (XEP-0368).
pub const ALPN_XMPP_SERVER: &[u8] = b"xmpp-server";

/// System CA bundle read by [`load_roots`] when asked for system roots.
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The only protocol versions offered or accepted.
static VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Our certificate chain (leaf first) and its private key.
pub struct TlsIdentity {
    /// Certificate chain, end-entity first, then intermediates.
    pub chain: Vec<CertificateDer<'static>>,
    /// Private key of the end-entity certificate.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material.
        f.debug_struct("TlsIdentity")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// Which ALPN protocol the config carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alpn {
    /// No ALPN (STARTTLS on 5269).
    None,
    /// `xmpp-server` (direct TLS on 5270, XEP-0368).
    XmppServer,
}

impl Alpn {
    fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Alpn::None => Vec::new(),
            Alpn::XmppServer => vec![ALPN_XMPP_SERVER.to_vec()],
        }
    }
}

/// Why TLS material could not be loaded or a config built. `origin` names the file (or
/// `inline ...` for PEM passed as a string).
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// A file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: io::Error,
    },
    /// The PEM text is malformed.
    Pem {
        /// Where the PEM came from.
        origin: String,
        /// What the PEM parser said.
        detail: String,
    },
    /// The PEM holds no `CERTIFICATE` section.
    NoCertificate {
        /// Where the PEM came from.
        origin: String,
    },
    /// The PEM holds no private key (PKCS#8, PKCS#1 or SEC1).
    NoPrivateKey {
        /// Where the PEM came from.
        origin: String,
    },
    /// The private key is not usable by the *ring* provider.
    UnsupportedKey {
        /// Where the key came from.
        origin: String,
        /// What rustls said.
        detail: String,
    },
    /// The private key is not the key of the end-entity certificate.
    KeyMismatch {
        /// Where the certificate came from.
        cert: String,
        /// Where the key came from.
        key: String,
    },
    /// The end-entity certificate is not parseable.
    InvalidCertificate {
        /// Where the certificate came from.
        origin: String,
        /// What the parser said.
        detail: String,
    },
    /// A trust root could not be added to the store.
    InvalidRoot {
        /// Where the root came from.
        origin: String,
        /// What webpki said.
        detail: String,
    },
    /// A per-domain certificate was given for a name that is not a valid DNS name.
    InvalidDomain {
        /// The name.
        domain: String,
    },
    /// Two per-domain certificates were given for the same name.
    DuplicateDomain {
        /// The name.
        domain: String,
    },
    /// rustls refused the configuration.
    Rustls {
        /// What was being built.
        context: &'static str,
        /// The rustls error.
        error: rustls::Error,
    },
}

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsSetupError::Read { path, error } => {
                write!(f, "cannot read {}: {error}", path.display())
            }
            TlsSetupError::Pem { origin, detail } => write!(f, "{origin}: bad PEM: {detail}"),
            TlsSetupError::NoCertificate { origin } => {
                write!(f, "{origin}: no CERTIFICATE in PEM")
            }
            TlsSetupError::NoPrivateKey { origin } => write!(f, "{origin}: no private key in PEM"),
            TlsSetupError::UnsupportedKey { origin, detail } => {
                write!(f, "{origin}: unsupported private key: {detail}")
            }
            TlsSetupError::KeyMismatch { cert, key } => {
                write!(f, "private key {key} does not match certificate {cert}")
            }
            TlsSetupError::InvalidCertificate { origin, detail } => {
                write!(f, "{origin}: invalid certificate: {detail}")
            }
            TlsSetupError::InvalidRoot { origin, detail } => {
                write!(f, "{origin}: unusable trust root: {detail}")
            }
            TlsSetupError::InvalidDomain { domain } => {
                write!(f, "certificate domain {domain:?} is not a DNS name")
            }
            TlsSetupError::DuplicateDomain { domain } => {
                write!(f, "two certificates configured for domain {domain:?}")
            }
            TlsSetupError::Rustls { context, error } => write!(f, "{context}: {error}"),
        }
    }
}

impl std::error::Error for TlsSetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsSetupError::Read { error, .. } => Some(error),
            TlsSetupError::Rustls { error, .. } => Some(error),
            _ => None,
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|error| TlsSetupError::Read {
        path: path.to_owned(),
        error,
    })
}

fn pem_error(origin: &str, e: pem::Error) -> TlsSetupError {
    TlsSetupError::Pem {
        origin: origin.to_owned(),
        detail: e.to_string(),
    }
}

/// All `CERTIFICATE` sections of `pem`, at least one.
fn parse_certs(pem: &[u8], origin: &str) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(origin, e))?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificate {
            origin: origin.to_owned(),
        });
    }
    Ok(certs)
}

/// Builds and checks an identity; `CertifiedKey::from_der` loads the key with *ring* and compares
/// its public key with the certificate's SPKI.
fn identity_from(
    cert_pem: &[u8],
    cert_origin: &str,
    key_pem: &[u8],
    key_origin: &str,
) -> Result<TlsIdentity, TlsSetupError> {
    let chain = parse_certs(cert_pem, cert_origin)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsSetupError::NoPrivateKey {
            origin: key_origin.to_owned(),
        },
        e => pem_error(key_origin, e),
    })?;
    certified_key(&chain, &key, cert_origin, key_origin)?;
    Ok(TlsIdentity { chain, key })
}

fn certified_key(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
    cert_origin: &str,
    key_origin: &str,
) -> Result<Arc<CertifiedKey>, TlsSetupError> {
    let provider = ring::default_provider();
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| TlsSetupError::UnsupportedKey {
            origin: key_origin.to_owned(),
            detail: e.to_string(),
        })?;
    let ck = CertifiedKey::new(chain.to_vec(), signing_key);
    match ck.keys_match() {
        Ok(()) => Ok(Arc::new(ck)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsSetupError::KeyMismatch {
                cert: cert_origin.to_owned(),
                key: key_origin.to_owned(),
            })
        }
        // ring keys always expose their SPKI, so "Unknown" means we cannot check: refuse.
        Err(e) => Err(TlsSetupError::InvalidCertificate {
            origin: cert_origin.to_owned(),
            detail: e.to_string(),
        }),
    }
}

/// Loads our certificate chain (PEM, leaf first) and private key (PEM) and checks they belong
/// together.
pub fn load_identity(cert_path: &Path, key_path: &Path) -> Result<TlsIdentity, TlsSetupError> {
    let cert_pem = read_file(cert_path)?;
    let key_pem = read_file(key_path)?;
    identity_from(
        &cert_pem,
        &cert_path.display().to_string(),
        &key_pem,
        &key_path.display().to_string(),
    )
}

/// [`load_identity`] from PEM strings.
pub fn identity_from_pem(cert_pem: &str, key_pem: &str) -> Result<TlsIdentity, TlsSetupError> {
    identity_from(
        cert_pem.as_bytes(),
        "inline certificate PEM",
        key_pem.as_bytes(),
        "inline key PEM",
    )
}

/// Builds the trust store for [`check_peer`]: every certificate of every file in
/// `extra_pem_files` (each must hold at least one, all must be valid trust anchors), plus, if
/// `system_roots`, the system bundle [`SYSTEM_CA_BUNDLE`] when present (unparseable entries are
/// skipped, as distributions ship a few) or else the compiled-in Mozilla roots (webpki-roots).
///
/// An empty store is allowed: then no peer is ever `Trusted` and only dialback authenticates.
pub fn load_roots(
    extra_pem_files: &[PathBuf],
    system_roots: bool,
) -> Result<Arc<RootCertStore>, TlsSetupError> {
    load_roots_from(extra_pem_files, system_roots.then_some(Path::new(SYSTEM_CA_BUNDLE)))
}

fn load_roots_from(
    extra_pem_files: &[PathBuf],
    system_bundle: Option<&Path>,
) -> Result<Arc<RootCertStore>, TlsSetupError> {
    let mut store = RootCertStore::empty();
    if let Some(bundle) = system_bundle {
        let mut added = 0;
        if bundle.exists() {
            let pem = read_file(bundle)?;
            let certs = CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok);
            (added, _) = store.add_parsable_certificates(certs);
        }
        if added == 0 {
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
    }
    for path in extra_pem_files {
        let pem = read_file(path)?;
        add_roots_strict(&mut store, &pem, &path.display().to_string())?;
    }
    Ok(Arc::new(store))
}

fn add_roots_strict(
    store: &mut RootCertStore,
    pem: &[u8],
    origin: &str,
) -> Result<(), TlsSetupError> {
    for cert in parse_certs(pem, origin)? {
        store.add(cert).map_err(|e| TlsSetupError::InvalidRoot {
            origin: origin.to_owned(),
            detail: e.to_string(),
        })?;
    }
    Ok(())
}

/// Trust store from PEM strings (each must hold at least one valid CA certificate).
pub fn roots_from_pem(pems: &[&str]) -> Result<Arc<RootCertStore>, TlsSetupError> {
    let mut store = RootCertStore::empty();
    for (i, pem) in pems.iter().enumerate() {
        add_roots_strict(&mut store, pem.as_bytes(), &format!("inline root PEM #{i}"))?;
    }
    Ok(Arc::new(store))
}

/// The TLS server name (SNI) for connecting to `domain`.
pub fn server_name(domain: &str) -> Result<ServerName<'static>, TlsSetupError> {
    ServerName::try_from(domain.to_owned()).map_err(|_| TlsSetupError::InvalidDomain {
        domain: domain.to_owned(),
    })
}

/// Server config for inbound S2S: certificate chosen by SNI among `per_domain` (exact,
/// ASCII case-insensitive), else `default` (also for clients sending no SNI). Requests an
/// optional client certificate and accepts any (see [`DeferredPeerVerifier`]); read it with
/// `peer_certificates()` and judge it with [`check_peer`].
pub fn server_config(
    default: &TlsIdentity,
    per_domain: &[(String, TlsIdentity)],
    alpn: Alpn,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let provider = provider();
    let mut by_name = HashMap::with_capacity(per_domain.len());
    for (domain, identity) in per_domain {
        let name = domain.to_ascii_lowercase();
        match ServerName::try_from(name.as_str()) {
            Ok(ServerName::DnsName(_)) => {}
            _ => {
                return Err(TlsSetupError::InvalidDomain {
                    domain: domain.clone(),
                })
            }
        }
        let origin = format!("certificate for {domain}");
        let ck = certified_key(&identity.chain, &identity.key, &origin, &origin)?;
        if by_name.insert(name, ck).is_some() {
            return Err(TlsSetupError::DuplicateDomain {
                domain: domain.clone(),
            });
        }
    }
    let resolver = SniResolver {
        default: certified_key(
            &default.chain,
            &default.key,
            "default certificate",
            "default key",
        )?,
        by_name,
    };
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(VERSIONS)
        .map_err(|error| TlsSetupError::Rustls {
            context: "server protocol versions",
            error,
        })?
        .with_client_cert_verifier(Arc::new(DeferredPeerVerifier::new(&provider)))
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = alpn.protocols();
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}

/// Client config for outbound S2S: presents `identity` as client certificate, accepts any server
/// chain at handshake time (judge it with [`check_peer`] and `Purpose::ServerAuth`). SNI is the
/// name given to `ClientConnection::new` — use [`server_name`] with the remote domain.
pub fn client_config(identity: &TlsIdentity, alpn: Alpn) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = provider();
    // Checks the key like `load_identity` does, with a typed error.
    certified_key(&identity.chain, &identity.key, "client certificate", "client key")?;
    let mut config = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(VERSIONS)
        .map_err(|error| TlsSetupError::Rustls {
            context: "client protocol versions",
            error,
        })?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(DeferredPeerVerifier::new(&provider)))
        .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|error| TlsSetupError::Rustls {
            context: "client certificate",
            error,
        })?;
    config.alpn_protocols = alpn.protocols();
    config.enable_sni = true;
    config.enable_early_data = false;
    Ok(Arc::new(config))
}

/// Picks the server certificate by SNI.
#[derive(Debug)]
struct SniResolver {
    default: Arc<CertifiedKey>,
    /// Lower-case DNS name → key.
    by_name: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello
            .server_name()
            .filter(|_| !self.by_name.is_empty())
            .and_then(|sni| self.by_name.get(&sni.to_ascii_lowercase()));
        Some(Arc::clone(chosen.unwrap_or(&self.default)))
    }
}

/// Certificate verifier for both sides that defers the chain decision to [`check_peer`]: any
/// certificate is accepted during the handshake, but the handshake signature is verified with the
/// provider's algorithms, so the peer has proven possession of the certificate's key.
///
/// As a server it requests a client certificate without requiring one, with no CA hints (so peers
/// send whatever certificate they have).
#[derive(Debug)]
pub struct DeferredPeerVerifier {
    algs: WebPkiSupportedAlgorithms,
}

impl DeferredPeerVerifier {
    /// A verifier using `provider`'s signature algorithms.
    pub fn new(provider: &CryptoProvider) -> Self {
        DeferredPeerVerifier {
            algs: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for DeferredPeerVerifier {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

impl ClientCertVerifier for DeferredPeerVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Which extended key usage the peer's certificate must allow (checked only if the certificate
/// has an EKU extension, RFC 5280 §4.2.1.12).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// id-kp-serverAuth: the peer is the TLS server (our outbound connections).
    ServerAuth,
    /// id-kp-clientAuth: the peer is the TLS client (inbound connections).
    ClientAuth,
    /// Either: for inbound S2S where the peer presents its *server* certificate as client
    /// certificate; public CAs increasingly issue serverAuth-only certificates.
    ServerOrClientAuth,
}

/// Why a chain did not validate.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertProblem {
    /// A certificate or one of its extensions is malformed or unsupported (critical extension).
    Malformed,
    /// The chain does not lead to one of our trust roots (includes self-signed).
    UnknownIssuer,
    /// A certificate in the chain has expired.
    Expired,
    /// A certificate in the chain is not valid yet.
    NotValidYet,
    /// A signature in the chain is wrong.
    BadSignature,
    /// A signature algorithm in the chain is not supported.
    UnsupportedSignatureAlgorithm,
    /// The end-entity certificate's EKU does not allow the required purpose.
    WrongPurpose,
    /// The end-entity certificate is a CA certificate.
    CaUsedAsEndEntity,
    /// Anything else webpki reported (name constraints, path length, limits …), as text.
    Other(String),
}

impl From<webpki::Error> for CertProblem {
    // The deprecated variants are still produced by some webpki paths; map them too.
    #[allow(deprecated)]
    fn from(e: webpki::Error) -> Self {
        use webpki::Error as E;
        match e {
            E::UnknownIssuer => CertProblem::UnknownIssuer,
            E::CertExpired { .. } => CertProblem::Expired,
            E::CertNotValidYet { .. } => CertProblem::NotValidYet,
            E::InvalidSignatureForPublicKey => CertProblem::BadSignature,
            E::UnsupportedSignatureAlgorithm
            | E::UnsupportedSignatureAlgorithmContext(_)
            | E::UnsupportedSignatureAlgorithmForPublicKey
            | E::UnsupportedSignatureAlgorithmForPublicKeyContext(_)
            | E::SignatureAlgorithmMismatch => CertProblem::UnsupportedSignatureAlgorithm,
            E::RequiredEkuNotFound | E::RequiredEkuNotFoundContext(_) => CertProblem::WrongPurpose,
            E::CaUsedAsEndEntity => CertProblem::CaUsedAsEndEntity,
            E::BadDer
            | E::BadDerTime
            | E::TrailingData(_)
            | E::MalformedExtensions
            | E::ExtensionValueInvalid
            | E::UnsupportedCertVersion
            | E::UnsupportedCriticalExtension
            | E::InvalidCertValidity
            | E::InvalidSerialNumber
            | E::EmptyEkuExtension
            | E::MalformedDnsIdentifier
            | E::MalformedNameConstraint => CertProblem::Malformed,
            other => CertProblem::Other(format!("{other:?}")),
        }
    }
}

/// Outcome of [`check_peer`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerCertStatus {
    /// The peer sent no certificate.
    Absent,
    /// The chain validates to our roots for the purpose and the certificate names the domain:
    /// SASL EXTERNAL may be offered / used.
    Trusted,
    /// The chain does not validate: dialback only.
    Untrusted(CertProblem),
    /// The chain validates but no XmppAddr / SRV-ID / DNS-ID names the domain (or the names
    /// cannot be read): dialback only.
    NameMismatch,
}

/// Judges the peer's `chain` (as from `peer_certificates()`, leaf first) against `roots` for
/// `purpose` at time `now`, then its identity against the stream's `domain` (RFC 9525 rules, see
/// [`matches_domain`]). No revocation checking.
pub fn check_peer(
    chain: &[CertificateDer<'_>],
    roots: &RootCertStore,
    domain: &str,
    purpose: Purpose,
    now: UnixTime,
) -> PeerCertStatus {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return PeerCertStatus::Absent;
    };
    let ee = match webpki::EndEntityCert::try_from(leaf) {
        Ok(ee) => ee,
        Err(e) => return PeerCertStatus::Untrusted(e.into()),
    };
    let algs = ring::default_provider().signature_verification_algorithms.all;
    let verify = |usage: webpki::KeyUsage| {
        ee.verify_for_usage(algs, &roots.roots, intermediates, now, usage, None, None)
            .map(|_| ())
    };
    let verified = match purpose {
        Purpose::ServerAuth => verify(webpki::KeyUsage::server_auth()),
        Purpose::ClientAuth => verify(webpki::KeyUsage::client_auth()),
        Purpose::ServerOrClientAuth => verify(webpki::KeyUsage::client_auth())
            .or_else(|_| verify(webpki::KeyUsage::server_auth())),
    };
    if let Err(e) = verified {
        return PeerCertStatus::Untrusted(e.into());
    }
    match presented_ids(leaf) {
        Ok(ids) if matches_domain(&ids, domain) => PeerCertStatus::Trusted,
        // Unreadable names are treated as "names nothing", never as a match.
        _ => PeerCertStatus::NameMismatch,
    }
}
