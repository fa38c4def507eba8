//! Uniqueness and caps under concurrency: many simultaneous requests for one uid make one
//! record, and simultaneous endpoint creates stop exactly at the per-app cap. Every loser
//! gets 409 in the JSON error shape.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::testkit::{backends, Api, Backend, Role, Stack};
use rstest_reuse::apply;

/// How many requests race in each test.
const RACERS: usize = 200;

/// Sends `bodies` to `path` all at once; answers every (status, body).
async fn race(
    api: &Api,
    method: Method,
    paths: Vec<String>,
    body: Value,
) -> Vec<(StatusCode, Value)> {
    // Open a connection per request first, so the racing requests reach the server
    // together instead of queueing behind connection setup.
    let warm_up = paths
        .iter()
        .map(|_| api.call(Method::GET, "/api/v1/app?limit=1", None, &[]));
    futures::future::join_all(warm_up).await;
    let calls = paths.iter().map(|path| {
        let (api, method, body) = (api.clone(), method.clone(), body.clone());
        async move { api.call(method, path, Some(&body), &[]).await }
    });
    futures::future::join_all(calls).await
}

/// Checks that exactly `winners` answers carry `won` and every other one is a JSON 409.
fn assert_outcome(answers: &[(StatusCode, Value)], won: StatusCode, winners: usize) {
    let count = answers.iter().filter(|(s, _)| *s == won).count();
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| s.as_u16()).collect();
    assert_eq!(count, winners, "{won} answers: {statuses:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != won) {
        assert_eq!(*status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["code"], "conflict", "{body}");
        assert!(body["detail"].is_string(), "{body}");
    }
}

/// Every listed item whose `uid` is `uid`.
fn with_uid<'a>(listing: &'a Value, uid: &str) -> Vec<&'a Value> {
    listing["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter(|item| item["uid"] == uid)
        .collect()
}

#[apply(backends)]
#[tokio::test]
async fn concurrent_creates_with_one_uid_make_one_app(#[case] backend: Backend) {
    let stack = Stack::on(backend, "race-app-uid");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);

    let paths = vec!["/api/v1/app".to_owned(); RACERS];
    let answers = race(
        &api,
        Method::POST,
        paths,
        json!({"name": "Racy", "uid": "racy"}),
    )
    .await;
    assert_outcome(&answers, StatusCode::CREATED, 1);
    let listing = api.get("/api/v1/app?limit=250").await;
    let apps = with_uid(&listing, "racy");
    assert_eq!(apps.len(), 1, "apps with the uid: {listing}");
    let winner = answers
        .iter()
        .find(|(s, _)| *s == StatusCode::CREATED)
        .map(|(_, body)| body["id"].clone());
    assert_eq!(Some(apps[0]["id"].clone()), winner);
    assert_eq!(api.get("/api/v1/app/racy").await["id"], apps[0]["id"]);

    // Moving many apps onto one uid at once: exactly one of them gets it.
    let mut ids = Vec::new();
    for n in 0..20 {
        ids.push(api.create_app(&format!("mover-{n}")).await);
    }
    let paths = ids.iter().map(|id| format!("/api/v1/app/{id}")).collect();
    let answers = race(&api, Method::PATCH, paths, json!({"uid": "moved"})).await;
    assert_outcome(&answers, StatusCode::OK, 1);
    let listing = api.get("/api/v1/app?limit=250").await;
    assert_eq!(with_uid(&listing, "moved").len(), 1, "{listing}");
    let holder = api.get("/api/v1/app/moved").await;
    assert_eq!(holder["uid"], "moved", "{holder}");
}

#[apply(backends)]
#[tokio::test]
async fn concurrent_creates_with_one_uid_make_one_endpoint(#[case] backend: Backend) {
    let stack = Stack::on(backend, "race-endpoint-uid")
        .with("HOOKLINE__API__MAX_ENDPOINTS_PER_APP", "1000");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let app = api.create_app("race-endpoint-uid").await;
    let path = format!("/api/v1/app/{app}/endpoint");

    let body = json!({"url": "https://example.com/hook", "uid": "racy-ep"});
    let answers = race(&api, Method::POST, vec![path.clone(); RACERS], body).await;
    assert_outcome(&answers, StatusCode::CREATED, 1);
    let listing = api.get(&format!("{path}?limit=250")).await;
    assert_eq!(with_uid(&listing, "racy-ep").len(), 1, "{listing}");
    assert_eq!(
        listing["data"].as_array().map(Vec::len),
        Some(1),
        "{listing}"
    );

    // Moving many endpoints onto one uid at once: exactly one of them gets it.
    let mut ids = Vec::new();
    for n in 0..20 {
        let url = format!("https://example.com/{n}");
        ids.push(api.create_endpoint(&app, json!({ "url": url })).await);
    }
    let paths = ids.iter().map(|id| format!("{path}/{id}")).collect();
    let answers = race(&api, Method::PATCH, paths, json!({"uid": "moved-ep"})).await;
    assert_outcome(&answers, StatusCode::OK, 1);
    let listing = api.get(&format!("{path}?limit=250")).await;
    assert_eq!(with_uid(&listing, "moved-ep").len(), 1, "{listing}");
}

#[apply(backends)]
#[tokio::test]
async fn concurrent_endpoint_creates_stop_at_the_cap(#[case] backend: Backend) {
    let stack = Stack::on(backend, "race-cap").with("HOOKLINE__API__MAX_ENDPOINTS_PER_APP", "100");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let app = api.create_app("race-cap").await;
    let path = format!("/api/v1/app/{app}/endpoint");

    let body = json!({"url": "https://example.com/hook"});
    let answers = race(&api, Method::POST, vec![path.clone(); RACERS], body).await;
    assert_outcome(&answers, StatusCode::CREATED, 100);
    let listing = api.get(&format!("{path}?limit=250")).await;
    assert_eq!(
        listing["data"].as_array().map(Vec::len),
        Some(100),
        "{listing}"
    );
    let (_, refused) = answers
        .iter()
        .find(|(s, _)| *s == StatusCode::CONFLICT)
        .expect("a refused create");
    assert!(
        refused["detail"]
            .as_str()
            .is_some_and(|d| d.contains("100")),
        "{refused}"
    );
}
