//! The consume loop: at most `concurrency` deliveries at once, each settled exactly once.

use std::sync::Arc;
use std::time::Duration;

use hookline_core::ports::{ReceivedTask, TaskSource};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::delivery::Dispatcher;

const STORE_FAILURE_BACKOFF: Duration = Duration::from_millis(500);
const MAX_STORE_FAILURE_BACKOFF: Duration = Duration::from_secs(10);

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Deliveries still running when the grace period ended; their tasks were not acked and
    /// go back to the queue when the connection closes.
    pub abandoned: usize,
}

impl Dispatcher {
    /// Consumes from `source` until `shutdown` fires, then stops taking tasks and gives the
    /// deliveries in flight up to `grace` to finish.
    pub async fn run(
        self: Arc<Self>,
        mut source: Box<dyn TaskSource>,
        shutdown: CancellationToken,
        grace: Duration,
    ) -> Drained {
        let slots = Arc::new(Semaphore::new(self.config().concurrency.max(1)));
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
            in_flight.spawn(async move {
                dispatcher.settle(received, &stopping).await;
                drop(permit);
            });
            // Reap finished deliveries so the set does not grow with every task ever handled.
            while in_flight.try_join_next().is_some() {}
        }
        source.close().await;
        let drained = tokio::time::timeout(grace, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        let abandoned = if drained.is_ok() { 0 } else { in_flight.len() };
        in_flight.abort_all();
        if abandoned > 0 {
            tracing::warn!(
                abandoned,
                "grace period over; unfinished tasks return to the queue"
            );
        }
        Drained { abandoned }
    }

    /// Delivers one received task and acks or requeues it.
    async fn settle(&self, received: ReceivedTask, shutdown: &CancellationToken) {
        let ReceivedTask { task, acker } = received;
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
                Ok(outcome) => {
                    self.metrics.delivery(outcome.name());
                    break acker.ack().await;
                }
                Err(error) => {
                    self.metrics.store_retries.inc();
                    tracing::warn!(msg_id = %task.msg_id, endpoint_id = %task.endpoint_id, %error, ?backoff, "outcome not stored; trying again");
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
}
