//! `/api/v1/app/{app_id}/destination`: Svix's destinations, of the one type Hookline offers,
//! `fifoEndpoint`.
//!
//! Svix has no ordering setting on endpoints; it offers ordered delivery as a destination of
//! type `fifoEndpoint` (the Python SDK's `client.destination`). Here such a destination *is*
//! an endpoint with `fifo` set: same id (`ep_…`) and uid, its `config.url`, `config.headers`
//! and `config.key` are the endpoint's URL, custom headers and signing secret, `status`
//! is its `disabled`. So it also appears in the endpoint list, and every endpoint route
//! works on it; this list shows only the app's ordered endpoints. Creating, changing and
//! deleting go through the endpoint routes' own steps (cap, uid, operational events), and
//! rotating the secret through the endpoint's rotation.
//!
//! Other destination types (queues, storage, polling) are refused with `not_supported`
//! naming `type`; batching (`batchSize` above 1, `maxWaitSecs` above 0) with a 422.

use std::collections::BTreeMap;
use std::fmt;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use hookline_core::id;
use hookline_core::model::{App, Endpoint, SignatureScheme};
use hookline_core::names::{Channel, EventTypeName, Uid};
use hookline_core::secret::SecretText;
use hookline_core::signing::{KeyType, SigningKey};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::common::{now, nullable, unix_ms, EndpointPath, ListQuery, ListResponse};
use super::endpoint_fifo::EndpointFifoOut;
use super::endpoint_headers::EndpointHeadersOut;
use super::endpoint_secret::{
    check_scheme_fits_key, rotate_once, EndpointSecretOut, EndpointSecretRotateIn,
};
use super::endpoints::{
    insert_endpoint, parse_channels, parse_event_types, parse_headers, parse_secret, parse_uid,
    parse_url, remove_endpoint, save_endpoint,
};
use crate::error::{ApiError, FieldError};
use crate::extract::{ApiJson, ApiQuery};
use crate::idempotent::once;
use crate::scope::AppScope;
use crate::state::ApiState;
use crate::unsupported::OTHER_DESTINATIONS;

/// The only destination type Hookline serves.
const FIFO_ENDPOINT: &str = "fifoEndpoint";

/// `…/destination/{destination_id}` (the scope extractors read `{app_id}`).
#[derive(Debug, Deserialize)]
pub struct DestinationPath {
    pub destination_id: String,
}

/// A destination's type. Only `fifoEndpoint` is served; any other is refused with
/// `not_supported`.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum DestinationType {
    FifoEndpoint,
}

/// `DestinationStatusIn`: whether the destination receives messages.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DestinationStatusIn {
    Enabled,
    Disabled,
}

impl DestinationStatusIn {
    fn disabled(self) -> bool {
        matches!(self, Self::Disabled)
    }
}

/// `DestinationStatus`: `retrying` while the message at the head of the line has failed
/// and waits for its next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DestinationStatus {
    Enabled,
    Disabled,
    Retrying,
}

/// A `config` as sent, read into its type's shape once the type is known (so another type's
/// config is refused as that type, not as a list of unknown fields). Its `Debug` hides it:
/// it may hold a signing key.
#[derive(Deserialize)]
#[serde(transparent)]
pub struct ConfigJson(serde_json::Value);

impl fmt::Debug for ConfigJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConfigJson(..)")
    }
}

/// `FifoEndpointConfigIn`: where and how the ordered endpoint is called.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct FifoEndpointConfigIn {
    pub url: String,
    /// Custom headers sent with every delivery.
    pub headers: Option<BTreeMap<String, String>>,
    /// The `whsec_…` signing secret, or a `whsk_…` ed25519 secret key; an HMAC secret is
    /// generated when absent.
    #[schema(value_type = Option<String>)]
    pub key: Option<SecretText>,
}

/// `SinkHttpConfigPatch`: the config a patch may change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct FifoEndpointConfigPatch {
    pub url: Option<String>,
}

/// `SinkHttpConfigOut`: the URL and custom headers (never the key: `GET …/endpoint/{id}/secret`
/// reads it).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FifoEndpointConfigOut {
    pub url: String,
    pub headers: EndpointHeadersOut,
}

/// `DestinationIn` (create, and upsert's PUT). `batchSize` must be 1 and `maxWaitSecs` 0:
/// an ordered endpoint gets one message per request, as soon as its turn comes.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationIn {
    pub uid: Option<String>,
    /// `enabled` (the default) or `disabled`.
    pub status: Option<DestinationStatusIn>,
    /// Only 1.
    pub batch_size: Option<u64>,
    /// Only 0.
    pub max_wait_secs: Option<u64>,
    /// Event types sent to the destination; empty or absent: all.
    pub event_types: Option<Vec<String>>,
    /// Channels sent to the destination; empty or absent: all.
    pub channels: Option<Vec<String>>,
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(rename = "type")]
    #[schema(value_type = DestinationType)]
    pub kind: String,
    #[schema(value_type = FifoEndpointConfigIn)]
    pub config: ConfigJson,
}

/// `DestinationPatch`: absent fields stay, `null` clears `uid`, `eventTypes` and `channels`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationPatch {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub uid: Option<Option<String>>,
    pub status: Option<DestinationStatusIn>,
    /// Only 1.
    pub batch_size: Option<u64>,
    /// Only 0.
    pub max_wait_secs: Option<u64>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub event_types: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub channels: Option<Option<Vec<String>>>,
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(rename = "type")]
    #[schema(value_type = DestinationType)]
    pub kind: String,
    #[schema(value_type = Option<FifoEndpointConfigPatch>)]
    pub config: Option<ConfigJson>,
}

/// `DestinationOut`. `currentIterator` is the message at the head of the line ("" when the
/// line is empty); while that message is failing, `status` is `retrying`, `failureReason`
/// says so and `nextRetryAt` is its next attempt.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DestinationOut {
    pub id: String,
    #[schema(value_type = Option<String>)]
    pub uid: Option<Uid>,
    pub status: DestinationStatus,
    pub current_iterator: String,
    pub failure_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Always 1.
    pub batch_size: u32,
    /// Always 0.
    pub max_wait_secs: u32,
    #[schema(value_type = Option<Vec<String>>)]
    pub event_types: Option<Vec<EventTypeName>>,
    #[schema(value_type = Option<Vec<String>>)]
    pub channels: Option<Vec<Channel>>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_retry_at: Option<OffsetDateTime>,
    pub metadata: BTreeMap<String, String>,
    #[serde(rename = "type")]
    pub kind: DestinationType,
    pub config: FifoEndpointConfigOut,
}

impl DestinationOut {
    /// The ordered endpoint `ep` as a destination, with its `line` as the line state route
    /// reads it (`None`: a new endpoint, whose line is empty).
    fn of(ep: Endpoint, line: Option<&EndpointFifoOut>) -> Self {
        let head = line.and_then(|line| line.head.as_ref());
        let blocked = head.filter(|head| head.blocked);
        Self {
            id: ep.id,
            uid: ep.uid,
            status: match (ep.disabled, blocked) {
                (true, _) => DestinationStatus::Disabled,
                (false, Some(_)) => DestinationStatus::Retrying,
                (false, None) => DestinationStatus::Enabled,
            },
            current_iterator: head.map(|head| head.msg_id.clone()).unwrap_or_default(),
            failure_reason: blocked.map(|head| {
                format!(
                    "blocked by {} after {} attempts",
                    head.msg_id, head.attempts
                )
            }),
            created_at: ep.created_at,
            updated_at: ep.updated_at,
            batch_size: 1,
            max_wait_secs: 0,
            event_types: ep.event_types,
            channels: ep.channels,
            next_retry_at: blocked.and_then(|head| head.next_attempt),
            metadata: ep.metadata,
            kind: DestinationType::FifoEndpoint,
            config: FifoEndpointConfigOut {
                url: ep.url,
                headers: EndpointHeadersOut {
                    headers: ep.headers,
                    sensitive: Vec::new(),
                },
            },
        }
    }
}

/// Refuses every type but `fifoEndpoint`, naming `type`.
fn check_type(kind: &str) -> Result<(), ApiError> {
    if kind == FIFO_ENDPOINT {
        return Ok(());
    }
    Err(ApiError::NotSupported {
        operation: "a destination whose `type` is not `fifoEndpoint`",
        why: OTHER_DESTINATIONS,
    })
}

/// Batching is not built: one message per request, sent as soon as its turn comes.
fn check_batching(batch_size: Option<u64>, max_wait_secs: Option<u64>) -> Result<(), ApiError> {
    if batch_size.is_some_and(|size| size != 1) {
        return Err(ApiError::field(
            "batchSize",
            "must be 1: Hookline sends an ordered endpoint one message per request",
        ));
    }
    if max_wait_secs.is_some_and(|secs| secs != 0) {
        return Err(ApiError::field(
            "maxWaitSecs",
            "must be 0: Hookline sends each message as soon as its turn comes",
        ));
    }
    Ok(())
}

/// Reads `config` into `T` as the request body's extractor reads a body (every field read
/// or refused), with the errors' `loc` under `config`.
fn parse_config<T: DeserializeOwned>(config: &ConfigJson) -> Result<T, ApiError> {
    let bytes =
        serde_json::to_vec(&config.0).map_err(|e| ApiError::field("config", e.to_string()))?;
    crate::extract::parse_json(&bytes).map_err(|error| match error {
        ApiError::Validation(fields) => {
            ApiError::Validation(fields.into_iter().map(under_config).collect())
        }
        other => other,
    })
}

fn under_config(mut field: FieldError) -> FieldError {
    field
        .loc
        .insert(1.min(field.loc.len()), "config".to_owned());
    if field.kind == "not_supported" {
        return crate::extract::unsupported(field.loc);
    }
    field
}

/// Svix: an empty filter list filters nothing.
fn filter_types(types: Option<Vec<String>>) -> Result<Option<Vec<EventTypeName>>, ApiError> {
    parse_event_types(types.filter(|t| !t.is_empty()))
}

fn filter_channels(channels: Option<Vec<String>>) -> Result<Option<Vec<Channel>>, ApiError> {
    parse_channels(channels.filter(|c| !c.is_empty()))
}

/// A `DestinationIn`, checked: everything it sets on its endpoint.
struct Settings {
    uid: Option<Uid>,
    disabled: bool,
    url: String,
    headers: BTreeMap<String, String>,
    key: Option<SigningKey>,
    event_types: Option<Vec<EventTypeName>>,
    channels: Option<Vec<Channel>>,
    metadata: BTreeMap<String, String>,
}

impl Settings {
    async fn read(state: &ApiState, input: DestinationIn) -> Result<Self, ApiError> {
        check_type(&input.kind)?;
        check_batching(input.batch_size, input.max_wait_secs)?;
        let config: FifoEndpointConfigIn = parse_config(&input.config)?;
        Ok(Self {
            uid: parse_uid(input.uid)?,
            disabled: input.status.is_some_and(DestinationStatusIn::disabled),
            url: parse_url(state, config.url).await?,
            headers: parse_headers("config.headers", config.headers.unwrap_or_default())?,
            key: config
                .key
                .map(|key| parse_secret("config.key", &key))
                .transpose()?,
            event_types: filter_types(input.event_types)?,
            channels: filter_channels(input.channels)?,
            metadata: input.metadata.unwrap_or_default(),
        })
    }

    /// A new ordered endpoint of `app` with these settings.
    fn into_endpoint(self, app: &App) -> Endpoint {
        let now = now();
        let secret = self
            .key
            .unwrap_or_else(|| SigningKey::generate(KeyType::Hmac));
        Endpoint {
            id: id::new_id("ep", unix_ms(now)),
            app_id: app.id.clone(),
            uid: self.uid,
            url: self.url,
            description: String::new(),
            event_types: self.event_types,
            channels: self.channels,
            disabled: self.disabled,
            metadata: self.metadata,
            rate_limit: None,
            secret: secret.expose().into(),
            old_secrets: Vec::new(),
            headers: self.headers,
            signature_scheme: SignatureScheme::Standard,
            fifo: true,
            tls: None,
            oauth: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// `previous` with these settings: what a PUT replaces. The endpoint's own settings that
    /// a destination does not describe (description, rate limit, signature scheme) stay, and
    /// so does the secret unless `config.key` names a new one (which must suit the scheme).
    fn apply_to(self, previous: &Endpoint) -> Result<Endpoint, ApiError> {
        if let Some(key) = &self.key {
            check_scheme_fits_key(&previous.signature_scheme, key.key_type(), "config.key")?;
        }
        Ok(Endpoint {
            uid: self.uid,
            url: self.url,
            headers: self.headers,
            secret: self
                .key
                .map_or_else(|| previous.secret.clone(), |key| key.expose().into()),
            event_types: self.event_types,
            channels: self.channels,
            disabled: self.disabled,
            metadata: self.metadata,
            updated_at: now(),
            ..previous.clone()
        })
    }
}

/// `endpoint` as a destination, with its line as `GET …/endpoint/{id}/fifo` answers it (the
/// route's handler is called, so both show the same line).
async fn shown(
    state: &ApiState,
    scope: &AppScope,
    endpoint: Endpoint,
) -> Result<DestinationOut, ApiError> {
    let path = EndpointPath {
        endpoint_id: endpoint.id.clone(),
    };
    let Json(line) =
        super::endpoint_fifo::line(State(state.clone()), scope.clone(), Path(path)).await?;
    Ok(DestinationOut::of(endpoint, Some(&line)))
}

/// The app's ordered endpoint `destination_id` (id or uid), or 404: an endpoint without
/// ordered delivery is not a destination.
async fn find_destination(
    state: &ApiState,
    app_id: &str,
    destination_id: &str,
) -> Result<Endpoint, ApiError> {
    match state
        .registry()
        .get_endpoint(app_id, destination_id)
        .await?
    {
        Some(endpoint) if endpoint.fifo => Ok(endpoint),
        _ => Err(ApiError::NotFound("destination")),
    }
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/destination", params(("app_id" = String, Path, description = "Application id or uid"), ListQuery), responses((status = 200, body = ListResponse<DestinationOut>), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Destination")]
pub async fn list(
    State(state): State<ApiState>,
    scope: AppScope,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ListResponse<DestinationOut>>, ApiError> {
    let request = query.page_request(false)?;
    let mut endpoints = state.registry().endpoints_of_app(&scope.app.id).await?;
    endpoints.retain(|ep| ep.fifo);
    let page = ListResponse::from_sorted(endpoints, &request, |ep| ep.id.as_str(), |ep| ep);
    // Only the page's lines are read.
    let mut data = Vec::with_capacity(page.data.len());
    for endpoint in page.data {
        data.push(shown(&state, &scope, endpoint).await?);
    }
    Ok(Json(ListResponse {
        data,
        iterator: page.iterator,
        prev_iterator: page.prev_iterator,
        done: page.done,
    }))
}

#[utoipa::path(post, path = "/api/v1/app/{app_id}/destination", params(("app_id" = String, Path, description = "Application id or uid")), request_body = DestinationIn, responses((status = 201, body = DestinationOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Destination")]
pub async fn create(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    headers: HeaderMap,
    ApiJson(input): ApiJson<DestinationIn>,
) -> Result<Response, ApiError> {
    let work = async {
        let endpoint = Settings::read(&state, input).await?.into_endpoint(&app);
        insert_endpoint(&state, &app, &endpoint).await?;
        // A new endpoint's line is empty.
        Ok((
            StatusCode::CREATED,
            Json(DestinationOut::of(endpoint, None)),
        ))
    };
    once(&state, &headers, &app.id, "destination.create", work).await
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/destination/{destination_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("destination_id" = String, Path, description = "Destination (ordered endpoint) id or uid")), responses((status = 200, body = DestinationOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Destination")]
pub async fn get(
    State(state): State<ApiState>,
    scope: AppScope,
    Path(DestinationPath { destination_id }): Path<DestinationPath>,
) -> Result<Json<DestinationOut>, ApiError> {
    let endpoint = find_destination(&state, &scope.app.id, &destination_id).await?;
    Ok(Json(shown(&state, &scope, endpoint).await?))
}

/// Replaces the destination's settings, or creates it (201) when the id or uid is unknown,
/// with the path's name as its uid unless the body gives one (a destination named by its
/// uid keeps it when the body gives none). A path naming an endpoint
/// without ordered delivery answers 409: it is not a destination, and making it one is an
/// endpoint change (`fifo: true`).
#[utoipa::path(put, path = "/api/v1/app/{app_id}/destination/{destination_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("destination_id" = String, Path, description = "Destination (ordered endpoint) id or uid")), request_body = DestinationIn, responses((status = 200, body = DestinationOut, description = "Replaced"), (status = 201, body = DestinationOut, description = "Created"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Destination")]
pub async fn upsert(
    State(state): State<ApiState>,
    scope: AppScope,
    Path(DestinationPath { destination_id }): Path<DestinationPath>,
    ApiJson(input): ApiJson<DestinationIn>,
) -> Result<(StatusCode, Json<DestinationOut>), ApiError> {
    let app = &scope.app;
    let found = state
        .registry()
        .get_endpoint(&app.id, &destination_id)
        .await?;
    let mut settings = Settings::read(&state, input).await?;
    let Some(previous) = found else {
        if settings.uid.is_none() {
            settings.uid = parse_uid(Some(destination_id))?;
        }
        let endpoint = settings.into_endpoint(app);
        insert_endpoint(&state, app, &endpoint).await?;
        return Ok((
            StatusCode::CREATED,
            Json(DestinationOut::of(endpoint, None)),
        ));
    };
    if !previous.fifo {
        return Err(ApiError::Conflict(format!(
            "`{destination_id}` is an endpoint without ordered delivery, not a destination; \
             set `fifo: true` on the endpoint to make it one"
        )));
    }
    // Named by its uid and given none: the uid stays, so repeating the PUT finds it again.
    if settings.uid.is_none()
        && previous
            .uid
            .as_ref()
            .is_some_and(|u| u.as_str() == destination_id)
    {
        settings.uid.clone_from(&previous.uid);
    }
    let endpoint = settings.apply_to(&previous)?;
    save_endpoint(&state, app, &previous, &endpoint).await?;
    Ok((StatusCode::OK, Json(shown(&state, &scope, endpoint).await?)))
}

#[utoipa::path(patch, path = "/api/v1/app/{app_id}/destination/{destination_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("destination_id" = String, Path, description = "Destination (ordered endpoint) id or uid")), request_body = DestinationPatch, responses((status = 200, body = DestinationOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Destination")]
pub async fn patch(
    State(state): State<ApiState>,
    scope: AppScope,
    Path(DestinationPath { destination_id }): Path<DestinationPath>,
    ApiJson(input): ApiJson<DestinationPatch>,
) -> Result<Json<DestinationOut>, ApiError> {
    check_type(&input.kind)?;
    check_batching(input.batch_size, input.max_wait_secs)?;
    let config: Option<FifoEndpointConfigPatch> =
        input.config.as_ref().map(parse_config).transpose()?;
    let app = &scope.app;
    let previous = find_destination(&state, &app.id, &destination_id).await?;
    let mut endpoint = previous.clone();
    if let Some(url) = config.and_then(|config| config.url) {
        endpoint.url = parse_url(&state, url).await?;
    }
    if let Some(uid) = input.uid {
        endpoint.uid = parse_uid(uid)?;
    }
    if let Some(status) = input.status {
        endpoint.disabled = status.disabled();
    }
    if let Some(types) = input.event_types {
        endpoint.event_types = filter_types(types)?;
    }
    if let Some(channels) = input.channels {
        endpoint.channels = filter_channels(channels)?;
    }
    if let Some(metadata) = input.metadata {
        endpoint.metadata = metadata;
    }
    endpoint.updated_at = now();
    save_endpoint(&state, app, &previous, &endpoint).await?;
    Ok(Json(shown(&state, &scope, endpoint).await?))
}

#[utoipa::path(delete, path = "/api/v1/app/{app_id}/destination/{destination_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("destination_id" = String, Path, description = "Destination (ordered endpoint) id or uid")), responses((status = 204, description = "Deleted"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Destination")]
pub async fn delete(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(DestinationPath { destination_id }): Path<DestinationPath>,
) -> Result<StatusCode, ApiError> {
    let endpoint = find_destination(&state, &app.id, &destination_id).await?;
    remove_endpoint(&state, &app, &endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Rotates the ordered endpoint's signing secret exactly as `…/endpoint/{id}/secret/rotate`
/// does (the same grace period, limits and `idempotency-key`), and answers the new one.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/destination/{destination_id}/secret/rotate", params(("app_id" = String, Path, description = "Application id or uid"), ("destination_id" = String, Path, description = "Destination (ordered endpoint) id or uid")), request_body = Option<EndpointSecretRotateIn>, responses((status = 200, body = EndpointSecretOut, description = "Rotated: the new secret"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Destination")]
pub async fn rotate_secret(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(DestinationPath { destination_id }): Path<DestinationPath>,
    headers: HeaderMap,
    body: Option<ApiJson<EndpointSecretRotateIn>>,
) -> Result<Response, ApiError> {
    let input = body.map(|ApiJson(input)| input).unwrap_or_default();
    let endpoint = find_destination(&state, &app.id, &destination_id).await?;
    rotate_once(&state, &app.id, &endpoint.id, &headers, input).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ordered endpoint with one custom header.
    fn ordered(disabled: bool) -> Endpoint {
        Endpoint {
            id: "ep_1".into(),
            app_id: "app_1".into(),
            uid: None,
            url: "https://example.com/hooks".into(),
            description: String::new(),
            event_types: None,
            channels: None,
            disabled,
            metadata: BTreeMap::new(),
            rate_limit: None,
            secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
            old_secrets: Vec::new(),
            headers: BTreeMap::from([("x-a".to_owned(), "1".to_owned())]),
            signature_scheme: SignatureScheme::Standard,
            fifo: true,
            tls: None,
            oauth: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn input(body: serde_json::Value) -> DestinationIn {
        crate::extract::parse_json(body.to_string().as_bytes()).expect("a DestinationIn")
    }

    fn locs(error: ApiError) -> Vec<Vec<String>> {
        let ApiError::Validation(fields) = error else {
            panic!("a validation error: {error:?}");
        };
        fields.into_iter().map(|f| f.loc).collect()
    }

    #[test]
    fn a_config_is_read_as_its_type_and_its_errors_name_it_under_config() {
        let given = input(serde_json::json!({
            "type": "fifoEndpoint",
            "config": {"url": "https://example.com", "headers": {"X-A": "1"}, "key": null},
        }));
        let config: FifoEndpointConfigIn = parse_config(&given.config).expect("read");
        assert_eq!(config.url, "https://example.com");
        assert!(config.key.is_none());

        let extra = input(serde_json::json!({
            "type": "fifoEndpoint",
            "config": {"url": "https://example.com", "queueDsn": "amqp://x"},
        }));
        let error = parse_config::<FifoEndpointConfigIn>(&extra.config).expect_err("refused");
        let ApiError::Validation(fields) = error else {
            panic!("422");
        };
        assert_eq!(fields[0].loc, ["body", "config", "queueDsn"]);
        assert!(
            fields[0].msg.contains("config.queueDsn"),
            "{}",
            fields[0].msg
        );

        let missing = input(serde_json::json!({"type": "fifoEndpoint", "config": {}}));
        let error = parse_config::<FifoEndpointConfigIn>(&missing.config).expect_err("refused");
        assert_eq!(locs(error), [["body", "config", "url"]]);
    }

    #[test]
    fn other_types_and_batching_are_refused_naming_the_field() {
        assert!(check_type("fifoEndpoint").is_ok());
        let refused = check_type("sqs").expect_err("refused");
        assert!(refused.to_string().contains("`type`"), "{refused}");
        assert!(matches!(refused, ApiError::NotSupported { .. }));
        assert!(check_batching(Some(1), Some(0)).is_ok());
        assert!(check_batching(None, None).is_ok());
        let batch = check_batching(Some(2), None).expect_err("refused");
        assert_eq!(locs(batch), [["body", "batchSize"]]);
        let wait = check_batching(None, Some(5)).expect_err("refused");
        assert_eq!(locs(wait), [["body", "maxWaitSecs"]]);
    }

    #[test]
    fn a_destination_shows_its_endpoint_without_the_key() {
        let endpoint = ordered(true);
        let out = serde_json::to_value(DestinationOut::of(endpoint, None)).expect("JSON");
        assert_eq!(out["type"], "fifoEndpoint");
        assert_eq!(out["status"], "disabled");
        assert_eq!(out["currentIterator"], "");
        assert_eq!(
            (out["batchSize"].clone(), out["maxWaitSecs"].clone()),
            (1.into(), 0.into())
        );
        assert_eq!(
            out["config"],
            serde_json::json!({"url": "https://example.com/hooks", "headers": {"headers": {"x-a": "1"}, "sensitive": []}})
        );
        assert!(!out.to_string().contains("whsec_"), "{out}");
    }

    #[test]
    fn a_blocked_head_shows_as_retrying_with_its_reason_and_next_attempt() {
        let next = OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1);
        let line = |blocked| EndpointFifoOut {
            fifo: true,
            length: 2,
            waiting: 1,
            head: Some(super::super::endpoint_fifo::LineHeadOut {
                msg_id: "msg_1".into(),
                status: 1,
                attempts: if blocked { 3 } else { 0 },
                next_attempt: blocked.then_some(next),
                blocked,
            }),
        };
        let blocked = DestinationOut::of(ordered(false), Some(&line(true)));
        assert_eq!(blocked.status, DestinationStatus::Retrying);
        assert_eq!(blocked.current_iterator, "msg_1");
        assert_eq!(
            blocked.failure_reason.as_deref(),
            Some("blocked by msg_1 after 3 attempts")
        );
        assert_eq!(blocked.next_retry_at, Some(next));
        let moving = DestinationOut::of(ordered(false), Some(&line(false)));
        assert_eq!(moving.status, DestinationStatus::Enabled);
        assert_eq!(moving.current_iterator, "msg_1");
        assert!(moving.failure_reason.is_none() && moving.next_retry_at.is_none());
        let disabled = DestinationOut::of(ordered(true), Some(&line(true)));
        assert_eq!(
            disabled.status,
            DestinationStatus::Disabled,
            "disabled wins"
        );
        assert!(disabled.failure_reason.is_some());
    }
}
