//! `/api/v1/stats`: usage statistics over every app, computed by background tasks. Admin
//! tokens only (an app token answers 403): they read every app.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookline_core::model::{TaskData, TaskKind};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::background_tasks::{kind_name, BackgroundTaskOut};
use crate::background::stats::AppStatsPlan;
use crate::background::{self, Work};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::scope::AdminOnly;
use crate::state::ApiState;

/// `AppUsageStatsIn`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppUsageStatsIn {
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub until: OffsetDateTime,
    /// Only these apps (ids or uids); every app when absent.
    pub app_ids: Option<Vec<String>>,
}

/// `AppUsageStatsOut`: the task, and the ids or uids asked for that name no app.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppUsageStatsOut {
    #[serde(flatten)]
    pub task: BackgroundTaskOut,
    pub unresolved_app_ids: Vec<String>,
}

/// Counts, per app, the messages created in `[since, until]` and the deliveries they were
/// routed to: `data.appStats` lists `{appId, appUid, messages, messageDestinations}`.
/// Unknown ids or uids are listed in `unresolvedAppIds`; if none is known, 422.
#[utoipa::path(post, path = "/api/v1/stats/usage/app", params(("idempotency-key" = Option<String>, Header, description = "A repeat with the same key answers the task the first request started")), request_body = AppUsageStatsIn, responses((status = 202, body = AppUsageStatsOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Statistics")]
pub async fn aggregate_app_stats(
    State(state): State<ApiState>,
    _admin: AdminOnly,
    headers: HeaderMap,
    ApiJson(input): ApiJson<AppUsageStatsIn>,
) -> Result<(StatusCode, Json<AppUsageStatsOut>), ApiError> {
    if input.until <= input.since {
        return Err(ApiError::field("until", "must be after since"));
    }
    let (apps, unresolved) = match input.app_ids {
        Some(ids) => {
            let (apps, unresolved) = resolve_apps(&state, ids).await?;
            (Some(apps), unresolved)
        }
        None => (None, Vec::new()),
    };
    let kind = TaskKind::ApplicationStats;
    let key = background::idempotency_key(&headers, kind_name(kind), "org")?;
    let mut task = background::new_task(&state, kind);
    task.data = TaskData::AppStats {
        apps: Vec::new(),
        unresolved: unresolved.clone(),
    };
    let plan = AppStatsPlan {
        since: input.since,
        until: input.until,
        apps,
        unresolved,
    };
    let start = background::task_start(&state, key);
    let task = background::start(&state, task, start, Work::AppStats(plan)).await?;
    // A repeated idempotency key answers the first request's task, with its own list.
    let unresolved_app_ids = match &task.data {
        TaskData::AppStats { unresolved, .. } => unresolved.clone(),
        _ => Vec::new(),
    };
    let body = AppUsageStatsOut {
        task: BackgroundTaskOut::from(&task),
        unresolved_app_ids,
    };
    Ok((StatusCode::ACCEPTED, Json(body)))
}

/// The apps `ids` name (each once) and the ids that name none; 422 when none names an app.
async fn resolve_apps(
    state: &ApiState,
    ids: Vec<String>,
) -> Result<(Vec<hookline_core::model::App>, Vec<String>), ApiError> {
    if ids.is_empty() {
        return Err(ApiError::field(
            "appIds",
            "must name at least one app (leave it out for every app)",
        ));
    }
    let mut apps: Vec<hookline_core::model::App> = Vec::new();
    let mut unresolved = Vec::new();
    for id in ids {
        match state.registry().get_app(&id).await? {
            Some(app) if apps.iter().any(|known| known.id == app.id) => {}
            Some(app) => apps.push(app),
            None => unresolved.push(id),
        }
    }
    if apps.is_empty() {
        return Err(ApiError::field(
            "appIds",
            "none of these ids or uids names an application",
        ));
    }
    Ok((apps, unresolved))
}

/// Lists, for every app, the event types its enabled endpoints subscribe to by name and
/// whether one takes every type: `data.event_types` lists `{appId,
/// explicitlySubscribedEventTypes, hasCatchAllEndpoint}`. While one runs, starting another
/// answers the running one.
#[utoipa::path(put, path = "/api/v1/stats/usage/event-types", responses((status = 202, body = BackgroundTaskOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Statistics")]
pub async fn aggregate_event_types(
    State(state): State<ApiState>,
    _admin: AdminOnly,
) -> Result<(StatusCode, Json<BackgroundTaskOut>), ApiError> {
    let mut task = background::new_task(&state, TaskKind::EventTypeAggregate);
    task.lock = Some("event-types".into());
    let start = background::task_start(&state, None);
    let task = background::start(&state, task, start, Work::EventTypes).await?;
    Ok((StatusCode::ACCEPTED, Json(BackgroundTaskOut::from(&task))))
}
