//! Must-show 4: a repeated `idempotency-key` or `eventId` yields one message and one delivery.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::testkit::{backends, eventually, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

#[apply(backends)]
#[tokio::test]
async fn twenty_concurrent_requests_with_one_key_make_one_message_and_one_delivery(
    #[case] backend: Backend,
) {
    let stack = Stack::on(backend, "idem");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("idem-app").await;
    let url = receiver.url("once", Reply::Always(200));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;

    let path = format!("/api/v1/app/{app}/msg");
    let body = json!({"eventType": "invoice.paid", "payload": {"amount": 4200}});
    let requests = (0..20).map(|_| {
        let (api, path, body) = (api.clone(), path.clone(), body.clone());
        async move {
            api.call(
                Method::POST,
                &path,
                Some(&body),
                &[("idempotency-key", "order-42")],
            )
            .await
        }
    });
    let answers = futures::future::join_all(requests).await;
    for (status, answer) in &answers {
        assert_eq!(*status, StatusCode::ACCEPTED, "{answer}");
    }
    let first = &answers[0].1;
    assert!(
        answers.iter().all(|(_, a)| a == first),
        "every answer is the same body"
    );

    // Sequentially, after the first finished, too.
    let (status, again) = api
        .call(
            Method::POST,
            &path,
            Some(&body),
            &[("idempotency-key", "order-42")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(&again, first);

    let msg = first["id"].as_str().expect("id").to_owned();
    eventually("the one delivery", Duration::from_secs(20), || async {
        let d = api.destination(&app, &msg, &endpoint).await?;
        (d["status"] == 0).then_some(())
    })
    .await;
    let listed = api.get(&format!("/api/v1/app/{app}/msg")).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(receiver.count("once"), 1);
    assert_eq!(api.attempts_of_message(&app, &msg).await.len(), 1);
}

#[apply(backends)]
#[tokio::test]
async fn repeated_event_id_returns_the_original_message(#[case] backend: Backend) {
    let stack = Stack::on(backend, "eventid");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("eventid-app").await;
    let url = receiver.url("once", Reply::Always(200));
    api.create_endpoint(&app, json!({"url": url})).await;

    let path = format!("/api/v1/app/{app}/msg");
    let first = api
        .post(
            &path,
            json!({"eventType": "invoice.paid", "eventId": "evt-1", "payload": {"v": 1}}),
            StatusCode::ACCEPTED,
        )
        .await;
    // A different payload under the same eventId is still the same event.
    let second = api
        .post(
            &path,
            json!({"eventType": "invoice.paid", "eventId": "evt-1", "payload": {"v": 2}}),
            StatusCode::ACCEPTED,
        )
        .await;
    assert_eq!(first, second);
    let other = api
        .post(
            &path,
            json!({"eventType": "invoice.paid", "eventId": "evt-2", "payload": {"v": 3}}),
            StatusCode::ACCEPTED,
        )
        .await;
    assert_ne!(first["id"], other["id"]);
    eventually("two deliveries", Duration::from_secs(20), || async {
        (receiver.count("once") >= 2).then_some(())
    })
    .await;
    let listed = api.get(&path).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2));
}
