//! The delivery log on PostgreSQL: migrations from empty and from every earlier version,
//! retention by dropping whole days, payload retention, what Redis still holds per message,
//! and a database outage mid-run that loses nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookline_core::id;
use hookline_postgres::{PgConfig, PgLog, MIGRATIONS};
use reqwest::{Method, StatusCode};
use serde_json::json;
use time::OffsetDateTime;

use crate::testkit::process::{postgres_url, schema_for};
use crate::testkit::{eventually, PrivatePostgres, Receiver, Reply, Role, Stack};

static SCHEMAS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A log in a schema of its own on the shared server, dropped with the guard.
struct Scratch(PgLog);

impl Scratch {
    fn new(name: &str) -> Self {
        let n = SCHEMAS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut config = PgConfig::new(postgres_url().into());
        config.schema = schema_for(&format!("pgt{}_{n}_{name}", std::process::id()));
        config.retention_days = 30;
        Self(PgLog::connect(&config).expect("a pool"))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // The pool's connections run on the test's runtime, which is ending: use psql.
        let _ = std::process::Command::new("psql")
            .args(["-q", "-d", &postgres_url(), "-c"])
            .arg(format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.0.schema()
            ))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn latest() -> i32 {
    MIGRATIONS.last().expect("migrations").version
}

#[tokio::test]
async fn migrations_reach_the_latest_version_from_empty_and_from_every_earlier_one() {
    for from in 0..latest() {
        let scratch = Scratch::new(&format!("from{from}"));
        let log = &scratch.0;
        assert_eq!(
            log.migrate_to(from)
                .await
                .expect("migrate to the earlier version"),
            (1..=from).collect::<Vec<_>>()
        );
        assert_eq!(log.version().await.expect("version"), from);
        let applied = log.migrate().await.expect("migrate to the latest");
        assert_eq!(
            applied,
            ((from + 1)..=latest()).collect::<Vec<_>>(),
            "from {from}"
        );
        assert_eq!(log.version().await.expect("version"), latest());
        assert!(
            log.migrate().await.expect("again").is_empty(),
            "nothing twice"
        );
        assert!(log.is_ready().await);
        log.maintain(OffsetDateTime::now_utc())
            .await
            .expect("partitions");
    }
}

#[tokio::test]
async fn concurrent_migrations_apply_each_version_once() {
    let scratch = Scratch::new("concurrent");
    let runs = (0..8).map(|_| {
        let log = scratch.0.clone();
        tokio::spawn(async move { log.migrate().await })
    });
    let mut applied = Vec::new();
    for run in futures::future::join_all(runs).await {
        applied.extend(run.expect("task").expect("migrate"));
    }
    applied.sort_unstable();
    assert_eq!(applied, (1..=latest()).collect::<Vec<_>>());
    let partitions = (0..4).map(|_| {
        let log = scratch.0.clone();
        tokio::spawn(async move { log.maintain(OffsetDateTime::now_utc()).await })
    });
    for run in futures::future::join_all(partitions).await {
        run.expect("task").expect("concurrent partition upkeep");
    }
}

#[tokio::test]
async fn hookline_migrate_prepares_the_database_and_refuses_a_newer_schema() {
    let scratch = Scratch::new("cli");
    let schema = scratch.0.schema().to_owned();
    let migrate = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
            .arg("migrate")
            .env(
                "HOOKLINE__RABBITMQ__URL",
                crate::testkit::process::amqp_url(),
            )
            .env("HOOKLINE__REDIS__URL", crate::testkit::process::redis_url())
            .env("HOOKLINE__POSTGRES__URL", postgres_url())
            .env("HOOKLINE__POSTGRES__SCHEMA", &schema)
            .output()
            .expect("run hookline migrate")
    };
    let first = migrate();
    let said = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(said.contains(&format!("at version {}", latest())), "{said}");
    assert!(scratch.0.is_ready().await);

    let client = scratch.0.raw().await.expect("a connection");
    client
        .execute(
            "INSERT INTO hookline_migrations (version, name) VALUES ($1, 'from the future')",
            &[&(latest() + 1)],
        )
        .await
        .expect("a newer version");
    let refused = migrate();
    let error = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(error.contains("newer than this binary"), "{error}");
    // A release's migrations keep the release before it working (they add, then a later
    // release removes), so a process on a newer schema stays ready through a rolling
    // upgrade; only an older one cannot migrate.
    assert!(scratch.0.is_ready().await, "a newer schema still serves");

    let without = std::process::Command::new(env!("CARGO_BIN_EXE_hookline"))
        .arg("migrate")
        .env(
            "HOOKLINE__RABBITMQ__URL",
            crate::testkit::process::amqp_url(),
        )
        .env("HOOKLINE__REDIS__URL", crate::testkit::process::redis_url())
        .output()
        .expect("run hookline migrate");
    let error = String::from_utf8_lossy(&without.stderr);
    assert_eq!(without.status.code(), Some(2), "{error}");
    assert!(error.contains("postgres.url"), "{error}");
}

/// Rows of one day written straight into its partitions: a message, its destination and
/// its attempt per id.
async fn fill_day(log: &PgLog, app: &str, day_ms: u64, count: u64) -> Vec<String> {
    let client = log.raw().await.expect("a connection");
    let mut ids = Vec::new();
    for n in 0..count {
        let msg = id::new_id("msg", day_ms + n * 1000);
        let attempt = id::new_id("atmpt", day_ms + n * 1000 + 10);
        client
            .execute(
                "WITH m AS (INSERT INTO messages (app_id, id, event_type, endpoints, record, payload)
                            VALUES ($1, $2, 'old.event', '{ep_1}', '\\x007b7d', '\\x007b7d')),
                      a AS (INSERT INTO attempts (app_id, id, msg_id, endpoint_id, record)
                            VALUES ($1, $3, $2, 'ep_1', '\\x007b7d'))
                 INSERT INTO destinations (app_id, msg_id, endpoint_id, status, attempts)
                 VALUES ($1, $2, 'ep_1', 0, 1)",
                &[&app, &msg, &attempt],
            )
            .await
            .expect("a fixture row");
        ids.push(msg);
    }
    ids
}

async fn count(log: &PgLog, table: &str) -> i64 {
    log.raw()
        .await
        .expect("a connection")
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn a_day_past_retention_is_dropped_whole_and_newer_days_stay() {
    let scratch = Scratch::new("retention");
    let log = &scratch.0;
    log.migrate().await.expect("migrate");
    let now = OffsetDateTime::now_utc();
    let old = now - time::Duration::days(40);
    log.ensure_days(old, now).await.expect("partitions");
    let old_ms = u64::try_from(
        old.date()
            .with_time(time::Time::MIDNIGHT)
            .assume_utc()
            .unix_timestamp()
            * 1000,
    )
    .expect("positive");
    let now_ms = u64::try_from(now.unix_timestamp() * 1000).expect("positive") - 60_000;
    fill_day(log, "app_old", old_ms + 3_600_000, 200).await;
    let kept = fill_day(log, "app_now", now_ms, 5).await;
    assert_eq!(count(log, "messages").await, 205);

    let started = Instant::now();
    let dropped = log.drop_older_than(now, 30).await.expect("drop");
    let took = started.elapsed();
    let day = old.date();
    let suffix = format!(
        "_d{:04}{:02}{:02}",
        day.year(),
        u8::from(day.month()),
        day.day()
    );
    for table in ["messages", "destinations", "attempts"] {
        assert!(
            dropped.contains(&format!("{table}{suffix}")),
            "{table}{suffix} not in {dropped:?}"
        );
    }
    let cutoff = (now - time::Duration::days(30)).date();
    let cutoff = format!(
        "{:04}{:02}{:02}",
        cutoff.year(),
        u8::from(cutoff.month()),
        cutoff.day()
    );
    assert!(
        dropped.iter().all(|name| name[name.len() - 8..] < *cutoff),
        "only days past retention: {dropped:?}"
    );
    assert!(took < Duration::from_secs(1), "dropping took {took:?}");
    assert_eq!(count(log, "messages").await, 5);
    assert_eq!(count(log, "destinations").await, 5);
    assert_eq!(count(log, "attempts").await, 5);
    let left: BTreeSet<String> = log
        .raw()
        .await
        .expect("a connection")
        .query("SELECT id FROM messages", &[])
        .await
        .expect("ids")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(left, kept.into_iter().collect());
    assert!(
        log.drop_older_than(now, 30)
            .await
            .expect("again")
            .is_empty(),
        "nothing left to drop"
    );
}

fn log_of(stack: &Stack) -> PgLog {
    let mut config = PgConfig::new(
        stack
            .env_value("HOOKLINE__POSTGRES__URL")
            .expect("a postgres log")
            .into(),
    );
    config.schema = stack
        .env_value("HOOKLINE__POSTGRES__SCHEMA")
        .expect("a schema");
    PgLog::connect(&config).expect("a pool")
}

#[tokio::test]
async fn a_short_payload_retention_expunges_the_payload_and_keeps_the_record() {
    let stack = Stack::new("pgpayload");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("pg-payload").await;
    api.create_endpoint(&app, json!({"url": receiver.url("in", Reply::Always(200))}))
        .await;
    let short = api
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "a.b", "payload": {"secret": "short"}, "payloadRetentionHours": 1}),
            StatusCode::ACCEPTED,
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let long = api.send(&app, "a.b", json!({"secret": "long"})).await;
    let sent = [short.clone(), long.clone()].into_iter().collect();
    receiver
        .await_all("in", &sent, Duration::from_secs(20))
        .await;
    let log = log_of(&stack);
    assert_eq!(
        log.expunge_due_payloads(OffsetDateTime::now_utc())
            .await
            .expect("expunge"),
        0,
        "nothing is due yet"
    );
    let later = OffsetDateTime::now_utc() + time::Duration::hours(2);
    assert_eq!(log.expunge_due_payloads(later).await.expect("expunge"), 1);
    let read = api.get(&format!("/api/v1/app/{app}/msg/{short}")).await;
    assert_eq!(read["payload"], json!({}), "{read}");
    assert_eq!(read["eventType"], "a.b");
    let attempts = api.attempts_of_message(&app, &short).await;
    assert_eq!(attempts.len(), 1, "its attempts are kept");
    let read = api.get(&format!("/api/v1/app/{app}/msg/{long}")).await;
    assert_eq!(read["payload"], json!({"secret": "long"}));
}

/// Bytes Redis holds under `prefix` (`MEMORY USAGE` of each key) and the key kinds left.
fn redis_footprint(prefix: &str) -> (u64, HashMap<String, usize>) {
    let client = redis::Client::open(crate::testkit::process::redis_url()).expect("redis url");
    let mut conn = client.get_connection().expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut conn)
        .expect("keys");
    let mut bytes = 0;
    let mut kinds: HashMap<String, usize> = HashMap::new();
    for key in &keys {
        let used: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .query(&mut conn)
            .expect("memory usage");
        bytes += used.unwrap_or(0);
        let shape = key
            .split(':')
            .map(|part| if part.len() > 20 { "<id>" } else { part })
            .collect::<Vec<_>>()
            .join(":");
        *kinds.entry(shape).or_default() += 1;
    }
    (bytes, kinds)
}

/// A 1 KiB invoice as platforms send them: ids and amounts that differ per message (so
/// compression gets no help from repeats across messages), the keys any JSON has.
fn invoice(n: u64) -> serde_json::Value {
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut token = |len: usize| -> String {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        (0..len)
            .map(|_| ALPHABET[(next() % 62) as usize] as char)
            .collect()
    };
    let lines: Vec<_> = (0..6)
        .map(|i| {
            json!({
                "id": format!("il_{}", token(24)),
                "price": format!("price_{}", token(20)),
                "description": format!("Seat licence {i}, monthly"),
                "quantity": (n + i) % 7 + 1,
                "amount": (n * 37 + i * 1009) % 100_000,
            })
        })
        .collect();
    let invoice = json!({
        "id": format!("in_{}", token(24)),
        "customer": format!("cus_{}", token(14)),
        "customer_email": format!("billing+{n}@example.com"),
        "currency": "eur",
        "status": "paid",
        "number": format!("INV-{n:08}"),
        "subscription": format!("sub_{}", token(24)),
        "lines": lines,
    });
    invoice
}

#[tokio::test]
async fn with_the_log_in_postgres_redis_keeps_under_200_bytes_per_delivered_message() {
    const MESSAGES: usize = 3_000;
    let size = invoice(1).to_string().len();
    assert!(
        (950..=1100).contains(&size),
        "a 1 KiB payload, not {size} bytes"
    );
    let stack = Stack::new("pgsize");
    assert!(stack.logs_to_postgres());
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("pg-size").await;
    api.create_endpoint(&app, json!({"url": receiver.url("in", Reply::Always(200))}))
        .await;
    let (empty_bytes, _) = redis_footprint(&stack.redis_prefix());
    let log = log_of(&stack);
    // The empty partitions' own pages (a few per index) are not the messages' cost.
    let empty_disk = eventually("today's partitions", Duration::from_secs(20), || {
        let log = log.clone();
        async move {
            let sizes = log.table_bytes().await.ok()?;
            sizes.values().all(|bytes| *bytes > 0).then_some(sizes)
        }
    })
    .await;
    let mut sent = std::collections::HashSet::new();
    for batch in (0..MESSAGES).collect::<Vec<_>>().chunks(50) {
        let sends = batch
            .iter()
            .map(|n| api.send(&app, "invoice.paid", invoice(*n as u64)));
        sent.extend(futures::future::join_all(sends).await);
    }
    receiver
        .await_all("in", &sent, Duration::from_secs(120))
        .await;
    // Settled and acked: the dispatcher writes a batch, then acks; wait for the log to say
    // every delivery succeeded.
    eventually("every destination settled", Duration::from_secs(30), || {
        let log = log.clone();
        async move {
            let settled: i64 = log
                .raw()
                .await
                .ok()?
                .query_one("SELECT count(*) FROM destinations WHERE status = 0", &[])
                .await
                .ok()?
                .get(0);
            (settled == i64::try_from(MESSAGES).ok()?).then_some(())
        }
    })
    .await;
    let (bytes, kinds) = redis_footprint(&stack.redis_prefix());
    let per_message = bytes.saturating_sub(empty_bytes) / MESSAGES as u64;
    assert!(
        per_message <= 200,
        "{per_message} bytes per message in Redis; keys left: {kinds:?}"
    );
    let count = i64::try_from(MESSAGES).expect("small");
    let per_table: std::collections::BTreeMap<String, i64> = log
        .table_bytes()
        .await
        .expect("sizes")
        .into_iter()
        .map(|(table, bytes)| {
            let before = empty_disk.get(&table).copied().unwrap_or(0);
            (table, (bytes - before) / count)
        })
        .collect();
    let per_message_disk: i64 = per_table.values().sum();
    assert!(
        per_message_disk <= 2_500,
        "{per_message_disk} bytes per 1 KiB message in PostgreSQL: {per_table:?}"
    );
    println!("redis {per_message} B/msg, postgres {per_message_disk} B/msg, keys {kinds:?}");
}

/// Every answer of the outage test's sender: its sequence number, status and message id.
type Answers = Arc<Mutex<Vec<(u64, StatusCode, Option<String>)>>>;

#[tokio::test]
async fn a_postgres_outage_mid_run_answers_503_and_loses_no_accepted_message() {
    let db = PrivatePostgres::start(&format!("hlpg{}", std::process::id()));
    let stack = Stack::new("pgoutage")
        .with("HOOKLINE__POSTGRES__URL", &db.url())
        .with("HOOKLINE__POSTGRES__STATEMENT_TIMEOUT_MS", "1000");
    let ingest = stack.start(Role::Ingest).await;
    let _dispatcher = stack.start(Role::Dispatcher).await;
    let _scheduler = stack.start(Role::Scheduler).await;
    let api = stack.api(&ingest);
    let receiver = Receiver::start().await;
    let app = api.create_app("pg-outage").await;
    api.create_endpoint(&app, json!({"url": receiver.url("in", Reply::Always(200))}))
        .await;

    // One sender for the whole run: every answer is kept.
    let answers: Answers = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let sender = {
        let (api, app, answers, stop) = (api.clone(), app.clone(), answers.clone(), stop.clone());
        tokio::spawn(async move {
            let path = format!("/api/v1/app/{app}/msg");
            for n in 0_u64.. {
                if stop.is_cancelled() {
                    break;
                }
                let body = json!({"eventType": "outage.test", "payload": {"n": n}});
                let (status, answer) = api.call(Method::POST, &path, Some(&body), &[]).await;
                let id = answer["id"].as_str().map(str::to_owned);
                answers.lock().expect("answers").push((n, status, id));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let accepted = |answers: &Answers| {
        answers
            .lock()
            .expect("answers")
            .iter()
            .filter(|(_, status, _)| *status == StatusCode::ACCEPTED)
            .count()
    };
    eventually(
        "messages accepted before the outage",
        Duration::from_secs(20),
        || {
            let n = accepted(&answers);
            async move { (n >= 30).then_some(()) }
        },
    )
    .await;

    db.stop_db();
    eventually("503 while the log is down", Duration::from_secs(30), || {
        let refused = answers
            .lock()
            .expect("answers")
            .iter()
            .filter(|(_, status, _)| *status == StatusCode::SERVICE_UNAVAILABLE)
            .count();
        async move { (refused >= 3).then_some(()) }
    })
    .await;
    let accepted_during_outage = accepted(&answers);
    db.start_db();
    eventually(
        "messages accepted after the outage",
        Duration::from_secs(60),
        || {
            let n = accepted(&answers);
            async move { (n >= accepted_during_outage + 30).then_some(()) }
        },
    )
    .await;
    stop.cancel();
    sender.await.expect("sender");

    let answers = answers.lock().expect("answers").clone();
    let unexpected: Vec<_> = answers
        .iter()
        .filter(|(_, status, _)| {
            *status != StatusCode::ACCEPTED && *status != StatusCode::SERVICE_UNAVAILABLE
        })
        .collect();
    assert!(unexpected.is_empty(), "only 202 or 503: {unexpected:?}");
    let wanted: BTreeSet<String> = answers.iter().filter_map(|(_, _, id)| id.clone()).collect();
    eventually(
        "every accepted message delivered",
        Duration::from_secs(90),
        || {
            let seen: BTreeSet<String> = receiver
                .deliveries("in")
                .iter()
                .map(|d| d.webhook_id().to_owned())
                .collect();
            let missing = wanted.difference(&seen).count();
            async move { (missing == 0).then_some(()) }
        },
    )
    .await;
    // And the log knows each of them as delivered.
    for id in &wanted {
        let attempts = api.attempts_of_message(&app, id).await;
        assert!(
            attempts.iter().any(|a| a["status"] == 0),
            "{id}: no successful attempt in the log: {attempts:?}"
        );
    }
}
