//! An endpoint's signing key: read it, rotate it.
//!
//! A key is an HMAC secret (`whsec_…`, `v1,` signatures) or an ed25519 secret key
//! (`whsk_…`, `v1a,` signatures). Of an ed25519 key only its public key (`whpk_…`) is ever
//! answered: the secret key goes in and is kept sealed, never shown.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hookline_core::model::{Endpoint, SignatureScheme};
use hookline_core::secret::SecretText;
use hookline_core::signing::{KeyType, SigningKey};
use serde::{Deserialize, Serialize};

use super::common::{now, EndpointPath};
use super::endpoints::find_endpoint;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::idempotent::{begin, finish, Begun, Keep};
use crate::scope::AppScope;
use crate::state::ApiState;

/// `EndpointSecretOut`: the `whsec_…` secret, or for an ed25519 key its `whpk_…` public key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointSecretOut {
    #[schema(value_type = String)]
    pub key: SecretText,
}

impl EndpointSecretOut {
    /// What the owner of `endpoint` may read of its current key.
    pub(crate) fn of(endpoint: &Endpoint) -> Result<Self, ApiError> {
        shown_key(&endpoint.secret).map(|key| Self { key })
    }
}

/// Which kind of key signs (Hookline extension): `hmac` (a `whsec_` secret, `v1,`
/// signatures) or `ed25519` (a `whsk_` secret key, `v1a,` signatures, read back as its
/// `whpk_` public key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyTypeIo {
    Hmac,
    Ed25519,
}

impl From<KeyTypeIo> for KeyType {
    fn from(kind: KeyTypeIo) -> Self {
        match kind {
            KeyTypeIo::Hmac => Self::Hmac,
            KeyTypeIo::Ed25519 => Self::Ed25519,
        }
    }
}

impl From<KeyType> for KeyTypeIo {
    fn from(kind: KeyType) -> Self {
        match kind {
            KeyType::Hmac => Self::Hmac,
            KeyType::Ed25519 => Self::Ed25519,
        }
    }
}

/// A stored key's text as its owner may read it: the HMAC secret itself, or the public key
/// of an ed25519 key. A stored key that does not parse is a damaged record: answering its
/// text could show a secret key, so it is an internal error instead.
pub(crate) fn shown_key(stored: &SecretText) -> Result<SecretText, ApiError> {
    match KeyType::of_text(stored.expose()) {
        KeyType::Hmac => Ok(stored.clone()),
        KeyType::Ed25519 => SigningKey::parse(stored.expose())
            .map(|key| SecretText::new(key.public_text()))
            .map_err(|_| ApiError::Internal("a stored ed25519 key is unreadable".into())),
    }
}

/// The key a request sets: `given` (named `field`) if it sent one, else a new key of
/// `key_type`, else of `default`. A `keyType` that contradicts the given key is refused.
pub(crate) fn chosen_key(
    given: Option<&SecretText>,
    field: &str,
    key_type: Option<KeyTypeIo>,
    default: KeyType,
) -> Result<SigningKey, ApiError> {
    let Some(text) = given else {
        return Ok(SigningKey::generate(
            key_type.map_or(default, KeyType::from),
        ));
    };
    let key =
        SigningKey::parse(text.expose()).map_err(|e| ApiError::field(field, e.to_string()))?;
    match key_type.map(KeyType::from) {
        Some(wanted) if wanted != key.key_type() => Err(ApiError::field(
            "keyType",
            format!(
                "is {} but `{field}` is an {} key",
                wanted.as_str(),
                key.key_type().as_str()
            ),
        )),
        _ => Ok(key),
    }
}

/// The hex body scheme is an HMAC keyed by the secret's text, so it cannot go with an
/// ed25519 key; `field` names the side of the pair the request set.
pub(crate) fn check_scheme_fits_key(
    scheme: &SignatureScheme,
    key_type: KeyType,
    field: &str,
) -> Result<(), ApiError> {
    if matches!(scheme, SignatureScheme::HexBody { .. }) && key_type == KeyType::Ed25519 {
        return Err(ApiError::field(
            field,
            "the hexBody signature scheme is an HMAC of the body: it needs an hmac key, not an ed25519 one",
        ));
    }
    Ok(())
}

/// Longest grace period a rotation may ask for (Svix's: 7 days).
const MAX_GRACE_SECS: u64 = 7 * 24 * 3600;
/// Most retired secrets that may still be signing: a rotation beyond this waits until one
/// expires (Svix's limit), so every delivery carries a bounded number of signatures.
const MAX_RETIRED: usize = 10;

/// `EndpointSecretRotateIn`: the new key (or none to generate one) and how long the old one
/// keeps signing.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSecretRotateIn {
    /// The new key: a `whsec_…` secret or a `whsk_…` ed25519 secret key.
    #[schema(value_type = Option<String>)]
    pub key: Option<SecretText>,
    /// The type of key to generate when `key` is absent (Hookline extension); default: the
    /// type of the current key. With `key`, it must name that key's type.
    pub key_type: Option<KeyTypeIo>,
    /// Seconds the old secret keeps signing beside the new one, 0 to 604800 (7 days);
    /// default: the configured grace period (24 hours).
    pub grace_period_seconds: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), responses((status = 200, body = EndpointSecretOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn get(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
) -> Result<Json<EndpointSecretOut>, ApiError> {
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    EndpointSecretOut::of(&endpoint).map(Json)
}

/// Replaces the secret and answers the new one (the Python SDK reads it; the JavaScript SDK
/// ignores the body), as its public key for an ed25519 key. The previous one keeps signing
/// (a second, space-separated signature) for `gracePeriodSeconds`, so receivers can switch
/// without a gap, also between key types (a `v1,` and a `v1a,` entry).
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), request_body = Option<EndpointSecretRotateIn>, responses((status = 200, body = EndpointSecretOut, description = "Rotated: the new secret"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn rotate(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    headers: HeaderMap,
    body: Option<ApiJson<EndpointSecretRotateIn>>,
) -> Result<Response, ApiError> {
    let input = body.map(|ApiJson(input)| input).unwrap_or_default();
    rotate_once(&state, &app.id, &endpoint_id, &headers, input).await
}

/// Rotates the secret of the app's endpoint `endpoint_id` once per `idempotency-key`, and
/// answers the new one: what both `…/endpoint/{id}/secret/rotate` and a destination's
/// `…/destination/{id}/secret/rotate` do.
pub(crate) async fn rotate_once(
    state: &ApiState,
    app_id: &str,
    endpoint_id: &str,
    headers: &HeaderMap,
    input: EndpointSecretRotateIn,
) -> Result<Response, ApiError> {
    let operation = format!("endpoint.rotate-secret:{endpoint_id}");
    match begin(state, headers, app_id, &operation).await? {
        // The new secret is not kept beside the key: a repeat reads it again.
        Begun::Repeat(_) => {
            let endpoint = find_endpoint(state, app_id, endpoint_id).await?;
            Ok(Json(EndpointSecretOut::of(&endpoint)?).into_response())
        }
        Begun::First(held) => {
            let outcome = rotate_secret(state, app_id, endpoint_id, input).await;
            finish(state, held, outcome, Keep::Status).await
        }
    }
}

async fn rotate_secret(
    state: &ApiState,
    app_id: &str,
    endpoint_id: &str,
    input: EndpointSecretRotateIn,
) -> Result<Json<EndpointSecretOut>, ApiError> {
    let grace = match input.grace_period_seconds {
        Some(secs) if secs > MAX_GRACE_SECS => {
            return Err(ApiError::field(
                "gracePeriodSeconds",
                format!("must be between 0 and {MAX_GRACE_SECS} (7 days)"),
            ))
        }
        Some(secs) => Duration::from_secs(secs),
        None => state.config().secret_rotation_grace,
    };
    let previous = find_endpoint(state, app_id, endpoint_id).await?;
    let current = KeyType::of_text(previous.secret.expose());
    let secret = chosen_key(input.key.as_ref(), "key", input.key_type, current)?;
    let field = if input.key.is_some() {
        "key"
    } else {
        "keyType"
    };
    check_scheme_fits_key(&previous.signature_scheme, secret.key_type(), field)?;
    let mut endpoint = previous.clone();
    let now = now();
    endpoint.rotate_secret(secret.expose().into(), grace, now);
    if endpoint.old_secrets.len() > MAX_RETIRED {
        return Err(ApiError::Conflict(format!(
            "this endpoint already has {MAX_RETIRED} earlier secrets still signing; rotate again once one has expired"
        )));
    }
    endpoint.updated_at = now;
    state
        .registry()
        .update_endpoint(&previous, &endpoint)
        .await?;
    Ok(Json(EndpointSecretOut {
        key: secret.public_text().into(),
    }))
}
