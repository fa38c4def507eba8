//! Delivery operations people use every day: resend.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::testkit::{backends, eventually, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

const DEADLINE: Duration = Duration::from_secs(30);

/// Resend makes one more attempt with trigger type manual and the same `webhook-id`.
#[apply(backends)]
#[tokio::test]
async fn resend_makes_a_manual_attempt_with_the_same_webhook_id(#[case] backend: Backend) {
    let stack = Stack::on(backend, "resend")
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "50")
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("resend-app").await;
    let url = receiver.url("flaky", Reply::Always(500));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    let msg = api.send(&app, "invoice.paid", json!({"r": 1})).await;
    eventually("both scheduled attempts to fail", DEADLINE, || async {
        let d = api.destination(&app, &msg, &endpoint).await?;
        (d["status"] == 2).then_some(())
    })
    .await;

    // The receiver is fixed; a person resends.
    receiver.url("flaky", Reply::Always(200));
    let path = format!("/api/v1/app/{app}/msg/{msg}/endpoint/{endpoint}/resend");
    let (status, body) = api.call(Method::POST, &path, None, &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let destination = eventually("the resend to succeed", DEADLINE, || async {
        let d = api.destination(&app, &msg, &endpoint).await?;
        (d["status"] == 0).then_some(d)
    })
    .await;
    assert_eq!(destination["attempts"], 3);

    let attempts = api.attempts_of_message(&app, &msg).await;
    let triggers: Vec<_> = attempts.iter().map(|a| a["triggerType"].clone()).collect();
    assert_eq!(
        triggers,
        [json!(0), json!(0), json!(1)],
        "scheduled, scheduled, manual"
    );
    assert_eq!(attempts[2]["attemptNumber"], 3);
    assert_eq!(attempts[2]["responseStatusCode"], 200);
    let deliveries = receiver.deliveries("flaky");
    assert_eq!(deliveries.len(), 3);
    assert!(
        deliveries.iter().all(|d| d.webhook_id() == msg),
        "one webhook-id throughout"
    );

    // Resending what does not exist is a 404, not a queued task.
    let missing = format!("/api/v1/app/{app}/msg/msg_missing/endpoint/{endpoint}/resend");
    let (status, _) = api.call(Method::POST, &missing, None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// After a rotation both secrets sign until the grace period ends, then only the new one;
/// checked with the `standardwebhooks` reference verifier.
#[apply(backends)]
#[tokio::test]
async fn rotated_secret_signs_beside_the_old_one_until_the_grace_period_ends(
    #[case] backend: Backend,
) {
    use crate::testkit::python::verify_delivery;

    const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NEW: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24tdGVzdA==";
    let stack =
        Stack::on(backend, "rotate").with("HOOKLINE__DELIVERY__SECRET_ROTATION_GRACE_SECS", "2");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("rotate-app").await;
    let url = receiver.url("rotating", Reply::Always(200));
    let endpoint = api
        .create_endpoint(&app, json!({"url": url, "secret": OLD}))
        .await;

    let rotate = format!("/api/v1/app/{app}/endpoint/{endpoint}/secret/rotate");
    let (status, body) = api
        .call(Method::POST, &rotate, Some(&json!({"key": NEW})), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"key": NEW}), "rotate answers the new secret");
    assert_eq!(api.endpoint_secret(&app, &endpoint).await, NEW);

    let during = api
        .send(&app, "invoice.paid", json!({"phase": "grace"}))
        .await;
    let delivery = eventually("the delivery during the grace period", DEADLINE, || async {
        receiver
            .deliveries("rotating")
            .into_iter()
            .find(|d| d.webhook_id() == during)
    })
    .await;
    let signature = delivery
        .headers
        .get("webhook-signature")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        signature.split(' ').count(),
        2,
        "two signatures: {signature}"
    );
    for secret in [OLD, NEW] {
        let (ok, answer) = verify_delivery(secret, &delivery.headers, &delivery.body).await;
        assert!(ok, "during the grace period {secret} verifies: {answer}");
    }

    // Once the grace period is over, deliveries carry one signature, by the new secret.
    let after = eventually("a delivery after the grace period", DEADLINE, || async {
        let msg = api
            .send(&app, "invoice.paid", json!({"phase": "after"}))
            .await;
        let delivery = eventually("its delivery", DEADLINE, || async {
            receiver
                .deliveries("rotating")
                .into_iter()
                .find(|d| d.webhook_id() == msg)
        })
        .await;
        let signature = delivery.headers.get("webhook-signature")?;
        (!signature.contains(' ')).then_some(delivery)
    })
    .await;
    let (ok, answer) = verify_delivery(NEW, &after.headers, &after.body).await;
    assert!(ok, "the new secret verifies: {answer}");
    let (ok, _) = verify_delivery(OLD, &after.headers, &after.body).await;
    assert!(
        !ok,
        "the old secret no longer verifies after the grace period"
    );
}

/// The per-endpoint schemes: hex HMAC-SHA256 of the body in a named header, checked with an
/// independent HMAC computation, and Svix header names.
#[apply(backends)]
#[tokio::test]
async fn hex_and_svix_signature_schemes_verify_independently(#[case] backend: Backend) {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    use sha2::Sha256;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let stack = Stack::on(backend, "schemes");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("schemes-app").await;
    let hex_url = receiver.url("hex", Reply::Always(200));
    let svix_url = receiver.url("svix", Reply::Always(200));
    let scheme = json!({"type": "hexBody", "header": "Byl-Signature"});
    let hex_ep = api
        .create_endpoint(
            &app,
            json!({"url": hex_url, "secret": SECRET, "signatureScheme": scheme}),
        )
        .await;
    api.create_endpoint(
        &app,
        json!({"url": svix_url, "secret": SECRET, "signatureScheme": {"type": "svix"}}),
    )
    .await;
    let shown = api
        .get(&format!("/api/v1/app/{app}/endpoint/{hex_ep}"))
        .await;
    assert_eq!(
        shown["signatureScheme"],
        json!({"type": "hexBody", "header": "byl-signature"})
    );
    let (status, error) = api
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/endpoint"),
            Some(&json!({"url": "https://example.com/", "signatureScheme": {"type": "hexBody", "header": "webhook-signature"}})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");

    let msg = api
        .send(
            &app,
            "payment.paid",
            json!({"amount": 100, "currency": "MNT"}),
        )
        .await;
    let (hex, svix) = eventually("both deliveries", DEADLINE, || async {
        let hex = receiver.deliveries("hex").into_iter().next()?;
        let svix = receiver.deliveries("svix").into_iter().next()?;
        Some((hex, svix))
    })
    .await;

    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(hex.body.as_bytes());
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex.headers.get("byl-signature"), Some(&expected));
    assert!(!hex.headers.contains_key("webhook-signature"));
    assert_eq!(hex.webhook_id(), msg);

    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .expect("base64");
    let timestamp = svix
        .headers
        .get("svix-timestamp")
        .cloned()
        .unwrap_or_default();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{msg}.{timestamp}.{}", svix.body).as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(svix.headers.get("svix-id"), Some(&msg));
    assert_eq!(
        svix.headers.get("svix-signature"),
        Some(&format!("v1,{signature}"))
    );
    assert!(!svix.headers.contains_key("webhook-id"));
}

/// 500 messages fail against a down endpoint; it comes back; recovering since T (started twice
/// at once) delivers each exactly once more and reports the summary.
#[tokio::test]
async fn recover_after_an_outage_delivers_each_failed_message_once() {
    const MESSAGES: usize = 500;
    let stack = Stack::new("recover")
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "50")
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0")
        // The refused endpoint's circuit opens and holds most messages; a short open period
        // gives them up (two open periods after their first hold) within seconds.
        .with("HOOKLINE__DELIVERY__CIRCUIT_OPEN_MS", "1000");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let app = api.create_app("recover-app").await;
    // Nothing listens on this port yet: every attempt is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let endpoint = api
        .create_endpoint(
            &app,
            json!({"url": format!("http://127.0.0.1:{port}/down")}),
        )
        .await;
    let since = time::OffsetDateTime::now_utc() - Duration::from_secs(1);
    api.send_many(&app, "order.created", MESSAGES).await;
    // Held tasks write attempt-log entries too, so count failed messages, not entries.
    let stats_path = format!("/api/v1/app/{app}/endpoint/{endpoint}/stats");
    eventually(
        "every message to fail (two attempts, or a hold and its give-up)",
        Duration::from_secs(90),
        || async {
            let stats = api.get(&stats_path).await;
            (stats["fail"] == MESSAGES).then_some(())
        },
    )
    .await;

    let receiver = crate::testkit::Receiver::start_on(port).await;
    receiver.url("down", Reply::Always(200));
    let path = format!("/api/v1/app/{app}/endpoint/{endpoint}/recover");
    let body = json!({"since": since.format(&time::format_description::well_known::Rfc3339).expect("time")});
    let (first, second) = tokio::join!(
        api.call(Method::POST, &path, Some(&body), &[]),
        api.call(Method::POST, &path, Some(&body), &[]),
    );
    assert_eq!(first.0, StatusCode::ACCEPTED, "{}", first.1);
    assert_eq!(second.0, StatusCode::ACCEPTED, "{}", second.1);
    assert_eq!(first.1["id"], second.1["id"], "one recovery, started twice");
    let job = first.1["id"].as_str().expect("id").to_owned();
    let summary = eventually(
        "the recovery to finish",
        Duration::from_secs(120),
        || async {
            let status = api.get(&format!("{path}/{job}")).await;
            (status["status"] == "finished").then_some(status)
        },
    )
    .await;
    assert_eq!(summary["data"]["messagesSent"], MESSAGES);
    assert_eq!(summary["data"]["succeeded"], MESSAGES);
    assert_eq!(summary["data"]["failed"], 0);
    assert_eq!(summary["data"]["connectionErrors"], 0);
    let deliveries = receiver.deliveries("down");
    let distinct: std::collections::HashSet<_> = deliveries
        .iter()
        .map(|d| d.webhook_id().to_owned())
        .collect();
    assert_eq!(distinct.len(), MESSAGES);
    assert_eq!(
        deliveries.len(),
        MESSAGES,
        "each failed message delivered exactly once more"
    );

    // Nothing failed any more: another recovery resends nothing.
    let again = api.post(&path, body, StatusCode::ACCEPTED).await;
    let again_id = again["id"].as_str().expect("id").to_owned();
    assert_ne!(again_id, job);
    let summary = eventually(
        "the second recovery to finish",
        Duration::from_secs(60),
        || async {
            let status = api.get(&format!("{path}/{again_id}")).await;
            (status["status"] == "finished").then_some(status)
        },
    )
    .await;
    assert_eq!(summary["data"]["messagesSent"], 0);
    assert_eq!(receiver.count("down"), MESSAGES);
}

/// `rateLimit: 20` with 200 messages and two dispatcher processes: never more than about
/// 20 deliveries in any second, and all 200 arrive.
#[tokio::test]
async fn rate_limit_holds_across_two_dispatchers() {
    const MESSAGES: usize = 200;
    let stack = Stack::new("ratelimit");
    let ingest = stack.start(Role::Ingest).await;
    let _scheduler = stack.start(Role::Scheduler).await;
    let _first = stack.start(Role::Dispatcher).await;
    let _second = stack.start(Role::Dispatcher).await;
    let api = stack.api(&ingest);
    let receiver = Receiver::start().await;
    let app = api.create_app("ratelimit-app").await;
    let url = receiver.url("limited", Reply::Always(200));
    api.create_endpoint(&app, json!({"url": url, "rateLimit": 20}))
        .await;
    api.send_many(&app, "tick", MESSAGES).await;
    let deliveries = eventually("all 200 deliveries", Duration::from_secs(120), || async {
        let deliveries = receiver.deliveries("limited");
        (deliveries.len() >= MESSAGES).then_some(deliveries)
    })
    .await;
    let distinct: std::collections::HashSet<_> = deliveries
        .iter()
        .map(|d| d.webhook_id().to_owned())
        .collect();
    assert_eq!(distinct.len(), MESSAGES);
    let times: Vec<_> = deliveries.iter().map(|d| d.at).collect();
    let busiest = times
        .iter()
        .map(|start| {
            times
                .iter()
                .filter(|t| **t >= *start && **t < *start + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    println!("busiest second: {busiest} deliveries");
    assert!(
        busiest <= 22,
        "{busiest} deliveries within one second (limit 20 + 10%)"
    );
    let span = times[times.len() - 1] - times[0];
    assert!(
        span >= Duration::from_secs(9),
        "200 at 20/s take about 10 s, not {span:?}"
    );
}

/// Stats count messages by state; send-example delivers the event type's example to one
/// endpoint; expunge removes a payload and a response body but keeps the records.
#[apply(backends)]
#[tokio::test]
async fn stats_send_example_and_expunge(#[case] backend: Backend) {
    let stack = Stack::on(backend, "upkeep")
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "50")
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("upkeep-app").await;
    let ok_url = receiver.url("ok", Reply::Always(200));
    let ok = api
        .create_endpoint(&app, json!({"url": ok_url, "eventTypes": ["invoice.paid"]}))
        .await;
    let bad_url = receiver.url("bad", Reply::Always(500));
    let bad = api
        .create_endpoint(
            &app,
            json!({"url": bad_url, "eventTypes": ["invoice.failed"]}),
        )
        .await;
    let paid = [
        api.send(&app, "invoice.paid", json!({"p": 1})).await,
        api.send(&app, "invoice.paid", json!({"p": 2})).await,
    ];
    let failed = api
        .send(&app, "invoice.failed", json!({"secret": "card 4242"}))
        .await;
    eventually("all three settled", DEADLINE, || async {
        let a = api.destination(&app, &paid[0], &ok).await?;
        let b = api.destination(&app, &paid[1], &ok).await?;
        let c = api.destination(&app, &failed, &bad).await?;
        (a["status"] == 0 && b["status"] == 0 && c["status"] == 2).then_some(())
    })
    .await;
    let ok_stats = api
        .get(&format!("/api/v1/app/{app}/endpoint/{ok}/stats"))
        .await;
    assert_eq!(
        ok_stats,
        json!({"success": 2, "pending": 0, "sending": 0, "fail": 0, "canceled": 0})
    );
    // `until` bounds the window: nothing was attempted before the messages were sent.
    let before_all = api
        .get(&format!(
            "/api/v1/app/{app}/endpoint/{ok}/stats?since=2024-01-01T00:00:00Z&until=2024-01-02T00:00:00Z"
        ))
        .await;
    assert_eq!(before_all["success"], 0, "{before_all}");
    let bad_stats = api
        .get(&format!("/api/v1/app/{app}/endpoint/{bad}/stats"))
        .await;
    assert_eq!(
        bad_stats,
        json!({"success": 0, "pending": 0, "sending": 0, "fail": 1, "canceled": 0})
    );

    api.post(
        "/api/v1/event-type",
        json!({"name": "invoice.paid", "description": "Paid", "schemas": {"1": {"type": "object", "examples": [{"invoice": "inv_example", "amount": 4200}]}}}),
        StatusCode::CREATED,
    )
    .await;
    let example = api
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ok}/send-example"),
            json!({"eventType": "invoice.paid"}),
            StatusCode::ACCEPTED,
        )
        .await;
    let delivered = eventually("the example", DEADLINE, || async {
        receiver
            .deliveries("ok")
            .into_iter()
            .find(|d| d.webhook_id() == example["id"].as_str().unwrap_or_default())
    })
    .await;
    let body: serde_json::Value = serde_json::from_str(&delivered.body).expect("json");
    assert_eq!(body, json!({"invoice": "inv_example", "amount": 4200}));
    assert_eq!(
        receiver.count("bad"),
        2,
        "the example went to one endpoint only"
    );

    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/app/{app}/msg/{failed}/content"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let message = api.get(&format!("/api/v1/app/{app}/msg/{failed}")).await;
    assert_eq!(message["payload"], json!({}));
    let attempts = api.attempts_of_message(&app, &failed).await;
    let attempt = attempts[0]["id"].as_str().expect("id");
    assert!(attempts[0]["response"]
        .as_str()
        .is_some_and(|r| !r.is_empty()));
    let path = format!("/api/v1/app/{app}/msg/{failed}/attempt/{attempt}/content");
    let (status, _) = api.call(Method::DELETE, &path, None, &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let attempts = api.attempts_of_message(&app, &failed).await;
    assert_eq!(attempts[0]["response"], "");
    assert_eq!(attempts[0]["responseStatusCode"], 500, "the record stays");
}

/// The messages an endpoint was sent, newest first, with their state, in pages.
#[apply(backends)]
#[tokio::test]
async fn attempted_messages_of_an_endpoint_page_newest_first(#[case] backend: Backend) {
    let stack = Stack::on(backend, "attempted");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("attempted-app").await;
    let url = receiver.url("seen", Reply::Always(200));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    let mut sent = Vec::new();
    for n in 0..3 {
        let msg = api.send(&app, "tick", json!({"n": n})).await;
        eventually("the delivery", DEADLINE, || async {
            let d = api.destination(&app, &msg, &endpoint).await?;
            (d["status"] == 0).then_some(())
        })
        .await;
        sent.push(msg);
    }
    let path = format!("/api/v1/app/{app}/endpoint/{endpoint}/msg");
    let first = api.get(&format!("{path}?limit=2")).await;
    let ids: Vec<_> = first["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, [json!(sent[2]), json!(sent[1])]);
    assert_eq!(first["data"][0]["status"], 0);
    assert_eq!(first["data"][0]["payload"], json!({"n": 2}));
    assert_eq!(first["done"], false);
    let iterator = first["iterator"].as_str().expect("iterator");
    let second = api
        .get(&format!("{path}?limit=2&iterator={iterator}"))
        .await;
    let ids: Vec<_> = second["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(ids, [json!(sent[0])]);
    assert_eq!(second["done"], true);
}
