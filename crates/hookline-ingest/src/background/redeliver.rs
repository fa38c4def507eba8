//! Sending an endpoint messages again: recover (the ones that failed), replay (the ones it
//! never got), bulk replay (the ones sent to it that match filters).
//!
//! The task walks the app's messages in the time range oldest first, queues a manual
//! delivery task for each one selected (a store page at a time), then follows the attempts
//! those tasks make, counting successes, failures and connection errors, and finishes when
//! every one has an outcome. Recover and replay hold a lock per endpoint, so starting either
//! twice, even concurrently, sends each message once; a successful send changes the pair's
//! delivery state, so running it again later sends nothing twice either.

use std::collections::HashMap;
use std::time::Duration;

use hookline_core::id;
use hookline_core::model::{
    DeliveryCounts, DeliveryTask, Endpoint, Message, MessageStatus, TaskData, TriggerType,
};
use hookline_core::outcome::TransportError;
use hookline_core::ports::{PageRequest, StoreError};
use time::OffsetDateTime;

use super::{Failure, Progress};
use crate::routes::messages::MessageFilter;
use crate::state::ApiState;

/// Messages read per page while selecting.
const PAGE: usize = 250;
/// How often outstanding sends are checked.
const POLL: Duration = Duration::from_millis(200);
/// How long the task waits without any send reaching an outcome before it gives up.
const STALL_LIMIT: Duration = Duration::from_secs(600);

/// What to send, where, from which time range.
pub struct Plan {
    pub endpoint: Endpoint,
    pub since: OffsetDateTime,
    /// Messages created after this are left alone (the request's time when not given).
    pub until: OffsetDateTime,
    pub selection: Selection,
}

/// Which messages of the range are sent.
pub enum Selection {
    /// Those whose delivery to the endpoint failed (recover).
    Failed,
    /// Those the endpoint's filters take but that were never routed to it: it did not exist
    /// yet, or was disabled (replay missing).
    Missing,
    /// Those sent to the endpoint that match (bulk replay).
    Matching(BulkFilter),
}

/// The filters of a bulk replay.
#[derive(Debug, Default)]
pub struct BulkFilter {
    /// Event types, channel and tag of the message.
    pub messages: MessageFilter,
    /// The delivery state of the message at the endpoint.
    pub status: Option<WantedStatus>,
    /// The class (0 for no response, 100, …, 500) of its last attempt's status code.
    pub status_code_class: Option<u16>,
}

/// A delivery state a bulk replay asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WantedStatus {
    Is(MessageStatus),
    /// Svix's `canceled` (4): Hookline never cancels a delivery, so nothing matches.
    Canceled,
}

/// Sends the selected messages and counts their outcomes.
pub async fn run(state: &ApiState, progress: &mut Progress, plan: Plan) -> Result<(), Failure> {
    let mut counts = DeliveryCounts::default();
    let expected = queue_selected(state, progress, &plan, &mut counts).await?;
    await_outcomes(state, progress, &plan, expected, &mut counts).await
}

/// Queues a manual delivery of every selected message; answers the attempt number each
/// will make.
async fn queue_selected(
    state: &ApiState,
    progress: &mut Progress,
    plan: &Plan,
    counts: &mut DeliveryCounts,
) -> Result<HashMap<String, u32>, Failure> {
    let app_id = plan.endpoint.app_id.as_str();
    let mut expected = HashMap::new();
    let mut iterator = Some(id::lower_bound_at("msg", plan.since));
    while let Some(after) = iterator.take() {
        let request = PageRequest {
            limit: PAGE,
            iterator: Some(after),
            ascending: true,
            event_types: None,
        };
        let page = state.messages().list_messages(app_id, &request).await?;
        let mut tasks = Vec::new();
        let mut past_range = false;
        for message in &page.items {
            if message.timestamp > plan.until {
                past_range = true;
                break;
            }
            if let Some(attempt) = select(state, plan, message).await? {
                expected.insert(message.id.clone(), attempt);
                tasks.push(
                    DeliveryTask::for_message(
                        message,
                        &plan.endpoint.id,
                        attempt,
                        TriggerType::Manual,
                    )
                    .of_endpoint_version(&plan.endpoint),
                );
            }
            progress.checkpoint().await?;
        }
        if !tasks.is_empty() {
            // To an ordered endpoint they join its line in message order (see `lines`).
            crate::lines::join(state, &tasks, None).await?;
            state.publisher().publish(&tasks).await?;
            counts.sent += tasks.len() as u64;
            progress.task.data = TaskData::Deliveries(*counts);
            progress.save().await?;
        }
        iterator = if page.done || past_range {
            None
        } else {
            page.iterator
        };
    }
    Ok(expected)
}

/// The attempt number to send `message` with, if the plan selects it.
async fn select(
    state: &ApiState,
    plan: &Plan,
    message: &Message,
) -> Result<Option<u32>, StoreError> {
    let endpoint = &plan.endpoint;
    let destination = state
        .messages()
        .destinations(&endpoint.app_id, &message.id)
        .await?
        .into_iter()
        .find(|d| d.endpoint_id == endpoint.id);
    let next = destination.as_ref().map(|d| d.attempts.saturating_add(1));
    Ok(match (&plan.selection, destination) {
        (Selection::Failed, Some(d)) if d.status == MessageStatus::Fail => next,
        (Selection::Missing, None)
            if endpoint.accepts(&message.event_type, message.channels.as_deref()) =>
        {
            Some(1)
        }
        (Selection::Matching(filter), Some(d))
            if filter.messages.matches(message)
                && filter
                    .status
                    .is_none_or(|wanted| wanted == WantedStatus::Is(d.status)) =>
        {
            match filter.status_code_class {
                Some(class) => {
                    let last = last_status_class(state, endpoint, &message.id).await?;
                    (last == Some(class)).then_some(next).flatten()
                }
                None => next,
            }
        }
        _ => None,
    })
}

/// The status code class of the message's last attempt at the endpoint (0: no response).
async fn last_status_class(
    state: &ApiState,
    endpoint: &Endpoint,
    msg_id: &str,
) -> Result<Option<u16>, StoreError> {
    let mut request = PageRequest {
        limit: 100,
        iterator: None,
        ascending: false,
        event_types: None,
    };
    loop {
        let page = state
            .attempts()
            .attempts_by_message(&endpoint.app_id, msg_id, &request)
            .await?;
        if let Some(last) = page.items.iter().find(|a| a.endpoint_id == endpoint.id) {
            return Ok(Some(last.response_status_code / 100 * 100));
        }
        match page.iterator {
            Some(next) if !page.done => request.iterator = Some(next),
            _ => return Ok(None),
        }
    }
}

/// Waits until every send has an attempt, counting the outcomes as they arrive. Gives up
/// when the endpoint is disabled or deleted (its tasks are dropped unsent) or when no
/// outcome arrived for [`STALL_LIMIT`].
async fn await_outcomes(
    state: &ApiState,
    progress: &mut Progress,
    plan: &Plan,
    mut expected: HashMap<String, u32>,
    counts: &mut DeliveryCounts,
) -> Result<(), Failure> {
    let mut last_outcome = tokio::time::Instant::now();
    while !expected.is_empty() {
        if last_outcome.elapsed() >= STALL_LIMIT {
            return Err(Failure::Stopped(
                "no send reached an outcome for 10 minutes; the rest are still queued",
            ));
        }
        if !endpoint_takes_deliveries(state, &plan.endpoint).await? {
            return Err(Failure::Stopped(
                "the endpoint was disabled or deleted before every message was sent",
            ));
        }
        let mut settled = Vec::new();
        for (msg_id, attempt_number) in &expected {
            if let Some(outcome) = outcome(state, &plan.endpoint, msg_id, *attempt_number).await? {
                match outcome {
                    (MessageStatus::Success, _) => counts.succeeded += 1,
                    (_, Some(TransportError::Other) | None) => counts.failed += 1,
                    (_, Some(_)) => counts.connection_errors += 1,
                }
                settled.push(msg_id.clone());
            }
            progress.task.data = TaskData::Deliveries(*counts);
            progress.checkpoint().await?;
        }
        if !settled.is_empty() {
            last_outcome = tokio::time::Instant::now();
        }
        for msg_id in settled {
            expected.remove(&msg_id);
        }
        if !expected.is_empty() {
            tokio::time::sleep(POLL).await;
        }
    }
    progress.task.data = TaskData::Deliveries(*counts);
    Ok(())
}

/// The status and transport error of the manual attempt `attempt_number`, once made.
async fn outcome(
    state: &ApiState,
    endpoint: &Endpoint,
    msg_id: &str,
    attempt_number: u32,
) -> Result<Option<(MessageStatus, Option<TransportError>)>, StoreError> {
    let request = PageRequest {
        limit: 50,
        iterator: None,
        ascending: false,
        event_types: None,
    };
    let attempts = state
        .attempts()
        .attempts_by_message(&endpoint.app_id, msg_id, &request)
        .await?;
    Ok(attempts
        .items
        .into_iter()
        .find(|a| {
            a.endpoint_id == endpoint.id
                && a.attempt_number == attempt_number
                && a.trigger_type == TriggerType::Manual
        })
        .map(|a| (a.status, a.error)))
}

async fn endpoint_takes_deliveries(
    state: &ApiState,
    endpoint: &Endpoint,
) -> Result<bool, StoreError> {
    Ok(state
        .registry()
        .get_endpoint(&endpoint.app_id, &endpoint.id)
        .await?
        .is_some_and(|current| !current.disabled))
}
