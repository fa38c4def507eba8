//! Ordered (FIFO) endpoints: the rules of an endpoint's line.
//!
//! An endpoint with `fifo` set receives its messages in the order they joined its line,
//! the next only after the one before it was delivered or given up. Every message bound for
//! such an endpoint joins its line before its task is queued: at acceptance, after
//! everything that joined before it; a `deliverAt` message at its due time, so a message
//! scheduled for tomorrow holds nothing back today. Its task carries `in_line` and asks for
//! its turn before it calls the endpoint ([`Line::turn`]):
//!
//! - at the head of the line it goes ([`Turn::Go`]);
//! - behind the head it waits in the store with its task, holding no worker and no queue
//!   slot ([`Turn::Wait`]);
//! - no longer in the line (delivered or given up already, a redelivered duplicate) it is
//!   dropped ([`Turn::Gone`]): a duplicate can repeat only the head, never an earlier one.
//!
//! A message leaves the line when its delivery ends for the endpoint: delivered, or failed
//! with no attempt left (the blocking policy: a failing head holds the line back through
//! all its retries, then the line moves on). Leaving hands the new head's waiting task back
//! to be queued ([`Line::leave`]) and marks it handed, so a crash between the two leaves a
//! task that [`Line::stalled`] hands out again once `stale` has passed.
//!
//! [`Line`] is the reference: the embedded store keeps lines with it, and the Redis
//! scripts implement the same steps atomically on the app's hash slot.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::{DeliveryTask, MessageStatus};

/// A message joining an ordered endpoint's line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joining {
    pub app_id: String,
    pub endpoint_id: String,
    pub msg_id: String,
    /// A `deliverAt` in the future: the message takes its place at that time.
    pub due: Option<OffsetDateTime>,
}

/// A message whose delivery to an ordered endpoint ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Leaving {
    pub app_id: String,
    pub endpoint_id: String,
    pub msg_id: String,
}

impl Leaving {
    pub fn of(task: &DeliveryTask) -> Self {
        Self {
            app_id: task.app_id.clone(),
            endpoint_id: task.endpoint_id.clone(),
            msg_id: task.msg_id.clone(),
        }
    }
}

/// Whether a task of an ordered endpoint may call it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Its message heads the line.
    Go,
    /// A message ahead of it is not done; the task is kept with the line until its turn.
    Wait,
    /// Its message is not in the line (any more): nothing to do.
    Gone,
}

/// What an endpoint's line looks like, for the API and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineState {
    /// Messages in the line, the head included.
    pub length: u64,
    /// The message at the head: the one being delivered, or the one blocking the rest.
    pub head: Option<String>,
    /// Tasks waiting in the store for their turn.
    pub waiting: u64,
}

/// Whether a destination in `status` has left its endpoint's line: delivered, or failed
/// with nothing more to try. A pending one (a retry scheduled, a failed resend of a message
/// whose own retries go on) keeps its place.
pub fn leaves_line(status: MessageStatus) -> bool {
    matches!(status, MessageStatus::Success | MessageStatus::Fail)
}

/// The place (score, microseconds) of a message joining a line whose last unscheduled
/// place was `last`: after it, and no earlier than now, so places follow the order of
/// joining even across processes with different clocks. A message due later takes its due
/// time and leaves `last` alone. Answers the place and the line's new `last`.
pub fn place(last: Option<i64>, now_us: i64, due_us: Option<i64>) -> (i64, Option<i64>) {
    match due_us {
        Some(due) if due > now_us => (due, last),
        _ => {
            let at = last.map_or(now_us, |last| now_us.max(last.saturating_add(1)));
            (at, Some(at))
        }
    }
}

/// Microseconds since the epoch, the unit of places.
pub fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// Milliseconds since the epoch, the unit of waiting tasks' times.
pub fn millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// A task waiting for its turn.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Waiting {
    pub task: DeliveryTask,
    /// When it was handed back to be queued (unix ms); `None` until its turn came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handed_ms: Option<i64>,
}

impl Waiting {
    /// Whether the task should be handed out at `now_ms`: never handed, or handed so long
    /// ago (`stale_ms`) that whoever took it must have died before queueing it.
    pub fn due(&self, now_ms: i64, stale_ms: i64) -> bool {
        self.handed_ms
            .is_none_or(|handed| now_ms.saturating_sub(handed) >= stale_ms)
    }
}

/// One ordered endpoint's line, in memory.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Line {
    last: Option<i64>,
    order: BTreeSet<(i64, String)>,
    places: HashMap<String, i64>,
    waiting: HashMap<String, Waiting>,
}

impl Line {
    /// Adds `msg` at its place; a message already in the line keeps its place. Answers
    /// whether it joined.
    pub fn join(&mut self, msg: &str, now_us: i64, due_us: Option<i64>) -> bool {
        if self.places.contains_key(msg) {
            return false;
        }
        let (at, last) = place(self.last, now_us, due_us);
        self.last = last;
        self.places.insert(msg.to_owned(), at);
        self.order.insert((at, msg.to_owned()));
        true
    }

    /// The message at the head of the line.
    pub fn head(&self) -> Option<&str> {
        self.order.first().map(|(_, msg)| msg.as_str())
    }

    /// Whether `task` may go now; a task that must wait is kept (replacing an earlier copy
    /// of the same message's task, which it supersedes).
    pub fn turn(&mut self, task: &DeliveryTask) -> Turn {
        if !self.places.contains_key(&task.msg_id) {
            return Turn::Gone;
        }
        if self.head() == Some(task.msg_id.as_str()) {
            // Going now: nothing of it needs handing out any more.
            self.waiting.remove(&task.msg_id);
            return Turn::Go;
        }
        self.waiting.insert(
            task.msg_id.clone(),
            Waiting {
                task: task.clone(),
                handed_ms: None,
            },
        );
        Turn::Wait
    }

    /// Takes `msg` out of the line, wherever it is, and hands out the new head's task if it
    /// is waiting and not handed out already.
    pub fn leave(&mut self, msg: &str, now_ms: i64) -> Option<DeliveryTask> {
        if let Some(at) = self.places.remove(msg) {
            self.order.remove(&(at, msg.to_owned()));
        }
        self.waiting.remove(msg);
        self.hand_head(now_ms, i64::MAX)
    }

    /// The head's waiting task when it was never handed out or was handed out at least
    /// `stale_ms` ago; it is marked handed at `now_ms`.
    pub fn stalled(&mut self, now_ms: i64, stale_ms: i64) -> Option<DeliveryTask> {
        self.hand_head(now_ms, stale_ms)
    }

    fn hand_head(&mut self, now_ms: i64, stale_ms: i64) -> Option<DeliveryTask> {
        let head = self.order.first()?.1.clone();
        let waiting = self.waiting.get_mut(&head)?;
        if !waiting.due(now_ms, stale_ms) {
            return None;
        }
        waiting.handed_ms = Some(now_ms);
        Some(waiting.task.clone())
    }

    pub fn state(&self) -> LineState {
        LineState {
            length: self.order.len() as u64,
            head: self.head().map(str::to_owned),
            waiting: self.waiting.len() as u64,
        }
    }

    /// Nothing in line and nothing waiting: the line can be forgotten.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty() && self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::TriggerType;

    fn task(msg: &str) -> DeliveryTask {
        DeliveryTask {
            msg_id: msg.into(),
            app_id: "app_1".into(),
            endpoint_id: "ep_1".into(),
            attempt: 1,
            trigger: TriggerType::Scheduled,
            event_type: "invoice.paid".into(),
            payload: None,
            traceparent: None,
            rate_slot: false,
            app_slot: false,
            held_since_ms: None,
            endpoint_version: None,
            queued_at_ms: None,
            in_line: true,
        }
    }

    #[test]
    fn places_follow_joining_even_when_the_clock_goes_back() {
        assert_eq!(place(None, 100, None), (100, Some(100)));
        assert_eq!(place(Some(100), 100, None), (101, Some(101)));
        assert_eq!(place(Some(500), 100, None), (501, Some(501)));
        // Due later: its own time, and the next message still follows the last one.
        assert_eq!(place(Some(500), 100, Some(9_000)), (9_000, Some(500)));
        // Due already: an ordinary join.
        assert_eq!(place(Some(500), 600, Some(10)), (600, Some(600)));
    }

    #[test]
    fn only_the_head_goes_and_leaving_hands_out_the_next_waiting_task_once() {
        let mut line = Line::default();
        for (at, msg) in ["m1", "m2", "m3"].into_iter().enumerate() {
            assert!(line.join(msg, 10 + at as i64, None));
        }
        assert!(!line.join("m1", 99, None), "a message keeps its place");
        assert_eq!(line.turn(&task("m3")), Turn::Wait);
        assert_eq!(line.turn(&task("m2")), Turn::Wait);
        assert_eq!(line.turn(&task("m1")), Turn::Go);
        assert_eq!(line.state().waiting, 2);
        assert_eq!(line.leave("m1", 1_000).map(|t| t.msg_id), Some("m2".into()));
        // Handed once: not again until it is stale.
        assert!(line.stalled(1_001, 30_000).is_none());
        assert_eq!(
            line.stalled(31_000, 30_000).map(|t| t.msg_id),
            Some("m2".into())
        );
        assert_eq!(line.turn(&task("m2")), Turn::Go);
        assert_eq!(line.leave("m2", 2_000).map(|t| t.msg_id), Some("m3".into()));
        assert_eq!(
            line.turn(&task("m1")),
            Turn::Gone,
            "a duplicate of the past"
        );
        assert_eq!(line.turn(&task("m3")), Turn::Go);
        assert!(line.leave("m3", 3_000).is_none());
        assert!(line.is_empty());
    }

    #[test]
    fn a_message_removed_from_the_middle_or_a_stalled_head_never_blocks() {
        let mut line = Line::default();
        for (at, msg) in ["m1", "m2", "m3"].into_iter().enumerate() {
            line.join(msg, at as i64, None);
        }
        assert_eq!(line.turn(&task("m3")), Turn::Wait);
        assert!(line.leave("m2", 5).is_none(), "m1 still heads");
        assert_eq!(line.leave("m1", 6).map(|t| t.msg_id), Some("m3".into()));
        // The head waits but was never handed (a leave was lost): stalled hands it.
        let mut line = Line::default();
        line.join("a", 1, None);
        line.join("b", 2, None);
        assert_eq!(line.turn(&task("b")), Turn::Wait);
        line.places.remove("a");
        line.order.remove(&(1, "a".into()));
        assert_eq!(line.stalled(10, 30_000).map(|t| t.msg_id), Some("b".into()));
    }

    #[test]
    fn a_scheduled_message_takes_its_place_at_its_due_time() {
        let mut line = Line::default();
        line.join("early", 100, None);
        line.join("tomorrow", 200, Some(1_000_000));
        line.join("later", 300, None);
        assert_eq!(line.head(), Some("early"));
        line.leave("early", 1);
        assert_eq!(
            line.head(),
            Some("later"),
            "the scheduled one is not due yet"
        );
        line.leave("later", 2);
        assert_eq!(line.head(), Some("tomorrow"));
        line.join("after", 2_000_000, None);
        assert_eq!(line.head(), Some("tomorrow"));
    }

    #[test]
    fn leaving_follows_the_destination_state() {
        assert!(leaves_line(MessageStatus::Success));
        assert!(leaves_line(MessageStatus::Fail));
        assert!(!leaves_line(MessageStatus::Pending));
        assert!(!leaves_line(MessageStatus::Sending));
    }
}
