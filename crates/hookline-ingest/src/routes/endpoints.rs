//! `/api/v1/app/{app_id}/endpoint`: endpoints, their filters and secrets.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use hookline_core::id;
use hookline_core::model::{App, Endpoint, SignatureScheme};
use hookline_core::names::{Channel, EventTypeName, Uid};
use hookline_core::secret::SecretText;
use hookline_core::signing::{KeyType, SigningKey};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::common::{
    either_name, now, nullable, parse_names, unix_ms, EndpointPath, ListQuery, ListResponse,
};
use super::endpoint_secret::{check_scheme_fits_key, chosen_key, KeyTypeIo};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::idempotent::once;
use crate::scope::AppScope;
use crate::state::ApiState;

/// Longest endpoint URL accepted (Svix's limit).
const MAX_URL_LEN: usize = 65_536;
/// Most channels one endpoint may filter on (Svix's limit).
const MAX_CHANNELS: usize = 10;

/// `EndpointIn` / `EndpointUpdate`. The SDKs send `eventTypes` or `filterTypes`, and
/// `throttleRate` or `rateLimit`: both names of each are read (see [`either_name`]).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointIn {
    pub url: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub disabled: bool,
    pub uid: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// The older name of `eventTypes`.
    pub filter_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Messages per second to this endpoint.
    pub throttle_rate: Option<u16>,
    /// The older name of `throttleRate`.
    pub rate_limit: Option<u16>,
    /// A `whsec_…` HMAC secret or a `whsk_…` ed25519 secret key; generated when absent.
    #[schema(value_type = Option<String>)]
    pub secret: Option<SecretText>,
    /// The type of key to generate when `secret` is absent (Hookline extension; default
    /// `hmac`). With `secret`, it must name that key's type.
    pub key_type: Option<KeyTypeIo>,
    /// Custom headers sent with every delivery (as `PUT …/headers` sets them).
    pub headers: Option<BTreeMap<String, String>>,
    /// Svix's endpoint version: only 1 exists.
    pub version: Option<u32>,
    /// How deliveries are signed (Hookline extension); Standard Webhooks when absent.
    pub signature_scheme: Option<SignatureSchemeIo>,
    /// Deliver messages one at a time in the order they were accepted, a failing one holding
    /// back those after it until it succeeds or runs out of attempts (Hookline extension;
    /// default false).
    #[serde(default)]
    pub fifo: bool,
}

/// `EndpointUpdate` (PUT): `EndpointIn` without the secret and the headers, which have
/// their own operations (either here is refused like any field Hookline does not read).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointUpdate {
    pub url: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub disabled: bool,
    pub uid: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// The older name of `eventTypes`.
    pub filter_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Messages per second to this endpoint.
    pub throttle_rate: Option<u16>,
    /// The older name of `throttleRate`.
    pub rate_limit: Option<u16>,
    /// Svix's endpoint version: only 1 exists.
    pub version: Option<u32>,
    /// How deliveries are signed (Hookline extension); Standard Webhooks when absent.
    pub signature_scheme: Option<SignatureSchemeIo>,
    /// Ordered delivery (Hookline extension, as on create); PUT replaces, so absent is false.
    #[serde(default)]
    pub fifo: bool,
}

/// How deliveries are signed: `{"type": "standard"}` (Standard Webhooks), `{"type": "svix"}`
/// (the same under `svix-*` header names) or `{"type": "hexBody", "header": "Byl-Signature"}`
/// (hex HMAC-SHA256 of the body, keyed by the secret's text).
///
/// An internally tagged enum is read from a buffered copy, where `ApiJson` cannot see the
/// fields a variant skips; `deny_unknown_fields` refuses them instead (the unit-like
/// variants are empty structs so that it applies to them too).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum SignatureSchemeIo {
    Standard {},
    Svix {},
    #[serde(rename_all = "camelCase")]
    HexBody {
        header: String,
    },
}

impl SignatureSchemeIo {
    fn into_scheme(self) -> Result<SignatureScheme, ApiError> {
        Ok(match self {
            Self::Standard {} => SignatureScheme::Standard,
            Self::Svix {} => SignatureScheme::Svix,
            Self::HexBody { header } => SignatureScheme::HexBody {
                header: hookline_core::headers::check(&header, "")
                    .map_err(|e| ApiError::field("signatureScheme.header", e.to_string()))?,
            },
        })
    }
}

fn scheme_or_default(given: Option<SignatureSchemeIo>) -> Result<SignatureScheme, ApiError> {
    given.map_or(
        Ok(SignatureScheme::Standard),
        SignatureSchemeIo::into_scheme,
    )
}

impl From<SignatureScheme> for SignatureSchemeIo {
    fn from(scheme: SignatureScheme) -> Self {
        match scheme {
            SignatureScheme::Standard => Self::Standard {},
            SignatureScheme::Svix => Self::Svix {},
            SignatureScheme::HexBody { header } => Self::HexBody { header },
        }
    }
}

/// `EndpointPatch`: absent fields stay, `null` clears.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub disabled: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub uid: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub event_types: Option<Option<Vec<String>>>,
    /// The older name of `eventTypes`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub filter_types: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Vec<String>>)]
    pub channels: Option<Option<Vec<String>>>,
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u16>)]
    pub throttle_rate: Option<Option<u16>>,
    /// The older name of `throttleRate`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u16>)]
    pub rate_limit: Option<Option<u16>>,
    /// A new secret (`whsec_…` or `whsk_…`), in force at once (rotating keeps the old one
    /// signing for a while).
    #[schema(value_type = Option<String>)]
    pub secret: Option<SecretText>,
    pub version: Option<u32>,
    pub signature_scheme: Option<SignatureSchemeIo>,
    /// Ordered delivery (Hookline extension, as on create).
    pub fifo: Option<bool>,
}

/// `EndpointOut`, with both the current and the older filter and rate names.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointOut {
    pub id: String,
    #[schema(value_type = Option<String>)]
    pub uid: Option<Uid>,
    pub url: String,
    pub description: String,
    pub version: u32,
    pub disabled: bool,
    #[schema(value_type = Option<Vec<String>>)]
    pub event_types: Option<Vec<EventTypeName>>,
    #[schema(value_type = Option<Vec<String>>)]
    pub filter_types: Option<Vec<EventTypeName>>,
    #[schema(value_type = Option<Vec<String>>)]
    pub channels: Option<Vec<Channel>>,
    pub metadata: BTreeMap<String, String>,
    pub rate_limit: Option<u16>,
    pub throttle_rate: Option<u16>,
    pub signature_scheme: SignatureSchemeIo,
    /// Whether messages are delivered one at a time in acceptance order (Hookline extension).
    pub fifo: bool,
    /// The type of the current signing key (Hookline extension): `hmac` (`v1,` signatures)
    /// or `ed25519` (`v1a,`; `GET …/secret` answers its `whpk_` public key).
    pub key_type: KeyTypeIo,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<Endpoint> for EndpointOut {
    fn from(ep: Endpoint) -> Self {
        Self {
            id: ep.id,
            uid: ep.uid,
            url: ep.url,
            description: ep.description,
            version: 1,
            disabled: ep.disabled,
            filter_types: ep.event_types.clone(),
            event_types: ep.event_types,
            channels: ep.channels,
            metadata: ep.metadata,
            rate_limit: ep.rate_limit,
            signature_scheme: ep.signature_scheme.into(),
            throttle_rate: ep.rate_limit,
            fifo: ep.fifo,
            key_type: KeyType::of_text(ep.secret.expose()).into(),
            created_at: ep.created_at,
            updated_at: ep.updated_at,
        }
    }
}

/// A well-formed http(s) URL whose host is not, and does not now resolve to, an internal
/// address (the SSRF policy); the dispatcher checks again at every connection.
pub(crate) async fn parse_url(state: &ApiState, url: String) -> Result<String, ApiError> {
    if url.len() > MAX_URL_LEN {
        return Err(ApiError::field(
            "url",
            format!("must be at most {MAX_URL_LEN} characters"),
        ));
    }
    let parsed = url::Url::parse(&url).map_err(|e| ApiError::field("url", e.to_string()))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::field("url", "must name a host"));
    }
    state
        .resolver()
        .check_destination(&parsed)
        .await
        .map_err(|e| ApiError::field("url", e.to_string()))?;
    Ok(url)
}

pub(crate) fn parse_event_types(
    types: Option<Vec<String>>,
) -> Result<Option<Vec<EventTypeName>>, ApiError> {
    types
        .map(|t| {
            if t.is_empty() {
                return Err(ApiError::field(
                    "eventTypes",
                    "must not be empty; omit it for all types",
                ));
            }
            parse_names("eventTypes", t, EventTypeName::parse)
        })
        .transpose()
}

pub(crate) fn parse_channels(
    channels: Option<Vec<String>>,
) -> Result<Option<Vec<Channel>>, ApiError> {
    channels
        .map(|c| {
            if c.is_empty() || c.len() > MAX_CHANNELS {
                return Err(ApiError::field(
                    "channels",
                    format!("must list 1 to {MAX_CHANNELS} channels; omit it for all"),
                ));
            }
            parse_names("channels", c, Channel::parse)
        })
        .transpose()
}

pub(crate) fn parse_uid(uid: Option<String>) -> Result<Option<Uid>, ApiError> {
    uid.map(|u| Uid::parse(u).map_err(|e| ApiError::field("uid", e.to_string())))
        .transpose()
}

/// Svix's `version`: 1 is the only one there is.
fn check_version(version: Option<u32>) -> Result<(), ApiError> {
    match version {
        None | Some(1) => Ok(()),
        Some(_) => Err(ApiError::field(
            "version",
            "must be 1, the only endpoint version",
        )),
    }
}

pub(crate) fn parse_secret(field: &str, text: &SecretText) -> Result<SigningKey, ApiError> {
    SigningKey::parse(text.expose()).map_err(|e| ApiError::field(field, e.to_string()))
}

/// Finds an endpoint of the app by id or uid, or answers 404.
pub async fn find_endpoint(
    state: &ApiState,
    app_id: &str,
    endpoint_id: &str,
) -> Result<Endpoint, ApiError> {
    state
        .registry()
        .get_endpoint(app_id, endpoint_id)
        .await?
        .ok_or(ApiError::NotFound("endpoint"))
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint", params(("app_id" = String, Path, description = "Application id or uid"), ListQuery), responses((status = 200, body = ListResponse<EndpointOut>), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn list(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ListResponse<EndpointOut>>, ApiError> {
    let request = query.page_request(false)?;
    let endpoints = state.registry().endpoints_of_app(&app.id).await?;
    Ok(Json(ListResponse::from_sorted(
        endpoints,
        &request,
        |ep| ep.id.as_str(),
        EndpointOut::from,
    )))
}

#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint", params(("app_id" = String, Path, description = "Application id or uid")), request_body = EndpointIn, responses((status = 201, body = EndpointOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn create(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    headers: HeaderMap,
    ApiJson(input): ApiJson<EndpointIn>,
) -> Result<Response, ApiError> {
    let work = create_endpoint(&state, &app, input);
    once(&state, &headers, &app.id, "endpoint.create", work).await
}

async fn create_endpoint(
    state: &ApiState,
    app: &App,
    input: EndpointIn,
) -> Result<(StatusCode, Json<EndpointOut>), ApiError> {
    check_version(input.version)?;
    let secret = chosen_key(
        input.secret.as_ref(),
        "secret",
        input.key_type,
        KeyType::Hmac,
    )?;
    let signature_scheme = scheme_or_default(input.signature_scheme)?;
    check_scheme_fits_key(&signature_scheme, secret.key_type(), "signatureScheme")?;
    let headers = parse_headers("headers", input.headers.unwrap_or_default())?;
    let now = now();
    let endpoint = Endpoint {
        id: id::new_id("ep", unix_ms(now)),
        app_id: app.id.clone(),
        uid: parse_uid(input.uid)?,
        url: parse_url(state, input.url).await?,
        description: input.description,
        event_types: parse_event_types(either_name(
            input.event_types,
            "eventTypes",
            input.filter_types,
            "filterTypes",
        )?)?,
        channels: parse_channels(input.channels)?,
        disabled: input.disabled,
        metadata: input.metadata,
        rate_limit: either_name(
            input.throttle_rate,
            "throttleRate",
            input.rate_limit,
            "rateLimit",
        )?,
        secret: secret.expose().into(),
        old_secrets: Vec::new(),
        headers,
        signature_scheme,
        fifo: input.fifo,
        tls: None,
        oauth: None,
        created_at: now,
        updated_at: now,
    };
    insert_endpoint(state, app, &endpoint).await?;
    Ok((StatusCode::CREATED, Json(endpoint.into())))
}

/// Stores a new endpoint and announces it (`endpoint.created`): the one way endpoints (and
/// destinations, which are endpoints) are made. The store checks the app's endpoint cap and
/// the uid in the same atomic step as the insert.
pub(crate) async fn insert_endpoint(
    state: &ApiState,
    app: &App,
    endpoint: &Endpoint,
) -> Result<(), ApiError> {
    let max = state.config().max_endpoints_per_app;
    state.registry().create_endpoint(endpoint, max).await?;
    state
        .events()
        .endpoint_changed("endpoint.created", app, endpoint)
        .await;
    Ok(())
}

/// Saves a change to an endpoint and announces it (`endpoint.updated`).
pub(crate) async fn save_endpoint(
    state: &ApiState,
    app: &App,
    previous: &Endpoint,
    endpoint: &Endpoint,
) -> Result<(), ApiError> {
    state.registry().update_endpoint(previous, endpoint).await?;
    state
        .events()
        .endpoint_changed("endpoint.updated", app, endpoint)
        .await;
    Ok(())
}

/// Changes one setting of the app's endpoint `endpoint_id` that has its own route (its TLS
/// settings, its OAuth2 client) and saves it as [`save_endpoint`] does, unless `amend` left
/// it as it was. The newer `updated_at` is what makes dispatchers' copies of it stale.
pub(crate) async fn amend_endpoint(
    state: &ApiState,
    app: &App,
    endpoint_id: &str,
    amend: impl FnOnce(&mut Endpoint),
) -> Result<(), ApiError> {
    let previous = find_endpoint(state, &app.id, endpoint_id).await?;
    let mut endpoint = previous.clone();
    amend(&mut endpoint);
    if endpoint == previous {
        return Ok(());
    }
    endpoint.updated_at = now();
    save_endpoint(state, app, &previous, &endpoint).await
}

/// Deletes an endpoint and announces it (`endpoint.deleted`).
pub(crate) async fn remove_endpoint(
    state: &ApiState,
    app: &App,
    endpoint: &Endpoint,
) -> Result<(), ApiError> {
    state.registry().delete_endpoint(endpoint).await?;
    state
        .events()
        .endpoint_changed("endpoint.deleted", app, endpoint)
        .await;
    Ok(())
}

/// Custom headers as `field` names them, checked as `PUT …/headers` checks them.
pub(crate) fn parse_headers(
    field: &str,
    headers: BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ApiError> {
    hookline_core::headers::check_all(headers).map_err(|e| ApiError::field(field, e.to_string()))
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses((status = 200, body = EndpointOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn get(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
) -> Result<Json<EndpointOut>, ApiError> {
    Ok(Json(
        find_endpoint(&state, &app.id, &endpoint_id).await?.into(),
    ))
}

#[utoipa::path(put, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), request_body = EndpointUpdate, responses((status = 200, body = EndpointOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn update(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    ApiJson(input): ApiJson<EndpointUpdate>,
) -> Result<Json<EndpointOut>, ApiError> {
    let previous = find_endpoint(&state, &app.id, &endpoint_id).await?;
    check_version(input.version)?;
    let endpoint = Endpoint {
        uid: parse_uid(input.uid)?,
        url: parse_url(&state, input.url).await?,
        description: input.description,
        event_types: parse_event_types(either_name(
            input.event_types,
            "eventTypes",
            input.filter_types,
            "filterTypes",
        )?)?,
        channels: parse_channels(input.channels)?,
        disabled: input.disabled,
        metadata: input.metadata,
        rate_limit: either_name(
            input.throttle_rate,
            "throttleRate",
            input.rate_limit,
            "rateLimit",
        )?,
        signature_scheme: scheme_or_default(input.signature_scheme)?,
        fifo: input.fifo,
        updated_at: now(),
        ..previous.clone()
    };
    let key_type = KeyType::of_text(endpoint.secret.expose());
    check_scheme_fits_key(&endpoint.signature_scheme, key_type, "signatureScheme")?;
    save_endpoint(&state, &app, &previous, &endpoint).await?;
    Ok(Json(endpoint.into()))
}

#[utoipa::path(patch, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), request_body = EndpointPatch, responses((status = 200, body = EndpointOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn patch(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    ApiJson(input): ApiJson<EndpointPatch>,
) -> Result<Json<EndpointOut>, ApiError> {
    let previous = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let mut endpoint = previous.clone();
    if let Some(url) = input.url.clone() {
        endpoint.url = parse_url(&state, url).await?;
    }
    apply_patch(&mut endpoint, input)?;
    endpoint.updated_at = now();
    save_endpoint(&state, &app, &previous, &endpoint).await?;
    Ok(Json(endpoint.into()))
}

/// Sets the fields a patch names (all but `url`, which needs the resolver).
fn apply_patch(endpoint: &mut Endpoint, input: EndpointPatch) -> Result<(), ApiError> {
    check_version(input.version)?;
    // The field a scheme and key that do not fit are blamed on: the one this patch set.
    let mismatch_field = if input.signature_scheme.is_some() {
        "signatureScheme"
    } else {
        "secret"
    };
    if let Some(description) = input.description {
        endpoint.description = description;
    }
    if let Some(disabled) = input.disabled {
        endpoint.disabled = disabled;
    }
    if let Some(uid) = input.uid {
        endpoint.uid = parse_uid(uid)?;
    }
    let event_types = either_name(
        input.event_types,
        "eventTypes",
        input.filter_types,
        "filterTypes",
    )?;
    if let Some(types) = event_types {
        endpoint.event_types = parse_event_types(types)?;
    }
    if let Some(channels) = input.channels {
        endpoint.channels = parse_channels(channels)?;
    }
    if let Some(metadata) = input.metadata {
        endpoint.metadata = metadata;
    }
    if let Some(fifo) = input.fifo {
        endpoint.fifo = fifo;
    }
    if let Some(scheme) = input.signature_scheme {
        endpoint.signature_scheme = scheme.into_scheme()?;
    }
    let rate = either_name(
        input.throttle_rate,
        "throttleRate",
        input.rate_limit,
        "rateLimit",
    )?;
    if let Some(rate_limit) = rate {
        endpoint.rate_limit = rate_limit;
    }
    if let Some(secret) = &input.secret {
        endpoint.secret = parse_secret("secret", secret)?.expose().into();
    }
    let key_type = KeyType::of_text(endpoint.secret.expose());
    check_scheme_fits_key(&endpoint.signature_scheme, key_type, mismatch_field)
}

#[utoipa::path(delete, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses((status = 204, description = "Deleted"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn delete(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
) -> Result<StatusCode, ApiError> {
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    remove_endpoint(&state, &app, &endpoint).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_scheme_refuses_fields_its_variant_does_not_read() {
        let parse = |body: &str| {
            crate::extract::parse_json::<EndpointPatch>(body.as_bytes())
                .map(|patch| patch.signature_scheme)
        };
        assert!(matches!(
            parse(r#"{"signatureScheme":{"type":"standard"}}"#),
            Ok(Some(SignatureSchemeIo::Standard {}))
        ));
        for extra in [
            r#"{"signatureScheme":{"type":"standard","header":"X-Sig"}}"#,
            r#"{"signatureScheme":{"type":"hexBody","header":"X-Sig","other":1}}"#,
        ] {
            let Err(ApiError::Validation(fields)) = parse(extra) else {
                panic!("{extra} is refused");
            };
            assert_eq!(fields[0].loc, ["body", "signatureScheme"], "{extra}");
        }
        let out = serde_json::to_value(SignatureSchemeIo::Svix {}).expect("JSON");
        assert_eq!(out, serde_json::json!({"type": "svix"}));
    }
}
