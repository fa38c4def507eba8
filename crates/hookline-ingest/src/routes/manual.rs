//! Deliveries a person asks for: resend one message to one endpoint.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use hookline_core::model::{DeliveryTask, TriggerType};

use super::common::{find_app, find_message};
use super::endpoints::find_endpoint;
use crate::error::ApiError;
use crate::state::ApiState;

/// Queues one more attempt (trigger type manual) of a message to an endpoint, with the same
/// `webhook-id` as every earlier one. A failed resend does not change the pair's retries.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend", params(("app_id" = String, Path, description = "Application id or uid"), ("msg_id" = String, Path, description = "Message id"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses((status = 202, description = "Resend queued"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message")]
pub async fn resend(
    State(state): State<ApiState>,
    Path((app_id, msg_id, endpoint_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
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
    let task = DeliveryTask {
        msg_id: message.id,
        app_id: app.id,
        endpoint_id: endpoint.id,
        attempt: attempts_so_far.saturating_add(1),
        trigger: TriggerType::Manual,
        payload: Some(message.payload),
        traceparent: None,
    };
    if !state.publisher().is_ready().await {
        return Err(ApiError::Unavailable("broker: not connected".into()));
    }
    state
        .publisher()
        .publish(std::slice::from_ref(&task))
        .await?;
    Ok(StatusCode::ACCEPTED)
}
