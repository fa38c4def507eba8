//! An endpoint's own TLS settings: the client certificate it presents (mTLS) and the CAs its
//! server's certificate must chain to.
//!
//! The API checks them here when they are saved and the dispatcher's sender builds its
//! clients from them here too, so whatever was accepted can be used. Messages name what is
//! wrong and never quote the PEM text: a key must not reach an error body or a log.

use std::io::BufRead;
use std::sync::Arc;

use base64::Engine as _;
use hookline_core::outbound::{ClientIdentity, EndpointTls};
use rustls::pki_types::pem::{self, SectionKind};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::{CertifiedKey, SigningKey};
use sha2::{Digest, Sha256};

/// Why a TLS setting cannot be used, naming the API field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsSettingError {
    /// The client identity (private key and certificate chain).
    #[error("{0}")]
    Identity(String),
    /// The CA bundle the server's certificate must chain to.
    #[error("{0}")]
    ServerCa(String),
}

impl TlsSettingError {
    /// The API field the problem is in.
    pub fn field(&self) -> &'static str {
        match self {
            Self::Identity(_) => "identity",
            Self::ServerCa(_) => "serverCaCert",
        }
    }
}

/// What an identity's leaf certificate says, shown instead of the identity itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    pub subject: String,
    pub issuer: String,
    pub not_after: time::OffsetDateTime,
    /// SHA-256 of the DER certificate, as `openssl x509 -fingerprint -sha256` prints it.
    pub sha256_fingerprint: String,
}

/// The PEM sections of `text` that rustls can read. Sections of other kinds are skipped.
struct Sections {
    certificates: Vec<CertificateDer<'static>>,
    keys: Vec<PrivateKeyDer<'static>>,
}

fn sections(
    text: &str,
    bad: impl Fn(String) -> TlsSettingError,
) -> Result<Sections, TlsSettingError> {
    let mut reader = std::io::Cursor::new(text.as_bytes());
    let mut found = Sections {
        certificates: Vec::new(),
        keys: Vec::new(),
    };
    loop {
        let section = pem::from_buf(&mut reader as &mut dyn BufRead).map_err(|error| {
            // The error's detail may quote a line of the PEM text: only its kind is told.
            let what = match error {
                pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line",
                pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed",
                pem::Error::Base64Decode(_) => "a PEM section is not valid base64",
                _ => "the PEM text cannot be read",
            };
            bad(what.to_owned())
        })?;
        match section {
            None => return Ok(found),
            Some((SectionKind::Certificate, der)) => found.certificates.push(der.into()),
            Some((SectionKind::PrivateKey, der)) => {
                found.keys.push(PrivateKeyDer::Pkcs8(der.into()))
            }
            Some((SectionKind::RsaPrivateKey, der)) => {
                found.keys.push(PrivateKeyDer::Pkcs1(der.into()));
            }
            Some((SectionKind::EcPrivateKey, der)) => {
                found.keys.push(PrivateKeyDer::Sec1(der.into()))
            }
            Some(_) => {}
        }
    }
}

/// Reads a client identity given as one PEM text holding the private key and the certificate
/// chain in any order, checks that the key is usable and belongs to one of the certificates,
/// and answers it as stored: the chain leaf first, the key on its own.
pub fn parse_identity(text: &str) -> Result<ClientIdentity, TlsSettingError> {
    let bad = TlsSettingError::Identity;
    if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        return Err(bad(
            "the private key is encrypted; give it unencrypted (it is sealed at rest)".into(),
        ));
    }
    let found = sections(text, bad)?;
    let key = match found.keys.len() {
        0 => {
            return Err(bad(
                "no private key found: expected a PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or \
                 `EC PRIVATE KEY` section"
                    .into(),
            ))
        }
        1 => found
            .keys
            .into_iter()
            .next()
            .ok_or_else(|| bad("no private key".into()))?,
        n => {
            return Err(bad(format!(
                "{n} private keys found; exactly one is needed"
            )))
        }
    };
    if found.certificates.is_empty() {
        return Err(bad(
            "no certificate found: expected a PEM `CERTIFICATE` section".into(),
        ));
    }
    for (i, der) in found.certificates.iter().enumerate() {
        if x509_parser::parse_x509_certificate(der).is_err() {
            return Err(bad(format!(
                "certificate {} is not a valid X.509 certificate",
                i + 1
            )));
        }
    }
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|_| bad("the private key is not a usable RSA, ECDSA or Ed25519 key".into()))?;
    let chain = leaf_first(found.certificates, &signing).map_err(bad)?;
    usable_as_client_identity(&chain, &key).map_err(bad)?;
    Ok(ClientIdentity {
        certificate: chain.iter().map(|c| encode("CERTIFICATE", c)).collect(),
        key: encode_key(&key).into(),
    })
}

/// The chain with the certificate of `key` first and the others in the order given.
fn leaf_first(
    mut chain: Vec<CertificateDer<'static>>,
    key: &Arc<dyn SigningKey>,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut unknown = false;
    for i in 0..chain.len() {
        let candidate = CertifiedKey::new(vec![chain[i].clone()], Arc::clone(key));
        match candidate.keys_match() {
            Ok(()) => {
                let leaf = chain.remove(i);
                chain.insert(0, leaf);
                return Ok(chain);
            }
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
                unknown = true;
            }
            Err(_) => {}
        }
    }
    if unknown {
        // A key type whose public half rustls cannot derive: trust the order given.
        return Ok(chain);
    }
    Err("the private key does not belong to any of the certificates".into())
}

/// Whether rustls accepts the chain and key as a client's certificate (the same check the
/// sender's connections make).
fn usable_as_client_identity(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
) -> Result<(), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_client_auth_cert(chain.to_vec(), key.clone_key())
        .map(|_| ())
        .map_err(|error| match error {
            rustls::Error::InconsistentKeys(_) => {
                "the private key does not match the leaf certificate".to_owned()
            }
            other => format!("the key and certificate cannot be used: {other}"),
        })
}

/// Reads a CA bundle (one or more PEM certificates, nothing else) and answers it as stored.
pub fn parse_ca_bundle(text: &str) -> Result<String, TlsSettingError> {
    let bad = TlsSettingError::ServerCa;
    if text.contains("PRIVATE KEY-----") {
        return Err(bad(
            "holds a private key; it must hold only the CA certificates".into(),
        ));
    }
    let found = sections(text, bad)?;
    if found.certificates.is_empty() {
        return Err(bad(
            "no certificate found: expected at least one PEM `CERTIFICATE` section".into(),
        ));
    }
    let mut store = rustls::RootCertStore::empty();
    for (i, der) in found.certificates.iter().enumerate() {
        let parsed = x509_parser::parse_x509_certificate(der).is_ok();
        if !parsed || store.add(der.clone()).is_err() {
            return Err(bad(format!(
                "certificate {} is not a valid X.509 certificate",
                i + 1
            )));
        }
    }
    Ok(found
        .certificates
        .iter()
        .map(|c| encode("CERTIFICATE", c))
        .collect())
}

/// Adds `tls`'s identity and CAs to `builder`. With CAs set, the built-in roots are trusted
/// only if `trust_system_roots` says so.
pub fn configure(
    mut builder: reqwest::ClientBuilder,
    tls: &EndpointTls,
) -> Result<reqwest::ClientBuilder, TlsSettingError> {
    if let Some(identity) = &tls.identity {
        let pem = format!("{}\n{}", identity.certificate, identity.key.expose());
        let identity = reqwest::Identity::from_pem(pem.as_bytes()).map_err(|_| {
            TlsSettingError::Identity("the certificate and key cannot be read".into())
        })?;
        builder = builder.identity(identity);
    }
    if let Some(bundle) = &tls.server_ca {
        let roots = reqwest::Certificate::from_pem_bundle(bundle.as_bytes())
            .map_err(|_| TlsSettingError::ServerCa("the CA bundle cannot be read".into()))?;
        if roots.is_empty() {
            return Err(TlsSettingError::ServerCa("no certificate found".into()));
        }
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
        builder = builder.tls_built_in_root_certs(tls.trust_system_roots);
    }
    Ok(builder)
}

/// Checks settings about to be saved: each part reads, and a client can be built with them.
pub fn check(tls: &EndpointTls) -> Result<(), TlsSettingError> {
    let builder = configure(reqwest::Client::builder().use_rustls_tls(), tls)?;
    builder.build().map(|_| ()).map_err(|error| {
        let problem = format!(
            "a TLS client cannot be built with it: {}",
            chain_text(&error)
        );
        match tls.identity {
            Some(_) => TlsSettingError::Identity(problem),
            None => TlsSettingError::ServerCa(problem),
        }
    })
}

/// The leaf certificate of a stored identity, described.
pub fn summarize(identity: &ClientIdentity) -> Option<CertificateSummary> {
    let mut reader = std::io::Cursor::new(identity.certificate.as_bytes());
    let der = loop {
        match pem::from_buf(&mut reader as &mut dyn BufRead).ok()?? {
            (SectionKind::Certificate, der) => break der,
            _ => continue,
        }
    };
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let digest = Sha256::digest(&der);
    let fingerprint: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    Some(CertificateSummary {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_after: cert.validity().not_after.to_datetime(),
        sha256_fingerprint: fingerprint.join(":"),
    })
}

/// How a TLS failure is told in the attempt log: the rustls error's kind, never key
/// material (rustls errors carry none).
pub fn describe_failure(error: &rustls::Error) -> String {
    use rustls::AlertDescription as Alert;
    match error {
        rustls::Error::AlertReceived(Alert::CertificateRequired) => {
            "tls: the receiver requires a client certificate (CertificateRequired)".into()
        }
        rustls::Error::AlertReceived(
            alert @ (Alert::BadCertificate
            | Alert::UnknownCA
            | Alert::CertificateExpired
            | Alert::CertificateRevoked
            | Alert::CertificateUnknown
            | Alert::UnsupportedCertificate
            | Alert::AccessDenied),
        ) => format!("tls: the receiver refused the client certificate ({alert:?})"),
        other => format!("tls: {other}"),
    }
}

/// `error` and its causes, one after the other (for errors whose own text is only a
/// summary, such as reqwest's "builder error").
pub fn chain_text(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

fn encode(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn encode_key(key: &PrivateKeyDer<'_>) -> String {
    match key {
        PrivateKeyDer::Pkcs1(der) => encode("RSA PRIVATE KEY", der.secret_pkcs1_der()),
        PrivateKeyDer::Sec1(der) => encode("EC PRIVATE KEY", der.secret_sec1_der()),
        PrivateKeyDer::Pkcs8(der) => encode("PRIVATE KEY", der.secret_pkcs8_der()),
        _ => encode("PRIVATE KEY", key.secret_der()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestCa;

    #[test]
    fn an_identity_reads_in_any_order_and_is_stored_leaf_first() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = TestCa::new(dir.path(), "unit-ca");
        let client = ca.client("client-a");
        // Chain first, the CA before the leaf, the key last.
        let text = format!("{}{}{}", ca.certificate, client.certificate, client.key);
        let identity = parse_identity(&text).expect("a usable identity");
        let summary = summarize(&identity).expect("a leaf to describe");
        assert_eq!(summary.subject, "CN=client-a");
        assert_eq!(summary.issuer, "CN=unit-ca");
        assert_eq!(summary.sha256_fingerprint.len(), 32 * 3 - 1);
        assert!(summary.not_after > time::OffsetDateTime::now_utc());
        assert_eq!(identity.certificate.matches("BEGIN CERTIFICATE").count(), 2);
        let tls = EndpointTls {
            identity: Some(identity),
            server_ca: Some(parse_ca_bundle(&ca.certificate).expect("ca")),
            trust_system_roots: false,
        };
        check(&tls).expect("a client can be built");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = TestCa::new(dir.path(), "unit-ca");
        let (a, b) = (ca.client("a"), ca.client("b"));
        let error = parse_identity(&format!("{}{}", a.certificate, b.key)).expect_err("mismatch");
        assert_eq!(error.field(), "identity");
        assert!(error.to_string().contains("does not belong"), "{error}");
        // Nothing of the key is echoed.
        let body: String = b
            .key
            .lines()
            .nth(1)
            .expect("a base64 line")
            .chars()
            .take(16)
            .collect();
        assert!(!error.to_string().contains(&body));
    }

    #[test]
    fn garbage_missing_parts_and_extra_keys_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = TestCa::new(dir.path(), "unit-ca");
        let a = ca.client("a");
        let cases = [
            ("not pem at all".to_owned(), "no private key"),
            (
                "-----BEGIN PRIVATE KEY-----\n!!!not base64!!!\n-----END PRIVATE KEY-----\n"
                    .to_owned(),
                "base64",
            ),
            ("-----BEGIN PRIVATE KEY-----\nAAAA\n".to_owned(), "END"),
            (a.key.clone(), "no certificate"),
            (format!("{}{}{}", a.key, a.key, a.certificate), "2 private keys"),
            (
                format!(
                    "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n{}",
                    a.certificate
                ),
                "encrypted",
            ),
            (
                format!("{}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", a.key),
                "not a valid X.509",
            ),
        ];
        for (text, expected) in cases {
            let error = parse_identity(&text).expect_err(expected);
            assert!(error.to_string().contains(expected), "{expected}: {error}");
        }
    }

    #[test]
    fn a_ca_bundle_needs_a_certificate_and_no_key() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = TestCa::new(dir.path(), "unit-ca");
        let a = ca.client("a");
        for (text, expected) in [
            ("", "no certificate"),
            ("garbage", "no certificate"),
            (a.key.as_str(), "private key"),
        ] {
            let error = parse_ca_bundle(text).expect_err(expected);
            assert_eq!(error.field(), "serverCaCert");
            assert!(error.to_string().contains(expected), "{expected}: {error}");
        }
        let two = parse_ca_bundle(&format!("# comment\n{}{}", ca.certificate, a.certificate))
            .expect("a bundle of two");
        assert_eq!(two.matches("BEGIN CERTIFICATE").count(), 2);
    }

    #[test]
    fn failures_are_described_by_kind() {
        let required = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        assert_eq!(
            describe_failure(&required),
            "tls: the receiver requires a client certificate (CertificateRequired)"
        );
        let unknown = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        assert_eq!(
            describe_failure(&unknown),
            "tls: invalid peer certificate: UnknownIssuer"
        );
    }
}
