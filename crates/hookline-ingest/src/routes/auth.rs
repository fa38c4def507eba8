//! App portal access: app-scoped tokens minted and expired by an admin, and logged out by
//! their holders.
//!
//! Every `AppPortalAccessIn` field is honoured: `capabilities` and `readOnly` become the
//! token's scope (enforced by `auth` through `hookline_core::scope`), `application` creates
//! the app when the path names none, `expiry` sets its lifetime and `sessionId` lets "expire
//! all" name it. `featureFlags` is refused unless empty: Hookline's dashboard has no flagged
//! features, so a flag could not change what the token sees.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookline_core::model::{App, AppToken};
use hookline_core::names::SessionId;
use hookline_core::scope::{Capability, TokenScope};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::apps::ApplicationIn;
use super::common::parse_names;
use super::messages::{app_for_message, create_app_for_message};
use crate::auth::{app_token_digest, new_app_token, Principal};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::scope::{AdminApp, AdminOnly, Caller};
use crate::state::ApiState;

/// Svix `AppPortalAccessIn`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPortalAccessIn {
    /// Creates the application when the path names none (its uid is the path's value
    /// unless given); ignored when the application exists, as in Svix.
    pub application: Option<ApplicationIn>,
    /// What the token may do; must include `ViewBase`. Every capability when absent.
    pub capabilities: Option<Vec<AppPortalCapability>>,
    /// Lifetime in seconds; at most the configured maximum (7 days by default).
    pub expiry: Option<u64>,
    /// Only reads are allowed.
    pub read_only: Option<bool>,
    /// Refused unless empty: Hookline has no feature flags.
    pub feature_flags: Option<Vec<String>>,
    /// Names the token's session for `expire-all`'s `sessionIds`.
    pub session_id: Option<String>,
}

/// Svix `AppPortalCapability`.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
pub enum AppPortalCapability {
    ViewBase,
    ViewEndpointSecret,
    ManageEndpointSecret,
    ManageTransformations,
    CreateAttempts,
    ManageEndpoint,
}

impl From<AppPortalCapability> for Capability {
    fn from(capability: AppPortalCapability) -> Self {
        match capability {
            AppPortalCapability::ViewBase => Capability::ViewBase,
            AppPortalCapability::ViewEndpointSecret => Capability::ViewEndpointSecret,
            AppPortalCapability::ManageEndpointSecret => Capability::ManageEndpointSecret,
            AppPortalCapability::ManageTransformations => Capability::ManageTransformations,
            AppPortalCapability::CreateAttempts => Capability::CreateAttempts,
            AppPortalCapability::ManageEndpoint => Capability::ManageEndpoint,
        }
    }
}

/// Svix `AppPortalAccessOut` (and `DashboardAccessOut`, the same shape).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppPortalAccessOut {
    pub url: String,
    pub token: String,
}

/// Svix `ApplicationTokenExpireIn`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplicationTokenExpireIn {
    /// Seconds until the tokens expire (0, the default: now); never lengthens a token.
    pub expiry: Option<u64>,
    /// Only tokens minted with one of these `sessionId`s; every token when absent or empty.
    pub session_ids: Option<Vec<String>>,
}

/// A token request checked in full before anything is stored.
struct Grant {
    scope: TokenScope,
    capabilities: Option<BTreeSet<Capability>>,
    session_id: Option<SessionId>,
    lifetime_secs: u64,
}

fn grant(state: &ApiState, input: &AppPortalAccessIn) -> Result<Grant, ApiError> {
    let capabilities: Option<BTreeSet<Capability>> = input
        .capabilities
        .as_ref()
        .map(|given| given.iter().copied().map(Capability::from).collect());
    let scope = TokenScope::new(capabilities.clone(), input.read_only.unwrap_or(false))
        .map_err(|e| ApiError::field("capabilities", e.to_string()))?;
    if input.feature_flags.as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(ApiError::field(
            "featureFlags",
            "Hookline has no feature flags; omit it or send an empty list",
        ));
    }
    let session_id = input
        .session_id
        .as_deref()
        .map(|id| SessionId::parse(id).map_err(|e| ApiError::field("sessionId", e.to_string())))
        .transpose()?;
    let max = state.config().max_app_token_lifetime.as_secs();
    let lifetime_secs = input.expiry.unwrap_or(max);
    if lifetime_secs == 0 || lifetime_secs > max {
        return Err(ApiError::field(
            "expiry",
            format!("must be between 1 and {max} seconds"),
        ));
    }
    Ok(Grant {
        scope,
        capabilities,
        session_id,
        lifetime_secs,
    })
}

/// Stores a new token for `app` and answers its link.
async fn mint(state: &ApiState, app: &App, grant: Grant) -> Result<AppPortalAccessOut, ApiError> {
    let (token, digest) = new_app_token();
    let record = AppToken {
        app_id: app.id.clone(),
        read_only: grant.scope.read_only(),
        capabilities: grant.capabilities,
        session_id: grant.session_id,
        expires_at: OffsetDateTime::now_utc()
            + time::Duration::seconds(grant.lifetime_secs.try_into().unwrap_or(i64::MAX)),
    };
    state.tokens().create_app_token(&digest, &record).await?;
    let base = state.config().public_url.trim_end_matches('/');
    Ok(AppPortalAccessOut {
        url: format!("{base}/dashboard/login#token={token}&app={}", app.id),
        token,
    })
}

/// The app the path names, or, with `application`, a new one named by the path.
async fn app_or_create(
    state: &ApiState,
    app_id: &str,
    application: Option<ApplicationIn>,
) -> Result<App, ApiError> {
    if let Some(app) = state.registry().get_app(app_id).await? {
        return Ok(app);
    }
    let candidate = app_for_message(app_id, application)?;
    create_app_for_message(state, app_id, candidate).await
}

#[utoipa::path(post, path = "/api/v1/auth/app-portal-access/{app_id}", params(("app_id" = String, Path, description = "Application id or uid")), request_body = Option<AppPortalAccessIn>, responses((status = 200, body = AppPortalAccessOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Authentication")]
pub async fn app_portal_access(
    State(state): State<ApiState>,
    _: AdminOnly,
    // Not `AdminApp`: with `application`, the app the path names may not exist yet.
    Path(app_id): Path<String>,
    body: Option<ApiJson<AppPortalAccessIn>>,
) -> Result<Json<AppPortalAccessOut>, ApiError> {
    let mut input = body.map(|ApiJson(input)| input).unwrap_or_default();
    // Everything is checked before the application may be created.
    let grant = grant(&state, &input)?;
    let app = app_or_create(&state, &app_id, input.application.take()).await?;
    Ok(Json(mint(&state, &app, grant).await?))
}

/// Svix's deprecated `dashboard-access`: an app portal token with every capability.
#[utoipa::path(post, path = "/api/v1/auth/dashboard-access/{app_id}", params(("app_id" = String, Path, description = "Application id or uid")), responses((status = 200, body = AppPortalAccessOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Authentication")]
pub async fn dashboard_access(
    State(state): State<ApiState>,
    AdminApp { app }: AdminApp,
) -> Result<Json<AppPortalAccessOut>, ApiError> {
    let grant = grant(&state, &AppPortalAccessIn::default())?;
    Ok(Json(mint(&state, &app, grant).await?))
}

/// Expires the app's tokens (or those of the named sessions), now or after `expiry`.
#[utoipa::path(post, path = "/api/v1/auth/app/{app_id}/expire-all", params(("app_id" = String, Path, description = "Application id or uid")), request_body = Option<ApplicationTokenExpireIn>, responses((status = 204, description = "The tokens expire as asked"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Authentication")]
pub async fn expire_all(
    State(state): State<ApiState>,
    AdminApp { app }: AdminApp,
    body: Option<ApiJson<ApplicationTokenExpireIn>>,
) -> Result<StatusCode, ApiError> {
    let input = body.map(|ApiJson(input)| input).unwrap_or_default();
    let max = state.config().max_app_token_lifetime.as_secs();
    let expiry = input.expiry.unwrap_or(0);
    if expiry > max {
        return Err(ApiError::field(
            "expiry",
            format!("must be between 0 and {max} seconds"),
        ));
    }
    let sessions = input
        .session_ids
        .filter(|ids| !ids.is_empty())
        .map(|ids| parse_names("sessionIds", ids, |id| SessionId::parse(&id)))
        .transpose()?;
    let now = OffsetDateTime::now_utc();
    let at = now + time::Duration::seconds(expiry.try_into().unwrap_or(i64::MAX));
    let expired = state
        .tokens()
        .expire_app_tokens(&app.id, sessions.as_deref(), at, now)
        .await?;
    tracing::info!(app_id = %app.id, expired, expiry, "app tokens expired");
    Ok(StatusCode::NO_CONTENT)
}

/// Ends the calling app token's session: the token answers 401 from now on.
#[utoipa::path(post, path = "/api/v1/auth/logout", responses((status = 204, description = "The token is revoked"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Authentication")]
pub async fn logout(
    State(state): State<ApiState>,
    Caller(principal): Caller,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    if principal == Principal::Admin {
        return Err(ApiError::BadRequest(
            "only app portal tokens can log out; admin tokens come from the configuration".into(),
        ));
    }
    // The middleware authenticated this very header, so it is present and well formed.
    let token = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    state
        .tokens()
        .revoke_app_token(&app_token_digest(token))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
