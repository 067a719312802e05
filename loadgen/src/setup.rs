//! The throw-away PKI directory (`loadgen ca`) and the matching router config (`loadgen config`).
//!
//! `loadgen ca --dir DIR` writes `ca.pem` (trust it in the router), the router's certificate and
//! key, one partner certificate covering every partner domain (each as DNS-ID and XmppAddr) with
//! its key, and the domain lists. `loadgen run --ca-dir DIR` reads them back; `loadgen config`
//! writes a router config that trusts the CA and routes each partner to its loadgen listener.

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use stanza_router::edge::tls::{self, Alpn};
use stanza_router::pki::ThrowawayCa;

use crate::run::PartnerTls;

/// The CA certificate (router `tls.trust`).
pub const CA_FILE: &str = "ca.pem";
/// The router's certificate.
pub const ROUTER_CERT: &str = "router.crt";
/// The router's key.
pub const ROUTER_KEY: &str = "router.key";
/// The partners' certificate (all partner domains).
pub const PARTNERS_CERT: &str = "partners.crt";
/// The partners' key.
pub const PARTNERS_KEY: &str = "partners.key";
/// Partner domains, one per line.
pub const PARTNERS_LIST: &str = "partners.txt";
/// The router's domain.
pub const DOMAIN_FILE: &str = "router-domain.txt";

/// Why the CA directory could not be written or read.
#[derive(Debug)]
pub enum SetupError {
    /// File I/O.
    Io(PathBuf, std::io::Error),
    /// Certificate generation.
    Cert(String),
    /// TLS material that does not load.
    Tls(String),
    /// The directory's content is inconsistent.
    Content(String),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            SetupError::Cert(e) => write!(f, "certificate generation: {e}"),
            SetupError::Tls(e) => write!(f, "TLS material: {e}"),
            SetupError::Content(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for SetupError {}

/// The default partner domains `p0.partner.test` … `p{n-1}.partner.test`.
pub fn default_partners(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("p{i}.partner.test")).collect()
}

fn write_file(dir: &Path, name: &str, text: &str, private: bool) -> Result<(), SetupError> {
    let path = dir.join(name);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| SetupError::Io(path, e))
}

fn read(dir: &Path, name: &str) -> Result<String, SetupError> {
    let path = dir.join(name);
    std::fs::read_to_string(&path).map_err(|e| SetupError::Io(path, e))
}

/// Creates the CA and writes every file into `dir` (created if missing).
pub fn write_ca(dir: &Path, router_domain: &str, partners: &[String]) -> Result<(), SetupError> {
    write_ca_with(dir, router_domain, partners, true)
}

/// [`write_ca`], the certificates carrying XmppAddr identifiers besides DNS-IDs only when
/// `xmpp_addr` (ejabberd 23.01 crashes on an XmppAddr in a peer's certificate during SASL
/// EXTERNAL: `xmpp_stream_pkix:get_cert_domains` badarg).
pub fn write_ca_with(
    dir: &Path,
    router_domain: &str,
    partners: &[String],
    xmpp_addr: bool,
) -> Result<(), SetupError> {
    std::fs::create_dir_all(dir).map_err(|e| SetupError::Io(dir.to_path_buf(), e))?;
    let ca = ThrowawayCa::new("stanza-router loadgen CA")
        .map_err(|e| SetupError::Cert(e.to_string()))?;
    let router = ca
        .issue_with(&[router_domain], xmpp_addr)
        .map_err(|e| SetupError::Cert(e.to_string()))?;
    let names: Vec<&str> = partners.iter().map(String::as_str).collect();
    let partner = ca
        .issue_with(&names, xmpp_addr)
        .map_err(|e| SetupError::Cert(e.to_string()))?;
    write_file(dir, CA_FILE, &ca.cert_pem(), false)?;
    write_file(dir, ROUTER_CERT, &router.cert_pem, false)?;
    write_file(dir, ROUTER_KEY, &router.key_pem, true)?;
    write_file(dir, PARTNERS_CERT, &partner.cert_pem, false)?;
    write_file(dir, PARTNERS_KEY, &partner.key_pem, true)?;
    write_file(dir, PARTNERS_LIST, &(partners.join("\n") + "\n"), false)?;
    write_file(dir, DOMAIN_FILE, &format!("{router_domain}\n"), false)?;
    Ok(())
}

/// What `loadgen ca` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaDir {
    /// The directory (absolute when it could be resolved).
    pub dir: PathBuf,
    /// The router's domain.
    pub router_domain: String,
    /// Partner domains, in order.
    pub partners: Vec<String>,
}

/// Reads the domain lists of a CA directory.
pub fn read_ca_dir(dir: &Path) -> Result<CaDir, SetupError> {
    let router_domain = read(dir, DOMAIN_FILE)?.trim().to_string();
    let partners: Vec<String> = read(dir, PARTNERS_LIST)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if partners.is_empty() {
        return Err(SetupError::Content(format!(
            "{}: no partner domain listed",
            dir.join(PARTNERS_LIST).display()
        )));
    }
    Ok(CaDir {
        dir: std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()),
        router_domain,
        partners,
    })
}

/// The partners' client and server TLS configs from the CA directory.
pub fn partner_tls(dir: &Path) -> Result<PartnerTls, SetupError> {
    let id = tls::identity_from_pem(&read(dir, PARTNERS_CERT)?, &read(dir, PARTNERS_KEY)?)
        .map_err(|e| SetupError::Tls(e.to_string()))?;
    Ok(PartnerTls {
        client: tls::client_config(&id, Alpn::None).map_err(|e| SetupError::Tls(e.to_string()))?,
        client_direct: tls::client_config(&id, Alpn::XmppServer)
            .map_err(|e| SetupError::Tls(e.to_string()))?,
        server: tls::server_config(&id, &[], Alpn::None)
            .map_err(|e| SetupError::Tls(e.to_string()))?,
    })
}

/// A router config for the loadgen: serves `ca.router_domain` on `router_s2s` with the CA's
/// router certificate, trusts only the CA, and lists each partner (TLS and SASL required, no
/// dialback) with `proxy_fqdn` = its loadgen listener. Connection limits leave room for
/// `connections` inbound streams. With `sip_next_hop`, a `[sip]` section sends messages for the
/// router's users there over TCP (a `loadgen run --sip-sink`).
pub fn router_toml(
    ca: &CaDir,
    partners: &[String],
    router_s2s: SocketAddr,
    partner_listen: &[SocketAddr],
    connections: usize,
    shards: &str,
    sip_next_hop: Option<SocketAddr>,
) -> String {
    let sip = SipSides {
        next_hop: sip_next_hop,
        ..SipSides::default()
    };
    router_toml_sip(
        ca,
        partners,
        router_s2s,
        partner_listen,
        connections,
        shards,
        sip,
    )
}

/// The router's optional listeners and next hop in a `loadgen config`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SipSides {
    /// `[sip] next_hop`: where the router delivers to the internal side (a `--sip-sink`).
    pub next_hop: Option<SocketAddr>,
    /// `[sip] listen`: where the internal side sends to the router (a `--sip-source`).
    pub listen: Option<SocketAddr>,
    /// `listen.s2s_tls`: direct TLS S2S (XEP-0368) besides STARTTLS (`loadgen run --tls
    /// direct`).
    pub s2s_tls: Option<SocketAddr>,
    /// Partners authenticate by dialback (SASL optional) instead of SASL EXTERNAL (required).
    pub dialback: bool,
}

/// [`router_toml`] with the extras of [`SipSides`]: a `[sip]` section is written when either
/// SIP side is given.
pub fn router_toml_sip(
    ca: &CaDir,
    partners: &[String],
    router_s2s: SocketAddr,
    partner_listen: &[SocketAddr],
    connections: usize,
    shards: &str,
    sip: SipSides,
) -> String {
    let path = |f: &str| toml_string(&ca.dir.join(f).display().to_string());
    let per_partner = connections.div_ceil(partners.len().max(1)) + 16;
    let total = (connections + partners.len() * 16 + 64).max(1000);
    let shards = match shards.parse::<usize>() {
        Ok(n) => n.to_string(),
        Err(_) => toml_string(shards),
    };
    let mut t = format!(
        "# Written by `loadgen config`: the router under test for `loadgen run`.\n\
         [server]\ndomains = [{}]\n\n[listen]\ns2s = [\"{router_s2s}\"]\n{}\n\
         [tls]\ncertificate = {}\nkey = {}\ntrust = [{}]\nsystem_roots = false\n\n\
         [federation]\ndefault = \"deny\"\n\n\
         [limits]\nconnections = {total}\nconnections_per_partner = {per_partner}\n\n\
         [runtime]\nshards = {shards}\n\n[log]\nlevel = \"warn\"\n",
        toml_string(&ca.router_domain),
        sip.s2s_tls
            .map_or_else(String::new, |a| format!("s2s_tls = [\"{a}\"]\n")),
        path(ROUTER_CERT),
        path(ROUTER_KEY),
        path(CA_FILE),
    );
    if sip.next_hop.is_some() || sip.listen.is_some() {
        t.push_str("\n[sip]\n");
    }
    if let Some(hop) = sip.next_hop {
        t.push_str(&format!("next_hop = \"sip:{hop};transport=tcp\"\n"));
    }
    if let Some(l) = sip.listen {
        t.push_str(&format!("listen = [\"{l}\"]\n"));
    }
    for (p, addr) in partners.iter().zip(partner_listen) {
        t.push_str(&format!(
            "\n[[partner]]\ndomain = {}\ntype = \"federated\"\ntls = \"required\"\nsasl = \"{}\"\n\
             dialback = {}\nconnection_limit = {per_partner}\nproxy_fqdn = \"{addr}\"\n",
            toml_string(p),
            if sip.dialback { "optional" } else { "required" },
            sip.dialback
        ));
    }
    t
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
