//! Filtered, two-way paging over a store's id-ordered listings.
//!
//! Svix marks the `prevIterator` it returns with a leading `-`: passing it back as `iterator`
//! reads the page that comes *before* that item in the listing's order. The stores page one
//! way from an exclusive id, so a backwards page is read in the opposite store order and
//! turned around. Filters the stores have no index for are applied here, a store page at a
//! time, until the page is full or the listing ends.

use std::collections::BTreeSet;

use hookline_core::id;
use hookline_core::model::MessageStatus;
use hookline_core::ports::PageRequest;
use serde::Deserialize;
use time::OffsetDateTime;

use super::common::{unix_ms, ListQuery, ListResponse};
use crate::error::ApiError;

/// Store items read per round trip when a filter may skip some.
const STORE_PAGE: usize = 250;

/// The page a client asked for.
#[derive(Debug, Clone)]
pub struct Paging {
    pub limit: usize,
    /// The item to continue from (exclusive), without the `-` mark.
    pub iterator: Option<String>,
    /// The listing's order as shown.
    pub ascending: bool,
    /// The iterator was a `prevIterator`: read the page before it.
    pub backwards: bool,
}

impl Paging {
    /// Reads `limit`, `iterator` and `order`; an iterator starting with `-` pages backwards.
    pub fn from_query(query: &ListQuery, default_ascending: bool) -> Result<Self, ApiError> {
        let request = query.page_request(default_ascending)?;
        let (iterator, backwards) = match request.iterator {
            Some(it) => match it.strip_prefix('-') {
                Some(rest) if !rest.is_empty() => (Some(rest.to_owned()), true),
                Some(_) => (None, false),
                None => (Some(it), false),
            },
            None => (None, false),
        };
        Ok(Self {
            limit: request.limit,
            iterator,
            ascending: request.ascending,
            backwards,
        })
    }

    /// Whether the store is read oldest first.
    pub fn store_ascending(&self) -> bool {
        self.ascending != self.backwards
    }
}

/// What a filter says about one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    Skip,
    /// This item and every later one in store order are out of range: the listing ends.
    Stop,
}

/// Collects one page from successive store pages.
pub struct Pager<T> {
    paging: Paging,
    found: Vec<T>,
    next: Option<String>,
    started: bool,
    finished: bool,
    more: bool,
    /// Items read per store request.
    store_limit: usize,
    /// The event types asked for, passed to the store as a hint it may use on an index.
    event_types: Option<Vec<String>>,
}

impl<T> Pager<T> {
    /// `filtered`: whether a filter may skip items (then the store is read in larger pages).
    pub fn new(paging: Paging, filtered: bool) -> Self {
        let store_limit = if filtered { STORE_PAGE } else { paging.limit };
        Self {
            next: paging.iterator.clone(),
            paging,
            found: Vec::new(),
            started: false,
            finished: false,
            more: false,
            store_limit,
            event_types: None,
        }
    }

    /// Tells the store only these event types are wanted (the caller still filters).
    pub fn narrow_to_event_types(&mut self, types: Option<Vec<String>>) {
        self.event_types = types.filter(|t| !t.is_empty());
    }

    pub fn paging(&self) -> &Paging {
        &self.paging
    }

    /// Starts the store walk at `bound` instead when that is further along than the iterator
    /// (a time range's edge turned into an id), so a range does not read what it excludes.
    pub fn skip_to(&mut self, bound: Option<String>) {
        let Some(bound) = bound else { return };
        let ascending = self.paging.store_ascending();
        let further = match &self.next {
            None => true,
            Some(current) if ascending => bound > *current,
            Some(current) => bound < *current,
        };
        if further {
            self.next = Some(bound);
        }
    }

    /// The next store request, or `None` once the page is complete.
    pub fn next_request(&mut self) -> Option<PageRequest> {
        if self.finished || (self.started && self.next.is_none()) {
            return None;
        }
        self.started = true;
        Some(PageRequest {
            limit: self.store_limit,
            iterator: self.next.clone(),
            ascending: self.paging.store_ascending(),
            event_types: self.event_types.clone(),
        })
    }

    /// Takes one store page, its items judged in store order.
    pub fn take(&mut self, judged: Vec<(T, Verdict)>, iterator: Option<String>, done: bool) {
        let count = judged.len();
        for (index, (item, verdict)) in judged.into_iter().enumerate() {
            match verdict {
                Verdict::Stop => {
                    self.finish(false);
                    return;
                }
                Verdict::Skip => {}
                Verdict::Keep => {
                    self.found.push(item);
                    if self.found.len() >= self.paging.limit {
                        self.finish(index + 1 < count || !done);
                        return;
                    }
                }
            }
        }
        match iterator {
            Some(next) if !done => self.next = Some(next),
            _ => self.finish(false),
        }
    }

    fn finish(&mut self, more: bool) {
        self.finished = true;
        self.more = more;
        self.next = None;
    }

    /// The page in the listing's order, with iterators both ways.
    pub fn into_response<U>(
        self,
        id: impl Fn(&T) -> &str,
        map: impl FnMut(T) -> U,
    ) -> ListResponse<U> {
        let mut items = self.found;
        if self.paging.backwards {
            items.reverse();
        }
        let first = items.first().map(|item| id(item).to_owned());
        let last = items.last().map(|item| id(item).to_owned());
        let iterator = if self.paging.backwards {
            // Forwards from here is where the client came from: always there.
            last.or(self.paging.iterator.clone())
        } else if self.more {
            last
        } else {
            None
        };
        let prev_iterator = first
            .or(self.paging.iterator.clone())
            .map(|id| format!("-{id}"));
        ListResponse {
            data: items.into_iter().map(map).collect(),
            iterator,
            prev_iterator,
            done: !self.more,
        }
    }
}

/// `before` / `after`: only items created in between (both exclusive).
#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TimeRange {
    /// Only include items created before this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub before: Option<OffsetDateTime>,
    /// Only include items created after this time (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub after: Option<OffsetDateTime>,
}

impl TimeRange {
    /// Compared at the millisecond precision times are shown at.
    pub fn contains(&self, at: OffsetDateTime) -> bool {
        let at = super::common::to_ms(at);
        self.before.is_none_or(|b| at < b) && self.after.is_none_or(|a| at > a)
    }

    pub fn is_set(&self) -> bool {
        self.before.is_some() || self.after.is_some()
    }

    /// For a listing whose ids sort by creation time: `Stop` once `at` has passed the edge
    /// the walk is heading for, `Skip` for the other side.
    pub fn verdict(&self, at: OffsetDateTime, store_ascending: bool) -> Verdict {
        let at = super::common::to_ms(at);
        if self.contains(at) {
            return Verdict::Keep;
        }
        let past_end = if store_ascending {
            self.before.is_some_and(|b| at >= b)
        } else {
            self.after.is_some_and(|a| at <= a)
        };
        if past_end {
            Verdict::Stop
        } else {
            Verdict::Skip
        }
    }

    /// The id (of `prefix`) to start a walk after, so that it skips what the range excludes.
    pub fn start_id(&self, prefix: &str, store_ascending: bool) -> Option<String> {
        if store_ascending {
            // Every id of the `after` millisecond sorts above this bound.
            self.after.map(|a| id::lower_bound(prefix, unix_ms(a)))
        } else {
            // Every id below the bound is from a millisecond wholly before `before`.
            self.before.map(|b| {
                let ms = unix_ms(b);
                let whole = b.unix_timestamp_nanos() % 1_000_000 == 0;
                id::lower_bound(prefix, if whole { ms } else { ms + 1 })
            })
        }
    }
}

/// Validates `before` < `after` is not asked for.
pub fn check_range(range: &TimeRange) -> Result<(), ApiError> {
    match (range.before, range.after) {
        (Some(before), Some(after)) if before <= after => {
            Err(ApiError::query_field("before", "must be later than after"))
        }
        _ => Ok(()),
    }
}

/// A `status` query value: a delivery state, or 4 (canceled), which Hookline never sets
/// (it cancels nothing) and so matches nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Is(MessageStatus),
    Canceled,
}

impl StatusFilter {
    /// Reads the Svix number: 0 success, 1 pending, 2 fail, 3 sending, 4 canceled.
    pub fn parse(code: Option<u8>) -> Result<Option<Self>, ApiError> {
        code.map(|code| match MessageStatus::from_code(code) {
            Some(status) => Ok(Self::Is(status)),
            None if code == 4 => Ok(Self::Canceled),
            None => Err(ApiError::query_field("status", "must be 0, 1, 2, 3 or 4")),
        })
        .transpose()
    }

    pub fn matches(self, status: MessageStatus) -> bool {
        self == Self::Is(status)
    }
}

/// `event_types`, as repeated keys or comma-separated (the SDKs join with commas).
pub fn event_type_set(values: &[String]) -> BTreeSet<String> {
    values
        .iter()
        .flat_map(|types| types.split(','))
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paging(iterator: Option<&str>) -> Paging {
        Paging::from_query(
            &ListQuery {
                limit: Some(2),
                iterator: iterator.map(str::to_owned),
                order: None,
            },
            false,
        )
        .expect("valid query")
    }

    /// Pages `items` (sorted oldest first) as a store would, through a `Pager`.
    fn read(items: &[&str], paging: Paging) -> ListResponse<String> {
        let mut pager = Pager::new(paging, true);
        while let Some(request) = pager.next_request() {
            let mut sorted: Vec<&str> = items.to_vec();
            if !request.ascending {
                sorted.reverse();
            }
            let rest: Vec<String> = sorted
                .into_iter()
                .filter(|id| match &request.iterator {
                    Some(after) if request.ascending => *id > after.as_str(),
                    Some(after) => *id < after.as_str(),
                    None => true,
                })
                .map(str::to_owned)
                .collect();
            let judged = rest.into_iter().map(|id| (id, Verdict::Keep)).collect();
            pager.take(judged, None, true);
        }
        pager.into_response(|s| s.as_str(), |s| s)
    }

    #[test]
    fn a_prev_iterator_reads_the_earlier_page_again() {
        let items = ["a", "b", "c", "d", "e"];
        let first = read(&items, paging(None));
        assert_eq!(first.data, ["e", "d"]);
        let second = read(&items, paging(first.iterator.as_deref()));
        assert_eq!(second.data, ["c", "b"]);
        assert_eq!(second.prev_iterator.as_deref(), Some("-c"));
        let back = read(&items, paging(second.prev_iterator.as_deref()));
        assert_eq!(back.data, first.data);
        assert_eq!(back.iterator, first.iterator);
        assert!(back.done, "nothing is newer than the first page");
    }
}
