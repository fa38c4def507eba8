//! Accepting a message: the path that carries invariant 1 (no accepted event is lost) and
//! invariant 3 (a repeated idempotency key or `eventId` returns the original message and
//! enqueues nothing).
//!
//! Order of work: (the route has read the app together with its endpoints) claim
//! the idempotency keys → store the message with a pending destination per matching
//! endpoint → publish one task per endpoint and wait for every broker confirm →
//! record the response under the keys → answer 202. Any failure before the confirms removes
//! the message, releases the keys and answers 503, so a 202 is never given for a message
//! whose tasks are not safely queued, and a client retry with the same key starts afresh.

use std::time::Duration;

use hookline_core::model::{App, DeliveryTask, Endpoint, Message, TriggerType};
use hookline_core::ports::IdempotencyClaim;
use tokio::time::Instant;

use crate::error::ApiError;
use crate::state::ApiState;

/// How often a duplicate request re-reads a key another request is still working on.
const IN_PROGRESS_POLL: Duration = Duration::from_millis(20);

/// A message ready to be accepted: validated, minified, with its id.
/// The idempotency key that makes a repeated `eventId` return the original message.
pub fn event_id_key(event_id: &str) -> String {
    format!("eventid:{event_id}")
}

pub struct NewMessage {
    pub message: Message,
    pub retention_secs: u64,
    /// `idem:<header>` and/or `eventid:<eventId>`.
    pub idempotency_keys: Vec<String>,
    /// Deliver at this time (through the retry schedule) instead of now.
    pub deliver_at: Option<time::OffsetDateTime>,
}

/// The result of intake: the JSON text of the `MessageOut` to answer with.
pub struct Accepted(pub String);

/// Accepts `new` for `app`, or returns the original response for a repeated key. The
/// message goes to those of `endpoints` (the app's, as read with it) that accept it.
/// `render` turns the stored message into the response body.
pub async fn accept(
    state: &ApiState,
    app: &App,
    endpoints: &[Endpoint],
    new: NewMessage,
    render: impl Fn(&Message) -> Result<String, ApiError>,
) -> Result<Accepted, ApiError> {
    let keys = &new.idempotency_keys;
    if !keys.is_empty() {
        if let Some(original) = claim_or_wait(state, &app.id, keys, &new.message.id).await? {
            return Ok(Accepted(original));
        }
    }
    let result = store_and_enqueue(state, app, endpoints, &new, &render).await;
    if result.is_ok() {
        state.metrics().messages_accepted.inc();
    }
    match result {
        Ok(body) => {
            if !keys.is_empty() {
                let ttl = state.config().idempotency_ttl.as_secs();
                state
                    .messages()
                    .complete_idempotency(&app.id, keys, &body, ttl)
                    .await?;
            }
            Ok(Accepted(body))
        }
        Err(error) => {
            if !keys.is_empty() {
                if let Err(release) = state
                    .messages()
                    .release_idempotency(&app.id, keys, &new.message.id)
                    .await
                {
                    // The claim expires on its own after the lease; nothing is lost.
                    tracing::warn!(error = %release, "could not release idempotency claim");
                }
            }
            Err(error)
        }
    }
}

/// `None` when this request owns the keys; `Some(body)` when an earlier request with the same
/// keys already finished. Waits (bounded by the lease) while another request is working.
async fn claim_or_wait(
    state: &ApiState,
    app_id: &str,
    keys: &[String],
    owner: &str,
) -> Result<Option<String>, ApiError> {
    let lease = state.config().idempotency_lease;
    let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
    let deadline = Instant::now() + lease + IN_PROGRESS_POLL;
    loop {
        match state
            .messages()
            .claim_idempotency(app_id, keys, owner, lease_ms)
            .await?
        {
            IdempotencyClaim::Claimed => return Ok(None),
            IdempotencyClaim::Done(body) => return Ok(Some(body)),
            IdempotencyClaim::InProgress if Instant::now() < deadline => {
                tokio::time::sleep(IN_PROGRESS_POLL).await;
            }
            IdempotencyClaim::InProgress => {
                return Err(ApiError::Conflict(
                    "a request with this idempotency key is still being processed".into(),
                ))
            }
        }
    }
}

async fn store_and_enqueue(
    state: &ApiState,
    app: &App,
    endpoints: &[Endpoint],
    new: &NewMessage,
    render: &impl Fn(&Message) -> Result<String, ApiError>,
) -> Result<String, ApiError> {
    let message = &new.message;
    // Fail fast while the broker is known to be down: nothing gets written.
    if !state.publisher().is_ready().await {
        return Err(ApiError::Unavailable("broker not connected".into()));
    }
    let targets: Vec<_> = endpoints
        .iter()
        .filter(|ep| ep.accepts(&message.event_type, message.channels.as_deref()))
        .collect();
    let endpoint_ids: Vec<String> = targets.iter().map(|ep| ep.id.clone()).collect();
    let body = render(message)?;
    state
        .messages()
        .insert_message(message, &endpoint_ids, new.retention_secs)
        .await?;
    let traceparent = hookline_trace::current_traceparent();
    let tasks: Vec<DeliveryTask> = targets
        .iter()
        .map(|ep| DeliveryTask {
            traceparent: traceparent.clone(),
            ..DeliveryTask::for_message(message, &ep.id, 1, TriggerType::Scheduled)
        })
        .collect();
    if tasks.is_empty() {
        return Ok(body);
    }
    let queued = match new.deliver_at {
        // Later: the durable schedule holds the tasks; the scheduler queues them when due.
        Some(at) if at > time::OffsetDateTime::now_utc() => state
            .schedule()
            .schedule_all(&tasks, at)
            .await
            .map_err(ApiError::from),
        _ => state
            .publisher()
            .publish(&tasks)
            .await
            .map_err(ApiError::from),
    };
    if let Err(error) = queued {
        if let Err(cleanup) = state.messages().remove_message(&app.id, &message.id).await {
            tracing::error!(msg_id = %message.id, error = %cleanup, "could not remove unaccepted message");
        }
        return Err(error);
    }
    Ok(body)
}
