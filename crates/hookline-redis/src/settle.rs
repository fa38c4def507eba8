//! The dispatcher's batched write: a batch of attempts, their next attempts and their
//! endpoints' health in as few round trips as the deployment allows.
//!
//! On a single Redis the whole batch is one MULTI/EXEC, so it is written entirely or not at
//! all and the order record → schedule → health holds trivially. Redis Cluster cannot run a
//! transaction across hash slots: there each app's records and health are one transaction
//! on the app's slot (the apps' transactions run concurrently), and the schedule's is sent
//! only after all of them succeeded, so a retry is never scheduled without its record.

use std::collections::BTreeMap;

use async_trait::async_trait;
use futures::future::try_join_all;
use hookline_core::breaker::{Health, OpenRules, Results};
use hookline_core::ports::{HealthAfter, HealthReport, SettledAttempt, Settlement, StoreError};
use time::OffsetDateTime;

use crate::messages::expired_before;
use crate::{encode, unavailable, RedisStore};

/// KEYS: health, probe. ARGV: last_success_ms (0: none), failures, first_failure_ms,
/// last_failure_ms, threshold, open_ms. The rule of `Health::apply`, applied in place.
/// Returns {consecutive, failing_since_ms, open_until_ms, last_success_ms, was_open}.
/// A success leaves only `last_success`, expiring with the open period it vouches for; a
/// failure makes the hash persistent again so a streak never expires halfway.
const APPLY_RESULTS: &str = r"
local open_ms = tonumber(ARGV[6])
local was_open = redis.call('HEXISTS', KEYS[1], 'open_until')
if ARGV[1] ~= '0' then
    redis.call('DEL', KEYS[1], KEYS[2])
    redis.call('HSET', KEYS[1], 'last_success', ARGV[1])
    if ARGV[2] == '0' then
        redis.call('PEXPIRE', KEYS[1], math.max(open_ms, 1))
        return {0, 0, 0, tonumber(ARGV[1]), was_open}
    end
end
redis.call('PERSIST', KEYS[1])
local consecutive = redis.call('HINCRBY', KEYS[1], 'consecutive', ARGV[2])
local since = tonumber(redis.call('HGET', KEYS[1], 'failing_since') or '0')
if since == 0 then
    since = tonumber(ARGV[3])
    redis.call('HSET', KEYS[1], 'failing_since', since)
end
local last_success = tonumber(redis.call('HGET', KEYS[1], 'last_success') or '0')
local last = tonumber(ARGV[4])
if consecutive >= tonumber(ARGV[5]) and not (last_success > 0 and last - last_success < open_ms) then
    redis.call('HSET', KEYS[1], 'open_until', last + open_ms)
    redis.call('PEXPIRE', KEYS[2], math.max(open_ms, 1))
end
local open_until = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
return {consecutive, since, open_until, last_success, was_open}
";

/// What one app's transaction holds: its attempts and the health reports of its endpoints.
#[derive(Default)]
struct AppShare<'a> {
    attempts: Vec<&'a SettledAttempt>,
    /// (position in the caller's reports, report)
    health: Vec<(usize, &'a HealthReport)>,
}

type HealthReply = (i64, i64, i64, i64, i64);

#[async_trait]
impl Settlement for RedisStore {
    async fn settle(
        &self,
        attempts: &[&SettledAttempt],
        health: &[HealthReport],
        rules: OpenRules,
    ) -> Result<Vec<HealthAfter>, StoreError> {
        let mut apps: BTreeMap<&str, AppShare<'_>> = BTreeMap::new();
        for &settled in attempts {
            let app = settled.attempt.app_id.as_str();
            apps.entry(app).or_default().attempts.push(settled);
        }
        for (at, report) in health.iter().enumerate() {
            let app = report.app_id.as_str();
            apps.entry(app).or_default().health.push((at, report));
        }
        let mut replies = vec![None; health.len()];
        if self.conn().is_cluster() {
            let writes = apps.values().map(|share| async move {
                let mut pipe = redis::pipe();
                pipe.atomic();
                self.add_share(&mut pipe, share, rules)?;
                let replies: Vec<HealthReply> = pipe
                    .query_async(&mut self.conn())
                    .await
                    .map_err(unavailable)?;
                Ok::<_, StoreError>(share.health.iter().map(|(at, _)| *at).zip(replies))
            });
            for (at, reply) in try_join_all(writes).await?.into_iter().flatten() {
                replies[at] = Some(reply);
            }
            let mut pipe = redis::pipe();
            pipe.atomic();
            if self.add_schedule(&mut pipe, attempts)? {
                pipe.query_async::<()>(&mut self.conn())
                    .await
                    .map_err(unavailable)?;
            }
        } else {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for share in apps.values() {
                self.add_share(&mut pipe, share, rules)?;
            }
            self.add_schedule(&mut pipe, attempts)?;
            let answered: Vec<HealthReply> = pipe
                .query_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            let order = apps
                .values()
                .flat_map(|s| s.health.iter().map(|(at, _)| *at));
            for (at, reply) in order.zip(answered) {
                replies[at] = Some(reply);
            }
        }
        let mut after = Vec::with_capacity(health.len());
        for (report, reply) in health.iter().zip(replies) {
            let reply = reply.ok_or_else(|| {
                StoreError::Corrupt("a health report got no answer from Redis".into())
            })?;
            after.push(self.note_circuit(report, reply).await?);
        }
        Ok(after)
    }
}

impl RedisStore {
    /// Adds one app's attempts (each with its destination and message index, the endpoint
    /// indexes once per endpoint) and its endpoints' health scripts to `pipe`. Only the
    /// scripts answer.
    fn add_share(
        &self,
        pipe: &mut redis::Pipeline,
        share: &AppShare<'_>,
        rules: OpenRules,
    ) -> Result<(), StoreError> {
        let mut by_endpoint: BTreeMap<(&str, &str), (Vec<&str>, u64)> = BTreeMap::new();
        // With the log elsewhere, it was written there before this batch came here.
        let records = if self.log_elsewhere {
            &[][..]
        } else {
            &share.attempts[..]
        };
        for settled in records {
            let attempt = &settled.attempt;
            let app = &attempt.app_id;
            let retention = settled.retention_secs.max(1);
            let by_message = self.keys.message_attempts(app, &attempt.msg_id);
            let dest_key = self.keys.destinations(app, &attempt.msg_id);
            let ttl = i64::try_from(retention).unwrap_or(i64::MAX);
            pipe.set_ex(
                self.keys.attempt(app, &attempt.id),
                encode(attempt)?,
                retention,
            )
            .ignore()
            .zadd(&by_message, &attempt.id, 0)
            .ignore()
            .expire(&by_message, ttl)
            .ignore()
            .hset(
                &dest_key,
                &attempt.endpoint_id,
                encode(&settled.destination)?,
            )
            .ignore()
            .expire(&dest_key, ttl)
            .ignore();
            let entry = by_endpoint
                .entry((app.as_str(), attempt.endpoint_id.as_str()))
                .or_default();
            entry.0.push(attempt.id.as_str());
            entry.1 = entry.1.max(retention);
        }
        let keep = i64::try_from(self.max_attempts_per_endpoint).unwrap_or(i64::MAX);
        for ((app, endpoint), (ids, retention)) in by_endpoint {
            let index = self.keys.endpoint_attempts(app, endpoint);
            let members: Vec<(i64, &str)> = ids.into_iter().map(|id| (0, id)).collect();
            pipe.zadd_multiple(&index, &members)
                .ignore()
                .cmd("ZREMRANGEBYLEX")
                .arg(&index)
                .arg("-")
                .arg(format!("({}", expired_before("atmpt", retention)))
                .ignore()
                // All scores are zero, so rank order is id order: this drops the oldest.
                .zremrangebyrank(&index, 0, -(keep.saturating_add(1)) as isize)
                .ignore();
        }
        for (_, report) in &share.health {
            add_health(pipe, self, report, rules);
        }
        Ok(())
    }

    /// Adds the batch's next attempts to `pipe` (the `{sched}` slot); false when there are
    /// none.
    fn add_schedule(
        &self,
        pipe: &mut redis::Pipeline,
        attempts: &[&SettledAttempt],
    ) -> Result<bool, StoreError> {
        let mut any = false;
        for (task, due) in attempts.iter().filter_map(|s| s.next.as_ref()) {
            let key = task.schedule_key();
            pipe.hset(self.keys.schedule_tasks(), &key, encode(task)?)
                .ignore()
                .zadd(self.keys.schedule_due(), &key, unix_ms(*due))
                .ignore();
            any = true;
        }
        Ok(any)
    }

    /// Keeps the open-circuits set (a gauge's source, global, so outside the transaction)
    /// in step with a circuit that opened or closed, and turns the reply into health.
    async fn note_circuit(
        &self,
        report: &HealthReport,
        (consecutive, since, open_until, last_success, was_open): HealthReply,
    ) -> Result<HealthAfter, StoreError> {
        let member = format!("{}:{}", report.app_id, report.endpoint_id);
        let open_circuits = self.keys.open_circuits();
        let mut conn = self.conn();
        if open_until > 0 && was_open == 0 {
            redis::cmd("SADD")
                .arg(&open_circuits)
                .arg(&member)
                .query_async::<()>(&mut conn)
                .await
                .map_err(unavailable)?;
        } else if open_until == 0 && was_open == 1 {
            redis::cmd("SREM")
                .arg(&open_circuits)
                .arg(&member)
                .query_async::<()>(&mut conn)
                .await
                .map_err(unavailable)?;
        }
        Ok(HealthAfter {
            app_id: report.app_id.clone(),
            endpoint_id: report.endpoint_id.clone(),
            health: Health {
                consecutive: u32::try_from(consecutive).unwrap_or(u32::MAX),
                failing_since_ms: since,
                open_until_ms: open_until,
                last_success_ms: last_success,
            },
        })
    }
}

fn add_health(
    pipe: &mut redis::Pipeline,
    store: &RedisStore,
    report: &HealthReport,
    rules: OpenRules,
) {
    let Results {
        last_success,
        failures,
        first_failure,
        last_failure,
    } = report.results;
    let ms = |at: Option<OffsetDateTime>| at.map_or(0, unix_ms);
    let open_ms = i64::try_from(rules.open_for.as_millis()).unwrap_or(i64::MAX);
    pipe.cmd("EVAL")
        .arg(APPLY_RESULTS)
        .arg(2)
        .arg(store.keys.health(&report.app_id, &report.endpoint_id))
        .arg(store.keys.health_probe(&report.app_id, &report.endpoint_id))
        .arg(ms(last_success))
        .arg(failures)
        .arg(ms(first_failure))
        .arg(ms(last_failure))
        .arg(rules.threshold.max(1))
        .arg(open_ms);
}

fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}
