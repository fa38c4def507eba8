//! `POST …/msg/precheck/active`: would a message of this event type and these channels go
//! anywhere? A producer can skip building a message no endpoint wants.

use axum::extract::State;
use axum::Json;
use hookline_core::names::EventTypeName;
use serde::{Deserialize, Serialize};

use super::messages::parse_channels;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::scope::AppScope;
use crate::state::ApiState;

/// `MessagePrecheckIn`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagePrecheckIn {
    pub event_type: String,
    pub channels: Option<Vec<String>>,
}

/// `MessagePrecheckOut`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessagePrecheckOut {
    /// Whether any enabled endpoint of the app would receive such a message.
    pub active: bool,
}

/// Whether a message of this event type and these channels would go anywhere, so a
/// producer can skip building it; nothing is created.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/msg/precheck/active", params(("app_id" = String, Path, description = "Application id or uid")), request_body = MessagePrecheckIn, responses((status = 200, body = MessagePrecheckOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message")]
pub async fn precheck(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    ApiJson(input): ApiJson<MessagePrecheckIn>,
) -> Result<Json<MessagePrecheckOut>, ApiError> {
    let event_type = EventTypeName::parse(input.event_type)
        .map_err(|e| ApiError::field("eventType", e.to_string()))?;
    let channels = parse_channels(input.channels)?;
    let endpoints = state.registry().endpoints_of_app(&app.id).await?;
    let active = endpoints
        .iter()
        .any(|endpoint| endpoint.accepts(&event_type, channels.as_deref()));
    Ok(Json(MessagePrecheckOut { active }))
}
