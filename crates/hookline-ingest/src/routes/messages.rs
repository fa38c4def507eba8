//! `/api/v1/app/{app_id}/msg`: message intake and reading.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hookline_core::id;
use hookline_core::json::{minify, nesting_depth};
use hookline_core::model::{App, Endpoint, Message};
use hookline_core::names::{Channel, EventId, EventTypeName, IdempotencyKey};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use super::apps::{new_app, ApplicationIn};
use super::common::{now, parse_names, unix_ms, ListQuery, ListResponse, MsgPath, Ordering};
use super::paging::{check_range, event_type_set, Pager, Paging, TimeRange, Verdict};
use crate::error::{ApiError, FieldError};
use crate::extract::{ApiJson, ApiQuery};
use crate::intake::{accept, NewMessage};
use crate::scope::{AppScope, AppTarget};
use crate::state::ApiState;

/// Most channels one message may carry (Svix's limit).
const MAX_CHANNELS: usize = 5;
/// `payloadRetentionPeriod` bounds in days (Svix's).
const MIN_RETENTION_DAYS: u64 = 1;

/// `MessageIn`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageIn {
    pub event_type: String,
    pub event_id: Option<String>,
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
    pub channels: Option<Vec<String>>,
    /// Free-form labels the message list can be filtered by (`tag`); they do not route.
    pub tags: Option<Vec<String>>,
    /// Days the message is kept (default and most: `api.max_retention_days`).
    pub payload_retention_period: Option<u64>,
    /// Hours the message is kept, instead of `payloadRetentionPeriod`.
    pub payload_retention_hours: Option<u64>,
    /// Parameters for transformations: refused when set, as Hookline runs none.
    #[schema(value_type = Option<Object>)]
    pub transformations_params: Option<serde_json::Value>,
    /// Creates the application alongside the message when it does not exist.
    pub application: Option<ApplicationIn>,
    /// Deliver at this time instead of now (at most the retention period ahead).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub deliver_at: Option<OffsetDateTime>,
}

/// `MessageOut`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageOut<'a> {
    #[schema(value_type = String)]
    pub id: &'a str,
    #[schema(value_type = String)]
    pub event_type: &'a EventTypeName,
    #[schema(value_type = Option<String>)]
    pub event_id: Option<&'a EventId>,
    #[schema(value_type = Option<Vec<String>>)]
    pub channels: Option<&'a [Channel]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<&'a [String]>,
    /// `{}` when the listing was asked `with_content=false`.
    #[schema(value_type = Object)]
    pub payload: &'a RawValue,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// When delivery was asked to start, if the message was created with `deliverAt`.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub deliver_at: Option<OffsetDateTime>,
}

impl<'a> From<&'a Message> for MessageOut<'a> {
    fn from(m: &'a Message) -> Self {
        Self {
            id: &m.id,
            event_type: &m.event_type,
            event_id: m.event_id.as_ref(),
            channels: m.channels.as_deref(),
            tags: m.tags.as_deref(),
            payload: &m.payload,
            timestamp: m.timestamp,
            deliver_at: m.deliver_at,
        }
    }
}

impl<'a> MessageOut<'a> {
    /// The message, its payload shown as `{}` unless `with_content`.
    pub fn with_content(m: &'a Message, with_content: bool) -> Self {
        let mut out = Self::from(m);
        if !with_content {
            out.payload = empty_payload();
        }
        out
    }
}

/// `{}`: the payload of a message listed without content.
fn empty_payload() -> &'static RawValue {
    static EMPTY: std::sync::LazyLock<Box<RawValue>> = std::sync::LazyLock::new(|| {
        RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| unreachable!("{{}} is JSON"))
    });
    &EMPTY
}

#[utoipa::path(post, path = "/api/v1/app/{app_id}/msg", params(("app_id" = String, Path, description = "Application id or uid"), WithContentQuery, ("idempotency-key" = Option<String>, Header, description = "Repeats with the same key return the original message")), request_body = MessageIn, responses((status = 202, body = MessageOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message")]
#[tracing::instrument(name = "ingest message", skip_all, fields(app_id = %app_id))]
pub async fn create(
    State(state): State<ApiState>,
    AppTarget { app_id }: AppTarget,
    ApiQuery(query): ApiQuery<WithContentQuery>,
    headers: HeaderMap,
    ApiJson(mut input): ApiJson<MessageIn>,
) -> Result<Response, ApiError> {
    let _admitted = state.admission().enter(&app_id).await;
    let waiting = state.admission().waiting();
    state
        .metrics()
        .admission_waiting
        .set(i64::try_from(waiting).unwrap_or(i64::MAX));
    let idempotency_header = match headers.get("idempotency-key") {
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                ApiError::BadRequest("idempotency-key must be visible ASCII".into())
            })?;
            Some(
                IdempotencyKey::parse(text)
                    .map_err(|e| ApiError::BadRequest(format!("idempotency-key {e}")))?,
            )
        }
        None => None,
    };
    let found = state.group().app_with_endpoints(&app_id).await?;
    if found.is_none() && input.application.is_none() {
        return Err(ApiError::NotFound("application"));
    }
    // Everything is checked before anything is created, so a rejected message leaves no
    // application behind.
    let application = input.application.take();
    let mut new = validate(&state, input, idempotency_header)?;
    let created;
    let (app, endpoints): (&App, &[Endpoint]) = match &found {
        Some(found) => (&found.0, &found.1),
        None => {
            let candidate = app_for_message(&app_id, application)?;
            created = create_app_for_message(&state, &app_id, candidate).await?;
            (&created, &[])
        }
    };
    new.message.app_id.clone_from(&app.id);
    // The whole message is kept for the idempotency keys; `with_content` shapes only this
    // answer, so a repeat may ask for the payload again.
    let accepted = accept(&state, app, endpoints, new, |message| {
        serde_json::to_string(&MessageOut::from(message))
            .map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await?;
    let body = if query.with_content.unwrap_or(true) {
        accepted.0
    } else {
        without_payload(&accepted.0)?
    };
    Ok((
        StatusCode::ACCEPTED,
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// `with_content` of creating and reading one message.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WithContentQuery {
    /// `false`: the answer shows the payload as `{}` (what the v2 SDKs ask by default).
    /// Default `true`.
    pub with_content: Option<bool>,
}

/// A `MessageOut` body (as kept for its idempotency keys) with its payload shown as `{}`.
/// The payload is skipped over as raw JSON, never parsed into values.
fn without_payload(body: &str) -> Result<String, ApiError> {
    let mut fields: std::collections::BTreeMap<String, &RawValue> = serde_json::from_str(body)
        .map_err(|e| ApiError::Internal(format!("stored message answer is not JSON: {e}")))?;
    fields.insert("payload".to_owned(), empty_payload());
    serde_json::to_string(&fields).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Svix's `application` field: the app to create, named by the path, with the message.
pub(crate) fn app_for_message(
    app_id: &str,
    given: Option<ApplicationIn>,
) -> Result<hookline_core::model::App, ApiError> {
    let given = given.ok_or(ApiError::NotFound("application"))?;
    new_app(ApplicationIn {
        uid: given.uid.or_else(|| Some(app_id.to_owned())),
        ..given
    })
    .map_err(|error| match error {
        ApiError::Validation(fields) => ApiError::Validation(
            fields
                .into_iter()
                .map(|f| {
                    let field: Vec<&str> = f.loc.iter().skip(1).map(String::as_str).collect();
                    FieldError::body(&format!("application.{}", field.join(".")), f.msg)
                })
                .collect(),
        ),
        other => other,
    })
}

/// Creates the app for a message; a concurrent create of the same uid wins and is used.
pub(crate) async fn create_app_for_message(
    state: &ApiState,
    app_id: &str,
    app: hookline_core::model::App,
) -> Result<hookline_core::model::App, ApiError> {
    match state.registry().create_app(&app).await {
        Ok(()) => Ok(app),
        // Lost a race with a concurrent create of the same uid: use the winner.
        Err(hookline_core::ports::StoreError::Conflict(_)) => state
            .registry()
            .get_app(app_id)
            .await?
            .ok_or(ApiError::NotFound("application")),
        Err(other) => Err(other.into()),
    }
}

/// A message's channels: 1 to [`MAX_CHANNELS`] names.
pub(crate) fn parse_channels(
    channels: Option<Vec<String>>,
) -> Result<Option<Vec<Channel>>, ApiError> {
    channels
        .map(|c| {
            if c.is_empty() || c.len() > MAX_CHANNELS {
                return Err(ApiError::field(
                    "channels",
                    format!("must list 1 to {MAX_CHANNELS} channels"),
                ));
            }
            parse_names("channels", c, Channel::parse)
        })
        .transpose()
}

/// Most tags one message may carry.
const MAX_TAGS: usize = 5;
/// Longest tag.
const MAX_TAG_LEN: usize = 128;

/// Tags: 1 to [`MAX_TAGS`] distinct names of letters, digits and `-_./\#`.
fn validate_tags(tags: Vec<String>) -> Result<Vec<String>, ApiError> {
    if tags.is_empty() || tags.len() > MAX_TAGS {
        return Err(ApiError::field(
            "tags",
            format!("must list 1 to {MAX_TAGS} tags"),
        ));
    }
    for (i, tag) in tags.iter().enumerate() {
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-_./\\#".contains(c);
        if tag.is_empty() || tag.len() > MAX_TAG_LEN || !tag.chars().all(allowed) {
            return Err(ApiError::field(
                &format!("tags.{i}"),
                format!("must be 1 to {MAX_TAG_LEN} letters, digits or -_./\\#"),
            ));
        }
        if tags[..i].contains(tag) {
            return Err(ApiError::field(&format!("tags.{i}"), "is listed twice"));
        }
    }
    Ok(tags)
}

/// How long a message is kept: `payloadRetentionPeriod` days or `payloadRetentionHours`
/// hours (not both), at least one hour and at most `max_days`; `max_days` by default.
fn retention_secs(days: Option<u64>, hours: Option<u64>, max_days: u64) -> Result<u64, ApiError> {
    match (days, hours) {
        (Some(_), Some(_)) => Err(ApiError::field(
            "payloadRetentionHours",
            "give payloadRetentionPeriod or payloadRetentionHours, not both",
        )),
        (Some(days), None) if !(MIN_RETENTION_DAYS..=max_days).contains(&days) => {
            Err(ApiError::field(
                "payloadRetentionPeriod",
                format!("must be between {MIN_RETENTION_DAYS} and {max_days} days"),
            ))
        }
        (None, Some(hours)) if !(1..=max_days.saturating_mul(24)).contains(&hours) => {
            Err(ApiError::field(
                "payloadRetentionHours",
                format!(
                    "must be between 1 and {} hours",
                    max_days.saturating_mul(24)
                ),
            ))
        }
        (None, Some(hours)) => Ok(hours * 3600),
        (days, None) => Ok(days.unwrap_or(max_days) * 24 * 3600),
    }
}

/// The message as it will be stored; its `app_id` is filled in once the app is known.
fn validate(
    state: &ApiState,
    input: MessageIn,
    idempotency_header: Option<IdempotencyKey>,
) -> Result<NewMessage, ApiError> {
    let event_type = EventTypeName::parse(input.event_type)
        .map_err(|e| ApiError::field("eventType", e.to_string()))?;
    let event_id = input
        .event_id
        .map(|e| EventId::parse(e).map_err(|err| ApiError::field("eventId", err.to_string())))
        .transpose()?;
    let channels = parse_channels(input.channels)?;
    let tags = input.tags.map(validate_tags).transpose()?;
    let raw = input.payload.get();
    if !raw.trim_start().starts_with('{') {
        return Err(ApiError::field("payload", "must be a JSON object"));
    }
    let max_depth = state.config().max_payload_depth;
    if nesting_depth(raw) > max_depth {
        return Err(ApiError::field(
            "payload",
            format!("must not nest deeper than {max_depth} levels"),
        ));
    }
    let payload = RawValue::from_string(minify(raw))
        .map_err(|e| ApiError::Internal(format!("minified payload is not JSON: {e}")))?;
    if input
        .transformations_params
        .as_ref()
        .is_some_and(|p| !p.is_null())
    {
        return Err(ApiError::field(
            "transformationsParams",
            "Hookline runs no transformations; leave this out",
        ));
    }
    let retention_secs = retention_secs(
        input.payload_retention_period,
        input.payload_retention_hours,
        state.config().max_retention_days,
    )?;
    let timestamp = now();
    if let Some(at) = input.deliver_at {
        // The message must still exist when it is delivered.
        let horizon =
            timestamp + time::Duration::seconds(i64::try_from(retention_secs).unwrap_or(i64::MAX));
        if at > horizon {
            return Err(ApiError::field(
                "deliverAt",
                "must be within the message's retention period",
            ));
        }
    }
    let mut idempotency_keys = Vec::new();
    if let Some(event_id) = &event_id {
        idempotency_keys.push(crate::intake::event_id_key(event_id.as_str()));
    }
    if let Some(header) = &idempotency_header {
        idempotency_keys.push(format!("idem:{}", header.as_str()));
    }
    Ok(NewMessage {
        message: Message {
            id: id::new_id("msg", unix_ms(timestamp)),
            app_id: String::new(),
            event_type,
            event_id,
            channels,
            tags,
            payload,
            timestamp,
            deliver_at: input.deliver_at,
        },
        retention_secs,
        idempotency_keys,
        deliver_at: input.deliver_at,
    })
}

/// `GET …/msg` query: a page, filters and whether payloads are included.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageListQuery {
    pub limit: Option<usize>,
    /// An `iterator` or (with a leading `-`) a `prevIterator` from an earlier page.
    pub iterator: Option<String>,
    pub order: Option<Ordering>,
    /// Only messages sent to this channel.
    pub channel: Option<String>,
    /// Only messages carrying this tag.
    pub tag: Option<String>,
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
}

/// The message filters of a listing (messages, or the messages of attempts).
#[derive(Debug, Default, Clone)]
pub struct MessageFilter {
    pub channel: Option<String>,
    pub tag: Option<String>,
    pub event_types: std::collections::BTreeSet<String>,
}

impl MessageFilter {
    pub fn is_set(&self) -> bool {
        self.channel.is_some() || self.tag.is_some() || !self.event_types.is_empty()
    }

    pub fn matches(&self, m: &Message) -> bool {
        let channel_ok = self.channel.as_deref().is_none_or(|wanted| {
            m.channels
                .as_deref()
                .is_some_and(|cs| cs.iter().any(|c| c.as_str() == wanted))
        });
        let tag_ok = self.tag.as_deref().is_none_or(|wanted| {
            m.tags
                .as_deref()
                .is_some_and(|ts| ts.iter().any(|t| t == wanted))
        });
        let type_ok =
            self.event_types.is_empty() || self.event_types.contains(m.event_type.as_str());
        channel_ok && tag_ok && type_ok
    }
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg", params(("app_id" = String, Path, description = "Application id or uid"), MessageListQuery), responses((status = 200, body = ListResponse<MessageOut>), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message")]
pub async fn list(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    ApiQuery(query): ApiQuery<MessageListQuery>,
) -> Result<Response, ApiError> {
    let paging = Paging::from_query(
        &ListQuery {
            limit: query.limit,
            iterator: query.iterator.clone(),
            order: query.order,
        },
        false,
    )?;
    let range = TimeRange {
        before: query.before,
        after: query.after,
    };
    check_range(&range)?;
    let filter = MessageFilter {
        channel: query.channel,
        tag: query.tag,
        event_types: event_type_set(&query.event_types),
    };
    let store_ascending = paging.store_ascending();
    let mut pager = Pager::new(paging, filter.is_set() || range.is_set());
    pager.skip_to(range.start_id("msg", store_ascending));
    pager.narrow_to_event_types(Some(filter.event_types.iter().cloned().collect()));
    while let Some(request) = pager.next_request() {
        let page = state.messages().list_messages(&app.id, &request).await?;
        let judged = page
            .items
            .into_iter()
            .map(|m| {
                let verdict = match range.verdict(m.timestamp, store_ascending) {
                    Verdict::Keep if !filter.matches(&m) => Verdict::Skip,
                    other => other,
                };
                (m, verdict)
            })
            .collect();
        pager.take(judged, page.iterator, page.done);
    }
    let messages = pager.into_response(|m| m.id.as_str(), |m| m);
    let with_content = query.with_content.unwrap_or(true);
    let body = ListResponse {
        data: messages
            .data
            .iter()
            .map(|m| MessageOut::with_content(m, with_content))
            .collect(),
        iterator: messages.iterator.clone(),
        prev_iterator: messages.prev_iterator.clone(),
        done: messages.done,
    };
    Ok(Json(body).into_response())
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg/{msg_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("msg_id" = String, Path, description = "Message id or eventId"), WithContentQuery), responses((status = 200, body = MessageOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message")]
pub async fn get(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(MsgPath { msg_id }): Path<MsgPath>,
    ApiQuery(query): ApiQuery<WithContentQuery>,
) -> Result<Response, ApiError> {
    let message = super::common::find_message(&state, &app.id, &msg_id).await?;
    let with_content = query.with_content.unwrap_or(true);
    Ok(Json(MessageOut::with_content(&message, with_content)).into_response())
}
