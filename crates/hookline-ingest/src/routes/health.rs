//! Health: `/api/v1/health` (Svix), `/healthz` (alive) and `/readyz` (dependencies usable).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::state::ApiState;

/// Svix's health check: 204 when the API answers at all.
pub async fn api_health() -> StatusCode {
    StatusCode::NO_CONTENT
}

/// Liveness: the process runs. Never checks dependencies, so a broker outage does not get
/// every pod restarted.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Readiness: every dependency answers. 503 names the failing ones.
pub async fn readyz(State(state): State<ApiState>) -> impl IntoResponse {
    let mut failing = serde_json::Map::new();
    for check in state.readiness() {
        if let Err(reason) = check.check().await {
            failing.insert(check.name().to_owned(), json!(reason));
        }
    }
    if failing.is_empty() {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "not_ready", "failing": failing })),
        )
    }
}

/// Prometheus metrics of this process.
pub async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics().render(),
    )
}
