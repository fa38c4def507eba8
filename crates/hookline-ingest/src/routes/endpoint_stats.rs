//! An endpoint's delivery statistics: how many recent messages are delivered, pending or
//! failed, counted from its attempt log and each message's delivery state.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use axum::extract::{Path, State};
use axum::Json;
use hookline_core::model::MessageStatus;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::attempt_walk;
use super::common::EndpointPath;
use super::endpoints::find_endpoint;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::scope::AppScope;
use crate::state::ApiState;

/// At most this many recent messages are counted, so the answer stays fast.
const MAX_MESSAGES: usize = 1000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Count messages attempted since this time (default: 28 days ago).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>)]
    pub since: Option<OffsetDateTime>,
}

/// `EndpointStats`: messages by their delivery state to this endpoint.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct EndpointStats {
    pub success: u64,
    pub pending: u64,
    pub sending: u64,
    pub fail: u64,
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid"), StatsQuery), responses((status = 200, body = EndpointStats), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn stats(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<EndpointStats>, ApiError> {
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let since = query
        .since
        .unwrap_or_else(|| OffsetDateTime::now_utc() - time::Duration::days(28));
    // Newest attempts first; stop at `since` or at the message cap.
    let mut messages = BTreeSet::new();
    attempt_walk::newest_first(&state, &app.id, &endpoint.id, None, |attempt| {
        if attempt.timestamp < since || messages.len() >= MAX_MESSAGES {
            return ControlFlow::Break(());
        }
        messages.insert(attempt.msg_id.clone());
        ControlFlow::Continue(())
    })
    .await?;
    let mut stats = EndpointStats::default();
    for msg_id in messages {
        let state_now = state
            .messages()
            .destinations(&app.id, &msg_id)
            .await?
            .into_iter()
            .find(|d| d.endpoint_id == endpoint.id);
        match state_now.map(|d| d.status) {
            Some(MessageStatus::Success) => stats.success += 1,
            Some(MessageStatus::Pending) => stats.pending += 1,
            Some(MessageStatus::Sending) => stats.sending += 1,
            Some(MessageStatus::Fail) => stats.fail += 1,
            None => {}
        }
    }
    Ok(Json(stats))
}
