//! `/api/v1/operational-webhook/endpoint`: the operator's own webhook endpoints, which
//! receive Hookline's operational events (`endpoint.created`, `message.attempt.exhausted`,
//! ...). Admin only.
//!
//! They are endpoints of the internal operator application (`hookline_events`), so both
//! stores keep them like any endpoint and the dispatcher signs and retries their deliveries
//! like any other. The endpoint configured in the settings lives there too but belongs to
//! the settings: the API neither lists nor changes it, and its uid is reserved.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookline_core::id;
use hookline_core::model::{App, Endpoint, SignatureScheme};
use hookline_core::names::{EventTypeName, Uid};
use hookline_core::secret::SecretText;
use hookline_core::signing::SigningSecret;
use hookline_events::{OperationalEvents, CONFIGURED_ENDPOINT_UID, EVENT_TYPES};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::common::{either_name, now, nullable, unix_ms, ListQuery, ListResponse};
use super::endpoints::{parse_uid, parse_url};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::scope::AdminOnly;
use crate::state::ApiState;

/// `OperationalWebhookEndpointIn`. The Python SDK sends `eventTypes` and `throttleRate`, the
/// JavaScript one `filterTypes` and `rateLimit`: both names are read (`either_name`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationalWebhookEndpointIn {
    pub url: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub disabled: bool,
    pub uid: Option<String>,
    /// Operational event types to receive; every type when absent.
    pub event_types: Option<Vec<String>>,
    /// The older name of `eventTypes`.
    pub filter_types: Option<Vec<String>>,
    pub rate_limit: Option<u16>,
    /// The newer name of `rateLimit`.
    pub throttle_rate: Option<u16>,
    #[schema(value_type = Option<String>)]
    pub secret: Option<SecretText>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Custom headers sent with every delivery.
    pub headers: Option<BTreeMap<String, String>>,
}

/// `OperationalWebhookEndpointUpdate` (the Python SDK's `…UpsertIn`): a PUT replaces these
/// and keeps the secret and headers; on an unknown uid it creates the endpoint.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationalWebhookEndpointUpdate {
    pub url: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub disabled: bool,
    /// Absent keeps the uid (an upsert addresses the endpoint by it); `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub uid: Option<Option<String>>,
    pub event_types: Option<Vec<String>>,
    /// The older name of `eventTypes`.
    pub filter_types: Option<Vec<String>>,
    pub rate_limit: Option<u16>,
    /// The newer name of `rateLimit`.
    pub throttle_rate: Option<u16>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// `OperationalWebhookEndpointOut`, with both SDKs' names for the filter and the rate.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OperationalWebhookEndpointOut {
    pub id: String,
    #[schema(value_type = Option<String>)]
    pub uid: Option<Uid>,
    pub url: String,
    pub description: String,
    pub disabled: bool,
    #[schema(value_type = Option<Vec<String>>)]
    pub event_types: Option<Vec<EventTypeName>>,
    #[schema(value_type = Option<Vec<String>>)]
    pub filter_types: Option<Vec<EventTypeName>>,
    pub rate_limit: Option<u16>,
    pub throttle_rate: Option<u16>,
    pub metadata: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<Endpoint> for OperationalWebhookEndpointOut {
    fn from(ep: Endpoint) -> Self {
        Self {
            id: ep.id,
            uid: ep.uid,
            url: ep.url,
            description: ep.description,
            disabled: ep.disabled,
            filter_types: ep.event_types.clone(),
            event_types: ep.event_types,
            rate_limit: ep.rate_limit,
            throttle_rate: ep.rate_limit,
            metadata: ep.metadata,
            created_at: ep.created_at,
            updated_at: ep.updated_at,
        }
    }
}

const NOT_FOUND: &str = "operational webhook endpoint";

/// The operator endpoint named by id or uid (not the configured one), or 404.
pub(crate) async fn find(state: &ApiState, id_or_uid: &str) -> Result<Endpoint, ApiError> {
    let missing = ApiError::NotFound(NOT_FOUND);
    let Some(app) = state.events().operator_app().await? else {
        return Err(missing);
    };
    match state.registry().get_endpoint(&app.id, id_or_uid).await? {
        Some(endpoint) if !OperationalEvents::is_configured_endpoint(&endpoint) => Ok(endpoint),
        _ => Err(missing),
    }
}

/// Only the operational event types Hookline sends; a name it never sends would make a
/// filter that silently matches nothing.
/// The event type filter and the rate, each sent under either of its two names
/// (`[eventTypes, filterTypes]`, `[throttleRate, rateLimit]`).
fn filter_and_rate(
    [event_types, filter_types]: [Option<Vec<String>>; 2],
    [throttle_rate, rate_limit]: [Option<u16>; 2],
) -> Result<(Option<Vec<EventTypeName>>, Option<u16>), ApiError> {
    let types = either_name(event_types, "eventTypes", filter_types, "filterTypes")?;
    let rate = either_name(throttle_rate, "throttleRate", rate_limit, "rateLimit")?;
    Ok((parse_event_types(types)?, rate))
}

fn parse_event_types(types: Option<Vec<String>>) -> Result<Option<Vec<EventTypeName>>, ApiError> {
    let Some(types) = types else {
        return Ok(None);
    };
    if types.is_empty() {
        return Err(ApiError::field(
            "eventTypes",
            "must not be empty; omit it for all types",
        ));
    }
    types
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            if !EVENT_TYPES.contains(&name.as_str()) {
                return Err(ApiError::field(
                    &format!("eventTypes.{i}"),
                    format!("Hookline sends only {}", EVENT_TYPES.join(", ")),
                ));
            }
            EventTypeName::parse(name)
                .map_err(|e| ApiError::field(&format!("eventTypes.{i}"), e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// A uid the API may hand out: not the configured endpoint's.
fn parse_own_uid(uid: Option<String>) -> Result<Option<Uid>, ApiError> {
    if uid.as_deref() == Some(CONFIGURED_ENDPOINT_UID) {
        return Err(ApiError::field(
            "uid",
            "is reserved for the endpoint set in the operational_webhooks settings",
        ));
    }
    parse_uid(uid)
}

pub(crate) fn checked_headers(
    headers: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    hookline_core::headers::check_all(headers)
        .map_err(|e| ApiError::field("headers", e.to_string()))
}

fn parse_secret(secret: Option<&SecretText>, field: &str) -> Result<SigningSecret, ApiError> {
    match secret {
        Some(text) => {
            SigningSecret::parse(text.expose()).map_err(|e| ApiError::field(field, e.to_string()))
        }
        None => Ok(SigningSecret::generate()),
    }
}

/// Stores a new operator endpoint in the operator application (created on first use).
async fn insert(state: &ApiState, mut endpoint: Endpoint) -> Result<Endpoint, ApiError> {
    let app: App = state.events().ensure_operator_app().await?;
    endpoint.app_id = app.id;
    let max = state.config().max_endpoints_per_app;
    state.registry().create_endpoint(&endpoint, max).await?;
    Ok(endpoint)
}

#[utoipa::path(get, path = "/api/v1/operational-webhook/endpoint", params(ListQuery), responses((status = 200, body = ListResponse<OperationalWebhookEndpointOut>), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Operational webhook endpoint")]
pub async fn list(
    State(state): State<ApiState>,
    _: AdminOnly,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ListResponse<OperationalWebhookEndpointOut>>, ApiError> {
    let request = query.page_request(false)?;
    let mut endpoints = match state.events().operator_app().await? {
        Some(app) => state.registry().endpoints_of_app(&app.id).await?,
        None => Vec::new(),
    };
    endpoints.retain(|ep| !OperationalEvents::is_configured_endpoint(ep));
    Ok(Json(ListResponse::from_sorted(
        endpoints,
        &request,
        |ep| ep.id.as_str(),
        OperationalWebhookEndpointOut::from,
    )))
}

#[utoipa::path(post, path = "/api/v1/operational-webhook/endpoint", request_body = OperationalWebhookEndpointIn, responses((status = 201, body = OperationalWebhookEndpointOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Operational webhook endpoint")]
pub async fn create(
    State(state): State<ApiState>,
    _: AdminOnly,
    ApiJson(input): ApiJson<OperationalWebhookEndpointIn>,
) -> Result<(StatusCode, Json<OperationalWebhookEndpointOut>), ApiError> {
    let secret = parse_secret(input.secret.as_ref(), "secret")?;
    let (event_types, rate_limit) = filter_and_rate(
        [input.event_types, input.filter_types],
        [input.throttle_rate, input.rate_limit],
    )?;
    let now = now();
    let endpoint = Endpoint {
        id: id::new_id("ep", unix_ms(now)),
        app_id: String::new(),
        uid: parse_own_uid(input.uid)?,
        url: parse_url(&state, input.url).await?,
        description: input.description,
        event_types,
        channels: None,
        disabled: input.disabled,
        metadata: input.metadata,
        rate_limit,
        secret: secret.expose().into(),
        old_secrets: Vec::new(),
        headers: checked_headers(input.headers.unwrap_or_default())?,
        signature_scheme: SignatureScheme::Standard,
        fifo: false,
        tls: None,
        oauth: None,
        created_at: now,
        updated_at: now,
    };
    let endpoint = insert(&state, endpoint).await?;
    Ok((StatusCode::CREATED, Json(endpoint.into())))
}

#[utoipa::path(get, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}", params(("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses((status = 200, body = OperationalWebhookEndpointOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Operational webhook endpoint")]
pub async fn get(
    State(state): State<ApiState>,
    _: AdminOnly,
    Path(endpoint_id): Path<String>,
) -> Result<Json<OperationalWebhookEndpointOut>, ApiError> {
    Ok(Json(find(&state, &endpoint_id).await?.into()))
}

/// Replaces the endpoint's settings (its secret and headers stay). A uid that names no
/// endpoint creates one under that uid, as the Python SDK's `upsert` expects.
#[utoipa::path(put, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}", params(("endpoint_id" = String, Path, description = "Endpoint id or uid")), request_body = OperationalWebhookEndpointUpdate, responses((status = 200, body = OperationalWebhookEndpointOut), (status = 201, description = "Created under the uid in the path", body = OperationalWebhookEndpointOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Operational webhook endpoint")]
pub async fn update(
    State(state): State<ApiState>,
    _: AdminOnly,
    Path(endpoint_id): Path<String>,
    ApiJson(input): ApiJson<OperationalWebhookEndpointUpdate>,
) -> Result<(StatusCode, Json<OperationalWebhookEndpointOut>), ApiError> {
    let uid = input.uid.map(parse_own_uid).transpose()?;
    let url = parse_url(&state, input.url).await?;
    let (event_types, rate_limit) = filter_and_rate(
        [input.event_types, input.filter_types],
        [input.throttle_rate, input.rate_limit],
    )?;
    let previous = match find(&state, &endpoint_id).await {
        Ok(previous) => previous,
        Err(ApiError::NotFound(_)) => {
            let created = upsert_new(&endpoint_id, uid.as_ref().and_then(Option::as_ref))?;
            let endpoint = Endpoint {
                url,
                description: input.description,
                event_types,
                disabled: input.disabled,
                metadata: input.metadata,
                rate_limit,
                ..created
            };
            let endpoint = insert(&state, endpoint).await?;
            return Ok((StatusCode::CREATED, Json(endpoint.into())));
        }
        Err(other) => return Err(other),
    };
    let endpoint = Endpoint {
        uid: uid.unwrap_or_else(|| previous.uid.clone()),
        url,
        description: input.description,
        event_types,
        disabled: input.disabled,
        metadata: input.metadata,
        rate_limit,
        updated_at: now(),
        ..previous.clone()
    };
    state
        .registry()
        .update_endpoint(&previous, &endpoint)
        .await?;
    Ok((StatusCode::OK, Json(endpoint.into())))
}

/// The endpoint a PUT to an unknown `path` creates: `path` becomes its uid, so it must be
/// one (an `ep_` id that names nothing stays a 404), and a body uid must agree with it.
fn upsert_new(path: &str, body_uid: Option<&Uid>) -> Result<Endpoint, ApiError> {
    let Some(uid) = Uid::parse(path)
        .ok()
        .filter(|_| !path.starts_with("ep_") && path != CONFIGURED_ENDPOINT_UID)
    else {
        return Err(ApiError::NotFound(NOT_FOUND));
    };
    if body_uid.is_some_and(|given| given != &uid) {
        return Err(ApiError::field(
            "uid",
            "must match the uid in the path to create the endpoint",
        ));
    }
    let secret = SigningSecret::generate();
    let now = now();
    Ok(Endpoint {
        id: id::new_id("ep", unix_ms(now)),
        app_id: String::new(),
        uid: Some(uid),
        url: String::new(),
        description: String::new(),
        event_types: None,
        channels: None,
        disabled: false,
        metadata: BTreeMap::new(),
        rate_limit: None,
        secret: secret.expose().into(),
        old_secrets: Vec::new(),
        headers: BTreeMap::new(),
        signature_scheme: SignatureScheme::Standard,
        fifo: false,
        tls: None,
        oauth: None,
        created_at: now,
        updated_at: now,
    })
}

#[utoipa::path(delete, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}", params(("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses((status = 204, description = "Deleted"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Operational webhook endpoint")]
pub async fn delete(
    State(state): State<ApiState>,
    _: AdminOnly,
    Path(endpoint_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let endpoint = find(&state, &endpoint_id).await?;
    state.registry().delete_endpoint(&endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}
