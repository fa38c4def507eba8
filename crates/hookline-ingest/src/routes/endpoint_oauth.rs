//! An endpoint's OAuth2 client (Svix `…/endpoint/{id}/oauth`): deliveries carry a bearer
//! token the dispatcher gets from the receiver's authorisation server with the
//! client-credentials grant (RFC 6749 §4.4), `client_secret_basic` or `client_secret_post`.
//!
//! What Svix also accepts and Hookline does not do (a JWT-signed client assertion, the
//! refresh-token grant) is refused with a 422 naming the field, never stored unused. An
//! audience or resource indicator goes in `extraParams`, sent as form parameters of the
//! token request. The client secret is sealed at rest and never answered.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookline_core::outbound::{OAuthAuthMethod, OAuthClient};
use hookline_core::secret::SecretText;
use serde::{Deserialize, Serialize};

use super::common::EndpointPath;
use super::endpoints::{amend_endpoint, find_endpoint};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::scope::AppScope;
use crate::state::ApiState;

/// Longest `tokenUrl`.
const MAX_TOKEN_URL: usize = 2048;
/// Longest `clientId`, `clientSecret`, scope, parameter name or value.
const MAX_TEXT: usize = 4096;
/// Most `scopes`, and most `extraParams`.
const MAX_ITEMS: usize = 32;
/// Form parameters of the token request Hookline sets itself.
const RESERVED_PARAMS: [&str; 4] = ["grant_type", "scope", "client_id", "client_secret"];

/// How the client authenticates to the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum OauthEndpointAuthMethod {
    /// HTTP Basic with the form-urlencoded client id and secret.
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A client assertion signed with the secret: not offered (refused with a 422).
    ClientSecretJwt,
}

/// The OAuth2 grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum OauthEndpointGrantType {
    ClientCredentials,
    /// Not offered (refused with a 422).
    RefreshToken,
}

/// `EndpointOauthConfigIn`: replaces the endpoint's OAuth2 client.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointOauthConfigIn {
    pub auth_method: OauthEndpointAuthMethod,
    pub client_id: String,
    /// Required with `clientSecretBasic` and `clientSecretPost`.
    #[schema(value_type = Option<String>)]
    pub client_secret: Option<SecretText>,
    pub grant_type: OauthEndpointGrantType,
    /// The authorisation server's token endpoint: an http(s) URL the delivery address
    /// policy allows.
    pub token_url: String,
    /// Sent space-separated as `scope`.
    pub scopes: Option<Vec<String>>,
    /// Further form parameters of the token request (`audience`, `resource`).
    pub extra_params: Option<BTreeMap<String, String>>,
    /// For `clientSecretJwt`: not offered; only `null` is accepted.
    #[schema(value_type = Option<Object>)]
    pub jwt_params: Option<serde_json::Value>,
    /// For the `refreshToken` grant: not offered; only `null` is accepted.
    #[schema(value_type = Option<String>)]
    pub refresh_token: Option<SecretText>,
}

/// `EndpointOauthConfigOut`: the client, without its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointOauthConfigOut {
    pub auth_method: OauthEndpointAuthMethod,
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_params: Option<BTreeMap<String, String>>,
    pub grant_type: OauthEndpointGrantType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    pub token_url: String,
    /// Whether a client secret is set (Hookline extension; the secret is never answered).
    pub has_client_secret: bool,
}

impl From<OAuthClient> for EndpointOauthConfigOut {
    fn from(client: OAuthClient) -> Self {
        Self {
            auth_method: match client.auth_method {
                OAuthAuthMethod::ClientSecretBasic => OauthEndpointAuthMethod::ClientSecretBasic,
                OAuthAuthMethod::ClientSecretPost => OauthEndpointAuthMethod::ClientSecretPost,
            },
            client_id: client.client_id,
            extra_params: Some(client.extra_params).filter(|p| !p.is_empty()),
            grant_type: OauthEndpointGrantType::ClientCredentials,
            scopes: Some(client.scopes).filter(|s| !s.is_empty()),
            token_url: client.token_url,
            has_client_secret: client.client_secret.is_some(),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/oauth", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses((status = 200, body = EndpointOauthConfigOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn get(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
) -> Result<Json<EndpointOauthConfigOut>, ApiError> {
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let client = endpoint
        .oauth
        .ok_or(ApiError::NotFound("endpoint OAuth configuration"))?;
    Ok(Json(client.into()))
}

#[utoipa::path(put, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/oauth", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), request_body = EndpointOauthConfigIn, responses((status = 204, description = "OAuth2 client set"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn update(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    ApiJson(input): ApiJson<EndpointOauthConfigIn>,
) -> Result<StatusCode, ApiError> {
    let client = checked(&state, input).await?;
    amend_endpoint(&state, &app, &endpoint_id, |endpoint| {
        endpoint.oauth = Some(client)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/oauth", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses((status = 204, description = "OAuth2 client removed (or there was none)"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn delete(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
) -> Result<StatusCode, ApiError> {
    amend_endpoint(&state, &app, &endpoint_id, |endpoint| endpoint.oauth = None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The client `input` describes, or a 422 naming the first field Hookline cannot honour.
async fn checked(state: &ApiState, input: EndpointOauthConfigIn) -> Result<OAuthClient, ApiError> {
    let auth_method = match input.auth_method {
        OauthEndpointAuthMethod::ClientSecretBasic => OAuthAuthMethod::ClientSecretBasic,
        OauthEndpointAuthMethod::ClientSecretPost => OAuthAuthMethod::ClientSecretPost,
        OauthEndpointAuthMethod::ClientSecretJwt => {
            return Err(ApiError::field(
                "authMethod",
                "clientSecretJwt is not supported; use clientSecretBasic or clientSecretPost",
            ))
        }
    };
    if input.grant_type == OauthEndpointGrantType::RefreshToken {
        return Err(ApiError::field(
            "grantType",
            "refreshToken is not supported; only clientCredentials is",
        ));
    }
    if input.jwt_params.is_some() {
        return Err(ApiError::field(
            "jwtParams",
            "not supported: there is no clientSecretJwt authentication",
        ));
    }
    if input.refresh_token.is_some() {
        return Err(ApiError::field(
            "refreshToken",
            "not supported: there is no refreshToken grant",
        ));
    }
    let client_secret = input
        .client_secret
        .filter(|secret| !secret.expose().is_empty())
        .ok_or_else(|| ApiError::field("clientSecret", "required with this authMethod"))?;
    check_text("clientSecret", client_secret.expose())?;
    check_text("clientId", &input.client_id)?;
    Ok(OAuthClient {
        token_url: check_token_url(state, input.token_url).await?,
        client_id: input.client_id,
        client_secret: Some(client_secret),
        auth_method,
        scopes: check_scopes(input.scopes.unwrap_or_default())?,
        extra_params: check_params(input.extra_params.unwrap_or_default())?,
    })
}

/// Non-empty, not overlong.
fn check_text(field: &str, text: &str) -> Result<(), ApiError> {
    if text.is_empty() || text.len() > MAX_TEXT {
        return Err(ApiError::field(
            field,
            format!("must be 1 to {MAX_TEXT} bytes"),
        ));
    }
    Ok(())
}

/// An http(s) URL without credentials whose host is not, and does not now resolve to, an
/// address the delivery policy refuses (the dispatcher checks again at every connection).
async fn check_token_url(state: &ApiState, url: String) -> Result<String, ApiError> {
    const FIELD: &str = "tokenUrl";
    if url.len() > MAX_TOKEN_URL {
        return Err(ApiError::field(
            FIELD,
            format!("must be at most {MAX_TOKEN_URL} characters"),
        ));
    }
    let parsed = url::Url::parse(&url).map_err(|e| ApiError::field(FIELD, e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::field(FIELD, "must be an http or https URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::field(FIELD, "must name a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ApiError::field(
            FIELD,
            "must not carry credentials; set clientId and clientSecret",
        ));
    }
    state
        .resolver()
        .check_destination(&parsed)
        .await
        .map_err(|e| ApiError::field(FIELD, e.to_string()))?;
    Ok(url)
}

/// Scope tokens as RFC 6749 §3.3 has them: printable ASCII without spaces, `"` or `\`.
fn check_scopes(scopes: Vec<String>) -> Result<Vec<String>, ApiError> {
    if scopes.len() > MAX_ITEMS {
        return Err(ApiError::field(
            "scopes",
            format!("at most {MAX_ITEMS} scopes"),
        ));
    }
    for scope in &scopes {
        let valid = !scope.is_empty()
            && scope.len() <= MAX_TEXT
            && scope
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
        if !valid {
            return Err(ApiError::field(
                "scopes",
                format!("`{scope}` is not a scope: printable ASCII without spaces, quotes or backslashes"),
            ));
        }
    }
    Ok(scopes)
}

/// Parameters Hookline does not set itself, within limits.
fn check_params(params: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError> {
    const FIELD: &str = "extraParams";
    if params.len() > MAX_ITEMS {
        return Err(ApiError::field(
            FIELD,
            format!("at most {MAX_ITEMS} parameters"),
        ));
    }
    for (name, value) in &params {
        if RESERVED_PARAMS.contains(&name.as_str()) {
            return Err(ApiError::field(
                FIELD,
                format!("`{name}` is set by Hookline and cannot be given here"),
            ));
        }
        if name.is_empty() || name.len() > MAX_TEXT || value.len() > MAX_TEXT {
            return Err(ApiError::field(
                FIELD,
                format!("names must be 1 to {MAX_TEXT} bytes and values at most {MAX_TEXT}"),
            ));
        }
    }
    Ok(params)
}
