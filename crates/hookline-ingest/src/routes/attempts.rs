//! Attempt log routes: by endpoint, by message, one attempt.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, State};
use axum::Json;
use hookline_core::model::{Attempt, Message};
use hookline_core::outcome::TransportError;
use hookline_core::ports::{Page, PageRequest, StoreError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::common::{AttemptPath, EndpointPath, ListQuery, ListResponse, MsgPath, Ordering};
use super::endpoints::find_endpoint;
use super::messages::MessageFilter;
use super::paging::{check_range, event_type_set, Pager, Paging, StatusFilter, TimeRange, Verdict};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::scope::AppScope;
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
    /// The attempt's message (payload `{}`), when the list was asked `with_msg=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg: Option<MessageSummary>,
}

/// `MessageOut` without its payload: what `with_msg` adds to an attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageSummary {
    pub id: String,
    pub event_type: String,
    pub event_id: Option<String>,
    pub channels: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// Always `{}`: attempt lists never carry payloads.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub deliver_at: Option<OffsetDateTime>,
}

impl From<&Message> for MessageSummary {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id.clone(),
            event_type: m.event_type.as_str().to_owned(),
            event_id: m.event_id.as_ref().map(|e| e.as_str().to_owned()),
            channels: m
                .channels
                .as_ref()
                .map(|cs| cs.iter().map(|c| c.as_str().to_owned()).collect()),
            tags: m.tags.clone(),
            payload: serde_json::json!({}),
            timestamp: m.timestamp,
            deliver_at: m.deliver_at,
        }
    }
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
            timestamp: super::common::to_ms(a.timestamp),
            event_type: a.event_type,
            request_headers: a.request_headers,
            response_headers: a.response_headers,
            msg: None,
        }
    }
}

/// Query of the attempt lists: a page and filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptListQuery {
    pub limit: Option<usize>,
    /// An `iterator` or (with a leading `-`) a `prevIterator` from an earlier page.
    pub iterator: Option<String>,
    pub order: Option<Ordering>,
    /// Only attempts with this status: 0 success, 1 pending, 2 fail, 3 sending, 4 canceled
    /// (never: Hookline cancels nothing).
    pub status: Option<u8>,
    /// Only attempts whose response status is in this class: 0 (no response), 100, 200,
    /// 300, 400 or 500.
    pub status_code_class: Option<u16>,
    /// Only attempts of messages of these event types (comma-separated or the key repeated).
    #[serde(default)]
    pub event_types: Vec<String>,
    /// Only attempts of messages sent to this channel.
    pub channel: Option<String>,
    /// Only attempts of messages carrying this tag.
    pub tag: Option<String>,
    /// Only attempts to this endpoint (id or uid; the by-message list).
    pub endpoint_id: Option<String>,
    /// Only attempts made before this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub before: Option<OffsetDateTime>,
    /// Only attempts made after this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub after: Option<OffsetDateTime>,
    /// `false`: each attempt's `response` body is left out (empty). Default `true`.
    pub with_content: Option<bool>,
    /// `true`: each attempt carries its message as `msg` (payload shown as `{}`).
    pub with_msg: Option<bool>,
    /// Accepted for the SDKs; Hookline never cancels an attempt, so it changes nothing.
    pub expanded_statuses: Option<bool>,
}

/// The attempt filters of one request.
struct AttemptFilter {
    status: Option<StatusFilter>,
    code_class: Option<u16>,
    endpoint_id: Option<String>,
    range: TimeRange,
    messages: MessageFilter,
    with_content: bool,
    with_msg: bool,
}

impl AttemptFilter {
    fn parse(query: &AttemptListQuery) -> Result<Self, ApiError> {
        let status = StatusFilter::parse(query.status)?;
        let code_class = query
            .status_code_class
            .map(|class| match class {
                0 | 100 | 200 | 300 | 400 | 500 => Ok(class),
                _ => Err(ApiError::query_field(
                    "status_code_class",
                    "must be 0, 100, 200, 300, 400 or 500",
                )),
            })
            .transpose()?;
        let range = TimeRange {
            before: query.before,
            after: query.after,
        };
        check_range(&range)?;
        Ok(Self {
            status,
            code_class,
            endpoint_id: None,
            range,
            messages: MessageFilter {
                channel: query.channel.clone(),
                tag: query.tag.clone(),
                event_types: event_type_set(&query.event_types),
            },
            with_content: query.with_content.unwrap_or(true),
            with_msg: query.with_msg.unwrap_or(false),
        })
    }

    fn is_set(&self) -> bool {
        self.status.is_some()
            || self.code_class.is_some()
            || self.endpoint_id.is_some()
            || self.range.is_set()
            || self.messages.is_set()
    }

    /// Whether the attempt's own fields pass; the message filters are checked apart.
    fn attempt_matches(&self, a: &Attempt) -> bool {
        let class_ok = self.code_class.is_none_or(|class| match class {
            0 => a.response_status_code == 0,
            _ => (class..class + 100).contains(&a.response_status_code),
        });
        self.status.is_none_or(|s| s.matches(a.status))
            && class_ok
            && self
                .endpoint_id
                .as_deref()
                .is_none_or(|e| a.endpoint_id == e)
            && self.range.contains(a.timestamp)
            && (self.messages.event_types.is_empty()
                || self.messages.event_types.contains(&a.event_type))
    }

    /// Whether the message filters need each attempt's message.
    fn needs_message(&self) -> bool {
        self.messages.channel.is_some() || self.messages.tag.is_some() || self.with_msg
    }
}

/// Messages read while filtering one page, so each is read once.
type MessageCache = HashMap<String, Option<Message>>;

/// Reads one page of attempts from `read` (a store listing), filtered.
async fn filtered_attempts<F, Fut>(
    state: &ApiState,
    app_id: &str,
    paging: Paging,
    filter: &AttemptFilter,
    mut read: F,
) -> Result<ListResponse<MessageAttemptOut>, ApiError>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<Page<Attempt>, StoreError>>,
{
    let mut cache = MessageCache::new();
    let mut pager = Pager::new(paging, filter.is_set());
    while let Some(request) = pager.next_request() {
        let page = read(request).await?;
        let mut judged = Vec::with_capacity(page.items.len());
        for attempt in page.items {
            let mut keep = filter.attempt_matches(&attempt);
            if keep && filter.needs_message() {
                let message = cached_message(state, app_id, &attempt.msg_id, &mut cache).await?;
                keep = message.is_none_or(|m| filter.messages.matches(m))
                    && (message.is_some() || !filter.messages.is_set());
            }
            let verdict = if keep { Verdict::Keep } else { Verdict::Skip };
            judged.push((attempt, verdict));
        }
        pager.take(judged, page.iterator, page.done);
    }
    let page = pager.into_response(|a| a.id.as_str(), |a| a);
    let data = page
        .data
        .into_iter()
        .map(|attempt| {
            let msg = filter
                .with_msg
                .then(|| cache.get(&attempt.msg_id).cloned().flatten())
                .flatten();
            let mut out = MessageAttemptOut::from(attempt);
            if !filter.with_content {
                out.response = String::new();
            }
            out.msg = msg.map(|m| MessageSummary::from(&m));
            out
        })
        .collect();
    Ok(ListResponse {
        data,
        iterator: page.iterator,
        prev_iterator: page.prev_iterator,
        done: page.done,
    })
}

async fn cached_message<'c>(
    state: &ApiState,
    app_id: &str,
    msg_id: &str,
    cache: &'c mut MessageCache,
) -> Result<Option<&'c Message>, ApiError> {
    if !cache.contains_key(msg_id) {
        let message = state.messages().get_message(app_id, msg_id).await?;
        cache.insert(msg_id.to_owned(), message);
    }
    Ok(cache.get(msg_id).and_then(Option::as_ref))
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid"), AttemptListQuery), responses((status = 200, body = ListResponse<MessageAttemptOut>), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message Attempt")]
pub async fn list_by_endpoint(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    ApiQuery(query): ApiQuery<AttemptListQuery>,
) -> Result<Json<ListResponse<MessageAttemptOut>>, ApiError> {
    let paging = Paging::from_query(&page_query(&query), false)?;
    let filter = AttemptFilter::parse(&query)?;
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let attempts = state.attempts();
    let page = filtered_attempts(&state, &app.id, paging, &filter, |request| {
        let (attempts, app_id, endpoint_id) = (attempts, app.id.clone(), endpoint.id.clone());
        async move {
            attempts
                .attempts_by_endpoint(&app_id, &endpoint_id, &request)
                .await
        }
    })
    .await?;
    Ok(Json(page))
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/attempt/msg/{msg_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("msg_id" = String, Path, description = "Message id"), AttemptListQuery), responses((status = 200, body = ListResponse<MessageAttemptOut>), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message Attempt")]
pub async fn list_by_message(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(MsgPath { msg_id }): Path<MsgPath>,
    ApiQuery(query): ApiQuery<AttemptListQuery>,
) -> Result<Json<ListResponse<MessageAttemptOut>>, ApiError> {
    let paging = Paging::from_query(&page_query(&query), false)?;
    let mut filter = AttemptFilter::parse(&query)?;
    let message = super::common::find_message(&state, &app.id, &msg_id).await?;
    if let Some(wanted) = &query.endpoint_id {
        // A uid names the endpoint's id; a name no endpoint has matches no attempt.
        let id = state
            .registry()
            .get_endpoint(&app.id, wanted)
            .await?
            .map_or_else(|| wanted.clone(), |e| e.id);
        filter.endpoint_id = Some(id);
    }
    let attempts = state.attempts();
    let page = filtered_attempts(&state, &app.id, paging, &filter, |request| {
        let (attempts, app_id, msg_id) = (attempts, app.id.clone(), message.id.clone());
        async move {
            attempts
                .attempts_by_message(&app_id, &msg_id, &request)
                .await
        }
    })
    .await?;
    Ok(Json(page))
}

fn page_query(query: &AttemptListQuery) -> ListQuery {
    ListQuery {
        limit: query.limit,
        iterator: query.iterator.clone(),
        order: query.order,
    }
}

/// Query of reading one attempt.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AttemptGetQuery {
    /// Accepted for the SDKs (the Python SDK always sends it); Hookline never cancels an
    /// attempt, so it changes nothing.
    pub expanded_statuses: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("msg_id" = String, Path, description = "Message id"), ("attempt_id" = String, Path, description = "Attempt id"), AttemptGetQuery), responses((status = 200, body = MessageAttemptOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message Attempt")]
pub async fn get(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(AttemptPath { msg_id, attempt_id }): Path<AttemptPath>,
    ApiQuery(_query): ApiQuery<AttemptGetQuery>,
) -> Result<Json<MessageAttemptOut>, ApiError> {
    let attempt = state
        .attempts()
        .get_attempt(&app.id, &attempt_id)
        .await?
        .filter(|a| a.msg_id == msg_id)
        .ok_or(ApiError::NotFound("attempt"))?;
    Ok(Json(attempt.into()))
}
