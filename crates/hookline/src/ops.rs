//! The operations port every role serves (dispatchers and schedulers have no other):
//! `/healthz` (alive), `/readyz` (RabbitMQ and Redis usable) and `/metrics` (Prometheus).

use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use hookline_ingest::ReadinessCheck;
use hookline_metrics::Metrics;
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct Ops {
    checks: Arc<Vec<Arc<dyn ReadinessCheck>>>,
    metrics: Arc<Metrics>,
}

/// Serves until `shutdown`.
pub async fn serve(
    listen: String,
    checks: Vec<Arc<dyn ReadinessCheck>>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (ops.listen)"))?;
    let address = listener.local_addr()?;
    // On stdout so scripts and tests can find the port when `listen` used port 0.
    println!("hookline: ops listening on http://{address}");
    let app = Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Ops {
            checks: Arc::new(checks),
            metrics,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        .context("ops server")
}

async fn readyz(State(ops): State<Ops>) -> impl IntoResponse {
    let mut failing = serde_json::Map::new();
    for check in ops.checks.iter() {
        if let Err(reason) = check.check().await {
            failing.insert(check.name().to_owned(), json!(reason));
        }
    }
    if failing.is_empty() {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "failing": failing})),
        )
    }
}

async fn metrics_text(State(ops): State<Ops>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        ops.metrics.render(),
    )
}
