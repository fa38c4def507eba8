//! Beyond one machine: a node of a RabbitMQ cluster or of a Redis Cluster is lost during a
//! 10,000-message run, and Hookline keeps its promises without a restart.
//!
//! Each test runs on a private cluster (scripts/clusters) so losing a node does not disturb
//! the conformance tests sharing the suite's clusters. The figures are printed for
//! docs/operations.md.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

use crate::testkit::{eventually, Api, Receiver, Reply, Role, Stack};

const MESSAGES: usize = 10_000;

/// A private cluster, stopped and deleted when dropped.
struct PrivateCluster {
    engine: &'static str,
    name: String,
    port: u16,
}

impl PrivateCluster {
    fn script() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/clusters")
    }

    fn run(args: &[&str]) -> String {
        let output = Command::new(Self::script())
            .args(args)
            .output()
            .expect("run scripts/clusters");
        assert!(
            output.status.success(),
            "scripts/clusters {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn start(engine: &'static str, name: &str, port: u16) -> Self {
        Self::run(&[engine, "start", name, &port.to_string()]);
        Self {
            engine,
            name: name.to_owned(),
            port,
        }
    }

    fn urls(&self) -> String {
        Self::run(&[self.engine, "urls", &self.port.to_string()])
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new(Self::script())
            .args([self.engine, "stop", &self.name, &self.port.to_string()])
            .status();
    }
}

/// Creates message `n` with idempotency key `run-n`, as a careful producer does: a 503 (or a
/// dropped connection) is tried again with the same key until it is accepted. Answers the
/// message id and how many tries were refused.
async fn send_until_accepted(
    client: &reqwest::Client,
    api: &Api,
    app: &str,
    n: usize,
) -> (String, u32) {
    let key = format!("run-{n}");
    let body = json!({"eventType": "order.created", "payload": {"n": n}});
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut refused = 0;
    loop {
        let response = client
            .post(format!("{}/api/v1/app/{app}/msg", api.base))
            .bearer_auth(&api.token)
            .header("idempotency-key", &key)
            .json(&body)
            .timeout(Duration::from_secs(15))
            .send()
            .await;
        if let Ok(response) = response {
            let status = response.status();
            if status == StatusCode::ACCEPTED || status == StatusCode::OK {
                let message: serde_json::Value = response.json().await.expect("message JSON");
                return (message["id"].as_str().expect("id").to_owned(), refused);
            }
            assert_eq!(
                status,
                StatusCode::SERVICE_UNAVAILABLE,
                "only unavailability is retried"
            );
        }
        refused += 1;
        assert!(Instant::now() < deadline, "message {n} never accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends `count` messages, 32 at a time; answers each index's message id and the number
/// of refused tries.
async fn send_all(api: Api, app: String, count: usize) -> (HashMap<usize, String>, u32) {
    let client = reqwest::Client::new();
    let results: Vec<(usize, (String, u32))> = futures::stream::iter(0..count)
        .map(|n| {
            let (api, app, client) = (api.clone(), app.clone(), client.clone());
            async move { (n, send_until_accepted(&client, &api, &app, n).await) }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let refused = results.iter().map(|(_, (_, r))| r).sum();
    let ids = results.into_iter().map(|(n, (id, _))| (n, id)).collect();
    (ids, refused)
}

/// The longest time without a delivery from `since` on: how long the loss stalled the run.
fn longest_pause(deliveries: &[crate::testkit::receiver::Delivery], since: Instant) -> Duration {
    let mut times: Vec<Instant> = deliveries
        .iter()
        .map(|d| d.at)
        .filter(|at| *at >= since)
        .collect();
    times.sort_unstable();
    let mut previous = since;
    let mut longest = Duration::ZERO;
    for at in times {
        longest = longest.max(at - previous);
        previous = at;
    }
    longest
}

/// Waits until every sent message has had at least `answered` deliveries answered by the
/// receiver (2 where each message's first attempt fails: its retry arrived); answers all
/// deliveries.
async fn await_every_message(
    receiver: &Receiver,
    sent: &HashSet<String>,
    answered: usize,
) -> Vec<crate::testkit::receiver::Delivery> {
    eventually(
        "every message delivered",
        Duration::from_secs(240),
        || async {
            let deliveries = receiver.completed("sink");
            let mut per_id: HashMap<&str, usize> = HashMap::new();
            for d in &deliveries {
                *per_id.entry(d.webhook_id()).or_default() += 1;
            }
            sent.iter()
                .all(|id| per_id.get(id.as_str()).is_some_and(|n| *n >= answered))
                .then_some(deliveries)
        },
    )
    .await
}

/// Sends every message again under its idempotency key: each must answer with the message
/// it created the first time.
async fn assert_keys_kept(api: &Api, app: &str, ids: &HashMap<usize, String>) {
    let (again, _) = send_all(api.clone(), app.to_owned(), ids.len()).await;
    for (n, id) in ids {
        assert_eq!(again.get(n), Some(id), "idempotency key run-{n} forgotten");
    }
}

/// Hookline with these Redis settings, retrying every 300 ms; the tests' receiver fails each
/// message's first attempt, so every message needs a retry from the schedule.
fn retrying_stack(name: &str, redis: &[(&str, &str)]) -> Stack {
    let mut stack = Stack::new(name)
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "300")
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0")
        // Every first attempt fails; the circuit must not open on a healthy endpoint.
        .with("HOOKLINE__DELIVERY__CIRCUIT_FAILURE_THRESHOLD", "1000000");
    for (key, value) in redis {
        stack.set(key, value);
    }
    stack
}

/// Must-show 2 of the clusters issue: the node hosting the delivery queue's leader is stopped
/// (`rabbitmqctl stop_app`) during a 10,000-message run. Hookline moves to a surviving node,
/// every message is delivered at least once, and nothing needs a restart.
#[tokio::test]
async fn losing_the_queue_leaders_rabbitmq_node_mid_run_loses_no_message() {
    let cluster = PrivateCluster::start("rabbitmq", "hlfailrabbit", 5711);
    let stack = Stack::new("leaderloss")
        .with("HOOKLINE__RABBITMQ__URL", &cluster.urls())
        .with("HOOKLINE__RABBITMQ__PUBLISH_TIMEOUT_MS", "3000");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("leader-loss").await;
    let url = receiver.url("sink", Reply::Always(200));
    api.create_endpoint(&app, json!({"url": url})).await;

    let sending = tokio::spawn(send_all(api.clone(), app.clone(), MESSAGES));
    eventually("deliveries under way", Duration::from_secs(60), || async {
        (receiver.count("sink") >= 2_000).then_some(())
    })
    .await;
    // The shard queues' leaders are spread over the nodes, so losing one node costs only
    // the leaders it held.
    let leaders = delivery_queue_leaders(&cluster, &stack.prefix);
    assert_eq!(leaders.len(), 8, "4 shards in 2 lanes: {leaders:?}");
    let nodes: HashSet<&String> = leaders.values().collect();
    assert_eq!(nodes.len(), 3, "leaders on every node: {leaders:?}");
    // Past its fair share, one app's flood travels in its shard's bulk lane: stop the node
    // that leads that queue.
    let shard = hookline_core::fair::shard_of(&app, 4);
    let queue = format!("{}.deliveries.bulk.{shard}", stack.prefix);
    let leader = queue_leader(&cluster, &queue);
    let stopped_at = Instant::now();
    let delivered_before = receiver.count("sink");
    ctl(&leader, &["stop_app"]);

    let (ids, refused) = sending.await.expect("sender");
    let sent: HashSet<String> = ids.values().cloned().collect();
    assert_eq!(sent.len(), MESSAGES, "one message per idempotency key");
    let deliveries = await_every_message(&receiver, &sent, 1).await;
    let pause = longest_pause(&deliveries, stopped_at);
    let new_leader = queue_leader(&cluster, &queue);
    assert_ne!(new_leader, leader, "the leader moved to a surviving node");
    let duplicates = deliveries.len() - MESSAGES;
    println!(
        "rabbitmq leader loss: stopped {leader} after {delivered_before} deliveries; \
         {MESSAGES} messages, {} deliveries ({duplicates} duplicates), {refused} sends refused \
         with 503 and retried, deliveries paused at most {:.0} ms, new leader {new_leader}",
        deliveries.len(),
        pause.as_secs_f64() * 1000.0
    );
}

fn ctl(node: &str, args: &[&str]) -> String {
    let output = Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl")
        .arg("-n")
        .arg(node)
        .args(args)
        .output()
        .expect("rabbitmqctl");
    assert!(
        output.status.success(),
        "rabbitmqctl -n {node} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The leader of every delivery queue under `prefix` (not the dead-letter queue).
fn delivery_queue_leaders(
    cluster: &PrivateCluster,
    prefix: &str,
) -> std::collections::BTreeMap<String, String> {
    let node = format!("{}-1@localhost", cluster.name);
    let out = ctl(
        &node,
        &["list_queues", "name", "leader", "--formatter", "json", "-q"],
    );
    let queues: Vec<serde_json::Value> = serde_json::from_str(&out).expect("list_queues json");
    let deliveries = format!("{prefix}.deliveries");
    queues
        .iter()
        .filter_map(|q| {
            let name = q["name"].as_str()?;
            let ours = name == deliveries
                || (name.starts_with(&format!("{deliveries}.")) && !name.ends_with(".dead"));
            ours.then(|| {
                (
                    name.to_owned(),
                    q["leader"].as_str().unwrap_or("").to_owned(),
                )
            })
        })
        .collect()
}

/// The node hosting the leader of `queue`, asked of any running node of the cluster.
fn queue_leader(cluster: &PrivateCluster, queue: &str) -> String {
    for i in 1..=3 {
        let node = format!("{}-{i}@localhost", cluster.name);
        let output = Command::new("/usr/lib/rabbitmq/bin/rabbitmqctl")
            .args([
                "-n",
                &node,
                "list_queues",
                "name",
                "leader",
                "--formatter",
                "json",
                "-q",
            ])
            .output()
            .expect("rabbitmqctl");
        if !output.status.success() {
            continue;
        }
        let queues: Vec<serde_json::Value> =
            serde_json::from_slice(&output.stdout).unwrap_or_default();
        if let Some(leader) = queues
            .iter()
            .find(|q| q["name"] == queue)
            .and_then(|q| q["leader"].as_str())
        {
            return leader.to_owned();
        }
    }
    panic!("no node knows the leader of {queue}");
}

/// Must-show 3 of the clusters issue: during a 10,000-message run in which every message
/// needs a retry, the Redis primary holding the retry schedule is killed (`kill -9`) and its
/// replica promoted. Every scheduled retry is still delivered, and every idempotency key of
/// an accepted message still answers with the same message.
#[tokio::test]
async fn killing_the_redis_primary_of_the_schedule_loses_no_retry_and_no_idempotency_key() {
    let cluster = PrivateCluster::start("redis", "hlfailredis", 7111);
    let stack = retrying_stack(
        "primaryloss",
        &[
            ("HOOKLINE__REDIS__URL", &cluster.urls()),
            ("HOOKLINE__REDIS__CLUSTER", "true"),
        ],
    );
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("primary-loss").await;
    let url = receiver.url("sink", Reply::FirstOfEachFails(500));
    api.create_endpoint(&app, json!({"url": url})).await;

    let sending = tokio::spawn(send_all(api.clone(), app.clone(), MESSAGES));
    eventually("retries under way", Duration::from_secs(60), || async {
        let deliveries = receiver.completed("sink");
        let mut seen = HashSet::new();
        let retried = deliveries
            .iter()
            .filter(|d| !seen.insert(d.webhook_id().to_owned()))
            .count();
        (retried >= 1_000).then_some(())
    })
    .await;
    let port = primary_of("{sched}", cluster.port);
    let killed_at = Instant::now();
    let delivered_before = receiver.count("sink");
    kill9_redis(port);

    let (ids, refused) = sending.await.expect("sender");
    let sent: HashSet<String> = ids.values().cloned().collect();
    assert_eq!(sent.len(), MESSAGES, "one message per idempotency key");
    // Delivered = answered 200, which only a retry is: two answers per message.
    let deliveries = await_every_message(&receiver, &sent, 2).await;
    let pause = longest_pause(&deliveries, killed_at);
    let promoted = primary_of(
        "{sched}",
        if port == cluster.port {
            port + 1
        } else {
            cluster.port
        },
    );
    assert_ne!(promoted, port, "a replica took over the schedule's slot");

    // Every accepted message's key still answers with that message.
    assert_keys_kept(&api, &app, &ids).await;
    println!(
        "redis primary loss: killed the schedule's primary (port {port}) after {delivered_before} \
         deliveries; {MESSAGES} messages, {} deliveries ({} more than one failure and one success \
         each), {refused} sends refused with 503 and retried, deliveries paused at most {:.0} ms, \
         replica on port {promoted} promoted; all {MESSAGES} idempotency keys kept",
        deliveries.len(),
        deliveries.len().saturating_sub(2 * MESSAGES),
        pause.as_secs_f64() * 1000.0
    );
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The port of the primary serving `key`'s slot, asked of the node on `ask`.
fn primary_of(key: &str, ask: u16) -> u16 {
    let slot: u16 = redis_cli(ask, &["cluster", "keyslot", key])
        .trim()
        .parse()
        .expect("a slot number");
    for line in redis_cli(ask, &["cluster", "nodes"]).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
            continue;
        }
        let owns = fields[8..].iter().any(|range| {
            let (start, end) = range.split_once('-').unwrap_or((range, range));
            matches!((start.parse::<u16>(), end.parse::<u16>()), (Ok(s), Ok(e)) if s <= slot && slot <= e)
        });
        if owns {
            let address = fields[1].split('@').next().unwrap_or_default();
            return address
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("a port");
        }
    }
    panic!("no primary serves slot {slot}");
}

fn kill9_redis(port: u16) {
    let pid = redis_cli(port, &["info", "server"])
        .lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .map(|p| p.trim().to_owned())
        .expect("the primary's pid");
    let status = Command::new("kill")
        .args(["-9", &pid])
        .status()
        .expect("kill -9");
    assert!(status.success());
}

/// Sentinel-managed primaries work too: during a 3,000-message run in which every message
/// needs a retry, the primary is killed and the Sentinels promote its replica. Hookline asks
/// the Sentinels again and every retry and idempotency key survives.
#[tokio::test]
async fn a_sentinel_failover_mid_run_loses_no_retry_and_no_idempotency_key() {
    const SENT: usize = 3_000;
    let cluster = PrivateCluster::start("sentinel", "hlfailsentinel", 7141);
    let stack = retrying_stack(
        "sentinelloss",
        &[
            ("HOOKLINE__REDIS__URL", &cluster.urls()),
            ("HOOKLINE__REDIS__SENTINEL_PRIMARY", "hookline"),
        ],
    );
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("sentinel-loss").await;
    let url = receiver.url("sink", Reply::FirstOfEachFails(500));
    api.create_endpoint(&app, json!({"url": url})).await;

    let sending = tokio::spawn(send_all(api.clone(), app.clone(), SENT));
    eventually("retries under way", Duration::from_secs(60), || async {
        (receiver.count("sink") >= 1_000).then_some(())
    })
    .await;
    let primary = sentinel_primary_port(cluster.port);
    assert_eq!(
        primary, cluster.port,
        "the primary the cluster started with"
    );
    let killed_at = Instant::now();
    kill9_redis(primary);

    let (ids, refused) = sending.await.expect("sender");
    let sent: HashSet<String> = ids.values().cloned().collect();
    assert_eq!(sent.len(), SENT);
    // Delivered = answered 200, which only a retry is: two answers per message.
    let deliveries = await_every_message(&receiver, &sent, 2).await;
    let promoted = sentinel_primary_port(cluster.port);
    assert_eq!(promoted, cluster.port + 1, "the replica was promoted");
    assert_keys_kept(&api, &app, &ids).await;
    println!(
        "sentinel failover: {SENT} messages, {} deliveries, {refused} sends refused with 503 and \
         retried, deliveries paused at most {:.0} ms, replica on port {promoted} promoted",
        deliveries.len(),
        longest_pause(&deliveries, killed_at).as_secs_f64() * 1000.0
    );
}

/// The primary's port as the first Sentinel (on `port + 2`) names it.
fn sentinel_primary_port(port: u16) -> u16 {
    redis_cli(
        port + 2,
        &["sentinel", "get-master-addr-by-name", "hookline"],
    )
    .lines()
    .nth(1)
    .and_then(|p| p.trim().parse().ok())
    .expect("the Sentinel names a primary")
}
