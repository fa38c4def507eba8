//! `…/endpoint/{endpoint_id}/transformation`: Svix runs customer JavaScript on each message
//! before it is sent. Hookline runs no customer code, so both operations answer a JSON 400
//! (`not_supported`) that the SDKs raise as an API error, after the usual 404 checks.

use axum::extract::{Path, State};

use super::common::EndpointPath;
use super::endpoints::find_endpoint;
use crate::error::ApiError;
use crate::scope::AppScope;
use crate::state::ApiState;

/// Why every transformation call is refused.
const WHY: &str = "Hookline runs no customer code: deliveries carry the message payload unchanged";

/// Always `not_supported` (400).
#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses(crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn get(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
) -> Result<(), ApiError> {
    refuse(&state, &app.id, &endpoint_id, "endpoint.transformationGet").await
}

/// Always `not_supported` (400), whatever the body says; the body is not read.
#[utoipa::path(patch, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/transformation", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses(crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn patch(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
) -> Result<(), ApiError> {
    refuse(
        &state,
        &app.id,
        &endpoint_id,
        "endpoint.patchTransformation",
    )
    .await
}

async fn refuse(
    state: &ApiState,
    app_id: &str,
    endpoint_id: &str,
    operation: &'static str,
) -> Result<(), ApiError> {
    find_endpoint(state, app_id, endpoint_id).await?;
    Err(ApiError::NotSupported {
        operation,
        why: WHY,
    })
}
