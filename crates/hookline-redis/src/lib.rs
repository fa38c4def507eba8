//! Hookline's Redis adapter. One [`RedisStore`] implements every store port of
//! `hookline-core`: [`Registry`](hookline_core::ports::Registry),
//! [`MessageStore`](hookline_core::ports::MessageStore),
//! [`AttemptLog`](hookline_core::ports::AttemptLog),
//! [`RetrySchedule`](hookline_core::ports::RetrySchedule) and more, among them
//! [`BacklogLedger`](hookline_core::ports::BacklogLedger) (the backlog view's totals, under
//! the hash tag `{backlog}`).
//!
//! Keyspace (see [`keys`]): per-app keys carry the app id as a hash tag (`hl:{app_…}:…`), the
//! schedule carries `{sched}` and the backlog `{backlog}`, so every script and transaction
//! touches one cluster slot.
//!
//! Architecture invariants:
//! - Ids sort by creation time (`hookline_core::id`), so listings page with lexicographic
//!   ranges over sorted sets whose scores are all zero.
//! - A write that must be atomic (message + pending destinations; attempt + destination
//!   state; schedule claims) is one `MULTI` or one Lua script on one slot.

mod attempts;
mod background_tasks;
mod backlog;
mod connection;
mod fifo;
mod health;
pub mod keys;
mod messages;
mod outbox;
mod paging;
mod ratelimit;
mod registry;
mod schedule;
mod settle;
mod tokens;
mod uids;

use std::time::Duration;

use hookline_core::ports::StoreError;
use hookline_core::sealing::MainKey;

use crate::connection::{Conn, Topology};

pub use keys::Keys;

/// How to reach Redis and how long to wait for it.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// The Redis URL; with `cluster`, comma-separated seed node URLs.
    pub url: String,
    /// Redis Cluster: the client discovers the nodes from the seeds and follows `MOVED` and
    /// `ASK`. Every key a script or pipeline touches shares a hash tag, so all operations
    /// work on one slot.
    pub cluster: bool,
    /// The name of the primary that the Sentinels listed in `url` (comma-separated) watch;
    /// the store connects to whichever node they name primary, and asks again after a
    /// failover.
    pub sentinel_primary: Option<String>,
    /// Key prefix, `hl:` by default; tests use a unique one each.
    pub prefix: String,
    /// Per-command timeout. The crate's own default (500 ms) is too short for large claims.
    pub response_timeout: Duration,
    pub connection_timeout: Duration,
    /// Attempts kept per endpoint before the oldest are trimmed.
    pub max_attempts_per_endpoint: u64,
    /// Seals endpoint secrets at rest when set.
    pub main_key: Option<MainKey>,
    /// How often an ingest process registers an app it writes messages for again in the
    /// outbox sweep's app set (`outbox_apps`); registrations of apps with no outbox marks
    /// are removed after `3 × outbox_refresh` plus the idempotency lease. 60 s by default.
    pub outbox_refresh: Duration,
    /// The delivery log (messages, destinations, attempts) lives in another store (the
    /// PostgreSQL log): this one keeps only outbox marks, idempotency, the schedule, health
    /// and rates, and writes no log records.
    pub log_elsewhere: bool,
}

impl RedisConfig {
    /// Defaults for `url`: prefix `hl:`, 2 s command timeout, 100,000 attempts per endpoint,
    /// 60 s outbox registration refresh.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            cluster: false,
            sentinel_primary: None,
            prefix: "hl:".into(),
            response_timeout: Duration::from_secs(2),
            connection_timeout: Duration::from_secs(2),
            max_attempts_per_endpoint: 100_000,
            main_key: None,
            outbox_refresh: Duration::from_secs(60),
            log_elsewhere: false,
        }
    }
}

/// The Redis-backed store. Cheap to clone: clones share one multiplexed connection (to one
/// Redis, or to each node of a cluster) that reconnects by itself.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    keys: Keys,
    max_attempts_per_endpoint: u64,
    main_key: Option<MainKey>,
    outbox: std::sync::Arc<outbox::Registrations>,
    /// This process's registrations of ordered endpoints' lines in `fifo_lines`.
    lines: std::sync::Arc<outbox::Registrations>,
    log_elsewhere: bool,
}

impl RedisStore {
    /// Connects lazily: a Redis that is down at start-up makes calls fail with
    /// [`StoreError::Unavailable`] until it is back, instead of failing start-up.
    pub fn connect(config: &RedisConfig) -> Result<Self, StoreError> {
        let seeds: Vec<String> = config
            .url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let topology = match (&config.sentinel_primary, config.cluster) {
            (Some(primary), _) => Topology::Sentinel {
                sentinels: &seeds,
                primary,
            },
            (None, true) => Topology::Cluster(&seeds),
            (None, false) => Topology::Single(config.url.as_str()),
        };
        let conn = Conn::open(topology, config.response_timeout, config.connection_timeout)
            .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {e}")))?;
        Ok(Self {
            conn,
            keys: Keys::new(&config.prefix),
            max_attempts_per_endpoint: config.max_attempts_per_endpoint,
            main_key: config.main_key.clone(),
            outbox: std::sync::Arc::new(outbox::Registrations::new(config.outbox_refresh)),
            lines: std::sync::Arc::new(outbox::Registrations::new(config.outbox_refresh)),
            log_elsewhere: config.log_elsewhere,
        })
    }

    /// Round trip to Redis: readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    /// Deletes every key under this store's prefix (test teardown).
    pub async fn delete_all(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let pattern = format!("{}*", self.keys.prefix());
        if conn.is_cluster() {
            // SCAN walks one node; KEYS is sent to every primary and the answers joined.
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(&pattern)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            for key in keys {
                redis::cmd("UNLINK")
                    .arg(&key)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(unavailable)?;
            }
            return Ok(());
        }
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            if !batch.is_empty() {
                redis::cmd("UNLINK")
                    .arg(&batch)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(unavailable)?;
            }
            if next == 0 {
                return Ok(());
            }
            cursor = next;
        }
    }

    fn conn(&self) -> Conn {
        self.conn.clone()
    }
}

pub(crate) fn unavailable(error: redis::RedisError) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Overwrites an existing key, keeping its expiry; `false` when the key had gone meanwhile.
pub(crate) async fn set_keep_ttl(
    conn: &mut Conn,
    key: &str,
    value: &str,
) -> Result<bool, StoreError> {
    let written: Option<String> = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("XX")
        .arg("KEEPTTL")
        .query_async(conn)
        .await
        .map_err(unavailable)?;
    Ok(written.is_some())
}
