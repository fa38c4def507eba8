//! What a dispatcher remembers between deliveries so that a delivery reads nothing: its
//! endpoints, their circuits and their apps' throttles.
//!
//! Endpoints: a copy is used for at most `ttl` after it was read, and is read again sooner
//! when a task carries a newer version of it (the version ingest saw when it accepted the
//! message), so a change made before a message was sent always applies to that message,
//! and any change reaches every dispatcher within `ttl` (retries and tasks already queued).
//!
//! Circuits: each settled batch answers its endpoints' health, and the circuit of an
//! endpoint known closed within `ttl` is not asked again; an open or half-open one, or one
//! not heard of within `ttl`, is asked through the store (which arbitrates the probe), so a
//! circuit another dispatcher opened is honoured here within `ttl`, or at the next batch
//! this dispatcher writes for that endpoint, whichever comes first.
//!
//! Apps' throttles: a copy is used for at most `ttl` after it was read. Tasks carry no
//! version of their app, so a change of `throttleRate` reaches every dispatcher within `ttl`.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use hookline_core::model::Endpoint;
use tokio::time::Instant;

type Key = (String, String);

/// Endpoints by (app id, endpoint id), each with when it was read.
#[derive(Debug)]
pub(crate) struct EndpointCache {
    ttl: Duration,
    entries: Mutex<HashMap<Key, (Option<Endpoint>, Instant)>>,
}

/// Past this many entries the cache drops what has expired, then everything.
const MAX_ENTRIES: usize = 100_000;

impl EndpointCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The remembered endpoint (`Some(None)`: remembered as gone) unless it is older than
    /// the ttl or than `version`.
    pub(crate) fn get(
        &self,
        app_id: &str,
        endpoint_id: &str,
        version: Option<i64>,
    ) -> Option<Option<Endpoint>> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (endpoint, read_at) = entries.get(&(app_id.to_owned(), endpoint_id.to_owned()))?;
        if read_at.elapsed() >= self.ttl {
            return None;
        }
        let stale = match (endpoint, version) {
            (Some(endpoint), Some(version)) => endpoint.version() < version,
            // Gone here, but the task was made from a saved endpoint: read again.
            (None, Some(_)) => true,
            (_, None) => false,
        };
        (!stale).then(|| endpoint.clone())
    }

    pub(crate) fn put(&self, app_id: &str, endpoint_id: &str, endpoint: Option<Endpoint>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        let key = (app_id.to_owned(), endpoint_id.to_owned());
        entries.insert(key, (endpoint, Instant::now()));
    }

    /// Forgets an endpoint this dispatcher changed.
    pub(crate) fn forget(&self, app_id: &str, endpoint_id: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.remove(&(app_id.to_owned(), endpoint_id.to_owned()));
    }
}

/// Each app's throttle (`None`: unthrottled, or the app is gone), by app id, with when it
/// was read.
#[derive(Debug)]
pub(crate) struct AppThrottles {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Option<u16>, Instant)>>,
}

impl AppThrottles {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The remembered throttle (`Some(None)`: remembered as unthrottled) unless it is older
    /// than the ttl.
    pub(crate) fn get(&self, app_id: &str) -> Option<Option<u16>> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (throttle, read_at) = entries.get(app_id)?;
        (read_at.elapsed() < self.ttl).then_some(*throttle)
    }

    pub(crate) fn put(&self, app_id: &str, throttle: Option<u16>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(app_id) {
            let ttl = self.ttl;
            entries.retain(|_, (_, at)| at.elapsed() < ttl);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(app_id.to_owned(), (throttle, Instant::now()));
    }
}

/// Circuits this dispatcher knows to be closed, by (app id, endpoint id), with when it
/// learned so.
#[derive(Debug)]
pub(crate) struct KnownCircuits {
    ttl: Duration,
    closed: Mutex<HashMap<Key, Instant>>,
}

impl KnownCircuits {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            closed: Mutex::new(HashMap::new()),
        }
    }

    /// Whether the circuit is known closed, recently enough to skip asking the store.
    pub(crate) fn is_closed(&self, app_id: &str, endpoint_id: &str) -> bool {
        let closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
        closed
            .get(&(app_id.to_owned(), endpoint_id.to_owned()))
            .is_some_and(|at| at.elapsed() < self.ttl)
    }

    /// Records what the store just said about the circuit.
    pub(crate) fn learn(&self, app_id: &str, endpoint_id: &str, closed: bool) {
        if self.ttl.is_zero() {
            return;
        }
        let key = (app_id.to_owned(), endpoint_id.to_owned());
        let mut known = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
        if !closed {
            known.remove(&key);
            return;
        }
        if known.len() >= MAX_ENTRIES && !known.contains_key(&key) {
            let ttl = self.ttl;
            known.retain(|_, at| at.elapsed() < ttl);
            if known.len() >= MAX_ENTRIES {
                known.clear();
            }
        }
        known.insert(key, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(version_ns: i64) -> Endpoint {
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(version_ns))
            .expect("in range");
        Endpoint {
            id: "ep_1".into(),
            app_id: "app_1".into(),
            uid: None,
            url: "http://127.0.0.1:1/".into(),
            description: String::new(),
            event_types: None,
            channels: None,
            disabled: false,
            metadata: Default::default(),
            rate_limit: None,
            secret: hookline_core::secret::SecretText::from(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
            ),
            old_secrets: Vec::new(),
            headers: Default::default(),
            signature_scheme: Default::default(),
            fifo: false,
            tls: None,
            oauth: None,
            created_at: at,
            updated_at: at,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_endpoint_is_read_again_after_the_ttl_or_for_a_newer_version() {
        let cache = EndpointCache::new(Duration::from_secs(1));
        assert!(cache.get("app_1", "ep_1", None).is_none(), "empty");
        cache.put("app_1", "ep_1", Some(endpoint(1_000)));
        assert!(cache.get("app_1", "ep_1", Some(1_000)).is_some());
        assert!(cache.get("app_1", "ep_1", None).is_some());
        assert!(
            cache.get("app_1", "ep_1", Some(2_000)).is_none(),
            "the task saw a newer endpoint"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(cache.get("app_1", "ep_1", None).is_none(), "expired");
        cache.put("app_1", "ep_1", None);
        assert_eq!(cache.get("app_1", "ep_1", None), Some(None), "gone");
        assert!(cache.get("app_1", "ep_1", Some(1)).is_none());
        cache.forget("app_1", "ep_1");
        assert!(cache.get("app_1", "ep_1", None).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn an_apps_throttle_is_read_again_after_the_ttl() {
        let throttles = AppThrottles::new(Duration::from_secs(1));
        assert_eq!(throttles.get("app_1"), None, "empty");
        throttles.put("app_1", Some(50));
        throttles.put("app_2", None);
        assert_eq!(throttles.get("app_1"), Some(Some(50)));
        assert_eq!(
            throttles.get("app_2"),
            Some(None),
            "remembered as unthrottled"
        );
        tokio::time::advance(Duration::from_millis(999)).await;
        assert_eq!(throttles.get("app_1"), Some(Some(50)));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(throttles.get("app_1"), None, "expired");
        let never = AppThrottles::new(Duration::ZERO);
        never.put("app_1", Some(50));
        assert_eq!(never.get("app_1"), None, "a zero ttl reads every time");
    }

    #[tokio::test(start_paused = true)]
    async fn a_circuit_is_known_closed_only_for_the_ttl() {
        let known = KnownCircuits::new(Duration::from_secs(1));
        assert!(!known.is_closed("a", "e"));
        known.learn("a", "e", true);
        assert!(known.is_closed("a", "e"));
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(known.is_closed("a", "e"));
        known.learn("a", "e", false);
        assert!(!known.is_closed("a", "e"), "opened");
        known.learn("a", "e", true);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!known.is_closed("a", "e"), "expired");
    }
}
