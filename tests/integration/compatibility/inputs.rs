//! The documented inputs of each operation (query parameters and top-level body fields), read
//! from an OpenAPI document or from the SDK lists that tests/python/sdk_inputs.py and
//! tests/js/sdk_inputs.mjs print, and plausible values to send for them.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::table::shape;

/// Where an input goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    Query,
    Body,
}

impl Place {
    pub fn loc(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Body => "body",
        }
    }
}

/// One documented input of one operation.
#[derive(Debug, Clone)]
pub struct Input {
    pub place: Place,
    pub name: String,
    /// Its schema, with every `$ref` resolved.
    pub schema: Value,
    /// What an SDK sends when the caller sets nothing (`None`: only when set).
    pub always: Option<String>,
}

/// One operation as a source documents it.
#[derive(Debug, Clone)]
pub struct Operation {
    /// `reference v1.message.create`, `py:message.create`, `js:message.create`.
    pub source: String,
    pub method: String,
    pub path: String,
    /// The request body's schema (resolved), if the source documents one.
    pub body: Option<Value>,
    pub inputs: Vec<Input>,
}

impl Operation {
    pub fn key(&self) -> (String, String) {
        (self.method.clone(), shape(&self.path))
    }
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The operations of an OpenAPI document (the reference, or Hookline's own).
pub fn from_openapi(document: &Value, source: &str) -> Vec<Operation> {
    let mut operations = Vec::new();
    let Some(paths) = document["paths"].as_object() else {
        return operations;
    };
    for (path, item) in paths {
        for method in METHODS {
            let Some(operation) = item.get(method) else {
                continue;
            };
            let name = operation["operationId"]
                .as_str()
                .unwrap_or("(no operationId)");
            let mut inputs: Vec<Input> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(item["parameters"].as_array().into_iter().flatten())
                .map(|p| resolve(p, document, 0))
                .filter(|p| p["in"] == "query")
                .map(|p| Input {
                    place: Place::Query,
                    name: p["name"].as_str().unwrap_or_default().to_owned(),
                    schema: p["schema"].clone(),
                    always: None,
                })
                .collect();
            let body = operation["requestBody"]["content"]["application/json"]["schema"]
                .as_object()
                .map(|schema| resolve(&Value::Object(schema.clone()), document, 0));
            inputs.extend(body.iter().flat_map(body_inputs));
            operations.push(Operation {
                source: format!("{source} {name}"),
                method: method.to_uppercase(),
                path: path.clone(),
                body,
                inputs,
            });
        }
    }
    operations
}

/// The operations of an SDK list (`[{sdk, name, method, path, query, body}]`).
pub fn from_sdk_list(list: &Value) -> Vec<Operation> {
    let prefix = |sdk: &str| if sdk == "python" { "py" } else { "js" }.to_owned();
    list.as_array()
        .into_iter()
        .flatten()
        .map(|op| {
            let source = format!(
                "{}:{}",
                prefix(op["sdk"].as_str().unwrap_or_default()),
                op["name"].as_str().unwrap_or_default()
            );
            let mut inputs: Vec<Input> = op["query"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|q| Input {
                    place: Place::Query,
                    name: q["name"].as_str().unwrap_or_default().to_owned(),
                    schema: q["schema"].clone(),
                    always: q["always"].as_str().map(str::to_owned),
                })
                .collect();
            let body = op["body"]["schema"]
                .as_object()
                .filter(|schema| schema.contains_key("properties"))
                .map(|schema| {
                    let root = Value::Object(schema.clone());
                    resolve(&root, &root, 0)
                });
            inputs.extend(body.iter().flat_map(body_inputs));
            Operation {
                source,
                method: op["method"].as_str().unwrap_or_default().to_uppercase(),
                path: op["path"].as_str().unwrap_or_default().to_owned(),
                body,
                inputs,
            }
        })
        .collect()
}

/// The top-level fields of a body schema (a `oneOf`/`anyOf` of objects gives the fields of
/// every variant: an optional body is `null` or the object).
pub fn body_inputs(schema: &Value) -> Vec<Input> {
    let mut inputs = Vec::new();
    for variant in variants(schema) {
        for (name, field) in variant["properties"].as_object().into_iter().flatten() {
            if !inputs.iter().any(|i: &Input| i.name == *name) {
                inputs.push(Input {
                    place: Place::Body,
                    name: name.clone(),
                    schema: field.clone(),
                    always: None,
                });
            }
        }
    }
    inputs
}

fn variants(schema: &Value) -> Vec<&Value> {
    let nested: Vec<&Value> = ["oneOf", "anyOf", "allOf"]
        .iter()
        .filter_map(|k| schema[*k].as_array())
        .flatten()
        .flat_map(variants)
        .collect();
    std::iter::once(schema).chain(nested).collect()
}

/// The query parameters and body fields an operation of Hookline's document declares.
pub fn declared(operation: &Operation) -> BTreeSet<(Place, String)> {
    operation
        .inputs
        .iter()
        .map(|i| (i.place, i.name.clone()))
        .collect()
}

/// `schema` with every `$ref` (`#/components/schemas/X`, `#/$defs/X`) replaced by what it
/// names in `root`, to a bounded depth (schemas may refer to themselves).
pub fn resolve(schema: &Value, root: &Value, depth: usize) -> Value {
    if depth > 8 {
        return json!({});
    }
    match schema {
        Value::Object(map) => {
            if let Some(pointer) = map.get("$ref").and_then(Value::as_str) {
                let target = root
                    .pointer(pointer.trim_start_matches('#'))
                    .cloned()
                    .unwrap_or_else(|| json!({}));
                return resolve(&target, root, depth + 1);
            }
            let resolved: Map<String, Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), resolve(v, root, depth + 1)))
                .collect();
            Value::Object(resolved)
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| resolve(v, root, depth + 1)).collect())
        }
        other => other.clone(),
    }
}

/// A plausible value of a schema's type: never `null`, the required fields of an object.
pub fn sample(schema: &Value) -> Value {
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    for key in ["anyOf", "oneOf", "allOf"] {
        if let Some(variant) = schema[key]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| v["type"] != "null"))
        {
            return sample(variant);
        }
    }
    let kind = match &schema["type"] {
        Value::Array(kinds) => kinds.iter().find(|k| *k != "null").cloned(),
        other => Some(other.clone()),
    };
    match kind.as_ref().and_then(Value::as_str) {
        Some("string") => match schema["format"].as_str() {
            Some("date-time") => json!("2024-01-01T00:00:00Z"),
            Some("uri") => json!("https://example.com/hook"),
            _ => json!("x"),
        },
        Some("integer" | "number") => json!(1),
        Some("boolean") => json!(true),
        Some("array") => json!([sample(&schema["items"])]),
        Some("object") => required_object(schema),
        _ if schema.get("properties").is_some() => required_object(schema),
        _ => json!("x"),
    }
}

/// An object with a plausible value for each required field.
pub fn required_object(schema: &Value) -> Value {
    let mut object = Map::new();
    for variant in variants(schema) {
        for name in variant["required"].as_array().into_iter().flatten() {
            let Some(name) = name.as_str() else { continue };
            let field = &variant["properties"][name];
            object.insert(name.to_owned(), sample(field));
        }
    }
    Value::Object(object)
}

/// A sampled value as a query string value (a list sends its first item).
pub fn query_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.first().map(query_value).unwrap_or_default(),
        Value::Object(_) | Value::Null => "x".to_owned(),
        other => other.to_string(),
    }
}
