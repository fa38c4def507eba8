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
use super::paging::TimeRange;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::scope::AppScope;
use crate::state::ApiState;

/// At most this many recent messages are counted, so the answer stays fast.
const MAX_MESSAGES: usize = 1000;
/// At most this many attempts are read per answer, for the same reason.
const MAX_SCANNED: usize = 100_000;

/// The longest window a statistics request may cover (Svix's: 28 days, plus five minutes
/// so that `now - 28 days` needs no care about clocks).
const MAX_WINDOW: time::Duration = time::Duration::minutes(28 * 24 * 60 + 5);

/// `since` / `until` of both statistics.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// Count from this time (default: 28 days before `until`).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<OffsetDateTime>,
    /// Count only messages attempted before this time (default: now).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<OffsetDateTime>,
}

impl StatsQuery {
    /// The window, `[since, until)`, at most [`MAX_WINDOW`] long.
    fn window(&self) -> Result<(OffsetDateTime, OffsetDateTime), ApiError> {
        let until = self.until.unwrap_or_else(OffsetDateTime::now_utc);
        let since = self.since.unwrap_or(until - time::Duration::days(28));
        if since >= until {
            return Err(ApiError::query_field("since", "must be before until"));
        }
        if until - since > MAX_WINDOW {
            return Err(ApiError::query_field(
                "since",
                "must be at most 28 days before until",
            ));
        }
        Ok((since, until))
    }
}

/// `EndpointStats`: messages attempted in the window, by their delivery state to this
/// endpoint now. Hookline never cancels a delivery, so `canceled` is always 0.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct EndpointStats {
    pub success: u64,
    pub pending: u64,
    pub sending: u64,
    pub fail: u64,
    pub canceled: u64,
}

/// `EndpointAttemptStats`: attempts made in the window, by outcome (holds behind an open
/// circuit made no request and are not counted; nothing is ever canceled).
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct EndpointAttemptStats {
    pub success: u64,
    pub fail: u64,
    pub canceled: u64,
}

/// Where a newest-first walk starts so that it skips attempts made at or after `until`
/// (attempt ids sort by the time they were made).
fn start_at(until: OffsetDateTime) -> Option<String> {
    TimeRange {
        before: Some(until),
        after: None,
    }
    .start_id("atmpt", false)
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/stats", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid"), StatsQuery), responses((status = 200, body = EndpointStats), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn stats(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<EndpointStats>, ApiError> {
    let (since, until) = query.window()?;
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    // Newest attempts first, from `until` (attempt ids sort by time); stop at `since` or at
    // the caps.
    let mut messages = BTreeSet::new();
    let mut scanned = 0;
    let start = start_at(until);
    attempt_walk::newest_first(&state, &app.id, &endpoint.id, start, |attempt| {
        scanned += 1;
        if attempt.timestamp < since || messages.len() >= MAX_MESSAGES || scanned > MAX_SCANNED {
            return ControlFlow::Break(());
        }
        if attempt.timestamp < until {
            messages.insert(attempt.msg_id.clone());
        }
        ControlFlow::Continue(())
    })
    .await?;
    let mut stats = EndpointStats::default();
    let messages: Vec<String> = messages.into_iter().collect();
    let states = state
        .messages()
        .destination_states(&app.id, &endpoint.id, &messages)
        .await?;
    for (_, status) in states {
        match status {
            MessageStatus::Success => stats.success += 1,
            MessageStatus::Pending => stats.pending += 1,
            MessageStatus::Sending => stats.sending += 1,
            MessageStatus::Fail => stats.fail += 1,
        }
    }
    Ok(Json(stats))
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/attempt-stats", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid"), StatsQuery), responses((status = 200, body = EndpointAttemptStats), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn attempt_stats(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    ApiQuery(query): ApiQuery<StatsQuery>,
) -> Result<Json<EndpointAttemptStats>, ApiError> {
    let (since, until) = query.window()?;
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let mut stats = EndpointAttemptStats::default();
    let mut scanned = 0;
    attempt_walk::newest_first(&state, &app.id, &endpoint.id, start_at(until), |attempt| {
        scanned += 1;
        if attempt.timestamp < since || scanned > MAX_SCANNED {
            return ControlFlow::Break(());
        }
        if attempt.timestamp < until {
            match attempt.status {
                MessageStatus::Success => stats.success += 1,
                MessageStatus::Fail => stats.fail += 1,
                MessageStatus::Pending | MessageStatus::Sending => {}
            }
        }
        ControlFlow::Continue(())
    })
    .await?;
    Ok(Json(stats))
}
