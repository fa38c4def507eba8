//! Attempt log routes: by endpoint, by message, one attempt.

use axum::extract::{Path, State};
use axum::Json;
use hookline_core::model::Attempt;
use hookline_core::outcome::TransportError;
use serde::Serialize;
use time::OffsetDateTime;

use super::common::{find_app, ListQuery, ListResponse};
use super::endpoints::find_endpoint;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::ApiState;

/// `MessageAttemptOut`, plus Hookline's `attemptNumber` and `errorKind`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageAttemptOut {
    pub id: String,
    pub msg_id: String,
    pub endpoint_id: String,
    pub url: String,
    pub response: String,
    pub response_status_code: u16,
    pub response_duration_ms: u64,
    pub status: u8,
    pub status_text: &'static str,
    pub trigger_type: u8,
    pub attempt_number: u32,
    #[schema(value_type = Option<String>)]
    pub error_kind: Option<TransportError>,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
}

impl From<Attempt> for MessageAttemptOut {
    fn from(a: Attempt) -> Self {
        Self {
            id: a.id,
            msg_id: a.msg_id,
            endpoint_id: a.endpoint_id,
            url: a.url,
            response: a.response,
            response_status_code: a.response_status_code,
            response_duration_ms: a.response_duration_ms,
            status: a.status.code(),
            status_text: a.status.text(),
            trigger_type: a.trigger_type.code(),
            attempt_number: a.attempt_number,
            error_kind: a.error,
            timestamp: a.timestamp,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid"), ListQuery), responses((status = 200, body = ListResponse<MessageAttemptOut>), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message Attempt")]
pub async fn list_by_endpoint(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ListResponse<MessageAttemptOut>>, ApiError> {
    let app = find_app(&state, &app_id).await?;
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let page = state
        .attempts()
        .attempts_by_endpoint(&app.id, &endpoint.id, &query.page_request(false)?)
        .await?;
    Ok(Json(ListResponse::from_page(page, MessageAttemptOut::from)))
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/attempt/msg/{msg_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("msg_id" = String, Path, description = "Message id"), ListQuery), responses((status = 200, body = ListResponse<MessageAttemptOut>), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message Attempt")]
pub async fn list_by_message(
    State(state): State<ApiState>,
    Path((app_id, msg_id)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ListResponse<MessageAttemptOut>>, ApiError> {
    let app = find_app(&state, &app_id).await?;
    let message = super::common::find_message(&state, &app.id, &msg_id).await?;
    let page = state
        .attempts()
        .attempts_by_message(&app.id, &message.id, &query.page_request(false)?)
        .await?;
    Ok(Json(ListResponse::from_page(page, MessageAttemptOut::from)))
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("msg_id" = String, Path, description = "Message id"), ("attempt_id" = String, Path, description = "Attempt id")), responses((status = 200, body = MessageAttemptOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message Attempt")]
pub async fn get(
    State(state): State<ApiState>,
    Path((app_id, msg_id, attempt_id)): Path<(String, String, String)>,
) -> Result<Json<MessageAttemptOut>, ApiError> {
    let app = find_app(&state, &app_id).await?;
    let attempt = state
        .attempts()
        .get_attempt(&app.id, &attempt_id)
        .await?
        .filter(|a| a.msg_id == msg_id)
        .ok_or(ApiError::NotFound("attempt"))?;
    Ok(Json(attempt.into()))
}
