//! The consume loop: at most `concurrency` deliveries at once, each settled exactly once.

use std::sync::Arc;
use std::time::Duration;

use hookline_core::ports::{ReceivedTask, TaskAcker, TaskSource};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::delivery::{Attempted, Delivered, Dispatcher};

const STORE_FAILURE_BACKOFF: Duration = Duration::from_millis(500);
const MAX_STORE_FAILURE_BACKOFF: Duration = Duration::from_secs(10);

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Deliveries still running when the grace period ended; their tasks were not acked and
    /// go back to the queue when the connection closes.
    pub abandoned: usize,
}

/// An attempt waiting to be settled in a batch, with its task's acker and the worker slot
/// it still holds (so the dispatcher never holds more than `concurrency` tasks).
struct Unsettled {
    attempted: Box<Attempted>,
    acker: Box<dyn TaskAcker>,
    slot: OwnedSemaphorePermit,
}

impl Dispatcher {
    /// Consumes from `source` until `shutdown` fires, then stops taking tasks and gives the
    /// deliveries in flight up to `grace` to finish.
    ///
    /// Workers admit and send; one settler writes what they finished, a batch per store
    /// round trip: it takes everything that finished while its previous write was under
    /// way (at most `settle_batch`), so a lone attempt is written at once and a busy
    /// dispatcher's batches grow with its load, with no timer.
    pub async fn run(
        self: Arc<Self>,
        mut source: Box<dyn TaskSource>,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> Drained {
        let slots = Arc::new(Semaphore::new(self.config().concurrency.max(1)));
        let (finished, unsettled) = mpsc::unbounded_channel();
        let settler = tokio::spawn(Arc::clone(&self).settler(unsettled, shutdown.clone()));
        let ages = {
            let (dispatcher, stop) = (Arc::clone(&self), shutdown.clone());
            tokio::spawn(async move {
                dispatcher
                    .queue_age
                    .publish(&dispatcher.metrics, stop)
                    .await;
            })
        };
        let mut in_flight = JoinSet::new();
        loop {
            // Take a slot before taking a task, so a busy dispatcher leaves tasks on the queue
            // for other dispatchers instead of holding them in memory.
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = Arc::clone(&slots).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_closed) => break,
                },
            };
            let received = tokio::select! {
                _ = shutdown.cancelled() => break,
                received = source.next() => match received {
                    Some(received) => received,
                    None => break,
                },
            };
            let dispatcher = Arc::clone(&self);
            let stopping = shutdown.clone();
            let finished = finished.clone();
            in_flight.spawn(async move {
                dispatcher
                    .work(received, permit, &finished, &stopping)
                    .await;
            });
            // Reap finished deliveries so the set does not grow with every task ever handled.
            while in_flight.try_join_next().is_some() {}
        }
        source.close().await;
        drop(finished);
        let mut settler = settler;
        let drained = tokio::time::timeout(grace, async {
            while in_flight.join_next().await.is_some() {}
            // Every worker has handed its attempt over (or given up); the settler ends once
            // it has written and acked them all.
            let _ = (&mut settler).await;
        })
        .await;
        let abandoned = if drained.is_ok() {
            0
        } else {
            in_flight.len().max(1)
        };
        in_flight.abort_all();
        settler.abort();
        ages.abort();
        if abandoned > 0 {
            tracing::warn!(
                abandoned,
                "grace period over; unfinished tasks return to the queue"
            );
        }
        Drained { abandoned }
    }

    /// Admits and sends one received task; acks it at once when it ended without an
    /// attempt, otherwise hands the attempt to the settler.
    async fn work(
        &self,
        received: ReceivedTask,
        slot: OwnedSemaphorePermit,
        finished: &mpsc::UnboundedSender<Unsettled>,
        shutdown: &CancellationToken,
    ) {
        let ReceivedTask { task, acker } = received;
        self.stores.backlog.taken(&task);
        self.queue_age.taken(&task);
        self.metrics.in_flight.inc();
        let span = tracing::info_span!(
            "delivery attempt",
            msg_id = %task.msg_id,
            endpoint_id = %task.endpoint_id,
            attempt = task.attempt,
        );
        hookline_trace::continue_trace(&span, task.traceparent.as_deref());
        // While the store is failing, keep the task and try again here rather than requeue
        // it: every requeue counts towards the queue's delivery limit, and a long Redis
        // outage would otherwise dead-letter tasks. Only shutdown gives it back.
        let mut backoff = STORE_FAILURE_BACKOFF;
        let settled = loop {
            match self.deliver(&task).instrument(span.clone()).await {
                Ok(Delivered::Done(outcome)) => {
                    self.metrics.delivery(outcome.name());
                    self.count_settled(&task, outcome);
                    break acker.ack().await;
                }
                Ok(Delivered::Attempted(attempted)) => {
                    let unsettled = Unsettled {
                        attempted,
                        acker,
                        slot,
                    };
                    if let Err(mpsc::error::SendError(lost)) = finished.send(unsettled) {
                        // The settler is gone (shutdown past its grace): the task goes back.
                        break lost.acker.requeue().await;
                    }
                    return;
                }
                Err(error) => {
                    self.metrics.store_retries.inc();
                    tracing::warn!(msg_id = %task.msg_id, endpoint_id = %task.endpoint_id, %error, ?backoff, "task not settled; trying again");
                    tokio::select! {
                        _ = shutdown.cancelled() => break acker.requeue().await,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_STORE_FAILURE_BACKOFF);
                }
            }
        };
        self.metrics.in_flight.dec();
        if let Err(error) = settled {
            // The broker connection is gone: it redelivers the unsettled task by itself.
            tracing::warn!(msg_id = %task.msg_id, %error, "could not settle task");
        }
    }

    /// Writes finished attempts in batches and acks each batch's tasks after its write.
    async fn settler(
        self: Arc<Self>,
        mut unsettled: mpsc::UnboundedReceiver<Unsettled>,
        shutdown: CancellationToken,
    ) {
        let most = self.config().settle_batch.max(1);
        let mut batch = Vec::with_capacity(most);
        while unsettled.recv_many(&mut batch, most).await > 0 {
            self.settle_and_ack(std::mem::take(&mut batch), &shutdown)
                .await;
        }
    }

    /// Passes the turn on for the batch's messages that left their ordered endpoints'
    /// lines, trying again while the store or the queue fails; `false` on shutdown first
    /// (the batch is requeued, and its redelivery leaves again).
    async fn pass_batch_turns(&self, attempts: &[Attempted], shutdown: &CancellationToken) -> bool {
        let leaving = crate::turns::leaving(attempts);
        let mut backoff = STORE_FAILURE_BACKOFF;
        loop {
            match self.pass_turns(&leaving).await {
                Ok(()) => return true,
                Err(error) => {
                    self.metrics.store_retries.inc();
                    tracing::warn!(leaving = leaving.len(), %error, ?backoff, "turns not passed on; trying again");
                    tokio::select! {
                        _ = shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_STORE_FAILURE_BACKOFF);
                }
            }
        }
    }

    /// Settles one batch, trying again while the store fails (the tasks stay unacked), and
    /// acks its tasks once it is written; on shutdown an unwritten batch goes back.
    async fn settle_and_ack(&self, batch: Vec<Unsettled>, shutdown: &CancellationToken) {
        let (attempts, ackers): (Vec<Box<Attempted>>, Vec<_>) = batch
            .into_iter()
            .map(|u| (u.attempted, (u.acker, u.slot)))
            .unzip();
        let attempts: Vec<Attempted> = attempts.into_iter().map(|a| *a).collect();
        let mut backoff = STORE_FAILURE_BACKOFF;
        let outcomes = loop {
            match self.settle_batch(&attempts).await {
                Ok(outcomes) => break Some(outcomes),
                Err(error) => {
                    self.metrics.store_retries.inc();
                    tracing::warn!(attempts = attempts.len(), %error, ?backoff, "attempts not recorded; trying again");
                    tokio::select! {
                        _ = shutdown.cancelled() => break None,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_STORE_FAILURE_BACKOFF);
                }
            }
        };
        let outcomes = match outcomes {
            Some(outcomes) => self
                .pass_batch_turns(&attempts, shutdown)
                .await
                .then_some(outcomes),
            None => None,
        };
        if let (Some(pause), Some(_)) = (self.config().pause_before_ack, &outcomes) {
            tokio::time::sleep(pause).await;
        }
        let settles = ackers.into_iter().enumerate().map(|(at, (acker, slot))| {
            let outcome = outcomes.as_ref().and_then(|o| o.get(at).copied());
            async move {
                let settled = match outcome {
                    Some(outcome) => {
                        self.metrics.delivery(outcome.name());
                        acker.ack().await
                    }
                    None => acker.requeue().await,
                };
                drop(slot);
                self.metrics.in_flight.dec();
                if let Err(error) = settled {
                    // The broker connection is gone: it redelivers the task by itself.
                    tracing::warn!(%error, "could not settle task");
                }
            }
        });
        futures::future::join_all(settles).await;
    }
}
