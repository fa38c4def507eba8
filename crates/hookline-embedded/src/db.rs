//! The database: one redb file, one writer thread that commits in groups, and reads on the
//! blocking pool.
//!
//! Why a writer thread: redb runs one write transaction at a time and each durable commit
//! costs an fsync. Operations queue up while a commit is on disk, and the next transaction
//! applies all of them and commits once, so the fsync is shared by every caller waiting for
//! it (group commit) instead of paid by each.
//!
//! Atomicity: an operation that fails writes nothing. Its group's transaction is rolled back
//! and the others are applied again without it, so a failure part way through (a batch insert
//! that stops midway) never commits part of what it wrote, and never fails its group-mates.
//! A failed commit answers every caller in its group with that commit's error.
//!
//! Durability: an operation marked [`Durability::Immediate`] returns only after its commit
//! reached the disk. Commits are applied in order and a crash loses only a suffix of the
//! non-durable ones, so an operation may be non-durable when losing it (and everything after
//! it) can only repeat work: a task's ack, circuit state. Everything a caller promises to the
//! outside world (a 202, a stored endpoint) is durable.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
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
/// The lines of ordered endpoints (see `fifo.rs`): a line's last unscheduled place, by line.
pub(crate) const FIFO_LAST: TableDefinition<&str, i64> = TableDefinition::new("fifo_last");
/// Each message's place in its line (unix µs), by line and message.
pub(crate) const FIFO_PLACES: TableDefinition<&str, i64> = TableDefinition::new("fifo_places");
/// Tasks waiting for their turn (task JSON), by line and message.
pub(crate) const FIFO_WAITING: TableDefinition<&str, &[u8]> = TableDefinition::new("fifo_waiting");
/// When a waiting task was handed out (unix ms), by line and message.
pub(crate) const FIFO_HANDED: TableDefinition<&str, i64> = TableDefinition::new("fifo_handed");

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

/// One caller's operation, waiting in the writer's queue.
struct Job {
    operation: Box<dyn Pending>,
    durability: Durability,
}

/// An operation and the caller waiting for it. It may be applied more than once: when a
/// group-mate fails, the group's transaction is rolled back and applied again without it.
trait Pending: Send {
    /// Applies the operation to `txn`; false when it failed (its writes must not commit).
    fn apply(&mut self, txn: &WriteTransaction) -> bool;
    /// Answers the caller: the operation's own error if it failed, else the commit's outcome.
    fn answer(self: Box<Self>, commit: Result<(), StoreError>);
}

struct Request<R, F> {
    operation: F,
    result: Option<Result<R, StoreError>>,
    done: tokio::sync::oneshot::Sender<Result<R, StoreError>>,
}

impl<R, F> Pending for Request<R, F>
where
    R: Send,
    F: FnMut(&WriteTransaction) -> Result<R, StoreError> + Send,
{
    fn apply(&mut self, txn: &WriteTransaction) -> bool {
        let result = (self.operation)(txn);
        let applied = result.is_ok();
        self.result = Some(result);
        applied
    }

    fn answer(self: Box<Self>, commit: Result<(), StoreError>) {
        let answer = match (self.result, commit) {
            (Some(Err(own)), _) => Err(own),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (_, Err(commit)) => Err(commit),
            (None, Ok(())) => Err(StoreError::Unavailable(
                "embedded store: the operation was never applied".into(),
            )),
        };
        // The caller may have stopped waiting; its operation is done either way.
        let _ = self.done.send(answer);
    }
}

/// A handle on the open database. Cheap to clone. When the last clone is dropped the
/// writer makes pending commits durable and the file is closed before the drop returns, so
/// the data dir can be opened again right away.
#[derive(Clone)]
pub(crate) struct Db {
    database: Arc<Database>,
    writer: Arc<Writer>,
    /// Why the database accepts no more writes, once a write to its file failed.
    broken: Arc<Broken>,
}

/// Set once a write to the file failed (a full disk, a failing device): redb then refuses
/// every later write until the database is reopened, which only a restart does (the queue's
/// in-memory state follows the file).
type Broken = OnceLock<String>;

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
        txn.open_table(FIFO_LAST).map_err(unavailable)?;
        txn.open_table(FIFO_PLACES).map_err(unavailable)?;
        txn.open_table(FIFO_WAITING).map_err(unavailable)?;
        txn.open_table(FIFO_HANDED).map_err(unavailable)?;
        txn.commit().map_err(unavailable)?;
        let (jobs, queue) = mpsc::channel();
        // The thread owns the only other reference to the database, and ends (dropping it)
        // when the channel closes.
        let for_writer = Arc::clone(&database);
        let broken = Arc::new(Broken::new());
        let broken_for_writer = Arc::clone(&broken);
        let thread = std::thread::Builder::new()
            .name("hookline-db-writer".into())
            .spawn(move || write_loop(&for_writer, &queue, &broken_for_writer))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the writer: {e}")))?;
        Ok(Self {
            database,
            writer: Arc::new(Writer {
                jobs: Some(jobs),
                thread: Some(thread),
            }),
            broken,
        })
    }

    /// Fails once the database can take no more writes, saying why; for readiness, so an
    /// orchestrator restarts a process whose every write would fail.
    pub(crate) fn writable(&self) -> Result<(), StoreError> {
        match self.broken.get() {
            Some(why) => Err(StoreError::Unavailable(why.clone())),
            None => Ok(()),
        }
    }

    /// Runs `operation` in the next group transaction and answers once it is committed.
    /// If it fails, nothing it wrote is committed (see the module docs); since it may run
    /// more than once, it must depend only on the transaction and what it captured.
    pub(crate) async fn write<R, F>(
        &self,
        durability: Durability,
        operation: F,
    ) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<R, StoreError> + Send + 'static,
    {
        self.submit(durability, operation).await
    }

    /// [`Db::write`], queued for the writer before this returns: operations submitted one
    /// after the other are applied and committed in that order, so a caller that submits
    /// under a lock of its own writes in the order its in-memory changes were made. The
    /// answer comes once the commit is done.
    pub(crate) fn submit<R, F>(
        &self,
        durability: Durability,
        operation: F,
    ) -> impl std::future::Future<Output = Result<R, StoreError>> + Send + 'static
    where
        R: Send + 'static,
        F: FnMut(&WriteTransaction) -> Result<R, StoreError> + Send + 'static,
    {
        let (done, answer) = tokio::sync::oneshot::channel();
        let operation = Box::new(Request {
            operation,
            result: None,
            done,
        });
        let sent = self
            .writer
            .jobs
            .as_ref()
            .ok_or_else(writer_gone)
            .and_then(|jobs| {
                jobs.send(Job {
                    operation,
                    durability,
                })
                .map_err(|_| writer_gone())
            });
        async move {
            sent?;
            answer.await.map_err(|_| writer_gone())?
        }
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

    /// The live (unexpired) record under `key`, decoded as `T` (`what` names it in errors).
    pub(crate) async fn read_record<T>(
        &self,
        key: String,
        what: &'static str,
    ) -> Result<Option<T>, StoreError>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        self.read(move |txn| {
            let table = txn.open_table(RECORDS).map_err(unavailable)?;
            crate::records::get(&table, &key, now_ms(), what)
        })
        .await
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

fn write_loop(database: &Database, queue: &mpsc::Receiver<Job>, broken: &Broken) {
    let mut unflushed = false;
    loop {
        let first = if unflushed {
            match queue.recv_timeout(FLUSH_EVERY) {
                Ok(job) => job,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // Nothing came for a while: make the deferred commits durable.
                    match commit_group(database, Vec::new(), true, broken) {
                        Ok(()) => unflushed = false,
                        Err(e) => tracing::warn!(error = %e, "embedded store: flush failed"),
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
        match commit_group(database, group, durable, broken) {
            // A durable commit also made every earlier one durable.
            Ok(()) => unflushed = !durable,
            // Nothing new reached the disk: earlier deferred commits still wait for a flush.
            Err(e) => tracing::warn!(error = %e, "embedded store: commit failed"),
        }
    }
    // Every handle is gone: make what is pending durable before the thread ends.
    if unflushed {
        let _ = commit_group(database, Vec::new(), true, broken);
    }
}

/// Applies `group` in one transaction, commits it and answers every job. A job whose
/// operation fails is answered with its own error and taken out, and the transaction is
/// rolled back and the rest applied again without it, so nothing it wrote commits.
fn commit_group(
    database: &Database,
    mut group: Vec<Job>,
    durable: bool,
    broken: &Broken,
) -> Result<(), StoreError> {
    let started = std::time::Instant::now();
    let operations = group.len();
    loop {
        let txn = match begin(database, durable, broken) {
            Ok(txn) => txn,
            Err(e) => return Err(answer_all(group, e)),
        };
        let mut failed = Vec::new();
        for (index, job) in group.iter_mut().enumerate() {
            if !job.operation.apply(&txn) {
                failed.push(index);
            }
        }
        if failed.is_empty() {
            let applied = started.elapsed();
            let outcome = txn
                .commit()
                .map_err(|e| storage_failure("commit", e, broken));
            log_if_slow(started, applied, operations, durable);
            return match outcome {
                Ok(()) => {
                    for job in group {
                        job.operation.answer(Ok(()));
                    }
                    Ok(())
                }
                Err(e) => Err(answer_all(group, e)),
            };
        }
        if let Err(e) = txn.abort() {
            return Err(answer_all(group, storage_failure("rollback", e, broken)));
        }
        for index in failed.into_iter().rev() {
            // It failed: its answer is its own error, whatever the others' commit does.
            group.remove(index).operation.answer(Ok(()));
        }
    }
}

/// A write transaction at the group's durability.
fn begin(
    database: &Database,
    durable: bool,
    broken: &Broken,
) -> Result<WriteTransaction, StoreError> {
    let mut txn = database
        .begin_write()
        .map_err(|e| storage_failure("begin a transaction", e, broken))?;
    let level = if durable {
        redb::Durability::Immediate
    } else {
        redb::Durability::None
    };
    txn.set_durability(level)
        .map_err(|e| storage_failure("set durability", e, broken))?;
    Ok(txn)
}

/// Answers every job of a group that could not commit with `error`, and hands it back.
fn answer_all(group: Vec<Job>, error: StoreError) -> StoreError {
    for job in group {
        job.operation.answer(Err(error.clone()));
    }
    error
}

/// Every caller in the group waits this long: worth knowing when it is long.
fn log_if_slow(started: std::time::Instant, applied: Duration, operations: usize, durable: bool) {
    let total = started.elapsed();
    if total >= SLOW_COMMIT {
        tracing::warn!(
            operations,
            durable,
            apply_ms = applied.as_millis(),
            commit_ms = (total - applied).as_millis(),
            "embedded store: slow commit"
        );
    }
}

/// A storage failure as callers see it. After an I/O error redb refuses every later write
/// (see [`Broken`]): the first one is reported as it is, and from then on every write and
/// the readiness check say that only a restart helps.
fn storage_failure(during: &str, error: impl Into<redb::Error>, broken: &Broken) -> StoreError {
    let error = error.into();
    if matches!(error, redb::Error::Io(_) | redb::Error::PreviousIo) {
        let why = "embedded store: a write to the database failed (is the disk full?) and redb \
                   accepts no more writes until hookline is restarted; everything acknowledged \
                   as durable before it is on disk";
        if broken.set(why.to_owned()).is_ok() {
            tracing::error!(%error, "{why}");
        }
    }
    match error {
        redb::Error::PreviousIo => StoreError::Unavailable(format!(
            "embedded store: cannot {during}: {}",
            broken
                .get()
                .map_or("an earlier write failed", String::as_str)
        )),
        other => StoreError::Unavailable(format!("embedded store: cannot {during}: {other}")),
    }
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

#[cfg(test)]
mod tests {
    use redb::ReadableTable;

    use super::*;

    /// An operation that fails after writing (a batch that stops midway) leaves nothing
    /// behind, and its failure is not its group-mates' failure. Operations are sent together
    /// so that they share groups.
    #[tokio::test]
    async fn a_failed_operation_commits_nothing_and_fails_no_one_else() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(&dir.path().join("test.redb")).expect("open");
        let writes: Vec<_> = (0u64..64)
            .map(|n| {
                let db = db.clone();
                tokio::spawn(async move {
                    db.write(Durability::Deferred, move |txn| {
                        let mut queue = txn.open_table(QUEUE).map_err(unavailable)?;
                        queue.insert(n, b"task".as_slice()).map_err(unavailable)?;
                        if n % 2 == 0 {
                            return Err(StoreError::Conflict("an even number"));
                        }
                        Ok(n)
                    })
                    .await
                })
            })
            .collect();
        for (n, write) in (0u64..).zip(writes) {
            let result = write.await.expect("write task");
            if n % 2 == 0 {
                assert!(
                    matches!(result, Err(StoreError::Conflict(_))),
                    "{n}: its own error"
                );
            } else {
                assert_eq!(result.expect("odd ones commit"), n);
            }
        }
        let stored: Vec<u64> = db
            .read(|txn| {
                let queue = txn.open_table(QUEUE).map_err(unavailable)?;
                let mut keys = Vec::new();
                for row in queue.iter().map_err(unavailable)? {
                    keys.push(row.map_err(unavailable)?.0.value());
                }
                Ok(keys)
            })
            .await
            .expect("read");
        let odd: Vec<u64> = (0u64..64).filter(|n| n % 2 == 1).collect();
        assert_eq!(stored, odd, "only the operations that succeeded are stored");
    }
}
