//! Bearer-token authentication and scope.
//!
//! Admin tokens come from configuration; only their SHA-256 digests are kept in memory and
//! a presented token's digest is compared in constant time, so neither the tokens nor their
//! length leak through memory dumps or timing.
//!
//! App tokens (`hlapp_…`, minted by `app-portal-access`) are stored by digest in the store.
//! What a token may reach is decided by the scope extractors in [`crate::scope`].

use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use hookline_core::scope::TokenScope;

use crate::error::ApiError;
use crate::state::ApiState;

/// Digests of the accepted admin tokens.
#[derive(Clone, Default)]
pub struct AdminTokens {
    digests: Vec<[u8; 32]>,
}

impl AdminTokens {
    /// Keeps only digests of `tokens`; empty tokens are ignored.
    pub fn new<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            digests: tokens
                .into_iter()
                .filter(|t| !t.is_empty())
                .map(digest)
                .collect(),
        }
    }

    /// Whether `token` is one of the admin tokens. Checks every digest, so the time taken
    /// does not depend on which one (if any) matched.
    pub fn accepts(&self, token: &str) -> bool {
        let presented = digest(token);
        self.digests
            .iter()
            .fold(0u8, |found, d| found | d.ct_eq(&presented).unwrap_u8())
            == 1
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The prefix of app tokens, so a token's kind is known without a lookup.
pub const APP_TOKEN_PREFIX: &str = "hlapp_";

/// The prefix of generated admin tokens (configured ones may be anything).
pub const ADMIN_TOKEN_PREFIX: &str = "hladm_";

/// `prefix` and 40 random alphanumerics (238 bits).
fn random_token(prefix: &str) -> String {
    use rand::distr::{Alphanumeric, SampleString};
    format!(
        "{prefix}{}",
        Alphanumeric.sample_string(&mut rand::rng(), 40)
    )
}

/// A new random app token and the digest it is stored under.
pub fn new_app_token() -> (String, String) {
    let token = random_token(APP_TOKEN_PREFIX);
    let digest = app_token_digest(&token);
    (token, digest)
}

/// A new random admin token, for embedded mode's first start.
pub fn new_admin_token() -> String {
    random_token(ADMIN_TOKEN_PREFIX)
}

/// The key an app token is stored under: its SHA-256, hex.
pub fn app_token_digest(token: &str) -> String {
    hex::encode(digest(token))
}

/// Who is calling, attached to the request by [`require_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
    App { app_id: String, scope: TokenScope },
}

/// Authenticates the bearer token (401 when missing, unknown, expired or revoked, or when
/// its app is gone) and attaches the caller's [`Principal`]. What the caller may reach is
/// decided by the scope extractors each handler takes ([`crate::scope`]).
pub async fn require_token(
    State(state): State<ApiState>,
    params: Result<RawPathParams, RawPathParamsRejection>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    // Every authenticated route passes here first, so this is the one place a path that
    // does not decode (invalid percent-encoded UTF-8) is refused, in the JSON error shape,
    // before any handler's `Path` extractor could answer in plain text.
    params.map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    let token = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    let principal = authenticate(&state, token).await?;
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

async fn authenticate(state: &ApiState, token: &str) -> Result<Principal, ApiError> {
    if state.admin_tokens().accepts(token) {
        return Ok(Principal::Admin);
    }
    if !token.starts_with(APP_TOKEN_PREFIX) {
        return Err(ApiError::Unauthorized);
    }
    let stored = state
        .tokens()
        .find_app_token(&app_token_digest(token))
        .await?
        .ok_or(ApiError::Unauthorized)?;
    if stored.expires_at <= time::OffsetDateTime::now_utc() {
        return Err(ApiError::Unauthorized);
    }
    // A token outlives its app only if the delete stopped before revoking it.
    if state.registry().get_app(&stored.app_id).await?.is_none() {
        return Err(ApiError::Unauthorized);
    }
    Ok(Principal::App {
        scope: stored.scope(),
        app_id: stored.app_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_tokens() {
        let tokens = AdminTokens::new(["alpha", "", "beta"]);
        assert!(tokens.accepts("alpha"));
        assert!(tokens.accepts("beta"));
        assert!(!tokens.accepts(""));
        assert!(!tokens.accepts("alph"));
        assert!(!AdminTokens::default().accepts("alpha"));
    }
}
