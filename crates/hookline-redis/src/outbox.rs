//! The outbox: a mark on each stored message whose tasks the queue has not confirmed yet.
//!
//! The mark is a member of the app's `outbox` sorted set, written in the same transaction
//! as the message and scored by the end of its lease; confirming the tasks removes it. A
//! sweeper takes marks whose lease ran out (their request died) and queues their tasks.
//!
//! Sweepers find apps through the global `outbox_apps` set ([`crate::Keys::outbox_apps`]),
//! not the whole app list: its cost follows the apps that wrote messages lately, not every
//! app there is. Before its first mark of an app, and again once `refresh` has passed, an
//! ingest process registers the app there (a `ZADD GT` of the current time, a command of its
//! own before the message's transaction: stopping between them leaves a registration
//! without marks, which the sweep removes). A hot app so costs one extra command per
//! `refresh` per process, not one per message.
//!
//! The sweep removes an app whose outbox is empty and whose registration is older than
//! `3 × refresh + lease`, with a compare-and-remove on the score it read. No mark is ever
//! stranded (in an outbox whose app is not listed): a process writes a mark only within
//! `refresh` of the registration it made (its score, `GT` keeps the newest), so an app that
//! gets a mark has a score newer than the mark's write − `refresh`. The sweep reads the
//! score first, then finds the outbox empty, then removes only if the score is unchanged:
//! a registration made after the read changes the score and the removal is skipped, and
//! every registration made before it is older than `3 × refresh + lease`, so its window for
//! writing marks closed more than `2 × refresh + lease` before the empty read: a margin for
//! a mark write still in flight (bounded by the command timeout) and for clock skew
//! between processes. A registration removed that way is made again by the next message.
//!
//! Marks written before registrations existed (by an older version) are on no list: the
//! first sweep of each process walks the whole app list once and registers every app that
//! has marks, then reads only `outbox_apps`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::Duration;

use hookline_core::model::Message;
use hookline_core::ports::{StoreError, Unconfirmed};
use redis::Script;
use time::OffsetDateTime;

use crate::{unavailable, RedisStore};

/// How many registered apps one `ZSCAN` step asks for while sweeping.
const APPS_PER_READ: usize = 500;

/// Registrations one process remembers; past this, those older than `refresh` are dropped.
const REMEMBERED_APPS: usize = 100_000;

/// KEYS: outbox, outbox_at. ARGV: now_ms, lease_until_ms, limit.
/// Moves up to `limit` marks whose lease ended to a new lease; returns the number of marks
/// the app has, then id, deliver_at ('' if none) pairs.
static CLAIM_MARKS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
        local out = {redis.call('ZCARD', KEYS[1])}
        for _, id in ipairs(ids) do
            redis.call('ZADD', KEYS[1], ARGV[2], id)
            out[#out + 1] = id
            out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
        end
        return out
        ",
    )
});

/// KEYS: a registration set (`outbox_apps`, `fifo_lines`). ARGV: member, the score read.
/// Removes the member only if its registration is still the one read (no process registered
/// it again meanwhile).
pub(crate) static UNREGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
        if score and tonumber(score) == tonumber(ARGV[2]) then
            return redis.call('ZREM', KEYS[1], ARGV[1])
        end
        return 0
        ",
    )
});

/// This process's registrations in `outbox_apps`: app id → the score it wrote (unix ms).
pub(crate) struct Registrations {
    refresh_ms: i64,
    written: Mutex<HashMap<String, i64>>,
    /// Apps the sweeps of this process visited, in total (one command or script call each).
    visited: AtomicU64,
    /// Whether this process's sweep walked the whole app list once (see the module's comment).
    walked: AtomicBool,
}

impl Registrations {
    pub(crate) fn new(refresh: Duration) -> Self {
        Self {
            refresh_ms: i64::try_from(refresh.as_millis())
                .unwrap_or(i64::MAX)
                .max(1),
            written: Mutex::new(HashMap::new()),
            visited: AtomicU64::new(0),
            walked: AtomicBool::new(false),
        }
    }

    /// Whether this process registered `app` less than `refresh` before `now`.
    pub(crate) fn is_fresh(&self, app: &str, now: i64) -> bool {
        let written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        written
            .get(app)
            .is_some_and(|at| now.saturating_sub(*at) < self.refresh_ms)
    }

    pub(crate) fn record(&self, app: &str, at: i64) {
        let mut written = self.written.lock().unwrap_or_else(PoisonError::into_inner);
        if written.len() >= REMEMBERED_APPS && !written.contains_key(app) {
            // Stale entries make no write cheaper; dropping any entry costs at most a ZADD.
            written.retain(|_, seen| at.saturating_sub(*seen) < self.refresh_ms);
            if written.len() >= REMEMBERED_APPS {
                written.clear();
            }
        }
        written.insert(app.to_owned(), at);
    }

    /// How old a registration of an app with an empty outbox must be to be removed.
    fn removal_age_ms(&self, lease_ms: u64) -> i64 {
        let lease = i64::try_from(lease_ms).unwrap_or(i64::MAX);
        self.refresh_ms.saturating_mul(3).saturating_add(lease)
    }
}

impl RedisStore {
    /// Adds the outbox mark of `message` to `pipe` (a transaction on the app's slot).
    pub(crate) fn mark_unconfirmed(
        &self,
        pipe: &mut redis::Pipeline,
        message: &Message,
        deliver_at: Option<OffsetDateTime>,
        lease_ms: u64,
    ) {
        let app = &message.app_id;
        let until = now_ms().saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX));
        pipe.zadd(self.keys.outbox(app), &message.id, until)
            .ignore();
        if let Some(at) = deliver_at {
            pipe.hset(self.keys.outbox_deliver_at(app), &message.id, unix_ms(at))
                .ignore();
        }
    }

    /// Adds the removal of a message's outbox mark to `pipe`.
    pub(crate) fn unmark(&self, pipe: &mut redis::Pipeline, app_id: &str, msg_id: &str) {
        pipe.zrem(self.keys.outbox(app_id), msg_id)
            .ignore()
            .hdel(self.keys.outbox_deliver_at(app_id), msg_id)
            .ignore();
    }

    pub(crate) async fn read_mark(
        &self,
        app_id: &str,
        msg_id: &str,
    ) -> Result<Option<Unconfirmed>, StoreError> {
        let mut conn = self.conn();
        let (score, at): (Option<f64>, Option<i64>) = redis::pipe()
            .atomic()
            .zscore(self.keys.outbox(app_id), msg_id)
            .hget(self.keys.outbox_deliver_at(app_id), msg_id)
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(score.map(|_| Unconfirmed {
            app_id: app_id.to_owned(),
            msg_id: msg_id.to_owned(),
            deliver_at: at.and_then(from_unix_ms),
        }))
    }

    /// Registers `app` in `outbox_apps` unless this process did so less than `refresh` ago.
    /// Called before every write of a mark of `app`, and finished before it.
    pub(crate) async fn register_for_sweep(&self, app: &str) -> Result<(), StoreError> {
        let now = now_ms();
        if self.outbox.is_fresh(app, now) {
            return Ok(());
        }
        redis::cmd("ZADD")
            .arg(self.keys.outbox_apps())
            .arg("GT")
            .arg(now)
            .arg(app)
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(unavailable)?;
        self.outbox.record(app, now);
        Ok(())
    }

    /// [`RedisStore::register_for_sweep`] for several apps at once: one `ZADD GT` for those
    /// not registered by this process within `refresh`. Finished before any of their marks
    /// is written.
    pub(crate) async fn register_all_for_sweep(&self, apps: &[&str]) -> Result<(), StoreError> {
        let now = now_ms();
        let stale: Vec<&str> = apps
            .iter()
            .copied()
            .filter(|app| !self.outbox.is_fresh(app, now))
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(self.keys.outbox_apps()).arg("GT");
        for app in &stale {
            zadd.arg(now).arg(*app);
        }
        zadd.query_async::<()>(&mut self.conn())
            .await
            .map_err(unavailable)?;
        for app in stale {
            self.outbox.record(app, now);
        }
        Ok(())
    }

    /// How many apps the outbox sweeps of this store visited so far (one command each):
    /// the sweep's cost, which follows the registered apps, not all apps.
    pub fn outbox_apps_visited(&self) -> u64 {
        self.outbox.visited.load(Ordering::Relaxed)
    }

    /// Goes through the registered apps and takes up to `limit` expired marks; removes the
    /// registrations of apps that have no marks left and were not registered for long.
    pub(crate) async fn claim_marks(
        &self,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<Unconfirmed>, StoreError> {
        if !self.outbox.walked.load(Ordering::Relaxed) {
            self.register_apps_with_marks().await?;
            self.outbox.walked.store(true, Ordering::Relaxed);
        }
        let mut conn = self.conn();
        let mut claimed = Vec::new();
        let mut cursor = 0_u64;
        loop {
            // ZSCAN returns every app registered for the whole scan at least once; one
            // registered meanwhile has no mark due yet, or the next sweep takes it.
            let (next, flat): (u64, Vec<String>) = redis::cmd("ZSCAN")
                .arg(self.keys.outbox_apps())
                .arg(cursor)
                .arg("COUNT")
                .arg(APPS_PER_READ)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            for pair in flat.chunks_exact(2) {
                // Scores are integer milliseconds; another score is never taken for old.
                let registered = pair[1].parse::<i64>().unwrap_or(i64::MAX);
                self.sweep_app(&pair[0], registered, lease_ms, limit, &mut claimed)
                    .await?;
                if claimed.len() >= limit {
                    return Ok(claimed);
                }
            }
            if next == 0 {
                return Ok(claimed);
            }
            cursor = next;
        }
    }

    /// Walks the whole app list and registers every app whose outbox has marks (one `ZCARD`
    /// per app): marks written by a version without registrations are swept too.
    async fn register_apps_with_marks(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let mut after = "-".to_owned();
        loop {
            let apps: Vec<String> = redis::cmd("ZRANGEBYLEX")
                .arg(self.keys.apps())
                .arg(&after)
                .arg("+")
                .arg("LIMIT")
                .arg(0)
                .arg(APPS_PER_READ)
                .query_async(&mut conn)
                .await
                .map_err(unavailable)?;
            for app in &apps {
                self.outbox.visited.fetch_add(1, Ordering::Relaxed);
                let marks: u64 = redis::cmd("ZCARD")
                    .arg(self.keys.outbox(app))
                    .query_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                if marks > 0 {
                    redis::cmd("ZADD")
                        .arg(self.keys.outbox_apps())
                        .arg("GT")
                        .arg(now_ms())
                        .arg(app)
                        .query_async::<()>(&mut conn)
                        .await
                        .map_err(unavailable)?;
                }
            }
            match apps.last() {
                Some(last) if apps.len() == APPS_PER_READ => after = format!("({last}"),
                _ => return Ok(()),
            }
        }
    }

    /// Takes the expired marks of one registered app (up to `limit` in all in `claimed`);
    /// removes its registration, read with score `registered`, if the app has no marks and
    /// that registration is older than the removal age (see the module's comment).
    async fn sweep_app(
        &self,
        app: &str,
        registered: i64,
        lease_ms: u64,
        limit: usize,
        claimed: &mut Vec<Unconfirmed>,
    ) -> Result<(), StoreError> {
        self.outbox.visited.fetch_add(1, Ordering::Relaxed);
        let mut conn = self.conn();
        let now = now_ms();
        let flat: Vec<String> = CLAIM_MARKS
            .key(self.keys.outbox(app))
            .key(self.keys.outbox_deliver_at(app))
            .arg(now)
            .arg(now.saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX)))
            .arg(limit.saturating_sub(claimed.len()))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let Some((count, pairs)) = flat.split_first() else {
            return Ok(());
        };
        for pair in pairs.chunks_exact(2) {
            claimed.push(Unconfirmed {
                app_id: app.to_owned(),
                msg_id: pair[0].clone(),
                deliver_at: pair[1].parse().ok().and_then(from_unix_ms),
            });
        }
        let cutoff = now.saturating_sub(self.outbox.removal_age_ms(lease_ms));
        if count == "0" && registered < cutoff {
            UNREGISTER
                .key(self.keys.outbox_apps())
                .arg(app)
                .arg(registered)
                .invoke_async::<i64>(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }
}

pub(crate) fn now_ms() -> i64 {
    unix_ms(OffsetDateTime::now_utc())
}

fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

fn from_unix_ms(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}
