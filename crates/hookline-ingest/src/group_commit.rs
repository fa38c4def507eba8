//! Group commit on the accept path: concurrent requests share their store round trips.
//!
//! Each `POST …/msg` reads its app with the app's endpoints, stores its message with an
//! outbox mark, and after the broker's confirms clears the mark. Done one request at a time
//! that is a round trip each; here concurrent requests share them:
//! - `Batcher`: a task takes every request waiting in its queue (up to [`MAX_GROUP`]),
//!   writes them with one batch call of the store, answers each its own result, and loops.
//!   A lone request is written at once: a group is whatever queued up while the previous
//!   one was on the wire, never a wait for more. One failed item fails only its request,
//!   unless the whole write failed.
//! - `AppReads`: requests for the same app share one read of it, but only a read that
//!   starts after they arrived, so a request never sees the endpoints of an older read than
//!   its own arrival (an endpoint created before a message is posted receives it). While a
//!   read is on the wire, newcomers wait for the next one, which starts when it ends.
//!
//! Publishing needs nothing here: the broker adapter already sends concurrent `publish`
//! calls together and awaits their confirms together (`hookline-rabbitmq`'s `publisher.rs`),
//! and the embedded queue commits them in its database's group commit. In embedded mode the
//! store, the publish and the clear are one write instead
//! ([`hookline_core::ports::MessageStore::accept_and_enqueue`]), which that same group
//! commit shares between concurrent requests.
//!
//! The invariants of [`crate::intake`] hold per request: each still answers only after its
//! own message is stored and its own tasks are confirmed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use async_trait::async_trait;
use hookline_core::model::{App, Endpoint};
use hookline_core::ports::{ConfirmedMessage, MessageStore, NewUnconfirmed, Registry, StoreError};
use tokio::sync::{mpsc, oneshot};

/// Most messages one batch call writes.
pub const MAX_GROUP: usize = 128;

/// How many requests may wait for a batcher before senders wait to enqueue.
const QUEUE: usize = 4096;

/// An app with its endpoints, as one read found it; shared by the requests of that read.
pub type AppWithEndpoints = Arc<(App, Vec<Endpoint>)>;

/// The batchers of one API.
pub struct GroupCommit {
    inserts: Batcher<Inserts>,
    confirms: Batcher<Confirms>,
    reads: AppReads,
}

impl GroupCommit {
    pub fn new(messages: Arc<dyn MessageStore>, registry: Arc<dyn Registry>) -> Self {
        Self {
            inserts: Batcher::new(Inserts(Arc::clone(&messages))),
            confirms: Batcher::new(Confirms(messages)),
            reads: AppReads::new(registry),
        }
    }

    /// [`MessageStore::insert_unconfirmed`], written together with concurrent calls.
    pub async fn insert_unconfirmed(&self, item: NewUnconfirmed) -> Result<(), StoreError> {
        self.inserts.submit(item).await
    }

    /// [`MessageStore::confirm_message`], written together with concurrent calls.
    pub async fn confirm_message(&self, item: ConfirmedMessage) -> Result<(), StoreError> {
        self.confirms.submit(item).await
    }

    /// [`Registry::app_with_endpoints`], from a read that started after this call did.
    pub async fn app_with_endpoints(
        &self,
        id_or_uid: &str,
    ) -> Result<Option<AppWithEndpoints>, StoreError> {
        self.reads.read(id_or_uid).await
    }
}

/// A batch write of the store.
#[async_trait]
trait GroupWrite: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    /// One result per item, in order; `Err` when the whole write failed.
    async fn write(&self, items: &[Self::Item]) -> Result<Vec<Result<(), StoreError>>, StoreError>;
}

struct Inserts(Arc<dyn MessageStore>);

#[async_trait]
impl GroupWrite for Inserts {
    type Item = NewUnconfirmed;
    async fn write(&self, items: &[Self::Item]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.0.insert_unconfirmed_batch(items).await
    }
}

struct Confirms(Arc<dyn MessageStore>);

#[async_trait]
impl GroupWrite for Confirms {
    type Item = ConfirmedMessage;
    async fn write(&self, items: &[Self::Item]) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        self.0.confirm_messages_batch(items).await
    }
}

/// One request waiting for its item to be written.
struct Job<I> {
    item: I,
    reply: oneshot::Sender<Result<(), StoreError>>,
}

/// Writes items of concurrent callers in groups (see the module docs). Its task starts with
/// the first item (so on the runtime that serves requests) and ends when the batcher is
/// dropped.
struct Batcher<W: GroupWrite> {
    writer: Arc<W>,
    queue: OnceLock<mpsc::Sender<Job<W::Item>>>,
}

impl<W: GroupWrite> Batcher<W> {
    fn new(writer: W) -> Self {
        Self {
            writer: Arc::new(writer),
            queue: OnceLock::new(),
        }
    }

    async fn submit(&self, item: W::Item) -> Result<(), StoreError> {
        let queue = self.queue.get_or_init(|| {
            let (queue, jobs) = mpsc::channel(QUEUE);
            tokio::spawn(run_batches(Arc::clone(&self.writer), jobs));
            queue
        });
        let (reply, answer) = oneshot::channel();
        queue
            .send(Job { item, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the store's group commit stopped".into())
}

/// Takes everything waiting, writes it, answers each caller, and loops until every sender
/// is gone.
async fn run_batches<W: GroupWrite>(writer: Arc<W>, mut jobs: mpsc::Receiver<Job<W::Item>>) {
    let mut taken = Vec::with_capacity(MAX_GROUP);
    while jobs.recv_many(&mut taken, MAX_GROUP).await > 0 {
        let (items, replies): (Vec<_>, Vec<_>) =
            taken.drain(..).map(|job| (job.item, job.reply)).unzip();
        let writer = Arc::clone(&writer);
        // A task of its own, so that a panic in the store fails this group, not the batcher.
        let written = tokio::spawn(async move { writer.write(&items).await }).await;
        let results = match written {
            Ok(Ok(results)) if results.len() == replies.len() => results,
            Ok(Ok(results)) => {
                let error = StoreError::Corrupt(format!(
                    "the store answered {} results for {} items",
                    results.len(),
                    replies.len()
                ));
                vec![Err(error); replies.len()]
            }
            Ok(Err(error)) => vec![Err(error); replies.len()],
            Err(failed) => {
                let error = StoreError::Unavailable(format!("the group write failed: {failed}"));
                vec![Err(error); replies.len()]
            }
        };
        for (reply, result) in replies.into_iter().zip(results) {
            // A caller that went away needs no answer; its item is written either way.
            let _ = reply.send(result);
        }
    }
}

type ReadReply = oneshot::Sender<Result<Option<AppWithEndpoints>, StoreError>>;

/// Coalesced reads of an app with its endpoints (see the module docs).
struct AppReads {
    registry: Arc<dyn Registry>,
    /// Per app id or uid with a read on the wire: the callers waiting for the next read.
    waiting: Arc<Mutex<HashMap<String, Vec<ReadReply>>>>,
}

impl AppReads {
    fn new(registry: Arc<dyn Registry>) -> Self {
        Self {
            registry,
            waiting: Arc::default(),
        }
    }

    async fn read(&self, id_or_uid: &str) -> Result<Option<AppWithEndpoints>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let lead = {
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            match waiting.get_mut(id_or_uid) {
                Some(next) => {
                    next.push(reply);
                    false
                }
                None => {
                    waiting.insert(id_or_uid.to_owned(), vec![reply]);
                    true
                }
            }
        };
        if lead {
            let reader = Reader {
                registry: Arc::clone(&self.registry),
                waiting: Arc::clone(&self.waiting),
                key: id_or_uid.to_owned(),
                finished: false,
            };
            // Its own task: the reads go on for the waiters if this request goes away.
            tokio::spawn(reader.run());
        }
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the app read stopped".into()))?
    }
}

/// The task that reads one app for as long as callers wait for it.
struct Reader {
    registry: Arc<dyn Registry>,
    waiting: Arc<Mutex<HashMap<String, Vec<ReadReply>>>>,
    key: String,
    finished: bool,
}

impl Reader {
    async fn run(mut self) {
        loop {
            let callers = {
                let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
                match waiting.get_mut(&self.key) {
                    Some(next) if !next.is_empty() => std::mem::take(next),
                    _ => {
                        // No one arrived during the last read: the next caller starts one.
                        waiting.remove(&self.key);
                        self.finished = true;
                        return;
                    }
                }
            };
            // Every caller in `callers` arrived before this read starts.
            let found = self
                .registry
                .app_with_endpoints(&self.key)
                .await
                .map(|found| found.map(Arc::new));
            for caller in callers {
                let _ = caller.send(found.clone());
            }
        }
    }
}

impl Drop for Reader {
    /// A reader that panicked drops its waiters (they answer an error) and frees the app for
    /// the next caller, so no one waits forever.
    fn drop(&mut self) {
        if !self.finished {
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            waiting.remove(&self.key);
        }
    }
}
