//! `/api/v1/event-type`: the catalog of event types.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookline_core::model::EventType;
use hookline_core::names::EventTypeName;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::common::{now, nullable, ListQuery, ListResponse};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::scope::{AdminOnly, Caller};
use crate::state::ApiState;

/// `EventTypeIn`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeIn {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub deprecated: bool,
    pub feature_flag: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `EventTypeUpdate` (PUT): everything but the name.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeUpdate {
    pub description: String,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub deprecated: bool,
    pub feature_flag: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `EventTypePatch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypePatch {
    pub description: Option<String>,
    pub archived: Option<bool>,
    pub deprecated: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub feature_flag: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<Option<serde_json::Map<String, serde_json::Value>>>,
}

/// `EventTypeOut`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeOut {
    #[schema(value_type = String)]
    pub name: EventTypeName,
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    pub feature_flag: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<serde_json::Value>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<EventType> for EventTypeOut {
    fn from(et: EventType) -> Self {
        Self {
            name: et.name,
            description: et.description,
            archived: et.archived,
            deprecated: et.deprecated,
            feature_flag: et.feature_flag,
            schemas: et.schemas,
            created_at: et.created_at,
            updated_at: et.updated_at,
        }
    }
}

async fn find(state: &ApiState, name: &str) -> Result<EventType, ApiError> {
    state
        .registry()
        .get_event_type(name)
        .await?
        .ok_or(ApiError::NotFound("event type"))
}

#[utoipa::path(get, path = "/api/v1/event-type", params(ListQuery), responses((status = 200, body = ListResponse<EventTypeOut>), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Event Type")]
pub async fn list(
    State(state): State<ApiState>,
    _: Caller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<ListResponse<EventTypeOut>>, ApiError> {
    let request = query.page_request(true)?;
    let types = state.registry().list_event_types().await?;
    Ok(Json(ListResponse::from_sorted(
        types,
        &request,
        |et| et.name.as_str(),
        EventTypeOut::from,
    )))
}

#[utoipa::path(post, path = "/api/v1/event-type", request_body = EventTypeIn, responses((status = 201, body = EventTypeOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Event Type")]
pub async fn create(
    State(state): State<ApiState>,
    _: AdminOnly,
    ApiJson(input): ApiJson<EventTypeIn>,
) -> Result<(StatusCode, Json<EventTypeOut>), ApiError> {
    let now = now();
    let event_type = EventType {
        name: EventTypeName::parse(input.name)
            .map_err(|e| ApiError::field("name", e.to_string()))?,
        description: input.description,
        archived: input.archived,
        deprecated: input.deprecated,
        feature_flag: input.feature_flag,
        schemas: input.schemas.map(serde_json::Value::Object),
        created_at: now,
        updated_at: now,
    };
    state.registry().create_event_type(&event_type).await?;
    Ok((StatusCode::CREATED, Json(event_type.into())))
}

#[utoipa::path(get, path = "/api/v1/event-type/{event_type_name}", params(("event_type_name" = String, Path, description = "Event type name")), responses((status = 200, body = EventTypeOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Event Type")]
pub async fn get(
    State(state): State<ApiState>,
    _: Caller,
    Path(name): Path<String>,
) -> Result<Json<EventTypeOut>, ApiError> {
    Ok(Json(find(&state, &name).await?.into()))
}

#[utoipa::path(put, path = "/api/v1/event-type/{event_type_name}", params(("event_type_name" = String, Path, description = "Event type name")), request_body = EventTypeUpdate, responses((status = 200, body = EventTypeOut), (status = 201, body = EventTypeOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Event Type")]
pub async fn update(
    State(state): State<ApiState>,
    _: AdminOnly,
    Path(name): Path<String>,
    ApiJson(input): ApiJson<EventTypeUpdate>,
) -> Result<(StatusCode, Json<EventTypeOut>), ApiError> {
    let now = now();
    let (status, created_at) = match state.registry().get_event_type(&name).await? {
        Some(existing) => (StatusCode::OK, existing.created_at),
        None => (StatusCode::CREATED, now),
    };
    let event_type = EventType {
        name: EventTypeName::parse(name).map_err(|e| ApiError::field("name", e.to_string()))?,
        description: input.description,
        archived: input.archived,
        deprecated: input.deprecated,
        feature_flag: input.feature_flag,
        schemas: input.schemas.map(serde_json::Value::Object),
        created_at,
        updated_at: now,
    };
    state.registry().update_event_type(&event_type).await?;
    Ok((status, Json(event_type.into())))
}

#[utoipa::path(patch, path = "/api/v1/event-type/{event_type_name}", params(("event_type_name" = String, Path, description = "Event type name")), request_body = EventTypePatch, responses((status = 200, body = EventTypeOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Event Type")]
pub async fn patch(
    State(state): State<ApiState>,
    _: AdminOnly,
    Path(name): Path<String>,
    ApiJson(input): ApiJson<EventTypePatch>,
) -> Result<Json<EventTypeOut>, ApiError> {
    let mut event_type = find(&state, &name).await?;
    if let Some(description) = input.description {
        event_type.description = description;
    }
    if let Some(archived) = input.archived {
        event_type.archived = archived;
    }
    if let Some(deprecated) = input.deprecated {
        event_type.deprecated = deprecated;
    }
    if let Some(flag) = input.feature_flag {
        event_type.feature_flag = flag;
    }
    if let Some(schemas) = input.schemas {
        event_type.schemas = schemas.map(serde_json::Value::Object);
    }
    event_type.updated_at = now();
    state.registry().update_event_type(&event_type).await?;
    Ok(Json(event_type.into()))
}

#[utoipa::path(delete, path = "/api/v1/event-type/{event_type_name}", params(("event_type_name" = String, Path, description = "Event type name")), responses((status = 204, description = "Deleted"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Event Type")]
pub async fn delete(
    State(state): State<ApiState>,
    _: AdminOnly,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    if state.registry().delete_event_type(&name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("event type"))
    }
}
