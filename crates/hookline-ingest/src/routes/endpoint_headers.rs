//! Custom headers sent with every delivery to an endpoint (Svix `…/endpoint/{id}/headers`).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookline_core::headers;
use serde::{Deserialize, Serialize};

use super::common::{now, EndpointPath};
use super::endpoints::find_endpoint;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::scope::AppScope;
use crate::state::ApiState;

/// `EndpointHeadersIn`: replaces every custom header.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct EndpointHeadersIn {
    pub headers: BTreeMap<String, String>,
}

/// `EndpointHeadersPatchIn`: sets the given headers and removes those in `deleteHeaders`
/// (a `null` value in `headers` removes one too).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointHeadersPatchIn {
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, Option<String>>)]
    pub headers: BTreeMap<String, Option<String>>,
    /// Names of headers to remove (any case).
    pub delete_headers: Option<Vec<String>>,
}

/// `EndpointHeadersOut`. `sensitive` lists headers whose values are hidden (none: Hookline
/// shows what it sends).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointHeadersOut {
    pub headers: BTreeMap<String, String>,
    pub sensitive: Vec<String>,
}

fn checked(map: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError> {
    headers::check_all(map).map_err(|e| ApiError::field("headers", e.to_string()))
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses((status = 200, body = EndpointHeadersOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn get(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
) -> Result<Json<EndpointHeadersOut>, ApiError> {
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    Ok(Json(EndpointHeadersOut {
        headers: endpoint.headers,
        sensitive: Vec::new(),
    }))
}

#[utoipa::path(put, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), request_body = EndpointHeadersIn, responses((status = 204, description = "Headers replaced"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn update(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    ApiJson(input): ApiJson<EndpointHeadersIn>,
) -> Result<StatusCode, ApiError> {
    let previous = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let mut endpoint = previous.clone();
    endpoint.headers = checked(input.headers)?;
    endpoint.updated_at = now();
    state
        .registry()
        .update_endpoint(&previous, &endpoint)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(patch, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/headers", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), request_body = EndpointHeadersPatchIn, responses((status = 204, description = "Headers updated"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn patch(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    ApiJson(input): ApiJson<EndpointHeadersPatchIn>,
) -> Result<StatusCode, ApiError> {
    let previous = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let mut merged = previous.headers.clone();
    for name in input.delete_headers.unwrap_or_default() {
        let name = name.to_ascii_lowercase();
        if input
            .headers
            .keys()
            .any(|set| set.eq_ignore_ascii_case(&name))
        {
            return Err(ApiError::field(
                "deleteHeaders",
                format!("`{name}` is both set in headers and deleted"),
            ));
        }
        merged.remove(&name);
    }
    for (name, value) in input.headers {
        let name = name.to_ascii_lowercase();
        match value {
            Some(value) => {
                merged.insert(name, value);
            }
            None => {
                merged.remove(&name);
            }
        }
    }
    let mut endpoint = previous.clone();
    endpoint.headers = checked(merged)?;
    endpoint.updated_at = now();
    state
        .registry()
        .update_endpoint(&previous, &endpoint)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
