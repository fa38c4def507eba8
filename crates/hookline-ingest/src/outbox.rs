//! The outbox sweep: queues the tasks of stored messages whose request died before the
//! broker confirmed them (a `kill -9` of ingest, a lost connection), so a message whose
//! client never retries is still delivered.
//!
//! Every stored message carries an outbox mark until its tasks are confirmed
//! ([`hookline_core::ports::MessageStore::insert_unconfirmed`]). A mark older than the
//! idempotency lease belongs to a request that is gone: the sweep takes it under a new lease
//! (so several ingest processes sweep without queuing a message twice on purpose), queues
//! the tasks of the destinations not attempted yet and clears it. Queuing a message whose
//! tasks did reach the broker before the request died delivers it twice, under the same
//! `webhook-id` (at least once).

use std::time::Duration;

use hookline_core::model::Message;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::state::ApiState;

/// Marks taken per sweep step.
const SWEEP_BATCH: usize = 100;

/// Sweeps until `shutdown`, every half of the idempotency lease: a mark is taken at most
/// half a lease after it became due.
pub async fn run(state: ApiState, shutdown: CancellationToken) {
    let every = (state.config().idempotency_lease / 2).max(Duration::from_millis(100));
    loop {
        loop {
            match sweep_once(&state).await {
                Ok(n) if n == SWEEP_BATCH => continue,
                Ok(_) => break,
                Err(error) => {
                    tracing::warn!(%error, "outbox sweep failed; trying again");
                    break;
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

/// One step: takes up to a batch of abandoned marks and queues their messages' tasks.
/// Answers how many marks it took.
pub async fn sweep_once(state: &ApiState) -> Result<usize, ApiError> {
    let lease_ms = u64::try_from(state.config().idempotency_lease.as_millis()).unwrap_or(u64::MAX);
    let marks = state
        .messages()
        .claim_unconfirmed(lease_ms, SWEEP_BATCH)
        .await?;
    for mark in &marks {
        let message = state
            .messages()
            .get_message(&mark.app_id, &mark.msg_id)
            .await?;
        if let Some(message) = &message {
            enqueue_stored(state, message, mark.deliver_at).await?;
            tracing::info!(msg_id = %mark.msg_id, "queued the tasks of an interrupted request");
        }
        // Confirmed now, or gone (expired, deleted with its app): either way, no mark.
        state
            .messages()
            .confirm_message(&mark.app_id, &mark.msg_id, &[], "", 1)
            .await?;
    }
    Ok(marks.len())
}

/// Queues the tasks a stored message still owes (destinations not attempted yet).
pub(crate) async fn enqueue_stored(
    state: &ApiState,
    message: &Message,
    deliver_at: Option<time::OffsetDateTime>,
) -> Result<(), ApiError> {
    // Ordered endpoints' tasks must join their lines: they are made from the endpoints.
    let endpoints = state.registry().endpoints_of_app(&message.app_id).await?;
    let tasks: Vec<_> = crate::intake::pending_tasks(state, message)
        .await?
        .into_iter()
        .map(
            |task| match endpoints.iter().find(|ep| ep.id == task.endpoint_id) {
                Some(endpoint) => task.of_endpoint_version(endpoint),
                None => task,
            },
        )
        .collect();
    crate::intake::enqueue(state, &tasks, deliver_at).await
}
