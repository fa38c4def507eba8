//! `idempotency-key` on the API's other POSTs (creating an app, an endpoint or an event type,
//! importing event types, rotating a secret, sending an example, resending a message): a
//! repeat of a request that succeeded answers the first answer again and does nothing more,
//! as Svix does. The SDKs send a key with every POST and retry with the same key after a
//! lost answer, so without this a retried create would create twice.
//!
//! The key is scoped to the operation, so one key reused on two operations does two things.
//! An answer that carries a secret (a rotation's new key) is not kept: only its status is,
//! and the handler answers a repeat afresh.
//! An answer is kept for `api.idempotency_ttl`; a failed request keeps nothing, so its retry
//! runs again. A repeat that arrives while the first still runs answers 409. Message intake
//! has its own, stronger scheme (`intake.rs`).

use std::future::Future;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hookline_core::names::IdempotencyKey;
use hookline_core::ports::IdempotencyClaim;

use crate::error::ApiError;
use crate::routes::common::{now, unix_ms};
use crate::state::ApiState;

/// The store scope of keys for operations outside any app (apps, event types).
pub const ORGANISATION: &str = "_org";

/// Largest answer kept for a key; a larger one is answered but not kept (a retry of it runs
/// again).
const MAX_KEPT: usize = 256 * 1024;

/// Runs `work` once per `idempotency-key` of `operation` in `scope` (an app id, or
/// [`ORGANISATION`]); without the header, simply runs it. A repeat answers the kept answer.
pub async fn once<R, F>(
    state: &ApiState,
    headers: &HeaderMap,
    scope: &str,
    operation: &str,
    work: F,
) -> Result<Response, ApiError>
where
    R: IntoResponse,
    F: Future<Output = Result<R, ApiError>>,
{
    match begin(state, headers, scope, operation).await? {
        Begun::Repeat(kept) => Ok(replay(&kept)),
        Begun::First(held) => finish(state, held, work.await, Keep::Answer).await,
    }
}

/// Where a request stands with its idempotency key.
pub enum Begun {
    /// It runs: the first with its key (or it has none); hand the key to [`finish`].
    First(Option<Held>),
    /// An earlier request with the key succeeded; what it kept (`<status>\n<body>`).
    Repeat(String),
}

/// A claimed idempotency key, to be finished once the work is done.
pub struct Held {
    scope: String,
    keys: [String; 1],
    owner: String,
    operation: String,
}

/// What a finished request keeps for its repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// The whole answer.
    Answer,
    /// Only its status: for answers that carry a secret, which must not sit in the store
    /// in the clear; the caller answers a repeat afresh.
    Status,
}

/// Claims the request's key, or tells that an earlier request with it succeeded. A repeat
/// that arrives while the first still runs answers 409.
pub async fn begin(
    state: &ApiState,
    headers: &HeaderMap,
    scope: &str,
    operation: &str,
) -> Result<Begun, ApiError> {
    let Some(key) = header_key(headers)? else {
        return Ok(Begun::First(None));
    };
    let held = Held {
        scope: scope.to_owned(),
        keys: [format!("req:{operation}:{}", key.as_str())],
        owner: hookline_core::id::new_id("req", unix_ms(now())),
        operation: operation.to_owned(),
    };
    let lease = u64::try_from(state.config().idempotency_lease.as_millis()).unwrap_or(u64::MAX);
    let ttl = state.config().idempotency_ttl.as_secs();
    let claim = state
        .messages()
        .claim_idempotency(scope, &held.keys, &held.owner, lease, ttl)
        .await?;
    match claim {
        IdempotencyClaim::Done(kept) => Ok(Begun::Repeat(kept)),
        IdempotencyClaim::InProgress => Err(ApiError::Conflict(
            "a request with this idempotency-key is still in progress".into(),
        )),
        // A request that died holding the key left no answer: this one runs instead.
        IdempotencyClaim::Claimed | IdempotencyClaim::Adopted(_) => Ok(Begun::First(Some(held))),
    }
}

/// Keeps what `keep` says of a successful `outcome` under the held key, or frees the key
/// after a failure so that a retry runs again; answers `outcome`.
pub async fn finish<R: IntoResponse>(
    state: &ApiState,
    held: Option<Held>,
    outcome: Result<R, ApiError>,
    keep: Keep,
) -> Result<Response, ApiError> {
    let outcome = outcome.map(IntoResponse::into_response);
    let Some(held) = held else {
        return outcome;
    };
    let store = state.messages();
    let Ok(response) = outcome else {
        if let Err(error) = store
            .release_idempotency(&held.scope, &held.keys, &held.owner)
            .await
        {
            tracing::warn!(%error, operation = %held.operation, "idempotency key not released");
        }
        return outcome;
    };
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|e| ApiError::Internal(format!("reading an answer to keep it: {e}")))?;
    let status = parts.status.as_u16();
    let kept = match keep {
        _ if !parts.status.is_success() => None,
        Keep::Status => Some(format!("{status}\n")),
        Keep::Answer if bytes.len() <= MAX_KEPT => {
            Some(format!("{status}\n{}", String::from_utf8_lossy(&bytes)))
        }
        Keep::Answer => None,
    };
    let ttl = state.config().idempotency_ttl.as_secs();
    let stored = match kept {
        Some(kept) => {
            store
                .complete_idempotency(&held.scope, &held.keys, &kept, ttl)
                .await
        }
        None => {
            store
                .release_idempotency(&held.scope, &held.keys, &held.owner)
                .await
        }
    };
    if let Err(error) = stored {
        // The work is done: answer it; a retry may run once more.
        tracing::warn!(%error, operation = %held.operation, "idempotent answer not kept");
    }
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

fn header_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::BadRequest("idempotency-key must be visible ASCII".into()))?;
    IdempotencyKey::parse(text)
        .map(Some)
        .map_err(|e| ApiError::BadRequest(format!("idempotency-key {e}")))
}

/// The kept answer (`<status>\n<body>`) as a response.
fn replay(kept: &str) -> Response {
    let (status, body) = kept.split_once('\n').unwrap_or(("200", kept));
    let status = status
        .parse::<u16>()
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = (status, body.to_owned()).into_response();
    if !body.is_empty() {
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    response
}
