//! The lines of ordered (FIFO) endpoints: the [`Sequencer`] port, step for step by the
//! rules of `hookline_core::fifo`, whose `Line` is the reference each method here mirrors.
//!
//! This process makes every change to the lines (as it does to endpoints and circuits), so
//! they are kept in memory ([`Lines`]), where a step is a few map operations (O(log n) in
//! the line's length), and written through, one row per change, to four tables that opening
//! the database reads back: `fifo_last` (a line's last unscheduled place), `fifo_places`
//! (each message's place), `fifo_waiting` and `fifo_handed` (the tasks waiting for their
//! turn, and when each was handed out).
//!
//! Atomicity: a step changes the lines under one lock and submits its write to the writer
//! thread before letting go of it ([`Db::submit`]). Steps take effect in memory one at a
//! time, so a task asking for its turn and the message ahead of it leaving cannot miss each
//! other (whichever comes second sees what the first did), and their writes reach the disk
//! in the same order, so the tables always hold a state the lines went through.
//!
//! Durability: `join` is durable before it returns (a 202 follows it). The other steps ride
//! on a later commit; see [`Sequencer::turn`] below for why that loses nothing.
//!
//! A write that fails leaves memory ahead of the disk. For every step but `join` that is
//! harmless: the caller hears the error and does not ack its task, which comes back and
//! repeats the step (and a database that can no longer write is reloaded from disk at the
//! restart it needs). A `join` that fails takes its messages out again, since no task will
//! ever come for them and they would hold their lines forever.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use hookline_core::fifo::{self, Joining, Leaving, LineState, Turn, Waiting};
use hookline_core::model::DeliveryTask;
use hookline_core::ports::{Sequencer, StoreError};
use redb::{ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction};
use time::OffsetDateTime;

use crate::db::{unavailable, Db, Durability, FIFO_HANDED, FIFO_LAST, FIFO_PLACES, FIFO_WAITING};
use crate::keys;
use crate::records::{decode, prefix_end};
use crate::EmbeddedStore;

#[async_trait]
impl Sequencer for EmbeddedStore {
    async fn join(&self, joining: &[Joining], now: OffsetDateTime) -> Result<(), StoreError> {
        if joining.is_empty() {
            return Ok(());
        }
        let now_us = fifo::micros(now);
        let mut joined = Vec::new();
        let written = {
            let mut lines = self.lines.lock();
            let mut changes = Vec::new();
            for j in joining {
                let line = keys::line(&j.app_id, &j.endpoint_id);
                let due_us = j.due.map(fifo::micros);
                let kept = lines.entry(line.clone()).or_default();
                if let Some(at) = kept.join(&line, &j.msg_id, now_us, due_us, &mut changes) {
                    joined.push((line, j.msg_id.clone(), at));
                }
            }
            // Durable even when every message was in its line already: the join that put it
            // there may not be on disk yet, and this commit follows it.
            self.db
                .submit(Durability::Immediate, move |txn| apply(txn, &changes))
        };
        if let Err(e) = written.await {
            self.lines.take_back(&joined);
            return Err(e);
        }
        Ok(())
    }

    /// Deferred durability, here and in `leave` and `stalled`: the caller acks its task (or
    /// queues the tasks handed out) only after this returns, and that ack or publish is a
    /// write to this same database, submitted after this one. redb commits in order, so a
    /// crash that loses this write loses that ack or publish too: a task answered `Wait` is
    /// still in the queue and asks again; a message whose leave was lost still heads its
    /// line, its task comes back, goes, and leaves again; a task handed out is unhanded on
    /// disk, and `stalled` hands it out. Lost work is repeated, never skipped.
    async fn turn(&self, task: &DeliveryTask) -> Result<Turn, StoreError> {
        let line = keys::line(&task.app_id, &task.endpoint_id);
        let (turn, written) = {
            let mut lines = self.lines.lock();
            let Some(kept) = lines.get_mut(&line) else {
                return Ok(Turn::Gone);
            };
            let mut changes = Vec::new();
            let turn = kept.turn(&line, task, &mut changes)?;
            (turn, self.write_through(changes))
        };
        if let Some(written) = written {
            written.await?;
        }
        Ok(turn)
    }

    async fn leave(
        &self,
        leaving: &[Leaving],
        now: OffsetDateTime,
    ) -> Result<Vec<DeliveryTask>, StoreError> {
        let now_ms = fifo::millis(now);
        let (handed, written) = {
            let mut lines = self.lines.lock();
            let mut changes = Vec::new();
            let mut handed = Vec::new();
            for l in leaving {
                let line = keys::line(&l.app_id, &l.endpoint_id);
                if let Some(kept) = lines.get_mut(&line) {
                    handed.extend(kept.leave(&line, &l.msg_id, now_ms, &mut changes));
                }
            }
            (handed, self.write_through(changes))
        };
        if let Some(written) = written {
            written.await?;
        }
        Ok(handed)
    }

    async fn stalled(
        &self,
        now: OffsetDateTime,
        stale: Duration,
        limit: usize,
    ) -> Result<Vec<DeliveryTask>, StoreError> {
        let now_ms = fifo::millis(now);
        let stale_ms = i64::try_from(stale.as_millis()).unwrap_or(i64::MAX);
        let (handed, written) = {
            let mut lines = self.lines.lock();
            let mut changes = Vec::new();
            let mut handed = Vec::new();
            lines.retain(|line, kept| {
                if kept.is_empty() {
                    // Nothing in it to order against: a later join starts it afresh.
                    changes.push(Change::Forget { line: line.clone() });
                    return false;
                }
                if handed.len() < limit {
                    handed.extend(kept.hand_head(line, now_ms, stale_ms, &mut changes));
                }
                true
            });
            (handed, self.write_through(changes))
        };
        if let Some(written) = written {
            written.await?;
        }
        Ok(handed)
    }

    async fn line(&self, app_id: &str, endpoint_id: &str) -> Result<LineState, StoreError> {
        let line = keys::line(app_id, endpoint_id);
        Ok(self
            .lines
            .lock()
            .get(&line)
            .map(Kept::state)
            .unwrap_or_default())
    }

    async fn remove_line(&self, app_id: &str, endpoint_id: &str) -> Result<(), StoreError> {
        let lines = LinesOf::Endpoint {
            app_id,
            endpoint_id,
        };
        self.forget_lines(lines, |_| Ok(())).await
    }
}

/// Which lines [`EmbeddedStore::forget_lines`] forgets.
pub(crate) enum LinesOf<'a> {
    Endpoint {
        app_id: &'a str,
        endpoint_id: &'a str,
    },
    App(&'a str),
}

impl EmbeddedStore {
    /// Forgets `which` lines in memory and submits their removal from disk, in one durable
    /// write with `also` (the deletion of their endpoint or app, so that neither outlives the
    /// other).
    pub(crate) fn forget_lines<F>(
        &self,
        which: LinesOf<'_>,
        mut also: F,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static
    where
        F: FnMut(&WriteTransaction) -> Result<(), StoreError> + Send + 'static,
    {
        let mut lines = self.lines.lock();
        let change = match which {
            LinesOf::Endpoint {
                app_id,
                endpoint_id,
            } => {
                let line = keys::line(app_id, endpoint_id);
                lines.remove(&line);
                Change::Forget { line }
            }
            LinesOf::App(app_id) => {
                let prefix = keys::lines_of_app(app_id);
                lines.retain(|line, _| !line.starts_with(&prefix));
                Change::ForgetAll { prefix }
            }
        };
        let changes = [change];
        self.db.submit(Durability::Immediate, move |txn| {
            also(txn)?;
            apply(txn, &changes)
        })
    }

    /// Submits `changes` (see [`Sequencer::turn`] for why deferred), if there are any.
    fn write_through(
        &self,
        changes: Vec<Change>,
    ) -> Option<impl Future<Output = Result<(), StoreError>> + Send + 'static> {
        (!changes.is_empty()).then(|| {
            self.db
                .submit(Durability::Deferred, move |txn| apply(txn, &changes))
        })
    }
}

/// Every line of this process, by line key ([`keys::line`]); lines found empty are dropped
/// by `stalled`.
#[derive(Default)]
pub(crate) struct Lines {
    kept: Mutex<HashMap<String, Kept>>,
}

impl Lines {
    /// The lines stored in `db`, read once when it is opened.
    pub(crate) fn load(db: &Db) -> Result<Self, StoreError> {
        let kept = db.read_blocking(|txn| {
            let mut kept: HashMap<String, Kept> = HashMap::new();
            each_row(txn, FIFO_PLACES, |key, at| {
                let (line, msg) = split(key)?;
                let line = kept.entry(line.to_owned()).or_default();
                line.places.insert(msg.to_owned(), at);
                line.order.insert((at, msg.to_owned()));
                Ok(())
            })?;
            each_row(txn, FIFO_LAST, |line, last| {
                kept.entry(line.to_owned()).or_default().last = Some(last);
                Ok(())
            })?;
            each_row(txn, FIFO_WAITING, |key, body| {
                let (line, msg) = split(key)?;
                let waiting = Waiting {
                    task: decode("waiting task", body)?,
                    handed_ms: None,
                };
                let line = kept.entry(line.to_owned()).or_default();
                line.waiting.insert(msg.to_owned(), waiting);
                Ok(())
            })?;
            each_row(txn, FIFO_HANDED, |key, at| {
                let (line, msg) = split(key)?;
                let waiting = kept.get_mut(line).and_then(|l| l.waiting.get_mut(msg));
                if let Some(waiting) = waiting {
                    waiting.handed_ms = Some(at);
                }
                Ok(())
            })?;
            Ok(kept)
        })?;
        Ok(Self {
            kept: Mutex::new(kept),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Kept>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes out the messages a failed `join` put in their lines (each at the place it
    /// got), as if they had left, without handing anything out: a head left waiting by it
    /// was never handed, which `stalled` hands out.
    fn take_back(&self, joined: &[(String, String, i64)]) {
        let mut lines = self.lock();
        for (line, msg, at) in joined {
            if let Some(kept) = lines.get_mut(line) {
                if kept.places.get(msg) == Some(at) {
                    kept.places.remove(msg);
                    kept.order.remove(&(*at, msg.clone()));
                    kept.waiting.remove(msg);
                }
            }
        }
    }
}

/// Calls `each` with every row of `table`, in key order.
fn each_row<V: redb::Value + 'static>(
    txn: &ReadTransaction,
    table: TableDefinition<'_, &'static str, V>,
    mut each: impl FnMut(&str, V::SelfType<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let table = txn.open_table(table).map_err(unavailable)?;
    for row in table.iter().map_err(unavailable)? {
        let (key, value) = row.map_err(unavailable)?;
        each(key.value(), value.value())?;
    }
    Ok(())
}

/// A line key and a message from a key of `fifo_places`, `fifo_waiting` or `fifo_handed`.
fn split(key: &str) -> Result<(&str, &str), StoreError> {
    key.rsplit_once('\0')
        .ok_or_else(|| StoreError::Corrupt(format!("fifo key without a message: {key:?}")))
}

/// One line in memory: the state of `hookline_core::fifo::Line`, whose steps each method
/// repeats, adding to `changes` the rows it changed so they can be written through.
#[derive(Debug, Default)]
struct Kept {
    last: Option<i64>,
    order: BTreeSet<(i64, String)>,
    places: HashMap<String, i64>,
    waiting: HashMap<String, Waiting>,
}

impl Kept {
    /// `Line::join`; answers the place `msg` took, `None` if it was in the line already.
    fn join(
        &mut self,
        line: &str,
        msg: &str,
        now_us: i64,
        due_us: Option<i64>,
        changes: &mut Vec<Change>,
    ) -> Option<i64> {
        if self.places.contains_key(msg) {
            return None;
        }
        let (at, last) = fifo::place(self.last, now_us, due_us);
        if let Some(last) = last.filter(|_| last != self.last) {
            changes.push(Change::Last {
                line: line.to_owned(),
                at: last,
            });
        }
        self.last = last;
        self.places.insert(msg.to_owned(), at);
        self.order.insert((at, msg.to_owned()));
        changes.push(Change::Place {
            member: keys::in_line(line, msg),
            at,
        });
        Some(at)
    }

    fn head(&self) -> Option<&str> {
        self.order.first().map(|(_, msg)| msg.as_str())
    }

    /// `Line::turn`.
    fn turn(
        &mut self,
        line: &str,
        task: &DeliveryTask,
        changes: &mut Vec<Change>,
    ) -> Result<Turn, StoreError> {
        let msg = task.msg_id.as_str();
        if !self.places.contains_key(msg) {
            return Ok(Turn::Gone);
        }
        let member = keys::in_line(line, msg);
        if self.head() == Some(msg) {
            if self.waiting.remove(msg).is_some() {
                changes.push(Change::Unwait { member });
            }
            return Ok(Turn::Go);
        }
        let body = crate::encode(task)?;
        let waiting = Waiting {
            task: task.clone(),
            handed_ms: None,
        };
        self.waiting.insert(msg.to_owned(), waiting);
        changes.push(Change::Wait { member, body });
        Ok(Turn::Wait)
    }

    /// `Line::leave`.
    fn leave(
        &mut self,
        line: &str,
        msg: &str,
        now_ms: i64,
        changes: &mut Vec<Change>,
    ) -> Option<DeliveryTask> {
        if let Some(at) = self.places.remove(msg) {
            self.order.remove(&(at, msg.to_owned()));
            changes.push(Change::Unplace {
                member: keys::in_line(line, msg),
            });
        }
        if self.waiting.remove(msg).is_some() {
            changes.push(Change::Unwait {
                member: keys::in_line(line, msg),
            });
        }
        self.hand_head(line, now_ms, i64::MAX, changes)
    }

    /// `Line::stalled` (with `stale_ms`), and the hand-out of `Line::leave` (without).
    fn hand_head(
        &mut self,
        line: &str,
        now_ms: i64,
        stale_ms: i64,
        changes: &mut Vec<Change>,
    ) -> Option<DeliveryTask> {
        let (_, head) = self.order.first()?;
        let waiting = self.waiting.get_mut(head)?;
        if !waiting.due(now_ms, stale_ms) {
            return None;
        }
        waiting.handed_ms = Some(now_ms);
        changes.push(Change::Handed {
            member: keys::in_line(line, head),
            at_ms: now_ms,
        });
        Some(waiting.task.clone())
    }

    fn state(&self) -> LineState {
        LineState {
            length: self.order.len() as u64,
            head: self.head().map(str::to_owned),
            waiting: self.waiting.len() as u64,
        }
    }

    fn is_empty(&self) -> bool {
        self.order.is_empty() && self.waiting.is_empty()
    }
}

/// A change to the stored lines; each sets or removes rows whatever they held, so applying
/// the changes of a step that failed earlier never depends on it.
#[derive(Debug)]
enum Change {
    /// A line's last unscheduled place.
    Last {
        line: String,
        at: i64,
    },
    /// A message's place (`member` is [`keys::in_line`]).
    Place {
        member: String,
        at: i64,
    },
    Unplace {
        member: String,
    },
    /// A task waiting, not handed out.
    Wait {
        member: String,
        body: Vec<u8>,
    },
    Handed {
        member: String,
        at_ms: i64,
    },
    Unwait {
        member: String,
    },
    /// Every row of one line.
    Forget {
        line: String,
    },
    /// Every row of the lines whose keys start with `prefix` (an app's).
    ForgetAll {
        prefix: String,
    },
}

type StrTable<'t, V> = Table<'t, &'static str, V>;

/// The four tables, opened for one write.
struct Tables<'t> {
    last: StrTable<'t, i64>,
    places: StrTable<'t, i64>,
    waiting: StrTable<'t, &'static [u8]>,
    handed: StrTable<'t, i64>,
}

fn apply(txn: &WriteTransaction, changes: &[Change]) -> Result<(), StoreError> {
    let mut t = Tables {
        last: txn.open_table(FIFO_LAST).map_err(unavailable)?,
        places: txn.open_table(FIFO_PLACES).map_err(unavailable)?,
        waiting: txn.open_table(FIFO_WAITING).map_err(unavailable)?,
        handed: txn.open_table(FIFO_HANDED).map_err(unavailable)?,
    };
    for change in changes {
        t.apply(change)?;
    }
    Ok(())
}

impl Tables<'_> {
    fn apply(&mut self, change: &Change) -> Result<(), StoreError> {
        match change {
            Change::Last { line, at } => {
                self.last.insert(line.as_str(), at).map_err(unavailable)?;
            }
            Change::Place { member, at } => {
                self.places
                    .insert(member.as_str(), at)
                    .map_err(unavailable)?;
            }
            Change::Unplace { member } => {
                self.places.remove(member.as_str()).map_err(unavailable)?;
            }
            Change::Wait { member, body } => {
                self.waiting
                    .insert(member.as_str(), body.as_slice())
                    .map_err(unavailable)?;
                self.handed.remove(member.as_str()).map_err(unavailable)?;
            }
            Change::Handed { member, at_ms } => {
                self.handed
                    .insert(member.as_str(), at_ms)
                    .map_err(unavailable)?;
            }
            Change::Unwait { member } => {
                self.waiting.remove(member.as_str()).map_err(unavailable)?;
                self.handed.remove(member.as_str()).map_err(unavailable)?;
            }
            Change::Forget { line } => {
                self.last.remove(line.as_str()).map_err(unavailable)?;
                self.remove_prefix(&keys::in_line(line, ""), false)?;
            }
            Change::ForgetAll { prefix } => self.remove_prefix(prefix, true)?,
        }
        Ok(())
    }

    /// Removes the rows whose keys start with `prefix` (of `fifo_last` too, if `last`).
    fn remove_prefix(&mut self, prefix: &str, last: bool) -> Result<(), StoreError> {
        let end = prefix_end(prefix);
        let range = prefix..end.as_str();
        if last {
            self.last
                .retain_in(range.clone(), |_, _| false)
                .map_err(unavailable)?;
        }
        self.places
            .retain_in(range.clone(), |_, _| false)
            .map_err(unavailable)?;
        self.waiting
            .retain_in(range.clone(), |_, _| false)
            .map_err(unavailable)?;
        self.handed
            .retain_in(range, |_, _| false)
            .map_err(unavailable)
    }
}

#[cfg(test)]
mod tests {
    use hookline_core::fifo::Line;
    use hookline_core::model::TriggerType;

    use super::*;

    const LINE: &str = "app_1\0ep_1";

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

    /// A small deterministic generator (xorshift), so a failure repeats.
    struct Dice(u64);

    impl Dice {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Everything a line holds, to compare a line with its copy read back from disk.
    type Snapshot = (Option<i64>, Vec<(i64, String)>, Vec<(String, Option<i64>)>);

    fn snapshot(kept: &Kept) -> Snapshot {
        let mut waiting: Vec<_> = kept
            .waiting
            .iter()
            .map(|(msg, w)| {
                assert_eq!(&w.task.msg_id, msg, "a waiting task under its own message");
                (msg.clone(), w.handed_ms)
            })
            .collect();
        waiting.sort();
        let order: Vec<_> = kept.order.iter().cloned().collect();
        let mut places: Vec<_> = kept.places.iter().map(|(m, at)| (*at, m.clone())).collect();
        places.sort();
        assert_eq!(order, places, "order and places agree");
        (kept.last, order, waiting)
    }

    /// One random step on both the reference `Line` and `Kept`: their answers must agree.
    fn step(dice: &mut Dice, clock: &mut i64, line: &mut Line, kept: &mut Kept) -> Vec<Change> {
        let msg = format!("m{}", dice.below(8));
        // The clock mostly moves on, and now and then goes back.
        *clock += i64::try_from(dice.below(4)).unwrap_or(0) - 1;
        let now = *clock;
        let mut changes = Vec::new();
        match dice.below(4) {
            0 => {
                let due = (dice.below(3) == 0)
                    .then(|| now + 5 + i64::try_from(dice.below(40)).unwrap_or(0));
                let expected = line.join(&msg, now, due);
                let joined = kept.join(LINE, &msg, now, due, &mut changes).is_some();
                assert_eq!(joined, expected, "join {msg} at {now} due {due:?}");
            }
            1 => {
                let expected = line.turn(&task(&msg));
                let turn = kept.turn(LINE, &task(&msg), &mut changes).expect("turn");
                assert_eq!(turn, expected, "turn {msg}");
            }
            2 => {
                let expected = line.leave(&msg, now).map(|t| t.msg_id);
                let handed = kept.leave(LINE, &msg, now, &mut changes).map(|t| t.msg_id);
                assert_eq!(handed, expected, "leave {msg} at {now}");
            }
            _ => {
                let stale = [0, 3, i64::MAX][usize::try_from(dice.below(3)).unwrap_or(0)];
                let expected = line.stalled(now, stale).map(|t| t.msg_id);
                let handed = kept
                    .hand_head(LINE, now, stale, &mut changes)
                    .map(|t| t.msg_id);
                assert_eq!(handed, expected, "stalled at {now}, stale {stale}");
            }
        }
        assert_eq!(kept.state(), line.state());
        assert_eq!(kept.is_empty(), line.is_empty());
        changes
    }

    /// Random steps agree with the reference `Line`, and what they wrote through reads back
    /// as the same line.
    #[tokio::test]
    async fn every_step_agrees_with_the_reference_line_and_reads_back_from_disk() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(&dir.path().join("test.redb")).expect("open");
        for seed in 1..=4u64 {
            let mut dice = Dice(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let (mut line, mut kept, mut clock) = (Line::default(), Kept::default(), 1_000);
            for round in 0..40 {
                let mut changes = Vec::new();
                for _ in 0..50 {
                    changes.extend(step(&mut dice, &mut clock, &mut line, &mut kept));
                }
                db.write(Durability::Deferred, move |txn| apply(txn, &changes))
                    .await
                    .expect("write");
                let lines = Lines::load(&db).expect("load");
                let loaded = lines.lock().remove(LINE).unwrap_or_default();
                assert_eq!(
                    snapshot(&loaded),
                    snapshot(&kept),
                    "seed {seed} round {round}"
                );
            }
            let forget = [Change::Forget { line: LINE.into() }];
            db.write(Durability::Deferred, move |txn| apply(txn, &forget))
                .await
                .expect("forget");
            assert!(Lines::load(&db).expect("load").lock().is_empty());
        }
    }
}
