//! The backlog view's totals: every process adds its flush with one script on the
//! `{backlog}` slot (a large flush in chunks, each a script), and the view reads the
//! busiest keys with another.
//!
//! Each key (an app, or `<app id> <endpoint id>`) has its count in a sorted set scored by
//! it, so the busiest N are a range read (`O(log n + N)`) however many apps there are; a
//! hash read whole would send every app's count on every refresh of the dashboard. The
//! frontiers of pending keys are a sorted set too, so the oldest over all keys is its
//! first member. The rule is `hookline_core::backlog::Balance::apply`, written again in
//! Lua (`tests/integration/ports.rs` holds both stores to the same answers).

use std::sync::LazyLock;

use async_trait::async_trait;
use hookline_core::backlog::{
    age_ms, AppBacklog, BacklogView, EndpointBacklog, TallyBatch, BATCH_MEMORY_MS,
    NEGATIVE_GRACE_MS,
};
use hookline_core::ports::{BacklogLedger, StoreError};
use redis::Script;
use time::OffsetDateTime;

use crate::{unavailable, RedisStore};

/// Changes per script call: a flush of many keys does not hold Redis for long at once.
const CHUNK: usize = 256;

/// KEYS: apps, endpoints, app frontiers, endpoint frontiers, app debts, endpoint debts,
/// total, batch mark. ARGV: now_ms, grace_ms, mark_ttl_ms, then per change: `a` (app) or
/// `e` (endpoint), member, delta, oldest taken ms or '', first added ms or ''.
/// Returns 0 when the batch was recorded already, else 1.
static RECORD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if not redis.call('SET', KEYS[8], '1', 'NX', 'PX', ARGV[3]) then return 0 end
        local total = 0
        for i = 4, #ARGV, 5 do
            local counts, frontiers, debts = KEYS[2], KEYS[4], KEYS[6]
            local app = ARGV[i] == 'a'
            if app then counts, frontiers, debts = KEYS[1], KEYS[3], KEYS[5] end
            local member = ARGV[i + 1]
            local old = tonumber(redis.call('ZSCORE', counts, member) or '0')
            local new = old + tonumber(ARGV[i + 2])
            if app then total = total + math.max(new, 0) - math.max(old, 0) end
            if new == 0 then
                redis.call('ZREM', counts, member)
                redis.call('ZREM', frontiers, member)
                redis.call('ZREM', debts, member)
            elseif new < 0 then
                redis.call('ZADD', counts, new, member)
                redis.call('ZREM', frontiers, member)
                redis.call('ZADD', debts, 'NX', ARGV[1], member)
            else
                redis.call('ZADD', counts, new, member)
                redis.call('ZREM', debts, member)
                local taken, added = ARGV[i + 3], ARGV[i + 4]
                if taken ~= '' then
                    redis.call('ZADD', frontiers, taken, member)
                elseif old > 0 and redis.call('ZSCORE', frontiers, member) then
                    -- still pending, nothing taken: the frontier stays
                elseif added ~= '' then
                    redis.call('ZADD', frontiers, added, member)
                else
                    redis.call('ZADD', frontiers, ARGV[1], member)
                end
            end
        end
        local cutoff = tonumber(ARGV[1]) - tonumber(ARGV[2])
        for _, pair in ipairs({{KEYS[1], KEYS[5]}, {KEYS[2], KEYS[6]}}) do
            local stale = redis.call('ZRANGEBYSCORE', pair[2], '-inf', cutoff, 'LIMIT', 0, 100)
            for _, member in ipairs(stale) do
                redis.call('ZREM', pair[1], member)
                redis.call('ZREM', pair[2], member)
            end
        end
        if total ~= 0 then redis.call('INCRBY', KEYS[7], total) end
        return 1
        ",
    )
});

/// KEYS: apps, endpoints, app frontiers, endpoint frontiers, total. ARGV: limit.
/// Returns {total, oldest app frontier or '', oldest endpoint frontier or '',
/// {app, count, frontier, …}, {member, count, frontier, …}}.
static BUSIEST: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local function first(frontiers)
            local oldest = redis.call('ZRANGE', frontiers, 0, 0, 'WITHSCORES')
            return oldest[2] or ''
        end
        local function busiest(counts, frontiers)
            local out = {}
            local top = redis.call('ZREVRANGEBYSCORE', counts, '+inf', '(0',
                'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))
            for i = 1, #top, 2 do
                out[#out + 1] = top[i]
                out[#out + 1] = top[i + 1]
                out[#out + 1] = redis.call('ZSCORE', frontiers, top[i]) or ''
            end
            return out
        end
        return {
            redis.call('GET', KEYS[5]) or '0',
            first(KEYS[3]),
            first(KEYS[4]),
            busiest(KEYS[1], KEYS[3]),
            busiest(KEYS[2], KEYS[4]),
        }
        ",
    )
});

fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// A score or count as Redis writes it (an integer, possibly in a double's notation).
fn number(text: &str) -> Result<i64, StoreError> {
    if let Ok(value) = text.parse::<i64>() {
        return Ok(value);
    }
    text.parse::<f64>()
        .ok()
        .filter(|value| value.is_finite())
        .map(|value| value.round() as i64)
        .ok_or_else(|| StoreError::Corrupt(format!("backlog: not a number: {text:?}")))
}

fn optional_number(text: &str) -> Result<Option<i64>, StoreError> {
    if text.is_empty() {
        return Ok(None);
    }
    number(text).map(Some)
}

fn count(text: &str) -> Result<u64, StoreError> {
    Ok(u64::try_from(number(text)?).unwrap_or(0))
}

fn optional_arg(value: Option<i64>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

#[async_trait]
impl BacklogLedger for RedisStore {
    async fn add(&self, batch: &TallyBatch, now: OffsetDateTime) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let now_ms = unix_ms(now);
        for (n, chunk) in batch.changes.chunks(CHUNK).enumerate() {
            let mut invocation = RECORD.prepare_invoke();
            invocation
                .key(self.keys.backlog_apps())
                .key(self.keys.backlog_endpoints())
                .key(self.keys.backlog_app_frontiers())
                .key(self.keys.backlog_endpoint_frontiers())
                .key(self.keys.backlog_app_debts())
                .key(self.keys.backlog_endpoint_debts())
                .key(self.keys.backlog_total())
                .key(self.keys.backlog_batch(&format!("{}:{n}", batch.id)))
                .arg(now_ms)
                .arg(NEGATIVE_GRACE_MS)
                .arg(BATCH_MEMORY_MS);
            for change in chunk {
                match &change.endpoint_id {
                    None => invocation.arg("a").arg(&change.app_id),
                    Some(endpoint) => invocation
                        .arg("e")
                        .arg(format!("{} {endpoint}", change.app_id)),
                };
                invocation
                    .arg(change.delta)
                    .arg(optional_arg(change.oldest_taken_ms))
                    .arg(optional_arg(change.first_added_ms));
            }
            invocation
                .invoke_async::<i64>(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        Ok(())
    }

    async fn busiest(&self, limit: usize, now: OffsetDateTime) -> Result<BacklogView, StoreError> {
        let mut conn = self.conn();
        let now_ms = unix_ms(now);
        let (total, oldest_app, oldest_endpoint, apps, endpoints): (
            String,
            String,
            String,
            Vec<String>,
            Vec<String>,
        ) = BUSIEST
            .key(self.keys.backlog_apps())
            .key(self.keys.backlog_endpoints())
            .key(self.keys.backlog_app_frontiers())
            .key(self.keys.backlog_endpoint_frontiers())
            .key(self.keys.backlog_total())
            .arg(limit)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        let oldest = [
            optional_number(&oldest_app)?,
            optional_number(&oldest_endpoint)?,
        ]
        .into_iter()
        .flatten()
        .min();
        let age = |frontier: &str| -> Result<u64, StoreError> {
            // A pending key always has a frontier; without one it has not waited.
            Ok(optional_number(frontier)?.map_or(0, |f| age_ms(f, now_ms)))
        };
        let apps = apps
            .chunks_exact(3)
            .map(|row| {
                Ok(AppBacklog {
                    app_id: row[0].clone(),
                    pending: count(&row[1])?,
                    oldest_pending_age_ms: age(&row[2])?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let endpoints = endpoints
            .chunks_exact(3)
            .map(|row| {
                let (app_id, endpoint_id) = row[0].split_once(' ').ok_or_else(|| {
                    StoreError::Corrupt(format!("backlog: endpoint key {:?}", row[0]))
                })?;
                Ok(EndpointBacklog {
                    app_id: app_id.to_owned(),
                    endpoint_id: endpoint_id.to_owned(),
                    pending: count(&row[1])?,
                    oldest_pending_age_ms: age(&row[2])?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(BacklogView {
            pending: count(&total)?,
            oldest_pending_age_ms: oldest.map(|frontier| age_ms(frontier, now_ms)),
            apps,
            endpoints,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_in_either_notation() {
        assert_eq!(number("42").ok(), Some(42));
        assert_eq!(number("-3").ok(), Some(-3));
        assert_eq!(number("1.7333e+12").ok(), Some(1_733_300_000_000));
        assert!(number("x").is_err());
        assert_eq!(optional_number("").ok(), Some(None));
        assert_eq!(count("-2").ok(), Some(0));
    }
}
