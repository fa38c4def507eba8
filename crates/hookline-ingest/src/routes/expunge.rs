//! Expunging content: a message's payload or an attempt's response body, for data that must
//! not be kept (personal data, secrets a receiver echoed). The records stay; their content
//! goes.

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::common::{AttemptPath, MsgPath};
use crate::error::ApiError;
use crate::scope::AppScope;
use crate::state::ApiState;

#[utoipa::path(delete, path = "/api/v1/app/{app_id}/msg/{msg_id}/content", params(("app_id" = String, Path, description = "Application id or uid"), ("msg_id" = String, Path, description = "Message id")), responses((status = 204, description = "Payload expunged"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message")]
pub async fn message_content(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(MsgPath { msg_id }): Path<MsgPath>,
) -> Result<StatusCode, ApiError> {
    if !state.messages().expunge_payload(&app.id, &msg_id).await? {
        return Err(ApiError::NotFound("message"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}/content", params(("app_id" = String, Path, description = "Application id or uid"), ("msg_id" = String, Path, description = "Message id"), ("attempt_id" = String, Path, description = "Attempt id")), responses((status = 204, description = "Response body expunged"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message Attempt")]
pub async fn attempt_content(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(AttemptPath { msg_id, attempt_id }): Path<AttemptPath>,
) -> Result<StatusCode, ApiError> {
    let belongs = state
        .attempts()
        .get_attempt(&app.id, &attempt_id)
        .await?
        .is_some_and(|a| a.msg_id == msg_id);
    if !belongs
        || !state
            .attempts()
            .expunge_response(&app.id, &attempt_id)
            .await?
    {
        return Err(ApiError::NotFound("attempt"));
    }
    Ok(StatusCode::NO_CONTENT)
}
