//! Ordered (FIFO) endpoints: a receiver sees each message only after the one accepted
//! before it was delivered, through failures, retries, crashes, several dispatchers, a
//! message that fails until it is given up, resends, recoveries and `deliverAt`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use rstest_reuse::apply;
use serde_json::{json, Value};

use crate::testkit::process::Process;
use crate::testkit::receiver::Delivery;
use crate::testkit::{backends, eventually, Api, Backend, Receiver, Reply, Role, Stack};

/// The sequence number a test put in a payload.
fn seq(delivery: &Delivery) -> u64 {
    let body: Value = serde_json::from_str(&delivery.body).expect("a JSON payload");
    body["seq"].as_u64().expect("a seq in the payload")
}

/// Checks the ordering promise on every request the receiver saw, in arrival order: a
/// request is for the next message (the first not delivered yet) or repeats the one just
/// delivered; a message counts as delivered at its first 2xx. Answers how many messages
/// were delivered.
fn assert_in_sequence(deliveries: &[Delivery]) -> u64 {
    let mut delivered = 0u64;
    for (at, delivery) in deliveries.iter().enumerate() {
        let n = seq(delivery);
        let next = n == delivered;
        let just_delivered = delivered > 0 && n == delivered - 1;
        assert!(
            next || just_delivered,
            "request {at} is for message {n}, but {delivered} messages were delivered: \
             only {delivered} or a repeat of {} may come now",
            delivered.saturating_sub(1)
        );
        if next && (200..300).contains(&delivery.status) {
            delivered += 1;
        }
    }
    delivered
}

async fn fifo_endpoint(api: &Api, app: &str, url: &str) -> String {
    api.create_endpoint(app, json!({"url": url, "fifo": true}))
        .await
}

/// Sends `count` messages one after another (each accepted before the next is sent, so
/// acceptance order is their `seq` order), numbering them from `from`.
async fn send_in_sequence(api: &Api, app: &str, from: u64, count: u64) -> Vec<String> {
    let mut ids = Vec::new();
    for seq in from..from + count {
        ids.push(api.send(app, "invoice.updated", json!({"seq": seq})).await);
    }
    ids
}

/// The processes of a deployment with roles apart (on the embedded backend, one `serve`).
struct Deployment {
    stack: Stack,
    ingest: Process,
    others: Vec<Process>,
}

impl Deployment {
    async fn start(backend: Backend, name: &str, dispatchers: usize) -> Self {
        let stack = Stack::on(backend, name)
            .with(
                "HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS",
                "50,100,200,400,800,1600,3200,6400",
            )
            .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0")
            .with("HOOKLINE__SCHEDULER__POLL_MS", "20")
            .with("HOOKLINE__SCHEDULER__FIFO_SWEEP_MS", "200")
            .with("HOOKLINE__SCHEDULER__FIFO_STALE_MS", "3000");
        if backend == Backend::Embedded {
            let ingest = stack.start(Role::Serve).await;
            return Self {
                stack,
                ingest,
                others: Vec::new(),
            };
        }
        let ingest = stack.start(Role::Ingest).await;
        let mut others = vec![stack.start(Role::Scheduler).await];
        for _ in 0..dispatchers {
            others.push(stack.start(Role::Dispatcher).await);
        }
        Self {
            stack,
            ingest,
            others,
        }
    }

    fn api(&self) -> Api {
        self.stack.api(&self.ingest)
    }

    /// `kill -9` of one dispatcher (embedded: of the one process, started again on the
    /// same database).
    async fn kill_a_dispatcher(&mut self) {
        match self.others.last_mut() {
            Some(dispatcher) => dispatcher.kill9().await,
            None => {
                self.ingest.kill9().await;
                self.ingest = self.stack.start(Role::Serve).await;
            }
        }
    }
}

/// Must-show 1: 2,000 messages to an ordered endpoint whose receiver fails a fifth of its
/// requests at random, three dispatchers, one killed mid-run: the first successful delivery
/// of each message comes in sequence order, and a repeat is only ever of the message just
/// delivered.
#[apply(backends)]
#[tokio::test]
async fn an_ordered_endpoint_gets_every_message_in_sequence_through_failures_and_a_kill(
    #[case] backend: Backend,
) {
    const MESSAGES: u64 = 2_000;
    let mut deployment = Deployment::start(backend, "fifo", 3).await;
    let api = deployment.api();
    let receiver = Receiver::start().await;
    let app = api.create_app("fifo-app").await;
    let url = receiver.url("ordered", Reply::Flaky(20));
    fifo_endpoint(&api, &app, &url).await;
    send_in_sequence(&api, &app, 0, MESSAGES).await;

    eventually(
        "a fifth of the messages delivered",
        Duration::from_secs(300),
        || async {
            (assert_in_sequence(&receiver.deliveries("ordered")) >= MESSAGES / 5).then_some(())
        },
    )
    .await;
    deployment.kill_a_dispatcher().await;
    let api = deployment.api();
    let delivered = eventually(
        "every message delivered",
        Duration::from_secs(500),
        || async {
            let delivered = assert_in_sequence(&receiver.deliveries("ordered"));
            (delivered == MESSAGES).then_some(delivered)
        },
    )
    .await;
    let requests = receiver.deliveries("ordered");
    let failed = requests.iter().filter(|d| d.status >= 300).count();
    assert!(
        failed > 200,
        "the receiver failed {failed} requests: the run tested retries"
    );
    let ep_line = line_of_only_endpoint(&api, &app).await;
    assert_eq!(
        ep_line["length"], 0,
        "the line is empty at the end: {ep_line}"
    );
    println!(
        "{delivered} messages in order in {} requests ({failed} failed)",
        requests.len()
    );
}

async fn line_of_only_endpoint(api: &Api, app: &str) -> Value {
    let endpoints = api.get(&format!("/api/v1/app/{app}/endpoint")).await;
    let endpoint = endpoints["data"][0]["id"].as_str().expect("an endpoint");
    api.get(&format!("/api/v1/app/{app}/endpoint/{endpoint}/fifo"))
        .await
}

/// Must-show 2: a message that fails until it is given up holds the later ones back until
/// then, and they follow in order; meanwhile the line shows the endpoint blocked by it, and
/// its attempts are in the attempt log.
#[apply(backends)]
#[tokio::test]
async fn a_failing_message_blocks_the_line_until_it_is_exhausted(#[case] backend: Backend) {
    let stack = Stack::on(backend, "fifoblock")
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "400,400,400")
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0")
        .with("HOOKLINE__SCHEDULER__POLL_MS", "20");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("fifoblock-app").await;
    let url = receiver.url("blocked", Reply::FailWhen("\"poison\":true".into()));
    let endpoint = fifo_endpoint(&api, &app, &url).await;

    let first = api.send(&app, "invoice.updated", json!({"seq": 0})).await;
    let poison = api
        .send(&app, "invoice.updated", json!({"seq": 1, "poison": true}))
        .await;
    let later = send_in_sequence(&api, &app, 2, 3).await;

    let line_path = format!("/api/v1/app/{app}/endpoint/{endpoint}/fifo");
    let blocked = eventually(
        "the line blocked by the failing message",
        Duration::from_secs(30),
        || async {
            let line = api.get(&line_path).await;
            (line["head"]["blocked"] == true).then_some(line)
        },
    )
    .await;
    assert_eq!(blocked["head"]["msgId"], poison.as_str(), "{blocked}");
    assert_eq!(blocked["fifo"], true);
    assert_eq!(
        blocked["length"], 4,
        "the poison and three behind it: {blocked}"
    );
    let seen: Vec<u64> = receiver.deliveries("blocked").iter().map(seq).collect();
    assert!(
        seen.iter().all(|n| *n <= 1),
        "nothing after the blocking message was sent: {seen:?}"
    );
    let attempts = api.attempts_of_message(&app, &poison).await;
    assert!(
        !attempts.is_empty(),
        "the blocking message's attempts are logged"
    );
    assert!(
        attempts.iter().all(|a| a["status"] == 2),
        "failed: {attempts:?}"
    );

    let sent: HashSet<String> = std::iter::once(first.clone())
        .chain(std::iter::once(poison.clone()))
        .chain(later.iter().cloned())
        .collect();
    receiver
        .await_all("blocked", &sent, Duration::from_secs(30))
        .await;
    eventually("the line empty", Duration::from_secs(30), || async {
        let line = api.get(&line_path).await;
        (line["length"] == 0).then_some(())
    })
    .await;
    let deliveries = receiver.deliveries("blocked");
    let order: Vec<u64> = deliveries.iter().map(seq).collect();
    // The poison has four attempts (one and three retries), each before anything after it.
    assert_eq!(order, vec![0, 1, 1, 1, 1, 2, 3, 4], "{order:?}");
    let state = api
        .destination(&app, &poison, &endpoint)
        .await
        .expect("destination");
    assert_eq!(
        state["status"], 2,
        "the blocking message is given up: {state}"
    );
}

/// Must-show 3: a `deliverAt` message takes its place when it is due (not at acceptance),
/// a resend of a message that left the line joins its end, and a recovery sends the failed
/// messages again in their order.
#[apply(backends)]
#[tokio::test]
async fn deliver_at_resend_and_recover_take_their_places_in_the_line(#[case] backend: Backend) {
    use time::format_description::well_known::Rfc3339;

    let stack = Stack::on(backend, "fifoplaces")
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "100")
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0")
        .with("HOOKLINE__SCHEDULER__POLL_MS", "20");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("fifoplaces-app").await;
    let code = Arc::new(AtomicU16::new(200));
    let url = receiver.url("places", Reply::Switch(Arc::clone(&code)));
    let endpoint = fifo_endpoint(&api, &app, &url).await;

    // deliverAt: sent second, due in 2 s; the third goes first.
    let due = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let send_at = |seq: u64, at: Option<String>| {
        let mut body = json!({"eventType": "invoice.updated", "payload": {"seq": seq}});
        if let Some(at) = at {
            body["deliverAt"] = json!(at);
        }
        let api = api.clone();
        let path = format!("/api/v1/app/{app}/msg");
        async move {
            let message = api.post(&path, body, StatusCode::ACCEPTED).await;
            message["id"].as_str().expect("id").to_owned()
        }
    };
    let m0 = send_at(0, None).await;
    send_at(1, Some(due.format(&Rfc3339).expect("time"))).await;
    send_at(2, None).await;
    eventually(
        "the due message delivered",
        Duration::from_secs(20),
        || async { (receiver.count("places") >= 3).then_some(()) },
    )
    .await;
    send_at(3, None).await;
    eventually("four delivered", Duration::from_secs(20), || async {
        (receiver.count("places") >= 4).then_some(())
    })
    .await;
    let order: Vec<u64> = receiver.deliveries("places").iter().map(seq).collect();
    assert_eq!(
        order,
        vec![0, 2, 1, 3],
        "the deliverAt message went at its time"
    );

    // A resend of a delivered message joins the end of the line: after it, a new message.
    let resend = format!("/api/v1/app/{app}/msg/{m0}/endpoint/{endpoint}/resend");
    api.post(&resend, json!({}), StatusCode::ACCEPTED).await;
    send_at(4, None).await;
    eventually(
        "the resend and the next delivered",
        Duration::from_secs(20),
        || async { (receiver.count("places") >= 6).then_some(()) },
    )
    .await;
    let order: Vec<u64> = receiver.deliveries("places").iter().map(seq).collect();
    assert_eq!(order[4..], [0, 4], "the resend took the end of the line");

    // Three messages fail until given up (two attempts each), in order; recovered, they
    // are sent again in their order.
    let since = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    code.store(500, Ordering::SeqCst);
    let failed = send_in_sequence(&api, &app, 5, 3).await;
    for msg in &failed {
        eventually("the message given up", Duration::from_secs(20), || async {
            let state = api.destination(&app, msg, &endpoint).await?;
            (state["status"] == 2).then_some(())
        })
        .await;
    }
    code.store(200, Ordering::SeqCst);
    let recover = format!("/api/v1/app/{app}/endpoint/{endpoint}/recover");
    api.post(
        &recover,
        json!({"since": since.format(&Rfc3339).expect("time")}),
        StatusCode::ACCEPTED,
    )
    .await;
    eventually(
        "the recovered messages delivered",
        Duration::from_secs(30),
        || async {
            let ok: Vec<u64> = receiver
                .deliveries("places")
                .iter()
                .filter(|d| d.status == 200)
                .map(seq)
                .collect();
            (ok.len() >= 9).then_some(())
        },
    )
    .await;
    let recovered: Vec<u64> = receiver
        .deliveries("places")
        .iter()
        .filter(|d| d.status == 200)
        .map(seq)
        .skip(6)
        .collect();
    assert_eq!(recovered, vec![5, 6, 7], "recovered in their order");
}
