//! App portal access: app-scoped tokens minted and revoked by an admin.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hookline_core::model::AppToken;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::auth::new_app_token;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::scope::AdminApp;
use crate::state::ApiState;

/// Svix `AppPortalAccessIn` (the fields Hookline honours).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPortalAccessIn {
    /// Lifetime in seconds; at most the configured maximum (7 days by default).
    pub expiry: Option<u64>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub feature_flags: Vec<String>,
    pub session_id: Option<String>,
}

/// Svix `AppPortalAccessOut`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AppPortalAccessOut {
    pub url: String,
    pub token: String,
}

#[utoipa::path(post, path = "/api/v1/auth/app-portal-access/{app_id}", params(("app_id" = String, Path, description = "Application id or uid")), request_body = Option<AppPortalAccessIn>, responses((status = 200, body = AppPortalAccessOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Authentication")]
pub async fn app_portal_access(
    State(state): State<ApiState>,
    AdminApp { app }: AdminApp,
    body: Option<ApiJson<AppPortalAccessIn>>,
) -> Result<Json<AppPortalAccessOut>, ApiError> {
    let input = body.map(|ApiJson(input)| input).unwrap_or_default();
    let max = state.config().max_app_token_lifetime.as_secs();
    let lifetime = input.expiry.unwrap_or(max);
    if lifetime == 0 || lifetime > max {
        return Err(ApiError::field(
            "expiry",
            format!("must be between 1 and {max} seconds"),
        ));
    }
    let (token, digest) = new_app_token();
    let record = AppToken {
        app_id: app.id.clone(),
        read_only: input.read_only,
        expires_at: OffsetDateTime::now_utc()
            + time::Duration::seconds(lifetime.try_into().unwrap_or(i64::MAX)),
    };
    state.tokens().create_app_token(&digest, &record).await?;
    let base = state.config().public_url.trim_end_matches('/');
    Ok(Json(AppPortalAccessOut {
        url: format!("{base}/dashboard/login#token={token}&app={}", app.id),
        token,
    }))
}

/// Svix `ApplicationTokenExpireIn`. Hookline revokes every token of the app at once, so it
/// reads neither field: a delay (`expiry`) or a choice of sessions (`sessionIds`) is
/// refused, never skipped.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct ApplicationTokenExpireIn {}

/// Revokes every app token of the app at once.
#[utoipa::path(post, path = "/api/v1/auth/app/{app_id}/expire-all", params(("app_id" = String, Path, description = "Application id or uid")), request_body = Option<ApplicationTokenExpireIn>, responses((status = 204, description = "Every app token revoked"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Authentication")]
pub async fn expire_all(
    State(state): State<ApiState>,
    AdminApp { app }: AdminApp,
    _body: Option<ApiJson<ApplicationTokenExpireIn>>,
) -> Result<StatusCode, ApiError> {
    let revoked = state.tokens().revoke_app_tokens(&app.id).await?;
    tracing::info!(app_id = %app.id, revoked, "app tokens revoked");
    Ok(StatusCode::NO_CONTENT)
}
