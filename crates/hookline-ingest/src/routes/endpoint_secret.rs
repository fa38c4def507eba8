//! An endpoint's signing secret: read it, rotate it.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hookline_core::secret::SecretText;
use hookline_core::signing::SigningSecret;
use serde::{Deserialize, Serialize};

use super::common::{now, EndpointPath};
use super::endpoints::find_endpoint;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::idempotent::{begin, finish, Begun, Keep};
use crate::scope::AppScope;
use crate::state::ApiState;

/// `EndpointSecretOut`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointSecretOut {
    #[schema(value_type = String)]
    pub key: SecretText,
}

/// Longest grace period a rotation may ask for (Svix's: 7 days).
const MAX_GRACE_SECS: u64 = 7 * 24 * 3600;
/// Most retired secrets that may still be signing: a rotation beyond this waits until one
/// expires (Svix's limit), so every delivery carries a bounded number of signatures.
const MAX_RETIRED: usize = 10;

/// `EndpointSecretRotateIn`: the new key (or none to generate one) and how long the old one
/// keeps signing.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSecretRotateIn {
    #[schema(value_type = Option<String>)]
    pub key: Option<SecretText>,
    /// Seconds the old secret keeps signing beside the new one, 0 to 604800 (7 days);
    /// default: the configured grace period (24 hours).
    pub grace_period_seconds: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses((status = 200, body = EndpointSecretOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn get(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
) -> Result<Json<EndpointSecretOut>, ApiError> {
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    Ok(Json(EndpointSecretOut {
        key: endpoint.secret,
    }))
}

/// Replaces the secret and answers the new one (the Python SDK reads it; the JavaScript SDK
/// ignores the body). The previous one keeps signing (a second, space-separated signature)
/// for `gracePeriodSeconds`, so receivers can switch without a gap.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), request_body = Option<EndpointSecretRotateIn>, responses((status = 200, body = EndpointSecretOut, description = "Rotated: the new secret"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn rotate(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    headers: HeaderMap,
    body: Option<ApiJson<EndpointSecretRotateIn>>,
) -> Result<Response, ApiError> {
    let input = body.map(|ApiJson(input)| input).unwrap_or_default();
    rotate_once(&state, &app.id, &endpoint_id, &headers, input).await
}

/// Rotates the secret of the app's endpoint `endpoint_id` once per `idempotency-key`, and
/// answers the new one: what both `…/endpoint/{id}/secret/rotate` and a destination's
/// `…/destination/{id}/secret/rotate` do.
pub(crate) async fn rotate_once(
    state: &ApiState,
    app_id: &str,
    endpoint_id: &str,
    headers: &HeaderMap,
    input: EndpointSecretRotateIn,
) -> Result<Response, ApiError> {
    let operation = format!("endpoint.rotate-secret:{endpoint_id}");
    match begin(state, headers, app_id, &operation).await? {
        // The new secret is not kept beside the key: a repeat reads it again.
        Begun::Repeat(_) => {
            let endpoint = find_endpoint(state, app_id, endpoint_id).await?;
            Ok(Json(EndpointSecretOut {
                key: endpoint.secret,
            })
            .into_response())
        }
        Begun::First(held) => {
            let outcome = rotate_secret(state, app_id, endpoint_id, input).await;
            finish(state, held, outcome, Keep::Status).await
        }
    }
}

async fn rotate_secret(
    state: &ApiState,
    app_id: &str,
    endpoint_id: &str,
    input: EndpointSecretRotateIn,
) -> Result<Json<EndpointSecretOut>, ApiError> {
    let grace = match input.grace_period_seconds {
        Some(secs) if secs > MAX_GRACE_SECS => {
            return Err(ApiError::field(
                "gracePeriodSeconds",
                format!("must be between 0 and {MAX_GRACE_SECS} (7 days)"),
            ))
        }
        Some(secs) => Duration::from_secs(secs),
        None => state.config().secret_rotation_grace,
    };
    let previous = find_endpoint(state, app_id, endpoint_id).await?;
    let secret = match &input.key {
        Some(text) => SigningSecret::parse(text.expose())
            .map_err(|e| ApiError::field("key", e.to_string()))?,
        None => SigningSecret::generate(),
    };
    let mut endpoint = previous.clone();
    let now = now();
    endpoint.rotate_secret(secret.expose().into(), grace, now);
    if endpoint.old_secrets.len() > MAX_RETIRED {
        return Err(ApiError::Conflict(format!(
            "this endpoint already has {MAX_RETIRED} earlier secrets still signing; rotate again once one has expired"
        )));
    }
    endpoint.updated_at = now;
    state
        .registry()
        .update_endpoint(&previous, &endpoint)
        .await?;
    Ok(Json(EndpointSecretOut {
        key: endpoint.secret,
    }))
}
