//! An operational webhook endpoint's signing secret and custom headers
//! (`/api/v1/operational-webhook/endpoint/{id}/secret` and `…/headers`). Admin only.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookline_core::secret::SecretText;
use hookline_core::signing::SigningSecret;
use serde::{Deserialize, Serialize};

use super::common::now;
use super::operational::{checked_headers, find};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::scope::AdminOnly;
use crate::state::ApiState;

/// Longest grace period a rotation may give the old secret (Svix: 7 days).
const MAX_GRACE_SECS: u64 = 7 * 24 * 3600;

/// `OperationalWebhookEndpointSecretOut`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OperationalWebhookEndpointSecretOut {
    #[schema(value_type = String)]
    pub key: SecretText,
}

/// `OperationalWebhookEndpointSecretIn`: the new key (generated when absent) and how long
/// the old one keeps signing.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperationalWebhookEndpointSecretIn {
    #[schema(value_type = Option<String>)]
    pub key: Option<SecretText>,
    /// 0 (the old secret stops at once) to 7 days; the configured grace when absent.
    pub grace_period_seconds: Option<u64>,
}

/// `OperationalWebhookEndpointHeadersIn`: replaces every custom header.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationalWebhookEndpointHeadersIn {
    pub headers: BTreeMap<String, String>,
}

/// Sets the given headers; a `null` value removes one.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OperationalWebhookEndpointHeadersPatchIn {
    #[schema(value_type = BTreeMap<String, Option<String>>)]
    pub headers: BTreeMap<String, Option<String>>,
}

/// `OperationalWebhookEndpointHeadersOut`. `sensitive` is empty: Hookline shows the headers
/// it sends, as for app endpoints.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OperationalWebhookEndpointHeadersOut {
    pub headers: BTreeMap<String, String>,
    pub sensitive: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/secret", params(("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses((status = 200, body = OperationalWebhookEndpointSecretOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Operational webhook endpoint")]
pub async fn get_secret(
    State(state): State<ApiState>,
    _: AdminOnly,
    Path(endpoint_id): Path<String>,
) -> Result<Json<OperationalWebhookEndpointSecretOut>, ApiError> {
    let endpoint = find(&state, &endpoint_id).await?;
    // Shown as an app endpoint's key is: an admin could have given this one an ed25519 key
    // through the app's endpoint routes, and its secret key is never answered.
    Ok(Json(OperationalWebhookEndpointSecretOut {
        key: super::endpoint_secret::shown_key(&endpoint.secret)?,
    }))
}

/// Replaces the secret; the old one keeps signing (a second signature) for the grace
/// period, so the receiver can switch without a gap.
#[utoipa::path(post, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/secret/rotate", params(("endpoint_id" = String, Path, description = "Endpoint id or uid")), request_body = Option<OperationalWebhookEndpointSecretIn>, responses((status = 204, description = "Rotated"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Operational webhook endpoint")]
pub async fn rotate_secret(
    State(state): State<ApiState>,
    _: AdminOnly,
    Path(endpoint_id): Path<String>,
    body: Option<ApiJson<OperationalWebhookEndpointSecretIn>>,
) -> Result<StatusCode, ApiError> {
    let input = body.map(|ApiJson(input)| input).unwrap_or_default();
    let secret = match &input.key {
        Some(text) => SigningSecret::parse(text.expose())
            .map_err(|e| ApiError::field("key", e.to_string()))?,
        None => SigningSecret::generate(),
    };
    let grace = match input.grace_period_seconds {
        Some(secs) if secs > MAX_GRACE_SECS => {
            return Err(ApiError::field(
                "gracePeriodSeconds",
                format!("must be between 0 and {MAX_GRACE_SECS}"),
            ))
        }
        Some(secs) => Duration::from_secs(secs),
        None => state.config().secret_rotation_grace,
    };
    let previous = find(&state, &endpoint_id).await?;
    let mut endpoint = previous.clone();
    let now = now();
    endpoint.rotate_secret(secret.expose().into(), grace, now);
    endpoint.updated_at = now;
    state
        .registry()
        .update_endpoint(&previous, &endpoint)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers", params(("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses((status = 200, body = OperationalWebhookEndpointHeadersOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Operational webhook endpoint")]
pub async fn get_headers(
    State(state): State<ApiState>,
    _: AdminOnly,
    Path(endpoint_id): Path<String>,
) -> Result<Json<OperationalWebhookEndpointHeadersOut>, ApiError> {
    let endpoint = find(&state, &endpoint_id).await?;
    Ok(Json(OperationalWebhookEndpointHeadersOut {
        headers: endpoint.headers,
        sensitive: Vec::new(),
    }))
}

#[utoipa::path(put, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers", params(("endpoint_id" = String, Path, description = "Endpoint id or uid")), request_body = OperationalWebhookEndpointHeadersIn, responses((status = 204, description = "Headers replaced"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Operational webhook endpoint")]
pub async fn update_headers(
    State(state): State<ApiState>,
    _: AdminOnly,
    Path(endpoint_id): Path<String>,
    ApiJson(input): ApiJson<OperationalWebhookEndpointHeadersIn>,
) -> Result<StatusCode, ApiError> {
    let headers = checked_headers(input.headers)?;
    let previous = find(&state, &endpoint_id).await?;
    save_headers(&state, previous, headers).await
}

#[utoipa::path(patch, path = "/api/v1/operational-webhook/endpoint/{endpoint_id}/headers", params(("endpoint_id" = String, Path, description = "Endpoint id or uid")), request_body = OperationalWebhookEndpointHeadersPatchIn, responses((status = 204, description = "Headers updated"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Operational webhook endpoint")]
pub async fn patch_headers(
    State(state): State<ApiState>,
    _: AdminOnly,
    Path(endpoint_id): Path<String>,
    ApiJson(input): ApiJson<OperationalWebhookEndpointHeadersPatchIn>,
) -> Result<StatusCode, ApiError> {
    let previous = find(&state, &endpoint_id).await?;
    let mut merged = previous.headers.clone();
    for (name, value) in input.headers {
        let name = name.to_ascii_lowercase();
        match value {
            Some(value) => merged.insert(name, value),
            None => merged.remove(&name),
        };
    }
    let merged = checked_headers(merged)?;
    save_headers(&state, previous, merged).await
}

/// Replaces the endpoint's custom headers with `headers` (already checked).
async fn save_headers(
    state: &ApiState,
    previous: hookline_core::model::Endpoint,
    headers: BTreeMap<String, String>,
) -> Result<StatusCode, ApiError> {
    let mut endpoint = previous.clone();
    endpoint.headers = headers;
    endpoint.updated_at = now();
    state
        .registry()
        .update_endpoint(&previous, &endpoint)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
