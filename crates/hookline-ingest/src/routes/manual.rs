//! Deliveries a person asks for: resend one message to one endpoint, or recover an endpoint
//! (resend everything that failed since a time).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookline_core::model::{DeliveryTask, JobStatus, RecoverJob, TriggerType};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::common::{find_app, find_message};
use super::endpoints::find_endpoint;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::ApiState;

/// Queues one more attempt (trigger type manual) of a message to an endpoint, with the same
/// `webhook-id` as every earlier one. A failed resend does not change the pair's retries.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend", params(("app_id" = String, Path, description = "Application id or uid"), ("msg_id" = String, Path, description = "Message id"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses((status = 202, body = Object, description = "Resend queued: Svix's `EmptyResponse`, the JSON object `{}`"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message")]
pub async fn resend(
    State(state): State<ApiState>,
    Path((app_id, msg_id, endpoint_id)): Path<(String, String, String)>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let app = find_app(&state, &app_id).await?;
    let message = find_message(&state, &app.id, &msg_id).await?;
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let attempts_so_far = state
        .messages()
        .destinations(&app.id, &message.id)
        .await?
        .into_iter()
        .find(|d| d.endpoint_id == endpoint.id)
        .map_or(0, |d| d.attempts);
    let task = DeliveryTask::for_message(
        &message,
        &endpoint.id,
        attempts_so_far.saturating_add(1),
        TriggerType::Manual,
    );
    if !state.publisher().is_ready().await {
        return Err(ApiError::Unavailable("broker: not connected".into()));
    }
    state
        .publisher()
        .publish(std::slice::from_ref(&task))
        .await?;
    // The SDKs parse the answer as `EmptyResponse`: an empty body fails them.
    Ok((StatusCode::ACCEPTED, Json(serde_json::json!({}))))
}

/// `RecoverIn`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct RecoverIn {
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
}

/// `RecoverOut` (Svix's background task) plus the job's progress.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecoverOut {
    pub id: String,
    /// `running`, `finished` or `failed`.
    pub status: &'static str,
    pub task: &'static str,
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub connection_errors: u64,
    pub outstanding: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<RecoverJob> for RecoverOut {
    fn from(job: RecoverJob) -> Self {
        Self {
            status: match job.status {
                JobStatus::Running => "running",
                JobStatus::Finished => "finished",
                JobStatus::Failed => "failed",
            },
            task: "endpoint.recover",
            total: job.total,
            succeeded: job.succeeded,
            failed: job.failed,
            connection_errors: job.connection_errors,
            outstanding: job.outstanding(),
            updated_at: job.updated_at,
            id: job.id,
        }
    }
}

/// Starts resending every message that failed for the endpoint since `since` (until
/// `until`). While a recovery of the endpoint runs, starting another answers the running one.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), request_body = RecoverIn, responses((status = 202, body = RecoverOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn recover(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    ApiJson(input): ApiJson<RecoverIn>,
) -> Result<(StatusCode, Json<RecoverOut>), ApiError> {
    let app = find_app(&state, &app_id).await?;
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    if input.until.is_some_and(|until| until < input.since) {
        return Err(ApiError::field("until", "must not be before since"));
    }
    if !state.publisher().is_ready().await {
        return Err(ApiError::Unavailable("broker: not connected".into()));
    }
    let job =
        crate::recovery::start(&state, &app.id, &endpoint.id, input.since, input.until).await?;
    Ok((StatusCode::ACCEPTED, Json(job.into())))
}

/// A recovery's progress and, once finished, its summary.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover/{task_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid"), ("task_id" = String, Path, description = "Recovery id")), responses((status = 200, body = RecoverOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn recover_status(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id, task_id)): Path<(String, String, String)>,
) -> Result<Json<RecoverOut>, ApiError> {
    let app = find_app(&state, &app_id).await?;
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let job = state
        .jobs()
        .get_job(&app.id, &task_id)
        .await?
        .filter(|job| job.endpoint_id == endpoint.id)
        .ok_or(ApiError::NotFound("recovery"))?;
    Ok(Json(job.into()))
}

/// `EventExampleIn`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventExampleIn {
    pub event_type: String,
}

/// Sends the event type's example payload (the first `examples` entry of its schema, or
/// `{}`) to this one endpoint, so its owner can test their receiver.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), request_body = EventExampleIn, responses((status = 202, body = crate::routes::messages::MessageOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn send_example(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    ApiJson(input): ApiJson<EventExampleIn>,
) -> Result<(StatusCode, axum::response::Response), ApiError> {
    use axum::response::IntoResponse;

    let app = find_app(&state, &app_id).await?;
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let event_type = hookline_core::names::EventTypeName::parse(input.event_type)
        .map_err(|e| ApiError::field("eventType", e.to_string()))?;
    let example = state
        .registry()
        .get_event_type(event_type.as_str())
        .await?
        .and_then(|t| t.schemas)
        .and_then(|schemas| first_example(&schemas))
        .unwrap_or_else(|| serde_json::json!({}));
    let payload =
        serde_json::value::to_raw_value(&example).map_err(|e| ApiError::Internal(e.to_string()))?;
    let now = OffsetDateTime::now_utc();
    let message = hookline_core::model::Message {
        id: hookline_core::id::new_id(
            "msg",
            u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0),
        ),
        app_id: app.id.clone(),
        event_type,
        event_id: None,
        channels: None,
        tags: None,
        payload: payload.clone(),
        timestamp: now,
    };
    if !state.publisher().is_ready().await {
        return Err(ApiError::Unavailable("broker: not connected".into()));
    }
    let retention = state.config().max_retention_days * 24 * 3600;
    state
        .messages()
        .insert_message(&message, std::slice::from_ref(&endpoint.id), retention)
        .await?;
    let task = DeliveryTask::for_message(&message, &endpoint.id, 1, TriggerType::Manual);
    if let Err(error) = state.publisher().publish(&[task]).await {
        let _ = state
            .messages()
            .remove_message(&message.app_id, &message.id)
            .await;
        return Err(error.into());
    }
    let body = Json(crate::routes::messages::MessageOut::from(&message)).into_response();
    Ok((StatusCode::ACCEPTED, body))
}

/// The first example in an event type's schemas (`{"1": {"examples": [...]}}`).
fn first_example(schemas: &serde_json::Value) -> Option<serde_json::Value> {
    schemas
        .as_object()?
        .values()
        .find_map(|schema| schema.get("examples")?.as_array()?.first().cloned())
}
