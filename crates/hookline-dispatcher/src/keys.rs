//! Signing keys read from their stored text once per dispatcher rather than once per
//! delivery. Reading an ed25519 key derives its public half, a scalar multiplication that
//! costs as much as signing itself (about 21 µs each in a release build); an HMAC secret is
//! a base64 decode, cheaper than a lookup, so it is read every time.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use hookline_core::signing::{KeyType, SecretError, SigningKey};

/// Past this many keys the cache starts over (keys of deleted or rotated endpoints leave
/// nothing behind for long).
const CAPACITY: usize = 10_000;

/// Ed25519 keys already read, by their stored text. No `Debug`: it holds secret keys.
#[derive(Default)]
pub(crate) struct KeyCache {
    ed25519: Mutex<HashMap<String, SigningKey>>,
}

impl KeyCache {
    /// What [`SigningKey::parse`] answers for `text`, read once for an ed25519 key.
    pub(crate) fn parse(&self, text: &str) -> Result<SigningKey, SecretError> {
        if KeyType::of_text(text) == KeyType::Hmac {
            return SigningKey::parse(text);
        }
        if let Some(key) = self.lock().get(text) {
            return Ok(key.clone());
        }
        // Read outside the lock: other workers' keys must not wait for this one.
        let key = SigningKey::parse(text)?;
        let mut keys = self.lock();
        if keys.len() >= CAPACITY {
            keys.clear();
        }
        keys.insert(text.to_owned(), key.clone());
        Ok(key)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SigningKey>> {
        self.ed25519.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_what_parse_answers_and_keeps_only_ed25519_keys() {
        let cache = KeyCache::default();
        let ed25519 = SigningKey::generate(KeyType::Ed25519).expose();
        let hmac = SigningKey::generate(KeyType::Hmac).expose();
        for text in [&ed25519, &ed25519, &hmac] {
            assert_eq!(cache.parse(text), SigningKey::parse(text));
        }
        assert_eq!(cache.len(), 1, "the ed25519 key, once");
        for bad in ["whsk_AAAA", "whsec_short", ""] {
            assert_eq!(cache.parse(bad), SigningKey::parse(bad), "{bad}");
        }
        assert_eq!(cache.len(), 1, "nothing kept for what does not parse");
    }

    #[test]
    fn starts_over_at_its_capacity() {
        let cache = KeyCache::default();
        for _ in 0..CAPACITY {
            let text = SigningKey::generate(KeyType::Ed25519).expose();
            cache.parse(&text).expect("a key");
        }
        assert_eq!(cache.len(), CAPACITY);
        let text = SigningKey::generate(KeyType::Ed25519).expose();
        cache.parse(&text).expect("a key");
        assert_eq!(cache.len(), 1);
    }
}
