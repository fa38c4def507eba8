//! Sending an endpoint messages of a time range again, as background tasks: the ones it
//! never got (`replay-missing`) and the ones sent to it that match filters (`bulk-replay`).
//! Recover (the ones that failed) starts the same way, from `manual.rs`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookline_core::model::{Endpoint, MessageStatus, TaskKind};
use hookline_core::names::{Channel, EventTypeName};
use serde::Deserialize;
use time::OffsetDateTime;

use super::background_tasks::{kind_name, BackgroundTaskOut};
use super::common::{parse_names, EndpointPath};
use super::endpoints::find_endpoint;
use super::messages::MessageFilter;
use crate::background::redeliver::{BulkFilter, Plan, Selection, WantedStatus};
use crate::background::{self, Work};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::scope::AppScope;
use crate::state::ApiState;

/// Svix's `MessageStatus::Canceled`.
const CANCELED: u8 = 4;

/// `ReplayIn`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayIn {
    /// Messages created from this time on.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// Messages created up to this time (default: now).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
}

/// `BulkReplayIn`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkReplayIn {
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
    /// Only messages of these event types.
    pub event_types: Option<Vec<String>>,
    /// Only messages sent to this channel.
    pub channel: Option<String>,
    /// Only messages carrying this tag.
    pub tag: Option<String>,
    /// Only messages whose delivery to the endpoint is in this state (Svix numbering:
    /// 0 success, 1 pending, 2 fail, 3 sending, 4 canceled, which Hookline never is).
    pub status: Option<u8>,
    /// Only messages whose last attempt at the endpoint answered a status of this class
    /// (0 for no response, 100, 200, 300, 400 or 500).
    pub status_code_class: Option<u16>,
}

/// Sends the endpoint every message of the app created in the range that its filters
/// (event types, channels) take but that was never routed to it: it was created later, or
/// was disabled then. `data.messagesSent` counts them; the task finishes once each has an
/// outcome.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/replay-missing", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid"), ("idempotency-key" = Option<String>, Header, description = "A repeat with the same key answers the task the first request started")), request_body = ReplayIn, responses((status = 202, body = BackgroundTaskOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn replay_missing(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<ReplayIn>,
) -> Result<(StatusCode, Json<BackgroundTaskOut>), ApiError> {
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let range = (input.since, input.until);
    start_redelivery(&state, &headers, endpoint, range, Selection::Missing).await
}

/// Sends the endpoint again every message of the range that was sent to it and matches the
/// filters, whether it succeeded or failed.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/bulk-replay", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid"), ("idempotency-key" = Option<String>, Header, description = "A repeat with the same key answers the task the first request started")), request_body = BulkReplayIn, responses((status = 202, body = BackgroundTaskOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn bulk_replay(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<BulkReplayIn>,
) -> Result<(StatusCode, Json<BackgroundTaskOut>), ApiError> {
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let range = (input.since, input.until);
    let filter = bulk_filter(input)?;
    let selection = Selection::Matching(filter);
    start_redelivery(&state, &headers, endpoint, range, selection).await
}

/// Checks every filter of a bulk replay, naming the first bad field.
fn bulk_filter(input: BulkReplayIn) -> Result<BulkFilter, ApiError> {
    let event_types = parse_names("eventTypes", input.event_types.unwrap_or_default(), |n| {
        EventTypeName::parse(n)
    })?;
    let channel = input
        .channel
        .map(|c| Channel::parse(c).map_err(|e| ApiError::field("channel", e.to_string())))
        .transpose()?;
    let status = input
        .status
        .map(|code| match (code, MessageStatus::from_code(code)) {
            (_, Some(status)) => Ok(WantedStatus::Is(status)),
            (CANCELED, None) => Ok(WantedStatus::Canceled),
            _ => Err(ApiError::field(
                "status",
                "must be 0 (success), 1 (pending), 2 (fail), 3 (sending) or 4 (canceled)",
            )),
        })
        .transpose()?;
    if let Some(class) = input.status_code_class {
        if !matches!(class, 0 | 100 | 200 | 300 | 400 | 500) {
            return Err(ApiError::field(
                "statusCodeClass",
                "must be 0, 100, 200, 300, 400 or 500",
            ));
        }
    }
    if input.tag.as_deref() == Some("") {
        return Err(ApiError::field("tag", "must not be empty"));
    }
    Ok(BulkFilter {
        messages: MessageFilter {
            channel: channel.map(|c| c.as_str().to_owned()),
            tag: input.tag,
            event_types: event_types.iter().map(|t| t.as_str().to_owned()).collect(),
        },
        status,
        status_code_class: input.status_code_class,
    })
}

/// Starts a task that sends `endpoint` the messages of `(since, until)` that `selection`
/// picks (recover, replay or bulk replay), or answers the one standing in its way.
pub async fn start_redelivery(
    state: &ApiState,
    headers: &HeaderMap,
    endpoint: Endpoint,
    (since, until): (OffsetDateTime, Option<OffsetDateTime>),
    selection: Selection,
) -> Result<(StatusCode, Json<BackgroundTaskOut>), ApiError> {
    if until.is_some_and(|until| until < since) {
        return Err(ApiError::field("until", "must not be before since"));
    }
    if endpoint.disabled {
        return Err(ApiError::Conflict(
            "the endpoint is disabled: enable it before sending it messages".into(),
        ));
    }
    if !state.publisher().is_ready().await {
        return Err(ApiError::Unavailable("broker: not connected".into()));
    }
    let (kind, lock) = match selection {
        Selection::Failed => (TaskKind::EndpointRecover, Some("recover")),
        Selection::Missing => (TaskKind::EndpointReplay, Some("replay")),
        Selection::Matching(_) => (TaskKind::EndpointBulkReplay, None),
    };
    let key = background::idempotency_key(headers, kind_name(kind), &endpoint.app_id)?;
    let mut task = background::new_task(state, kind);
    task.app_id = Some(endpoint.app_id.clone());
    task.endpoint_id = Some(endpoint.id.clone());
    // One recovery (and one replay) per endpoint at a time: a second would send the same
    // messages again before the first one's attempts are recorded.
    task.lock = lock.map(|name| format!("{name}:{}:{}", endpoint.app_id, endpoint.id));
    let plan = Plan {
        until: until.unwrap_or(task.created_at),
        since,
        endpoint,
        selection,
    };
    let start = background::task_start(state, key);
    let task = background::start(state, task, start, Work::Redeliver(Box::new(plan))).await?;
    Ok((StatusCode::ACCEPTED, Json(BackgroundTaskOut::from(&task))))
}
