//! `/api/v1/app`: applications.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use hookline_core::id;
use hookline_core::model::App;
use hookline_core::names::Uid;
use hookline_core::ports::StoreError;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::common::{either_name, now, nullable, unix_ms, ListQuery, ListResponse, Ordering};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use crate::idempotent::{once, ORGANISATION};
use crate::scope::{AdminApp, AdminOnly, AppScope};
use crate::state::ApiState;

/// `ApplicationIn` (create and PUT). `rateLimit` is the older name of `throttleRate`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationIn {
    pub name: String,
    pub uid: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The most messages per second sent to all the app's endpoints together (1 to
    /// 65,535); outgoing messages are throttled to this rate. Unset: unthrottled.
    #[schema(minimum = 1)]
    pub throttle_rate: Option<u16>,
    /// The older name of `throttleRate`.
    #[schema(minimum = 1)]
    pub rate_limit: Option<u16>,
}

impl ApplicationIn {
    fn rate(&self) -> Result<Option<u16>, ApiError> {
        throttle(self.throttle_rate, self.rate_limit)
    }
}

/// The app's throttle from its two wire names (see [`checked_throttle`]).
fn throttle(throttle_rate: Option<u16>, rate_limit: Option<u16>) -> Result<Option<u16>, ApiError> {
    let name = throttle_name(throttle_rate.is_some());
    either_name(throttle_rate, "throttleRate", rate_limit, "rateLimit")?
        .map(|rate| checked_throttle(rate, name))
        .transpose()
}

/// A throttle as sent under `name`: at least 1, refused naming `name` otherwise. The type
/// bounds it at 65,535 (Svix's `uint16`): a larger number is refused, naming the field, as
/// the body is decoded.
fn checked_throttle(rate: u16, name: &str) -> Result<u16, ApiError> {
    hookline_core::rate::throttle_rate(rate)
        .map_err(|invalid| ApiError::field(name, invalid.to_string()))
}

/// The name the caller sent the throttle under (both agree when both are sent).
fn throttle_name(sent_as_throttle_rate: bool) -> &'static str {
    if sent_as_throttle_rate {
        "throttleRate"
    } else {
        "rateLimit"
    }
}

/// `ApplicationPatch`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationPatch {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub uid: Option<Option<String>>,
    pub metadata: Option<BTreeMap<String, String>>,
    /// The app's throttle (see `ApplicationIn`); `null` removes it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u16>, minimum = 1)]
    pub throttle_rate: Option<Option<u16>>,
    /// The older name of `throttleRate`.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<u16>, minimum = 1)]
    pub rate_limit: Option<Option<u16>>,
}

/// `ApplicationOut`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationOut {
    pub id: String,
    #[schema(value_type = Option<String>)]
    pub uid: Option<Uid>,
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    /// The older name of `throttleRate`.
    pub rate_limit: Option<u16>,
    /// The most messages per second sent to all the app's endpoints together; `null`:
    /// unthrottled.
    pub throttle_rate: Option<u16>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<App> for ApplicationOut {
    fn from(app: App) -> Self {
        let throttle = app.throttle();
        Self {
            id: app.id,
            uid: app.uid,
            name: app.name,
            metadata: app.metadata,
            rate_limit: throttle,
            throttle_rate: throttle,
            created_at: app.created_at,
            updated_at: app.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CreateQuery {
    #[serde(default)]
    get_if_exists: bool,
}

fn parse_uid(uid: Option<String>) -> Result<Option<Uid>, ApiError> {
    uid.map(|u| Uid::parse(u).map_err(|e| ApiError::field("uid", e.to_string())))
        .transpose()
}

fn check_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() {
        return Err(ApiError::field("name", "must not be empty"));
    }
    Ok(())
}

/// Builds a new app record from `ApplicationIn`.
pub fn new_app(input: ApplicationIn) -> Result<App, ApiError> {
    check_name(&input.name)?;
    let rate_limit = input.rate()?;
    let now = now();
    Ok(App {
        id: id::new_id("app", unix_ms(now)),
        uid: parse_uid(input.uid)?,
        name: input.name,
        metadata: input.metadata,
        rate_limit,
        created_at: now,
        updated_at: now,
    })
}

/// `GET /api/v1/app` query: a page and Svix's filters on each app's endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AppListQuery {
    pub limit: Option<usize>,
    /// An `iterator` or (with a leading `-`) a `prevIterator` from an earlier page.
    pub iterator: Option<String>,
    pub order: Option<Ordering>,
    /// Leave out apps that have no endpoint.
    pub exclude_apps_with_no_endpoints: Option<bool>,
    /// Leave out apps whose endpoints are all disabled (apps with none stay).
    pub exclude_apps_with_disabled_endpoints: Option<bool>,
    /// Leave out apps whose endpoints all point at Svix Play (`play.svix.com`).
    pub exclude_apps_with_svix_play_endpoints: Option<bool>,
}

/// The endpoint filters of the app list.
#[derive(Debug, Clone, Copy, Default)]
struct EndpointFilters {
    no_endpoints: bool,
    disabled: bool,
    svix_play: bool,
}

impl EndpointFilters {
    fn is_set(self) -> bool {
        self.no_endpoints || self.disabled || self.svix_play
    }

    fn keeps(self, endpoints: &[hookline_core::model::Endpoint]) -> bool {
        if endpoints.is_empty() {
            return !self.no_endpoints;
        }
        let all = |test: fn(&hookline_core::model::Endpoint) -> bool| endpoints.iter().all(test);
        !(self.disabled && all(|e| e.disabled) || self.svix_play && all(|e| is_svix_play(&e.url)))
    }
}

/// Whether `url` points at Svix Play, Svix's hosted request inspector.
fn is_svix_play(url: &str) -> bool {
    url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .is_some_and(|host| host == "play.svix.com" || host.ends_with(".play.svix.com"))
}

#[utoipa::path(get, path = "/api/v1/app", params(AppListQuery), responses((status = 200, body = ListResponse<ApplicationOut>), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Application")]
pub async fn list(
    State(state): State<ApiState>,
    _: AdminOnly,
    ApiQuery(query): ApiQuery<AppListQuery>,
) -> Result<Json<ListResponse<ApplicationOut>>, ApiError> {
    let page = ListQuery {
        limit: query.limit,
        iterator: query.iterator,
        order: query.order,
    };
    let filters = EndpointFilters {
        no_endpoints: query.exclude_apps_with_no_endpoints.unwrap_or(false),
        disabled: query.exclude_apps_with_disabled_endpoints.unwrap_or(false),
        svix_play: query.exclude_apps_with_svix_play_endpoints.unwrap_or(false),
    };
    let paging = super::paging::Paging::from_query(&page, false)?;
    let mut pager = super::paging::Pager::new(paging, filters.is_set());
    while let Some(request) = pager.next_request() {
        let page = state.registry().list_apps(&request).await?;
        let mut judged = Vec::with_capacity(page.items.len());
        for app in page.items {
            let keep = !filters.is_set()
                || filters.keeps(&state.registry().endpoints_of_app(&app.id).await?);
            let verdict = if keep {
                super::paging::Verdict::Keep
            } else {
                super::paging::Verdict::Skip
            };
            judged.push((app, verdict));
        }
        pager.take(judged, page.iterator, page.done);
    }
    Ok(Json(pager.into_response(
        |app| app.id.as_str(),
        ApplicationOut::from,
    )))
}

#[utoipa::path(post, path = "/api/v1/app", params(CreateQuery), request_body = ApplicationIn, responses((status = 201, body = ApplicationOut), (status = 200, description = "Existing application (get_if_exists)", body = ApplicationOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Application")]
pub async fn create(
    State(state): State<ApiState>,
    _: AdminOnly,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<CreateQuery>,
    ApiJson(input): ApiJson<ApplicationIn>,
) -> Result<Response, ApiError> {
    once(
        &state,
        &headers,
        ORGANISATION,
        "app.create",
        create_app(&state, query, input),
    )
    .await
}

async fn create_app(
    state: &ApiState,
    query: CreateQuery,
    input: ApplicationIn,
) -> Result<(StatusCode, Json<ApplicationOut>), ApiError> {
    let app = new_app(input)?;
    if let Some(uid) = &app.uid {
        if let Some(existing) = state.registry().get_app(uid.as_str()).await? {
            if query.get_if_exists {
                return Ok((StatusCode::OK, Json(existing.into())));
            }
            return Err(ApiError::Conflict("application uid already exists".into()));
        }
    }
    match state.registry().create_app(&app).await {
        Ok(()) => Ok((StatusCode::CREATED, Json(app.into()))),
        // A concurrent create of the same uid won: with get_if_exists, answer its app.
        Err(StoreError::Conflict(what)) if query.get_if_exists => {
            let uid = app.uid.as_ref().map(Uid::as_str).unwrap_or_default();
            match state.registry().get_app(uid).await? {
                Some(existing) => Ok((StatusCode::OK, Json(existing.into()))),
                None => Err(StoreError::Conflict(what).into()),
            }
        }
        Err(other) => Err(other.into()),
    }
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}", params(("app_id" = String, Path, description = "Application id or uid")), responses((status = 200, body = ApplicationOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Application")]
pub async fn get(scope: AppScope) -> Result<Json<ApplicationOut>, ApiError> {
    Ok(Json(scope.app.into()))
}

#[utoipa::path(put, path = "/api/v1/app/{app_id}", params(("app_id" = String, Path, description = "Application id or uid")), request_body = ApplicationIn, responses((status = 200, body = ApplicationOut), (status = 201, body = ApplicationOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Application")]
pub async fn update(
    State(state): State<ApiState>,
    _: AdminOnly,
    Path(app_id): Path<String>,
    ApiJson(input): ApiJson<ApplicationIn>,
) -> Result<(StatusCode, Json<ApplicationOut>), ApiError> {
    let Some(previous) = state.registry().get_app(&app_id).await? else {
        // PUT creates when the app does not exist yet (Svix: 201).
        let mut app = new_app(input)?;
        if app.uid.is_none() {
            app.uid = Some(Uid::parse(app_id).map_err(|e| ApiError::field("uid", e.to_string()))?);
        }
        state.registry().create_app(&app).await?;
        return Ok((StatusCode::CREATED, Json(app.into())));
    };
    check_name(&input.name)?;
    let rate_limit = input.rate()?;
    let app = App {
        uid: parse_uid(input.uid)?,
        name: input.name,
        metadata: input.metadata,
        rate_limit,
        updated_at: now(),
        ..previous.clone()
    };
    state.registry().update_app(&previous, &app).await?;
    Ok((StatusCode::OK, Json(app.into())))
}

#[utoipa::path(patch, path = "/api/v1/app/{app_id}", params(("app_id" = String, Path, description = "Application id or uid")), request_body = ApplicationPatch, responses((status = 200, body = ApplicationOut), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Application")]
pub async fn patch(
    State(state): State<ApiState>,
    AdminApp { app: previous }: AdminApp,
    ApiJson(input): ApiJson<ApplicationPatch>,
) -> Result<Json<ApplicationOut>, ApiError> {
    let mut app = previous.clone();
    if let Some(name) = input.name {
        check_name(&name)?;
        app.name = name;
    }
    if let Some(uid) = input.uid {
        app.uid = parse_uid(uid)?;
    }
    if let Some(metadata) = input.metadata {
        app.metadata = metadata;
    }
    // Absent: unchanged; `null` (under either name): removed; a number: checked and set.
    let rate = either_name(
        input.throttle_rate,
        "throttleRate",
        input.rate_limit,
        "rateLimit",
    )?;
    if let Some(rate) = rate {
        let name = throttle_name(input.throttle_rate.is_some());
        app.rate_limit = rate.map(|rate| checked_throttle(rate, name)).transpose()?;
    }
    app.updated_at = now();
    state.registry().update_app(&previous, &app).await?;
    Ok(Json(app.into()))
}

#[utoipa::path(delete, path = "/api/v1/app/{app_id}", params(("app_id" = String, Path, description = "Application id or uid")), responses((status = 204, description = "Deleted"), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Application")]
pub async fn delete(
    State(state): State<ApiState>,
    AdminApp { app }: AdminApp,
) -> Result<StatusCode, ApiError> {
    state.registry().delete_app(&app).await?;
    // Authentication also refuses tokens of an app that is gone, so a stop before this
    // line leaves no working token; revoking keeps the store from holding dead ones.
    let revoked = state.tokens().revoke_app_tokens(&app.id).await?;
    tracing::info!(app_id = %app.id, revoked, "app deleted, its app tokens revoked");
    Ok(StatusCode::NO_CONTENT)
}
