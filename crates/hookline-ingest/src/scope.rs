//! Tenancy as types: what a handler may touch is decided by the extractors it takes.
//!
//! [`crate::auth::require_token`] only authenticates; it attaches the caller's [`Principal`]
//! to the request. Each handler then names its scope in its signature:
//!
//! - [`AppScope`] for everything under `/app/{app_id}`: the app resolved from the path and
//!   checked against the caller. An app token reaches only its own app (another app's ids
//!   answer 404, exactly as ids that do not exist, so a token never confirms that another
//!   tenant's resource is there) and does there only what its scope allows (its Svix
//!   capabilities and read-only flag, through [`crate::access::check`]).
//! - [`AppTarget`] where the app may be created by the request itself.
//! - [`AdminApp`] for what only an admin may do to one app (change or delete it, mint its
//!   tokens).
//! - [`AdminOnly`] for organisation-wide operations (list or create apps, write the event
//!   type catalog).
//! - [`Caller`] for the few routes outside any app that app tokens may read (the event type
//!   catalog).
//!
//! Resolving an app from a path is private to this module, so a handler cannot reach an
//! app's data without going through one of these checks. The tenancy test walks every route
//! of the router with another tenant's token, so a route that takes none of them is caught.

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams};
use axum::http::request::Parts;
use hookline_core::model::App;

use crate::access;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::ApiState;

/// Any authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &ApiState) -> Result<Self, ApiError> {
        principal(parts).map(Caller)
    }
}

/// An admin token; app tokens answer 403.
#[derive(Debug, Clone, Copy)]
pub struct AdminOnly;

impl FromRequestParts<ApiState> for AdminOnly {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &ApiState) -> Result<Self, ApiError> {
        match principal(parts)? {
            Principal::Admin => Ok(AdminOnly),
            Principal::App { .. } => Err(ApiError::Forbidden),
        }
    }
}

/// The app named by the path's `{app_id}` (id or uid), for an admin only.
#[derive(Debug, Clone)]
pub struct AdminApp {
    pub app: App,
}

impl FromRequestParts<ApiState> for AdminApp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        AdminOnly::from_request_parts(parts, state).await?;
        let app = find_app(state, &path_app_id(parts).await?).await?;
        Ok(AdminApp { app })
    }
}

/// The app named by the path's `{app_id}` (id or uid), which the caller may reach.
#[derive(Debug, Clone)]
pub struct AppScope {
    pub app: App,
    pub principal: Principal,
}

impl FromRequestParts<ApiState> for AppScope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let principal = principal(parts)?;
        let path_app = path_app_id(parts).await?;
        let app = match &principal {
            Principal::Admin => find_app(state, &path_app).await?,
            Principal::App { app_id, scope } => {
                // What the token may do here (its capabilities, read-only): decided before
                // the app is looked up, so a refusal says nothing about another tenant.
                let route = parts
                    .extensions
                    .get::<MatchedPath>()
                    .map(MatchedPath::as_str)
                    .unwrap_or_default();
                access::check(scope, &parts.method, route)?;
                match state.registry().get_app(&path_app).await? {
                    Some(app) if app.id == *app_id => app,
                    _ => return Err(ApiError::NotFound("application")),
                }
            }
        };
        Ok(AppScope { app, principal })
    }
}

/// The path's `{app_id}` where the app may not exist yet (a message sent with Svix's
/// `application` field creates it). An app token must name its own, existing app (it
/// cannot create apps); an admin may name any.
#[derive(Debug, Clone)]
pub struct AppTarget {
    pub app_id: String,
}

impl FromRequestParts<ApiState> for AppTarget {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        if let Principal::App { .. } = principal(parts)? {
            AppScope::from_request_parts(parts, state).await?;
        }
        Ok(AppTarget {
            app_id: path_app_id(parts).await?,
        })
    }
}

/// The principal [`crate::auth::require_token`] attached. Its absence means a route was
/// mounted outside the authenticated router: refuse rather than guess.
fn principal(parts: &Parts) -> Result<Principal, ApiError> {
    parts
        .extensions
        .get::<Principal>()
        .cloned()
        .ok_or(ApiError::Unauthorized)
}

async fn path_app_id(parts: &mut Parts) -> Result<String, ApiError> {
    let params = RawPathParams::from_request_parts(parts, &())
        .await
        .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    params
        .iter()
        .find(|(name, _)| *name == "app_id")
        .map(|(_, value)| value.to_owned())
        .ok_or_else(|| {
            ApiError::Internal("an app-scoped route without an {app_id} path segment".into())
        })
}

async fn find_app(state: &ApiState, app_id: &str) -> Result<App, ApiError> {
    state
        .registry()
        .get_app(app_id)
        .await?
        .ok_or(ApiError::NotFound("application"))
}
