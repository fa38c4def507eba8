//! Endpoint secrets encrypted at rest (XChaCha20-Poly1305) under an operator's main key.
//!
//! A stored secret is either the plain `whsec_…` text (no main key configured, or written
//! before one was) or `sealed:v1:<base64 nonce‖ciphertext>`. Reading accepts both, so turning
//! a main key on needs no migration; every write after that seals.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::secret::SecretText;

const SEALED_PREFIX: &str = "sealed:v1:";
const NONCE_LEN: usize = 24;

/// Why a main key or a sealed value is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the main key must be 32 bytes, base64-encoded")]
    BadKey,
    #[error("a sealed secret could not be opened (wrong main key or damaged value)")]
    Open,
    #[error("a secret is sealed but no main key is configured")]
    NoKey,
    #[error("a secret could not be sealed")]
    Seal,
}

/// The operator's main key. Its `Debug` output never shows the key.
#[derive(Clone)]
pub struct MainKey(XChaCha20Poly1305);

impl std::fmt::Debug for MainKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MainKey(<redacted>)")
    }
}

impl MainKey {
    /// Parses a base64-encoded 32-byte key (`openssl rand -base64 32`).
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SealError::BadKey)?;
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| SealError::BadKey)?;
        Ok(Self(cipher))
    }

    /// Encrypts `plain` with a fresh random nonce.
    pub fn seal(&self, plain: &str) -> Result<String, SealError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .0
            .encrypt(&nonce, plain.as_bytes())
            .map_err(|_| SealError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(out)))
    }
}

/// Seals `plain` when a key is configured, else stores it as is.
pub fn seal(key: Option<&MainKey>, plain: &str) -> Result<String, SealError> {
    match key {
        Some(key) => key.seal(plain),
        None => Ok(plain.to_owned()),
    }
}

/// The plain secret from a stored value, sealed or not.
pub fn open(key: Option<&MainKey>, stored: &str) -> Result<String, SealError> {
    let Some(encoded) = stored.strip_prefix(SEALED_PREFIX) else {
        return Ok(stored.to_owned());
    };
    let key = key.ok_or(SealError::NoKey)?;
    let bytes = STANDARD.decode(encoded).map_err(|_| SealError::Open)?;
    if bytes.len() < NONCE_LEN {
        return Err(SealError::Open);
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let plain = key
        .0
        .decrypt(XNonce::from_slice(nonce), ciphertext)
        .map_err(|_| SealError::Open)?;
    String::from_utf8(plain).map_err(|_| SealError::Open)
}

/// The stored form of an endpoint: every secret it holds sealed (when a key is set): its
/// signing secrets, its client certificate's private key and its OAuth2 client secret.
pub fn seal_endpoint(
    key: Option<&MainKey>,
    endpoint: &crate::model::Endpoint,
) -> Result<crate::model::Endpoint, SealError> {
    let mut stored = endpoint.clone();
    for secret in endpoint_secrets(&mut stored) {
        *secret = seal(key, secret.expose())?.into();
    }
    Ok(stored)
}

/// The endpoint with its secrets opened, from its stored form.
pub fn open_endpoint(
    key: Option<&MainKey>,
    mut endpoint: crate::model::Endpoint,
) -> Result<crate::model::Endpoint, SealError> {
    for secret in endpoint_secrets(&mut endpoint) {
        *secret = open(key, secret.expose())?.into();
    }
    Ok(endpoint)
}

/// Every secret an endpoint record holds, so sealing and opening cannot miss one.
fn endpoint_secrets(endpoint: &mut crate::model::Endpoint) -> Vec<&mut SecretText> {
    let mut secrets = vec![&mut endpoint.secret];
    secrets.extend(endpoint.old_secrets.iter_mut().map(|old| &mut old.secret));
    if let Some(identity) = endpoint.tls.as_mut().and_then(|tls| tls.identity.as_mut()) {
        secrets.push(&mut identity.key);
    }
    if let Some(secret) = endpoint
        .oauth
        .as_mut()
        .and_then(|o| o.client_secret.as_mut())
    {
        secrets.push(secret);
    }
    secrets
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    #[test]
    fn sealed_secrets_round_trip_and_hide_the_plaintext() {
        let key = MainKey::parse(KEY).unwrap();
        let sealed = seal(Some(&key), "whsec_abc").unwrap();
        assert!(sealed.starts_with("sealed:v1:"));
        assert!(!sealed.contains("whsec_abc"));
        assert_ne!(
            sealed,
            seal(Some(&key), "whsec_abc").unwrap(),
            "a fresh nonce each time"
        );
        assert_eq!(open(Some(&key), &sealed).unwrap(), "whsec_abc");
    }

    #[test]
    fn plain_values_still_read_and_wrong_keys_fail() {
        let key = MainKey::parse(KEY).unwrap();
        assert_eq!(open(Some(&key), "whsec_plain").unwrap(), "whsec_plain");
        assert_eq!(open(None, "whsec_plain").unwrap(), "whsec_plain");
        let sealed = key.seal("whsec_abc").unwrap();
        let other = MainKey::parse("YWJjZGVmMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODk=").unwrap();
        assert_eq!(open(Some(&other), &sealed), Err(SealError::Open));
        assert_eq!(open(None, &sealed), Err(SealError::NoKey));
        assert_eq!(MainKey::parse("short").err(), Some(SealError::BadKey));
        assert_eq!(format!("{key:?}"), "MainKey(<redacted>)");
    }

    #[test]
    fn every_secret_of_an_endpoint_is_sealed_and_opened() {
        use crate::outbound::{ClientIdentity, EndpointTls, OAuthClient};
        let key = MainKey::parse(KEY).unwrap();
        let mut endpoint: crate::model::Endpoint = serde_json::from_value(serde_json::json!({
            "id": "ep_1", "appId": "app_1", "uid": null, "url": "https://example.com/",
            "description": "", "eventTypes": null, "channels": null, "disabled": false,
            "metadata": {}, "rateLimit": null, "secret": "whsec_signing",
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        endpoint.tls = Some(EndpointTls {
            identity: Some(ClientIdentity {
                certificate: "CERT".into(),
                key: "PRIVATE-KEY-BYTES".into(),
            }),
            server_ca: None,
            trust_system_roots: false,
        });
        endpoint.oauth = Some(OAuthClient {
            token_url: "https://auth.example/token".into(),
            client_id: "id".into(),
            client_secret: Some("CLIENT-SECRET".into()),
            auth_method: Default::default(),
            scopes: Vec::new(),
            extra_params: Default::default(),
        });
        let stored = seal_endpoint(Some(&key), &endpoint).unwrap();
        let text = serde_json::to_string(&stored).unwrap();
        for secret in ["whsec_signing", "PRIVATE-KEY-BYTES", "CLIENT-SECRET"] {
            assert!(
                !text.contains(secret),
                "{secret} stored in the clear: {text}"
            );
        }
        assert_eq!(open_endpoint(Some(&key), stored).unwrap(), endpoint);
    }
}
