//! An ordered (FIFO) endpoint's line: how many messages wait, and which one heads it, the
//! one being delivered or, when it keeps failing, the one blocking the rest. A Hookline
//! extension (Svix shows the same through its FIFO destinations' status).

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use time::OffsetDateTime;

use super::common::EndpointPath;
use super::endpoints::find_endpoint;
use crate::error::ApiError;
use crate::scope::AppScope;
use crate::state::ApiState;

/// The message at the head of the line and its delivery so far.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LineHeadOut {
    pub msg_id: String,
    /// Svix's message status number: 0 success, 1 pending, 2 fail, 3 sending.
    pub status: u8,
    /// Attempts made so far.
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt: Option<OffsetDateTime>,
    /// It failed at least once and is not delivered yet: the messages behind it wait
    /// until it succeeds or its attempts are exhausted.
    pub blocked: bool,
}

/// `EndpointFifoOut`: the endpoint's line.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointFifoOut {
    /// Whether the endpoint receives its messages in order now. A line may still drain
    /// after ordering was turned off: the messages in it keep their order.
    pub fifo: bool,
    /// Messages in the line, the head included.
    pub length: u64,
    /// Deliveries waiting in the store for their turn.
    pub waiting: u64,
    pub head: Option<LineHeadOut>,
}

/// The endpoint's line of ordered deliveries (a Hookline extension).
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/fifo", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses((status = 200, body = EndpointFifoOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn line(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
) -> Result<Json<EndpointFifoOut>, ApiError> {
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let line = state.sequencer().line(&app.id, &endpoint.id).await?;
    let head = match &line.head {
        Some(msg_id) => Some(head(&state, &app.id, &endpoint.id, msg_id).await?),
        None => None,
    };
    Ok(Json(EndpointFifoOut {
        fifo: endpoint.fifo,
        length: line.length,
        waiting: line.waiting,
        head,
    }))
}

async fn head(
    state: &ApiState,
    app_id: &str,
    endpoint_id: &str,
    msg_id: &str,
) -> Result<LineHeadOut, ApiError> {
    let destination = state
        .messages()
        .destinations(app_id, msg_id)
        .await?
        .into_iter()
        .find(|d| d.endpoint_id == endpoint_id);
    let (status, attempts, next_attempt) = destination.map_or(
        (hookline_core::model::MessageStatus::Pending, 0, None),
        |d| (d.status, d.attempts, d.next_attempt),
    );
    Ok(LineHeadOut {
        msg_id: msg_id.to_owned(),
        status: status.code(),
        attempts,
        next_attempt,
        blocked: attempts > 0 && !hookline_core::fifo::leaves_line(status),
    })
}
