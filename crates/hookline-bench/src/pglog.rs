//! The delivery log's scenarios: 7 what the log keeps per message in Redis and in
//! PostgreSQL, 8 dropping a day past retention under scenario 5's load, 9 the reads a
//! person waits for, against a log of millions of messages.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookline_postgres::PgLog;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::client::ClientError;
use crate::fixture::{self, rfc3339, Spec, Template};
use crate::receiver::Behaviour;
use crate::redis_stats::{self, Census};
use crate::scenarios::{paths, result, Bench, ScenarioError, ScenarioResult};
use crate::stats::{self, LatencyBin, Matched};

/// Scenario 7's payload, and scenario 8's fixture's: 1 KiB as stored (minified JSON).
pub const PAYLOAD_BYTES: usize = 1024;
/// Scenario 7's targets, per message: Redis keeps only what is short-lived; PostgreSQL the
/// message, its destination and one attempt with their indexes.
pub const REDIS_BYTES_TARGET: f64 = 200.0;
pub const POSTGRES_BYTES_TARGET: f64 = 2_500.0;
/// Scenario 8: the dropped day is this old, under the default retention.
pub const DROP_DAY_AGE: i64 = 40;
pub const RETENTION_DAYS: u64 = 30;
pub const DROP_TARGET_MS: f64 = 1_000.0;
pub const LATENCY_P99_TARGET_MS: f64 = 25.0;
/// Scenario 9's fixture: days, endpoints and event types, and the target per query.
pub const READ_DAYS: i64 = 10;
pub const READ_ENDPOINTS: usize = 10;
pub const READ_EVENT_TYPES: usize = 20;
pub const READ_P99_TARGET_MS: f64 = 50.0;
/// How long scenario 7 waits for the deployment to finish its work after the deliveries.
const SETTLE_DEADLINE: Duration = Duration::from_secs(120);

/// Where the bench's own deployment keeps its state.
#[derive(Debug, Clone)]
pub struct LogTarget {
    pub redis_url: String,
    pub redis_prefix: String,
    /// The delivery log on PostgreSQL; `None`: the log is in Redis.
    pub log: Option<PgLog>,
}

fn log_error(what: &str) -> impl Fn(String) -> ScenarioError + '_ {
    move |e| ScenarioError::Log(format!("{what}: {e}"))
}

/// `{"data":"…"}` of exactly `bytes` bytes, the text random base62: the log compresses what
/// it stores, and a payload of repeated characters would weigh almost nothing. Real
/// payloads (JSON with repeated keys) compress better than this, so the sizes measured with
/// it are an upper bound.
pub fn payload(bytes: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let text: String = (0..bytes.saturating_sub(11))
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{{\"data\":\"{text}\"}}")
}

fn body(bytes: usize) -> Value {
    let payload: Value = serde_json::from_str(&payload(bytes)).unwrap_or(Value::Null);
    json!({"eventType": "bench.event", "payload": payload})
}

/// An app with an endpoint on each receiver path; answers its id and the endpoints' ids and
/// URLs.
async fn app_with_endpoints(
    bench: &Bench,
    name: &str,
    paths: &[String],
) -> Result<(String, Vec<(String, String)>), ClientError> {
    let app = bench.api.create_app(name).await?;
    let mut endpoints = Vec::with_capacity(paths.len());
    for path in paths {
        let url = bench.receiver.url(path, Behaviour::Accept);
        let id = bench.api.create_endpoint(&app, &url).await?;
        endpoints.push((id, url));
    }
    Ok((app, endpoints))
}

// ---------------------------------------------------------------------------------------
// Scenario 7: log sizing.

/// What the deployment keeps, read before and after the scenario's messages.
struct Weights {
    keys: Census,
    used_memory: Option<u64>,
    tables: Option<BTreeMap<String, i64>>,
    /// Each table's heap, its rest (TOAST, free space and visibility maps) and each index,
    /// summed over the partitions.
    parts: Option<BTreeMap<String, i64>>,
}

/// Bytes of the log's relations by part, summed over the partitions: `<table> heap`,
/// `<table> toast+maps`, and each index by its name on the partitioned table.
async fn relation_parts(log: &PgLog) -> Result<BTreeMap<String, i64>, String> {
    let client = log.raw().await.map_err(|e| e.to_string())?;
    let rows = client
        .query(
            "SELECT p.relname || ' heap', sum(pg_relation_size(c.oid))::int8
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent
             JOIN pg_namespace n ON n.oid = p.relnamespace
             WHERE n.nspname = $1 AND p.relkind = 'p' GROUP BY p.relname
             UNION ALL
             SELECT p.relname || ' toast+maps', sum(pg_total_relation_size(c.oid)
                    - pg_relation_size(c.oid) - pg_indexes_size(c.oid))::int8
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent
             JOIN pg_namespace n ON n.oid = p.relnamespace
             WHERE n.nspname = $1 AND p.relkind = 'p' GROUP BY p.relname
             UNION ALL
             SELECT p.relname, sum(pg_relation_size(c.oid))::int8
             FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent
             JOIN pg_namespace n ON n.oid = p.relnamespace
             WHERE n.nspname = $1 AND p.relkind = 'I' GROUP BY p.relname",
            &[&log.schema()],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

impl Weights {
    async fn read(target: &LogTarget) -> Result<Self, ScenarioError> {
        let keys = redis_stats::census(&target.redis_url, &target.redis_prefix)
            .await
            .map_err(|e| ScenarioError::Log(format!("weighing the Redis keys: {e}")))?;
        let (tables, parts) = match &target.log {
            Some(log) => {
                let tables = log
                    .table_bytes()
                    .await
                    .map_err(|e| ScenarioError::Log(format!("sizing the log's tables: {e}")))?;
                let parts = relation_parts(log)
                    .await
                    .map_err(log_error("sizing the log's relations"))?;
                (Some(tables), Some(parts))
            }
            None => (None, None),
        };
        Ok(Self {
            keys,
            used_memory: redis_stats::used_memory(&target.redis_url).await,
            tables,
            parts,
        })
    }

    fn key_bytes(&self) -> u64 {
        self.keys.values().map(|k| k.bytes).sum()
    }
}

/// 7: `log_messages` messages of a 1 KiB payload to one endpoint, then what the deployment
/// keeps per message in Redis and, with the log there, in PostgreSQL.
pub async fn sizing(bench: &Bench, target: &LogTarget) -> Result<ScenarioResult, ScenarioError> {
    let messages = bench.scale.log_messages;
    let before = Weights::read(target).await?;
    let paths = paths("s7", 1);
    let (app, endpoints) = app_with_endpoints(bench, "7 log sizing", &paths).await?;
    let body = Arc::new(body(PAYLOAD_BYTES));
    let (sent, matched) = bench
        .flood_app("7 log sizing", &app, &paths, body, messages)
        .await;
    let settled = settle(bench, target, &app, &endpoints[0].0, matched.deliveries()).await;
    let after = Weights::read(target).await?;
    let mut r = result(7, "log sizing: bytes kept per message", &sent, &matched, 1);
    size_figures(&mut r, &before, &after, sent.sent.len(), settled);
    Ok(r)
}

/// Whether everything of the app was done (and how long it took to be): nothing pending
/// in the backlog statistics, no retry scheduled, no outbox mark left, an attempt logged
/// for each delivery and (PostgreSQL) every destination a success.
async fn settle(
    bench: &Bench,
    target: &LogTarget,
    app: &str,
    endpoint: &str,
    delivered: usize,
) -> (bool, f64) {
    let started = Instant::now();
    let keys = hookline_redis::Keys::new(&target.redis_prefix);
    let redis = match redis::Client::open(target.redis_url.as_str()) {
        Ok(client) => client.get_multiplexed_async_connection().await.ok(),
        Err(_) => None,
    };
    let Some(mut redis) = redis else {
        return (false, 0.0);
    };
    loop {
        let pending = bench
            .api
            .get("/api/v1/stats/backlog?limit=5")
            .await
            .ok()
            .and_then(|v| v["pending"].as_u64());
        let zcard = |key: String| redis::cmd("ZCARD").arg(key).clone();
        let mut pipe = redis::pipe();
        pipe.add_command(zcard(keys.schedule_due()))
            .add_command(zcard(keys.outbox(app)))
            .add_command(zcard(keys.endpoint_attempts(app, endpoint)));
        let counts: Vec<u64> = pipe.query_async(&mut redis).await.unwrap_or_default();
        let (logged, unfinished) = match &target.log {
            Some(log) => logged_in_postgres(log, app).await.unwrap_or((0, 1)),
            None => (counts.get(2).copied().unwrap_or(0), 0),
        };
        let quiet = pending.is_none_or(|p| p == 0)
            && counts.len() == 3
            && counts[0] == 0
            && counts[1] == 0
            && logged >= delivered as u64
            && unfinished == 0;
        if quiet || started.elapsed() > SETTLE_DEADLINE {
            return (quiet, started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The app's attempts in the log, and its destinations not (yet) a success.
async fn logged_in_postgres(log: &PgLog, app: &str) -> Option<(u64, u64)> {
    let client = log.raw().await.ok()?;
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM attempts WHERE app_id = $1),
                    (SELECT count(*) FROM destinations WHERE app_id = $1 AND status <> 0)",
            &[&app],
        )
        .await
        .ok()?;
    let (logged, unfinished): (i64, i64) = (row.get(0), row.get(1));
    Some((u64::try_from(logged).ok()?, u64::try_from(unfinished).ok()?))
}

fn size_figures(
    r: &mut ScenarioResult,
    before: &Weights,
    after: &Weights,
    messages: usize,
    (settled, settle_seconds): (bool, f64),
) {
    let n = messages.max(1) as f64;
    let redis_added = after.key_bytes() as f64 - before.key_bytes() as f64;
    let redis_per = redis_added / n;
    let used_memory_per = after
        .used_memory
        .zip(before.used_memory)
        .map(|(a, b)| (a as f64 - b as f64) / n);
    let kinds: Vec<Value> = after
        .keys
        .iter()
        .map(|(pattern, kind)| {
            let old = before.keys.get(pattern).cloned().unwrap_or_default();
            let added = kind.bytes as f64 - old.bytes as f64;
            json!({
                "pattern": pattern,
                "keys": kind.keys,
                "bytes": kind.bytes,
                "addedKeys": kind.keys as i64 - old.keys as i64,
                "addedBytesPerMessage": added / n,
                "withoutTtl": kind.without_ttl,
                "ttlMinS": kind.ttl_min_s,
                "ttlMaxS": kind.ttl_max_s,
            })
        })
        .collect();
    let added = |a: &BTreeMap<String, i64>, b: &BTreeMap<String, i64>| -> BTreeMap<String, f64> {
        a.iter()
            .map(|(name, bytes)| {
                let old = b.get(name).copied().unwrap_or(0);
                (name.clone(), (bytes - old) as f64 / n)
            })
            .collect()
    };
    let postgres = after
        .tables
        .as_ref()
        .zip(before.tables.as_ref())
        .map(|(a, b)| {
            let per_table = added(a, b);
            let total: f64 = per_table.values().sum();
            (total, per_table)
        });
    let parts = after
        .parts
        .as_ref()
        .zip(before.parts.as_ref())
        .map(|(a, b)| added(a, b));
    let whole = r.deliveries == r.expected_deliveries && settled;
    match &postgres {
        Some((total, tables)) => {
            let table = |t: &str| tables.get(t).copied().unwrap_or(0.0);
            r.figure = format!(
                "Redis {redis_per:.0} B, PostgreSQL {total:.0} B per message (messages {:.0}, destinations {:.0}, attempts {:.0})",
                table("messages"),
                table("destinations"),
                table("attempts")
            );
            r.target = format!(
                "Redis ≤ {REDIS_BYTES_TARGET:.0} B, PostgreSQL ≤ {POSTGRES_BYTES_TARGET:.0} B"
            );
            r.met = whole && redis_per <= REDIS_BYTES_TARGET && *total <= POSTGRES_BYTES_TARGET;
        }
        None => {
            r.figure = format!("Redis {redis_per:.0} B per message (the log in Redis)");
            r.target = "none: compares with --postgres".into();
            r.met = whole;
        }
    }
    r.details = json!({
        "firstRejection": r.details["firstRejection"],
        "logIn": if postgres.is_some() { "postgres" } else { "redis" },
        "payloadBytes": PAYLOAD_BYTES,
        "settled": settled,
        "settleSeconds": settle_seconds,
        "redis": {
            "bytesPerMessage": redis_per,
            "keyBytesBefore": before.key_bytes(),
            "keyBytesAfter": after.key_bytes(),
            "usedMemoryBefore": before.used_memory,
            "usedMemoryAfter": after.used_memory,
            "usedMemoryPerMessage": used_memory_per,
            "kinds": kinds,
        },
        "postgres": postgres.map(|(total, tables)| json!({
            "bytesPerMessage": total,
            "bytesPerMessageByTable": tables,
            "bytesPerMessageByPart": parts,
            "tableBytesBefore": before.tables,
            "tableBytesAfter": after.tables,
        })),
    });
}

/// The table's lines about scenario 7: the figures and the Redis keys left, by kind.
pub fn sizing_lines(details: &Value) -> Vec<String> {
    let redis = &details["redis"];
    let mut lines = vec![format!(
        "log sizing (scenario 7, log in {}): Redis keys {:.0} B per message (INFO used_memory {} B per message, every tenant of that Redis included); settled: {}",
        details["logIn"].as_str().unwrap_or("?"),
        redis["bytesPerMessage"].as_f64().unwrap_or(0.0),
        redis["usedMemoryPerMessage"]
            .as_f64()
            .map_or("unknown".into(), |b| format!("{b:.0}")),
        details["settled"],
    )];
    for kind in redis["kinds"].as_array().into_iter().flatten() {
        let ttl = match (kind["ttlMinS"].as_f64(), kind["ttlMaxS"].as_f64()) {
            (Some(min), Some(max)) => format!("TTL {min:.0}–{max:.0} s"),
            _ => "no TTL".into(),
        };
        let never = kind["withoutTtl"].as_u64().unwrap_or(0);
        let never = if never > 0 && kind["ttlMinS"].is_number() {
            format!(", {never} without")
        } else {
            String::new()
        };
        lines.push(format!(
            "  {:<40} {:>8} keys {:>10} B  {:>8.1} B/message added  {ttl}{never}",
            kind["pattern"].as_str().unwrap_or("?"),
            kind["keys"],
            kind["bytes"],
            kind["addedBytesPerMessage"].as_f64().unwrap_or(0.0),
        ));
    }
    if let Some(tables) = details["postgres"]["bytesPerMessageByTable"].as_object() {
        let parts: Vec<String> = tables
            .iter()
            .map(|(t, b)| format!("{t} {:.0}", b.as_f64().unwrap_or(0.0)))
            .collect();
        lines.push(format!(
            "  PostgreSQL (tables with their indexes): {:.0} B per message: {}",
            details["postgres"]["bytesPerMessage"]
                .as_f64()
                .unwrap_or(0.0),
            parts.join(", ")
        ));
    }
    if let Some(parts) = details["postgres"]["bytesPerMessageByPart"].as_object() {
        let parts: Vec<String> = parts
            .iter()
            .map(|(t, b)| format!("{t} {:.0}", b.as_f64().unwrap_or(0.0)))
            .collect();
        lines.push(format!("  by part, B per message: {}", parts.join(", ")));
    }
    lines
}

// ---------------------------------------------------------------------------------------
// Fixtures for 8 and 9.

/// An app whose log the bench writes itself, shaped after one real delivery to it.
struct FixtureApp {
    app: String,
    endpoints: Vec<(String, String)>,
    template: Template,
    /// The real delivery's arrivals (one per endpoint).
    delivered: usize,
}

impl FixtureApp {
    async fn make(
        bench: &Bench,
        log: &PgLog,
        name: &str,
        paths: &[String],
    ) -> Result<Self, ScenarioError> {
        let (app, endpoints) = app_with_endpoints(bench, name, paths).await?;
        let msg = bench.api.send(&app, &bench.body).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let template = loop {
            let read = Template::read(log, &app, &msg, &endpoints[0].0).await;
            if let Some(template) = read.map_err(log_error("reading a logged delivery"))? {
                break template;
            }
            if Instant::now() > deadline {
                return Err(ScenarioError::Log(format!(
                    "{name}: the first delivery's attempt was not in the log within 30 s"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let bar = bench.bar(0, &format!("{name}: first delivery"));
        bench.await_deliveries(paths, paths.len(), &bar).await;
        let delivered = bench.receiver.count_on(paths);
        let _ = bench.receiver.take();
        Ok(Self {
            app,
            endpoints,
            template,
            delivered,
        })
    }

    fn spec(&self, messages: usize, from: OffsetDateTime, days: i64, payload: String) -> Spec {
        Spec {
            app_id: self.app.clone(),
            endpoints: self.endpoints.clone(),
            event_types: vec!["bench.event".into()],
            messages,
            from_ms: unix_ms(from),
            span_ms: u64::try_from(days).unwrap_or(1) * 86_400_000,
            payload,
        }
    }
}

fn unix_ms(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn midnight(days_ago: i64) -> OffsetDateTime {
    let day = OffsetDateTime::now_utc().date() - time::Duration::days(days_ago);
    day.midnight().assume_utc()
}

/// Checks the disk, makes the days' partitions and writes the fixture.
async fn write_fixture(
    bench: &Bench,
    log: &PgLog,
    spec: &Spec,
    template: &Template,
    what: &str,
) -> Result<(fixture::Loaded, Option<u64>), ScenarioError> {
    let estimate = fixture::estimate_bytes(spec.messages, spec.payload.len());
    let free = fixture::check_disk(log, estimate, what)
        .await
        .map_err(ScenarioError::Log)?;
    let first = OffsetDateTime::from_unix_timestamp_nanos(i128::from(spec.from_ms) * 1_000_000)
        .map_err(|e| ScenarioError::Log(e.to_string()))?;
    let last = first + time::Duration::milliseconds(i64::try_from(spec.span_ms).unwrap_or(0) - 1);
    log.ensure_days(first, last)
        .await
        .map_err(|e| ScenarioError::Log(format!("{what}: making partitions: {e}")))?;
    let bar = bench.bar(spec.messages, &format!("{what}: writing the log"));
    let loaded = fixture::load(log, spec, template, &bar)
        .await
        .map_err(log_error(what))?;
    bar.finish();
    Ok((loaded, free))
}

// ---------------------------------------------------------------------------------------
// Scenario 8: retention drop.

/// The drop as the bench timed it, on the bench's clock.
struct TimedDrop {
    started: Duration,
    took: Duration,
    dropped: Result<Vec<String>, String>,
    /// Each statement of the drop seen running, with the longest it was seen running (ms).
    statements: BTreeMap<String, f64>,
}

/// How often the drop's statements are looked for in `pg_stat_activity`.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

async fn timed_drop(log: PgLog, delay: Duration, epoch: Instant) -> TimedDrop {
    tokio::time::sleep(delay).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let sampler = tokio::spawn(sample_statements(log.clone(), stopped));
    let started = epoch.elapsed();
    let clock = Instant::now();
    let dropped = log
        .drop_older_than(OffsetDateTime::now_utc(), RETENTION_DAYS)
        .await
        .map_err(|e| e.to_string());
    let took = clock.elapsed();
    let _ = stop.send(true);
    TimedDrop {
        started,
        took,
        dropped,
        statements: sampler.await.unwrap_or_default(),
    }
}

/// Where the drop spends its time, seen from outside: every `SAMPLE_EVERY`, the DDL
/// statements running on the log's schema and for how long each has run (a statement
/// shorter than the period may go unseen).
async fn sample_statements(
    log: PgLog,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> BTreeMap<String, f64> {
    let mut seen = BTreeMap::new();
    let Ok(client) = log.raw().await else {
        return seen;
    };
    let (alter, drop) = (
        format!("ALTER TABLE \"{}\".%", log.schema()),
        format!("DROP TABLE IF EXISTS \"{}\".%", log.schema()),
    );
    while !*stop.borrow() {
        let rows = client
            .query(
                "SELECT query, (extract(epoch FROM clock_timestamp() - query_start) * 1000)::float8
                 FROM pg_stat_activity
                 WHERE state = 'active' AND pid <> pg_backend_pid()
                   AND (query LIKE $1 OR query LIKE $2)",
                &[&alter, &drop],
            )
            .await
            .unwrap_or_default();
        for row in rows {
            let (query, ms): (String, f64) = (row.get(0), row.get(1));
            let longest: &mut f64 = seen.entry(query).or_default();
            *longest = longest.max(ms);
        }
        tokio::select! {
            _ = stop.changed() => {}
            () = tokio::time::sleep(SAMPLE_EVERY) => {}
        }
    }
    seen
}

/// Rows of each table in days wholly past retention: what the drop should remove.
async fn rows_past_retention(log: &PgLog) -> Result<BTreeMap<String, i64>, ScenarioError> {
    let cutoff = unix_ms(midnight(i64::try_from(RETENTION_DAYS).unwrap_or(30)));
    let msg = hookline_core::id::lower_bound("msg", cutoff);
    let atmpt = hookline_core::id::lower_bound("atmpt", cutoff);
    let client = log
        .raw()
        .await
        .map_err(|e| ScenarioError::Log(e.to_string()))?;
    let row = client
        .query_one(
            "SELECT (SELECT count(*) FROM messages WHERE id < $1),
                    (SELECT count(*) FROM destinations WHERE msg_id < $1),
                    (SELECT count(*) FROM attempts WHERE id < $2)",
            &[&msg, &atmpt],
        )
        .await
        .map_err(|e| ScenarioError::Log(format!("counting rows past retention: {e}")))?;
    Ok(["messages", "destinations", "attempts"]
        .iter()
        .enumerate()
        .map(|(i, t)| ((*t).to_owned(), row.get::<_, i64>(i)))
        .collect())
}

/// 8: a day of log 40 days old (`drop_messages` messages of 1 KiB, one destination and one
/// attempt each), then scenario 5's load, and a few seconds into it the day dropped
/// (`PgLog::drop_older_than`, 30 days kept), timed.
pub async fn retention_drop(bench: &Bench, log: &PgLog) -> Result<ScenarioResult, ScenarioError> {
    let scale = bench.scale;
    let old = FixtureApp::make(bench, log, "8 retention drop", &paths("s8-old", 1)).await?;
    let spec = old.spec(
        scale.drop_messages,
        midnight(DROP_DAY_AGE),
        1,
        payload(PAYLOAD_BYTES),
    );
    let (loaded, free) =
        write_fixture(bench, log, &spec, &old.template, "8 retention drop").await?;
    let rows = rows_past_retention(log).await?;
    let bytes_before = log
        .table_bytes()
        .await
        .map_err(|e| ScenarioError::Log(e.to_string()))?;

    let delay = Duration::from_secs_f64((scale.latency_seconds / 5.0).min(3.0));
    let drop = tokio::spawn(timed_drop(log.clone(), delay, bench.epoch));
    let live = paths("s8", 1);
    let endpoints = [(live[0].clone(), Behaviour::Accept)];
    let (_, sent, matched) = bench
        .steady(
            "8 retention drop: scenario 5's load",
            &endpoints,
            &[],
            &live,
            scale.latency_rate,
            scale.latency_seconds,
        )
        .await?;
    let drop = drop
        .await
        .map_err(|e| ScenarioError::Log(format!("the drop's task: {e}")))?;
    let rows_left = rows_past_retention(log).await?;
    let bytes_after = log
        .table_bytes()
        .await
        .map_err(|e| ScenarioError::Log(e.to_string()))?;

    let mut r = result(
        8,
        "retention drop under scenario 5's load",
        &sent,
        &matched,
        1,
    );
    let fixture = json!({
        "messages": loaded.messages,
        "payloadBytes": PAYLOAD_BYTES,
        "day": midnight(DROP_DAY_AGE).date().to_string(),
        "writeSeconds": loaded.seconds,
        "freeDiskBefore": free,
        "templateDeliveries": old.delivered,
    });
    let tables = json!({
        "rowsPastRetention": rows,
        "rowsLeftAfterDrop": rows_left,
        "tableBytesBefore": bytes_before,
        "tableBytesAfter": bytes_after,
    });
    drop_figures(&mut r, &matched, &drop, fixture, tables);
    Ok(r)
}

/// Scenario 8's figure, target and details: the drop's time, the rows it removed, and the
/// load's latency overall and in each second the drop overlapped.
fn drop_figures(
    r: &mut ScenarioResult,
    matched: &Matched,
    drop: &TimedDrop,
    fixture: Value,
    tables: Value,
) {
    let bins = seconds_by_due(matched);
    let origin = matched.first_due.as_secs_f64();
    let (from, to) = (
        drop.started.as_secs_f64() - origin,
        (drop.started + drop.took).as_secs_f64() - origin,
    );
    let during: Vec<&LatencyBin> = bins
        .iter()
        .filter(|b| b.t + 1.0 > from && b.t <= to)
        .collect();
    let window_p99 = during.iter().map(|b| b.p99_ms).fold(0.0, f64::max);
    let took_ms = drop.took.as_secs_f64() * 1000.0;
    let rows = &tables["rowsPastRetention"];
    let dropped_rows: i64 = rows
        .as_object()
        .map_or(0, |t| t.values().filter_map(Value::as_i64).sum());
    r.figure = format!(
        "dropped {dropped_rows} rows ({} messages) in {took_ms:.0} ms; p99 {:.1} ms, {window_p99:.1} ms in the drop's second",
        rows["messages"].as_i64().unwrap_or(0),
        r.latency.p99_ms
    );
    r.target = format!("drop < {DROP_TARGET_MS:.0} ms; p99 < {LATENCY_P99_TARGET_MS:.0} ms");
    let gone = tables["rowsLeftAfterDrop"]
        .as_object()
        .is_some_and(|t| t.values().all(|n| n.as_i64() == Some(0)));
    r.met = drop.dropped.is_ok()
        && gone
        && took_ms < DROP_TARGET_MS
        && r.latency.p99_ms < LATENCY_P99_TARGET_MS
        && window_p99 < LATENCY_P99_TARGET_MS
        && !during.is_empty()
        && r.deliveries == r.expected_deliveries;
    let mut details = json!({
        "firstRejection": r.details["firstRejection"],
        "fixture": fixture,
        "dropMs": took_ms,
        "dropStartS": from,
        "dropEndS": to,
        "droppedPartitions": drop.dropped.as_ref().ok(),
        "dropStatementsSeenMs": drop.statements,
        "dropError": drop.dropped.as_ref().err(),
        "dropWindowP99Ms": window_p99,
        "dropWindows": during,
        "latencyBySecond": bins,
    });
    if let (Some(details), Some(tables)) = (details.as_object_mut(), tables.as_object()) {
        details.extend(tables.clone());
    }
    r.details = details;
}

/// Latency per second of the load, by when each message was due, from the first due send.
fn seconds_by_due(matched: &Matched) -> Vec<LatencyBin> {
    let origin = matched.first_due.as_secs_f64();
    let points: Vec<(f64, u64)> = matched
        .arrival_times
        .iter()
        .zip(&matched.latencies_us)
        .map(|(at, us)| {
            let due = at.saturating_sub(Duration::from_micros(*us));
            (due.as_secs_f64() - origin, *us)
        })
        .collect();
    stats::latency_bins(&points, 0.0, 1.0)
}

/// The table's line about scenario 8.
pub fn drop_line(details: &Value) -> String {
    format!(
        "retention drop (scenario 8): {} partitions dropped in {:.0} ms, starting {:.1} s into the load; rows past retention {} before, {} after; p99 of each second the drop touched: {}",
        details["droppedPartitions"].as_array().map_or(0, Vec::len),
        details["dropMs"].as_f64().unwrap_or(0.0),
        details["dropStartS"].as_f64().unwrap_or(0.0),
        details["rowsPastRetention"],
        details["rowsLeftAfterDrop"],
        details["dropWindows"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| format!(
                "{:.0} ms (second {}, {} deliveries)",
                b["p99Ms"].as_f64().unwrap_or(0.0),
                b["t"],
                b["count"]
            ))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// The table's line about where scenario 8's drop spent its time.
pub fn drop_statements_line(details: &Value) -> String {
    let mut seen: Vec<(String, f64)> = details["dropStatementsSeenMs"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(q, ms)| (q.clone(), ms.as_f64().unwrap_or(0.0)))
        .collect();
    seen.sort_by(|a, b| b.1.total_cmp(&a.1));
    let parts: Vec<String> = seen
        .iter()
        .map(|(q, ms)| {
            format!(
                "{ms:.0} ms {}",
                q.split_whitespace().take(6).collect::<Vec<_>>().join(" ")
            )
        })
        .collect();
    format!(
        "  statements seen running (longest first, sampled every {} ms): {}",
        SAMPLE_EVERY.as_millis(),
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join("; ")
        }
    )
}

// ---------------------------------------------------------------------------------------
// Scenario 9: log reads at volume.

/// The reads scenario 9 times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// One event type's messages in one hour.
    MessagesByTypeInHour,
    /// An endpoint's newest attempts.
    EndpointAttempts,
    /// A page of an endpoint's attempts deep in the log (an iterator days back).
    EndpointAttemptsDeep,
    /// An endpoint's delivery statistics over one day.
    EndpointStats,
}

const READS: [Read; 4] = [
    Read::MessagesByTypeInHour,
    Read::EndpointAttempts,
    Read::EndpointAttemptsDeep,
    Read::EndpointStats,
];

impl Read {
    fn name(self) -> &'static str {
        match self {
            Self::MessagesByTypeInHour => "messages of one type in one hour",
            Self::EndpointAttempts => "endpoint's attempts, first page",
            Self::EndpointAttemptsDeep => "endpoint's attempts, a page deep in",
            Self::EndpointStats => "endpoint stats over one day",
        }
    }

    /// A request of this kind at random places in the fixture.
    fn path(self, spec: &Spec, rng: &mut impl rand::Rng) -> String {
        let app = &spec.app_id;
        let (endpoint, _) = &spec.endpoints[rng.random_range(0..spec.endpoints.len())];
        let event_type = &spec.event_types[rng.random_range(0..spec.event_types.len())];
        let hour = 3_600_000;
        let day = 86_400_000;
        // Whole seconds, so a time reads the same in the request and in the logs.
        let mut at = |from: u64, to: u64| (rng.random_range(from..to.max(from + 1)) / 1000) * 1000;
        match self {
            Self::MessagesByTypeInHour => {
                let after = at(spec.from_ms, spec.from_ms + spec.span_ms - hour);
                format!(
                    "/api/v1/app/{app}/msg?event_types={event_type}&after={}&before={}",
                    rfc3339(after),
                    rfc3339(after + hour)
                )
            }
            Self::EndpointAttempts => format!("/api/v1/app/{app}/attempt/endpoint/{endpoint}"),
            Self::EndpointAttemptsDeep => {
                let from = at(spec.from_ms, spec.from_ms + spec.span_ms);
                let iterator = hookline_core::id::new_id("atmpt", from);
                format!("/api/v1/app/{app}/attempt/endpoint/{endpoint}?iterator={iterator}")
            }
            Self::EndpointStats => {
                let until = at(spec.from_ms + day, spec.from_ms + spec.span_ms);
                format!(
                    "/api/v1/app/{app}/endpoint/{endpoint}/stats?since={}&until={}",
                    rfc3339(until - day),
                    rfc3339(until)
                )
            }
        }
    }
}

/// One kind of read, timed.
#[derive(Debug, Default)]
struct Timed {
    latencies_us: Vec<u64>,
    items: usize,
    failures: usize,
    first_error: Option<String>,
    example: String,
}

impl Timed {
    fn summary(&self, read: Read) -> Value {
        let answered = self.latencies_us.len().saturating_sub(self.failures).max(1);
        json!({
            "query": read.name(),
            "requests": self.latencies_us.len(),
            "failures": self.failures,
            "firstError": self.first_error,
            "meanItems": self.items as f64 / answered as f64,
            "latency": stats::latency(&self.latencies_us),
            "example": self.example,
        })
    }
}

/// How many items an answer holds: a list's `data`, or the sum of a statistics answer.
fn items(answer: &Value) -> usize {
    match answer["data"].as_array() {
        Some(data) => data.len(),
        None => answer.as_object().map_or(0, |o| {
            o.values().filter_map(Value::as_u64).sum::<u64>() as usize
        }),
    }
}

/// Times `requests` of each read, one at a time, the kinds taking turns.
async fn time_reads(bench: &Bench, spec: &Spec, requests: usize) -> Vec<Timed> {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut timed: Vec<Timed> = READS.iter().map(|_| Timed::default()).collect();
    let bar = bench.bar(requests * READS.len(), "9 log reads: timing reads");
    for _ in 0..requests {
        for (read, timed) in READS.iter().zip(timed.iter_mut()) {
            let path = read.path(spec, &mut rng);
            let clock = Instant::now();
            let answer = bench.api.get(&path).await;
            let us = u64::try_from(clock.elapsed().as_micros()).unwrap_or(u64::MAX);
            timed.latencies_us.push(us);
            match answer {
                Ok(answer) => timed.items += items(&answer),
                Err(error) => {
                    timed.failures += 1;
                    timed.first_error.get_or_insert_with(|| error.to_string());
                }
            }
            if timed.example.is_empty() {
                timed.example = path;
            }
            bar.inc(1);
        }
    }
    bar.finish();
    timed
}

/// 9: `read_fixture_messages` messages of one app over 10 days (20 event types, 10
/// endpoints, one attempt each, delivered), then the reads a person waits for, timed
/// through the API.
pub async fn log_reads(bench: &Bench, log: &PgLog) -> Result<ScenarioResult, ScenarioError> {
    let scale = bench.scale;
    let receivers = paths("s9", READ_ENDPOINTS);
    let app = FixtureApp::make(bench, log, "9 log reads", &receivers).await?;
    let mut spec = app.spec(
        scale.read_fixture_messages,
        midnight(READ_DAYS),
        READ_DAYS,
        payload(scale.read_fixture_payload_bytes),
    );
    spec.event_types = (0..READ_EVENT_TYPES)
        .map(|i| format!("bench.type{i:02}"))
        .collect();
    let (loaded, free) = write_fixture(bench, log, &spec, &app.template, "9 log reads").await?;
    eprintln!("9 log reads: VACUUM (ANALYZE) of the log…");
    let vacuum = fixture::vacuum(log).await.map_err(log_error("vacuuming"))?;
    let tables = log
        .table_bytes()
        .await
        .map_err(|e| ScenarioError::Log(e.to_string()))?;

    let timed = time_reads(bench, &spec, scale.read_requests).await;
    let all: Vec<u64> = timed.iter().flat_map(|t| t.latencies_us.clone()).collect();
    let p99 = |t: &Timed| stats::latency(&t.latencies_us).p99_ms;
    let failures: usize = timed.iter().map(|t| t.failures).sum();
    let mut r = ScenarioResult {
        id: 9,
        name: "log reads at volume",
        messages: loaded.messages,
        deliveries: app.delivered,
        expected_deliveries: READ_ENDPOINTS,
        duplicates: 0,
        rejected: failures as u64,
        per_second: 0.0,
        latency: stats::latency(&all),
        figure: format!(
            "p99 ms: by type {:.1}, attempts {:.1}, deep {:.1}, stats {:.1}",
            p99(&timed[0]),
            p99(&timed[1]),
            p99(&timed[2]),
            p99(&timed[3])
        ),
        target: format!("p99 < {READ_P99_TARGET_MS:.0} ms each"),
        met: failures == 0 && timed.iter().all(|t| p99(t) < READ_P99_TARGET_MS),
        details: Value::Null,
        cdf: stats::cdf(&all),
        timeline: Vec::new(),
        flood: None,
    };
    let total: i64 = tables.values().sum();
    r.details = json!({
        "fixture": {
            "messages": loaded.messages,
            "payloadBytes": scale.read_fixture_payload_bytes,
            "days": READ_DAYS,
            "from": midnight(READ_DAYS).to_string(),
            "endpoints": READ_ENDPOINTS,
            "eventTypes": READ_EVENT_TYPES,
            "writeSeconds": loaded.seconds,
            "vacuumSeconds": vacuum.as_secs_f64(),
            "freeDiskBefore": free,
            "tableBytes": tables,
            "bytesPerMessage": total as f64 / loaded.messages.max(1) as f64,
        },
        "requestsPerQuery": scale.read_requests,
        "queries": READS.iter().zip(&timed).map(|(read, t)| t.summary(*read)).collect::<Vec<_>>(),
    });
    Ok(r)
}

/// The table's lines about scenario 9: each query's figures.
pub fn reads_lines(details: &Value) -> Vec<String> {
    let fixture = &details["fixture"];
    let mut lines = vec![format!(
        "log reads (scenario 9): {} messages of {} B over {} days, written in {:.0} s, vacuumed in {:.0} s, {:.0} B per message on disk",
        fixture["messages"],
        fixture["payloadBytes"],
        fixture["days"],
        fixture["writeSeconds"].as_f64().unwrap_or(0.0),
        fixture["vacuumSeconds"].as_f64().unwrap_or(0.0),
        fixture["bytesPerMessage"].as_f64().unwrap_or(0.0),
    )];
    for query in details["queries"].as_array().into_iter().flatten() {
        let latency = &query["latency"];
        lines.push(format!(
            "  {:<40} {} requests: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {:.1} items per answer; {} failed",
            query["query"].as_str().unwrap_or("?"),
            query["requests"],
            latency["p50_ms"].as_f64().unwrap_or(0.0),
            latency["p99_ms"].as_f64().unwrap_or(0.0),
            latency["max_ms"].as_f64().unwrap_or(0.0),
            query["meanItems"].as_f64().unwrap_or(0.0),
            query["failures"],
        ));
    }
    lines
}
