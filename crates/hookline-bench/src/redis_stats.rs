//! Redis commands per delivery, from the server's own counters (`INFO commandstats`), so the
//! figure covers every role that talks to Redis, whatever client it uses; and what a
//! deployment keeps in Redis: every key under its prefix, weighed and grouped by kind.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

/// Calls per command since the server started. `None` when Redis cannot be asked (the
/// figure is then left out rather than guessed).
pub async fn command_calls(redis_url: &str) -> Option<BTreeMap<String, u64>> {
    let client = redis::Client::open(redis_url).ok()?;
    let mut connection = client.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut connection)
        .await
        .ok()?;
    Some(parse_commandstats(&info))
}

/// `cmdstat_evalsha:calls=12,usec=…` lines as `{"evalsha": 12}`.
pub fn parse_commandstats(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|line| {
            let (name, fields) = line.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = fields
                .split(',')
                .find_map(|field| field.strip_prefix("calls="))?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// Commands per delivery between two readings, in total and by command (busiest first in
/// the report). `INFO` itself is the bench asking, not Hookline working: left out.
pub fn per_delivery(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    deliveries: usize,
) -> Option<Value> {
    if deliveries == 0 {
        return None;
    }
    let by_command: BTreeMap<&str, f64> = after
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .filter_map(|(name, calls)| {
            let added = calls.saturating_sub(before.get(name).copied().unwrap_or(0));
            (added > 0).then(|| (name.as_str(), added as f64 / deliveries as f64))
        })
        .collect();
    let total: f64 = by_command.values().sum();
    Some(json!({"perDelivery": total, "byCommand": by_command}))
}

/// "6.02 (evalsha 4.00, hset 1.01, …)", busiest first.
pub fn line(figure: &Value) -> Option<String> {
    let total = figure["perDelivery"].as_f64()?;
    let mut parts: Vec<(&String, f64)> = figure["byCommand"]
        .as_object()?
        .iter()
        .filter_map(|(name, per)| Some((name, per.as_f64()?)))
        // Background commands (the scheduler's polls, health checks) round to nothing.
        .filter(|(_, per)| *per >= 0.005)
        .collect();
    parts.sort_by(|a, b| b.1.total_cmp(&a.1));
    let parts: Vec<String> = parts
        .iter()
        .map(|(name, per)| format!("{name} {per:.2}"))
        .collect();
    Some(format!("{total:.2} ({})", parts.join(", ")))
}

/// Keys of one kind under a prefix (one pattern, ids replaced by `*`): how many, their
/// `MEMORY USAGE` in all, and their time to live.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyKind {
    pub keys: u64,
    pub bytes: u64,
    /// Keys that never expire.
    pub without_ttl: u64,
    /// The shortest and longest time to live of those that expire, in seconds.
    pub ttl_min_s: Option<f64>,
    pub ttl_max_s: Option<f64>,
}

/// Every key under a prefix, by kind.
pub type Census = BTreeMap<String, KeyKind>;

/// Keys read per `SCAN` and weighed per pipeline.
const SCAN_COUNT: usize = 1_000;

/// One `SCAN` page of the keys under `prefix` from `cursor`: the next cursor (0 at the end)
/// and the keys.
pub(crate) async fn scan_page(
    conn: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
    cursor: u64,
) -> redis::RedisResult<(u64, Vec<String>)> {
    redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(format!("{prefix}*"))
        .arg("COUNT")
        .arg(SCAN_COUNT)
        .query_async(conn)
        .await
}

/// Weighs every key under `prefix` (`SCAN`, then `MEMORY USAGE … SAMPLES 0` and `PTTL` for
/// each, pipelined a scan page at a time).
pub async fn census(redis_url: &str, prefix: &str) -> redis::RedisResult<Census> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let mut kinds = Census::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, keys) = scan_page(&mut conn, prefix, cursor).await?;
        if !keys.is_empty() {
            let mut pipe = redis::pipe();
            for key in &keys {
                pipe.cmd("MEMORY")
                    .arg("USAGE")
                    .arg(key)
                    .arg("SAMPLES")
                    .arg(0)
                    .cmd("PTTL")
                    .arg(key);
            }
            // A key that expired between SCAN and MEMORY USAGE weighs nothing (nil).
            let answers: Vec<Option<i64>> = pipe.query_async(&mut conn).await?;
            for (key, pair) in keys.iter().zip(answers.chunks(2)) {
                let (bytes, ttl_ms) = (pair[0], pair.get(1).copied().flatten());
                let Some(bytes) = bytes else { continue };
                let kind = kinds.entry(key_pattern(key, prefix)).or_default();
                kind.add(u64::try_from(bytes).unwrap_or(0), ttl_ms);
            }
        }
        if next == 0 {
            return Ok(kinds);
        }
        cursor = next;
    }
}

impl KeyKind {
    fn add(&mut self, bytes: u64, ttl_ms: Option<i64>) {
        self.keys += 1;
        self.bytes += bytes;
        match ttl_ms.filter(|ms| *ms >= 0) {
            Some(ms) => {
                let s = ms as f64 / 1000.0;
                self.ttl_min_s = Some(self.ttl_min_s.map_or(s, |m| m.min(s)));
                self.ttl_max_s = Some(self.ttl_max_s.map_or(s, |m| m.max(s)));
            }
            None => self.without_ttl += 1,
        }
    }
}

/// `used_memory` of `INFO memory`: the whole server's, every tenant of it included.
pub async fn used_memory(redis_url: &str) -> Option<u64> {
    let client = redis::Client::open(redis_url).ok()?;
    let mut connection = client.get_multiplexed_async_connection().await.ok()?;
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut connection)
        .await
        .ok()?;
    info.lines()
        .find_map(|l| l.trim().strip_prefix("used_memory:"))?
        .parse()
        .ok()
}

/// A key's kind: the key without the prefix, each id (`<prefix>_<22 characters>`) and each
/// long run of digits or hex (digests, timestamps) replaced by `*`, hash-tag braces kept:
/// `{app_*}:msg:msg_*`.
pub fn key_pattern(key: &str, prefix: &str) -> String {
    let rest = key.strip_prefix(prefix).unwrap_or(key);
    rest.split(':')
        .map(|segment| {
            let (open, inner, close) =
                match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(inner) => ("{", inner, "}"),
                    None => ("", segment, ""),
                };
            format!("{open}{}{close}", generalize(inner))
        })
        .collect::<Vec<_>>()
        .join(":")
}

fn generalize(segment: &str) -> String {
    if let Some((kind, body)) = segment.rsplit_once('_') {
        if body.len() == hookline_core::id::BODY_LEN
            && body.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return format!("{kind}_*");
        }
    }
    if segment.len() >= 8 && segment.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return "*".into();
    }
    segment.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_grouped_by_kind_with_ids_and_digests_generalized() {
        let app = hookline_core::id::new_id("app", 1_700_000_000_000);
        let msg = hookline_core::id::new_id("msg", 1_700_000_000_000);
        let p = "bench-42:";
        assert_eq!(
            key_pattern(&format!("{p}{{{app}}}:msg:{msg}"), p),
            "{app_*}:msg:msg_*"
        );
        assert_eq!(key_pattern(&format!("{p}{{sched}}:due"), p), "{sched}:due");
        assert_eq!(key_pattern(&format!("{p}apps"), p), "apps");
        assert_eq!(
            key_pattern(&format!("{p}app_token:0123456789abcdef0123"), p),
            "app_token:*"
        );
        assert_eq!(
            key_pattern(&format!("{p}{{backlog}}:batch:1700000000123"), p),
            "{backlog}:batch:*"
        );
        let mut kind = KeyKind::default();
        kind.add(100, Some(5_000));
        kind.add(50, Some(1_000));
        kind.add(10, Some(-1));
        assert_eq!(kind.keys, 3);
        assert_eq!(kind.bytes, 160);
        assert_eq!(kind.without_ttl, 1);
        assert_eq!((kind.ttl_min_s, kind.ttl_max_s), (Some(1.0), Some(5.0)));
    }

    #[test]
    fn counts_each_commands_calls_per_delivery_without_the_benchs_own_info() {
        let before = parse_commandstats(
            "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=5,usec_per_call=0.5\r\ncmdstat_info:calls=1,usec=1\r\n",
        );
        let after = parse_commandstats(
            "cmdstat_evalsha:calls=2010,usec=9\r\ncmdstat_hset:calls=1000,usec=1\r\ncmdstat_ping:calls=1,usec=1\r\ncmdstat_info:calls=2,usec=1\r\n",
        );
        assert_eq!(before["evalsha"], 10);
        let figure = per_delivery(&before, &after, 1000).expect("a figure");
        let total = figure["perDelivery"].as_f64().expect("a number");
        assert!((total - 3.001).abs() < 1e-9, "{total}");
        assert_eq!(figure["byCommand"]["evalsha"], 2.0);
        assert!(figure["byCommand"].get("info").is_none());
        assert_eq!(
            line(&figure).as_deref(),
            Some("3.00 (evalsha 2.00, hset 1.00)")
        );
        assert!(per_delivery(&before, &after, 0).is_none());
    }
}
