//! Attempt log routes: by endpoint, by message, one attempt.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use axum::extract::{Path, State};
use axum::Json;
use hookline_core::model::{Attempt, MessageStatus};
use hookline_core::outcome::TransportError;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::attempt_walk;
use super::common::{find_app, ListQuery, ListResponse, Ordering};
use super::endpoints::find_endpoint;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::ApiState;

/// `MessageAttemptOut`, plus Hookline's `attemptNumber`, `errorKind`, `eventType` and
/// `requestHeaders` (credentials redacted) and `responseHeaders`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageAttemptOut {
    pub id: String,
    pub msg_id: String,
    pub endpoint_id: String,
    pub url: String,
    pub response: String,
    pub response_status_code: u16,
    pub response_duration_ms: u64,
    pub status: u8,
    pub status_text: &'static str,
    pub trigger_type: u8,
    pub attempt_number: u32,
    #[schema(value_type = Option<String>)]
    pub error_kind: Option<TransportError>,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    pub event_type: String,
    pub request_headers: BTreeMap<String, String>,
    pub response_headers: BTreeMap<String, String>,
}

impl From<Attempt> for MessageAttemptOut {
    fn from(a: Attempt) -> Self {
        Self {
            id: a.id,
            msg_id: a.msg_id,
            endpoint_id: a.endpoint_id,
            url: a.url,
            response: a.response,
            response_status_code: a.response_status_code,
            response_duration_ms: a.response_duration_ms,
            status: a.status.code(),
            status_text: a.status.text(),
            trigger_type: a.trigger_type.code(),
            attempt_number: a.attempt_number,
            error_kind: a.error,
            timestamp: a.timestamp,
            event_type: a.event_type,
            request_headers: a.request_headers,
            response_headers: a.response_headers,
        }
    }
}

/// Query of the attempt log by endpoint: a page, optionally filtered.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EndpointAttemptsQuery {
    pub limit: Option<usize>,
    pub iterator: Option<String>,
    /// `ascending` is not supported with a filter.
    pub order: Option<Ordering>,
    /// Only attempts with this status: 0 success, 1 pending, 2 fail, 3 sending.
    pub status: Option<u8>,
    /// Only attempts of messages of these event types (repeat the key for several).
    #[serde(default)]
    pub event_types: Vec<String>,
}

/// A filtered listing reads at most this many attempts per request; it answers with what it
/// found and an iterator to continue, so a rare match cannot make one request unbounded.
const MAX_SCANNED: usize = 5_000;

#[utoipa::path(get, path = "/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid"), EndpointAttemptsQuery), responses((status = 200, body = ListResponse<MessageAttemptOut>), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message Attempt")]
pub async fn list_by_endpoint(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<EndpointAttemptsQuery>,
) -> Result<Json<ListResponse<MessageAttemptOut>>, ApiError> {
    let page_query = ListQuery {
        limit: query.limit,
        iterator: query.iterator.clone(),
        order: query.order,
    };
    let request = page_query.page_request(false)?;
    let status = query
        .status
        .map(|code| {
            MessageStatus::from_code(code)
                .ok_or_else(|| ApiError::query_field("status", "must be 0, 1, 2 or 3"))
        })
        .transpose()?;
    let event_types: BTreeSet<String> = query
        .event_types
        .iter()
        .flat_map(|types| types.split(','))
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect();
    let app = find_app(&state, &app_id).await?;
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    if status.is_none() && event_types.is_empty() {
        let page = state
            .attempts()
            .attempts_by_endpoint(&app.id, &endpoint.id, &request)
            .await?;
        return Ok(Json(ListResponse::from_page(page, MessageAttemptOut::from)));
    }
    if request.ascending {
        return Err(ApiError::query_field(
            "order",
            "a filtered listing is newest first",
        ));
    }
    let mut found = Vec::new();
    let mut scanned = 0;
    let walk = attempt_walk::newest_first(&state, &app.id, &endpoint.id, request.iterator, |a| {
        scanned += 1;
        let matches = status.is_none_or(|s| a.status == s)
            && (event_types.is_empty() || event_types.contains(&a.event_type));
        if matches {
            found.push(a.clone());
        }
        if found.len() >= request.limit || scanned >= MAX_SCANNED {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .await?;
    let done = walk.exhausted;
    Ok(Json(ListResponse {
        prev_iterator: found.first().map(|a| a.id.clone()),
        iterator: walk.last_id.filter(|_| !done),
        data: found.into_iter().map(MessageAttemptOut::from).collect(),
        done,
    }))
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/attempt/msg/{msg_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("msg_id" = String, Path, description = "Message id"), ListQuery), responses((status = 200, body = ListResponse<MessageAttemptOut>), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message Attempt")]
pub async fn list_by_message(
    State(state): State<ApiState>,
    Path((app_id, msg_id)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ListResponse<MessageAttemptOut>>, ApiError> {
    let app = find_app(&state, &app_id).await?;
    let message = super::common::find_message(&state, &app.id, &msg_id).await?;
    let page = state
        .attempts()
        .attempts_by_message(&app.id, &message.id, &query.page_request(false)?)
        .await?;
    Ok(Json(ListResponse::from_page(page, MessageAttemptOut::from)))
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("msg_id" = String, Path, description = "Message id"), ("attempt_id" = String, Path, description = "Attempt id")), responses((status = 200, body = MessageAttemptOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message Attempt")]
pub async fn get(
    State(state): State<ApiState>,
    Path((app_id, msg_id, attempt_id)): Path<(String, String, String)>,
) -> Result<Json<MessageAttemptOut>, ApiError> {
    let app = find_app(&state, &app_id).await?;
    let attempt = state
        .attempts()
        .get_attempt(&app.id, &attempt_id)
        .await?
        .filter(|a| a.msg_id == msg_id)
        .ok_or(ApiError::NotFound("attempt"))?;
    Ok(Json(attempt.into()))
}
