//! The messages an endpoint was sent (Svix "list attempted messages"), newest first, each
//! with its delivery state to that endpoint.
//!
//! Pages follow the endpoint's attempt log, so a message whose attempts straddle a page
//! boundary can appear on both pages; within a page each message appears once.

use axum::extract::{Path, State};
use axum::Json;
use hookline_core::model::Message;
use hookline_core::ports::PageRequest;
use serde::Serialize;
use time::OffsetDateTime;

use super::common::{find_app, ListQuery, ListResponse};
use super::endpoints::find_endpoint;
use super::messages::MessageOut;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::ApiState;

/// `EndpointMessageOut`: the message plus its state for this endpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointMessageOut<'a> {
    #[serde(flatten)]
    pub message: MessageOut<'a>,
    pub status: u8,
    pub status_text: &'static str,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt: Option<OffsetDateTime>,
}

#[utoipa::path(get, path = "/api/v1/app/{app_id}/endpoint/{endpoint_id}/msg", params(("app_id" = String, Path, description = "Application id or uid"), ("endpoint_id" = String, Path, description = "Endpoint id or uid"), ListQuery), responses((status = 200, body = ListResponse<EndpointMessageOut>), crate::openapi::ErrorResponses), security(("bearer" = [])), tag = "Message Attempt")]
pub async fn list(
    State(state): State<ApiState>,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;

    let app = find_app(&state, &app_id).await?;
    let endpoint = find_endpoint(&state, &app.id, &endpoint_id).await?;
    let wanted = query.page_request(false)?;
    // Walk the endpoint's attempts newest first, keeping each message once; the iterator is
    // the id of the last attempt read, so the next page continues after it.
    let mut found: Vec<(Message, hookline_core::model::DestinationStatus)> = Vec::new();
    let mut iterator = wanted.iterator.clone();
    let mut last_read = None;
    let mut exhausted = false;
    while found.len() < wanted.limit && !exhausted {
        let request = PageRequest {
            limit: 250,
            iterator: iterator.take(),
            ascending: false,
        };
        let page = state
            .attempts()
            .attempts_by_endpoint(&app.id, &endpoint.id, &request)
            .await?;
        exhausted = page.done;
        iterator = page.iterator.clone();
        for attempt in page.items {
            if found.len() >= wanted.limit {
                exhausted = false;
                break;
            }
            last_read = Some(attempt.id.clone());
            if found.iter().any(|(m, _)| m.id == attempt.msg_id) {
                continue;
            }
            let Some(message) = state
                .messages()
                .get_message(&app.id, &attempt.msg_id)
                .await?
            else {
                continue;
            };
            let destination = state
                .messages()
                .destinations(&app.id, &message.id)
                .await?
                .into_iter()
                .find(|d| d.endpoint_id == endpoint.id);
            if let Some(destination) = destination {
                found.push((message, destination));
            }
        }
        if last_read.is_some() && !exhausted {
            iterator = last_read.clone();
        }
    }
    let data = found
        .iter()
        .map(|(message, destination)| EndpointMessageOut {
            message: MessageOut::from(message),
            status: destination.status.code(),
            status_text: destination.status.text(),
            next_attempt: destination.next_attempt,
        })
        .collect();
    let body = ListResponse {
        data,
        iterator: if exhausted { None } else { last_read },
        prev_iterator: None,
        done: exhausted,
    };
    Ok(Json(body).into_response())
}
