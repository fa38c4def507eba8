//! `GET …/msg/{msg_id}/endpoint` (Svix's `list-attempted-destinations`): the endpoints a
//! message was sent to, each as it is now with the message's delivery state there.

use axum::extract::{Path, State};
use axum::Json;
use hookline_core::model::{DestinationStatus, Endpoint};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::common::{ListQuery, ListResponse, MsgPath};
use super::endpoints::EndpointOut;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::scope::AppScope;
use crate::state::ApiState;

/// `MessageEndpointOut`: an endpoint a message was sent to, with the message's delivery
/// state there (and Hookline's `attempts`, the attempts made so far).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageEndpointOut {
    #[serde(flatten)]
    pub endpoint: EndpointOut,
    pub status: u8,
    pub status_text: &'static str,
    pub attempts: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt: Option<OffsetDateTime>,
}

/// `GET …/msg/{msg_id}/endpoint` query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DestinationListQuery {
    pub limit: Option<usize>,
    /// An `iterator` or (with a leading `-`) a `prevIterator` from an earlier page.
    pub iterator: Option<String>,
}

/// The endpoints a message was sent to (`list-attempted-destinations`), newest endpoint
/// first. An endpoint deleted since is left out.
#[utoipa::path(get, path = "/api/v1/app/{app_id}/msg/{msg_id}/endpoint", params(("app_id" = String, Path, description = "Application id or uid"), ("msg_id" = String, Path, description = "Message id or eventId"), DestinationListQuery), responses((status = 200, body = ListResponse<MessageEndpointOut>), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message")]
pub async fn destinations(
    State(state): State<ApiState>,
    AppScope { app, .. }: AppScope,
    Path(MsgPath { msg_id }): Path<MsgPath>,
    ApiQuery(query): ApiQuery<DestinationListQuery>,
) -> Result<Json<ListResponse<MessageEndpointOut>>, ApiError> {
    let request = ListQuery {
        limit: query.limit,
        iterator: query.iterator,
        order: None,
    }
    .page_request(false)?;
    // The path may name the message by its eventId: read by the id it resolved to.
    let message = super::common::find_message(&state, &app.id, &msg_id).await?;
    let destinations = state.messages().destinations(&app.id, &message.id).await?;
    let mut endpoints: std::collections::HashMap<String, Endpoint> = state
        .registry()
        .endpoints_of_app(&app.id)
        .await?
        .into_iter()
        .map(|endpoint| (endpoint.id.clone(), endpoint))
        .collect();
    let mut rows: Vec<(Endpoint, DestinationStatus)> = destinations
        .into_iter()
        .filter_map(|d| endpoints.remove(&d.endpoint_id).map(|e| (e, d)))
        .collect();
    rows.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    Ok(Json(ListResponse::from_sorted(
        rows,
        &request,
        |(endpoint, _)| endpoint.id.as_str(),
        |(endpoint, destination)| MessageEndpointOut {
            endpoint: endpoint.into(),
            status: destination.status.code(),
            status_text: destination.status.text(),
            attempts: destination.attempts,
            next_attempt: destination.next_attempt,
        },
    )))
}
