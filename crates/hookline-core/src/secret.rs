//! Text that must never reach a log: endpoint secrets, the operator's secret, tokens, the
//! main key, service URLs with passwords.
//!
//! [`SecretText`] wraps `secrecy::SecretString`, so the bytes are zeroed when dropped and
//! `Debug` prints `<redacted>`: a record or a settings struct can derive `Debug` and be
//! logged whole. Reading the text takes an explicit [`SecretText::expose`] at the point of use.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;

/// A secret string that redacts itself in `Debug`.
///
/// It serializes as its plain text, because adapters persist records that hold it (the
/// registry seals endpoint secrets under the main key before writing). The HTTP API has its
/// own shapes and never serializes a record.
#[derive(Clone)]
pub struct SecretText(SecretString);

impl SecretText {
    /// Wraps `text`.
    pub fn new(text: impl Into<String>) -> Self {
        Self(SecretString::from(text.into()))
    }

    /// The secret itself, for the one place that needs it (signing, sealing, connecting).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<String> for SecretText {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl From<&str> for SecretText {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Constant-time, so comparing a guess against a secret reveals nothing through timing.
impl PartialEq for SecretText {
    fn eq(&self, other: &Self) -> bool {
        self.expose()
            .as_bytes()
            .ct_eq(other.expose().as_bytes())
            .into()
    }
}

impl Eq for SecretText {}

impl Serialize for SecretText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.expose())
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_and_serde_round_trips() {
        let secret = SecretText::new("whsec_hunter2hunter2");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(&secret)), "Some(<redacted>)");
        let json = serde_json::to_string(&secret).unwrap();
        assert_eq!(json, "\"whsec_hunter2hunter2\"");
        let back: SecretText = serde_json::from_str(&json).unwrap();
        assert_eq!(back, secret);
        assert_ne!(back, SecretText::new("whsec_hunter2hunter3"));
        assert_ne!(back, SecretText::new("whsec_hunter2"));
    }
}
