//! Settling the deliveries of one channel, merged: finished deliveries whose tags are
//! contiguous from the oldest unsettled one are acked by one `basic.ack multiple`, which
//! costs the broker one frame instead of one per task.
//!
//! Every settlement of the channel's accepted deliveries goes through one task, in order,
//! so an ack that covers many tags never overtakes a requeue of one of them (which would
//! ack a task whose outcome was not stored). A finished delivery behind an unfinished older
//! one (a slow endpoint) waits at most [`HOLD`] for the gap to close, then is acked alone,
//! so the prefetch window never fills with finished work.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lapin::acker::Acker;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use tokio::sync::{mpsc, oneshot};

use crate::error::bounded;

/// How long a finished delivery may wait for older ones so that they are acked together.
const HOLD: Duration = Duration::from_millis(2);

/// Most requests the settling task takes at once.
const MOST_AT_ONCE: usize = 1024;

/// The outcome told to the acker: the error's text when settling failed.
type Outcome = Result<(), String>;
type Reply = oneshot::Sender<Outcome>;

enum Settle {
    Ack(u64, Acker, Reply),
    Requeue(u64, Acker, Reply),
}

/// The channel's accepted, unsettled deliveries and the task that settles them.
#[derive(Clone)]
pub(crate) struct AckBook {
    outstanding: Arc<Mutex<BTreeSet<u64>>>,
    requests: mpsc::UnboundedSender<Settle>,
}

impl AckBook {
    /// Starts the settling task of one channel; it ends when the book and every acker
    /// holding it are dropped.
    pub(crate) fn start(limit: Duration) -> Self {
        let (requests, received) = mpsc::unbounded_channel();
        let outstanding = Arc::new(Mutex::new(BTreeSet::new()));
        tokio::spawn(settle_loop(Arc::clone(&outstanding), received, limit));
        Self {
            outstanding,
            requests,
        }
    }

    /// A delivery handed to the caller, to be settled through this book.
    pub(crate) fn accepted(&self, tag: u64) {
        self.outstanding
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(tag);
    }

    pub(crate) async fn ack(&self, tag: u64, acker: Acker) -> Outcome {
        let (reply, answer) = oneshot::channel();
        self.send(Settle::Ack(tag, acker, reply), answer).await
    }

    pub(crate) async fn requeue(&self, tag: u64, acker: Acker) -> Outcome {
        let (reply, answer) = oneshot::channel();
        self.send(Settle::Requeue(tag, acker, reply), answer).await
    }

    async fn send(&self, request: Settle, answer: oneshot::Receiver<Outcome>) -> Outcome {
        const GONE: &str = "the channel's settling task has stopped";
        if self.requests.send(request).is_err() {
            return Err(GONE.to_owned());
        }
        answer.await.unwrap_or_else(|_| Err(GONE.to_owned()))
    }
}

/// Finished deliveries not acked yet, by tag.
type Finished = BTreeMap<u64, (Acker, Reply)>;

async fn settle_loop(
    outstanding: Arc<Mutex<BTreeSet<u64>>>,
    mut received: mpsc::UnboundedReceiver<Settle>,
    limit: Duration,
) {
    let mut finished = Finished::new();
    let mut batch = Vec::new();
    loop {
        let got = if finished.is_empty() {
            received.recv_many(&mut batch, MOST_AT_ONCE).await
        } else {
            match tokio::time::timeout(HOLD, received.recv_many(&mut batch, MOST_AT_ONCE)).await {
                Ok(got) => got,
                Err(_held_long_enough) => {
                    ack_each(&outstanding, std::mem::take(&mut finished), limit).await;
                    continue;
                }
            }
        };
        if got == 0 {
            ack_each(&outstanding, std::mem::take(&mut finished), limit).await;
            return;
        }
        for request in batch.drain(..) {
            match request {
                Settle::Ack(tag, acker, reply) => {
                    finished.insert(tag, (acker, reply));
                }
                Settle::Requeue(tag, acker, reply) => {
                    let nack = acker.nack(BasicNackOptions {
                        multiple: false,
                        requeue: true,
                    });
                    let result = bounded("requeue", limit, nack).await;
                    forget(&outstanding, [tag]);
                    let _ = reply.send(result.map_err(|e| e.to_string()));
                }
            }
        }
        ack_oldest_run(&outstanding, &mut finished, limit).await;
    }
}

/// Acks, with one `multiple` ack, the finished deliveries that run contiguously from the
/// oldest unsettled one.
async fn ack_oldest_run(
    outstanding: &Mutex<BTreeSet<u64>>,
    finished: &mut Finished,
    limit: Duration,
) {
    let run: Vec<u64> = {
        let outstanding = outstanding.lock().unwrap_or_else(PoisonError::into_inner);
        outstanding
            .iter()
            .take_while(|tag| finished.contains_key(tag))
            .copied()
            .collect()
    };
    let Some(last) = run.last().copied() else {
        return;
    };
    let mut replies = Vec::with_capacity(run.len());
    let mut newest = None;
    for tag in &run {
        if let Some((acker, reply)) = finished.remove(tag) {
            replies.push(reply);
            newest = Some(acker);
        }
    }
    let result = match newest {
        Some(acker) => {
            let ack = acker.ack(BasicAckOptions { multiple: true });
            bounded("ack", limit, ack).await.map_err(|e| e.to_string())
        }
        None => Ok(()),
    };
    forget(outstanding, run);
    tracing::trace!(up_to = last, acked = replies.len(), "rabbitmq: acked a run");
    answer(replies, &result);
}

/// Acks each finished delivery on its own (the older ones they waited for are slow).
async fn ack_each(outstanding: &Mutex<BTreeSet<u64>>, finished: Finished, limit: Duration) {
    let tags: Vec<u64> = finished.keys().copied().collect();
    tracing::trace!(acked = tags.len(), "rabbitmq: acked singly");
    let acks = finished.into_values().map(|(acker, reply)| async move {
        let ack = acker.ack(BasicAckOptions::default());
        let result = bounded("ack", limit, ack).await.map_err(|e| e.to_string());
        let _ = reply.send(result);
    });
    futures::future::join_all(acks).await;
    forget(outstanding, tags);
}

fn forget(outstanding: &Mutex<BTreeSet<u64>>, tags: impl IntoIterator<Item = u64>) {
    let mut outstanding = outstanding.lock().unwrap_or_else(PoisonError::into_inner);
    for tag in tags {
        outstanding.remove(&tag);
    }
}

fn answer(replies: Vec<Reply>, result: &Outcome) {
    for reply in replies {
        let _ = reply.send(result.clone());
    }
}
