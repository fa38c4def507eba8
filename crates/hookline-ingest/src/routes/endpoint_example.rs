//! `…/endpoint/{endpoint_id}/send-example`: sends one example message of an event type to
//! one endpoint, so its owner can test their receiver.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hookline_core::model::{DeliveryTask, Message, TriggerType};
use hookline_core::names::EventTypeName;
use serde::Deserialize;
use serde_json::{json, Value};

use super::common::{now, unix_ms, EndpointPath};
use super::endpoints::find_endpoint;
use super::messages::MessageOut;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::idempotent::once;
use crate::scope::AppScope;
use crate::state::ApiState;

/// Svix's built-in test event, sent without an event type of that name.
const PING_EVENT_TYPE: &str = "svix.ping";

/// `EventExampleIn`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventExampleIn {
    pub event_type: String,
    /// Which example of the event type's schema to send, from 0 (default: the first).
    pub example_index: Option<usize>,
    /// A payload to send instead of one of the schema's examples.
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Map<String, Value>>,
}

/// Sends `payload`, or the event type's example number `exampleIndex` (from the newest
/// schema version that has examples; `{}` when the schemas hold none and no index is
/// asked), to this one endpoint. `svix.ping` sends `{"success": true}`.
#[utoipa::path(post, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid")), request_body = EventExampleIn, responses((status = 202, body = MessageOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Endpoint")]
pub async fn send_example(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(EndpointPath { endpoint_id }): Path<EndpointPath>,
    headers: HeaderMap,
    ApiJson(input): ApiJson<EventExampleIn>,
) -> Result<Response, ApiError> {
    let work = send(&state, &app, &endpoint_id, input);
    let operation = format!("endpoint.send-example:{endpoint_id}");
    once(&state, &headers, &app.id, &operation, work).await
}

async fn send(
    state: &ApiState,
    app: &hookline_core::model::App,
    endpoint_id: &str,
    input: EventExampleIn,
) -> Result<(StatusCode, Response), ApiError> {
    let endpoint = find_endpoint(state, &app.id, endpoint_id).await?;
    let event_type = EventTypeName::parse(input.event_type)
        .map_err(|e| ApiError::field("eventType", e.to_string()))?;
    let example = match input.payload {
        Some(_) if input.example_index.is_some() => {
            return Err(ApiError::field(
                "exampleIndex",
                "give exampleIndex or payload, not both",
            ))
        }
        Some(payload) => Value::Object(payload),
        None if event_type.as_str() == PING_EVENT_TYPE => json!({"success": true}),
        None => {
            let schemas = state
                .registry()
                .get_event_type(event_type.as_str())
                .await?
                .ok_or(ApiError::NotFound("event type"))?
                .schemas;
            pick_example(schemas.as_ref(), input.example_index)?
        }
    };
    let payload =
        serde_json::value::to_raw_value(&example).map_err(|e| ApiError::Internal(e.to_string()))?;
    let timestamp = now();
    let message = Message {
        id: hookline_core::id::new_id("msg", unix_ms(timestamp)),
        app_id: app.id.clone(),
        event_type,
        event_id: None,
        channels: None,
        tags: None,
        payload,
        timestamp,
        deliver_at: None,
    };
    if !state.publisher().is_ready().await {
        return Err(ApiError::Unavailable("broker: not connected".into()));
    }
    let retention = state.config().max_retention_days * 24 * 3600;
    state
        .messages()
        .insert_message(&message, std::slice::from_ref(&endpoint.id), retention)
        .await?;
    let task = DeliveryTask::for_message(&message, &endpoint.id, 1, TriggerType::Manual)
        .of_endpoint_version(&endpoint);
    let joined = crate::lines::join(state, std::slice::from_ref(&task), None).await;
    let queued = match joined.map_err(ApiError::from) {
        Ok(()) => state
            .publisher()
            .publish(std::slice::from_ref(&task))
            .await
            .map_err(ApiError::from),
        Err(error) => Err(error),
    };
    if let Err(error) = queued {
        if state
            .messages()
            .remove_message(&message.app_id, &message.id)
            .await
            .is_ok()
        {
            crate::lines::leave(state, std::slice::from_ref(&task)).await;
        }
        return Err(error);
    }
    let body = Json(MessageOut::from(&message)).into_response();
    Ok((StatusCode::ACCEPTED, body))
}

/// Example `index` (default 0) of the newest schema version that has examples
/// (`{"1": {"examples": [...]}}`); `{}` when none has any and no index was asked.
fn pick_example(schemas: Option<&Value>, index: Option<usize>) -> Result<Value, ApiError> {
    let examples = newest_examples(schemas);
    let Some(examples) = examples else {
        return match index {
            None => Ok(json!({})),
            Some(_) => Err(ApiError::field(
                "exampleIndex",
                "the event type's schemas hold no examples",
            )),
        };
    };
    let wanted = index.unwrap_or(0);
    examples.get(wanted).cloned().ok_or_else(|| {
        ApiError::field(
            "exampleIndex",
            format!(
                "must be below {}, the number of examples in the event type's schema",
                examples.len()
            ),
        )
    })
}

/// The `examples` of the highest-numbered schema version that has a non-empty list.
fn newest_examples(schemas: Option<&Value>) -> Option<&Vec<Value>> {
    let mut versions: Vec<(&String, &Value)> = schemas?.as_object()?.iter().collect();
    // Read newest first: numeric versions by number, then any others.
    versions.sort_by_key(|(name, _)| (name.parse::<u64>().ok(), (*name).clone()));
    versions.into_iter().rev().find_map(|(_, schema)| {
        schema
            .get("examples")?
            .as_array()
            .filter(|examples| !examples.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_come_from_the_newest_version_by_index() {
        let schemas = json!({
            "1": {"examples": [{"v": 1}]},
            "2": {"examples": [{"v": 2, "n": 0}, {"v": 2, "n": 1}]},
            "10": {"type": "object"},
        });
        assert_eq!(
            pick_example(Some(&schemas), None).unwrap(),
            json!({"v": 2, "n": 0})
        );
        assert_eq!(
            pick_example(Some(&schemas), Some(1)).unwrap(),
            json!({"v": 2, "n": 1})
        );
        assert!(pick_example(Some(&schemas), Some(2)).is_err());
        assert_eq!(pick_example(None, None).unwrap(), json!({}));
        assert!(pick_example(Some(&json!({"1": {}})), Some(0)).is_err());
    }
}
