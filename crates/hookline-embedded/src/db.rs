//! The database: one redb file, one writer thread that commits in groups, and reads on the
//! blocking pool.
//!
//! Why a writer thread: redb runs one write transaction at a time and each durable commit
//! costs an fsync. Operations queue up while a commit is on disk, and the next transaction
//! applies all of them and commits once, so the fsync is shared by every caller waiting for
//! it (group commit) instead of paid by each.
//!
//! Durability: an operation marked [`Durability::Immediate`] returns only after its commit
//! reached the disk. Commits are applied in order and a crash loses only a suffix of the
//! non-durable ones, so an operation may be non-durable when losing it (and everything after
//! it) can only repeat work: a task's ack, circuit state. Everything a caller promises to the
//! outside world (a 202, a stored endpoint) is durable.

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use hookline_core::ports::StoreError;
use redb::{Database, ReadTransaction, ReadableDatabase, TableDefinition, WriteTransaction};

/// Every keyed record: `key` → 8-byte big-endian expiry in unix ms (0: never) + JSON body.
pub(crate) const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
/// When records expire: (unix ms, key). The janitor deletes what is due.
pub(crate) const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("expiry");
/// The delivery queue: sequence number → task JSON.
pub(crate) const QUEUE: TableDefinition<u64, &[u8]> = TableDefinition::new("queue");
/// Tasks the queue could not decode, kept for inspection instead of retried forever.
pub(crate) const DEAD: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters");
/// The retry schedule: key → entry JSON (task, due time or lease).
pub(crate) const SCHEDULED: TableDefinition<&str, &[u8]> = TableDefinition::new("schedule");
/// Schedule entries waiting, by (due unix ms, key).
pub(crate) const DUE: TableDefinition<(i64, &str), ()> = TableDefinition::new("schedule_due");
/// Claimed schedule entries, by (lease end unix ms, key).
pub(crate) const LEASES: TableDefinition<(i64, &str), ()> = TableDefinition::new("schedule_leases");

/// Whether an operation must be on disk before its caller hears back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    Immediate,
    /// Made durable by the next immediate commit, or by the writer within a second.
    Deferred,
}

/// How often the writer makes deferred commits durable when nothing else does.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// redb's page cache. Its default (1 GiB) lets a busy process grow far past what a small VM
/// can spare; the hot pages (queue, schedule, recent records) fit in far less.
const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// A group commit taking longer than this is logged.
const SLOW_COMMIT: Duration = Duration::from_millis(50);
/// Most operations applied in one transaction.
const MAX_GROUP: usize = 2048;

type Completion = Box<dyn FnOnce(Result<(), String>) + Send>;
type Operation = Box<dyn FnOnce(&WriteTransaction) -> Completion + Send>;

struct Job {
    operation: Operation,
    durability: Durability,
}

/// A handle on the open database. Cheap to clone. When the last clone is dropped the
/// writer makes pending commits durable and the file is closed before the drop returns, so
/// the data dir can be opened again right away.
#[derive(Clone)]
pub(crate) struct Db {
    database: Arc<Database>,
    writer: Arc<Writer>,
}

/// The writer thread and the channel to it.
struct Writer {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel ends the writer's loop; joining waits for its final flush.
        self.jobs.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Db {
    /// Opens (or creates) the database file and starts its writer thread. redb holds an
    /// exclusive lock on the file, so a second process on the same data dir fails here.
    pub(crate) fn open(path: &Path) -> Result<Self, StoreError> {
        let database = Arc::new(
            Database::builder()
                .set_cache_size(CACHE_BYTES)
                .create(path)
                .map_err(unavailable)?,
        );
        let txn = database.begin_write().map_err(unavailable)?;
        txn.open_table(RECORDS).map_err(unavailable)?;
        txn.open_table(EXPIRY).map_err(unavailable)?;
        txn.open_table(QUEUE).map_err(unavailable)?;
        txn.open_table(DEAD).map_err(unavailable)?;
        txn.open_table(SCHEDULED).map_err(unavailable)?;
        txn.open_table(DUE).map_err(unavailable)?;
        txn.open_table(LEASES).map_err(unavailable)?;
        txn.commit().map_err(unavailable)?;
        let (jobs, queue) = mpsc::channel();
        // The thread owns the only other reference to the database, and ends (dropping it)
        // when the channel closes.
        let for_writer = Arc::clone(&database);
        let thread = std::thread::Builder::new()
            .name("hookline-db-writer".into())
            .spawn(move || write_loop(&for_writer, &queue))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer: {e}")))?;
        Ok(Self {
            database,
            writer: Arc::new(Writer {
                jobs: Some(jobs),
                thread: Some(thread),
            }),
        })
    }

    /// Runs `operation` in the next group transaction and answers once it is committed.
    /// An operation that fails must fail before it writes: its transaction still commits
    /// for the others in its group.
    pub(crate) async fn write<R, F>(
        &self,
        durability: Durability,
        operation: F,
    ) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<R, StoreError> + Send + 'static,
    {
        let (done, answer) = tokio::sync::oneshot::channel();
        let operation: Operation = Box::new(move |txn| {
            let result = operation(txn);
            Box::new(move |commit: Result<(), String>| {
                let _ = done.send(match commit {
                    Ok(()) => result,
                    Err(e) => Err(StoreError::Unavailable(e)),
                });
            })
        });
        self.writer
            .jobs
            .as_ref()
            .ok_or_else(writer_gone)?
            .send(Job {
                operation,
                durability,
            })
            .map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }

    /// Runs `read` on a consistent snapshot, off the async workers.
    pub(crate) async fn read<R, F>(&self, read: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<R, StoreError> + Send + 'static,
    {
        let database = Arc::clone(&self.database);
        tokio::task::spawn_blocking(move || {
            let txn = database.begin_read().map_err(unavailable)?;
            read(&txn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }
}

impl Db {
    /// Runs `read` on a snapshot on the calling thread: for start-up, before tasks run.
    pub(crate) fn read_blocking<R>(
        &self,
        read: impl FnOnce(&ReadTransaction) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let txn = self.database.begin_read().map_err(unavailable)?;
        read(&txn)
    }
}

fn write_loop(database: &Database, queue: &mpsc::Receiver<Job>) {
    let mut unflushed = false;
    loop {
        let first = if unflushed {
            match queue.recv_timeout(FLUSH_EVERY) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // Nothing came for a while: make the deferred commits durable.
                    if let Err(e) = commit_group(database, Vec::new(), true) {
                        tracing::warn!(error = %e, "embedded store: flush failed");
                    } else {
                        unflushed = false;
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match queue.recv() {
                Ok(job) => job,
                Err(_) => break,
            }
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let durable = group
            .iter()
            .any(|job| job.durability == Durability::Immediate);
        if let Err(e) = commit_group(database, group, durable) {
            tracing::warn!(error = %e, "embedded store: commit failed");
        }
        unflushed = !durable;
    }
    // Every handle is gone: make what is pending durable before the thread ends.
    if unflushed {
        let _ = commit_group(database, Vec::new(), true);
    }
}

/// Applies `group` in one transaction and tells each job how the commit went.
fn commit_group(database: &Database, group: Vec<Job>, durable: bool) -> Result<(), String> {
    let mut txn = match database.begin_write() {
        Ok(txn) => txn,
        Err(e) => {
            let message = e.to_string();
            for job in group {
                // The operation never ran; answer its caller through a completion anyway.
                drop(job.operation);
            }
            return Err(message);
        }
    };
    let level = if durable {
        redb::Durability::Immediate
    } else {
        redb::Durability::None
    };
    if let Err(e) = txn.set_durability(level) {
        return Err(e.to_string());
    }
    let started = std::time::Instant::now();
    let operations = group.len();
    let completions: Vec<Completion> = group.into_iter().map(|job| (job.operation)(&txn)).collect();
    let applied = started.elapsed();
    let outcome = txn.commit().map_err(|e| e.to_string());
    let total = started.elapsed();
    // Every caller in the group waits this long: worth knowing when it is long.
    if total >= SLOW_COMMIT {
        tracing::warn!(
            operations,
            durable,
            apply_ms = applied.as_millis(),
            commit_ms = (total - applied).as_millis(),
            "embedded store: slow commit"
        );
    }
    for completion in completions {
        completion(outcome.clone());
    }
    outcome
}

pub(crate) fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {error}"))
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("embedded store: the writer has stopped".into())
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// Milliseconds since the Unix epoch of `at` (negative before 1970).
pub(crate) fn unix_ms(at: time::OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

pub(crate) fn from_unix_ms(ms: i64) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}
