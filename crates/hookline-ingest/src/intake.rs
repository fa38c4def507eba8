//! Accepting a message: the path that carries invariant 1 (no accepted event is lost) and
//! invariant 3 (a repeated idempotency key or `eventId` returns the original message and
//! enqueues nothing).
//!
//! Order of work: (the route has read the app together with its endpoints) claim
//! the idempotency keys → store the message with a pending destination per matching
//! endpoint and its outbox mark → publish one task per endpoint and wait for every broker
//! confirm → clear the mark and record the response under the keys, in one write → answer
//! 202. A failure before the confirms removes the message, releases the keys and answers
//! 503, so a 202 is never given for a message whose tasks are not safely queued. The read,
//! the store and the clear share their round trips with concurrent requests
//! ([`crate::group_commit`]), as the publish shares its confirms; each request still waits
//! for its own message and its own tasks.
//!
//! The outbox exists because the message store and the broker cannot share a transaction.
//! A store that holds the queue too (embedded mode) can: there the message, its tasks and
//! the response under the keys are one durable write
//! ([`hookline_core::ports::MessageStore::accept_and_enqueue`]), with no mark to clear, and
//! concurrent requests share its commit in the database's writer. A failed write stored
//! nothing, so it answers 503 and releases the keys like a failed store. Tasks due later
//! (`deliverAt`) still take the outbox path, to the schedule.
//!
//! A request can also die anywhere (`kill -9`). Its claim outlives its lease and names its
//! message, so a retry with the same key adopts that message id instead of creating a
//! second message: it answers the original if the tasks were confirmed, queues them if they
//! were not, and stores the message afresh under that id if it was never stored. A message
//! whose client never retries keeps its outbox mark; [`crate::outbox`] queues its tasks
//! once the lease has run out.

use std::time::Duration;

use hookline_core::model::{App, DeliveryTask, Endpoint, Message, MessageStatus, TriggerType};
use hookline_core::ports::{
    AcceptedMessage, ConfirmedMessage, IdempotencyClaim, NewUnconfirmed, QueueError,
};
use tokio::time::Instant;

use crate::error::ApiError;
use crate::state::ApiState;

/// How often a duplicate request re-reads a key another request is still working on.
const IN_PROGRESS_POLL: Duration = Duration::from_millis(20);

/// How often a message waiting for the broker connection looks again.
const BROKER_POLL: Duration = Duration::from_millis(10);

/// The idempotency key that makes a repeated `eventId` return the original message.
pub fn event_id_key(event_id: &str) -> String {
    format!("eventid:{event_id}")
}

/// A message ready to be accepted: validated, minified, with its id.
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
    mut new: NewMessage,
    render: impl Fn(&Message) -> Result<String, ApiError>,
) -> Result<Accepted, ApiError> {
    if !new.idempotency_keys.is_empty() {
        match claim_or_wait(state, &app.id, &new.idempotency_keys, &new.message.id).await? {
            IdempotencyClaim::Done(original) => return Ok(Accepted(original)),
            IdempotencyClaim::Adopted(msg_id) => {
                if let Some(body) = finish_adopted(state, &msg_id, &new, &render).await? {
                    return Ok(Accepted(body));
                }
                // Never stored: store it now, under the id the first request gave it.
                new.message.id = msg_id;
            }
            IdempotencyClaim::Claimed | IdempotencyClaim::InProgress => {}
        }
    }
    let keys = &new.idempotency_keys;
    match store_and_enqueue(state, endpoints, &new, &render).await {
        Ok(Stored { body, confirmed }) => {
            state.metrics().messages_accepted.inc();
            let ttl = state.config().idempotency_ttl.as_secs();
            // A confirmed message was stored, queued and answered under its keys in one write.
            if confirmed {
                return Ok(Accepted(body));
            }
            if keys.is_empty() {
                // Nothing waits on the mark but the sweep, whose lease is seconds away: the
                // answer need not wait for its removal.
                let (state, confirmed) =
                    (state.clone(), confirmation(&new.message, &[], &body, ttl));
                tokio::spawn(async move { confirm(&state, confirmed).await });
            } else {
                // A repeated key waits for the response recorded here: record it first.
                confirm(state, confirmation(&new.message, keys, &body, ttl)).await;
            }
            Ok(Accepted(body))
        }
        Err(Refused { error, removed }) => {
            // A message that could not be removed keeps its outbox mark and is delivered
            // later; keeping the claim makes a retry adopt it rather than make a second one.
            if removed && !keys.is_empty() {
                if let Err(release) = state
                    .messages()
                    .release_idempotency(&app.id, keys, &new.message.id)
                    .await
                {
                    // A retry adopts the claim after the lease; nothing is lost.
                    tracing::warn!(error = %release, "could not release idempotency claim");
                }
            }
            Err(error)
        }
    }
}

/// Clears the outbox mark and records the response under `keys`. The tasks are confirmed,
/// so the message IS accepted whatever happens here: a failure is logged, not answered with
/// a 503. The mark then stays, so the sweep queues the tasks once more after the lease (a
/// duplicate under the same `webhook-id`), and a retry with a key adopts the same message.
async fn confirm(state: &ApiState, confirmed: ConfirmedMessage) {
    let msg_id = confirmed.msg_id.clone();
    if let Err(error) = state.group().confirm_message(confirmed).await {
        tracing::warn!(%msg_id, %error, "accepted message not marked confirmed");
    }
}

/// What [`confirm`] writes for `message`: its mark cleared, `body` under `keys`.
fn confirmation(message: &Message, keys: &[String], body: &str, ttl: u64) -> ConfirmedMessage {
    ConfirmedMessage {
        app_id: message.app_id.clone(),
        msg_id: message.id.clone(),
        keys: keys.to_vec(),
        response: body.to_owned(),
        ttl_secs: ttl,
    }
}

/// Finishes the message of a request that died holding the keys. `Some(body)` when the
/// message exists (its tasks are now confirmed); `None` when it was never stored.
async fn finish_adopted(
    state: &ApiState,
    msg_id: &str,
    new: &NewMessage,
    render: &impl Fn(&Message) -> Result<String, ApiError>,
) -> Result<Option<String>, ApiError> {
    let app_id = &new.message.app_id;
    let Some(message) = state.messages().get_message(app_id, msg_id).await? else {
        return Ok(None);
    };
    let body = render(&message)?;
    if let Some(mark) = state.messages().unconfirmed(app_id, msg_id).await? {
        // Its tasks may or may not be queued: queue them (at worst a duplicate delivery
        // under the same `webhook-id`). A failure leaves the mark and the claim, so the
        // sweep or the next retry finishes the same message.
        crate::outbox::enqueue_stored(state, &message, mark.deliver_at).await?;
    }
    let ttl = state.config().idempotency_ttl.as_secs();
    confirm(
        state,
        confirmation(&message, &new.idempotency_keys, &body, ttl),
    )
    .await;
    tracing::info!(%msg_id, "finished the message of an interrupted request");
    Ok(Some(body))
}

/// `Claimed` or `Adopted` when this request owns the keys; `Done(body)` when an earlier
/// request with the same keys already finished. Waits (bounded by the lease) while another
/// request is working.
async fn claim_or_wait(
    state: &ApiState,
    app_id: &str,
    keys: &[String],
    owner: &str,
) -> Result<IdempotencyClaim, ApiError> {
    let lease = state.config().idempotency_lease;
    let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
    let keep_secs = state.config().idempotency_ttl.as_secs();
    let deadline = Instant::now() + lease + IN_PROGRESS_POLL;
    loop {
        match state
            .messages()
            .claim_idempotency(app_id, keys, owner, lease_ms, keep_secs)
            .await?
        {
            IdempotencyClaim::InProgress if Instant::now() < deadline => {
                tokio::time::sleep(IN_PROGRESS_POLL).await;
            }
            IdempotencyClaim::InProgress => {
                return Err(ApiError::Conflict(
                    "a request with this idempotency key is still being processed".into(),
                ))
            }
            owned_or_done => return Ok(owned_or_done),
        }
    }
}

/// Why a message was not accepted, and whether it is gone again.
struct Refused {
    error: ApiError,
    removed: bool,
}

impl From<ApiError> for Refused {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            removed: true,
        }
    }
}

/// A stored message whose tasks are queued (or scheduled): the response body, and whether
/// it is recorded under the keys already (no outbox mark to clear).
struct Stored {
    body: String,
    confirmed: bool,
}

/// Stores `new` and queues its tasks: in one write when the store owns the queue and the
/// tasks are due now, else through the outbox (see the module docs).
async fn store_and_enqueue(
    state: &ApiState,
    endpoints: &[Endpoint],
    new: &NewMessage,
    render: &impl Fn(&Message) -> Result<String, ApiError>,
) -> Result<Stored, Refused> {
    let message = &new.message;
    await_broker(state).await?;
    let targets: Vec<_> = endpoints
        .iter()
        .filter(|ep| ep.accepts(&message.event_type, message.channels.as_deref()))
        .collect();
    let traceparent = hookline_trace::current_traceparent();
    let item = AcceptedMessage {
        message: message.clone(),
        endpoint_ids: targets.iter().map(|ep| ep.id.clone()).collect(),
        retention_secs: new.retention_secs,
        tasks: targets
            .iter()
            .map(|ep| DeliveryTask {
                traceparent: traceparent.clone(),
                ..DeliveryTask::for_message(message, &ep.id, 1, TriggerType::Scheduled)
                    .of_endpoint_version(ep)
            })
            .collect(),
        keys: new.idempotency_keys.clone(),
        response: render(message)?,
        ttl_secs: state.config().idempotency_ttl.as_secs(),
    };
    // Tasks due later go to the schedule, and a message joins an ordered endpoint's line
    // before its task is queued: neither is part of this one write.
    let due_now = new
        .deliver_at
        .is_none_or(|at| at <= time::OffsetDateTime::now_utc());
    let ordered = item.tasks.iter().any(|task| task.in_line);
    if due_now && !ordered {
        let written = state.messages().accept_and_enqueue(&item).await;
        if written.map_err(ApiError::from)?.is_some() {
            state.backlog().accepted(&item.tasks);
            return Ok(Stored {
                body: item.response,
                confirmed: true,
            });
        }
    }
    let body = store_then_enqueue(state, item, new.deliver_at).await?;
    Ok(Stored {
        body,
        confirmed: false,
    })
}

/// The outbox path: stores the message with its outbox mark, then queues its tasks; the
/// caller clears the mark. A failure to queue removes the message again.
async fn store_then_enqueue(
    state: &ApiState,
    item: AcceptedMessage,
    deliver_at: Option<time::OffsetDateTime>,
) -> Result<String, Refused> {
    let lease_ms = u64::try_from(state.config().idempotency_lease.as_millis()).unwrap_or(u64::MAX);
    let (app_id, msg_id) = (item.message.app_id.clone(), item.message.id.clone());
    let unconfirmed = NewUnconfirmed {
        message: item.message,
        endpoint_ids: item.endpoint_ids,
        retention_secs: item.retention_secs,
        deliver_at,
        lease_ms,
    };
    state
        .group()
        .insert_unconfirmed(unconfirmed)
        .await
        .map_err(ApiError::from)?;
    if let Err(error) = enqueue(state, &item.tasks, deliver_at).await {
        let removed = match state.messages().remove_message(&app_id, &msg_id).await {
            Ok(()) => {
                crate::lines::leave(state, &item.tasks).await;
                true
            }
            Err(cleanup) => {
                tracing::error!(%msg_id, error = %cleanup, "could not remove unaccepted message");
                false
            }
        };
        return Err(Refused { error, removed });
    }
    Ok(item.response)
}

/// Queues `tasks` now, or puts them all in the durable schedule when `deliver_at` is ahead
/// (the scheduler queues them when due).
pub(crate) async fn enqueue(
    state: &ApiState,
    tasks: &[DeliveryTask],
    deliver_at: Option<time::OffsetDateTime>,
) -> Result<(), ApiError> {
    if tasks.is_empty() {
        return Ok(());
    }
    crate::lines::join(state, tasks, deliver_at)
        .await
        .map_err(ApiError::from)?;
    match deliver_at {
        Some(at) if at > time::OffsetDateTime::now_utc() => state
            .schedule()
            .schedule_all(tasks, at)
            .await
            .map_err(ApiError::from),
        _ => publish_across_reconnects(state, tasks).await,
    }?;
    // Pending from here until a dispatcher concludes them (the backlog view).
    state.backlog().accepted(tasks);
    Ok(())
}

/// Publishes `tasks`; when the connection is lost under the publish, waits for the next
/// one and publishes again, within `broker_wait`. (Tasks the broker took before the loss are
/// then queued twice: a duplicate delivery under the same `webhook-id`.)
async fn publish_across_reconnects(
    state: &ApiState,
    tasks: &[DeliveryTask],
) -> Result<(), ApiError> {
    let deadline = Instant::now() + state.config().broker_wait;
    loop {
        match state.publisher().publish(tasks).await {
            Ok(()) => return Ok(()),
            Err(QueueError::Unavailable(_)) if Instant::now() < deadline => {
                // The connection may not know yet that it is gone: look again shortly.
                tokio::time::sleep(BROKER_POLL).await;
                broker_ready_by(state, deadline).await?;
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Waits up to `broker_wait` for the broker connection (at start, or across a short
/// reconnect) before refusing, so nothing is written for a message that cannot be queued.
async fn await_broker(state: &ApiState) -> Result<(), ApiError> {
    broker_ready_by(state, Instant::now() + state.config().broker_wait).await
}

async fn broker_ready_by(state: &ApiState, deadline: Instant) -> Result<(), ApiError> {
    while !state.publisher().is_ready().await {
        if Instant::now() >= deadline {
            return Err(ApiError::Unavailable("broker not connected".into()));
        }
        tokio::time::sleep(BROKER_POLL).await;
    }
    Ok(())
}

/// The tasks still owed for `message`: one per destination not attempted yet.
pub(crate) async fn pending_tasks(
    state: &ApiState,
    message: &Message,
) -> Result<Vec<DeliveryTask>, ApiError> {
    let destinations = state
        .messages()
        .destinations(&message.app_id, &message.id)
        .await?;
    Ok(destinations
        .iter()
        .filter(|d| d.status == MessageStatus::Pending && d.attempts == 0)
        .map(|d| DeliveryTask::for_message(message, &d.endpoint_id, 1, TriggerType::Scheduled))
        .collect())
}
