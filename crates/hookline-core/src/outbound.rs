//! What a delivery presents and trusts beyond its signature, per endpoint: a client
//! certificate (mTLS), the CAs its server's certificate must chain to, and an OAuth2 client
//! whose bearer token it carries.
//!
//! Receivers at banks and insurers often refuse a request that only carries an HMAC. These
//! records say how to satisfy them; the dispatcher's sender and token cache act on them.
//! The private key and the client secret are [`SecretText`]: redacted in `Debug`, and sealed
//! under the main key with the rest of the endpoint's secrets
//! ([`crate::sealing::seal_endpoint`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::secret::SecretText;

/// How a delivery's TLS connection to the endpoint is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointTls {
    /// The client identity presented on every connection: a PEM certificate chain (leaf
    /// first) and its PEM private key. `None`: no client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<ClientIdentity>,
    /// PEM CA certificates the server's certificate may chain to. `None`: the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ca: Option<String>,
    /// With `server_ca` set, whether the system roots are trusted as well (`false`: only
    /// `server_ca`, the usual wish of a receiver with a private CA).
    #[serde(default)]
    pub trust_system_roots: bool,
}

/// A client certificate and its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientIdentity {
    /// PEM certificates, leaf first.
    pub certificate: String,
    /// The PEM private key of the leaf; sealed at rest.
    pub key: SecretText,
}

impl EndpointTls {
    /// Identifies the connection identity this configuration makes: two endpoints share
    /// pooled connections only when their fingerprints are equal. A digest, so it can be
    /// kept and compared without holding the key.
    pub fn fingerprint(&self) -> String {
        let mut digest = Sha256::new();
        let mut field = |bytes: &[u8]| {
            digest.update((bytes.len() as u64).to_be_bytes());
            digest.update(bytes);
        };
        match &self.identity {
            Some(identity) => {
                field(b"identity");
                field(identity.certificate.as_bytes());
                field(identity.key.expose().as_bytes());
            }
            None => field(b"anonymous"),
        }
        field(self.server_ca.as_deref().unwrap_or("system").as_bytes());
        field(&[u8::from(self.trust_system_roots)]);
        hex::encode(digest.finalize())
    }
}

/// How the client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OAuthAuthMethod {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1's recommended form).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// An OAuth2 client (client-credentials grant) whose access token every delivery to the
/// endpoint carries as `Authorization: Bearer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OAuthClient {
    /// The authorization server's token endpoint.
    pub token_url: String,
    pub client_id: String,
    /// Sealed at rest; `None` for a client authenticated by id alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<SecretText>,
    #[serde(default)]
    pub auth_method: OAuthAuthMethod,
    /// Sent space-separated as `scope`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Further form parameters of the token request (`audience`, `resource`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_params: BTreeMap<String, String>,
}

impl OAuthClient {
    /// Identifies the token this client would get: a cached token is used only while the
    /// endpoint's client is the one that fetched it.
    pub fn fingerprint(&self) -> String {
        let mut digest = Sha256::new();
        let mut field = |bytes: &[u8]| {
            digest.update((bytes.len() as u64).to_be_bytes());
            digest.update(bytes);
        };
        field(self.token_url.as_bytes());
        field(self.client_id.as_bytes());
        field(
            self.client_secret
                .as_ref()
                .map_or(&b""[..], |s| s.expose().as_bytes()),
        );
        field(&[self.auth_method as u8]);
        for scope in &self.scopes {
            field(scope.as_bytes());
        }
        for (name, value) in &self.extra_params {
            field(name.as_bytes());
            field(value.as_bytes());
        }
        hex::encode(digest.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls() -> EndpointTls {
        EndpointTls {
            identity: Some(ClientIdentity {
                certificate: "-----BEGIN CERTIFICATE-----".into(),
                key: "-----BEGIN PRIVATE KEY-----secretbytes".into(),
            }),
            server_ca: Some("-----BEGIN CERTIFICATE-----ca".into()),
            trust_system_roots: false,
        }
    }

    #[test]
    fn debug_hides_the_key_and_the_client_secret() {
        let client = OAuthClient {
            token_url: "https://auth.example/token".into(),
            client_id: "hookline".into(),
            client_secret: Some("s3cr3t-client".into()),
            auth_method: OAuthAuthMethod::ClientSecretBasic,
            scopes: vec!["webhooks".into()],
            extra_params: BTreeMap::new(),
        };
        let debug = format!("{:?} {client:?}", tls());
        assert!(!debug.contains("secretbytes"), "{debug}");
        assert!(!debug.contains("s3cr3t-client"), "{debug}");
        assert!(!client.fingerprint().contains("s3cr3t"));
    }

    #[test]
    fn fingerprints_differ_by_identity_and_trust() {
        let base = tls();
        let mut other_key = base.clone();
        if let Some(identity) = &mut other_key.identity {
            identity.key = "another key".into();
        }
        let mut roots = base.clone();
        roots.trust_system_roots = true;
        let mut anonymous = base.clone();
        anonymous.identity = None;
        let prints = [&base, &other_key, &roots, &anonymous].map(EndpointTls::fingerprint);
        for (i, a) in prints.iter().enumerate() {
            for b in &prints[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(base.fingerprint(), tls().fingerprint());
    }

    #[test]
    fn records_round_trip_through_serde() {
        let text = serde_json::to_string(&tls()).unwrap();
        let back: EndpointTls = serde_json::from_str(&text).unwrap();
        assert_eq!(back, tls());
    }
}
