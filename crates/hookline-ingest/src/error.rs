//! The one error type every handler returns, and how it becomes an HTTP response.
//!
//! Bodies follow Svix: `{"code": "...", "detail": "..."}`; validation failures answer 422
//! with `detail` as a list of `{loc, msg, type}` naming each bad field. 5xx are logged once
//! here; their bodies never carry internal detail.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hookline_core::ports::{QueueError, StoreError};
use serde::Serialize;
use serde_json::json;

/// One bad field: where it is and what is wrong with it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: &'static str,
}

impl FieldError {
    /// A value error in the request body at `field` (dots separate nested names).
    pub fn body(field: &str, msg: impl Into<String>) -> Self {
        let mut loc = vec!["body".to_owned()];
        loc.extend(field.split('.').map(str::to_owned));
        Self {
            loc,
            msg: msg.into(),
            kind: "value_error",
        }
    }
}

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication required")]
    Unauthorized,
    #[error("this token may not do that")]
    Forbidden,
    /// An app token asked for something inside its app that its scope does not allow.
    #[error("{0}")]
    OutsideScope(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Conflict(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("invalid request")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    /// An operation of the Svix API that Hookline deliberately does not serve.
    #[error("{operation} is not supported by Hookline: {why}")]
    NotSupported {
        operation: &'static str,
        why: &'static str,
    },
    /// A known path asked with a method it does not have.
    #[error("{method} is not allowed on this path")]
    MethodNotAllowed { method: String },
    #[error("a dependency is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A single-field validation error.
    pub fn field(field: &str, msg: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::body(field, msg)])
    }

    /// A single query-parameter validation error.
    pub fn query_field(field: &str, msg: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError {
            loc: vec!["query".into(), field.into()],
            msg: msg.into(),
            kind: "value_error",
        }])
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(detail) => Self::Unavailable(format!("store: {detail}")),
            StoreError::Conflict(what) => Self::Conflict(format!("{what} already exists")),
            StoreError::LimitReached { what, max } => Self::Conflict(format!(
                "this application already has the maximum of {max} {what}"
            )),
            StoreError::Corrupt(detail) => Self::Internal(detail),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(error: QueueError) -> Self {
        Self::Unavailable(format!("broker: {error}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "authentication_failed"),
            Self::Forbidden | Self::OutsideScope(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::NotSupported { .. } => (StatusCode::BAD_REQUEST, "not_supported"),
            Self::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable"),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let body = match self {
            Self::Validation(fields) => json!({ "code": code, "detail": fields }),
            Self::Unavailable(detail) => {
                tracing::warn!(%detail, "answering 503");
                json!({ "code": code, "detail": "a backing service is unavailable; nothing was accepted, retry later" })
            }
            Self::Internal(detail) => {
                tracing::error!(%detail, "answering 500");
                json!({ "code": code, "detail": "internal error" })
            }
            other => json!({ "code": code, "detail": other.to_string() }),
        };
        (status, Json(body)).into_response()
    }
}
