//! The backlog view (`GET /api/v1/stats/backlog`): an app whose deliveries wait shows up
//! first with their number and a growing age, and leaves once they are delivered.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::testkit::{backends, eventually, Api, Backend, Gate, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

const DEADLINE: Duration = Duration::from_secs(30);

/// The view with `limit`, and the app it lists first: `(view, appId, pending, age)`.
async fn view(api: &Api, limit: usize) -> Value {
    api.get(&format!("/api/v1/stats/backlog?limit={limit}"))
        .await
}

fn first_app(view: &Value) -> Option<(&str, u64, u64)> {
    let app = view["apps"].get(0)?;
    Some((
        app["appId"].as_str()?,
        app["pending"].as_u64()?,
        app["oldestPendingAgeMs"].as_u64()?,
    ))
}

/// Deliveries held at a receiver stay pending: the view names the app with the most of them
/// first, with their exact number and an age that grows while nothing moves; once the
/// receiver answers, everything is delivered and the view is empty. The roles run as
/// separate processes where the backend allows, so the counts cross processes.
#[apply(backends)]
#[tokio::test]
async fn the_backlog_view_names_the_waiting_app_until_its_deliveries_are_done(
    #[case] backend: Backend,
) {
    let stack = Stack::on(backend, "backlog")
        .with("HOOKLINE__DELIVERY__TIMEOUT_MS", "60000")
        .with("HOOKLINE__OPS__BACKLOG_FLUSH_MS", "200");
    let (hookline, _dispatcher) = if backend == Backend::Embedded {
        (stack.start(Role::Serve).await, None)
    } else {
        let ingest = stack.start(Role::Ingest).await;
        (ingest, Some(stack.start(Role::Dispatcher).await))
    };
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let gate = Gate::closed();

    let busy = api.create_app("backlog-busy").await;
    let busy_url = receiver.url("busy", Reply::Held(gate.clone()));
    let busy_endpoint = api.create_endpoint(&busy, json!({"url": busy_url})).await;
    let quiet = api.create_app("backlog-quiet").await;
    let quiet_url = receiver.url("quiet", Reply::Held(gate.clone()));
    let quiet_endpoint = api.create_endpoint(&quiet, json!({"url": quiet_url})).await;
    api.send_many(&busy, "order.created", 5).await;
    api.send_many(&quiet, "order.created", 2).await;

    let (listed, first_age) = eventually("the busy app listed first with 5", DEADLINE, || async {
        let listed = view(&api, 10).await;
        let (app, pending, age) = first_app(&listed)?;
        (app == busy && pending == 5 && listed["pending"] == 7).then_some((listed, age))
    })
    .await;
    assert_eq!(listed["apps"][0]["appUid"], "backlog-busy");
    assert_eq!(listed["apps"][1]["appId"], quiet);
    assert_eq!(listed["apps"][1]["pending"], 2);
    assert_eq!(listed["apps"].as_array().map(Vec::len), Some(2));
    let endpoints: Vec<(&str, &str, u64)> = listed["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| {
            (
                e["appId"].as_str().expect("appId"),
                e["endpointId"].as_str().expect("endpointId"),
                e["pending"].as_u64().expect("pending"),
            )
        })
        .collect();
    assert_eq!(
        endpoints,
        [
            (busy.as_str(), busy_endpoint.as_str(), 5),
            (quiet.as_str(), quiet_endpoint.as_str(), 2)
        ]
    );
    let oldest = listed["oldestPendingAgeMs"].as_u64().expect("an age");
    assert!(oldest >= first_age, "{listed}");
    assert!(listed["asOf"].as_str().is_some_and(|t| t.ends_with('Z')));

    // Nothing moves while the receiver holds them: the age grows.
    eventually("the busy app's age to grow", DEADLINE, || async {
        let later = view(&api, 10).await;
        let (app, pending, age) = first_app(&later)?;
        (app == busy && pending == 5 && age > first_age).then_some(())
    })
    .await;
    let top = view(&api, 1).await;
    assert_eq!(top["apps"].as_array().map(Vec::len), Some(1));
    assert_eq!(top["endpoints"][0]["endpointId"], busy_endpoint.as_str());
    assert_eq!(top["endpoints"].as_array().map(Vec::len), Some(1));

    gate.open();
    let done = eventually("an empty backlog", DEADLINE, || async {
        let done = view(&api, 10).await;
        (done["pending"] == 0).then_some(done)
    })
    .await;
    assert_eq!(done["apps"], json!([]), "{done}");
    assert_eq!(done["endpoints"], json!([]), "{done}");
    assert_eq!(done["oldestPendingAgeMs"], Value::Null);
    assert_eq!(receiver.completed("busy").len(), 5);
    assert_eq!(receiver.completed("quiet").len(), 2);
}

/// `limit` outside 1..=100 is refused naming it; an app token may not read the view.
#[apply(backends)]
#[tokio::test]
async fn the_backlog_view_refuses_a_bad_limit_and_app_tokens(#[case] backend: Backend) {
    let stack = Stack::on(backend, "backlog-refusals");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    for limit in ["0", "101", "ten"] {
        let path = format!("/api/v1/stats/backlog?limit={limit}");
        let (status, body) = api.call(Method::GET, &path, None, &[]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{limit}: {body}");
        assert_eq!(
            body["detail"][0]["loc"],
            json!(["query", "limit"]),
            "{body}"
        );
    }
    let empty = view(&api, 100).await;
    assert_eq!(
        empty,
        json!({
            "pending": 0,
            "oldestPendingAgeMs": null,
            "apps": [],
            "endpoints": [],
            "asOf": empty["asOf"],
        })
    );

    let app = api.create_app("backlog-tenant").await;
    let access = api
        .post(
            &format!("/api/v1/auth/app-portal-access/{app}"),
            json!({}),
            StatusCode::OK,
        )
        .await;
    let tenant = Api::new(&api.base, access["token"].as_str().expect("token"));
    let (status, body) = tenant
        .call(Method::GET, "/api/v1/stats/backlog", None, &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}
