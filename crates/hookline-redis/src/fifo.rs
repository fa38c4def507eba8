//! The lines of ordered (FIFO) endpoints ([`hookline_core::fifo`]; its `Line` is the
//! reference these scripts follow).
//!
//! A line's four keys (`fifo_line`, `fifo_last`, `fifo_waiting`, `fifo_handed`) share the
//! app's hash tag, and every step on a line is one script, so a task asking for its turn
//! and the message ahead of it leaving are ordered by Redis: either the task finds itself
//! at the head, or the leave finds it waiting and hands it out.
//!
//! The stall sweep finds lines through the global `fifo_lines` set, in which `join`
//! registers a line (a `ZADD GT` of the current time, a command of its own before the
//! line's script), unless this process did so within the outbox's refresh interval (60 s):
//! a busy line costs one registration per minute per process, not one per message. A line
//! found empty whose registration is older than [`FORGET_AFTER_MS`] (far longer than the
//! refresh) is removed with a compare-and-remove on the score that was read, so a join that
//! registered the line again meanwhile keeps it listed, and a registration a process still
//! relies on is never old enough to go (the same argument as the outbox's `outbox_apps`).

use std::collections::BTreeMap;
use std::sync::LazyLock;

use hookline_core::fifo::{micros, millis, Joining, Leaving, LineState, Turn};
use hookline_core::model::DeliveryTask;
use hookline_core::ports::{Sequencer, StoreError};
use redis::Script;
use time::OffsetDateTime;

use crate::outbox::UNREGISTER;
use crate::{decode, encode, unavailable, RedisStore};

/// How long an empty line stays registered after its last join: far longer than a join
/// can take between its registration and its script.
const FORGET_AFTER_MS: i64 = 10 * 60 * 1000;

/// Registered lines one sweep step reads.
const LINES_PER_READ: usize = 500;

/// The hand-out step shared by LEAVE and STALLED: the head's waiting task, unless it was
/// handed out less than `stale` ms ago; marks it handed now.
const HAND_HEAD: &str = r"
local function hand_head(line, waiting, handed, now, stale)
    local head = redis.call('ZRANGE', line, 0, 0)[1]
    if not head then return false end
    local task = redis.call('HGET', waiting, head)
    if not task then return false end
    local at = tonumber(redis.call('HGET', handed, head) or '')
    if at and now - at < stale then return false end
    redis.call('HSET', handed, head, now)
    return task
end
";

/// KEYS: line, last. ARGV: now_us, then (msg id, due_us or '') pairs in joining order.
/// Each message not in the line takes its place (`fifo::place`).
static JOIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local last = tonumber(redis.call('GET', KEYS[2]) or '')
        local now = tonumber(ARGV[1])
        for i = 2, #ARGV, 2 do
            local msg, due = ARGV[i], tonumber(ARGV[i + 1])
            if not redis.call('ZSCORE', KEYS[1], msg) then
                local at
                if due and due > now then
                    at = due
                else
                    if last then at = math.max(now, last + 1) else at = now end
                    last = at
                end
                redis.call('ZADD', KEYS[1], string.format('%d', at), msg)
            end
        end
        if last then redis.call('SET', KEYS[2], string.format('%d', last)) end
        return 1
        ",
    )
});

/// KEYS: line, waiting, handed. ARGV: msg id, task JSON.
/// 0 go (the waiting copy is dropped), 1 wait (the task is kept), 2 gone.
static TURN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 2 end
        if redis.call('ZRANGE', KEYS[1], 0, 0)[1] == ARGV[1] then
            redis.call('HDEL', KEYS[2], ARGV[1])
            redis.call('HDEL', KEYS[3], ARGV[1])
            return 0
        end
        redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
        redis.call('HDEL', KEYS[3], ARGV[1])
        return 1
        ",
    )
});

/// KEYS: line, waiting, handed. ARGV: now_ms, msg ids. Removes the messages, then answers
/// the new head's waiting task if it was not handed out yet ('' when none).
static LEAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{HAND_HEAD}
        for i = 2, #ARGV do
            redis.call('ZREM', KEYS[1], ARGV[i])
            redis.call('HDEL', KEYS[2], ARGV[i])
            redis.call('HDEL', KEYS[3], ARGV[i])
        end
        return hand_head(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), math.huge) or ''
        "
    ))
});

/// KEYS: line, waiting, handed, last. ARGV: now_ms, stale_ms.
/// Answers {task or '', 1 when the line is empty}; an empty line's `last` goes too.
static STALLED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r"{HAND_HEAD}
        local task = hand_head(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[1]), tonumber(ARGV[2]))
        local empty = redis.call('ZCARD', KEYS[1]) == 0 and redis.call('HLEN', KEYS[2]) == 0
        if empty then redis.call('DEL', KEYS[3], KEYS[4]) end
        return {{task or '', empty and 1 or 0}}
        "
    ))
});

/// The `fifo_lines` member of a line (ids never hold a space).
fn member(app: &str, endpoint: &str) -> String {
    format!("{app} {endpoint}")
}

impl RedisStore {
    /// The keys every step of one line uses, in the scripts' order.
    fn line_keys(&self, app: &str, endpoint: &str) -> [String; 4] {
        [
            self.keys.fifo_line(app, endpoint),
            self.keys.fifo_waiting(app, endpoint),
            self.keys.fifo_handed(app, endpoint),
            self.keys.fifo_last(app, endpoint),
        ]
    }

    /// Adds the deletion of an endpoint's line to `pipe` (a transaction on the app's slot).
    pub(crate) fn forget_line(&self, pipe: &mut redis::Pipeline, app: &str, endpoint: &str) {
        for key in self.line_keys(app, endpoint) {
            pipe.del(key).ignore();
        }
    }

    async fn join_line(
        &self,
        (app, endpoint): (&str, &str),
        joining: &[&Joining],
        now_us: i64,
    ) -> Result<(), StoreError> {
        let mut invocation = JOIN.prepare_invoke();
        invocation
            .key(self.keys.fifo_line(app, endpoint))
            .key(self.keys.fifo_last(app, endpoint))
            .arg(now_us);
        for entry in joining {
            let due = entry.due.map(micros).map(|at| at.to_string());
            invocation.arg(&entry.msg_id).arg(due.unwrap_or_default());
        }
        invocation
            .invoke_async::<()>(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn leave_line(
        &self,
        (app, endpoint): (&str, &str),
        msgs: &[&str],
        now_ms: i64,
    ) -> Result<Option<DeliveryTask>, StoreError> {
        let [line, waiting, handed, _] = self.line_keys(app, endpoint);
        let mut invocation = LEAVE.prepare_invoke();
        invocation.key(line).key(waiting).key(handed).arg(now_ms);
        for msg in msgs {
            invocation.arg(*msg);
        }
        let task: String = invocation
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        decode_task(&task)
    }

    /// One registered line's stall check; forgets the line when it is empty and its
    /// registration (`listed`, unix ms) is old.
    async fn sweep_line(
        &self,
        line: &str,
        listed: f64,
        now_ms: i64,
        stale_ms: i64,
    ) -> Result<Option<DeliveryTask>, StoreError> {
        let Some((app, endpoint)) = line.split_once(' ') else {
            return Ok(None);
        };
        let [line_key, waiting, handed, last] = self.line_keys(app, endpoint);
        let (task, empty): (String, i64) = STALLED
            .key(line_key)
            .key(waiting)
            .key(handed)
            .key(last)
            .arg(now_ms)
            .arg(stale_ms)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        if empty == 1 && (now_ms as f64) - listed >= FORGET_AFTER_MS as f64 {
            UNREGISTER
                .key(self.keys.fifo_lines())
                .arg(line)
                .arg(listed)
                .invoke_async::<i64>(&mut self.conn())
                .await
                .map_err(unavailable)?;
        }
        decode_task(&task)
    }
}

fn decode_task(text: &str) -> Result<Option<DeliveryTask>, StoreError> {
    if text.is_empty() {
        return Ok(None);
    }
    decode("waiting task", text).map(Some)
}

/// Entries grouped by their line, each group in the order given.
fn by_line<'a, T>(
    entries: &'a [T],
    line: impl Fn(&'a T) -> (&'a str, &'a str),
) -> BTreeMap<(&'a str, &'a str), Vec<&'a T>> {
    let mut lines: BTreeMap<_, Vec<&T>> = BTreeMap::new();
    for entry in entries {
        lines.entry(line(entry)).or_default().push(entry);
    }
    lines
}

#[async_trait::async_trait]
impl Sequencer for RedisStore {
    async fn join(&self, joining: &[Joining], now: OffsetDateTime) -> Result<(), StoreError> {
        let lines = by_line(joining, |j| (j.app_id.as_str(), j.endpoint_id.as_str()));
        if lines.is_empty() {
            return Ok(());
        }
        // Registered before any message joins, so the sweep can always find a line with
        // messages in it.
        let now_ms = millis(now);
        let unlisted: Vec<String> = lines
            .keys()
            .map(|(app, endpoint)| member(app, endpoint))
            .filter(|line| !self.lines.is_fresh(line, now_ms))
            .collect();
        if !unlisted.is_empty() {
            let mut register = redis::cmd("ZADD");
            register.arg(self.keys.fifo_lines()).arg("GT");
            for line in &unlisted {
                register.arg(now_ms).arg(line);
            }
            register
                .query_async::<()>(&mut self.conn())
                .await
                .map_err(unavailable)?;
            for line in &unlisted {
                self.lines.record(line, now_ms);
            }
        }
        let now_us = micros(now);
        let joins = lines
            .iter()
            .map(|(line, entries)| self.join_line(*line, entries, now_us));
        futures::future::try_join_all(joins).await?;
        Ok(())
    }

    async fn turn(&self, task: &DeliveryTask) -> Result<Turn, StoreError> {
        let [line, waiting, handed, _] = self.line_keys(&task.app_id, &task.endpoint_id);
        let turn: i64 = TURN
            .key(line)
            .key(waiting)
            .key(handed)
            .arg(&task.msg_id)
            .arg(encode(task)?)
            .invoke_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(match turn {
            0 => Turn::Go,
            1 => Turn::Wait,
            _ => Turn::Gone,
        })
    }

    async fn leave(
        &self,
        leaving: &[Leaving],
        now: OffsetDateTime,
    ) -> Result<Vec<DeliveryTask>, StoreError> {
        let lines = by_line(leaving, |l| (l.app_id.as_str(), l.endpoint_id.as_str()));
        let leaves = lines.iter().map(|(line, entries)| {
            let msgs: Vec<&str> = entries.iter().map(|l| l.msg_id.as_str()).collect();
            async move { self.leave_line(*line, &msgs, millis(now)).await }
        });
        let handed = futures::future::try_join_all(leaves).await?;
        Ok(handed.into_iter().flatten().collect())
    }

    async fn stalled(
        &self,
        now: OffsetDateTime,
        stale: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<DeliveryTask>, StoreError> {
        let stale_ms = i64::try_from(stale.as_millis()).unwrap_or(i64::MAX);
        let now_ms = millis(now);
        let mut handed = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, page): (u64, Vec<(String, f64)>) = redis::cmd("ZSCAN")
                .arg(self.keys.fifo_lines())
                .arg(cursor)
                .arg("COUNT")
                .arg(LINES_PER_READ)
                .query_async(&mut self.conn())
                .await
                .map_err(unavailable)?;
            for (line, listed) in page {
                if let Some(task) = self.sweep_line(&line, listed, now_ms, stale_ms).await? {
                    handed.push(task);
                    if handed.len() >= limit {
                        return Ok(handed);
                    }
                }
            }
            if next == 0 {
                return Ok(handed);
            }
            cursor = next;
        }
    }

    async fn line(&self, app_id: &str, endpoint_id: &str) -> Result<LineState, StoreError> {
        let (length, head, waiting): (u64, Vec<String>, u64) = redis::pipe()
            .atomic()
            .zcard(self.keys.fifo_line(app_id, endpoint_id))
            .zrange(self.keys.fifo_line(app_id, endpoint_id), 0, 0)
            .hlen(self.keys.fifo_waiting(app_id, endpoint_id))
            .query_async(&mut self.conn())
            .await
            .map_err(unavailable)?;
        Ok(LineState {
            length,
            head: head.into_iter().next(),
            waiting,
        })
    }

    async fn remove_line(&self, app_id: &str, endpoint_id: &str) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.forget_line(&mut pipe, app_id, endpoint_id);
        pipe.query_async::<()>(&mut self.conn())
            .await
            .map_err(unavailable)
    }
}
