//! Retries: attempts follow the schedule, stop at success, and stop for good when exhausted.

use std::time::Duration;

use serde_json::json;

use crate::testkit::{backends, eventually, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

const DEADLINE: Duration = Duration::from_secs(30);

/// Must-show 2: 500, 500, 200 gives exactly three attempts, spaced by the schedule, listed
/// in order through the API.
#[apply(backends)]
#[tokio::test]
async fn failing_endpoint_is_retried_on_schedule_until_it_succeeds(#[case] backend: Backend) {
    let stack = Stack::on(backend, "retry")
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "200,400")
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;

    let app = api.create_app("retry-app").await;
    let url = receiver.url("flaky", Reply::Sequence(vec![500, 500, 200]));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    let msg = api.send(&app, "invoice.paid", json!({"invoice": 7})).await;

    let destination = eventually("the third attempt to succeed", DEADLINE, || async {
        let d = api.destination(&app, &msg, &endpoint).await?;
        (d["status"] == 0).then_some(d)
    })
    .await;
    assert_eq!(destination["attempts"], 3);
    assert_eq!(destination["statusText"], "success");

    let deliveries = receiver.deliveries("flaky");
    assert_eq!(deliveries.len(), 3, "exactly three attempts");
    let gaps: Vec<Duration> = deliveries.windows(2).map(|w| w[1].at - w[0].at).collect();
    for (gap, planned) in gaps.iter().zip([200u64, 400]) {
        let planned = Duration::from_millis(planned);
        assert!(
            *gap >= planned,
            "retry came after {gap:?}, before the planned {planned:?}"
        );
        assert!(
            *gap < planned + Duration::from_millis(1500),
            "retry came after {gap:?}, long after the planned {planned:?}"
        );
    }
    // Every attempt is the same message: same id, same body.
    assert!(deliveries.iter().all(|d| d.webhook_id() == msg));
    assert!(deliveries.iter().all(|d| d.body == r#"{"invoice":7}"#));

    let attempts = api.attempts_of_message(&app, &msg).await;
    let codes: Vec<_> = attempts
        .iter()
        .map(|a| a["responseStatusCode"].clone())
        .collect();
    assert_eq!(codes, [json!(500), json!(500), json!(200)]);
    let statuses: Vec<_> = attempts.iter().map(|a| a["status"].clone()).collect();
    assert_eq!(statuses, [json!(2), json!(2), json!(0)]);
    assert!(attempts[0]["response"]
        .as_str()
        .is_some_and(|r| r.contains("answer 500")));
    // One attempt by id, and the endpoint's attempt log, agree with the message's.
    let last_id = attempts[2]["id"].as_str().expect("attempt id");
    let one = api
        .get(&format!("/api/v1/app/{app}/msg/{msg}/attempt/{last_id}"))
        .await;
    assert_eq!(one, attempts[2]);
    let by_endpoint = api
        .get(&format!("/api/v1/app/{app}/attempt/endpoint/{endpoint}"))
        .await;
    assert_eq!(by_endpoint["data"].as_array().map(Vec::len), Some(3));
}

/// Must-show 3: an endpoint that always fails gets 1 + len(schedule) attempts, then none,
/// and the message shows as failed for it.
#[tokio::test]
async fn always_failing_endpoint_is_given_up_after_the_last_attempt() {
    let stack = Stack::new("exhaust")
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "100,200")
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;

    let app = api.create_app("exhaust-app").await;
    let url = receiver.url("down", Reply::Always(503));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    let msg = api.send(&app, "invoice.paid", json!({"n": 1})).await;

    let destination = eventually("the destination to be marked failed", DEADLINE, || async {
        let d = api.destination(&app, &msg, &endpoint).await?;
        (d["status"] == 2).then_some(d)
    })
    .await;
    assert_eq!(destination["statusText"], "fail");
    assert_eq!(destination["attempts"], 3);
    assert_eq!(destination["nextAttempt"], serde_json::Value::Null);

    // Nothing is left anywhere that could make a fourth attempt: the retry schedule of this
    // deployment is empty, and the receiver saw three requests.
    let mut redis = stack.redis().await;
    let keys = stack.keys();
    let waiting: u64 = redis::cmd("ZCARD")
        .arg(keys.schedule_due())
        .query_async(&mut redis)
        .await
        .expect("zcard");
    let leased: u64 = redis::cmd("ZCARD")
        .arg(keys.schedule_leases())
        .query_async(&mut redis)
        .await
        .expect("zcard");
    assert_eq!((waiting, leased), (0, 0), "no retry left in the schedule");
    assert_eq!(receiver.count("down"), 3);
    let attempts = api.attempts_of_message(&app, &msg).await;
    assert_eq!(attempts.len(), 3);
    assert!(attempts.iter().all(|a| a["responseStatusCode"] == 503));
}

/// Custom endpoint headers are sent with every delivery; reserved or malformed ones are
/// refused with 422 naming `headers`.
#[apply(backends)]
#[tokio::test]
async fn custom_endpoint_headers_travel_with_deliveries(#[case] backend: Backend) {
    use reqwest::{Method, StatusCode};

    let stack = Stack::on(backend, "headers");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("headers-app").await;
    let url = receiver.url("with-headers", Reply::Always(200));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    let path = format!("/api/v1/app/{app}/endpoint/{endpoint}/headers");

    let put = json!({"headers": {"X-Tenant": "acme", "X-Remove-Me": "soon"}});
    let (status, body) = api.call(Method::PUT, &path, Some(&put), &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let patch = json!({"headers": {"Authorization": "Bearer downstream", "x-remove-me": null}});
    let (status, body) = api.call(Method::PATCH, &path, Some(&patch), &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let shown = api.get(&path).await;
    assert_eq!(
        shown["headers"],
        json!({"authorization": "Bearer downstream", "x-tenant": "acme"})
    );

    for bad in [
        json!({"headers": {"webhook-signature": "v1,forged"}}),
        json!({"headers": {"Host": "evil.example"}}),
        json!({"headers": {"bad name": "x"}}),
        json!({"headers": {"x-ok": "line\nbreak"}}),
    ] {
        let (status, error) = api.call(Method::PUT, &path, Some(&bad), &[]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {error}");
        assert!(error["detail"].to_string().contains("headers"), "{error}");
    }

    let msg = api.send(&app, "invoice.paid", json!({"h": 1})).await;
    let delivery = eventually("the delivery", DEADLINE, || async {
        receiver.deliveries("with-headers").into_iter().next()
    })
    .await;
    assert_eq!(delivery.webhook_id(), msg);
    assert_eq!(
        delivery.headers.get("x-tenant").map(String::as_str),
        Some("acme")
    );
    assert_eq!(
        delivery.headers.get("authorization").map(String::as_str),
        Some("Bearer downstream")
    );
    assert!(!delivery.headers.contains_key("x-remove-me"));
    assert!(delivery
        .headers
        .get("webhook-signature")
        .is_some_and(|s| s.starts_with("v1,")));
}

/// A 503 with `Retry-After: 2` stretches a 100 ms retry to two seconds.
#[apply(backends)]
#[tokio::test]
async fn retry_after_on_503_is_honoured(#[case] backend: Backend) {
    let stack = Stack::on(backend, "retryafter")
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "100,5000")
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("retryafter-app").await;
    let url = receiver.url("busy", Reply::ComeBackLater(503, 2));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    let msg = api.send(&app, "invoice.paid", json!({"n": 1})).await;
    eventually("the second attempt to succeed", DEADLINE, || async {
        let d = api.destination(&app, &msg, &endpoint).await?;
        (d["status"] == 0).then_some(())
    })
    .await;
    let deliveries = receiver.deliveries("busy");
    assert_eq!(deliveries.len(), 2);
    let gap = deliveries[1].at - deliveries[0].at;
    assert!(
        gap >= Duration::from_secs(2),
        "retried after {gap:?}, before Retry-After"
    );
    assert!(gap < Duration::from_secs(4), "retried after {gap:?}");
}

/// `deliverAt` holds a message in the schedule until its time.
#[apply(backends)]
#[tokio::test]
async fn deliver_at_delays_the_first_attempt(#[case] backend: Backend) {
    use time::format_description::well_known::Rfc3339;

    let stack = Stack::on(backend, "deliverat");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("deliverat-app").await;
    let url = receiver.url("later", Reply::Always(200));
    api.create_endpoint(&app, json!({"url": url})).await;
    let sent = std::time::Instant::now();
    let at = time::OffsetDateTime::now_utc() + Duration::from_millis(1500);
    let body = json!({
        "eventType": "reminder.due",
        "payload": {"r": 1},
        "deliverAt": at.format(&Rfc3339).expect("time"),
    });
    let message = api
        .post(
            &format!("/api/v1/app/{app}/msg"),
            body,
            reqwest::StatusCode::ACCEPTED,
        )
        .await;
    let delivery = eventually("the scheduled delivery", DEADLINE, || async {
        receiver.deliveries("later").into_iter().next()
    })
    .await;
    assert_eq!(delivery.webhook_id(), message["id"].as_str().expect("id"));
    let waited = delivery.at - sent;
    assert!(
        waited >= Duration::from_millis(1400),
        "delivered after {waited:?}"
    );

    let too_far = json!({"eventType": "x", "payload": {}, "deliverAt": "2099-01-01T00:00:00Z"});
    let (status, error) = api
        .call(
            reqwest::Method::POST,
            &format!("/api/v1/app/{app}/msg"),
            Some(&too_far),
            &[],
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "{error}");
}

/// Creating a message reads the app with its endpoints in one step: by id or by uid, every
/// endpoint gets the message; an unknown app answers 404, unless the request's `application`
/// creates it (then there are no endpoints yet and nothing is sent).
#[apply(backends)]
#[tokio::test]
async fn a_message_to_an_app_by_id_or_uid_reaches_every_endpoint(#[case] backend: Backend) {
    let stack = Stack::on(backend, "byuid");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;

    let app = api.create_app("shop-by-uid").await;
    for path in ["first", "second"] {
        let url = receiver.url(path, Reply::Always(200));
        api.create_endpoint(&app, json!({"url": url})).await;
    }
    let by_id = api.send(&app, "order.created", json!({"n": 1})).await;
    let by_uid = api
        .send("shop-by-uid", "order.created", json!({"n": 2}))
        .await;
    let sent = std::collections::HashSet::from([by_id, by_uid]);
    for path in ["first", "second"] {
        let deliveries = receiver.await_all(path, &sent, DEADLINE).await;
        let ids: std::collections::HashSet<String> = deliveries
            .iter()
            .map(|d| d.webhook_id().to_owned())
            .collect();
        assert_eq!(ids, sent, "both messages at {path}");
    }

    let message = json!({"eventType": "order.created", "payload": {"n": 3}});
    let missing = api
        .post(
            "/api/v1/app/no-such-app/msg",
            message.clone(),
            reqwest::StatusCode::NOT_FOUND,
        )
        .await;
    assert!(missing.to_string().contains("application"), "{missing}");
    let mut creating = message;
    creating["application"] = json!({"name": "Made with its first message"});
    api.post(
        "/api/v1/app/made-on-the-fly/msg",
        creating,
        reqwest::StatusCode::ACCEPTED,
    )
    .await;
    let made = api.get("/api/v1/app/made-on-the-fly").await;
    assert_eq!(made["uid"], "made-on-the-fly");
}
