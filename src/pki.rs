//! Throw-away certificate authority for the demo, the loadgen and tests.
//!
//! Issues leaf certificates for XMPP domains carrying both a DNS-ID and an XmppAddr identifier
//! (RFC 6120 §13.7.1.4, OID 1.3.6.1.5.5.7.8.5), which is what servers check for S2S identity.
//! Never used for production certificates: keys live in memory and are written only where asked.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// OID of the XmppAddr `otherName` (id-on-xmppAddr).
pub const OID_XMPP_ADDR: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 8, 5];

/// Gives a certificate a validity period that every peer can handle. rcgen's default ends in
/// year 4096, and ejabberd 23.01 (p1_pkix) then crashes arming its expiry-notice timer
/// (`erlang:start_timer` badarg: the delay exceeds the timer range) and serves no TLS at all.
fn set_validity(params: &mut CertificateParams) {
    params.not_before = rcgen::date_time_ymd(2000, 1, 1);
    params.not_after = rcgen::date_time_ymd(2099, 12, 31);
}

/// A certificate and its private key, both PEM.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// PEM certificate (leaf only; the CA certificate is [`ThrowawayCa::cert_pem`]).
    pub cert_pem: String,
    /// PEM PKCS#8 private key.
    pub key_pem: String,
}

/// An in-memory certificate authority with an ECDSA P-256 key.
pub struct ThrowawayCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl ThrowawayCa {
    /// Creates a new CA named `name`.
    pub fn new(name: &str) -> Result<Self, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        set_validity(&mut params);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key)?;
        Ok(ThrowawayCa { cert, key })
    }

    /// The CA certificate, PEM, to be used as a trust root.
    pub fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// Issues a server/client certificate for the XMPP `domains` (DNS-ID and XmppAddr for each).
    pub fn issue(&self, domains: &[&str]) -> Result<IssuedCert, rcgen::Error> {
        self.issue_with(domains, true)
    }

    /// Issues a certificate for `domains`, with or without XmppAddr identifiers (tests of the
    /// DNS-ID-only path).
    pub fn issue_with(
        &self,
        domains: &[&str],
        xmpp_addr: bool,
    ) -> Result<IssuedCert, rcgen::Error> {
        let key = KeyPair::generate()?;
        let names: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
        let mut params = CertificateParams::new(names)?;
        if xmpp_addr {
            for d in domains {
                params
                    .subject_alt_names
                    .push(SanType::OtherName((OID_XMPP_ADDR.to_vec(), (*d).into())));
            }
        }
        let mut dn = DistinguishedName::new();
        // The CN is deliberately not the domain: RFC 9525 says to ignore it.
        dn.push(DnType::CommonName, "stanza-router test leaf");
        params.distinguished_name = dn;
        set_validity(&mut params);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.cert, &self.key)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues a self-signed certificate for `domains` (no CA): what a partner with an untrusted
    /// certificate presents.
    pub fn self_signed(domains: &[&str]) -> Result<IssuedCert, rcgen::Error> {
        let key = KeyPair::generate()?;
        let names: Vec<String> = domains.iter().map(|d| d.to_string()).collect();
        let mut params = CertificateParams::new(names)?;
        set_validity(&mut params);
        let cert = params.self_signed(&key)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_certificate_carries_xmpp_addr_and_dns_id() {
        let ca = ThrowawayCa::new("test CA").unwrap();
        let leaf = ca.issue(&["a.test"]).unwrap();
        let der = rustls_pki_types::pem::PemObject::from_pem_slice(leaf.cert_pem.as_bytes())
            .map(|c: rustls_pki_types::CertificateDer<'static>| c)
            .unwrap();
        let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
        let san = x509.subject_alternative_name().unwrap().unwrap();
        let mut dns = false;
        let mut xmpp = false;
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(n) => dns |= *n == "a.test",
                x509_parser::extensions::GeneralName::OtherName(oid, _) => {
                    xmpp |= oid.to_id_string() == "1.3.6.1.5.5.7.8.5"
                }
                _ => {}
            }
        }
        assert!(dns && xmpp);
    }
}
