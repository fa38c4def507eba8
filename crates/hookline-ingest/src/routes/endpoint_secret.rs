//! An endpoint's signing secret: read it, rotate it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookline_core::secret::SecretText;
use hookline_core::signing::SigningSecret;
use serde::{Deserialize, Serialize};

use super::common::{now, EndpointPath};
use super::endpoints::find_endpoint;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::scope::AppScope;
use crate::state::ApiState;

/// `EndpointSecretOut`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointSecretOut {
    #[schema(value_type = String)]
    pub key: SecretText,
}

/// `EndpointSecretRotateIn`: the new key, or none to generate one.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointSecretRotateIn {
    #[schema(value_type = Option<String>)]
    pub key: Option<SecretText>,
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

/// Replaces the secret. The previous one keeps signing (a second, space-separated
/// signature) for the configured grace period, so receivers can switch without a gap.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), request_body = Option<EndpointSecretRotateIn>, responses((status = 204, description = "Rotated"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn rotate(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    body: Option<ApiJson<EndpointSecretRotateIn>>,
) -> Result<StatusCode, ApiError> {
    let input = body.map(|ApiJson(input)| input).unwrap_or_default();
    let previous = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let secret = match &input.key {
        Some(text) => SigningSecret::parse(text.expose())
            .map_err(|e| ApiError::field("key", e.to_string()))?,
        None => SigningSecret::generate(),
    };
    let mut endpoint = previous.clone();
    let now = now();
    endpoint.rotate_secret(
        secret.expose().into(),
        state.config().secret_rotation_grace,
        now,
    );
    endpoint.updated_at = now;
    state
        .registry()
        .update_endpoint(&previous, &endpoint)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
