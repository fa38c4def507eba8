//! Which [`Action`] a request performs inside an app, read from its method and matched
//! route template, so an app token's [`TokenScope`] (Svix's capabilities) can decide it.
//!
//! Pure and table-tested: the tenancy check calls [`check`] once per request, after it has
//! established that the route is inside the token's own app.

use hookline_core::scope::{Action, TokenScope};
use http::Method;

use crate::error::ApiError;

/// The route every app token may call whatever its scope: ending its own session.
pub const LOGOUT_ROUTE: &str = "/api/v1/auth/logout";

/// Route endings that make delivery attempts happen (Svix's `CreateAttempts`).
const CREATE_ATTEMPTS: [&str; 5] = [
    "/resend",
    "/send-example",
    "/recover",
    "/replay-missing",
    "/bulk-replay",
];

/// The part of the API that manages one app's endpoints (Svix's `ManageEndpoint`).
const ENDPOINTS: &str = "/api/v1/app/{app_id}/endpoint";
/// FIFO destinations are endpoints too: managing them is managing endpoints.
const DESTINATIONS: &str = "/api/v1/app/{app_id}/destination";

/// What a request with `method` on the route template `route` does.
pub fn action(method: &Method, route: &str) -> Action {
    let reads = [Method::GET, Method::HEAD, Method::OPTIONS];
    if reads.contains(method) {
        return if route.ends_with("/secret") {
            Action::ReadSecret
        } else {
            Action::Read
        };
    }
    if route.ends_with("/secret/rotate") {
        Action::RotateSecret
    } else if CREATE_ATTEMPTS.iter().any(|end| route.ends_with(end)) {
        Action::CreateAttempts
    } else if [ENDPOINTS, DESTINATIONS]
        .iter()
        .any(|part| route == *part || route.starts_with(&format!("{part}/")))
    {
        Action::ManageEndpoint
    } else {
        Action::OtherWrite
    }
}

/// Whether a token with `scope` may call `method` on `route` in its own app; a 403 naming
/// what it lacks when not.
pub fn check(scope: &TokenScope, method: &Method, route: &str) -> Result<(), ApiError> {
    let action = action(method, route);
    if scope.allows(action) {
        return Ok(());
    }
    let lacks = if scope.read_only() && !action.is_read() {
        "this token is read-only".to_owned()
    } else {
        format!(
            "this token's capabilities do not allow this; it needs {}",
            action.allowed_by()
        )
    };
    Err(ApiError::OutsideScope(lacks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_app_route_has_the_action_its_capability_names() {
        let app = "/api/v1/app/{app_id}";
        let ep = "/api/v1/app/{app_id}/endpoint/{endpoint_id}";
        let table: Vec<(Method, String, Action)> = vec![
            (Method::GET, format!("{app}/msg"), Action::Read),
            (Method::GET, format!("{ep}/headers"), Action::Read),
            (Method::GET, format!("{ep}/secret"), Action::ReadSecret),
            (
                Method::POST,
                format!("{ep}/secret/rotate"),
                Action::RotateSecret,
            ),
            (
                Method::POST,
                format!("{app}/endpoint"),
                Action::ManageEndpoint,
            ),
            (Method::PUT, ep.to_owned(), Action::ManageEndpoint),
            (Method::PATCH, ep.to_owned(), Action::ManageEndpoint),
            (Method::DELETE, ep.to_owned(), Action::ManageEndpoint),
            (Method::PUT, format!("{ep}/headers"), Action::ManageEndpoint),
            (Method::PUT, format!("{ep}/oauth"), Action::ManageEndpoint),
            (
                Method::DELETE,
                format!("{ep}/oauth"),
                Action::ManageEndpoint,
            ),
            (Method::GET, format!("{ep}/oauth"), Action::Read),
            (Method::PUT, format!("{ep}/mtls"), Action::ManageEndpoint),
            (
                Method::POST,
                format!("{app}/destination"),
                Action::ManageEndpoint,
            ),
            (
                Method::PATCH,
                format!("{app}/destination/{{destination_id}}"),
                Action::ManageEndpoint,
            ),
            (
                Method::PATCH,
                format!("{ep}/headers"),
                Action::ManageEndpoint,
            ),
            (
                Method::POST,
                format!("{ep}/recover"),
                Action::CreateAttempts,
            ),
            (
                Method::POST,
                format!("{ep}/replay-missing"),
                Action::CreateAttempts,
            ),
            (
                Method::POST,
                format!("{ep}/send-example"),
                Action::CreateAttempts,
            ),
            (
                Method::POST,
                format!("{app}/msg/{{msg_id}}/endpoint/{{endpoint_id}}/resend"),
                Action::CreateAttempts,
            ),
            (Method::POST, format!("{app}/msg"), Action::OtherWrite),
            (
                Method::DELETE,
                format!("{app}/msg/{{msg_id}}/content"),
                Action::OtherWrite,
            ),
            // Not an endpoint route, though it starts with the same letters.
            (
                Method::POST,
                format!("{app}/endpointless"),
                Action::OtherWrite,
            ),
        ];
        for (method, route, expected) in table {
            assert_eq!(action(&method, &route), expected, "{method} {route}");
        }
    }
}
