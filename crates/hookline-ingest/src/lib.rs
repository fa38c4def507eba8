//! Hookline's ingest role: the HTTP API.
//!
//! The API follows Svix v1 for the core resources (paths, camelCase shapes, status codes,
//! list envelopes, `{code, detail}` errors) so the official Svix SDKs work against it. This is
//! the only crate that knows those JSON shapes; it maps them to `hookline_core::model`.
//!
//! Architecture invariant: `POST …/msg` answers 202 only after the message is stored and
//! every delivery task is confirmed by the broker (see [`intake`]).

pub mod access;
pub mod admission;
pub mod auth;
pub mod background;
pub mod declared;
pub mod error;
pub mod extract;
pub mod group_commit;
pub mod idempotent;
pub mod intake;
mod lines;
pub mod openapi;
pub mod outbox;
pub mod routes;
pub mod scope;
pub mod state;
pub mod unsupported;

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use state::{ApiState, IngestConfig, ReadinessCheck, Services};

use crate::extract::BodyLimit;
use crate::routes::auth as auth_routes;
use crate::routes::{
    apps, attempts, background_tasks, backlog, destinations, endpoint_activity, endpoint_example,
    endpoint_fifo, endpoint_headers, endpoint_messages, endpoint_mtls, endpoint_oauth,
    endpoint_secret, endpoint_stats, endpoints, event_type_import, event_types, expunge, health,
    manual, message_destinations, message_precheck, messages, operational, operational_extras,
    replay, statistics,
};

/// The authenticated API and its OpenAPI document, built together: `routes!` registers a
/// handler and its documented path in one step.
pub fn api_routes() -> (Router<ApiState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(apps::list, apps::create))
        .routes(routes!(apps::get, apps::update, apps::patch, apps::delete))
        .routes(routes!(endpoints::list, endpoints::create))
        .routes(routes!(
            endpoints::get,
            endpoints::update,
            endpoints::patch,
            endpoints::delete
        ))
        .routes(routes!(destinations::list, destinations::create))
        .routes(routes!(
            destinations::get,
            destinations::upsert,
            destinations::patch,
            destinations::delete
        ))
        .routes(routes!(destinations::rotate_secret))
        .routes(routes!(endpoint_secret::get))
        .routes(routes!(endpoint_secret::rotate))
        .routes(routes!(
            endpoint_headers::get,
            endpoint_headers::update,
            endpoint_headers::patch
        ))
        .routes(routes!(
            endpoint_oauth::get,
            endpoint_oauth::update,
            endpoint_oauth::delete
        ))
        .routes(routes!(
            endpoint_mtls::get,
            endpoint_mtls::update,
            endpoint_mtls::delete
        ))
        .routes(routes!(messages::list, messages::create))
        .routes(routes!(message_precheck::precheck))
        .routes(routes!(messages::get))
        .routes(routes!(message_destinations::destinations))
        .routes(routes!(manual::resend))
        .routes(routes!(endpoint_example::send_example))
        .routes(routes!(endpoint_stats::stats))
        .routes(routes!(endpoint_fifo::line))
        .routes(routes!(endpoint_stats::attempt_stats))
        .routes(routes!(endpoint_activity::activity))
        .routes(routes!(endpoint_messages::list))
        .routes(routes!(expunge::message_content))
        .routes(routes!(expunge::attempt_content))
        .routes(routes!(manual::recover))
        .routes(routes!(manual::recover_status))
        .routes(routes!(replay::replay_missing))
        .routes(routes!(replay::bulk_replay))
        .routes(routes!(expunge::all_message_contents))
        .routes(routes!(background_tasks::list))
        .routes(routes!(background_tasks::get))
        .routes(routes!(statistics::aggregate_app_stats))
        .routes(routes!(statistics::aggregate_event_types))
        .routes(routes!(backlog::backlog))
        .routes(routes!(attempts::get))
        .routes(routes!(attempts::list_by_endpoint))
        .routes(routes!(attempts::list_by_message))
        .routes(routes!(event_types::list, event_types::create))
        .routes(routes!(event_type_import::import))
        .routes(routes!(
            event_types::get,
            event_types::update,
            event_types::patch,
            event_types::delete
        ))
        .routes(routes!(auth_routes::app_portal_access))
        .routes(routes!(auth_routes::expire_all))
        .routes(routes!(auth_routes::dashboard_access))
        .routes(routes!(auth_routes::logout))
        .routes(routes!(operational::list, operational::create))
        .routes(routes!(
            operational::get,
            operational::update,
            operational::delete
        ))
        .routes(routes!(operational_extras::get_secret))
        .routes(routes!(operational_extras::rotate_secret))
        .routes(routes!(
            operational_extras::get_headers,
            operational_extras::update_headers,
            operational_extras::patch_headers
        ))
        .split_for_parts()
}

/// The full router: authenticated `/api/v1` plus the unauthenticated health probes, the
/// OpenAPI document and the dashboard's static page (which calls `/api/v1` with the visitor's
/// token).
pub fn router(state: ApiState) -> Router {
    let limit = state.config().max_body_bytes;
    let (api, doc) = api_routes();
    let declared = std::sync::Arc::new(declared::DeclaredQueries::from_document(&doc));
    let doc = std::sync::Arc::new(doc);
    // Layers run outside in: authentication first, then the query check.
    let api = api
        .merge(unsupported::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            declared,
            declared::refuse_undeclared_queries,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .merge(api)
        .route("/api/v1/health", get(health::api_health))
        .route("/api/v1/health/ping", get(health::api_health))
        .route(
            "/api/v1/openapi.json",
            get(move || async move { axum::Json(doc.as_ref().clone()) }),
        )
        .merge(hookline_dashboard::router())
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route("/readyz", get(health::readyz))
        // Last, so it covers every route above: a known path asked with another method.
        .method_not_allowed_fallback(|method: http::Method| async move {
            error::ApiError::MethodNotAllowed {
                method: method.to_string(),
            }
        })
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
