//! Standard Webhooks signing: `whsec_` secrets and `v1,<base64 HMAC-SHA256>` signatures over
//! `"{msg_id}.{timestamp}.{body}"`.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

const PREFIX: &str = "whsec_";
/// Bytes of randomness in a generated secret (Svix recommends 24).
const GENERATED_LEN: usize = 24;

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("must be base64 (optionally prefixed with whsec_) of 24 to 64 bytes")]
    Malformed,
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
        let mut mac = self.mac();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }
}

impl fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
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
/// `tolerance_secs` of `now`, and one of the space-separated `v1,` signatures matching.
/// The comparison does not stop at the first differing byte (HMAC's `verify_slice`).
pub fn verify(
    secret: &SigningSecret,
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
    for entry in signature_header.split(' ') {
        let Some(encoded) = entry.strip_prefix("v1,") else {
            continue;
        };
        let Ok(given) = STANDARD.decode(encoded) else {
            continue;
        };
        let mut mac = secret.mac();
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(at.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        if mac.verify_slice(&given).is_ok() {
            return Ok(());
        }
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

/// The `webhook-signature` header value for every secret that is still valid: single-space
/// separated `v1,` entries, the form the reference verifiers accept.
pub fn signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a SigningSecret>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut header = String::new();
    for secret in secrets {
        if !header.is_empty() {
            header.push(' ');
        }
        header.push_str(&secret.sign(msg_id, timestamp, body));
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
        let (a, b) = (SigningSecret::generate(), SigningSecret::generate());
        let header = signature_header([&a, &b], "msg_1", 10, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            [a.sign("msg_1", 10, b"{}"), b.sign("msg_1", 10, b"{}")]
        );
    }

    #[test]
    fn verify_accepts_the_test_vector_and_rejects_tampering() {
        let secret = SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
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
