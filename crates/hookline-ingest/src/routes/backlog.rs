//! `GET /api/v1/stats/backlog`: deliveries pending overall and for the busiest apps and
//! endpoints, with how long the oldest has waited. A Hookline addition, admin only (an app
//! token answers 403): it names every tenant.
//!
//! The numbers come from every process's tally, added to the store once per flush
//! interval (`hookline_core::backlog`), so they trail the deliveries by up to that
//! interval; this read is never on a delivery's path.

use axum::extract::State;
use axum::Json;
use hookline_core::backlog::{AppBacklog, EndpointBacklog, MAX_LIMIT};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::scope::AdminOnly;
use crate::state::ApiState;

/// Apps and endpoints listed when `limit` is absent.
const DEFAULT_LIMIT: usize = 10;

/// `GET /api/v1/stats/backlog` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BacklogQuery {
    /// How many of the busiest apps, and of the busiest endpoints, to list (1 to 100;
    /// 10 when absent).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
}

/// `BacklogOut`: the backlog overall and its busiest apps and endpoints, most pending first.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BacklogOut {
    /// Delivery tasks accepted and not concluded (delivered, given up or dropped), over
    /// every app. A task waiting for a retry or held by an open circuit is pending.
    pub pending: u64,
    /// The longest wait over every pending app and endpoint; `null` when nothing is pending.
    pub oldest_pending_age_ms: Option<u64>,
    pub apps: Vec<AppBacklogOut>,
    pub endpoints: Vec<EndpointBacklogOut>,
    /// When the store was read.
    #[serde(with = "time::serde::rfc3339")]
    pub as_of: OffsetDateTime,
}

/// One app in [`BacklogOut`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppBacklogOut {
    pub app_id: String,
    /// `null` when the app has no uid (or is deleted, its tasks not yet drained).
    pub app_uid: Option<String>,
    pub pending: u64,
    /// How long ago the tasks dispatchers last took for this app were queued; while none
    /// is taken, how long since the last one was.
    pub oldest_pending_age_ms: u64,
}

/// One endpoint in [`BacklogOut`].
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointBacklogOut {
    pub app_id: String,
    pub endpoint_id: String,
    pub pending: u64,
    pub oldest_pending_age_ms: u64,
}

impl From<EndpointBacklog> for EndpointBacklogOut {
    fn from(endpoint: EndpointBacklog) -> Self {
        Self {
            app_id: endpoint.app_id,
            endpoint_id: endpoint.endpoint_id,
            pending: endpoint.pending,
            oldest_pending_age_ms: endpoint.oldest_pending_age_ms,
        }
    }
}

/// Deliveries pending overall, and the `limit` apps and endpoints with the most pending,
/// each with how long its oldest pending delivery has waited. Counts trail the deliveries
/// by up to the flush interval (`ops.backlog_flush_ms`, 1 s).
#[utoipa::path(get, path = "/api/v1/stats/backlog", params(BacklogQuery), responses((status = 200, body = BacklogOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Statistics")]
pub async fn backlog(
    State(state): State<ApiState>,
    _admin: AdminOnly,
    ApiQuery(query): ApiQuery<BacklogQuery>,
) -> Result<Json<BacklogOut>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::query_field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let as_of = OffsetDateTime::now_utc();
    let view = state.ledger().busiest(limit, as_of).await?;
    let apps = with_uids(&state, view.apps).await?;
    Ok(Json(BacklogOut {
        pending: view.pending,
        oldest_pending_age_ms: view.oldest_pending_age_ms,
        apps,
        endpoints: view.endpoints.into_iter().map(Into::into).collect(),
        as_of,
    }))
}

/// Each app with its uid, read concurrently (at most [`MAX_LIMIT`] of them).
async fn with_uids(
    state: &ApiState,
    apps: Vec<AppBacklog>,
) -> Result<Vec<AppBacklogOut>, ApiError> {
    let mut reads = tokio::task::JoinSet::new();
    for (at, app) in apps.iter().enumerate() {
        let (state, app_id) = (state.clone(), app.app_id.clone());
        reads.spawn(async move { (at, state.registry().get_app(&app_id).await) });
    }
    let mut uids = vec![None; apps.len()];
    while let Some(read) = reads.join_next().await {
        let (at, found) = read.map_err(|e| ApiError::Internal(e.to_string()))?;
        uids[at] = found?.and_then(|app| app.uid.map(|uid| uid.as_str().to_owned()));
    }
    Ok(apps
        .into_iter()
        .zip(uids)
        .map(|(app, app_uid)| AppBacklogOut {
            app_id: app.app_id,
            app_uid,
            pending: app.pending,
            oldest_pending_age_ms: app.oldest_pending_age_ms,
        })
        .collect())
}
