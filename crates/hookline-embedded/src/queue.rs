//! The delivery queue: tasks in the `queue` table until acked, handed out in order within
//! each application, the applications taking turns.
//!
//! Which tasks are ready lives in memory; the table is the truth. A task handed to a
//! consumer is held by that consumer alone (its lease is the process's life): when the
//! process dies unacked tasks are still in the table, and opening the database makes every
//! one of them ready again. That is the at-least-once promise of a broker's unacked
//! deliveries, for a queue that only one process uses.
//!
//! Nothing per delivery needs a read or a write of its own: a task this process published
//! waits in memory with its body (within a bound) and is handed out from there, and the
//! acks of concurrent consumers are removed from the table together, in one write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use async_trait::async_trait;
use hookline_core::fair::FairQueue;
use hookline_core::model::DeliveryTask;
use hookline_core::ports::{
    QueueError, ReceivedTask, StoreError, TaskAcker, TaskPublisher, TaskSource,
};
use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::db::{unavailable, Db, Durability, DEAD, QUEUE};
use crate::records::decode;

/// The largest task (as JSON) kept in memory while it waits; a larger one is read back from
/// the table when it is handed out.
const MAX_HELD_TASK: usize = 64 * 1024;
/// The most task JSON kept in memory at once; past it, waiting tasks are only on disk, so
/// a deep backlog costs disk, not memory.
const MAX_HELD_BYTES: usize = 32 * 1024 * 1024;
/// The most acks removed in one write.
const MAX_ACKS: usize = 4096;

/// Publishes to and consumes from the embedded queue. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedQueue {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    ready: Mutex<Ready>,
    arrived: Notify,
    next_seq: AtomicU64,
    /// Acks waiting for the task that writes them together (started on the first ack).
    acks: Mutex<Option<mpsc::UnboundedSender<PendingAck>>>,
}

/// The tasks ready to hand out: per application in order, the applications taking turns
/// (`FairQueue`), so a flood from one application waits behind itself, not in front of
/// everyone else. A task published by this process waits with its body, so handing it out
/// reads nothing; one found in the table at open (or too large to keep) is read from the
/// table when its turn comes. Tasks whose application is not known without reading them
/// (those found at open, or given back after a failed read) share one line of their own.
#[derive(Default)]
struct Ready {
    /// Boxed, so a task waiting without its body costs its 16 bytes here and no more.
    order: FairQueue<(u64, Option<Box<Held>>)>,
    /// What the bodies held in `order` cost: their JSON size plus [`HELD_OVERHEAD`] each.
    held_bytes: usize,
}

/// The line of tasks whose application is not known until they are read.
const UNKNOWN_APP: &str = "";

/// What a held task costs in memory beyond its JSON size (its allocations, roughly), so
/// the bound holds for many small tasks too.
const HELD_OVERHEAD: usize = 256;

struct Held {
    task: DeliveryTask,
    bytes: usize,
}

impl Ready {
    /// Keeps `task`'s body with it if it is small enough and memory allows.
    fn push_back(&mut self, seq: u64, task: &DeliveryTask, json_bytes: usize) {
        let bytes = json_bytes + HELD_OVERHEAD;
        let keep = json_bytes <= MAX_HELD_TASK && self.held_bytes + bytes <= MAX_HELD_BYTES;
        let held = keep.then(|| {
            self.held_bytes += bytes;
            Box::new(Held {
                task: task.clone(),
                bytes,
            })
        });
        self.order.push_back(&task.app_id, (seq, held));
    }

    fn pop_front(&mut self) -> Option<(u64, Option<DeliveryTask>)> {
        let (_, (seq, held)) = self.order.pop_front()?;
        let task = held.map(|held| {
            self.held_bytes -= held.bytes;
            held.task
        });
        Some((seq, task))
    }
}

/// Tasks encoded for the queue table, under the sequence numbers reserved for them.
pub(crate) struct Encoded {
    pub(crate) first: u64,
    bodies: Vec<Vec<u8>>,
}

impl Encoded {
    /// The tasks' JSON sizes, in order.
    pub(crate) fn sizes(&self) -> Vec<usize> {
        self.bodies.iter().map(Vec::len).collect()
    }

    /// Inserts the tasks into the queue table in `txn`.
    pub(crate) fn insert(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        if self.bodies.is_empty() {
            return Ok(());
        }
        let mut table = txn.open_table(QUEUE).map_err(unavailable)?;
        for (seq, body) in (self.first..).zip(&self.bodies) {
            table.insert(seq, body.as_slice()).map_err(unavailable)?;
        }
        Ok(())
    }
}

struct PendingAck {
    seq: u64,
    done: oneshot::Sender<Result<(), StoreError>>,
}

impl EmbeddedQueue {
    pub(crate) fn open(db: Db) -> Result<Self, StoreError> {
        let waiting: Vec<u64> = db.read_blocking(|txn| {
            let table = txn.open_table(QUEUE).map_err(unavailable)?;
            let mut seqs = Vec::new();
            for entry in table.iter().map_err(unavailable)? {
                seqs.push(entry.map_err(unavailable)?.0.value());
            }
            Ok(seqs)
        })?;
        let next_seq = waiting.last().map_or(1, |last| last + 1);
        if !waiting.is_empty() {
            tracing::info!(
                tasks = waiting.len(),
                "embedded queue: tasks waiting from before"
            );
        }
        let mut ready = Ready::default();
        for seq in waiting {
            ready.order.push_back(UNKNOWN_APP, (seq, None));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                ready: Mutex::new(ready),
                arrived: Notify::new(),
                next_seq: AtomicU64::new(next_seq),
                acks: Mutex::new(None),
            }),
        })
    }

    /// A consumer of the queue; each task goes to one consumer.
    pub fn source(&self) -> EmbeddedSource {
        EmbeddedSource {
            queue: self.clone(),
            closed: false,
        }
    }

    /// Tasks in the queue, handed out or not.
    pub async fn depth(&self) -> Result<u64, StoreError> {
        self.inner
            .db
            .read(|txn| {
                txn.open_table(QUEUE)
                    .map_err(unavailable)?
                    .len()
                    .map_err(unavailable)
            })
            .await
    }

    fn ready(&self) -> MutexGuard<'_, Ready> {
        self.inner
            .ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes a stored task of `app_id` ready again, first in its line, to be read from the
    /// table.
    fn make_ready_again(&self, app_id: &str, seq: u64) {
        self.ready().order.push_front(app_id, (seq, None));
        self.inner.arrived.notify_one();
    }

    /// Encodes `tasks` under sequence numbers reserved for them, for a write that queues
    /// them ([`Encoded::insert`]), which [`EmbeddedQueue::make_published_ready`] follows once
    /// it is committed. Numbers of a write that fails are never used.
    pub(crate) fn encode_tasks(&self, tasks: &[DeliveryTask]) -> Result<Encoded, StoreError> {
        let bodies = tasks
            .iter()
            .map(crate::encode)
            .collect::<Result<Vec<_>, _>>()?;
        let count = u64::try_from(tasks.len()).unwrap_or(u64::MAX);
        let first = self.inner.next_seq.fetch_add(count, Ordering::Relaxed);
        Ok(Encoded { first, bodies })
    }

    /// Makes just-published tasks ready, last in line, with their bodies.
    pub(crate) fn make_published_ready(&self, first: u64, tasks: &[DeliveryTask], sizes: &[usize]) {
        let mut ready = self.ready();
        for ((seq, task), bytes) in (first..).zip(tasks).zip(sizes) {
            ready.push_back(seq, task, *bytes);
        }
        drop(ready);
        for _ in tasks {
            self.inner.arrived.notify_one();
        }
    }

    fn take_ready(&self) -> Option<(u64, Option<DeliveryTask>)> {
        self.ready().pop_front()
    }

    /// Removes the task `seq` from the table, in one write with every other ack waiting.
    async fn ack(&self, seq: u64) -> Result<(), StoreError> {
        let (done, answer) = oneshot::channel();
        let mut ack = PendingAck { seq, done };
        // A second try covers a writer task that ended (its runtime shut down).
        for _ in 0..2 {
            match self.ack_writer().send(ack) {
                Ok(()) => return answer.await.map_err(|_| acks_gone())?,
                Err(mpsc::error::SendError(back)) => ack = back,
            }
        }
        Err(acks_gone())
    }

    /// The channel to the task that writes acks, started if there is none.
    fn ack_writer(&self) -> mpsc::UnboundedSender<PendingAck> {
        let mut acks = self
            .inner
            .acks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = acks.as_ref().filter(|sender| !sender.is_closed()) {
            return sender.clone();
        }
        let (sender, receiver) = mpsc::unbounded_channel();
        // The task holds the queue weakly: dropping the last handle closes the channel,
        // which ends the task, and the database closes with the handle as before.
        tokio::spawn(write_acks(Arc::downgrade(&self.inner), receiver));
        *acks = Some(sender.clone());
        sender
    }
}

/// Writes acks in batches: every ack that arrives while a batch is being written goes into
/// the next one, so concurrent acks share one write job.
async fn write_acks(queue: Weak<Inner>, mut acks: mpsc::UnboundedReceiver<PendingAck>) {
    let mut batch = Vec::new();
    while acks.recv_many(&mut batch, MAX_ACKS).await > 0 {
        let seqs: Vec<u64> = batch.iter().map(|ack| ack.seq).collect();
        let db = queue.upgrade().map(|inner| inner.db.clone());
        let result = match db {
            // Deferred: see `EmbeddedAcker::ack`.
            Some(db) => {
                db.write(Durability::Deferred, move |txn| {
                    let mut table = txn.open_table(QUEUE).map_err(unavailable)?;
                    for seq in &seqs {
                        table.remove(*seq).map_err(unavailable)?;
                    }
                    Ok(())
                })
                .await
            }
            None => Err(acks_gone()),
        };
        for ack in batch.drain(..) {
            // A caller that stopped waiting has its answer either way.
            let _ = ack.done.send(result.clone());
        }
    }
}

fn acks_gone() -> StoreError {
    StoreError::Unavailable("embedded queue: acks are no longer written".into())
}

#[async_trait]
impl TaskPublisher for EmbeddedQueue {
    async fn publish(&self, tasks: &[DeliveryTask]) -> Result<(), QueueError> {
        if tasks.is_empty() {
            return Ok(());
        }
        let encoded = self
            .encode_tasks(tasks)
            .map_err(|e| QueueError::Rejected(e.to_string()))?;
        let (first, sizes) = (encoded.first, encoded.sizes());
        self.inner
            .db
            .write(Durability::Immediate, move |txn| encoded.insert(txn))
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        self.make_published_ready(first, tasks, &sizes);
        Ok(())
    }

    async fn is_ready(&self) -> bool {
        true
    }
}

/// One consumer of the embedded queue.
pub struct EmbeddedSource {
    queue: EmbeddedQueue,
    closed: bool,
}

impl EmbeddedSource {
    /// The task stored under `seq`; an undecodable one is moved to the dead letters.
    async fn load(&self, seq: u64) -> Result<Option<DeliveryTask>, StoreError> {
        let body = self
            .queue
            .inner
            .db
            .read(move |txn| {
                let table = txn.open_table(QUEUE).map_err(unavailable)?;
                let body = table.get(seq).map_err(unavailable)?;
                Ok(body.map(|b| b.value().to_vec()))
            })
            .await?;
        let Some(body) = body else {
            return Ok(None);
        };
        match decode::<DeliveryTask>("queued task", &body) {
            Ok(task) => Ok(Some(task)),
            Err(e) => {
                tracing::error!(seq, error = %e, "embedded queue: undecodable task dead-lettered");
                self.queue
                    .inner
                    .db
                    .write(Durability::Immediate, move |txn| {
                        txn.open_table(DEAD)
                            .map_err(unavailable)?
                            .insert(seq, body.as_slice())
                            .map_err(unavailable)?;
                        txn.open_table(QUEUE)
                            .map_err(unavailable)?
                            .remove(seq)
                            .map_err(unavailable)?;
                        Ok(())
                    })
                    .await?;
                Ok(None)
            }
        }
    }
}

#[async_trait]
impl TaskSource for EmbeddedSource {
    async fn next(&mut self) -> Option<ReceivedTask> {
        loop {
            if self.closed {
                return None;
            }
            let arrived = self.queue.inner.arrived.notified();
            let Some((seq, held)) = self.queue.take_ready() else {
                arrived.await;
                continue;
            };
            let loaded = match held {
                Some(task) => Ok(Some(task)),
                None => self.load(seq).await,
            };
            match loaded {
                Ok(Some(task)) => {
                    let acker = Box::new(EmbeddedAcker {
                        queue: self.queue.clone(),
                        app_id: task.app_id.clone(),
                        seq,
                    });
                    return Some(ReceivedTask { task, acker });
                }
                Ok(None) => continue,
                Err(e) => {
                    // The database failed to read: keep the task and try again shortly.
                    tracing::warn!(seq, error = %e, "embedded queue: read failed");
                    self.queue.make_ready_again(UNKNOWN_APP, seq);
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    }

    async fn close(&mut self) {
        self.closed = true;
    }
}

struct EmbeddedAcker {
    queue: EmbeddedQueue,
    app_id: String,
    seq: u64,
}

#[async_trait]
impl TaskAcker for EmbeddedAcker {
    /// Deferred durability: losing an ack in a crash only delivers the task again, and the
    /// attempt it settles was written before it, so the two are lost together or not at all.
    /// Written with the other acks waiting at the time, never before this call.
    async fn ack(&self) -> Result<(), QueueError> {
        self.queue
            .ack(self.seq)
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))
    }

    /// Back first in line, to be read from the table (requeues are rare: shutdown).
    async fn requeue(&self) -> Result<(), QueueError> {
        self.queue.make_ready_again(&self.app_id, self.seq);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use hookline_core::model::TriggerType;

    use super::*;

    fn task() -> DeliveryTask {
        DeliveryTask {
            msg_id: "msg_1".into(),
            app_id: "app_1".into(),
            endpoint_id: "ep_1".into(),
            attempt: 1,
            trigger: TriggerType::Scheduled,
            event_type: String::new(),
            payload: None,
            traceparent: None,
            rate_slot: false,
            app_slot: false,
            held_since_ms: None,
            endpoint_version: None,
            queued_at_ms: None,
            in_line: false,
        }
    }

    /// Bodies are kept only within both bounds, and handing one out gives its bytes back.
    #[test]
    fn held_bodies_stay_within_their_bounds() {
        let mut ready = Ready::default();
        ready.push_back(1, &task(), MAX_HELD_TASK + 1);
        ready.push_back(2, &task(), MAX_HELD_TASK);
        assert_eq!(ready.held_bytes, MAX_HELD_TASK + HELD_OVERHEAD);
        let mut seq = 3;
        while ready.held_bytes + MAX_HELD_TASK + HELD_OVERHEAD <= MAX_HELD_BYTES {
            ready.push_back(seq, &task(), MAX_HELD_TASK);
            seq += 1;
        }
        ready.push_back(seq, &task(), MAX_HELD_TASK);
        assert!(ready.held_bytes <= MAX_HELD_BYTES);
        let held: Vec<bool> = std::iter::from_fn(|| ready.pop_front())
            .map(|(_, task)| task.is_some())
            .collect();
        assert!(!held[0], "too large to keep");
        assert!(held[1..held.len() - 1].iter().all(|h| *h));
        assert!(!held[held.len() - 1], "past the memory bound");
        assert_eq!(ready.held_bytes, 0);
    }
}
