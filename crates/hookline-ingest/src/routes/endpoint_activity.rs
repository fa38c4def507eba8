//! An endpoint's recent activity, for the dashboard: its last attempt, its attempt success
//! rate and attempts per hour over a window. A Hookline extension to the Svix API.

use std::ops::ControlFlow;

use axum::extract::{Path, State};
use axum::Json;
use hookline_core::model::MessageStatus;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::attempt_walk;
use super::attempts::MessageAttemptOut;
use super::common::EndpointPath;
use super::endpoints::find_endpoint;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::scope::AppScope;
use crate::state::ApiState;

/// At most this many attempts are read; beyond it the answer says it is partial.
const MAX_SCANNED: usize = 10_000;
/// The longest window, in hours.
const MAX_HOURS: u32 = 7 * 24;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityQuery {
    /// The window in hours, 1 to 168 (default 24).
    pub hours: Option<u32>,
}

/// Attempts in one hour of the window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActivityBucket {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    pub succeeded: u64,
    pub failed: u64,
}

/// `EndpointActivityOut`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointActivityOut {
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    /// The newest attempt, however old.
    pub last_attempt: Option<MessageAttemptOut>,
    /// Attempts in the window that succeeded and that did not.
    pub succeeded: u64,
    pub failed: u64,
    /// One bucket per hour, oldest first; the last one is the current hour.
    pub buckets: Vec<ActivityBucket>,
    /// False when the window held more attempts than one answer reads.
    pub complete: bool,
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/activity", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid"), ActivityQuery), responses((status = 200, body = EndpointActivityOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn activity(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    ApiQuery(query): ApiQuery<ActivityQuery>,
) -> Result<Json<EndpointActivityOut>, ApiError> {
    let hours = query.hours.unwrap_or(24);
    if hours == 0 || hours > MAX_HOURS {
        return Err(ApiError::query_field(
            "hours",
            format!("must be between 1 and {MAX_HOURS}"),
        ));
    }
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let now = OffsetDateTime::now_utc();
    let current_hour = now
        .replace_minute(0)
        .and_then(|t| t.replace_second(0))
        .and_then(|t| t.replace_nanosecond(0))
        .unwrap_or(now);
    let since = current_hour - time::Duration::hours(i64::from(hours - 1));
    let mut buckets: Vec<ActivityBucket> = (0..hours)
        .map(|h| ActivityBucket {
            start: since + time::Duration::hours(i64::from(h)),
            succeeded: 0,
            failed: 0,
        })
        .collect();
    let mut last_attempt = None;
    let mut scanned = 0;
    let mut reached_start = false;
    let walk = attempt_walk::newest_first(&state, &app.id, &endpoint.id, None, |attempt| {
        if last_attempt.is_none() {
            last_attempt = Some(attempt.clone());
        }
        if attempt.timestamp < since {
            reached_start = true;
            return ControlFlow::Break(());
        }
        let hour = usize::try_from((attempt.timestamp - since).whole_hours()).unwrap_or(0);
        if let Some(bucket) = buckets.get_mut(hour) {
            // A hold (pending: an open circuit kept the attempt for later) made no request.
            match attempt.status {
                MessageStatus::Success => bucket.succeeded += 1,
                MessageStatus::Pending => {}
                _ => bucket.failed += 1,
            }
        }
        scanned += 1;
        if scanned >= MAX_SCANNED {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .await?;
    let complete = reached_start || walk.exhausted;
    Ok(Json(EndpointActivityOut {
        since,
        last_attempt: last_attempt.map(MessageAttemptOut::from),
        succeeded: buckets.iter().map(|b| b.succeeded).sum(),
        failed: buckets.iter().map(|b| b.failed).sum(),
        buckets,
        complete,
    }))
}
