//! Request extractors whose failures answer in Hookline's error shape instead of axum's
//! plain-text rejections, and which refuse what their target type does not read instead of
//! skipping it (serde's default). `serde_ignored` reports what was skipped; it cannot look
//! inside `#[serde(flatten)]` fields or internally tagged enums (serde buffers those), so
//! input types avoid the first and give the second `deny_unknown_fields`.

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

/// Decodes JSON, reporting the path of the first bad field, and refuses every field the
/// target type does not read (serde would skip it silently) unless its value is `null`: the
/// SDKs send `null` for optional fields they leave unset.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut ignored = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let mut record = |path: serde_ignored::Path<'_>| ignored.push(json_path(&path));
    let tracked = serde_ignored::Deserializer::new(&mut deserializer, &mut record);
    let value = serde_path_to_error::deserialize(tracked).map_err(json_error)?;
    deserializer
        .end()
        .map_err(|e| ApiError::field("", e.to_string()))?;
    refuse_unread_fields(bytes, ignored)?;
    Ok(value)
}

/// The 422 for JSON that does not fit the target type, naming the field.
fn json_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
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
}

/// One step of a path into a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// The keys and indices of a path serde skipped (options and newtypes add no step).
fn json_path(path: &serde_ignored::Path<'_>) -> Vec<Step> {
    use serde_ignored::Path;
    match path {
        Path::Root => Vec::new(),
        Path::Seq { parent, index } => {
            let mut steps = json_path(parent);
            steps.push(Step::Index(*index));
            steps
        }
        Path::Map { parent, key } => {
            let mut steps = json_path(parent);
            steps.push(Step::Key(key.clone()));
            steps
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => json_path(parent),
    }
}

/// 422 naming each skipped field whose value is not `null`. The document is parsed a second
/// time only when something was skipped.
fn refuse_unread_fields(bytes: &[u8], ignored: Vec<Vec<Step>>) -> Result<(), ApiError> {
    if ignored.is_empty() {
        return Ok(());
    }
    let document: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::field("", e.to_string()))?;
    let mut refused: Vec<FieldError> = Vec::new();
    for steps in ignored {
        let value = steps.iter().try_fold(&document, |value, step| match step {
            Step::Key(key) => value.get(key),
            Step::Index(index) => value.get(index),
        });
        if value.is_none_or(serde_json::Value::is_null) {
            continue;
        }
        let loc: Vec<String> = std::iter::once("body".to_owned())
            .chain(steps.iter().map(|step| match step {
                Step::Key(key) => key.clone(),
                Step::Index(index) => index.to_string(),
            }))
            .collect();
        if refused.iter().all(|known| known.loc != loc) {
            refused.push(unsupported(loc));
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Validation(refused))
    }
}

/// The error for an input Hookline does not read (`loc` starts with `body` or `query`).
pub(crate) fn unsupported(loc: Vec<String>) -> FieldError {
    let name = loc.get(1..).map(|rest| rest.join(".")).unwrap_or_default();
    FieldError {
        msg: format!("Hookline does not support the {} `{name}`", what(&loc)),
        loc,
        kind: "not_supported",
    }
}

fn what(loc: &[String]) -> &'static str {
    match loc.first().map(String::as_str) {
        Some("query") => "query parameter",
        _ => "field",
    }
}

/// The configured body limit, made visible to [`ApiJson`] for its 413 message.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Query parameters with 422 on bad values.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    /// Parsed with `serde_html_form`, which (unlike axum's `Query`) reads a repeated key such
    /// as `event_types=a&event_types=b` into a list, the way the SDKs send them. A parameter
    /// the target type does not read is refused, never skipped.
    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let mut ignored: Vec<String> = Vec::new();
        let mut record = |path: serde_ignored::Path<'_>| {
            let name = path.to_string();
            if !ignored.contains(&name) {
                ignored.push(name);
            }
        };
        let deserializer = serde_html_form::Deserializer::from_bytes(query.as_bytes());
        let tracked = serde_ignored::Deserializer::new(deserializer, &mut record);
        let value = serde_path_to_error::deserialize(tracked).map_err(|error| {
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
        })?;
        if !ignored.is_empty() {
            return Err(ApiError::Validation(
                ignored
                    .into_iter()
                    .map(|name| unsupported(vec!["query".to_owned(), name]))
                    .collect(),
            ));
        }
        Ok(ApiQuery(value))
    }
}

/// The field name in serde's "missing field `name`" message.
fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;
    use serde_json::value::RawValue;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Inner {
        name: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Outer {
        event_type: String,
        payload: Box<RawValue>,
        #[serde(default)]
        metadata: BTreeMap<String, String>,
        application: Option<Inner>,
        list: Option<Vec<Inner>>,
    }

    fn refused(result: Result<Outer, ApiError>) -> Vec<Vec<String>> {
        match result {
            Err(ApiError::Validation(fields)) => {
                assert!(
                    fields.iter().all(|f| f.kind == "not_supported"),
                    "{fields:?}"
                );
                assert!(
                    fields
                        .iter()
                        .all(|f| f.msg.contains("Hookline does not support")),
                    "{fields:?}"
                );
                fields.into_iter().map(|f| f.loc).collect()
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_field_the_type_does_not_read_is_refused_by_its_path() {
        let body = br#"{"eventType":"a","payload":{"free":1},"metadata":{"k":"v"},
            "filterTypes":["x"],"application":{"name":"n","rateLimit":3},
            "list":[{"name":"a"},{"name":"b","extra":true}]}"#;
        assert_eq!(
            refused(parse_json(body)),
            [
                vec!["body", "filterTypes"],
                vec!["body", "application", "rateLimit"],
                vec!["body", "list", "1", "extra"],
            ]
        );
    }

    #[test]
    fn a_null_the_type_does_not_read_is_accepted() {
        let body = br#"{"eventType":"a","payload":{"k":[1,2]},"version":null,
            "application":{"name":"n","rateLimit":null}}"#;
        let parsed: Outer = parse_json(body).expect("nulls are not refused");
        assert_eq!(parsed.event_type, "a");
        assert_eq!(
            parsed.payload.get(),
            r#"{"k":[1,2]}"#,
            "a raw payload is read whole"
        );
        assert_eq!(parsed.application.expect("application").name, "n");
        assert!(parsed.metadata.is_empty() && parsed.list.is_none());
    }

    #[test]
    fn type_errors_still_name_their_field() {
        let Err(ApiError::Validation(fields)) =
            parse_json::<Outer>(br#"{"eventType":1,"payload":{}}"#)
        else {
            panic!("a type error");
        };
        assert_eq!(fields[0].loc, ["body", "eventType"]);
        assert_eq!(fields[0].kind, "type_error");
    }

    #[derive(Debug, Deserialize)]
    struct Query {
        limit: Option<usize>,
        #[serde(default)]
        event_types: Vec<String>,
    }

    async fn query(uri: &str) -> Result<Query, ApiError> {
        let (mut parts, ()) = axum::http::Request::builder()
            .uri(uri)
            .body(())
            .expect("request")
            .into_parts();
        ApiQuery::<Query>::from_request_parts(&mut parts, &())
            .await
            .map(|ApiQuery(q)| q)
    }

    #[tokio::test]
    async fn a_query_parameter_the_type_does_not_read_is_refused() {
        let read = query("/x?limit=2&event_types=a&event_types=b")
            .await
            .expect("declared parameters");
        assert_eq!((read.limit, read.event_types.len()), (Some(2), 2));
        let Err(ApiError::Validation(fields)) =
            query("/x?limit=2&with_content=false&order=x&with_content=true").await
        else {
            panic!("refused");
        };
        let locs: Vec<_> = fields.iter().map(|f| f.loc.clone()).collect();
        assert_eq!(locs, [["query", "with_content"], ["query", "order"]]);
        assert!(
            fields[0].msg.contains("query parameter `with_content`"),
            "{fields:?}"
        );
    }
}
