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
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{
    ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider, WebPkiSupportedAlgorithms,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme, SupportedProtocolVersion,
};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, ServerName, SignatureVerificationAlgorithm, UnixTime,
};

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
    load_roots_from(
        extra_pem_files,
        system_roots.then_some(Path::new(SYSTEM_CA_BUNDLE)),
    )
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
pub fn client_config(
    identity: &TlsIdentity,
    alpn: Alpn,
) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let provider = provider();
    // Checks the key like `load_identity` does, with a typed error.
    certified_key(
        &identity.chain,
        &identity.key,
        "client certificate",
        "client key",
    )?;
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

/// The *ring* provider's signature verification algorithms, looked up once (building a provider
/// allocates).
fn sig_algs() -> &'static [&'static dyn SignatureVerificationAlgorithm] {
    static ALGS: OnceLock<&'static [&'static dyn SignatureVerificationAlgorithm]> = OnceLock::new();
    ALGS.get_or_init(|| {
        ring::default_provider()
            .signature_verification_algorithms
            .all
    })
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
    let algs = sig_algs();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{IssuedCert, LeafSpec, ThrowawayCa};
    use rustls::{ClientConnection, ProtocolVersion, ServerConnection, StreamOwned};
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::time::Duration;

    /// 2026-01-01T00:00:00Z: inside rcgen's default validity, fixed so tests read no clock.
    fn now() -> UnixTime {
        UnixTime::since_unix_epoch(Duration::from_secs(1_767_225_600))
    }

    fn chain(cert: &IssuedCert) -> Vec<CertificateDer<'static>> {
        CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn ident(cert: &IssuedCert) -> TlsIdentity {
        identity_from_pem(&cert.cert_pem, &cert.key_pem).unwrap()
    }

    fn roots(ca: &ThrowawayCa) -> Arc<RootCertStore> {
        roots_from_pem(&[&ca.cert_pem()]).unwrap()
    }

    fn status(ca: &ThrowawayCa, cert: &IssuedCert, domain: &str, p: Purpose) -> PeerCertStatus {
        check_peer(&chain(cert), &roots(ca), domain, p, now())
    }

    fn custom(ca: &ThrowawayCa, spec: LeafSpec) -> IssuedCert {
        ca.issue_custom(&spec).unwrap()
    }

    // ---- check_peer ----

    #[test]
    fn trusted_when_chain_valid_and_xmpp_addr_matches() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let leaf = custom(
            &ca,
            LeafSpec {
                xmpp_addrs: vec!["a.test".into()],
                ..LeafSpec::default()
            },
        );
        for p in [
            Purpose::ServerAuth,
            Purpose::ClientAuth,
            Purpose::ServerOrClientAuth,
        ] {
            assert_eq!(status(&ca, &leaf, "a.test", p), PeerCertStatus::Trusted);
        }
    }

    #[test]
    fn trusted_with_dns_id_only() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let leaf = ca.issue_with(&["a.test"], false).unwrap();
        assert_eq!(
            status(&ca, &leaf, "A.Test", Purpose::ServerAuth),
            PeerCertStatus::Trusted
        );
    }

    #[test]
    fn trusted_with_srv_id_only() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let leaf = custom(
            &ca,
            LeafSpec {
                srv_ids: vec!["_xmpp-server.a.test".into()],
                ..LeafSpec::default()
            },
        );
        assert_eq!(
            status(&ca, &leaf, "a.test", Purpose::ClientAuth),
            PeerCertStatus::Trusted
        );
        assert_eq!(
            status(&ca, &leaf, "b.test", Purpose::ClientAuth),
            PeerCertStatus::NameMismatch
        );
    }

    #[test]
    fn wildcard_dns_id_matches_one_label_only() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let leaf = custom(
            &ca,
            LeafSpec {
                dns_ids: vec!["*.a.test".into()],
                ..LeafSpec::default()
            },
        );
        let p = Purpose::ServerAuth;
        assert_eq!(status(&ca, &leaf, "x.a.test", p), PeerCertStatus::Trusted);
        assert_eq!(
            status(&ca, &leaf, "a.test", p),
            PeerCertStatus::NameMismatch
        );
        assert_eq!(
            status(&ca, &leaf, "y.x.a.test", p),
            PeerCertStatus::NameMismatch
        );
    }

    #[test]
    fn common_name_only_is_name_mismatch() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let leaf = custom(
            &ca,
            LeafSpec {
                common_name: Some("a.test".into()),
                ..LeafSpec::default()
            },
        );
        assert_eq!(
            status(&ca, &leaf, "a.test", Purpose::ServerAuth),
            PeerCertStatus::NameMismatch
        );
    }

    #[test]
    fn other_domain_is_name_mismatch() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let leaf = ca.issue(&["a.test"]).unwrap();
        assert_eq!(
            status(&ca, &leaf, "b.test", Purpose::ServerAuth),
            PeerCertStatus::NameMismatch
        );
        assert_eq!(
            status(&ca, &leaf, "", Purpose::ServerAuth),
            PeerCertStatus::NameMismatch
        );
    }

    #[test]
    fn intermediate_from_peer_chain_is_used() {
        let root = ThrowawayCa::new("root").unwrap();
        let inter = root.intermediate("intermediate").unwrap();
        let leaf = inter.issue(&["a.test"]).unwrap();
        let r = roots(&root);
        let mut full = chain(&leaf);
        full.extend(
            CertificateDer::pem_slice_iter(inter.cert_pem().as_bytes()).map(Result::unwrap),
        );
        assert_eq!(
            check_peer(&full, &r, "a.test", Purpose::ClientAuth, now()),
            PeerCertStatus::Trusted
        );
        assert_eq!(
            check_peer(&chain(&leaf), &r, "a.test", Purpose::ClientAuth, now()),
            PeerCertStatus::Untrusted(CertProblem::UnknownIssuer)
        );
    }

    #[test]
    fn self_signed_is_untrusted() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let leaf = ThrowawayCa::self_signed(&["a.test"]).unwrap();
        assert_eq!(
            status(&ca, &leaf, "a.test", Purpose::ServerAuth),
            PeerCertStatus::Untrusted(CertProblem::UnknownIssuer)
        );
    }

    #[test]
    fn cert_from_other_ca_is_untrusted() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let other = ThrowawayCa::new("other").unwrap();
        let leaf = other.issue(&["a.test"]).unwrap();
        assert_eq!(
            status(&ca, &leaf, "a.test", Purpose::ClientAuth),
            PeerCertStatus::Untrusted(CertProblem::UnknownIssuer)
        );
    }

    #[test]
    fn expired_and_not_yet_valid_are_untrusted() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let dated = |from, to| {
            custom(
                &ca,
                LeafSpec {
                    dns_ids: vec!["a.test".into()],
                    validity: Some((from, to)),
                    ..LeafSpec::default()
                },
            )
        };
        let expired = dated((2000, 1, 1), (2001, 1, 1));
        let future = dated((2100, 1, 1), (2101, 1, 1));
        assert_eq!(
            status(&ca, &expired, "a.test", Purpose::ServerAuth),
            PeerCertStatus::Untrusted(CertProblem::Expired)
        );
        assert_eq!(
            status(&ca, &future, "a.test", Purpose::ServerAuth),
            PeerCertStatus::Untrusted(CertProblem::NotValidYet)
        );
    }

    #[test]
    fn server_auth_only_cert_fails_client_auth_but_passes_either() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let leaf = custom(
            &ca,
            LeafSpec {
                dns_ids: vec!["a.test".into()],
                server_auth_only: true,
                ..LeafSpec::default()
            },
        );
        assert_eq!(
            status(&ca, &leaf, "a.test", Purpose::ClientAuth),
            PeerCertStatus::Untrusted(CertProblem::WrongPurpose)
        );
        assert_eq!(
            status(&ca, &leaf, "a.test", Purpose::ServerOrClientAuth),
            PeerCertStatus::Trusted
        );
    }

    #[test]
    fn absent_and_garbage_chains() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let r = roots(&ca);
        assert_eq!(
            check_peer(&[], &r, "a.test", Purpose::ClientAuth, now()),
            PeerCertStatus::Absent
        );
        let junk = [CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00])];
        assert!(matches!(
            check_peer(&junk, &r, "a.test", Purpose::ClientAuth, now()),
            PeerCertStatus::Untrusted(_)
        ));
    }

    #[test]
    fn empty_root_store_trusts_nothing() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let leaf = ca.issue(&["a.test"]).unwrap();
        let empty = RootCertStore::empty();
        assert_eq!(
            check_peer(&chain(&leaf), &empty, "a.test", Purpose::ServerAuth, now()),
            PeerCertStatus::Untrusted(CertProblem::UnknownIssuer)
        );
    }

    // ---- loading ----

    #[test]
    fn identity_rejects_key_of_another_certificate() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let a = ca.issue(&["a.test"]).unwrap();
        let b = ca.issue(&["b.test"]).unwrap();
        assert!(matches!(
            identity_from_pem(&a.cert_pem, &b.key_pem),
            Err(TlsSetupError::KeyMismatch { .. })
        ));
    }

    #[test]
    fn identity_reports_missing_certificate_and_key() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let a = ca.issue(&["a.test"]).unwrap();
        assert!(matches!(
            identity_from_pem(&a.key_pem, &a.key_pem),
            Err(TlsSetupError::NoCertificate { .. })
        ));
        assert!(matches!(
            identity_from_pem(&a.cert_pem, &a.cert_pem),
            Err(TlsSetupError::NoPrivateKey { .. })
        ));
        assert!(matches!(
            identity_from_pem("", ""),
            Err(TlsSetupError::NoCertificate { .. })
        ));
    }

    /// A directory of this test's own under the temp dir, removed at the end.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(name: &str) -> Self {
            let p = std::env::temp_dir().join(format!("sr-tls-{}-{name}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn loads_identity_and_roots_from_files_and_names_missing_file() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let a = ca.issue(&["a.test"]).unwrap();
        let dir = TempDir::new("load");
        let (cert, key, root) = (
            dir.0.join("a.crt"),
            dir.0.join("a.key"),
            dir.0.join("ca.crt"),
        );
        std::fs::write(&cert, &a.cert_pem).unwrap();
        std::fs::write(&key, &a.key_pem).unwrap();
        std::fs::write(&root, ca.cert_pem()).unwrap();
        let id = load_identity(&cert, &key).unwrap();
        assert_eq!(id.chain.len(), 1);
        let store = load_roots(std::slice::from_ref(&root), false).unwrap();
        assert_eq!(store.len(), 1);
        let missing = dir.0.join("missing.key");
        match load_identity(&cert, &missing) {
            Err(TlsSetupError::Read { path, .. }) => assert_eq!(path, missing),
            other => panic!("expected Read error, got {other:?}"),
        }
        // A root file holding no certificate is an error naming the file.
        match load_roots(std::slice::from_ref(&key), false) {
            Err(e @ TlsSetupError::NoCertificate { .. }) => {
                assert!(e.to_string().contains("a.key"), "{e}")
            }
            other => panic!("expected NoCertificate, got {other:?}"),
        }
    }

    #[test]
    fn system_roots_fall_back_to_webpki_roots_without_bundle() {
        let dir = TempDir::new("sys");
        let store = load_roots_from(&[], Some(&dir.0.join("no-bundle.crt"))).unwrap();
        assert_eq!(store.len(), webpki_roots::TLS_SERVER_ROOTS.len());
        assert!(load_roots_from(&[], None).unwrap().is_empty());
    }

    #[test]
    fn server_config_rejects_bad_and_duplicate_domains() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let a = ident(&ca.issue(&["a.test"]).unwrap());
        let bad = [("not a name".to_string(), a.clone())];
        assert!(matches!(
            server_config(&a, &bad, Alpn::None),
            Err(TlsSetupError::InvalidDomain { .. })
        ));
        let dup = [
            ("a.test".to_string(), a.clone()),
            ("A.test".to_string(), a.clone()),
        ];
        assert!(matches!(
            server_config(&a, &dup, Alpn::None),
            Err(TlsSetupError::DuplicateDomain { .. })
        ));
    }

    // ---- handshakes over loopback ----

    /// What one side saw after a completed handshake and a ping/pong exchange.
    struct Seen {
        peer: Vec<CertificateDer<'static>>,
        version: Option<ProtocolVersion>,
        alpn: Option<Vec<u8>>,
        kind: Option<rustls::HandshakeKind>,
    }

    const IO_TIMEOUT: Option<Duration> = Some(Duration::from_secs(10));

    /// Runs a TLS session over 127.0.0.1 with the server and client in two threads; panics (and
    /// so fails the test) if either side's handshake fails.
    fn handshake(server: Arc<ServerConfig>, client: Arc<ClientConfig>, sni: &str) -> (Seen, Seen) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sni = server_name(sni).unwrap();
        std::thread::scope(|s| {
            let srv = s.spawn(move || {
                let (sock, _) = listener.accept().unwrap();
                sock.set_read_timeout(IO_TIMEOUT).unwrap();
                sock.set_write_timeout(IO_TIMEOUT).unwrap();
                let mut tls = StreamOwned::new(ServerConnection::new(server).unwrap(), sock);
                let mut buf = [0u8; 4];
                tls.read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"ping");
                tls.write_all(b"pong").unwrap();
                tls.flush().unwrap();
                Seen {
                    peer: tls.conn.peer_certificates().unwrap_or(&[]).to_vec(),
                    version: tls.conn.protocol_version(),
                    alpn: tls.conn.alpn_protocol().map(<[u8]>::to_vec),
                    kind: tls.conn.handshake_kind(),
                }
            });
            let cli = s.spawn(move || {
                let sock = TcpStream::connect(addr).unwrap();
                sock.set_read_timeout(IO_TIMEOUT).unwrap();
                sock.set_write_timeout(IO_TIMEOUT).unwrap();
                let conn = ClientConnection::new(client, sni).unwrap();
                let mut tls = StreamOwned::new(conn, sock);
                tls.write_all(b"ping").unwrap();
                tls.flush().unwrap();
                let mut buf = [0u8; 4];
                tls.read_exact(&mut buf).unwrap();
                assert_eq!(&buf, b"pong");
                Seen {
                    peer: tls.conn.peer_certificates().unwrap_or(&[]).to_vec(),
                    version: tls.conn.protocol_version(),
                    alpn: tls.conn.alpn_protocol().map(<[u8]>::to_vec),
                    kind: tls.conn.handshake_kind(),
                }
            });
            (srv.join().unwrap(), cli.join().unwrap())
        })
    }

    #[test]
    fn mutual_tls13_handshake_server_sees_trusted_client_chain() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let server_id = ident(&ca.issue(&["a.test"]).unwrap());
        let client_id = ident(&ca.issue(&["b.test"]).unwrap());
        let (srv, cli) = handshake(
            server_config(&server_id, &[], Alpn::None).unwrap(),
            client_config(&client_id, Alpn::None).unwrap(),
            "a.test",
        );
        assert_eq!(srv.version, Some(ProtocolVersion::TLSv1_3));
        assert_eq!(srv.peer, client_id.chain);
        assert_eq!(srv.alpn, None);
        let r = roots(&ca);
        assert_eq!(
            check_peer(&srv.peer, &r, "b.test", Purpose::ClientAuth, now()),
            PeerCertStatus::Trusted
        );
        assert_eq!(
            check_peer(&cli.peer, &r, "a.test", Purpose::ServerAuth, now()),
            PeerCertStatus::Trusted
        );
    }

    #[test]
    fn client_without_certificate_is_absent() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let server_id = ident(&ca.issue(&["a.test"]).unwrap());
        let anonymous = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(VERSIONS)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(DeferredPeerVerifier::new(&provider())))
            .with_no_client_auth();
        let (srv, _) = handshake(
            server_config(&server_id, &[], Alpn::None).unwrap(),
            Arc::new(anonymous),
            "a.test",
        );
        assert_eq!(
            check_peer(&srv.peer, &roots(&ca), "a.test", Purpose::ClientAuth, now()),
            PeerCertStatus::Absent
        );
    }

    #[test]
    fn resumed_session_still_reports_client_chain() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let server =
            server_config(&ident(&ca.issue(&["a.test"]).unwrap()), &[], Alpn::None).unwrap();
        let client_id = ident(&ca.issue(&["b.test"]).unwrap());
        let client = client_config(&client_id, Alpn::None).unwrap();
        let (first, _) = handshake(server.clone(), client.clone(), "a.test");
        let (second, _) = handshake(server, client, "a.test");
        assert_eq!(first.kind, Some(rustls::HandshakeKind::Full));
        assert_eq!(second.kind, Some(rustls::HandshakeKind::Resumed));
        assert_eq!(second.peer, client_id.chain);
    }

    #[test]
    fn untrusted_client_certificate_still_completes_handshake() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let server_id = ident(&ca.issue(&["a.test"]).unwrap());
        let rogue = ident(&ThrowawayCa::self_signed(&["b.test"]).unwrap());
        let (srv, _) = handshake(
            server_config(&server_id, &[], Alpn::None).unwrap(),
            client_config(&rogue, Alpn::None).unwrap(),
            "a.test",
        );
        assert_eq!(srv.peer, rogue.chain);
        assert_eq!(
            check_peer(&srv.peer, &roots(&ca), "b.test", Purpose::ClientAuth, now()),
            PeerCertStatus::Untrusted(CertProblem::UnknownIssuer)
        );
    }

    #[test]
    fn untrusted_server_certificate_still_completes_handshake() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let rogue = ident(&ThrowawayCa::self_signed(&["a.test"]).unwrap());
        let client_id = ident(&ca.issue(&["b.test"]).unwrap());
        let (_, cli) = handshake(
            server_config(&rogue, &[], Alpn::None).unwrap(),
            client_config(&client_id, Alpn::None).unwrap(),
            "a.test",
        );
        assert_eq!(
            check_peer(&cli.peer, &roots(&ca), "a.test", Purpose::ServerAuth, now()),
            PeerCertStatus::Untrusted(CertProblem::UnknownIssuer)
        );
    }

    #[test]
    fn sni_selects_per_domain_certificate() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let default = ident(&ca.issue(&["a.test"]).unwrap());
        let other = ident(&ca.issue(&["other.test"]).unwrap());
        let cfg = server_config(
            &default,
            &[("Other.Test".into(), other.clone())],
            Alpn::None,
        )
        .unwrap();
        let client = client_config(&ident(&ca.issue(&["c.test"]).unwrap()), Alpn::None).unwrap();
        let (_, cli) = handshake(cfg.clone(), client.clone(), "other.test");
        assert_eq!(cli.peer, other.chain);
        let (_, cli) = handshake(cfg, client, "unknown.test");
        assert_eq!(cli.peer, default.chain);
    }

    #[test]
    fn direct_tls_negotiates_xmpp_server_alpn() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let id = ident(&ca.issue(&["a.test"]).unwrap());
        let (srv, cli) = handshake(
            server_config(&id, &[], Alpn::XmppServer).unwrap(),
            client_config(&id, Alpn::XmppServer).unwrap(),
            "a.test",
        );
        assert_eq!(srv.alpn.as_deref(), Some(ALPN_XMPP_SERVER));
        assert_eq!(cli.alpn.as_deref(), Some(ALPN_XMPP_SERVER));
    }

    #[test]
    fn tls12_client_is_accepted_with_client_certificate() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let server_id = ident(&ca.issue(&["a.test"]).unwrap());
        let client_id = ident(&ca.issue(&["b.test"]).unwrap());
        let tls12_client = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(DeferredPeerVerifier::new(&provider())))
            .with_client_auth_cert(client_id.chain.clone(), client_id.key.clone_key())
            .unwrap();
        let (srv, _) = handshake(
            server_config(&server_id, &[], Alpn::None).unwrap(),
            Arc::new(tls12_client),
            "a.test",
        );
        assert_eq!(srv.version, Some(ProtocolVersion::TLSv1_2));
        assert_eq!(
            check_peer(&srv.peer, &roots(&ca), "b.test", Purpose::ClientAuth, now()),
            PeerCertStatus::Trusted
        );
    }

    // ---- protocol versions and compression, sans-IO ----

    /// A ClientHello record with `version` and `compression` methods, without
    /// supported_versions (as TLS 1.0/1.1 clients send), with the extensions rustls requires.
    fn legacy_client_hello(version: [u8; 2], compression: &[u8]) -> Vec<u8> {
        let mut body = version.to_vec();
        body.extend([7u8; 32]); // random
        body.push(0); // session id
        body.extend([0, 4, 0x00, 0x2f, 0xc0, 0x2b]); // RSA_AES128_CBC_SHA, ECDHE_ECDSA_AES128_GCM
        body.push(compression.len() as u8);
        body.extend(compression);
        let extensions = [
            0x00, 0x0d, 0, 4, 0, 2, 0x04,
            0x03, // signature_algorithms: ecdsa_secp256r1_sha256
            0x00, 0x0a, 0, 4, 0, 2, 0x00, 0x17, // supported_groups: secp256r1
            0x00, 0x0b, 0, 2, 1, 0, // ec_point_formats: uncompressed
        ];
        body.extend((extensions.len() as u16).to_be_bytes());
        body.extend(extensions);
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    fn server_verdict(hello: &[u8]) -> Result<(), rustls::Error> {
        let ca = ThrowawayCa::new("ca").unwrap();
        let id = ident(&ca.issue(&["a.test"]).unwrap());
        let mut conn = ServerConnection::new(server_config(&id, &[], Alpn::None).unwrap()).unwrap();
        conn.read_tls(&mut &hello[..]).unwrap();
        conn.process_new_packets().map(|_| ())
    }

    #[test]
    fn server_refuses_tls10_and_tls11_client_hello() {
        for version in [[3, 1], [3, 2]] {
            assert_eq!(
                server_verdict(&legacy_client_hello(version, &[0])),
                Err(rustls::PeerIncompatible::Tls12NotOffered.into()),
                "{version:?}"
            );
        }
    }

    #[test]
    fn server_refuses_client_hello_without_null_compression() {
        assert_eq!(
            server_verdict(&legacy_client_hello([3, 3], &[1])),
            Err(rustls::PeerIncompatible::NullCompressionRequired.into())
        );
    }

    /// The versions listed in the supported_versions extension of a ClientHello record.
    fn offered_versions(rec: &[u8]) -> Vec<u16> {
        let hs = &rec[5..];
        assert_eq!(hs[0], 1, "not a ClientHello");
        let mut p = 4 + 2 + 32;
        p += 1 + usize::from(hs[p]); // session id
        p += 2 + usize::from(u16::from_be_bytes([hs[p], hs[p + 1]])); // cipher suites
        p += 1 + usize::from(hs[p]); // compression
        let end = p + 2 + usize::from(u16::from_be_bytes([hs[p], hs[p + 1]]));
        p += 2;
        while p < end {
            let ty = u16::from_be_bytes([hs[p], hs[p + 1]]);
            let len = usize::from(u16::from_be_bytes([hs[p + 2], hs[p + 3]]));
            let data = &hs[p + 4..p + 4 + len];
            if ty == 0x002b {
                return data[1..]
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
            }
            p += 4 + len;
        }
        panic!("no supported_versions extension");
    }

    #[test]
    fn client_offers_only_tls12_and_tls13_with_null_compression() {
        let ca = ThrowawayCa::new("ca").unwrap();
        let id = ident(&ca.issue(&["a.test"]).unwrap());
        let mut conn = ClientConnection::new(
            client_config(&id, Alpn::None).unwrap(),
            server_name("a.test").unwrap(),
        )
        .unwrap();
        let mut hello = Vec::new();
        conn.write_tls(&mut hello).unwrap();
        let mut versions = offered_versions(&hello);
        versions.sort_unstable();
        assert_eq!(versions, vec![0x0303, 0x0304]);
    }
}
