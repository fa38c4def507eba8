//! The attempt log as the dashboard reads it: filters by status and event type, the request
//! headers kept per attempt (credentials redacted), lookup by `eventId`, and an endpoint's
//! activity summary.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::testkit::{backends, eventually, Api, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

#[apply(backends)]
#[tokio::test]
async fn attempts_filter_by_status_and_event_type_and_keep_request_headers(
    #[case] backend: Backend,
) {
    let stack = Stack::on(backend, "attemptlog");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("attempt-log-app").await;
    let url = receiver.url("hooks", Reply::Always(500));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    let headers = json!({"headers": {"Authorization": "Bearer s3cr3t-value", "X-Tenant": "acme"}});
    let (status, body) = api
        .call(
            Method::PUT,
            &format!("/api/v1/app/{app}/endpoint/{endpoint}/headers"),
            Some(&headers),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let attempts = format!("/api/v1/app/{app}/attempt/endpoint/{endpoint}");

    let failed = api.send(&app, "invoice.paid", json!({"n": 1})).await;
    eventually("the failed attempt", Duration::from_secs(20), || async {
        (!api.attempts_of_message(&app, &failed).await.is_empty()).then_some(())
    })
    .await;
    receiver.url("hooks", Reply::Always(200));
    let paid = api.send(&app, "invoice.paid", json!({"n": 2})).await;
    let created = api
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "customer.created", "eventId": "evt-42", "payload": {"n": 3}}),
            StatusCode::ACCEPTED,
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    eventually(
        "both later messages delivered",
        Duration::from_secs(20),
        || async {
            let ok = api.get(&format!("{attempts}?status=0")).await;
            let ids = msg_ids(&ok);
            (ids.contains(&paid) && ids.contains(&created)).then_some(())
        },
    )
    .await;

    let fails = api.get(&format!("{attempts}?status=2")).await;
    assert!(msg_ids(&fails).contains(&failed), "{fails}");
    assert!(fails["data"]
        .as_array()
        .expect("data")
        .iter()
        .all(|a| a["status"] == 2));
    let customer = api
        .get(&format!("{attempts}?event_types=customer.created"))
        .await;
    assert_eq!(msg_ids(&customer), vec![created.clone()], "{customer}");
    let paid_ok = api
        .get(&format!(
            "{attempts}?status=0&event_types=invoice.paid&event_types=other.type"
        ))
        .await;
    assert!(msg_ids(&paid_ok).contains(&paid));
    assert!(!msg_ids(&paid_ok).contains(&created));

    // A filtered listing pages like any other: one at a time, no repeats, then done.
    let first = api.get(&format!("{attempts}?status=0&limit=1")).await;
    assert_eq!(first["done"], false, "{first}");
    let iterator = first["iterator"].as_str().expect("iterator");
    let second = api
        .get(&format!("{attempts}?status=0&limit=1&iterator={iterator}"))
        .await;
    assert_eq!(second["data"].as_array().map(Vec::len), Some(1));
    assert_ne!(first["data"][0]["id"], second["data"][0]["id"]);

    // The request as sent, minus the credential the endpoint owner configured.
    let attempt = &fails["data"][0];
    let sent = &attempt["requestHeaders"];
    assert_eq!(sent["authorization"], "[redacted]", "{attempt}");
    assert_eq!(sent["x-tenant"], "acme");
    assert_eq!(sent["webhook-id"], attempt["msgId"]);
    assert!(sent["webhook-signature"]
        .as_str()
        .is_some_and(|s| s.starts_with("v1,")));
    assert!(sent["user-agent"]
        .as_str()
        .is_some_and(|s| s.starts_with("Hookline/")));
    assert_eq!(attempt["eventType"], "invoice.paid");
    assert!(
        attempt["responseHeaders"]["content-length"].is_string(),
        "{attempt}"
    );
    let real = receiver.deliveries("hooks");
    assert_eq!(real[0].headers["authorization"], "Bearer s3cr3t-value");

    // Svix lets a message be read by its eventId.
    let by_event = api.get(&format!("/api/v1/app/{app}/msg/evt-42")).await;
    assert_eq!(by_event["id"], created.as_str());
    expect_error(
        &api,
        &format!("/api/v1/app/{app}/msg/evt-none"),
        StatusCode::NOT_FOUND,
        None,
    )
    .await;

    // Bad filters name the parameter.
    expect_error(
        &api,
        &format!("{attempts}?status=9"),
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("status"),
    )
    .await;
    // A filtered listing reads oldest first too.
    let oldest_first = api
        .get(&format!("{attempts}?status=0&order=ascending"))
        .await;
    let ids: Vec<&str> = oldest_first["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|a| a["id"].as_str().expect("id"))
        .collect();
    assert!(ids.len() >= 2, "{oldest_first}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{oldest_first}");
}

#[apply(backends)]
#[tokio::test]
async fn activity_summarises_the_window_by_hour(#[case] backend: Backend) {
    let stack = Stack::on(backend, "activity");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("activity-app").await;
    let url = receiver.url("hooks", Reply::Sequence(vec![500, 200, 200, 200]));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    let activity = format!("/api/v1/app/{app}/endpoint/{endpoint}/activity");

    let empty = api.get(&activity).await;
    assert_eq!(empty["lastAttempt"], Value::Null);
    assert_eq!(empty["buckets"].as_array().map(Vec::len), Some(24));
    assert_eq!(empty["complete"], true);

    for n in 0..4 {
        // One at a time, so the 500 goes to the first.
        let msg = api.send(&app, "invoice.paid", json!({ "n": n })).await;
        eventually("the attempt", Duration::from_secs(20), || async {
            (!api.attempts_of_message(&app, &msg).await.is_empty()).then_some(())
        })
        .await;
    }
    let summary = api.get(&format!("{activity}?hours=6")).await;
    assert_eq!(summary["succeeded"], 3, "{summary}");
    assert_eq!(summary["failed"], 1);
    let buckets = summary["buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 6);
    let in_buckets: u64 = buckets
        .iter()
        .map(|b| b["succeeded"].as_u64().unwrap_or(0) + b["failed"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        in_buckets, 4,
        "every attempt falls in an hour of the window: {summary}"
    );
    assert_eq!(summary["lastAttempt"]["status"], 0);
    expect_error(
        &api,
        &format!("{activity}?hours=0"),
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("hours"),
    )
    .await;
    expect_error(
        &api,
        &format!("{activity}?hours=many"),
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("hours"),
    )
    .await;
}

fn msg_ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|a| a["msgId"].as_str().expect("msgId").to_owned())
        .collect()
}

async fn expect_error(api: &Api, path: &str, status: StatusCode, field: Option<&str>) {
    let (got, body) = api.call(Method::GET, path, None, &[]).await;
    assert_eq!(got, status, "GET {path}: {body}");
    if let Some(field) = field {
        assert!(
            body.to_string().contains(field),
            "{path}: {body} names {field}"
        );
    }
}
