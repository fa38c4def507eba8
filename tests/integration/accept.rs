//! The accept path keeps its promises when the request around it fails: `kill -9` of ingest
//! mid-request, a failure after the broker confirmed, a `deliverAt` message refused half
//! way, and messages sent the moment the API answers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;
use rstest::rstest;
use serde_json::json;
use tokio::time::Instant;

use crate::testkit::process::TOKEN;
use crate::testkit::receiver::assert_duplicates_identical;
use crate::testkit::{eventually, Api, Backend, Receiver, Reply, Role, Stack};

/// How long a request holds its idempotency keys in these tests (the default is 10 s).
const LEASE_MS: &str = "2000";

/// Every id a message list of `app` holds.
async fn listed_ids(api: &Api, app: &str) -> Vec<String> {
    let mut listed = Vec::new();
    let mut iterator: Option<String> = None;
    loop {
        let path = match &iterator {
            Some(after) => format!("/api/v1/app/{app}/msg?limit=250&iterator={after}"),
            None => format!("/api/v1/app/{app}/msg?limit=250"),
        };
        let page = api.get(&path).await;
        for message in page["data"].as_array().expect("data") {
            listed.push(message["id"].as_str().expect("id").to_owned());
        }
        if page["done"] == true {
            return listed;
        }
        iterator = page["iterator"].as_str().map(str::to_owned);
    }
}

/// A client of `workers` tasks sending `total` messages, each with its own idempotency key,
/// to whatever URL `base` holds now; it retries 5xx, 409 and connection errors with the
/// same key until the message is accepted. Answers key → accepted message id.
struct RetryingClient {
    base: Arc<RwLock<String>>,
    accepted: Arc<AtomicUsize>,
    ids: Arc<Mutex<HashMap<usize, String>>>,
}

impl RetryingClient {
    fn new(base: &str) -> Self {
        Self {
            base: Arc::new(RwLock::new(base.to_owned())),
            accepted: Arc::new(AtomicUsize::new(0)),
            ids: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    fn point_at(&self, base: &str) {
        *self.base.write().expect("base lock") = base.to_owned();
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }

    fn spawn(
        &self,
        app: &str,
        total: usize,
        workers: usize,
        within: Duration,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let next = Arc::new(AtomicUsize::new(0));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let until = Instant::now() + within;
        (0..workers)
            .map(|_| {
                let (next, client, app) = (Arc::clone(&next), client.clone(), app.to_owned());
                let (base, accepted, ids) = (
                    Arc::clone(&self.base),
                    Arc::clone(&self.accepted),
                    Arc::clone(&self.ids),
                );
                tokio::spawn(async move {
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= total {
                            return;
                        }
                        let id = send_until_accepted(&client, &base, &app, n, until).await;
                        ids.lock().expect("ids lock").insert(n, id);
                        accepted.fetch_add(1, Ordering::Relaxed);
                        let gap = rand::rng().random_range(0..4);
                        tokio::time::sleep(Duration::from_millis(gap)).await;
                    }
                })
            })
            .collect()
    }
}

async fn send_until_accepted(
    client: &reqwest::Client,
    base: &RwLock<String>,
    app: &str,
    n: usize,
    until: Instant,
) -> String {
    loop {
        assert!(Instant::now() < until, "message {n} not accepted in time");
        let url = format!("{}/api/v1/app/{app}/msg", base.read().expect("base lock"));
        let sent = client
            .post(url)
            .bearer_auth(TOKEN)
            .header("idempotency-key", format!("key-{n}"))
            .json(&json!({"eventType": "order.created", "payload": {"n": n}}))
            .send()
            .await;
        match sent {
            Ok(response) if response.status() == StatusCode::ACCEPTED => {
                let body: serde_json::Value = response.json().await.expect("message JSON");
                return body["id"].as_str().expect("id").to_owned();
            }
            Ok(response)
                if response.status().is_server_error()
                    || response.status() == StatusCode::CONFLICT => {}
            Ok(response) => panic!("message {n}: unexpected {}", response.status()),
            Err(_) => {} // the process was killed or is restarting
        }
        let backoff = rand::rng().random_range(10..40);
        tokio::time::sleep(Duration::from_millis(backoff)).await;
    }
}

/// 3,000 messages from 16 client workers that retry with the same idempotency key; ingest
/// (`serve` in embedded mode) is killed with `kill -9` and restarted after every ~150
/// accepted messages, so kills land inside requests. Each key yields exactly one message,
/// and every message is delivered (duplicates only under the same `webhook-id`). With an
/// ordered endpoint too: a kill between a message joining its line and its task being
/// queued, or before a refused message left it, must not stall the line.
#[rstest]
#[case::rabbit_redis(Backend::RabbitRedis, false)]
#[case::embedded(Backend::Embedded, false)]
#[case::rabbit_redis_ordered(Backend::RabbitRedis, true)]
#[case::embedded_ordered(Backend::Embedded, true)]
#[tokio::test]
async fn kill_ingest_mid_request_one_delivered_message_per_key(
    #[case] backend: Backend,
    #[case] fifo: bool,
) {
    const MESSAGES: usize = 3_000;
    const KILL_EVERY: usize = 150;
    const MAX_KILLS: usize = 12;
    let role = match backend {
        Backend::Embedded => Role::Serve,
        _ => Role::Ingest,
    };
    let stack = Stack::on(backend, "killingest")
        .with("HOOKLINE__API__IDEMPOTENCY_LEASE_MS", LEASE_MS)
        .with("HOOKLINE__DELIVERY__CONCURRENCY", "64");
    let mut ingest = stack.start(role).await;
    let _others = match backend {
        Backend::Embedded => Vec::new(),
        _ => vec![
            stack.start(Role::Dispatcher).await,
            stack.start(Role::Scheduler).await,
        ],
    };
    let receiver = Receiver::start().await;
    let api = stack.api(&ingest);
    let app = api.create_app("kill-ingest").await;
    let url = receiver.url("sink", Reply::Always(200));
    api.create_endpoint(&app, json!({"url": url, "fifo": fifo}))
        .await;

    let client = RetryingClient::new(&api.base);
    let workers = client.spawn(&app, MESSAGES, 16, Duration::from_secs(240));
    let mut kills = 0;
    while kills < MAX_KILLS && client.accepted() + KILL_EVERY < MESSAGES {
        let target = client.accepted() + KILL_EVERY;
        eventually(
            "the client to make progress",
            Duration::from_secs(60),
            || async { (client.accepted() >= target).then_some(()) },
        )
        .await;
        ingest.kill9().await;
        kills += 1;
        ingest = stack.start(role).await;
        client.point_at(ingest.api_url.as_deref().expect("api url"));
    }
    for worker in workers {
        worker.await.expect("client worker");
    }
    let api = stack.api(&ingest);
    let answered: HashSet<String> = client.ids.lock().expect("ids").values().cloned().collect();
    let listed = listed_ids(&api, &app).await;
    let listed_set: HashSet<String> = listed.iter().cloned().collect();

    // Every stored message reaches the receiver; give the outbox sweep (after the lease)
    // and the retries their time (an ordered line its one-at-a-time drain), then count what
    // is missing.
    let wait = if fifo { 240 } else { 60 };
    let deadline = Instant::now() + Duration::from_secs(wait);
    let undelivered = loop {
        let seen: HashSet<String> = receiver
            .deliveries("sink")
            .iter()
            .map(|d| d.webhook_id().to_owned())
            .collect();
        let missing = listed_set.difference(&seen).count();
        if missing == 0 || Instant::now() >= deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let deliveries = receiver.deliveries("sink");
    let extra_messages = listed.len().saturating_sub(MESSAGES);
    println!(
        "{backend:?} (ordered: {fifo}): {kills} kills; {} messages listed for {MESSAGES} keys ({extra_messages} keys with two messages); \
         {undelivered} undelivered; {} deliveries ({} duplicates)",
        listed.len(),
        deliveries.len(),
        deliveries.len().saturating_sub(listed_set.len()),
    );
    assert!(kills >= 5, "only {kills} kills landed during the run");
    assert_eq!(
        answered.len(),
        MESSAGES,
        "each key answered its own message"
    );
    assert_eq!(extra_messages, 0, "keys that yielded two messages");
    assert_eq!(
        listed_set, answered,
        "the stored messages are those answered"
    );
    assert_eq!(undelivered, 0, "stored messages never delivered");
    assert_duplicates_identical(&deliveries, &listed_set);
}

/// Ingest's Redis user may not `SETEX` idempotency keys (a real failure of the write that
/// records the response, after the broker confirmed the tasks). The message IS accepted, so
/// the answer is 202; a retry with the same key after the lease finds the same message, and
/// the receiver sees one `webhook-id`.
#[tokio::test]
async fn recording_the_response_fails_after_the_confirms_answers_202_and_a_retry_finds_it() {
    let stack = Stack::new("recordfails").with("HOOKLINE__API__IDEMPOTENCY_LEASE_MS", LEASE_MS);
    let setup = stack.start(Role::Ingest).await;
    let _dispatcher = stack.start(Role::Dispatcher).await;
    let receiver = Receiver::start().await;
    let api = stack.api(&setup);
    let app = api.create_app("record-fails").await;
    let url = receiver.url("sink", Reply::Always(200));
    api.create_endpoint(&app, json!({"url": url})).await;

    // Everything, except SETEX outside message bodies: the idempotency record.
    let user = format!("hl-{}", stack.prefix);
    let mut redis = stack.redis().await;
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg(">pw")
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .arg("-setex")
        .arg("(+setex ~*:msg:*)")
        .query_async(&mut redis)
        .await
        .expect("ACL SETUSER");
    let restricted_url = crate::testkit::process::redis_url().replacen(
        "redis://",
        &format!("redis://{user}:pw@"),
        1,
    );
    let ingest = stack
        .start_with(Role::Ingest, &[("HOOKLINE__REDIS__URL", &restricted_url)])
        .await;
    let restricted = stack.api(&ingest);
    let path = format!("/api/v1/app/{app}/msg");
    let body = json!({"eventType": "order.created", "payload": {"n": 1}});
    let headers = [("idempotency-key", "once")];
    let (status, first) = restricted
        .call(reqwest::Method::POST, &path, Some(&body), &headers)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "first answer: {first}");
    let msg_id = first["id"].as_str().expect("id").to_owned();

    // The claim is still leased: the retry waits for the lease to run out, then adopts it.
    let (status, again) = restricted
        .call(reqwest::Method::POST, &path, Some(&body), &headers)
        .await;
    let _: redis::RedisResult<()> = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&user)
        .query_async(&mut redis)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "retry answer: {again}");
    assert_eq!(again["id"], first["id"], "the retry found the original");
    assert_eq!(listed_ids(&api, &app).await, vec![msg_id.clone()]);
    let sent = HashSet::from([msg_id]);
    let seen = receiver
        .await_all("sink", &sent, Duration::from_secs(30))
        .await;
    assert_duplicates_identical(&seen, &sent);
}

/// A `deliverAt` message to 100 endpoints puts its 100 tasks in the schedule in one
/// transaction: a reader of the schedule sees none or all of them, never a part.
#[tokio::test]
async fn deliver_at_tasks_enter_the_schedule_all_at_once() {
    const ENDPOINTS: usize = 100;
    const MESSAGES: usize = 5;
    let stack = Stack::new("schedall");
    let ingest = stack.start(Role::Ingest).await;
    let api = stack.api(&ingest);
    let receiver = Receiver::start().await;
    let app = api.create_app("sched-all").await;
    for n in 0..ENDPOINTS {
        let url = receiver.url(&format!("ep{n}"), Reply::Always(200));
        api.create_endpoint(&app, json!({"url": url})).await;
    }
    let due_key = stack.keys().schedule_due();
    let mut redis = stack.redis().await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (done, due_key) = (Arc::clone(&done), due_key.clone());
        tokio::spawn(async move {
            let mut observed = HashSet::new();
            while !done.load(Ordering::Relaxed) {
                let n: usize = redis::cmd("ZCARD")
                    .arg(&due_key)
                    .query_async(&mut redis)
                    .await
                    .expect("zcard");
                observed.insert(n);
            }
            observed
        })
    };
    let later = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("rfc3339");
    for n in 0..MESSAGES {
        api.post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "order.created", "payload": {"n": n}, "deliverAt": later}),
            StatusCode::ACCEPTED,
        )
        .await;
    }
    done.store(true, Ordering::Relaxed);
    let observed = watcher.await.expect("watcher");
    let partial: Vec<_> = observed.iter().filter(|n| **n % ENDPOINTS != 0).collect();
    assert!(
        partial.is_empty(),
        "the schedule was seen holding part of a message's tasks: {partial:?}"
    );
}

/// Messages sent the instant `/api/v1/health` answers, while the broker connection is still
/// opening, wait for it (up to `rabbitmq.publish_timeout_ms`) instead of failing with 503.
/// The first broker URL is a node that accepts TCP and never speaks AMQP, so the connection
/// comes up only after its connect timeout (10 s): the same gap as the first ~100 ms after
/// any start, made long enough that every one of 2,000 messages lands in it.
#[tokio::test]
async fn messages_sent_as_soon_as_health_answers_are_accepted() {
    const MESSAGES: usize = 2_000;
    // A burst of 2,000 requests at a debug build on a small shared machine can keep Redis
    // answers waiting past the default 2 s; what is under test is the broker connection.
    let mut stack = Stack::new("earlysend").with("HOOKLINE__REDIS__RESPONSE_TIMEOUT_MS", "10000");
    let setup = stack.start(Role::Ingest).await;
    let api = stack.api(&setup);
    let receiver = Receiver::start().await;
    let app = api.create_app("early").await;
    let url = receiver.url("sink", Reply::Always(200));
    api.create_endpoint(&app, json!({"url": url})).await;

    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("silent node");
    let silent_url = format!(
        "amqp://guest:guest@{}/%2f",
        silent.local_addr().expect("address")
    );
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let urls = format!("{silent_url},{}", crate::testkit::process::amqp_url());
    stack.set("HOOKLINE__RABBITMQ__URL", &urls);
    stack.set("HOOKLINE__RABBITMQ__PUBLISH_TIMEOUT_MS", "20000");
    let fresh = stack.start_listening(Role::Serve).await;
    let early = stack.api(&fresh);
    let health = format!("{}/api/v1/health", early.base);
    let client = reqwest::Client::new();
    eventually(
        "the health route to answer",
        Duration::from_secs(10),
        || async {
            let response = client.get(&health).send().await.ok()?;
            response.status().is_success().then_some(())
        },
    )
    .await;
    let path = format!("/api/v1/app/{app}/msg");
    let sends = (0..MESSAGES).map(|n| {
        let early = early.clone();
        let path = path.clone();
        async move {
            let body = json!({"eventType": "order.created", "payload": {"n": n}});
            early
                .call(reqwest::Method::POST, &path, Some(&body), &[])
                .await
                .0
        }
    });
    let mut counts: HashMap<u16, usize> = HashMap::new();
    for status in futures::future::join_all(sends).await {
        *counts.entry(status.as_u16()).or_default() += 1;
    }
    holder.abort();
    println!("answers to {MESSAGES} messages sent as health answered: {counts:?}");
    assert_eq!(counts.get(&202).copied(), Some(MESSAGES), "{counts:?}");
}
