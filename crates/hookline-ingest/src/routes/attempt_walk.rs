//! Walking an endpoint's attempt log newest first, a store page at a time: shared by the
//! filtered attempt list, the stats and the activity summary, which all read more of the log
//! than one page.

use std::ops::ControlFlow;

use hookline_core::model::Attempt;
use hookline_core::ports::PageRequest;

use crate::error::ApiError;
use crate::state::ApiState;

/// Attempts read from the store per round trip.
const STORE_PAGE: usize = 250;

/// Where a walk stopped.
#[derive(Debug, Default)]
pub struct WalkEnd {
    /// The last attempt handed to the visitor: the iterator to continue after it.
    pub last_id: Option<String>,
    /// The log ended before the visitor asked to stop.
    pub exhausted: bool,
}

/// Hands the endpoint's attempts, newest first and starting after `after`, to `visit` until
/// it breaks or the log ends.
pub async fn newest_first(
    state: &ApiState,
    app_id: &str,
    endpoint_id: &str,
    after: Option<String>,
    mut visit: impl FnMut(&Attempt) -> ControlFlow<()>,
) -> Result<WalkEnd, ApiError> {
    let mut end = WalkEnd::default();
    let mut iterator = after;
    loop {
        let request = PageRequest {
            limit: STORE_PAGE,
            iterator: iterator.take(),
            ascending: false,
            event_types: None,
        };
        let page = state
            .attempts()
            .attempts_by_endpoint(app_id, endpoint_id, &request)
            .await?;
        for attempt in &page.items {
            end.last_id = Some(attempt.id.clone());
            if visit(attempt).is_break() {
                return Ok(end);
            }
        }
        match page.iterator {
            Some(next) if !page.done => iterator = Some(next),
            _ => {
                end.exhausted = true;
                return Ok(end);
            }
        }
    }
}
