//! An endpoint's own TLS: the client certificate its deliveries present (mTLS) and the CAs
//! its receiver's certificate must chain to (Svix's `…/endpoint/{id}/mtls`).
//!
//! Beyond Svix: `identity` may be left out to set only `serverCaCert`, and
//! `trustSystemRoots` says whether the system roots are trusted beside it. The private key
//! is never shown again: reading the configuration describes the certificate instead.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookline_core::outbound::EndpointTls;
use hookline_core::secret::SecretText;
use hookline_net::tls::{self, TlsSettingError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::common::EndpointPath;
use super::endpoints::{amend_endpoint, find_endpoint};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::scope::AppScope;
use crate::state::ApiState;

/// `EndpointMtlsConfigIn`: replaces the endpoint's TLS configuration.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointMtlsConfigIn {
    /// PEM text holding the private key (unencrypted) and the certificate chain, in any
    /// order. Optional in Hookline (Svix requires it): leave it out to set only a CA.
    #[schema(value_type = Option<String>)]
    pub identity: Option<SecretText>,
    /// PEM CA certificates the receiver's certificate must chain to.
    pub server_ca_cert: Option<String>,
    /// With `serverCaCert`, whether the system roots are trusted too (default false: only
    /// `serverCaCert`). Hookline's extension.
    #[serde(default)]
    pub trust_system_roots: bool,
}

/// The client certificate presented, described (its key is never shown).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientCertificateOut {
    pub subject: String,
    pub issuer: String,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// SHA-256 of the DER certificate, colon-separated uppercase hex.
    pub sha256_fingerprint: String,
}

/// `EndpointMtlsConfigOut`, plus Hookline's `identity` and `trustSystemRoots`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointMtlsConfigOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_ca_cert: Option<String>,
    /// The client certificate, or null when deliveries present none.
    pub identity: Option<ClientCertificateOut>,
    /// Whether the system roots are trusted (always, without `serverCaCert`).
    pub trust_system_roots: bool,
}

fn field_error(error: TlsSettingError) -> ApiError {
    ApiError::field(error.field(), error.to_string())
}

/// The configuration `input` asks for, checked.
fn parse(input: EndpointMtlsConfigIn) -> Result<EndpointTls, ApiError> {
    if input.identity.is_none() && input.server_ca_cert.is_none() {
        return Err(ApiError::field(
            "identity",
            "give `identity`, `serverCaCert` or both (DELETE removes the configuration)",
        ));
    }
    let identity = input
        .identity
        .map(|text| tls::parse_identity(text.expose()))
        .transpose()
        .map_err(field_error)?;
    let server_ca = input
        .server_ca_cert
        .map(|text| tls::parse_ca_bundle(&text))
        .transpose()
        .map_err(field_error)?;
    let config = EndpointTls {
        trust_system_roots: server_ca.is_some() && input.trust_system_roots,
        identity,
        server_ca,
    };
    tls::check(&config).map_err(field_error)?;
    Ok(config)
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/mtls", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses((status = 200, body = EndpointMtlsConfigOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn get(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
) -> Result<Json<EndpointMtlsConfigOut>, ApiError> {
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let config = endpoint
        .tls
        .ok_or(ApiError::NotFound("mTLS configuration"))?;
    let identity = config.identity.as_ref().and_then(tls::summarize);
    Ok(Json(EndpointMtlsConfigOut {
        trust_system_roots: config.server_ca.is_none() || config.trust_system_roots,
        server_ca_cert: config.server_ca,
        identity: identity.map(|s| ClientCertificateOut {
            subject: s.subject,
            issuer: s.issuer,
            not_after: s.not_after,
            sha256_fingerprint: s.sha256_fingerprint,
        }),
    }))
}

#[utoipa::path(put, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/mtls", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), request_body = EndpointMtlsConfigIn, responses((status = 204, description = "Configuration replaced"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn update(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    ApiJson(input): ApiJson<EndpointMtlsConfigIn>,
) -> Result<StatusCode, ApiError> {
    let config = parse(input)?;
    amend_endpoint(&state, &app, &endpoint_id, |endpoint| {
        endpoint.tls = Some(config)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/mtls", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses((status = 204, description = "Configuration removed (or there was none)"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn delete(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
) -> Result<StatusCode, ApiError> {
    amend_endpoint(&state, &app, &endpoint_id, |endpoint| endpoint.tls = None).await?;
    Ok(StatusCode::NO_CONTENT)
}
