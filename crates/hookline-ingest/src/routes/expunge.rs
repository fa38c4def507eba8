//! Expunging content: a message's payload, every payload of an app, or an attempt's
//! response body, for data that must not be kept (personal data, secrets a receiver
//! echoed). The records stay; their content goes.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookline_core::model::TaskKind;

use super::background_tasks::{kind_name, BackgroundTaskOut};
use super::common::{AttemptPath, MsgPath};
use crate::background::{self, Work};
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

/// Expunges the payload of every message of the app, as a background task:
/// `data.messagesPurged` counts them. Messages created after the task started keep theirs.
/// While one runs for the app, starting another answers the running one.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/msg/expunge-all-contents", params(("app_id" = String, Path, description = "Application id or uid"), ("idempotency-key" = Option<String>, Header, description = "A repeat with the same key answers the task the first request started")), responses((status = 202, body = BackgroundTaskOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message")]
pub async fn all_message_contents(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<BackgroundTaskOut>), ApiError> {
    let kind = TaskKind::ApplicationPurgeContent;
    let key = background::idempotency_key(&headers, kind_name(kind), &app.id)?;
    let mut task = background::new_task(&state, kind);
    task.app_id = Some(app.id.clone());
    task.lock = Some(format!("purge:{}", app.id));
    let start = background::task_start(&state, key);
    let work = Work::Purge { app_id: app.id };
    let task = background::start(&state, task, start, work).await?;
    Ok((StatusCode::ACCEPTED, Json(BackgroundTaskOut::from(&task))))
}
