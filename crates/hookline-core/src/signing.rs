//! Standard Webhooks signing: `whsec_` secrets and `v1,<base64 HMAC-SHA256>` signatures over
//! `"{msg_id}.{timestamp}.{body}"`, and beside them the asymmetric `whsk_` keys signing
//! `v1a,<base64 ed25519>` (see [`crate::asymmetric`]).
//!
//! An endpoint stores the text of a [`SigningKey`] of either type; its owner reads the key's
//! [`SigningKey::public_text`] (the `whsec_` secret itself for HMAC, the `whpk_` public key
//! for ed25519). A delivery's `webhook-signature` holds one entry per key still signing, so
//! a rotation from one type to the other carries a `v1,` and a `v1a,` entry for its grace.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use crate::asymmetric::{Ed25519Public, Ed25519Secret, PUBLIC_PREFIX, SECRET_PREFIX};

const PREFIX: &str = "whsec_";
/// Bytes of randomness in a generated secret (Svix recommends 24).
const GENERATED_LEN: usize = 24;

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("must be base64 (optionally prefixed with whsec_) of 24 to 64 bytes")]
    Malformed,
    #[error("a whsk_ key must be base64 of a 32-byte ed25519 seed or of the 64-byte seed and public key")]
    MalformedEd25519,
    #[error("the public half of this whsk_ key does not belong to its seed")]
    MismatchedPublicHalf,
    #[error("a whpk_ key must be base64 of a 32-byte ed25519 public key")]
    MalformedPublic,
    #[error("a whsk_ secret key signs; receivers verify with its whpk_ public key")]
    SecretKeyForVerifying,
}

/// An endpoint's signing key. Its `Debug` never prints the key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    /// Parses `whsec_<base64>` or bare base64, as Svix accepts.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let encoded = text.strip_prefix(PREFIX).unwrap_or(text);
        if !(32..=100).contains(&encoded.len()) {
            return Err(SecretError::Malformed);
        }
        let bytes = STANDARD
            .decode(encoded)
            .map_err(|_| SecretError::Malformed)?;
        if !(24..=75).contains(&bytes.len()) {
            return Err(SecretError::Malformed);
        }
        Ok(Self(bytes))
    }

    /// A fresh random secret.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; GENERATED_LEN];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The `whsec_<base64>` form shown to the endpoint's owner.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// The Standard Webhooks signature of one attempt: `v1,<base64>`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mac = self.signed_content_mac(msg_id, timestamp, body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// The HMAC over the signed content `{msg_id}.{timestamp}.{body}`, before finalising:
    /// signing encodes it, verifying compares it in constant time.
    fn signed_content_mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

/// The two kinds of key an endpoint may sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// A shared `whsec_` secret, `v1,` HMAC-SHA256 entries.
    Hmac,
    /// A `whsk_` secret key, `v1a,` ed25519 entries verified with its `whpk_` public key.
    Ed25519,
}

impl KeyType {
    /// The type of a key's stored text, by its prefix alone (`whsk_`: ed25519), without
    /// reading the key: cheap enough for every endpoint of a list.
    pub fn of_text(text: &str) -> Self {
        if text.starts_with(SECRET_PREFIX) {
            Self::Ed25519
        } else {
            Self::Hmac
        }
    }

    /// `hmac` or `ed25519`, as the API names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hmac => "hmac",
            Self::Ed25519 => "ed25519",
        }
    }
}

/// An endpoint's signing key of either type, read from its stored text. `Debug` redacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigningKey {
    Hmac(SigningSecret),
    Ed25519(Ed25519Secret),
}

impl SigningKey {
    /// `whsk_…` is an ed25519 key; anything else is read as an HMAC secret (`whsec_…` or
    /// bare base64, as Svix accepts).
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        if text.starts_with(SECRET_PREFIX) {
            return Ed25519Secret::parse(text).map(Self::Ed25519);
        }
        SigningSecret::parse(text).map(Self::Hmac)
    }

    /// A fresh random key of `kind`.
    pub fn generate(kind: KeyType) -> Self {
        match kind {
            KeyType::Hmac => Self::Hmac(SigningSecret::generate()),
            KeyType::Ed25519 => Self::Ed25519(Ed25519Secret::generate()),
        }
    }

    pub fn key_type(&self) -> KeyType {
        match self {
            Self::Hmac(_) => KeyType::Hmac,
            Self::Ed25519(_) => KeyType::Ed25519,
        }
    }

    /// The text to store (sealed): `whsec_…` or `whsk_…`.
    pub fn expose(&self) -> String {
        match self {
            Self::Hmac(secret) => secret.expose(),
            Self::Ed25519(secret) => secret.expose(),
        }
    }

    /// What the endpoint's owner may read and give receivers: the `whsec_` secret itself,
    /// or the `whpk_` public key (never the `whsk_` secret key).
    pub fn public_text(&self) -> String {
        match self {
            Self::Hmac(secret) => secret.expose(),
            Self::Ed25519(secret) => secret.public().expose(),
        }
    }

    /// This key's `webhook-signature` entry for one attempt: `v1,…` or `v1a,…`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        match self {
            Self::Hmac(secret) => secret.sign(msg_id, timestamp, body),
            Self::Ed25519(secret) => secret.sign(msg_id, timestamp, body),
        }
    }
}

/// What a receiver verifies with: the shared HMAC secret, or an ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyKey {
    Hmac(SigningSecret),
    Ed25519(Ed25519Public),
}

impl VerifyKey {
    /// `whpk_…` is an ed25519 public key; a `whsk_` secret key is refused (receivers must not
    /// hold it); anything else is read as an HMAC secret.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        if text.starts_with(PUBLIC_PREFIX) {
            return Ed25519Public::parse(text).map(Self::Ed25519);
        }
        if text.starts_with(SECRET_PREFIX) {
            return Err(SecretError::SecretKeyForVerifying);
        }
        SigningSecret::parse(text).map(Self::Hmac)
    }

    /// Whether one `webhook-signature` entry is this key's signature of the attempt: `v1,`
    /// entries for an HMAC secret, `v1a,` entries for a public key; others never match.
    fn matches(&self, msg_id: &str, timestamp: i64, body: &[u8], entry: &str) -> bool {
        match self {
            Self::Hmac(secret) => {
                let Some(given) = entry
                    .strip_prefix("v1,")
                    .and_then(|encoded| STANDARD.decode(encoded).ok())
                else {
                    return false;
                };
                secret
                    .signed_content_mac(msg_id, timestamp, body)
                    .verify_slice(&given)
                    .is_ok()
            }
            Self::Ed25519(public) => entry
                .strip_prefix(crate::asymmetric::SIGNATURE_PREFIX)
                .is_some_and(|encoded| public.verifies(msg_id, timestamp, body, encoded)),
        }
    }
}

/// Why a delivery did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the webhook-timestamp is missing or not a number")]
    BadTimestamp,
    #[error("the webhook-timestamp is more than {0} seconds away from now")]
    Stale(i64),
    #[error("no signature matches")]
    Mismatch,
}

/// Checks a delivery the way Standard Webhooks receivers do: the timestamp within
/// `tolerance_secs` of `now`, and one of the space-separated entries matching `key` (`v1,`
/// for an HMAC secret, `v1a,` for an ed25519 public key). The HMAC comparison does not stop
/// at the first differing byte (`verify_slice`).
pub fn verify(
    key: &VerifyKey,
    msg_id: &str,
    timestamp: &str,
    body: &[u8],
    signature_header: &str,
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let at: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::BadTimestamp)?;
    if (now - at).abs() > tolerance_secs {
        return Err(VerifyError::Stale(tolerance_secs));
    }
    if signature_header
        .split(' ')
        .any(|entry| key.matches(msg_id, at, body, entry))
    {
        return Ok(());
    }
    Err(VerifyError::Mismatch)
}

/// Hex HMAC-SHA256 of the raw body alone, keyed by the secret's text exactly as the endpoint
/// owner sees it: the scheme some providers use (`Byl-Signature`, `X-Laabam-Signature`), whose
/// receivers verify with `hash_hmac('sha256', $payload, $secret)`.
pub fn hex_body_signature(secret_text: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret_text.as_bytes())
        .unwrap_or_else(|_| unreachable!());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The `webhook-signature` header value for every key that is still valid: single-space
/// separated `v1,` and `v1a,` entries, the form the reference verifiers accept.
pub fn signature_header<'a>(
    keys: impl IntoIterator<Item = &'a SigningKey>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut header = String::new();
    for key in keys {
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str(&key.sign(msg_id, timestamp, body));
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_webhooks_test_vector() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = secret.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_parse_with_or_without_prefix_and_round_trip() {
        let generated = SigningSecret::generate();
        let text = generated.expose();
        assert!(text.starts_with("whsec_"));
        assert_eq!(SigningSecret::parse(&text).unwrap(), generated);
        assert_eq!(
            SigningSecret::parse(text.trim_start_matches("whsec_")).unwrap(),
            generated
        );
        for bad in [
            "whsec_short",
            "whsec_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
            "",
        ] {
            assert_eq!(
                SigningSecret::parse(bad),
                Err(SecretError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let secret = SigningSecret::generate();
        assert!(!format!("{secret:?}").contains(&secret.expose()[6..]));
    }

    #[test]
    fn header_joins_every_secret_with_one_space() {
        let (a, b) = (
            SigningKey::generate(KeyType::Hmac),
            SigningKey::generate(KeyType::Hmac),
        );
        let header = signature_header([&a, &b], "msg_1", 10, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            [a.sign("msg_1", 10, b"{}"), b.sign("msg_1", 10, b"{}")]
        );
    }

    #[test]
    fn a_rotation_across_types_carries_one_entry_of_each() {
        let new = SigningKey::generate(KeyType::Ed25519);
        let old = SigningKey::parse(VECTOR_SECRET).unwrap();
        let header = signature_header([&new, &old], VECTOR_ID, 1614265330, VECTOR_BODY);
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2, "{header}");
        assert!(parts[0].starts_with("v1a,"), "{header}");
        assert_eq!(parts[1], VECTOR_SIGNATURE);
        let now = 1_614_265_330;
        for key in [new.public_text(), VECTOR_SECRET.to_owned()] {
            let key = VerifyKey::parse(&key).unwrap();
            assert_eq!(
                verify(
                    &key,
                    VECTOR_ID,
                    "1614265330",
                    VECTOR_BODY,
                    &header,
                    now,
                    300
                ),
                Ok(())
            );
        }
        // Each key matches its own type's entries only.
        let other = SigningKey::generate(KeyType::Ed25519).public_text();
        let other = VerifyKey::parse(&other).unwrap();
        assert_eq!(
            verify(
                &other,
                VECTOR_ID,
                "1614265330",
                VECTOR_BODY,
                &header,
                now,
                300
            ),
            Err(VerifyError::Mismatch)
        );
        let hmac_only = VerifyKey::parse(VECTOR_SECRET).unwrap();
        assert_eq!(
            verify(
                &hmac_only,
                VECTOR_ID,
                "1614265330",
                VECTOR_BODY,
                parts[0],
                now,
                300
            ),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn keys_parse_by_their_prefix_and_show_only_public_text() {
        let hmac = SigningKey::parse(VECTOR_SECRET).unwrap();
        assert_eq!(hmac.key_type(), KeyType::Hmac);
        assert_eq!(hmac.public_text(), VECTOR_SECRET);
        assert_eq!(hmac.expose(), VECTOR_SECRET);
        let ed = SigningKey::generate(KeyType::Ed25519);
        assert_eq!(ed.key_type(), KeyType::Ed25519);
        assert_eq!(KeyType::of_text(&ed.expose()), KeyType::Ed25519);
        assert_eq!(KeyType::of_text(VECTOR_SECRET), KeyType::Hmac);
        assert!(ed.expose().starts_with("whsk_"));
        assert!(ed.public_text().starts_with("whpk_"));
        assert_eq!(SigningKey::parse(&ed.expose()).unwrap(), ed);
        assert_eq!(KeyType::Ed25519.as_str(), "ed25519");
        assert_eq!(KeyType::Hmac.as_str(), "hmac");
        // A public key cannot sign, a secret key is not for receivers.
        assert_eq!(
            SigningKey::parse(&ed.public_text()),
            Err(SecretError::Malformed)
        );
        assert_eq!(
            VerifyKey::parse(&ed.expose()),
            Err(SecretError::SecretKeyForVerifying)
        );
        assert_eq!(
            SigningKey::parse("whsk_AAAA"),
            Err(SecretError::MalformedEd25519)
        );
        let shown = format!("{hmac:?} {ed:?} {:?}", VerifyKey::parse(&ed.public_text()));
        assert!(!shown.contains("MfKQ9r8"), "{shown}");
        assert!(!shown.contains(&ed.expose()[5..15]), "{shown}");
        assert!(!shown.contains(&ed.public_text()[5..15]), "{shown}");
    }

    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn verify_accepts_the_test_vector_and_rejects_tampering() {
        let secret = VerifyKey::parse(VECTOR_SECRET).unwrap();
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        let header = "v1,bm9wZQ== v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let now = 1_614_265_330;
        assert_eq!(
            verify(&secret, id, "1614265330", body, header, now, 300),
            Ok(())
        );
        assert_eq!(
            verify(&secret, id, "1614265330", b"{}", header, now, 300),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(&secret, id, "1614265330", body, header, now + 301, 300),
            Err(VerifyError::Stale(300))
        );
        assert_eq!(
            verify(&secret, id, "soon", body, header, now, 300),
            Err(VerifyError::BadTimestamp)
        );
    }

    #[test]
    fn hex_body_signature_matches_known_value() {
        // Value from Python's hmac module (an independent implementation), keyed by the text.
        assert_eq!(
            hex_body_signature("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", b"{}"),
            "9a72bb54bf9597bcbc56e6d74a760f2bb0bc412fad1af12b594ae334f23bb940"
        );
    }
}
