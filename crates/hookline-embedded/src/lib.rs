//! Hookline's embedded backend: the delivery queue and every store port in one redb file,
//! for a single `hookline serve` process that needs neither RabbitMQ nor Redis.
//!
//! [`EmbeddedStore`] implements the same ports as the Redis adapter, and [`EmbeddedQueue`]
//! the same as the RabbitMQ one, with the same promises:
//! - at-least-once: a task leaves the queue only when acked; a task handed to a consumer that
//!   dies (the process is killed) is in the queue again when the database is next opened;
//! - crash-safety: each operation is one redb transaction, and whatever a caller promised
//!   the outside world is on disk before it hears back (see [`db`]);
//! - leases: schedule claims expire exactly as in Redis, so a scheduler that died between
//!   claim and publish loses nothing;
//! - retention: records carry their expiry and a janitor deletes them.
//!
//! What it does not do: serve several processes (redb locks the file), or trim the attempt
//! log per endpoint by count (retention bounds it).

mod access;
mod attempts;
mod background_tasks;
mod backlog;
mod db;
mod fifo;
mod health;
mod keys;
mod messages;
mod queue;
mod records;
mod registry;
mod schedule;
mod settlement;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hookline_core::ports::StoreError;
use hookline_core::sealing::MainKey;

pub use queue::{EmbeddedQueue, EmbeddedSource};

use crate::db::{Db, Durability};

/// Where the database lives and what it seals secrets with.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// The data directory; the database file is `hookline.redb` inside it.
    pub data_dir: PathBuf,
    /// Seals endpoint secrets at rest when set.
    pub main_key: Option<MainKey>,
}

/// The embedded store. Cheap to clone: clones share the database and its writer.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Db,
    main_key: Option<MainKey>,
    local: Arc<health::Local>,
    endpoints: Arc<registry::EndpointCache>,
    /// The lines of ordered endpoints, in memory and written through (see `fifo.rs`).
    lines: Arc<fifo::Lines>,
    /// The queue in the same database, so a message and its tasks can be one write.
    queue: EmbeddedQueue,
    /// The backlog view's totals, in memory (see `backlog.rs`).
    backlog: Arc<std::sync::Mutex<hookline_core::backlog::Ledger>>,
}

/// The database file inside a data directory.
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("hookline.redb")
}

/// Opens the store and its queue, creating the data directory and the database if needed.
/// Fails if another process has the same database open.
pub fn open(config: &EmbeddedConfig) -> Result<(EmbeddedStore, EmbeddedQueue), StoreError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot create the data dir {}: {e}",
            config.data_dir.display()
        ))
    })?;
    let db = Db::open(&database_path(&config.data_dir))?;
    let queue = EmbeddedQueue::open(db.clone())?;
    let local = Arc::new(health::Local::load(&db)?);
    let lines = Arc::new(fifo::Lines::load(&db)?);
    let store = EmbeddedStore {
        db,
        main_key: config.main_key.clone(),
        local,
        endpoints: Arc::default(),
        lines,
        queue: queue.clone(),
        backlog: Arc::default(),
    };
    Ok((store, queue))
}

impl EmbeddedStore {
    /// Deletes expired records until none are due; the binary runs it every few seconds.
    pub async fn expire(&self) -> Result<usize, StoreError> {
        const BATCH: usize = 5_000;
        let mut total = 0;
        loop {
            let removed = self
                .db
                .write(Durability::Deferred, |txn| {
                    records::Writer::open(txn)?.expire(BATCH)
                })
                .await?;
            total += removed;
            if removed < BATCH {
                return Ok(total);
            }
        }
    }

    /// Makes every commit so far durable; for a graceful shutdown, so acks and attempt
    /// records written just before it are not repeated on the next start.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.db.write(Durability::Immediate, |_| Ok(())).await
    }

    /// Whether the database answers a read and still takes writes; what `/readyz` checks in
    /// embedded mode.
    pub async fn check(&self) -> Result<(), StoreError> {
        self.db.writable()?;
        self.db.read(|_| Ok(())).await
    }

    /// Runs [`EmbeddedStore::expire`] every `every` until `stop` resolves.
    pub async fn run_janitor(&self, every: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            if let Err(e) = self.expire().await {
                tracing::warn!(error = %e, "embedded store: expiring records failed");
            }
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }
}

pub(crate) fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}
