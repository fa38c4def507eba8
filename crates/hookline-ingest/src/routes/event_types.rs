//! `/api/v1/event-type`: the catalog of event types.
//!
//! Deleting a type archives it, as Svix does: it stays readable by name and leaves the list
//! unless `include_archived=true`; creating its name again brings it back with the new
//! fields, and `archived: false` in an update does too. `expunge=true` removes it for good.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use hookline_core::model::EventType;
use hookline_core::names::{EventTypeName, FeatureFlag, GroupName};
use hookline_core::ports::StoreError;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::common::{now, nullable, parse_names, ListQuery, ListResponse, Ordering};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::idempotent::{once, ORGANISATION};
use crate::scope::{AdminOnly, Caller};
use crate::state::ApiState;

type Schemas = serde_json::Map<String, serde_json::Value>;

/// `EventTypeIn`. `featureFlag` is the older, single-flag form of `featureFlags`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeIn {
    pub name: String,
    pub description: String,
    pub archived: Option<bool>,
    pub deprecated: Option<bool>,
    pub feature_flag: Option<String>,
    pub feature_flags: Option<Vec<String>>,
    pub group_name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<Schemas>,
}

impl EventTypeIn {
    fn split(self) -> (String, EventTypeUpdate) {
        let update = EventTypeUpdate {
            description: self.description,
            archived: self.archived,
            deprecated: self.deprecated,
            feature_flag: self.feature_flag,
            feature_flags: self.feature_flags,
            group_name: self.group_name,
            schemas: self.schemas,
        };
        (self.name, update)
    }
}

/// `EventTypeUpdate` (PUT): everything but the name; absent optional fields are cleared.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeUpdate {
    pub description: String,
    pub archived: Option<bool>,
    pub deprecated: Option<bool>,
    pub feature_flag: Option<String>,
    pub feature_flags: Option<Vec<String>>,
    pub group_name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<Schemas>,
}

/// `EventTypePatch`: absent fields stay, `null` clears.
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
    #[schema(value_type = Option<Vec<String>>)]
    pub feature_flags: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub group_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<Option<Schemas>>,
}

/// `EventTypeOut`. `featureFlag` is shown when the type has exactly one flag.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeOut {
    #[schema(value_type = String)]
    pub name: EventTypeName,
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    pub feature_flag: Option<String>,
    pub feature_flags: Option<Vec<String>>,
    pub group_name: Option<String>,
    /// `null` in lists unless asked `with_content=true`.
    #[schema(value_type = Option<Object>)]
    pub schemas: Option<serde_json::Value>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<EventType> for EventTypeOut {
    fn from(et: EventType) -> Self {
        let flags = et.flags();
        Self {
            feature_flag: flags
                .as_deref()
                .and_then(|f| if f.len() == 1 { f.first() } else { None })
                .cloned(),
            feature_flags: flags,
            name: et.name,
            description: et.description,
            archived: et.archived,
            deprecated: et.deprecated,
            group_name: et.group_name,
            schemas: et.schemas,
            created_at: et.created_at,
            updated_at: et.updated_at,
        }
    }
}

/// `GET /api/v1/event-type` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventTypeListQuery {
    pub limit: Option<usize>,
    /// An `iterator` or (with a leading `-`) a `prevIterator` from an earlier page.
    pub iterator: Option<String>,
    /// By name; ascending unless `descending`.
    pub order: Option<Ordering>,
    /// `true`: archived types are listed too. Default `false`.
    pub include_archived: Option<bool>,
    /// `true`: each type carries its `schemas`. Default `false`, as in Svix.
    pub with_content: Option<bool>,
}

/// `DELETE` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// `true`: remove the type for good instead of archiving it.
    pub expunge: Option<bool>,
}

/// The flags of `featureFlags`, or of the older single `featureFlag`; not both.
fn parse_flags(
    single: Option<String>,
    many: Option<Vec<String>>,
) -> Result<Option<Vec<String>>, ApiError> {
    match (single, many) {
        (Some(_), Some(_)) => Err(ApiError::field(
            "featureFlag",
            "give featureFlags or featureFlag, not both",
        )),
        (Some(one), None) => FeatureFlag::parse(one)
            .map(|flag| Some(vec![flag.as_str().to_owned()]))
            .map_err(|e| ApiError::field("featureFlag", e.to_string())),
        (None, Some(many)) => {
            let mut flags: Vec<String> = parse_names("featureFlags", many, FeatureFlag::parse)?
                .into_iter()
                .map(|flag| flag.as_str().to_owned())
                .collect();
            flags.sort();
            flags.dedup();
            Ok((!flags.is_empty()).then_some(flags))
        }
        (None, None) => Ok(None),
    }
}

fn parse_group(group: Option<String>) -> Result<Option<String>, ApiError> {
    group
        .map(|g| {
            GroupName::parse(g)
                .map(|g| g.as_str().to_owned())
                .map_err(|e| ApiError::field("groupName", e.to_string()))
        })
        .transpose()
}

/// Sets every field of `update` on `event_type` (a PUT, or a create of an archived name).
fn apply_update(event_type: &mut EventType, update: EventTypeUpdate) -> Result<(), ApiError> {
    event_type.feature_flags = parse_flags(update.feature_flag, update.feature_flags)?;
    event_type.feature_flag = None;
    event_type.group_name = parse_group(update.group_name)?;
    event_type.description = update.description;
    event_type.archived = update.archived.unwrap_or(false);
    event_type.deprecated = update.deprecated.unwrap_or(false);
    event_type.schemas = update.schemas.map(serde_json::Value::Object);
    event_type.updated_at = now();
    Ok(())
}

fn new_event_type(name: String, update: EventTypeUpdate) -> Result<EventType, ApiError> {
    let now = now();
    let mut event_type = EventType {
        name: EventTypeName::parse(name).map_err(|e| ApiError::field("name", e.to_string()))?,
        description: String::new(),
        archived: false,
        deprecated: false,
        feature_flag: None,
        feature_flags: None,
        group_name: None,
        schemas: None,
        created_at: now,
        updated_at: now,
    };
    apply_update(&mut event_type, update)?;
    Ok(event_type)
}

async fn find(state: &ApiState, name: &str) -> Result<EventType, ApiError> {
    state
        .registry()
        .get_event_type(name)
        .await?
        .ok_or(ApiError::NotFound("event type"))
}

#[utoipa::path(get, path = "/api/v1/event-type", params(EventTypeListQuery), responses((status = 200, body = ListResponse<EventTypeOut>), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Event Type")]
pub async fn list(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    ApiQuery(query): ApiQuery<EventTypeListQuery>,
) -> Result<Json<ListResponse<EventTypeOut>>, ApiError> {
    let request = ListQuery {
        limit: query.limit,
        iterator: query.iterator,
        order: query.order,
    }
    .page_request(true)?;
    let include_archived = query.include_archived.unwrap_or(false);
    let with_content = query.with_content.unwrap_or(false);
    let mut types = state.registry().list_event_types().await?;
    types.retain(|t| (include_archived || !t.archived) && visible_to(&caller, t));
    types.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(ListResponse::from_sorted(
        types,
        &request,
        |et| et.name.as_str(),
        |mut et| {
            if !with_content {
                et.schemas = None;
            }
            EventTypeOut::from(et)
        },
    )))
}

/// Creates a type. A name taken by an archived type brings that type back with these fields
/// (Svix's behaviour); a name taken by a live type answers 409.
#[utoipa::path(post, path = "/api/v1/event-type", request_body = EventTypeIn, responses((status = 201, body = EventTypeOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Event Type")]
pub async fn create(
    State(state): State<ApiState>,
    _: AdminOnly,
    headers: HeaderMap,
    ApiJson(input): ApiJson<EventTypeIn>,
) -> Result<Response, ApiError> {
    let work = create_event_type(&state, input);
    once(&state, &headers, ORGANISATION, "event-type.create", work).await
}

async fn create_event_type(
    state: &ApiState,
    input: EventTypeIn,
) -> Result<(StatusCode, Json<EventTypeOut>), ApiError> {
    let (name, update) = input.split();
    let event_type = new_event_type(name, update)?;
    match state.registry().create_event_type(&event_type).await {
        Ok(()) => Ok((StatusCode::CREATED, Json(event_type.into()))),
        Err(StoreError::Conflict(what)) => {
            let existing = state
                .registry()
                .get_event_type(event_type.name.as_str())
                .await?;
            match existing {
                Some(archived) if archived.archived => {
                    let revived = EventType {
                        created_at: archived.created_at,
                        ..event_type
                    };
                    state.registry().update_event_type(&revived).await?;
                    Ok((StatusCode::CREATED, Json(revived.into())))
                }
                _ => Err(StoreError::Conflict(what).into()),
            }
        }
        Err(other) => Err(other.into()),
    }
}

#[utoipa::path(get, path = "/api/v1/event-type/{event_type_name}", params(("event_type_name" = String, Path, description = "Event type name")), responses((status = 200, body = EventTypeOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Event Type")]
pub async fn get(
    State(state): State<ApiState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<EventTypeOut>, ApiError> {
    let event_type = find(&state, &name).await?;
    if !visible_to(&caller, &event_type) {
        return Err(ApiError::NotFound("event type"));
    }
    Ok(Json(event_type.into()))
}

/// Whether `caller` may see `event_type`: a type behind feature flags is shown, as in Svix,
/// only to sessions holding one of them, and app tokens hold none (they are minted without
/// flags), so they see only unflagged types. Admins see every type.
fn visible_to(caller: &Principal, event_type: &EventType) -> bool {
    match caller {
        Principal::Admin => true,
        Principal::App { .. } => event_type.flags().is_none_or(|flags| flags.is_empty()),
    }
}

#[utoipa::path(put, path = "/api/v1/event-type/{event_type_name}", params(("event_type_name" = String, Path, description = "Event type name")), request_body = EventTypeUpdate, responses((status = 200, body = EventTypeOut), (status = 201, body = EventTypeOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Event Type")]
pub async fn update(
    State(state): State<ApiState>,
    _: AdminOnly,
    Path(name): Path<String>,
    ApiJson(input): ApiJson<EventTypeUpdate>,
) -> Result<(StatusCode, Json<EventTypeOut>), ApiError> {
    let (status, event_type) = match state.registry().get_event_type(&name).await? {
        Some(mut existing) => {
            apply_update(&mut existing, input)?;
            (StatusCode::OK, existing)
        }
        None => (StatusCode::CREATED, new_event_type(name, input)?),
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
    match (input.feature_flag, input.feature_flags) {
        (None, None) => {}
        (single, many) => {
            event_type.feature_flags = parse_flags(single.flatten(), many.flatten())?;
            event_type.feature_flag = None;
        }
    }
    if let Some(group) = input.group_name {
        event_type.group_name = parse_group(group)?;
    }
    if let Some(schemas) = input.schemas {
        event_type.schemas = schemas.map(serde_json::Value::Object);
    }
    event_type.updated_at = now();
    state.registry().update_event_type(&event_type).await?;
    Ok(Json(event_type.into()))
}

/// Archives the type, or with `expunge=true` removes it.
#[utoipa::path(delete, path = "/api/v1/event-type/{event_type_name}", params(("event_type_name" = String, Path, description = "Event type name"), DeleteQuery), responses((status = 204, description = "Archived or expunged"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Event Type")]
pub async fn delete(
    State(state): State<ApiState>,
    _: AdminOnly,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<DeleteQuery>,
) -> Result<StatusCode, ApiError> {
    if query.expunge.unwrap_or(false) {
        return if state.registry().delete_event_type(&name).await? {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(ApiError::NotFound("event type"))
        };
    }
    let mut event_type = find(&state, &name).await?;
    if !event_type.archived {
        event_type.archived = true;
        event_type.updated_at = now();
        state.registry().update_event_type(&event_type).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}
