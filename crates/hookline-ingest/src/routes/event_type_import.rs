//! `POST /api/v1/event-type/import/openapi`: event types from the webhooks of an OpenAPI
//! document (its `webhooks`, or the older `x-webhooks`).
//!
//! Each webhook becomes the event type named by its key: the description is the
//! operation's `description` (or `summary`), the schema (version "1") its JSON request
//! body's schema with local `$ref`s inlined and the body's examples added as `examples`,
//! `deprecated` the operation's, and the Svix extensions `x-svix-group-name` and
//! `x-svix-feature-flags` its group and flags. An archived type the document names is
//! brought back. `replaceAll` archives every type the document does not name; `dryRun`
//! answers what would change (`to_modify`) and changes nothing.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use hookline_core::model::EventType;
use hookline_core::names::{EventTypeName, FeatureFlag, GroupName};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::common::now;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::idempotent::{once, ORGANISATION};
use crate::scope::AdminOnly;
use crate::state::ApiState;

/// How deep `$ref`s are followed; deeper (or circular) references stay as they are.
const MAX_REF_DEPTH: usize = 32;

/// `EventTypeImportOpenApiIn`: exactly one of `spec` and `specRaw`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeImportOpenApiIn {
    /// The document as JSON.
    #[schema(value_type = Option<Object>)]
    pub spec: Option<Map<String, Value>>,
    /// The document as YAML or JSON text.
    pub spec_raw: Option<String>,
    /// `true`: answer what would change, change nothing.
    pub dry_run: Option<bool>,
    /// `true`: archive every event type the document does not name.
    pub replace_all: Option<bool>,
}

/// `EventTypeImportOpenApiOut`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventTypeImportOpenApiOut {
    pub data: ImportOutcome,
}

/// The names of the types changed (or, on a dry run, that would be) and, on a dry run, the
/// types as the import would make them.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ImportOutcome {
    pub modified: Vec<String>,
    pub to_modify: Option<Vec<EventTypeFromOpenApi>>,
}

/// `EventTypeFromOpenApi`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeFromOpenApi {
    pub name: String,
    pub description: String,
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<Value>,
    pub deprecated: bool,
    pub group_name: Option<String>,
    pub feature_flags: Option<Vec<String>>,
}

#[utoipa::path(post, path = "/api/v1/event-type/import/openapi", request_body = EventTypeImportOpenApiIn, responses((status = 200, body = EventTypeImportOpenApiOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Event Type")]
pub async fn import(
    State(state): State<ApiState>,
    _: AdminOnly,
    headers: HeaderMap,
    ApiJson(input): ApiJson<EventTypeImportOpenApiIn>,
) -> Result<Response, ApiError> {
    let work = import_document(&state, input);
    once(&state, &headers, ORGANISATION, "event-type.import", work).await
}

async fn import_document(
    state: &ApiState,
    input: EventTypeImportOpenApiIn,
) -> Result<Json<EventTypeImportOpenApiOut>, ApiError> {
    let spec = match (input.spec, input.spec_raw) {
        (Some(spec), None) => Value::Object(spec),
        (None, Some(raw)) => serde_norway::from_str::<Value>(&raw)
            .map_err(|e| ApiError::field("specRaw", format!("not YAML or JSON: {e}")))?,
        _ => {
            return Err(ApiError::BadRequest(
                "give the OpenAPI document as exactly one of spec and specRaw".into(),
            ))
        }
    };
    let wanted = event_types_of(&spec)?;
    let existing = state.registry().list_event_types().await?;
    let changes = plan(&existing, &wanted, input.replace_all.unwrap_or(false));
    let modified = changes.iter().map(|t| t.name.as_str().to_owned()).collect();
    if input.dry_run.unwrap_or(false) {
        let to_modify = wanted
            .into_iter()
            .filter(|w| changes.iter().any(|c| c.name.as_str() == w.name))
            .collect();
        return Ok(Json(EventTypeImportOpenApiOut {
            data: ImportOutcome {
                modified,
                to_modify: Some(to_modify),
            },
        }));
    }
    for event_type in &changes {
        state.registry().update_event_type(event_type).await?;
    }
    Ok(Json(EventTypeImportOpenApiOut {
        data: ImportOutcome {
            modified,
            to_modify: None,
        },
    }))
}

/// The stored types to write: those the document adds or changes (unarchived), and with
/// `replace_all` the live ones it does not name, archived.
fn plan(
    existing: &[EventType],
    wanted: &[EventTypeFromOpenApi],
    replace_all: bool,
) -> Vec<EventType> {
    let now = now();
    let mut changes = Vec::new();
    for w in wanted {
        let current = existing.iter().find(|e| e.name.as_str() == w.name);
        let same = current.is_some_and(|e| {
            !e.archived
                && e.description == w.description
                && e.schemas == w.schemas
                && e.deprecated == w.deprecated
                && e.group_name == w.group_name
                && e.flags() == w.feature_flags
        });
        if same {
            continue;
        }
        let Ok(name) = EventTypeName::parse(w.name.as_str()) else {
            continue;
        };
        changes.push(EventType {
            name,
            description: w.description.clone(),
            archived: false,
            deprecated: w.deprecated,
            feature_flag: None,
            feature_flags: w.feature_flags.clone(),
            group_name: w.group_name.clone(),
            schemas: w.schemas.clone(),
            created_at: current.map_or(now, |e| e.created_at),
            updated_at: now,
        });
    }
    if replace_all {
        let named: BTreeSet<&str> = wanted.iter().map(|w| w.name.as_str()).collect();
        for e in existing
            .iter()
            .filter(|e| !e.archived && !named.contains(e.name.as_str()))
        {
            changes.push(EventType {
                archived: true,
                updated_at: now,
                ..e.clone()
            });
        }
    }
    changes
}

/// The event types the document's webhooks describe, by name.
fn event_types_of(spec: &Value) -> Result<Vec<EventTypeFromOpenApi>, ApiError> {
    let Some(webhooks) = spec
        .get("webhooks")
        .or_else(|| spec.get("x-webhooks"))
        .and_then(Value::as_object)
    else {
        return Err(ApiError::field(
            "spec",
            "the document has no webhooks (or x-webhooks)",
        ));
    };
    let mut types = Vec::with_capacity(webhooks.len());
    for (key, item) in webhooks {
        let field = format!("spec.webhooks.{key}");
        let name = EventTypeName::parse(key.as_str())
            .map_err(|e| ApiError::field(&field, format!("is not an event type name: {e}")))?;
        let Some(operation) = operation_of(item) else {
            return Err(ApiError::field(&field, "has no operation"));
        };
        types.push(from_operation(spec, name.as_str(), operation, &field)?);
    }
    Ok(types)
}

/// The webhook's operation: `post` if there is one, else the first method given.
fn operation_of(item: &Value) -> Option<&Map<String, Value>> {
    let methods = [
        "post", "put", "patch", "get", "delete", "head", "options", "trace",
    ];
    methods
        .iter()
        .find_map(|method| item.get(*method))
        .and_then(Value::as_object)
}

fn from_operation(
    spec: &Value,
    name: &str,
    operation: &Map<String, Value>,
    field: &str,
) -> Result<EventTypeFromOpenApi, ApiError> {
    let text = |key: &str| {
        operation
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let group_name = text("x-svix-group-name")
        .map(|g| GroupName::parse(g).map(|g| g.as_str().to_owned()))
        .transpose()
        .map_err(|e| ApiError::field(&format!("{field}.x-svix-group-name"), e.to_string()))?;
    let feature_flags = match operation.get("x-svix-feature-flags") {
        None | Some(Value::Null) => None,
        Some(Value::Array(flags)) => {
            let mut parsed = Vec::with_capacity(flags.len());
            for flag in flags {
                let flag = flag.as_str().map(FeatureFlag::parse);
                match flag {
                    Some(Ok(flag)) => parsed.push(flag.as_str().to_owned()),
                    _ => {
                        return Err(ApiError::field(
                            &format!("{field}.x-svix-feature-flags"),
                            "must list feature flag names",
                        ))
                    }
                }
            }
            parsed.sort();
            parsed.dedup();
            (!parsed.is_empty()).then_some(parsed)
        }
        Some(_) => {
            return Err(ApiError::field(
                &format!("{field}.x-svix-feature-flags"),
                "must be a list",
            ))
        }
    };
    Ok(EventTypeFromOpenApi {
        name: name.to_owned(),
        description: text("description")
            .or_else(|| text("summary"))
            .unwrap_or_default(),
        schemas: body_schema(spec, operation).map(|schema| serde_json::json!({ "1": schema })),
        deprecated: operation
            .get("deprecated")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        group_name,
        feature_flags,
    })
}

/// The JSON request body's schema, references inlined, with the body's examples.
fn body_schema(spec: &Value, operation: &Map<String, Value>) -> Option<Value> {
    let body = resolve(spec, operation.get("requestBody")?, 0);
    let media = body.get("content")?.get("application/json")?;
    let mut schema = resolve(spec, media.get("schema")?, 0);
    let mut examples: Vec<Value> = Vec::new();
    if let Some(example) = media.get("example") {
        examples.push(example.clone());
    }
    if let Some(named) = media.get("examples").and_then(Value::as_object) {
        examples.extend(
            named
                .values()
                .filter_map(|e| resolve(spec, e, 0).get("value").cloned()),
        );
    }
    if let (Some(object), false) = (schema.as_object_mut(), examples.is_empty()) {
        object.entry("examples").or_insert(Value::Array(examples));
    }
    Some(schema)
}

/// `value` with every local `$ref` (`#/…`) replaced by what it points at.
fn resolve(spec: &Value, value: &Value, depth: usize) -> Value {
    if depth > MAX_REF_DEPTH {
        return value.clone();
    }
    match value {
        Value::Object(object) => {
            let target = object
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix('#'))
                .and_then(|pointer| spec.pointer(pointer));
            match target {
                Some(target) => resolve(spec, target, depth + 1),
                None => Value::Object(
                    object
                        .iter()
                        .map(|(k, v)| (k.clone(), resolve(spec, v, depth + 1)))
                        .collect(),
                ),
            }
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| resolve(spec, v, depth + 1)).collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn webhooks_become_event_types_with_their_schema_and_examples() {
        let spec = json!({
            "openapi": "3.1.0",
            "webhooks": {
                "pet.new": {"post": {
                    "summary": "A new pet",
                    "x-svix-group-name": "pets",
                    "x-svix-feature-flags": ["beta"],
                    "requestBody": {"content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Pet"},
                        "example": {"name": "Rex"}
                    }}}
                }},
                "pet.gone": {"post": {"description": "Gone", "deprecated": true}}
            },
            "components": {"schemas": {"Pet": {"type": "object", "properties": {"name": {"type": "string"}}}}}
        });
        let types = event_types_of(&spec).expect("types");
        let new = types.iter().find(|t| t.name == "pet.new").expect("pet.new");
        assert_eq!(new.description, "A new pet");
        assert_eq!(new.group_name.as_deref(), Some("pets"));
        assert_eq!(new.feature_flags, Some(vec!["beta".to_owned()]));
        assert_eq!(
            new.schemas,
            Some(
                json!({"1": {"type": "object", "properties": {"name": {"type": "string"}}, "examples": [{"name": "Rex"}]}})
            )
        );
        let gone = types
            .iter()
            .find(|t| t.name == "pet.gone")
            .expect("pet.gone");
        assert!(gone.deprecated && gone.schemas.is_none() && gone.description == "Gone");
    }

    #[test]
    fn circular_references_stop() {
        let spec = json!({"components": {"schemas": {"A": {"$ref": "#/components/schemas/A"}}}});
        let resolved = resolve(&spec, &json!({"$ref": "#/components/schemas/A"}), 0);
        assert!(resolved.get("$ref").is_some());
    }
}
