//! Request extractors whose failures answer in Hookline's error shape instead of axum's
//! plain-text rejections.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// A JSON body: 413 past the body limit, 422 naming the field for malformed or mistyped JSON.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = request
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |l| l.0);
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge { limit }
                } else {
                    ApiError::BadRequest(rejection.body_text())
                }
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// An optional JSON body: `None` when the request has no body at all.
impl<S: Send + Sync, T: DeserializeOwned> axum::extract::OptionalFromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let limit = request
            .extensions()
            .get::<BodyLimit>()
            .map_or(usize::MAX, |l| l.0);
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|_| ApiError::PayloadTooLarge { limit })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        parse_json(&bytes).map(|value| Some(ApiJson(value)))
    }
}

/// Decodes JSON, reporting the path of the first bad field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." { String::new() } else { path };
        let inner = error.into_inner();
        let message = inner.to_string();
        let mut loc: Vec<String> = std::iter::once("body".to_owned())
            .chain(
                field
                    .split('.')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            )
            .collect();
        // serde reports a missing field at its parent's path; name the field itself.
        if let Some(missing) = missing_field(&message) {
            loc.push(missing.to_owned());
        }
        let kind = if inner.is_syntax() || inner.is_eof() {
            "json_invalid"
        } else if loc.len() > 1 && missing_field(&message).is_some() {
            "missing"
        } else {
            "type_error"
        };
        ApiError::Validation(vec![FieldError {
            loc,
            msg: message,
            kind,
        }])
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::field("", e.to_string()))?;
    Ok(value)
}

/// The configured body limit, made visible to [`ApiJson`] for its 413 message.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Query parameters with 422 on bad values.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    /// Parsed with `serde_html_form`, which (unlike axum's `Query`) reads a repeated key such
    /// as `event_types=a&event_types=b` into a list, the way the SDKs send them.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_html_form::Deserializer::from_bytes(query.as_bytes());
        serde_path_to_error::deserialize(deserializer)
            .map(ApiQuery)
            .map_err(|error| {
                let mut loc = vec!["query".to_owned()];
                let path = error.path().to_string();
                if path != "." {
                    loc.push(path);
                }
                ApiError::Validation(vec![FieldError {
                    loc,
                    msg: error.inner().to_string(),
                    kind: "value_error",
                }])
            })
    }
}

/// The field name in serde's "missing field `name`" message.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}
