//! The dashboard: the delivery log a person reads and acts on, served at `/dashboard`.
//!
//! It is a static page and a few ES modules, embedded in the binary so it works offline and
//! needs no build step. The scripts talk only to the public `/api/v1` with the visitor's
//! token, so the dashboard can do exactly what an SDK with that token can, and an app-scoped
//! token sees its own app and nothing else. The server side knows nothing about sessions.
//!
//! Login: the URL that `app-portal-access` returns (`/dashboard/login#token=…&app=…`) carries
//! the token in the fragment, which browsers never send to a server or in a `Referer`; the
//! page moves it to `sessionStorage` and drops it from the address bar. An admin pastes a
//! token into the login form instead.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_str!(concat!("../assets/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = &[
    asset!("dashboard.css", "text/css; charset=utf-8"),
    asset!("js/main.js", JS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/format.js", JS),
    asset!("js/chart.js", JS),
    asset!("js/views/login.js", JS),
    asset!("js/views/apps.js", JS),
    asset!("js/views/backlog.js", JS),
    asset!("js/views/endpoints.js", JS),
    asset!("js/views/endpoint.js", JS),
    asset!("js/views/endpoint_access.js", JS),
    asset!("js/views/attempts.js", JS),
    asset!("js/views/attempt.js", JS),
    asset!("js/views/messages.js", JS),
    asset!("js/views/event_types.js", JS),
];

const INDEX: &str = include_str!("../assets/index.html");

/// Only the page's own scripts and styles run, and only the API on this origin is called:
/// a payload or response body shown on the page can never execute.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// `/dashboard`, `/dashboard/login` and `/dashboard/assets/…`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/dashboard", get(index))
        .route("/dashboard/", get(index))
        .route("/dashboard/login", get(index))
        .route("/dashboard/assets/{*path}", get(asset))
}

async fn index() -> Response {
    page("text/html; charset=utf-8", INDEX)
}

async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.path == path) {
        Some(asset) => page(asset.content_type, asset.body),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

fn page(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The assets change only with the binary; a short cache keeps upgrades visible.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_page_imports_is_embedded() {
        let sources = ASSETS.iter().map(|a| a.body).chain([INDEX]);
        for source in sources {
            for line in source.lines() {
                let Some(rest) = line
                    .split(" from \"./")
                    .nth(1)
                    .or(line.split("src=\"/dashboard/assets/").nth(1))
                else {
                    continue;
                };
                let file = rest.split('"').next().unwrap_or_default();
                let known = ASSETS
                    .iter()
                    .any(|a| a.path.ends_with(file.trim_start_matches("../")));
                assert!(known, "`{file}` (in `{line}`) is not embedded");
            }
        }
    }
}
