//! `/api/v1/background-task`: the tasks that recover, replay, purge and statistics start,
//! across every app, so only admin tokens may read them (an app token answers 403: it may
//! follow its own recoveries at `…/endpoint/{id}/recover/{task_id}`).

use axum::extract::{Path, State};
use axum::Json;
use hookline_core::model::{BackgroundTask, TaskData, TaskKind, TaskStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::common::{ListQuery, ListResponse, Ordering};
use super::paging::{Pager, Paging, Verdict};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::scope::AdminOnly;
use crate::state::ApiState;

/// Svix's `BackgroundTaskOut`; also the answer of every operation that starts a task
/// (`RecoverOut`, `ReplayOut`, `ExpungeAllContentsOut`, `AggregateEventTypesOut`), which are
/// the same fields without `data`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackgroundTaskOut {
    /// `qtask_…`.
    pub id: String,
    /// `running`, `finished` or `failed`.
    pub status: &'static str,
    /// `endpoint.recover`, `endpoint.replay`, `endpoint.bulk-replay`,
    /// `application.purge_content`, `application.stats` or `event-type.aggregate`.
    pub task: &'static str,
    /// Counts and results so far (see each operation), and `error` when it failed.
    #[schema(value_type = Object)]
    pub data: Value,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<&BackgroundTask> for BackgroundTaskOut {
    fn from(task: &BackgroundTask) -> Self {
        let status = task.status_at(OffsetDateTime::now_utc());
        let mut data = task_data(&task.data);
        if status == TaskStatus::Failed {
            // No error recorded: it is still marked running, but its lease lapsed.
            let reason = task
                .error
                .as_deref()
                .unwrap_or("the process running it stopped before it finished; start it again");
            data["error"] = json!(reason);
        }
        Self {
            id: task.id.clone(),
            status: status_name(status),
            task: kind_name(task.kind),
            data,
            updated_at: task.updated_at,
        }
    }
}

/// The wire name of a task type.
pub fn kind_name(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::EndpointRecover => "endpoint.recover",
        TaskKind::EndpointReplay => "endpoint.replay",
        TaskKind::EndpointBulkReplay => "endpoint.bulk-replay",
        TaskKind::ApplicationPurgeContent => "application.purge_content",
        TaskKind::ApplicationStats => "application.stats",
        TaskKind::EventTypeAggregate => "event-type.aggregate",
    }
}

fn status_name(status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Running => "running",
        TaskStatus::Finished => "finished",
        TaskStatus::Failed => "failed",
    }
}

/// `data` in the shapes Svix documents for each task type (plus Hookline's outcome counts).
fn task_data(data: &TaskData) -> Value {
    match data {
        TaskData::Deliveries(counts) => json!({
            "messagesSent": counts.sent,
            "succeeded": counts.succeeded,
            "failed": counts.failed,
            "connectionErrors": counts.connection_errors,
            "outstanding": counts.outstanding(),
        }),
        TaskData::Purge { messages_purged } => json!({ "messagesPurged": messages_purged }),
        TaskData::AppStats { apps, unresolved } => json!({
            "appStats": apps.iter().map(|app| json!({
                "appId": app.app_id,
                "appUid": app.app_uid,
                "messageDestinations": app.message_destinations,
                "messages": app.messages,
            })).collect::<Vec<_>>(),
            "unresolvedAppIds": unresolved,
        }),
        // Svix's documented key is `event_types`, in snake case.
        TaskData::EventTypes { apps } => json!({
            "event_types": apps.iter().map(|app| json!({
                "appId": app.app_id,
                "explicitlySubscribedEventTypes": app.explicitly_subscribed,
                "hasCatchAllEndpoint": app.has_catch_all,
            })).collect::<Vec<_>>(),
        }),
    }
}

/// `GET /api/v1/background-task` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BackgroundTaskListQuery {
    /// Only tasks in this state: `running`, `finished` or `failed`.
    pub status: Option<String>,
    /// Only tasks of this type (`endpoint.recover`, …).
    pub task: Option<String>,
    pub limit: Option<usize>,
    /// An `iterator` or (with a leading `-`) a `prevIterator` from an earlier page.
    pub iterator: Option<String>,
    pub order: Option<Ordering>,
}

/// Background tasks, newest first, filtered by status and type.
#[utoipa::path(get, path = "/api/v1/background-task", params(BackgroundTaskListQuery), responses((status = 200, body = ListResponse<BackgroundTaskOut>), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Background Task")]
pub async fn list(
    State(state): State<ApiState>,
    _admin: AdminOnly,
    ApiQuery(query): ApiQuery<BackgroundTaskListQuery>,
) -> Result<Json<ListResponse<BackgroundTaskOut>>, ApiError> {
    let status = match query.status.as_deref() {
        Some(text) => Some(
            [
                TaskStatus::Running,
                TaskStatus::Finished,
                TaskStatus::Failed,
            ]
            .into_iter()
            .find(|s| status_name(*s) == text)
            .ok_or_else(|| {
                ApiError::query_field("status", "must be running, finished or failed")
            })?,
        ),
        None => None,
    };
    let kind = match query.task.as_deref() {
        Some(text) => Some(
            TaskKind::ALL
                .into_iter()
                .find(|k| kind_name(*k) == text)
                .ok_or_else(|| ApiError::query_field("task", "is not a background task type"))?,
        ),
        None => None,
    };
    let paging = Paging::from_query(
        &ListQuery {
            limit: query.limit,
            iterator: query.iterator,
            order: query.order,
        },
        false,
    )?;
    let now = OffsetDateTime::now_utc();
    let mut pager = Pager::new(paging, status.is_some() || kind.is_some());
    while let Some(request) = pager.next_request() {
        let page = state.jobs().list_tasks(&request).await?;
        let judged = page
            .items
            .into_iter()
            .map(|task| {
                let keep = status.is_none_or(|s| task.status_at(now) == s)
                    && kind.is_none_or(|k| task.kind == k);
                let verdict = if keep { Verdict::Keep } else { Verdict::Skip };
                (task, verdict)
            })
            .collect();
        pager.take(judged, page.iterator, page.done);
    }
    Ok(Json(pager.into_response(
        |task| task.id.as_str(),
        |task| BackgroundTaskOut::from(&task),
    )))
}

#[utoipa::path(get, path = "/api/v1/background-task/{task_id}", params(("task_id" = String, Path, description = "Background task id")), responses((status = 200, body = BackgroundTaskOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Background Task")]
pub async fn get(
    State(state): State<ApiState>,
    _admin: AdminOnly,
    Path(task_id): Path<String>,
) -> Result<Json<BackgroundTaskOut>, ApiError> {
    let task = state
        .jobs()
        .get_task(&task_id)
        .await?
        .ok_or(ApiError::NotFound("background task"))?;
    Ok(Json(BackgroundTaskOut::from(&task)))
}
