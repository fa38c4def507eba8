//! Hookline's ingest role: the HTTP API.
//!
//! The API follows Svix v1 for the core resources (paths, camelCase shapes, status codes,
//! list envelopes, `{code, detail}` errors) so the official Svix SDKs work against it. This is
//! the only crate that knows those JSON shapes; it maps them to `hookline_core::model`.
//!
//! Architecture invariant: `POST …/msg` answers 202 only after the message is stored and
//! every delivery task is confirmed by the broker (see [`intake`]).

pub mod auth;
pub mod error;
pub mod extract;
pub mod intake;
pub mod routes;
pub mod state;

use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use state::{ApiState, IngestConfig, ReadinessCheck, Services};

use crate::extract::BodyLimit;
use crate::routes::auth as auth_routes;
use crate::routes::{apps, attempts, endpoints, event_types, health, messages};

/// The full router: authenticated `/api/v1` plus unauthenticated health probes.
pub fn router(state: ApiState) -> Router {
    let limit = state.config().max_body_bytes;
    let api = Router::new()
        .route("/app", get(apps::list).post(apps::create))
        .route(
            "/app/{app_id}",
            get(apps::get)
                .put(apps::update)
                .patch(apps::patch)
                .delete(apps::delete),
        )
        .route(
            "/app/{app_id}/endpoint",
            get(endpoints::list).post(endpoints::create),
        )
        .route(
            "/app/{app_id}/endpoint/{endpoint_id}",
            get(endpoints::get)
                .put(endpoints::update)
                .patch(endpoints::patch)
                .delete(endpoints::delete),
        )
        .route(
            "/app/{app_id}/endpoint/{endpoint_id}/secret",
            get(endpoints::get_secret),
        )
        .route(
            "/app/{app_id}/msg",
            get(messages::list).post(messages::create),
        )
        .route("/app/{app_id}/msg/{msg_id}", get(messages::get))
        .route(
            "/app/{app_id}/msg/{msg_id}/endpoint",
            get(messages::destinations),
        )
        .route(
            "/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}",
            get(attempts::get),
        )
        .route(
            "/app/{app_id}/attempt/endpoint/{endpoint_id}",
            get(attempts::list_by_endpoint),
        )
        .route(
            "/app/{app_id}/attempt/msg/{msg_id}",
            get(attempts::list_by_message),
        )
        .route(
            "/event-type",
            get(event_types::list).post(event_types::create),
        )
        .route(
            "/event-type/{name}",
            get(event_types::get)
                .put(event_types::update)
                .patch(event_types::patch)
                .delete(event_types::delete),
        )
        .route(
            "/auth/app-portal-access/{app_id}",
            post(auth_routes::app_portal_access),
        )
        .route(
            "/auth/app/{app_id}/expire-all",
            post(auth_routes::expire_all),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .route("/health", get(health::api_health))
        .route("/health/ping", get(health::api_health));
    Router::new()
        .nest("/api/v1", api)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(|| async { error::ApiError::NotFound("route") })
        .layer(axum::Extension(BodyLimit(limit)))
        // Bodies are read only by the ApiJson extractor, which turns this limit into a 413 in
        // the JSON error shape (tower-http's limit layer would answer in plain text).
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` fires, then drains open requests.
pub async fn run(
    listener: TcpListener,
    state: ApiState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Keeps `post` imported for future routes without a warning.
#[allow(unused_imports)]
use post as _;
