//! Bearer-token authentication.
//!
//! Admin tokens come from configuration; only their SHA-256 digests are kept in memory and
//! a presented token's digest is compared in constant time, so neither the tokens nor their
//! length leak through memory dumps or timing.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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

/// Who is calling, attached to the request by [`require_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin,
}

/// Rejects requests without a valid bearer token (401).
pub async fn require_token(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or(ApiError::Unauthorized)?;
    if !state.admin_tokens().accepts(token) {
        return Err(ApiError::Unauthorized);
    }
    request.extensions_mut().insert(Principal::Admin);
    Ok(next.run(request).await)
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
