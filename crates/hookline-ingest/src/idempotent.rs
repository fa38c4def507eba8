//! `idempotency-key` on the API's other POSTs (creating an app, an endpoint or an event type,
//! importing event types, rotating a secret, sending an example, resending a message): a
//! repeat of a request that succeeded answers the first answer again and does nothing more,
//! as Svix does. The SDKs send a key with every POST and retry with the same key after a
//! lost answer, so without this a retried create would create twice.
//!
//! The key is scoped to the operation, so one key reused on two operations does two things.
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
/// [`ORGANISATION`]); without the header, simply runs it.
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
    let Some(key) = header_key(headers)? else {
        return work.await.map(IntoResponse::into_response);
    };
    let keys = [format!("req:{operation}:{}", key.as_str())];
    let owner = hookline_core::id::new_id("req", unix_ms(now()));
    let store = state.messages();
    let lease = u64::try_from(state.config().idempotency_lease.as_millis()).unwrap_or(u64::MAX);
    let ttl = state.config().idempotency_ttl.as_secs();
    match store
        .claim_idempotency(scope, &keys, &owner, lease, ttl)
        .await?
    {
        IdempotencyClaim::Done(kept) => return Ok(replay(&kept)),
        IdempotencyClaim::InProgress => {
            return Err(ApiError::Conflict(
                "a request with this idempotency-key is still in progress".into(),
            ))
        }
        // A request that died holding the key left no answer: this one runs instead.
        IdempotencyClaim::Claimed | IdempotencyClaim::Adopted(_) => {}
    }
    let outcome = work.await.map(IntoResponse::into_response);
    match outcome {
        Ok(response) if response.status().is_success() => {
            let (parts, body) = response.into_parts();
            let bytes = axum::body::to_bytes(body, usize::MAX)
                .await
                .map_err(|e| ApiError::Internal(format!("reading an answer to keep it: {e}")))?;
            let kept = (bytes.len() <= MAX_KEPT).then(|| {
                format!(
                    "{}\n{}",
                    parts.status.as_u16(),
                    String::from_utf8_lossy(&bytes)
                )
            });
            let stored = match kept {
                Some(kept) => store.complete_idempotency(scope, &keys, &kept, ttl).await,
                None => store.release_idempotency(scope, &keys, &owner).await,
            };
            if let Err(error) = stored {
                // The work is done: answer it; a retry may run once more.
                tracing::warn!(%error, operation, "idempotent answer not kept");
            }
            Ok(Response::from_parts(parts, Body::from(bytes)))
        }
        other => {
            if let Err(error) = store.release_idempotency(scope, &keys, &owner).await {
                tracing::warn!(%error, operation, "idempotency key not released");
            }
            other
        }
    }
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
