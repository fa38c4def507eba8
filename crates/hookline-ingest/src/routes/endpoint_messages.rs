//! The messages an endpoint was sent (Svix "list attempted messages"), newest first, each
//! with its delivery state to that endpoint.
//!
//! Pages follow the endpoint's attempt log, so a message whose attempts straddle a page
//! boundary can appear on both pages; within a page each message appears once. Filters apply
//! to the message (channel, tag, event type, creation time) and its state for the endpoint.

use axum::extract::{Path, State};
use axum::Json;
use std::collections::HashSet;

use hookline_core::model::{DestinationStatus, Message, MessageStatus};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::common::{EndpointPath, ListQuery, ListResponse, Ordering};
use super::endpoints::find_endpoint;
use super::messages::{MessageFilter, MessageOut};
use super::paging::{check_range, event_type_set, Pager, Paging, TimeRange, Verdict};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::scope::AppScope;
use crate::state::ApiState;

/// `EndpointMessageOut`: the message plus its state for this endpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointMessageOut<'a> {
    #[serde(flatten)]
    pub message: MessageOut<'a>,
    pub status: u8,
    pub status_text: &'static str,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt: Option<OffsetDateTime>,
}

/// `GET …/endpoint/{endpoint_id}/msg` query: a page and filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptedMessagesQuery {
    pub limit: Option<usize>,
    /// An `iterator` or (with a leading `-`) a `prevIterator` from an earlier page.
    pub iterator: Option<String>,
    pub order: Option<Ordering>,
    /// Only messages sent to this channel.
    pub channel: Option<String>,
    /// Only messages carrying this tag.
    pub tag: Option<String>,
    /// Only messages in this delivery state to the endpoint: 0 success, 1 pending, 2 fail,
    /// 3 sending.
    pub status: Option<u8>,
    /// Only messages of these event types (comma-separated or the key repeated).
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Only messages created before this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub before: Option<OffsetDateTime>,
    /// Only messages created after this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub after: Option<OffsetDateTime>,
    /// `false`: every payload is shown as `{}`. Default `true`.
    pub with_content: Option<bool>,
    /// Accepted for the SDKs; Hookline never cancels a delivery, so it changes nothing.
    pub expanded_statuses: Option<bool>,
}

/// One row of the page: the attempt it was found through, its message and state.
type Row = (String, Message, DestinationStatus);

#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/msg", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid"), AttemptedMessagesQuery), responses((status = 200, body = ListResponse<EndpointMessageOut>), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message Attempt")]
pub async fn list(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    ApiQuery(query): ApiQuery<AttemptedMessagesQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;

    let paging = Paging::from_query(
        &ListQuery {
            limit: query.limit,
            iterator: query.iterator.clone(),
            order: query.order,
        },
        false,
    )?;
    let status = query
        .status
        .map(|code| {
            MessageStatus::from_code(code)
                .ok_or_else(|| ApiError::query_field("status", "must be 0, 1, 2 or 3"))
        })
        .transpose()?;
    let range = TimeRange {
        before: query.before,
        after: query.after,
    };
    check_range(&range)?;
    let filter = MessageFilter {
        channel: query.channel.clone(),
        tag: query.tag.clone(),
        event_types: event_type_set(&query.event_types),
    };
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    // Pages follow the endpoint's attempt log (the iterator is an attempt id), keeping each
    // message once per page.
    let mut seen = HashSet::new();
    let mut pager: Pager<Option<Row>> = Pager::new(paging, true);
    while let Some(request) = pager.next_request() {
        let page = state
            .attempts()
            .attempts_by_endpoint(&app.id, &endpoint.id, &request)
            .await?;
        let mut judged = Vec::with_capacity(page.items.len());
        for attempt in page.items {
            let row = if seen.insert(attempt.msg_id.clone()) {
                row_for(&state, &app.id, &endpoint.id, attempt).await?
            } else {
                None
            };
            let keep = row.as_ref().is_some_and(|(_, message, destination)| {
                filter.matches(message)
                    && range.contains(message.timestamp)
                    && status.is_none_or(|s| destination.status == s)
            });
            judged.push((row, if keep { Verdict::Keep } else { Verdict::Skip }));
        }
        pager.take(judged, page.iterator, page.done);
    }
    let rows = pager.into_response(
        |row| {
            row.as_ref()
                .map_or("", |(attempt_id, _, _)| attempt_id.as_str())
        },
        |row| row,
    );
    let with_content = query.with_content.unwrap_or(true);
    let data = rows
        .data
        .iter()
        .flatten()
        .map(|(_, message, destination)| EndpointMessageOut {
            message: MessageOut::with_content(message, with_content),
            status: destination.status.code(),
            status_text: destination.status.text(),
            next_attempt: destination.next_attempt,
        })
        .collect();
    let body = ListResponse {
        data,
        iterator: rows.iterator,
        prev_iterator: rows.prev_iterator,
        done: rows.done,
    };
    Ok(Json(body).into_response())
}

/// The message of an attempt and its state for the endpoint, if both are still kept.
async fn row_for(
    state: &ApiState,
    app_id: &str,
    endpoint_id: &str,
    attempt: hookline_core::model::Attempt,
) -> Result<Option<Row>, ApiError> {
    let Some(message) = state
        .messages()
        .get_message(app_id, &attempt.msg_id)
        .await?
    else {
        return Ok(None);
    };
    let destination = state
        .messages()
        .destinations(app_id, &message.id)
        .await?
        .into_iter()
        .find(|d| d.endpoint_id == endpoint_id);
    Ok(destination.map(|d| (attempt.id, message, d)))
}
