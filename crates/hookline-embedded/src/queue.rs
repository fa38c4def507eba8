//! The delivery queue: tasks in the `queue` table until acked, handed out in order.
//!
//! Which tasks are ready lives in memory; the table is the truth. A task handed to a
//! consumer is held by that consumer alone (its lease is the process's life): when the
//! process dies unacked tasks are still in the table, and opening the database makes every
//! one of them ready again. That is the at-least-once promise of a broker's unacked
//! deliveries, for a queue that only one process uses.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use hookline_core::model::DeliveryTask;
use hookline_core::ports::{
    QueueError, ReceivedTask, StoreError, TaskAcker, TaskPublisher, TaskSource,
};
use redb::{ReadableTable, ReadableTableMetadata};
use tokio::sync::Notify;

use crate::db::{unavailable, Db, Durability, DEAD, QUEUE};
use crate::records::decode;

/// Publishes to and consumes from the embedded queue. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedQueue {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    ready: Mutex<VecDeque<u64>>,
    arrived: Notify,
    next_seq: AtomicU64,
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
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                ready: Mutex::new(waiting.into()),
                arrived: Notify::new(),
                next_seq: AtomicU64::new(next_seq),
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

    fn make_ready(&self, seqs: impl IntoIterator<Item = u64>, front: bool) {
        let mut ready = self
            .inner
            .ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut added = 0;
        for seq in seqs {
            if front {
                ready.push_front(seq);
            } else {
                ready.push_back(seq);
            }
            added += 1;
        }
        drop(ready);
        for _ in 0..added {
            self.inner.arrived.notify_one();
        }
    }

    fn take_ready(&self) -> Option<u64> {
        self.inner
            .ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }
}

#[async_trait]
impl TaskPublisher for EmbeddedQueue {
    async fn publish(&self, tasks: &[DeliveryTask]) -> Result<(), QueueError> {
        if tasks.is_empty() {
            return Ok(());
        }
        let count = u64::try_from(tasks.len()).unwrap_or(u64::MAX);
        let first = self.inner.next_seq.fetch_add(count, Ordering::Relaxed);
        let bodies = tasks
            .iter()
            .map(crate::encode)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| QueueError::Rejected(e.to_string()))?;
        self.inner
            .db
            .write(Durability::Immediate, move |txn| {
                let mut table = txn.open_table(QUEUE).map_err(unavailable)?;
                for (seq, body) in (first..).zip(&bodies) {
                    table.insert(seq, body.as_slice()).map_err(unavailable)?;
                }
                Ok(())
            })
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))?;
        self.make_ready(first..first + count, false);
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
            let Some(seq) = self.queue.take_ready() else {
                arrived.await;
                continue;
            };
            match self.load(seq).await {
                Ok(Some(task)) => {
                    return Some(ReceivedTask {
                        task,
                        acker: Box::new(EmbeddedAcker {
                            queue: self.queue.clone(),
                            seq,
                        }),
                    })
                }
                Ok(None) => continue,
                Err(e) => {
                    // The database failed to read: keep the task and try again shortly.
                    tracing::warn!(seq, error = %e, "embedded queue: read failed");
                    self.queue.make_ready([seq], true);
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
    seq: u64,
}

#[async_trait]
impl TaskAcker for EmbeddedAcker {
    /// Deferred durability: losing an ack in a crash only delivers the task again, and the
    /// attempt it settles was written before it, so the two are lost together or not at all.
    async fn ack(&self) -> Result<(), QueueError> {
        let seq = self.seq;
        self.queue
            .inner
            .db
            .write(Durability::Deferred, move |txn| {
                txn.open_table(QUEUE)
                    .map_err(unavailable)?
                    .remove(seq)
                    .map_err(unavailable)?;
                Ok(())
            })
            .await
            .map_err(|e| QueueError::Unavailable(e.to_string()))
    }

    async fn requeue(&self) -> Result<(), QueueError> {
        self.queue.make_ready([self.seq], true);
        Ok(())
    }
}
