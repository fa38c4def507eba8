//! Standard Webhooks asymmetric signatures: ed25519 keys and `v1a,<base64 signature>`
//! entries over the same `"{msg_id}.{timestamp}.{body}"` content as the `v1,` HMAC.
//!
//! Receivers verify with the public key alone, so a receiver that is breached cannot forge
//! deliveries, which an HMAC secret shared with it would allow.
//!
//! Text forms:
//! - `whsk_<base64>`, the secret key. Accepted as the 32-byte seed or as the 64-byte
//!   seed‖public key (the libsodium and Svix form; its public half must belong to the seed).
//!   Hookline generates, stores and writes the 64-byte form.
//! - `whpk_<base64>`, the raw 32-byte public key: what the endpoint's owner gives receivers.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use rand::RngCore;

use crate::signing::SecretError;

/// The prefix of an ed25519 secret key's text.
pub const SECRET_PREFIX: &str = "whsk_";
/// The prefix of an ed25519 public key's text.
pub const PUBLIC_PREFIX: &str = "whpk_";
/// The prefix of an ed25519 signature entry in `webhook-signature`.
pub const SIGNATURE_PREFIX: &str = "v1a,";

const SEED_LEN: usize = 32;
const KEYPAIR_LEN: usize = 64;

/// An endpoint's ed25519 secret key. Its `Debug` never prints the key; the seed is zeroed
/// when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Ed25519Secret(SigningKey);

impl Ed25519Secret {
    /// Parses `whsk_<base64>` of the 32-byte seed or the 64-byte seed‖public key.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SecretError::MalformedEd25519)?;
        // Longer than the base64 of 64 bytes cannot be a key; refuse before decoding.
        if encoded.len() > 100 {
            return Err(SecretError::MalformedEd25519);
        }
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::MalformedEd25519)?;
        match bytes.len() {
            SEED_LEN => {
                let mut seed = [0u8; SEED_LEN];
                seed.copy_from_slice(&bytes);
                Ok(Self(SigningKey::from_bytes(&seed)))
            }
            KEYPAIR_LEN => {
                let mut pair = [0u8; KEYPAIR_LEN];
                pair.copy_from_slice(&bytes);
                SigningKey::from_keypair_bytes(&pair)
                    .map(Self)
                    .map_err(|_| SecretError::MismatchedPublicHalf)
            }
            _ => Err(SecretError::MalformedEd25519),
        }
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut seed = [0u8; SEED_LEN];
        rand::rng().fill_bytes(&mut seed);
        Self(SigningKey::from_bytes(&seed))
    }

    /// The `whsk_<base64 of seed‖public>` form, for storing (sealed) only: no API shows it.
    pub fn expose(&self) -> String {
        format!(
            "{SECRET_PREFIX}{}",
            STANDARD.encode(self.0.to_keypair_bytes())
        )
    }

    /// The matching public key.
    pub fn public(&self) -> Ed25519Public {
        Ed25519Public(self.0.verifying_key())
    }

    /// The `v1a,<base64>` entry of one attempt.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let signature = self.sign_raw(&signed_content(msg_id, timestamp, body));
        format!(
            "{SIGNATURE_PREFIX}{}",
            STANDARD.encode(signature.to_bytes())
        )
    }

    fn sign_raw(&self, message: &[u8]) -> Signature {
        self.0.sign(message)
    }
}

impl fmt::Debug for Ed25519Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ed25519Secret(<redacted>)")
    }
}

/// An ed25519 public key, what receivers verify `v1a,` entries with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Ed25519Public(VerifyingKey);

impl Ed25519Public {
    /// Parses `whpk_<base64 of 32 bytes>`; refuses bytes that are not a curve point.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text
            .strip_prefix(PUBLIC_PREFIX)
            .ok_or(SecretError::MalformedPublic)?;
        if encoded.len() > 64 {
            return Err(SecretError::MalformedPublic);
        }
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::MalformedPublic)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| SecretError::MalformedPublic)?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| SecretError::MalformedPublic)
    }

    /// The `whpk_<base64>` form, safe to show.
    pub fn expose(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", STANDARD.encode(self.0.as_bytes()))
    }

    /// Whether `encoded` (the base64 after `v1a,`) is this key's signature of the attempt.
    /// Strict verification: non-canonical and small-order signatures are refused.
    pub fn verifies(&self, msg_id: &str, timestamp: i64, body: &[u8], encoded: &str) -> bool {
        let Ok(bytes) = STANDARD.decode(encoded) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&bytes) else {
            return false;
        };
        self.0
            .verify_strict(&signed_content(msg_id, timestamp, body), &signature)
            .is_ok()
    }
}

/// Redacted like every key type, so no log line tells which key an endpoint has.
impl fmt::Debug for Ed25519Public {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Ed25519Public(<redacted>)")
    }
}

/// `"{msg_id}.{timestamp}.{body}"`, the content both schemes sign.
fn signed_content(msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let timestamp = timestamp.to_string();
    let mut content = Vec::with_capacity(msg_id.len() + timestamp.len() + body.len() + 2);
    content.extend_from_slice(msg_id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(timestamp.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Produced once with Python's `cryptography` (an independent implementation):
    /// `Ed25519PrivateKey.from_private_bytes(bytes(range(32)))`, signing
    /// `b'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}'`, everything base64.
    const SEED_ONLY: &str = "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const KEYPAIR: &str = "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8DoQe/884Qvh1w3RjnS8CZZ+TWMJulDV8d3IZkElUxuA==";
    const PUBLIC: &str = "whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";
    const SIGNATURE: &str = "v1a,yoUrgEkc12aGqm0n4Sydmdz55xJfTz4AsAgieHFjmkR7LJtqVCZOQYzvvHjI5kAey+r4iaBGxTFRrl2iBQxtDQ==";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const BODY: &[u8] = br#"{"test": 2432232314}"#;

    #[test]
    fn rfc_8032_test_vector_1() {
        let seed = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .expect("hex");
        let key = Ed25519Secret::parse(&format!("whsk_{}", STANDARD.encode(&seed))).expect("key");
        assert_eq!(
            hex::encode(key.public().0.as_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            hex::encode(key.sign_raw(b"").to_bytes()),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn standard_webhooks_known_answer() {
        for text in [SEED_ONLY, KEYPAIR] {
            let key = Ed25519Secret::parse(text).expect("key");
            assert_eq!(key.sign(MSG_ID, 1614265330, BODY), SIGNATURE, "{text}");
            assert_eq!(key.public().expose(), PUBLIC);
            // Both forms name the same key, written back as the 64-byte form.
            assert_eq!(key.expose(), KEYPAIR);
        }
        let public = Ed25519Public::parse(PUBLIC).expect("public");
        let encoded = SIGNATURE.trim_start_matches(SIGNATURE_PREFIX);
        assert!(public.verifies(MSG_ID, 1614265330, BODY, encoded));
        assert!(!public.verifies(MSG_ID, 1614265331, BODY, encoded));
        assert!(!public.verifies(MSG_ID, 1614265330, b"{}", encoded));
        assert!(!public.verifies(MSG_ID, 1614265330, BODY, "bm9wZQ=="));
    }

    #[test]
    fn generated_keys_round_trip_through_their_text() {
        let key = Ed25519Secret::generate();
        let text = key.expose();
        assert!(text.starts_with("whsk_"));
        assert_eq!(Ed25519Secret::parse(&text).expect("parse"), key);
        let public = key.public().expose();
        assert_eq!(Ed25519Public::parse(&public).expect("public"), key.public());
        assert_ne!(Ed25519Secret::generate(), key);
    }

    #[test]
    fn malformed_keys_are_refused() {
        // The 64-byte form with another key's public half.
        let mut pair = STANDARD
            .decode(KEYPAIR.trim_start_matches("whsk_"))
            .expect("b64");
        pair[40] ^= 1;
        let mismatched = format!("whsk_{}", STANDARD.encode(&pair));
        assert_eq!(
            Ed25519Secret::parse(&mismatched),
            Err(SecretError::MismatchedPublicHalf)
        );
        let too_short = format!("whsk_{}", STANDARD.encode([7u8; 31]));
        for bad in [
            "",
            "whsk_",
            "whsk_!!!!",
            too_short.as_str(),
            SEED_ONLY.trim_start_matches("whsk_"),
            PUBLIC,
        ] {
            assert_eq!(
                Ed25519Secret::parse(bad),
                Err(SecretError::MalformedEd25519),
                "{bad}"
            );
        }
        for bad in ["", "whpk_", "whpk_AAAA", SEED_ONLY, KEYPAIR] {
            assert_eq!(
                Ed25519Public::parse(bad),
                Err(SecretError::MalformedPublic),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_never_shows_a_key() {
        let key = Ed25519Secret::parse(KEYPAIR).expect("key");
        let shown = format!("{key:?} {:?}", key.public());
        assert!(!shown.contains("AAECAwQF"), "{shown}");
        assert!(!shown.contains("A6EHv"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }
}
