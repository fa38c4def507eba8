//! Validated names: every identifier that comes from outside passes through one of these
//! constructors, so the rest of the code can take a `EventTypeName` and know it is sound.
//!
//! The rules are Svix's: `^[a-zA-Z0-9\-_.]+$`, 1 to 256 characters (channels: 128).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an outside value was refused; the API turns it into a 422 naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters long")]
    TooLong { max: usize },
    #[error("may only contain letters, digits, '-', '_' and '.'")]
    BadCharacter,
}

fn check(value: &str, max: usize) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty);
    }
    if value.len() > max {
        return Err(NameError::TooLong { max });
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(NameError::BadCharacter);
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Longest accepted value, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Accepts `value` if it follows the naming rules.
            pub fn parse(value: impl Into<String>) -> Result<Self, NameError> {
                let value = value.into();
                check(&value, Self::MAX_LEN)?;
                Ok(Self(value))
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A user-chosen alias for an application or endpoint (`uid`).
    Uid,
    256
);
name_type!(
    /// An event type such as `invoice.paid`.
    EventTypeName,
    256
);
name_type!(
    /// A producer-chosen message id (`eventId`), unique per application.
    EventId,
    256
);
name_type!(
    /// A free-form channel that endpoints may filter on.
    Channel,
    128
);
name_type!(
    /// A feature flag an event type can require of an app portal session.
    FeatureFlag,
    256
);
name_type!(
    /// The group an event type is shown under.
    GroupName,
    256
);
name_type!(
    /// An id or uid as it appears in a URL path: either a Hookline id or a [`Uid`].
    IdOrUid,
    256
);

/// An idempotency key from the `idempotency-key` header: any visible ASCII, 1 to 256 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Accepts visible ASCII keys up to 256 bytes.
    pub fn parse(value: &str) -> Result<Self, NameError> {
        if value.is_empty() {
            return Err(NameError::Empty);
        }
        if value.len() > 256 {
            return Err(NameError::TooLong { max: 256 });
        }
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(NameError::BadCharacter);
        }
        Ok(Self(value.to_owned()))
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A session id attached to an app portal token (`sessionId`), so "expire all" can revoke
/// one session's tokens: any visible ASCII, 1 to 256 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    /// Accepts visible ASCII up to 256 bytes.
    pub fn parse(value: &str) -> Result<Self, NameError> {
        IdempotencyKey::parse(value).map(|key| Self(key.0))
    }

    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_svix_rules() {
        assert!(EventTypeName::parse("invoice.paid").is_ok());
        assert!(EventTypeName::parse("a-b_c.D9").is_ok());
        assert_eq!(EventTypeName::parse(""), Err(NameError::Empty));
        assert_eq!(EventTypeName::parse("a b"), Err(NameError::BadCharacter));
        assert_eq!(EventTypeName::parse("é"), Err(NameError::BadCharacter));
        assert_eq!(
            Channel::parse("x".repeat(129)),
            Err(NameError::TooLong { max: 128 })
        );
        assert!(Channel::parse("x".repeat(128)).is_ok());
    }

    #[test]
    fn idempotency_keys_are_visible_ascii() {
        assert!(IdempotencyKey::parse("order-42:retry/1").is_ok());
        assert_eq!(IdempotencyKey::parse("a b"), Err(NameError::BadCharacter));
        assert_eq!(IdempotencyKey::parse(""), Err(NameError::Empty));
    }
}
