//! Deliveries a person asks for: resend one message to one endpoint, or recover an endpoint
//! (resend everything that failed since a time).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookline_core::model::{DeliveryTask, TaskKind, TriggerType};
use serde::Deserialize;
use time::OffsetDateTime;

use super::background_tasks::BackgroundTaskOut;
use super::common::{find_message, EndpointPath, MsgEndpointPath};
use super::endpoints::find_endpoint;
use crate::background::redeliver::Selection;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::scope::AppScope;
use crate::state::ApiState;

/// Queues one more attempt (trigger type manual) of a message to an endpoint, with the same
/// `webhook-id` as every earlier one. A failed resend does not change the pair's retries.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend", params(("app_id" = String, Path, description = "Application id or uid"), ("msg_id" = String, Path, description = "Message id"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses((status = 202, body = Object, description = "Resend queued: Svix's `EmptyResponse`, the JSON object `{}`"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message")]
pub async fn resend(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(MsgEndpointPath {
        msg_id,
        endpoint_id,
    }): Path<MsgEndpointPath>,
    headers: http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let operation = format!("message.resend:{msg_id}:{endpoint_id}");
    let work = resend_once(&state, &app.id, &msg_id, &endpoint_id);
    crate::idempotent::once(&state, &headers, &app.id, &operation, work).await
}

async fn resend_once(
    state: &ApiState,
    app_id: &str,
    msg_id: &str,
    endpoint_id: &str,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let message = find_message(state, app_id, msg_id).await?;
    let endpoint = find_endpoint(state, app_id, endpoint_id).await?;
    let attempts_so_far = state
        .messages()
        .destinations(app_id, &message.id)
        .await?
        .into_iter()
        .find(|d| d.endpoint_id == endpoint.id)
        .map_or(0, |d| d.attempts);
    let task = DeliveryTask::for_message(
        &message,
        &endpoint.id,
        attempts_so_far.saturating_add(1),
        TriggerType::Manual,
    )
    .of_endpoint_version(&endpoint);
    if !state.publisher().is_ready().await {
        return Err(ApiError::Unavailable("broker: not connected".into()));
    }
    // To an ordered endpoint a resend takes its turn: a message still in the line keeps
    // its place, one that left it joins its end.
    crate::lines::join(state, std::slice::from_ref(&task), None).await?;
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
    /// Messages created up to this time (default: now).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub until: Option<OffsetDateTime>,
}

/// Starts resending every message that failed for the endpoint since `since` (until
/// `until`), as a background task: `data.messagesSent` counts the resends, and
/// `succeeded`, `failed`, `connectionErrors` and `outstanding` their outcomes. While a
/// recovery of the endpoint runs, starting another answers the running one.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid"), ("idempotency-key" = Option<String>, Header, description = "A repeat with the same key answers the task the first request started")), request_body = RecoverIn, responses((status = 202, body = BackgroundTaskOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn recover(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<RecoverIn>,
) -> Result<(StatusCode, Json<BackgroundTaskOut>), ApiError> {
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let range = (input.since, input.until);
    super::replay::start_redelivery(&state, &headers, endpoint, range, Selection::Failed).await
}

/// `…/endpoint/{endpoint_id}/recover/{task_id}`.
#[derive(Debug, Deserialize)]
pub struct RecoverPath {
    endpoint_id: String,
    task_id: String,
}

/// A recovery's progress and, once finished, its summary: the background task, readable
/// with an app token too.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover/{task_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid"), ("task_id" = String, Path, description = "Recovery id")), responses((status = 200, body = BackgroundTaskOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn recover_status(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(RecoverPath {
        endpoint_id,
        task_id,
    }): Path<RecoverPath>,
) -> Result<Json<BackgroundTaskOut>, ApiError> {
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let task = state
        .jobs()
        .get_task(&task_id)
        .await?
        .filter(|task| {
            task.kind == TaskKind::EndpointRecover
                && task.app_id.as_deref() == Some(app.id.as_str())
                && task.endpoint_id.as_deref() == Some(endpoint.id.as_str())
        })
        .ok_or(ApiError::NotFound("recovery"))?;
    Ok(Json(BackgroundTaskOut::from(&task)))
}
