//! The backlog: how many deliveries are pending, per app and per endpoint, and how long the
//! oldest of them has waited, without a metric label per app.
//!
//! A delivery task is *pending* from the moment ingest accepts it (one per message ×
//! endpoint) until its delivery concludes: it succeeded, was given up (exhausted), or was
//! dropped because its endpoint or message is gone. A failed attempt with a retry
//! scheduled, a deferral to a rate-limit slot and a hold behind an open circuit leave it
//! pending. Only tasks of [`TriggerType::Scheduled`] count: a person's resend or an example
//! is not part of anyone's backlog.
//!
//! Counting happens off the hot path. Each process keeps a [`Tally`] in memory (`+1` per
//! accepted task, `-1` per concluded one, and the oldest `queued_at_ms` among the tasks its
//! dispatcher took) and adds it to the store once per flush interval as a [`TallyBatch`],
//! through [`crate::ports::BacklogLedger::add`]. The store keeps one [`Balance`] per app and per
//! (app, endpoint); [`Balance::apply`] is the rule both stores follow (Redis in a Lua
//! script, the embedded store through [`Ledger`]).
//!
//! The *frontier* of a key is the `queued_at_ms` of the last task of that key a dispatcher
//! took (per flush: the oldest one it took in that interval), and its age is `now -
//! frontier`: while a key's tasks flow, how long its tasks waited in the queue before a
//! dispatcher reached them; while none is taken (all in flight at a receiver that does not
//! answer, or waiting out a retry's backoff), how long since one last was. A key that is
//! pending but none of whose tasks was taken yet ages from when it was first counted
//! pending. Several dispatchers share one queue and take from around the same place, so
//! the last flush to land sets a frontier within about one flush interval (plus the
//! broker's prefetch) of the others'. A task that goes back to the queue (a retry, a
//! deferral, a hold) is queued afresh, so its age counts from then.
//!
//! Balances may go negative for a moment: a dispatcher's flush can land before the flush of
//! the ingest process that accepted the same tasks. A negative balance is kept (not shown,
//! not counted) so the late `+n` cancels it; one still negative after
//! [`NEGATIVE_GRACE_MS`] came from a tally that was lost (a crashed process, a restart of
//! the embedded store) and is dropped. So the view is off by at most what a crashed
//! process tallied in its last interval.

use std::collections::{HashMap, VecDeque};

use crate::model::{DeliveryTask, TriggerType};

/// How often a process adds its tally to the store unless configured otherwise.
pub const DEFAULT_FLUSH_INTERVAL_MS: u64 = 1_000;

/// How long a negative balance waits for the flush that cancels it before it is dropped.
pub const NEGATIVE_GRACE_MS: i64 = 5 * 60 * 1_000;

/// How long a store remembers a recorded batch's id, so that recording it again (a retry
/// after a timeout that did write) counts it once.
pub const BATCH_MEMORY_MS: i64 = 10 * 60 * 1_000;

/// Most apps and endpoints a view lists.
pub const MAX_LIMIT: usize = 100;

/// What one process saw of one (app, endpoint) during an interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    /// Accepted minus concluded.
    delta: i64,
    /// The oldest `queued_at_ms` among the tasks taken.
    oldest_taken_ms: Option<i64>,
    /// The oldest `queued_at_ms` among the tasks accepted.
    first_added_ms: Option<i64>,
}

impl Counts {
    fn merge(&mut self, other: Counts) {
        self.delta = self.delta.saturating_add(other.delta);
        self.oldest_taken_ms = earliest(self.oldest_taken_ms, other.oldest_taken_ms);
        self.first_added_ms = earliest(self.first_added_ms, other.first_added_ms);
    }
}

fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// One process's counts since its last flush. Memory grows with the (app, endpoint) pairs
/// active in one interval, not with the tasks.
#[derive(Debug, Default)]
pub struct Tally {
    /// app id → endpoint id → counts.
    apps: HashMap<String, HashMap<String, Counts>>,
}

impl Tally {
    /// Ingest accepted `task` (stored and queued or scheduled).
    pub fn accepted(&mut self, task: &DeliveryTask) {
        if counted(task) {
            self.update(&task.app_id, &task.endpoint_id, |counts| {
                counts.delta = counts.delta.saturating_add(1);
                counts.first_added_ms = earliest(counts.first_added_ms, task.queued_at_ms);
            });
        }
    }

    /// A dispatcher took `task` from the queue.
    pub fn taken(&mut self, task: &DeliveryTask) {
        if counted(task) && task.queued_at_ms.is_some() {
            self.update(&task.app_id, &task.endpoint_id, |counts| {
                counts.oldest_taken_ms = earliest(counts.oldest_taken_ms, task.queued_at_ms);
            });
        }
    }

    /// A dispatcher settled `task` for good (delivered, given up or dropped).
    pub fn concluded(&mut self, task: &DeliveryTask) {
        if counted(task) {
            self.update(&task.app_id, &task.endpoint_id, |counts| {
                counts.delta = counts.delta.saturating_sub(1);
            });
        }
    }

    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// Everything counted so far, as one batch named `id`, per endpoint and summed per app;
    /// the tally starts again empty.
    pub fn drain(&mut self, id: String) -> TallyBatch {
        let mut changes = Vec::new();
        for (app_id, endpoints) in std::mem::take(&mut self.apps) {
            let mut app = Counts::default();
            for (endpoint_id, counts) in endpoints {
                app.merge(counts);
                changes.push(BacklogChange::of(app_id.clone(), Some(endpoint_id), counts));
            }
            changes.push(BacklogChange::of(app_id, None, app));
        }
        TallyBatch { id, changes }
    }

    /// Changes the counts of one pair; allocates its key only the first time it is seen in
    /// an interval.
    fn update(&mut self, app_id: &str, endpoint_id: &str, change: impl FnOnce(&mut Counts)) {
        if let Some(counts) = self
            .apps
            .get_mut(app_id)
            .and_then(|endpoints| endpoints.get_mut(endpoint_id))
        {
            change(counts);
            return;
        }
        let mut counts = Counts::default();
        change(&mut counts);
        match self.apps.get_mut(app_id) {
            Some(endpoints) => {
                endpoints.insert(endpoint_id.to_owned(), counts);
            }
            None => {
                let endpoints = HashMap::from([(endpoint_id.to_owned(), counts)]);
                self.apps.insert(app_id.to_owned(), endpoints);
            }
        }
    }
}

fn counted(task: &DeliveryTask) -> bool {
    task.trigger == TriggerType::Scheduled
}

/// A [`Tally`] shared by the roles of one process (ingest counts into it, the dispatcher
/// too, the flusher drains it). Cheap to clone; every call holds its lock for a map
/// update only.
#[derive(Debug, Clone, Default)]
pub struct SharedTally(std::sync::Arc<std::sync::Mutex<Tally>>);

impl SharedTally {
    /// [`Tally::accepted`] for each of `tasks`.
    pub fn accepted(&self, tasks: &[DeliveryTask]) {
        let mut tally = self.lock();
        for task in tasks {
            tally.accepted(task);
        }
    }

    pub fn taken(&self, task: &DeliveryTask) {
        self.lock().taken(task);
    }

    pub fn concluded(&self, task: &DeliveryTask) {
        self.lock().concluded(task);
    }

    /// [`Tally::drain`], or `None` when nothing was counted.
    pub fn drain(&self, id: impl FnOnce() -> String) -> Option<TallyBatch> {
        let mut tally = self.lock();
        (!tally.is_empty()).then(|| tally.drain(id()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What one key (an app, or an app's endpoint) changed by in one process's interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BacklogChange {
    pub app_id: String,
    /// `None`: the app's own key (the sum over its endpoints).
    pub endpoint_id: Option<String>,
    /// Tasks accepted minus tasks concluded.
    pub delta: i64,
    /// The oldest `queued_at_ms` among the tasks taken: the key's new frontier.
    pub oldest_taken_ms: Option<i64>,
    /// The oldest `queued_at_ms` among the tasks accepted: when a key that was not pending
    /// became so.
    pub first_added_ms: Option<i64>,
}

impl BacklogChange {
    fn of(app_id: String, endpoint_id: Option<String>, counts: Counts) -> Self {
        Self {
            app_id,
            endpoint_id,
            delta: counts.delta,
            oldest_taken_ms: counts.oldest_taken_ms,
            first_added_ms: counts.first_added_ms,
        }
    }
}

/// One flush of one process: what [`crate::ports::BacklogLedger::add`] adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TallyBatch {
    /// Unique per flush: recording the same batch twice counts it once.
    pub id: String,
    pub changes: Vec<BacklogChange>,
}

/// One key as the store keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    /// Tasks pending; negative while a flush that cancels it has not landed yet.
    pub pending: i64,
    /// While pending: the `queued_at_ms` of the last task taken, or when the key was first
    /// counted pending.
    pub frontier_ms: Option<i64>,
    /// While negative: since when.
    pub negative_since_ms: Option<i64>,
}

impl Balance {
    /// The rule both stores apply: `old` (if the key is kept) after `change` at `now_ms`;
    /// `None` when the key is to be forgotten (nothing pending).
    pub fn apply(old: Option<Balance>, change: &BacklogChange, now_ms: i64) -> Option<Balance> {
        let old = old.unwrap_or_default();
        let pending = old.pending.saturating_add(change.delta);
        if pending == 0 {
            return None;
        }
        if pending < 0 {
            return Some(Balance {
                pending,
                frontier_ms: None,
                negative_since_ms: Some(old.negative_since_ms.unwrap_or(now_ms)),
            });
        }
        let kept = old.frontier_ms.filter(|_| old.pending > 0);
        let frontier = change
            .oldest_taken_ms
            .or(kept)
            .or(change.first_added_ms)
            .unwrap_or(now_ms);
        Some(Balance {
            pending,
            frontier_ms: Some(frontier),
            negative_since_ms: None,
        })
    }

    /// A negative balance nothing cancelled within [`NEGATIVE_GRACE_MS`]: drop it.
    pub fn expired(&self, now_ms: i64) -> bool {
        self.negative_since_ms
            .is_some_and(|since| since <= now_ms.saturating_sub(NEGATIVE_GRACE_MS))
    }

    /// How long the key has waited at `now_ms`, if it is pending.
    pub fn age_ms(&self, now_ms: i64) -> Option<u64> {
        if self.pending <= 0 {
            return None;
        }
        self.frontier_ms.map(|frontier| age_ms(frontier, now_ms))
    }
}

/// `now_ms - frontier_ms`, never negative (clocks of different hosts differ a little).
pub fn age_ms(frontier_ms: i64, now_ms: i64) -> u64 {
    u64::try_from(now_ms.saturating_sub(frontier_ms)).unwrap_or(0)
}

/// The backlog overall and its busiest apps and endpoints, by pending descending.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BacklogView {
    /// Tasks pending over every app.
    pub pending: u64,
    /// The oldest age over every pending app and endpoint; `None` when nothing is pending.
    pub oldest_pending_age_ms: Option<u64>,
    pub apps: Vec<AppBacklog>,
    pub endpoints: Vec<EndpointBacklog>,
}

/// One app in a [`BacklogView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppBacklog {
    pub app_id: String,
    pub pending: u64,
    pub oldest_pending_age_ms: u64,
}

/// One endpoint in a [`BacklogView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointBacklog {
    pub app_id: String,
    pub endpoint_id: String,
    pub pending: u64,
    pub oldest_pending_age_ms: u64,
}

/// The store side in memory: every key's [`Balance`], for a store that lives in the same
/// process as every role (embedded mode), and as the reference the Redis script follows.
#[derive(Debug, Default)]
pub struct Ledger {
    apps: HashMap<String, Balance>,
    endpoints: HashMap<(String, String), Balance>,
    /// Ids of batches recorded within [`BATCH_MEMORY_MS`], oldest first.
    recorded: VecDeque<(i64, String)>,
}

impl Ledger {
    /// Adds `batch` at `now_ms` unless it was recorded already; drops negative balances
    /// past their grace.
    pub fn add(&mut self, batch: &TallyBatch, now_ms: i64) {
        while self
            .recorded
            .front()
            .is_some_and(|(at, _)| *at <= now_ms.saturating_sub(BATCH_MEMORY_MS))
        {
            self.recorded.pop_front();
        }
        if self.recorded.iter().any(|(_, id)| *id == batch.id) {
            return;
        }
        self.recorded.push_back((now_ms, batch.id.clone()));
        for change in &batch.changes {
            match &change.endpoint_id {
                None => apply_to(&mut self.apps, change.app_id.clone(), change, now_ms),
                Some(endpoint_id) => {
                    let key = (change.app_id.clone(), endpoint_id.clone());
                    apply_to(&mut self.endpoints, key, change, now_ms);
                }
            }
        }
        self.apps.retain(|_, balance| !balance.expired(now_ms));
        self.endpoints.retain(|_, balance| !balance.expired(now_ms));
    }

    /// The totals and the `limit` busiest apps and endpoints at `now_ms`. Reads every key
    /// once: fine for one process's apps, read a few times a minute.
    pub fn busiest(&self, limit: usize, now_ms: i64) -> BacklogView {
        let mut oldest: Option<u64> = None;
        let mut pending: u64 = 0;
        let mut apps = Vec::new();
        for (app_id, balance) in &self.apps {
            let Some(age) = balance.age_ms(now_ms) else {
                continue;
            };
            let count = u64::try_from(balance.pending).unwrap_or(0);
            pending = pending.saturating_add(count);
            oldest = oldest.max(Some(age));
            apps.push(AppBacklog {
                app_id: app_id.clone(),
                pending: count,
                oldest_pending_age_ms: age,
            });
        }
        let mut endpoints = Vec::new();
        for ((app_id, endpoint_id), balance) in &self.endpoints {
            let Some(age) = balance.age_ms(now_ms) else {
                continue;
            };
            oldest = oldest.max(Some(age));
            endpoints.push(EndpointBacklog {
                app_id: app_id.clone(),
                endpoint_id: endpoint_id.clone(),
                pending: u64::try_from(balance.pending).unwrap_or(0),
                oldest_pending_age_ms: age,
            });
        }
        busiest_first(&mut apps, limit, |a, b| {
            (b.pending, &b.app_id).cmp(&(a.pending, &a.app_id))
        });
        busiest_first(&mut endpoints, limit, |a, b| {
            (b.pending, &b.app_id, &b.endpoint_id).cmp(&(a.pending, &a.app_id, &a.endpoint_id))
        });
        BacklogView {
            pending,
            oldest_pending_age_ms: oldest,
            apps,
            endpoints,
        }
    }
}

fn apply_to<K: std::hash::Hash + Eq>(
    balances: &mut HashMap<K, Balance>,
    key: K,
    change: &BacklogChange,
    now_ms: i64,
) {
    match Balance::apply(balances.get(&key).copied(), change, now_ms) {
        Some(balance) => {
            balances.insert(key, balance);
        }
        None => {
            balances.remove(&key);
        }
    }
}

/// Keeps the `limit` first items in `order` (most pending first; ties: the larger key
/// first, as a Redis sorted set read in reverse orders them), in that order.
fn busiest_first<T>(
    items: &mut Vec<T>,
    limit: usize,
    order: impl Fn(&T, &T) -> std::cmp::Ordering + Copy,
) {
    if limit == 0 {
        items.clear();
        return;
    }
    if items.len() > limit {
        items.select_nth_unstable_by(limit - 1, order);
        items.truncate(limit);
    }
    items.sort_unstable_by(order);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(app: &str, endpoint: &str, queued_at_ms: Option<i64>) -> DeliveryTask {
        DeliveryTask {
            msg_id: "msg_1".into(),
            app_id: app.into(),
            endpoint_id: endpoint.into(),
            attempt: 1,
            trigger: TriggerType::Scheduled,
            event_type: String::new(),
            payload: None,
            traceparent: None,
            rate_slot: false,
            app_slot: false,
            held_since_ms: None,
            endpoint_version: None,
            queued_at_ms,
            in_line: false,
        }
    }

    fn change(app: &str, endpoint: Option<&str>, delta: i64) -> BacklogChange {
        BacklogChange {
            app_id: app.into(),
            endpoint_id: endpoint.map(str::to_owned),
            delta,
            oldest_taken_ms: None,
            first_added_ms: None,
        }
    }

    fn sorted(mut batch: TallyBatch) -> Vec<BacklogChange> {
        batch
            .changes
            .sort_by(|a, b| (&a.app_id, &a.endpoint_id).cmp(&(&b.app_id, &b.endpoint_id)));
        batch.changes
    }

    #[test]
    fn a_tally_sums_per_endpoint_and_per_app_and_keeps_the_oldest_times() {
        let mut tally = Tally::default();
        tally.accepted(&task("app_a", "ep_1", Some(100)));
        tally.accepted(&task("app_a", "ep_1", Some(90)));
        tally.accepted(&task("app_a", "ep_2", Some(95)));
        tally.taken(&task("app_a", "ep_1", Some(50)));
        tally.taken(&task("app_a", "ep_1", Some(70)));
        tally.taken(&task("app_a", "ep_2", Some(40)));
        tally.concluded(&task("app_a", "ep_2", Some(40)));
        tally.concluded(&task("app_b", "ep_3", None));
        let changes = sorted(tally.drain("b1".into()));
        let expected = [
            ("app_a", None, 2, Some(40), Some(90)),
            ("app_a", Some("ep_1"), 2, Some(50), Some(90)),
            ("app_a", Some("ep_2"), 0, Some(40), Some(95)),
            ("app_b", None, -1, None, None),
            ("app_b", Some("ep_3"), -1, None, None),
        ];
        let got: Vec<_> = changes
            .iter()
            .map(|c| {
                (
                    c.app_id.as_str(),
                    c.endpoint_id.as_deref(),
                    c.delta,
                    c.oldest_taken_ms,
                    c.first_added_ms,
                )
            })
            .collect();
        assert_eq!(got, expected);
        assert!(tally.is_empty(), "a drain starts the tally again");
        assert!(tally.drain("b2".into()).changes.is_empty());
    }

    #[test]
    fn manual_tasks_and_takes_without_a_queue_time_count_for_nothing() {
        let mut tally = Tally::default();
        let manual = DeliveryTask {
            trigger: TriggerType::Manual,
            ..task("app_a", "ep_1", Some(10))
        };
        tally.accepted(&manual);
        tally.taken(&manual);
        tally.concluded(&manual);
        tally.taken(&task("app_a", "ep_1", None));
        assert!(tally.is_empty());
    }

    #[test]
    fn a_shared_tally_drains_only_when_something_was_counted() {
        let shared = SharedTally::default();
        assert!(shared.drain(|| "none".into()).is_none());
        shared.accepted(&[
            task("app_a", "ep_1", Some(5)),
            task("app_a", "ep_2", Some(6)),
        ]);
        let batch = shared.drain(|| "b1".into()).expect("counted");
        assert_eq!(batch.id, "b1");
        assert_eq!(batch.changes.len(), 3);
        assert!(shared.drain(|| "b2".into()).is_none());
    }

    #[test]
    fn balances_follow_the_rule() {
        let now = 1_000_000;
        let with = |delta, taken, added| BacklogChange {
            oldest_taken_ms: taken,
            first_added_ms: added,
            ..change("app_a", None, delta)
        };
        let pending = |pending, frontier| Balance {
            pending,
            frontier_ms: Some(frontier),
            negative_since_ms: None,
        };
        let negative = |pending, since| Balance {
            pending,
            frontier_ms: None,
            negative_since_ms: Some(since),
        };
        let table: [(&str, Option<Balance>, BacklogChange, Option<Balance>); 9] = [
            (
                "new key ages from its first accepted task",
                None,
                with(3, None, Some(900)),
                Some(pending(3, 900)),
            ),
            (
                "new key without a queue time ages from now",
                None,
                with(1, None, None),
                Some(pending(1, now)),
            ),
            (
                "a take moves the frontier",
                Some(pending(3, 900)),
                with(-1, Some(950), None),
                Some(pending(2, 950)),
            ),
            (
                "the last take wins, even an older one (a redelivery)",
                Some(pending(2, 950)),
                with(0, Some(800), None),
                Some(pending(2, 800)),
            ),
            (
                "no take keeps the frontier",
                Some(pending(2, 950)),
                with(5, None, Some(990)),
                Some(pending(7, 950)),
            ),
            (
                "zero forgets the key",
                Some(pending(2, 950)),
                with(-2, Some(960), None),
                None,
            ),
            (
                "below zero is kept as a debt",
                Some(pending(1, 950)),
                with(-3, None, None),
                Some(negative(-2, now)),
            ),
            (
                "a debt keeps its start",
                Some(negative(-2, 10)),
                with(-1, None, None),
                Some(negative(-3, 10)),
            ),
            (
                "a debt paid off into pending starts a new frontier",
                Some(negative(-2, 10)),
                with(5, None, Some(990)),
                Some(pending(3, 990)),
            ),
        ];
        for (case, old, change, expected) in table {
            assert_eq!(Balance::apply(old, &change, now), expected, "{case}");
        }
    }

    #[test]
    fn a_debt_expires_after_its_grace() {
        let debt = Balance {
            pending: -1,
            frontier_ms: None,
            negative_since_ms: Some(1_000),
        };
        assert!(!debt.expired(1_000 + NEGATIVE_GRACE_MS - 1));
        assert!(debt.expired(1_000 + NEGATIVE_GRACE_MS));
        assert_eq!(debt.age_ms(5_000), None);
    }

    fn batch(id: &str, changes: Vec<BacklogChange>) -> TallyBatch {
        TallyBatch {
            id: id.into(),
            changes,
        }
    }

    #[test]
    fn a_ledger_lists_the_busiest_first_with_their_ages() {
        let mut ledger = Ledger::default();
        let added = |app: &str, endpoint: Option<&str>, delta, at| BacklogChange {
            first_added_ms: Some(at),
            ..change(app, endpoint, delta)
        };
        ledger.add(
            &batch(
                "b1",
                vec![
                    added("app_a", None, 5, 100),
                    added("app_a", Some("ep_1"), 5, 100),
                    added("app_b", None, 9, 300),
                    added("app_b", Some("ep_2"), 2, 300),
                    added("app_b", Some("ep_3"), 7, 400),
                ],
            ),
            1_000,
        );
        let view = ledger.busiest(2, 1_000);
        assert_eq!(view.pending, 14);
        assert_eq!(view.oldest_pending_age_ms, Some(900));
        let apps: Vec<_> = view
            .apps
            .iter()
            .map(|a| (a.app_id.as_str(), a.pending, a.oldest_pending_age_ms))
            .collect();
        assert_eq!(apps, [("app_b", 9, 700), ("app_a", 5, 900)]);
        let endpoints: Vec<_> = view
            .endpoints
            .iter()
            .map(|e| (e.endpoint_id.as_str(), e.pending))
            .collect();
        assert_eq!(endpoints, [("ep_3", 7), ("ep_1", 5)], "two of three");
        assert_eq!(ledger.busiest(1, 1_000).apps.len(), 1);
    }

    #[test]
    fn a_ledger_counts_a_batch_once_and_forgets_an_old_debt() {
        let mut ledger = Ledger::default();
        let b1 = batch("b1", vec![change("app_a", None, 2)]);
        ledger.add(&b1, 1_000);
        ledger.add(&b1, 1_500);
        assert_eq!(ledger.busiest(10, 2_000).pending, 2, "b1 counted once");

        // A dispatcher's flush lands before the ingest flush it settles.
        ledger.add(&batch("b2", vec![change("app_b", None, -3)]), 2_000);
        assert_eq!(
            ledger.busiest(10, 2_000).apps.len(),
            1,
            "a debt is not shown"
        );
        ledger.add(&batch("b3", vec![change("app_b", None, 3)]), 2_500);
        assert_eq!(ledger.busiest(10, 2_500).pending, 2, "paid off: app_b gone");

        // An ingest process died with the +2: the debt is dropped after its grace.
        ledger.add(&batch("b4", vec![change("app_c", None, -2)]), 3_000);
        ledger.add(&batch("b5", vec![]), 3_000 + NEGATIVE_GRACE_MS);
        ledger.add(
            &batch("b6", vec![change("app_c", None, 1)]),
            3_001 + NEGATIVE_GRACE_MS,
        );
        let view = ledger.busiest(10, 3_001 + NEGATIVE_GRACE_MS);
        assert!(
            view.apps
                .iter()
                .any(|a| a.app_id == "app_c" && a.pending == 1),
            "new work after an expired debt counts from zero: {view:?}"
        );
    }
}
