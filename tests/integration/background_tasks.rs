//! Background tasks through both official Svix SDKs: recover, replay-missing, bulk-replay,
//! expunge-all-contents and the two statistics each answer a task that
//! `backgroundTask.get` follows to `finished` with the right counts; real receivers get
//! exactly the messages each should (and not the ones its filters exclude); the list pages
//! both ways and its filters narrow. Then what the SDKs cannot show: refused inputs name
//! their field, app tokens are kept out, a running task shows partial counts, and one whose
//! process died reads as failed.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::testkit::js::run_js;
use crate::testkit::process::TOKEN;
use crate::testkit::python::run_python;
use crate::testkit::{eventually, sdk_backends, Api, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

/// What the Rust side prepares before an SDK script starts the tasks.
struct Fixture {
    receiver: Receiver,
    since: String,
    recover_app: String,
    recover_endpoint: String,
    recover_msgs: Vec<String>,
    replay_app: String,
    /// Created disabled with `filterTypes: [order.created]`, enabled after m1 and m2.
    p: String,
    /// Created after every message, with no filter.
    q: String,
    /// m1 order.created (P disabled), m2 invoice.paid, m3 order.created (P enabled).
    m: [String; 3],
    bulk_app: String,
    bulk_endpoint: String,
    /// b1 order.created on channel eu tagged vip, b2 order.created, b3 invoice.paid tagged vip.
    b: [String; 3],
}

const BULK_UID: &str = "bg-bulk";

fn stack(backend: Backend, name: &str) -> Stack {
    Stack::on(backend, name)
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "50")
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0")
}

async fn send(api: &Api, app: &str, body: Value) -> String {
    let path = format!("/api/v1/app/{app}/msg");
    let message = api.post(&path, body, StatusCode::ACCEPTED).await;
    message["id"].as_str().expect("message id").to_owned()
}

/// Waits until `msg`'s delivery to `endpoint` is in `status` (0 success, 2 fail).
async fn settled(api: &Api, app: &str, msg: &str, endpoint: &str, status: u64) {
    eventually(
        "the delivery to settle",
        Duration::from_secs(30),
        || async {
            let destination = api.destination(app, msg, endpoint).await?;
            (destination["status"] == status).then_some(())
        },
    )
    .await;
}

async fn prepare(api: &Api) -> Fixture {
    let receiver = Receiver::start().await;
    let since = (OffsetDateTime::now_utc() - Duration::from_secs(1))
        .format(&Rfc3339)
        .expect("time");

    // Recover: two messages that fail both of their attempts.
    let recover_app = api.create_app("bg-recover").await;
    let url = receiver.url("recover", Reply::FirstOfEachFailTimes(500, 2));
    let recover_endpoint = api.create_endpoint(&recover_app, json!({"url": url})).await;
    let recover_msgs = api.send_many(&recover_app, "order.created", 2).await;
    for msg in &recover_msgs {
        settled(api, &recover_app, msg, &recover_endpoint, 2).await;
    }

    let (replay_app, p, q, m) = prepare_replay(api, &receiver).await;
    let (bulk_app, bulk_endpoint, b) = prepare_bulk(api, &receiver).await;
    Fixture {
        receiver,
        since,
        recover_app,
        recover_endpoint,
        recover_msgs,
        replay_app,
        p,
        q,
        m,
        bulk_app,
        bulk_endpoint,
        b,
    }
}

async fn prepare_replay(api: &Api, receiver: &Receiver) -> (String, String, String, [String; 3]) {
    let app = api.create_app("bg-replay").await;
    let p_url = receiver.url("p", Reply::Always(200));
    let body = json!({"url": p_url, "filterTypes": ["order.created"], "disabled": true});
    let p = api.create_endpoint(&app, body).await;
    let m1 = send(
        api,
        &app,
        json!({"eventType": "order.created", "payload": {"m": 1}}),
    )
    .await;
    let m2 = send(
        api,
        &app,
        json!({"eventType": "invoice.paid", "payload": {"m": 2}}),
    )
    .await;
    let path = format!("/api/v1/app/{app}/endpoint/{p}");
    let (status, answer) = api
        .call(Method::PATCH, &path, Some(&json!({"disabled": false})), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let m3 = send(
        api,
        &app,
        json!({"eventType": "order.created", "payload": {"m": 3}}),
    )
    .await;
    settled(api, &app, &m3, &p, 0).await;
    let q_url = receiver.url("q", Reply::Always(200));
    let q = api.create_endpoint(&app, json!({"url": q_url})).await;
    (app, p, q, [m1, m2, m3])
}

async fn prepare_bulk(api: &Api, receiver: &Receiver) -> (String, String, [String; 3]) {
    let app = api.create_app(BULK_UID).await;
    let url = receiver.url("bulk", Reply::Always(200));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    let b1 = json!({"eventType": "order.created", "payload": {"b": 1}, "channels": ["eu"], "tags": ["vip"]});
    let b2 = json!({"eventType": "order.created", "payload": {"b": 2}});
    let b3 = json!({"eventType": "invoice.paid", "payload": {"b": 3}, "tags": ["vip"]});
    let b = [
        send(api, &app, b1).await,
        send(api, &app, b2).await,
        send(api, &app, b3).await,
    ];
    for msg in &b {
        settled(api, &app, msg, &endpoint, 0).await;
    }
    (app, endpoint, b)
}

/// The environment the SDK scripts read.
fn script_env(base: &str, f: &Fixture) -> Vec<(&'static str, String)> {
    vec![
        ("HOOKLINE_URL", base.to_owned()),
        ("HOOKLINE_TOKEN", TOKEN.to_owned()),
        ("SINCE", f.since.clone()),
        ("RECOVER_APP", f.recover_app.clone()),
        ("RECOVER_ENDPOINT", f.recover_endpoint.clone()),
        ("REPLAY_APP", f.replay_app.clone()),
        ("REPLAY_P", f.p.clone()),
        ("REPLAY_Q", f.q.clone()),
        ("BULK_APP", f.bulk_app.clone()),
        ("BULK_APP_UID", BULK_UID.to_owned()),
        ("BULK_ENDPOINT", f.bulk_endpoint.clone()),
    ]
}

/// How many deliveries of each message `path` got.
fn deliveries_by_message(receiver: &Receiver, path: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for delivery in receiver.deliveries(path) {
        *counts.entry(delivery.webhook_id().to_owned()).or_insert(0) += 1;
    }
    counts
}

fn counts(pairs: &[(&String, usize)]) -> HashMap<String, usize> {
    pairs.iter().map(|(id, n)| ((*id).clone(), *n)).collect()
}

/// A task the script followed: finished, of `task`, answered with the same id and type.
fn finished<'a>(result: &'a Value, name: &str, task: &str) -> &'a Value {
    let followed = &result[name];
    assert_eq!(followed["status"], "finished", "{name}: {followed}");
    assert_eq!(followed["task"], task, "{name}: {followed}");
    assert_eq!(
        followed["answer"]["id"], followed["id"],
        "{name}: {followed}"
    );
    assert_eq!(followed["answer"]["task"], task, "{name}: {followed}");
    &followed["data"]
}

/// Sent and succeeded counts of a delivery task's data.
fn sent(data: &Value, expected: u64) {
    assert_eq!(data["messagesSent"], expected, "{data}");
    assert_eq!(data["succeeded"], expected, "{data}");
    assert_eq!(data["failed"], 0, "{data}");
    assert_eq!(data["outstanding"], 0, "{data}");
}

fn check_deliveries(f: &Fixture, result: &Value) {
    sent(finished(result, "recover", "endpoint.recover"), 2);
    let recovered = deliveries_by_message(&f.receiver, "recover");
    let expected: Vec<_> = f.recover_msgs.iter().map(|m| (m, 3)).collect();
    assert_eq!(
        recovered,
        counts(&expected),
        "two failures and the recovery each"
    );

    let [m1, m2, m3] = &f.m;
    sent(finished(result, "replay_p", "endpoint.replay"), 1);
    let p = deliveries_by_message(&f.receiver, "p");
    assert_eq!(p, counts(&[(m3, 1), (m1, 1)]), "P: m1 replayed, never m2");
    sent(finished(result, "replay_q", "endpoint.replay"), 3);
    let q = deliveries_by_message(&f.receiver, "q");
    assert_eq!(q, counts(&[(m1, 1), (m2, 1), (m3, 1)]));

    let [b1, b2, b3] = &f.b;
    sent(finished(result, "bulk_types", "endpoint.bulk-replay"), 2);
    sent(finished(result, "bulk_tag", "endpoint.bulk-replay"), 1);
    sent(finished(result, "bulk_5xx", "endpoint.bulk-replay"), 0);
    let bulk = deliveries_by_message(&f.receiver, "bulk");
    assert_eq!(
        bulk,
        counts(&[(b1, 3), (b2, 2), (b3, 1)]),
        "invoice.paid is never replayed by type, b2 never by tag and channel"
    );
}

async fn check_expunge_and_stats(api: &Api, f: &Fixture, result: &Value) {
    let data = finished(result, "expunge", "application.purge_content");
    assert_eq!(data["messagesPurged"], 3, "{data}");
    for msg in &f.b {
        let message = api
            .get(&format!("/api/v1/app/{}/msg/{msg}", f.bulk_app))
            .await;
        assert_eq!(message["payload"], json!({}), "{message}");
    }
    let kept = api
        .get(&format!("/api/v1/app/{}/msg/{}", f.replay_app, f.m[0]))
        .await;
    assert_eq!(
        kept["payload"],
        json!({"m": 1}),
        "another app keeps its payloads"
    );

    assert_eq!(
        result["stats_unresolved"],
        json!(["app_that_does_not_exist"])
    );
    let data = finished(result, "stats", "application.stats");
    assert_eq!(data["unresolvedAppIds"], json!(["app_that_does_not_exist"]));
    let stats = data["appStats"].as_array().expect("appStats");
    assert_eq!(stats.len(), 2, "only the apps asked for: {data}");
    let of = |app: &str| stats.iter().find(|s| s["appId"] == app).cloned();
    let recover = of(&f.recover_app).expect("recover app counted");
    assert_eq!(
        (&recover["messages"], &recover["messageDestinations"]),
        (&json!(2), &json!(2))
    );
    let bulk = of(&f.bulk_app).expect("the app named by uid counted");
    assert_eq!(bulk["appUid"], BULK_UID);
    assert_eq!(
        (&bulk["messages"], &bulk["messageDestinations"]),
        (&json!(3), &json!(3))
    );

    let data = finished(result, "event_types", "event-type.aggregate");
    let apps = data["event_types"].as_array().expect("event_types");
    let of = |app: &str| apps.iter().find(|a| a["appId"] == app).cloned();
    let replay = of(&f.replay_app).expect("replay app listed");
    assert_eq!(
        replay["explicitlySubscribedEventTypes"],
        json!(["order.created"])
    );
    assert_eq!(replay["hasCatchAllEndpoint"], true, "Q takes every type");
    let recover = of(&f.recover_app).expect("recover app listed");
    assert_eq!(recover["explicitlySubscribedEventTypes"], json!([]));
    assert_eq!(recover["hasCatchAllEndpoint"], true);
}

fn check_lists(result: &Value) {
    let names = [
        "recover",
        "replay_p",
        "replay_q",
        "bulk_types",
        "bulk_tag",
        "bulk_5xx",
        "expunge",
        "stats",
        "event_types",
    ];
    let created: Vec<Value> = names.iter().map(|n| result[*n]["id"].clone()).collect();
    let lists = &result["lists"];
    let newest_first: Vec<Value> = created.iter().rev().cloned().collect();
    assert_eq!(lists["all"], json!(newest_first), "{lists}");
    assert_eq!(lists["first"], json!(newest_first[..3]));
    assert_eq!(lists["second"], json!(newest_first[3..6]));
    assert_eq!(lists["back"], lists["first"], "prevIterator pages back");
    assert_eq!(lists["first_done"], false);
    assert_eq!(lists["oldest"], json!(created[..2]));
    assert_eq!(lists["bulk"], json!([created[5], created[4], created[3]]));
    assert_eq!(lists["bulk_types"], json!(["endpoint.bulk-replay"]));
    assert_eq!(lists["finished"], json!(newest_first));
    assert_eq!(lists["running"], json!([]));
}

async fn sdk_run(
    backend: Backend,
    name: &str,
    run: impl AsyncFnOnce(Vec<(&str, String)>) -> Value,
) {
    let stack = stack(backend, name);
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let fixture = prepare(&api).await;
    let base = hookline.api_url.clone().expect("api url");
    let result = run(script_env(&base, &fixture)).await;
    check_deliveries(&fixture, &result);
    check_expunge_and_stats(&api, &fixture, &result).await;
    check_lists(&result);
}

#[apply(sdk_backends)]
#[tokio::test]
async fn svix_python_sdk_starts_and_follows_every_background_task(#[case] backend: Backend) {
    sdk_run(backend, "bgpy", async |env| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (ok, result) = run_python("svix_background_tasks.py", &env, None).await;
        assert!(ok, "svix_background_tasks.py failed: {result}");
        result
    })
    .await;
}

#[apply(sdk_backends)]
#[tokio::test]
async fn svix_js_sdk_starts_and_follows_every_background_task(#[case] backend: Backend) {
    sdk_run(backend, "bgjs", async |env| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (ok, result) = run_js("background_tasks.mjs", &env).await;
        assert!(ok, "background_tasks.mjs failed: {result}");
        result
    })
    .await;
}

/// Answers `(status, body)` of a request with the admin token.
async fn call(api: &Api, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    api.call(method, path, body.as_ref(), &[]).await
}

/// A 422 whose first error is at `loc`.
fn refused_at(answer: &(StatusCode, Value), loc: &[&str]) {
    assert_eq!(answer.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", answer.1);
    assert_eq!(answer.1["detail"][0]["loc"], json!(loc), "{}", answer.1);
}

/// Follows a task with the admin token until it is no longer running.
async fn follow(api: &Api, id: &str) -> Value {
    eventually(
        "the task to stop running",
        Duration::from_secs(30),
        || async {
            let task = api.get(&format!("/api/v1/background-task/{id}")).await;
            (task["status"] != "running").then_some(task)
        },
    )
    .await
}

/// Every documented input is honoured or refused with a 4xx naming it.
#[apply(sdk_backends)]
#[tokio::test]
async fn background_task_inputs_are_honoured_or_refused_by_name(#[case] backend: Backend) {
    let stack = stack(backend, "bginputs");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("bg-inputs").await;
    let url = receiver.url("in", Reply::Always(200));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    let msg = api.send(&app, "order.created", json!({})).await;
    settled(&api, &app, &msg, &endpoint, 0).await;
    let since = (OffsetDateTime::now_utc() - Duration::from_secs(60))
        .format(&Rfc3339)
        .expect("time");
    let bulk = format!("/api/v1/app/{app}/endpoint/{endpoint}/bulk-replay");
    let replay = format!("/api/v1/app/{app}/endpoint/{endpoint}/replay-missing");
    let post = |path: &str, body: Value| {
        let (api, path) = (api.clone(), path.to_owned());
        async move { call(&api, Method::POST, &path, Some(body)).await }
    };

    for (body, loc) in [
        (json!({"since": since, "status": 9}), vec!["body", "status"]),
        (
            json!({"since": since, "statusCodeClass": 250}),
            vec!["body", "statusCodeClass"],
        ),
        (
            json!({"since": since, "eventTypes": ["ok", "no spaces"]}),
            vec!["body", "eventTypes", "1"],
        ),
        (
            json!({"since": since, "channel": "not a channel!"}),
            vec!["body", "channel"],
        ),
        (json!({"since": since, "tag": ""}), vec!["body", "tag"]),
        (
            json!({"since": since, "until": "2000-01-01T00:00:00Z"}),
            vec!["body", "until"],
        ),
        (json!({}), vec!["body", "since"]),
    ] {
        refused_at(&post(&bulk, body).await, &loc);
    }
    let unknown = post(&bulk, json!({"since": since, "sinceWhen": 1})).await;
    assert_eq!(unknown.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", unknown.1);
    assert!(unknown.1.to_string().contains("sinceWhen"), "{}", unknown.1);
    refused_at(
        &post(
            &replay,
            json!({"since": since, "until": "2000-01-01T00:00:00Z"}),
        )
        .await,
        &["body", "until"],
    );

    // Canceled (4) is a status Hookline never has: honoured, it matches nothing.
    let canceled = post(&bulk, json!({"since": since, "status": 4})).await;
    assert_eq!(canceled.0, StatusCode::ACCEPTED, "{}", canceled.1);
    let done = follow(&api, canceled.1["id"].as_str().expect("id")).await;
    assert_eq!(
        (&done["status"], &done["data"]["messagesSent"]),
        (&json!("finished"), &json!(0))
    );
    let matching = post(
        &bulk,
        json!({"since": since, "status": 0, "statusCodeClass": 200}),
    )
    .await;
    let done = follow(&api, matching.1["id"].as_str().expect("id")).await;
    assert_eq!(done["data"]["messagesSent"], 1, "{done}");

    check_stats_inputs(&api, &app, &since).await;
    check_list_queries(&api).await;
    check_idempotency(&api, &bulk, &since).await;

    let patch = format!("/api/v1/app/{app}/endpoint/{endpoint}");
    let (status, _) = call(&api, Method::PATCH, &patch, Some(json!({"disabled": true}))).await;
    assert_eq!(status, StatusCode::OK);
    let recover = format!("/api/v1/app/{app}/endpoint/{endpoint}/recover");
    let disabled = post(&recover, json!({"since": since})).await;
    assert_eq!(disabled.0, StatusCode::CONFLICT, "{}", disabled.1);
}

async fn check_stats_inputs(api: &Api, app: &str, since: &str) {
    let path = "/api/v1/stats/usage/app";
    let now = OffsetDateTime::now_utc().format(&Rfc3339).expect("time");
    for (body, loc) in [
        (json!({"since": now, "until": since}), vec!["body", "until"]),
        (
            json!({"since": since, "until": now, "appIds": []}),
            vec!["body", "appIds"],
        ),
        (
            json!({"since": since, "until": now, "appIds": ["app_nobody"]}),
            vec!["body", "appIds"],
        ),
        (json!({"since": since}), vec!["body", "until"]),
    ] {
        refused_at(&call(api, Method::POST, path, Some(body)).await, &loc);
    }
    // Without appIds every app is counted.
    let every = call(
        api,
        Method::POST,
        path,
        Some(json!({"since": since, "until": now})),
    )
    .await;
    assert_eq!(every.0, StatusCode::ACCEPTED, "{}", every.1);
    assert_eq!(every.1["unresolvedAppIds"], json!([]));
    let done = follow(api, every.1["id"].as_str().expect("id")).await;
    let stats = &done["data"]["appStats"];
    assert_eq!(stats.as_array().map(Vec::len), Some(1), "{done}");
    assert_eq!(
        (&stats[0]["appId"], &stats[0]["messages"]),
        (&json!(app), &json!(1))
    );
}

async fn check_list_queries(api: &Api) {
    for (query, field) in [
        ("task=endpoint.nothing", "task"),
        ("status=done", "status"),
        ("limit=0", "limit"),
    ] {
        let answer = call(
            api,
            Method::GET,
            &format!("/api/v1/background-task?{query}"),
            None,
        )
        .await;
        refused_at(&answer, &["query", field]);
    }
    let missing = call(
        api,
        Method::GET,
        "/api/v1/background-task/qtask_nothing",
        None,
    )
    .await;
    assert_eq!(missing.0, StatusCode::NOT_FOUND, "{}", missing.1);
}

/// The same `idempotency-key` answers the first task; another key starts another.
async fn check_idempotency(api: &Api, bulk: &str, since: &str) {
    let body = json!({"since": since});
    let keyed = |key: &'static str| {
        let body = body.clone();
        async move {
            api.call(Method::POST, bulk, Some(&body), &[("idempotency-key", key)])
                .await
        }
    };
    let first = keyed("bg-key-1").await;
    let again = keyed("bg-key-1").await;
    let other = keyed("bg-key-2").await;
    assert_eq!(first.0, StatusCode::ACCEPTED, "{}", first.1);
    assert_eq!(again.1["id"], first.1["id"], "{}", again.1);
    assert_ne!(other.1["id"], first.1["id"]);
    let bad = keyed("has space").await;
    assert_eq!(bad.0, StatusCode::BAD_REQUEST, "{}", bad.1);
}

/// Background tasks span apps: an app token may start its app's tasks and follow its
/// recoveries, but reads no task list, no other task and no statistics.
#[apply(sdk_backends)]
#[tokio::test]
async fn an_app_token_starts_its_own_tasks_but_reads_no_background_task(#[case] backend: Backend) {
    let stack = stack(backend, "bgtenancy");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("bg-tenant").await;
    let url = receiver.url("t", Reply::Always(200));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    let access = api
        .post(
            &format!("/api/v1/auth/app-portal-access/{app}"),
            json!({}),
            StatusCode::OK,
        )
        .await;
    let tenant = Api::new(&api.base, access["token"].as_str().expect("token"));
    let since = OffsetDateTime::now_utc().format(&Rfc3339).expect("time");
    let recover = format!("/api/v1/app/{app}/endpoint/{endpoint}/recover");
    let started = tenant
        .post(&recover, json!({"since": since}), StatusCode::ACCEPTED)
        .await;
    let id = started["id"].as_str().expect("id");
    let own = tenant.get(&format!("{recover}/{id}")).await;
    assert_eq!(own["task"], "endpoint.recover");
    let now = OffsetDateTime::now_utc().format(&Rfc3339).expect("time");
    for (method, path, body) in [
        (Method::GET, "/api/v1/background-task".to_owned(), None),
        (Method::GET, format!("/api/v1/background-task/{id}"), None),
        (
            Method::POST,
            "/api/v1/stats/usage/app".to_owned(),
            Some(json!({"since": since, "until": now})),
        ),
        (
            Method::PUT,
            "/api/v1/stats/usage/event-types".to_owned(),
            None,
        ),
    ] {
        let (status, answer) = tenant.call(method, &path, body.as_ref(), &[]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer}");
    }
}

/// While a task runs, `get` shows it running with the counts so far; a task whose process
/// was killed reads as failed once its lease lapses, with the reason.
#[apply(sdk_backends)]
#[tokio::test]
async fn a_running_task_shows_partial_counts_and_a_killed_one_reads_failed(
    #[case] backend: Backend,
) {
    let stack = stack(backend, "bglease").with("HOOKLINE__API__BACKGROUND_TASK_LEASE_MS", "1000");
    let mut hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("bg-lease").await;
    let url = receiver.url("slow", Reply::Always(200));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    let since = (OffsetDateTime::now_utc() - Duration::from_secs(1))
        .format(&Rfc3339)
        .expect("time");
    for msg in api.send_many(&app, "order.created", 2).await {
        settled(&api, &app, &msg, &endpoint, 0).await;
    }
    receiver.url("slow", Reply::Slow(Duration::from_secs(3)));
    let bulk = format!("/api/v1/app/{app}/endpoint/{endpoint}/bulk-replay");
    let start = || async {
        api.post(&bulk, json!({"since": since}), StatusCode::ACCEPTED)
            .await
    };
    let first = start().await;
    let id = first["id"].as_str().expect("id").to_owned();
    let partial = eventually(
        "the task running with its sends queued",
        Duration::from_secs(20),
        || async {
            let task = api.get(&format!("/api/v1/background-task/{id}")).await;
            (task["data"]["messagesSent"] == 2).then_some(task)
        },
    )
    .await;
    assert_eq!(partial["status"], "running", "{partial}");
    assert_eq!(
        partial["data"]["outstanding"], 2,
        "the slow receiver has not answered: {partial}"
    );
    let done = follow(&api, &id).await;
    assert_eq!(
        (&done["status"], &done["data"]["succeeded"]),
        (&json!("finished"), &json!(2))
    );

    let second = start().await;
    let id = second["id"].as_str().expect("id").to_owned();
    eventually(
        "the second task's sends queued",
        Duration::from_secs(20),
        || async {
            let task = api.get(&format!("/api/v1/background-task/{id}")).await;
            (task["status"] == "running" && task["data"]["messagesSent"] == 2).then_some(())
        },
    )
    .await;
    hookline.kill9().await;
    let restarted = stack.start(Role::Serve).await;
    let api = stack.api(&restarted);
    let dead = follow(&api, &id).await;
    assert_eq!(dead["status"], "failed", "{dead}");
    assert!(
        dead["data"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("stopped")),
        "{dead}"
    );
    let listed = api.get("/api/v1/background-task?status=failed").await;
    assert_eq!(
        listed["data"][0]["id"],
        json!(id),
        "the failed filter sees it: {listed}"
    );
}
