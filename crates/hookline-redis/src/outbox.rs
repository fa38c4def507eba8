//! The outbox: a mark on each stored message whose tasks the queue has not confirmed yet.
//!
//! The mark is a member of the app's `outbox` sorted set, written in the same transaction
//! as the message and scored by the end of its lease; confirming the tasks removes it. A
//! sweeper takes marks whose lease ran out (their request died) and queues their tasks.
//! Sweepers find apps through the app list, which every app is on before it can have a
//! message, so no global outbox index (a cross-slot write on the hot path) is needed.

use std::sync::LazyLock;

use hookline_core::model::Message;
use hookline_core::ports::{StoreError, Unconfirmed};
use redis::Script;
use time::OffsetDateTime;

use crate::{unavailable, RedisStore};

/// How many apps one read of the app list returns while sweeping.
const APPS_PER_READ: usize = 500;

/// KEYS: outbox, outbox_at. ARGV: now_ms, lease_until_ms, limit.
/// Moves up to `limit` marks whose lease ended to a new lease; returns id, deliver_at ('' if
/// none) pairs.
static CLAIM_MARKS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
        local out = {}
        for _, id in ipairs(ids) do
            redis.call('ZADD', KEYS[1], ARGV[2], id)
            out[#out + 1] = id
            out[#out + 1] = redis.call('HGET', KEYS[2], id) or ''
        end
        return out
        ",
    )
});

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

    /// Goes through the app list and takes up to `limit` expired marks.
    pub(crate) async fn claim_marks(
        &self,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<Unconfirmed>, StoreError> {
        let mut conn = self.conn();
        let mut claimed = Vec::new();
        let mut after = "-".to_owned();
        while claimed.len() < limit {
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
                let now = now_ms();
                let flat: Vec<String> = CLAIM_MARKS
                    .key(self.keys.outbox(app))
                    .key(self.keys.outbox_deliver_at(app))
                    .arg(now)
                    .arg(now.saturating_add(i64::try_from(lease_ms).unwrap_or(i64::MAX)))
                    .arg(limit - claimed.len())
                    .invoke_async(&mut conn)
                    .await
                    .map_err(unavailable)?;
                for pair in flat.chunks_exact(2) {
                    claimed.push(Unconfirmed {
                        app_id: app.clone(),
                        msg_id: pair[0].clone(),
                        deliver_at: pair[1].parse().ok().and_then(from_unix_ms),
                    });
                }
                if claimed.len() >= limit {
                    break;
                }
            }
            match apps.last() {
                Some(last) if apps.len() == APPS_PER_READ => after = format!("({last}"),
                _ => break,
            }
        }
        Ok(claimed)
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
