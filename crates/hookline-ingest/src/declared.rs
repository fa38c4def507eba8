//! Query parameters a route does not declare are refused, not skipped.
//!
//! [`ApiQuery`](crate::extract::ApiQuery) refuses a parameter its target type does not read,
//! but a handler that takes no query at all would skip every parameter silently (Svix
//! documents `expanded_statuses` on an attempt, `expunge` on an event type's delete, …).
//! This layer closes that gap for every route at once: a parameter that Hookline's OpenAPI
//! document does not declare for the matched route and method answers 422 naming it. The
//! document is built from the very structs the handlers read, so it is also the list of
//! parameters the server accepts.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::unsupported;

/// The query parameter names each documented operation declares.
#[derive(Debug, Default)]
pub struct DeclaredQueries {
    by_operation: HashMap<(Method, String), BTreeSet<String>>,
}

impl DeclaredQueries {
    /// Reads the declared query parameters out of the OpenAPI document.
    pub fn from_document(document: &utoipa::openapi::OpenApi) -> Self {
        let document = serde_json::to_value(document).unwrap_or_default();
        let mut by_operation = HashMap::new();
        let Some(paths) = document.get("paths").and_then(Value::as_object) else {
            return Self::default();
        };
        for (path, item) in paths {
            let shared = query_names(item.get("parameters"));
            let Some(operations) = item.as_object() else {
                continue;
            };
            for (method, operation) in operations {
                let Ok(method) = method.to_uppercase().parse::<Method>() else {
                    continue;
                };
                let mut names = query_names(operation.get("parameters"));
                names.extend(shared.iter().cloned());
                by_operation.insert((method, path.clone()), names);
            }
        }
        Self { by_operation }
    }

    /// The parameters of `query` the operation does not declare, in order, once each;
    /// `None` for a route the document does not describe (its handler answers for itself).
    pub fn undeclared(&self, method: &Method, route: &str, query: &str) -> Option<Vec<String>> {
        let declared = self.by_operation.get(&(method.clone(), route.to_owned()))?;
        let mut refused: Vec<String> = Vec::new();
        for (name, _) in url::form_urlencoded::parse(query.as_bytes()) {
            if !declared.contains(name.as_ref()) && !refused.iter().any(|r| *r == name) {
                refused.push(name.into_owned());
            }
        }
        Some(refused)
    }
}

fn query_names(parameters: Option<&Value>) -> BTreeSet<String> {
    parameters
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p.get("in").and_then(Value::as_str) == Some("query"))
        .filter_map(|p| p.get("name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

/// The route layer: 422 for undeclared query parameters, before the handler runs.
pub async fn refuse_undeclared_queries(
    State(declared): State<Arc<DeclaredQueries>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let query = request.uri().query().unwrap_or_default();
    if let Some(route) = route.filter(|_| !query.is_empty()) {
        if let Some(refused) = declared.undeclared(request.method(), route, query) {
            if !refused.is_empty() {
                return ApiError::Validation(
                    refused
                        .into_iter()
                        .map(|name| unsupported(vec!["query".to_owned(), name]))
                        .collect(),
                )
                .into_response();
            }
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_declared_parameters_of_the_operation_pass() {
        let (_, document) = crate::api_routes();
        let declared = DeclaredQueries::from_document(&document);
        let list = "/api/v1/app/{app_id}/msg";
        assert_eq!(
            declared.undeclared(&Method::GET, list, "limit=1&with_content=false&tag=a"),
            Some(vec![])
        );
        assert_eq!(
            declared.undeclared(&Method::GET, list, "limit=1&nope=1&x&nope=2"),
            Some(vec!["nope".to_owned(), "x".to_owned()])
        );
        let content = "/api/v1/app/{app_id}/msg/{msg_id}/content";
        assert_eq!(
            declared.undeclared(&Method::DELETE, content, "expunge=true"),
            Some(vec!["expunge".to_owned()]),
            "a handler without a query declares none"
        );
        assert_eq!(
            declared.undeclared(&Method::GET, "/not/documented", "a=1"),
            None
        );
    }
}
