//! Pieces every resource uses: list paging, timestamps, nullable patches, path parameters.

use hookline_core::ports::{Page, PageRequest};
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::state::ApiState;

/// Default page size when `limit` is absent (Svix: 50).
const DEFAULT_LIMIT: usize = 50;
/// Largest page size accepted.
const MAX_LIMIT: usize = 250;

/// The query parameters of every list operation.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub limit: Option<usize>,
    pub iterator: Option<String>,
    pub order: Option<Ordering>,
}

/// `order` query values.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ordering {
    Ascending,
    Descending,
}

impl ListQuery {
    /// Newest first unless `order=ascending`.
    pub fn page_request(&self, default_ascending: bool) -> Result<PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::query_field(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        Ok(PageRequest {
            limit,
            iterator: self.iterator.clone().filter(|i| !i.is_empty()),
            ascending: match self.order {
                Some(order) => order == Ordering::Ascending,
                None => default_ascending,
            },
            event_types: None,
        })
    }
}

/// Svix's list envelope.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListResponse<T> {
    pub data: Vec<T>,
    pub iterator: Option<String>,
    pub prev_iterator: Option<String>,
    pub done: bool,
}

impl<T> ListResponse<T> {
    /// Maps a store page to the wire envelope.
    pub fn from_page<U>(page: Page<U>, map: impl FnMut(U) -> T) -> Self {
        Self {
            data: page.items.into_iter().map(map).collect(),
            iterator: page.iterator,
            prev_iterator: page.prev_iterator,
            done: page.done,
        }
    }

    /// Pages an in-memory list already sorted oldest first by `id`.
    pub fn from_sorted<U>(
        items: Vec<U>,
        request: &PageRequest,
        id: impl Fn(&U) -> &str,
        map: impl FnMut(U) -> T,
    ) -> Self {
        let mut items = items;
        if !request.ascending {
            items.reverse();
        }
        let key_of = |item: &U| id(item).to_owned();
        // A `-` marks a `prevIterator`: the page before that item in this order.
        if let Some(before) = request
            .iterator
            .as_deref()
            .and_then(|i| i.strip_prefix('-'))
        {
            let end = items
                .iter()
                .position(|item| {
                    let key = id(item);
                    if request.ascending {
                        key >= before
                    } else {
                        key <= before
                    }
                })
                .unwrap_or(items.len());
            let start = end.saturating_sub(request.limit);
            let page: Vec<U> = items.into_iter().skip(start).take(end - start).collect();
            return Self {
                iterator: page.last().map(key_of).or(Some(before.to_owned())),
                prev_iterator: page.first().map(|item| format!("-{}", id(item))),
                data: page.into_iter().map(map).collect(),
                done: start == 0,
            };
        }
        let start = match &request.iterator {
            Some(after) => items
                .iter()
                .position(|item| {
                    let key = id(item);
                    if request.ascending {
                        key > after.as_str()
                    } else {
                        key < after.as_str()
                    }
                })
                .unwrap_or(items.len()),
            None => 0,
        };
        let rest: Vec<U> = items.into_iter().skip(start).collect();
        let more = rest.len() > request.limit;
        let page: Vec<U> = rest.into_iter().take(request.limit).collect();
        let iterator = if more { page.last().map(key_of) } else { None };
        let prev_iterator = page.first().map(|item| format!("-{}", id(item)));
        Self {
            data: page.into_iter().map(map).collect(),
            iterator,
            prev_iterator,
            done: !more,
        }
    }
}

/// The current time, truncated to milliseconds so stored and returned values agree.
pub fn now() -> OffsetDateTime {
    to_ms(OffsetDateTime::now_utc())
}

/// `time` truncated to whole milliseconds: the precision every timestamp is shown and
/// compared at, so a time an SDK read from an answer (JavaScript's `Date` holds
/// milliseconds) names the same instant when it is passed back as `before` or `after`.
pub fn to_ms(time: OffsetDateTime) -> OffsetDateTime {
    time.replace_nanosecond(time.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(time)
}

/// Unix milliseconds of `time` (ids are stamped with it).
pub fn unix_ms(time: OffsetDateTime) -> u64 {
    u64::try_from(time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`) in PATCH
/// bodies: `#[serde(default, deserialize_with = "nullable")]`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A value with a current and an older name on the wire (`throttleRate` and `rateLimit`,
/// `eventTypes` and `filterTypes`): the SDKs send either, so both are read, and documented;
/// sending both is accepted only when they agree.
pub fn either_name<T: PartialEq>(
    current: Option<T>,
    current_name: &str,
    older: Option<T>,
    older_name: &str,
) -> Result<Option<T>, ApiError> {
    match (current, older) {
        (Some(current), Some(older)) if current != older => Err(ApiError::field(
            current_name,
            format!("differs from `{older_name}`, its older name; send one of them"),
        )),
        (Some(current), _) => Ok(Some(current)),
        (None, older) => Ok(older),
    }
}

/// `…/endpoint/{endpoint_id}` (the scope extractors read `{app_id}`).
#[derive(Debug, Deserialize)]
pub struct EndpointPath {
    pub endpoint_id: String,
}

/// `…/msg/{msg_id}`.
#[derive(Debug, Deserialize)]
pub struct MsgPath {
    pub msg_id: String,
}

/// `…/msg/{msg_id}/endpoint/{endpoint_id}`.
#[derive(Debug, Deserialize)]
pub struct MsgEndpointPath {
    pub msg_id: String,
    pub endpoint_id: String,
}

/// `…/msg/{msg_id}/attempt/{attempt_id}`.
#[derive(Debug, Deserialize)]
pub struct AttemptPath {
    pub msg_id: String,
    pub attempt_id: String,
}

/// The message `msg_id` of the app, or 404.
/// Finds a message by its id or, as Svix allows, by its `eventId`. An `eventId` is found
/// through its idempotency record, so only while that is kept (`api.idempotency_ttl`).
pub async fn find_message(
    state: &ApiState,
    app_id: &str,
    msg_id_or_event_id: &str,
) -> Result<hookline_core::model::Message, ApiError> {
    let messages = state.messages();
    if let Some(message) = messages.get_message(app_id, msg_id_or_event_id).await? {
        return Ok(message);
    }
    #[derive(Deserialize)]
    struct Accepted {
        id: String,
    }
    let key = crate::intake::event_id_key(msg_id_or_event_id);
    let Some(response) = messages.idempotent_response(app_id, &key).await? else {
        return Err(ApiError::NotFound("message"));
    };
    let Ok(accepted) = serde_json::from_str::<Accepted>(&response) else {
        return Err(ApiError::NotFound("message"));
    };
    messages
        .get_message(app_id, &accepted.id)
        .await?
        .ok_or(ApiError::NotFound("message"))
}

/// Parses a list of names, reporting the index of the first bad one.
pub fn parse_names<T>(
    field: &str,
    values: Vec<String>,
    parse: impl Fn(String) -> Result<T, hookline_core::names::NameError>,
) -> Result<Vec<T>, ApiError> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| parse(v).map_err(|e| ApiError::field(&format!("{field}.{i}"), e.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_paging_walks_both_directions() {
        let items: Vec<String> = (1..=5).map(|i| format!("ep_{i}")).collect();
        let mut request = PageRequest {
            limit: 2,
            iterator: None,
            ascending: false,
            event_types: None,
        };
        let first = ListResponse::from_sorted(items.clone(), &request, |s| s, |s| s);
        assert_eq!(first.data, ["ep_5", "ep_4"]);
        assert!(!first.done);
        request.iterator = first.iterator.clone();
        let second = ListResponse::from_sorted(items.clone(), &request, |s| s, |s| s);
        assert_eq!(second.data, ["ep_3", "ep_2"]);
        request.iterator = second.iterator.clone();
        let third = ListResponse::from_sorted(items.clone(), &request, |s| s, |s| s);
        assert_eq!(third.data, ["ep_1"]);
        assert!(third.done);
        request.iterator = second.prev_iterator.clone();
        let back = ListResponse::from_sorted(items.clone(), &request, |s| s, |s| s);
        assert_eq!(back.data, first.data, "prevIterator reads the earlier page");
        assert_eq!(back.iterator, first.iterator);
        request = PageRequest {
            limit: 10,
            iterator: Some("ep_2".into()),
            ascending: true,
            event_types: None,
        };
        let ascending = ListResponse::from_sorted(items, &request, |s| s, |s| s);
        assert_eq!(ascending.data, ["ep_3", "ep_4", "ep_5"]);
        assert!(ascending.done);
    }
}
