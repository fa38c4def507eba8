//! Secrets: endpoint secrets are encrypted at rest under a main key, and no secret or token
//! ever reaches the logs, even at debug level.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::Sha256;

use crate::testkit::process::TOKEN;
use crate::testkit::{backends, eventually, Api, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

const MAIN_KEY: &str = "c2VjcmV0LW1haW4ta2V5LWZvci1ob29rbGluZS10c3Q=";
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The Standard Webhooks signature, computed independently of Hookline's code.
fn expected_signature(secret: &str, id: &str, timestamp: &str, body: &str) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .expect("secret base64");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("key");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let digest = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("v1,{digest}")
}

#[tokio::test]
async fn endpoint_secrets_are_sealed_at_rest_and_still_sign() {
    let stack = Stack::new("sealed").with("HOOKLINE__AUTH__MAIN_KEY", MAIN_KEY);
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("sealed-app").await;
    let url = receiver.url("sealed", Reply::Always(200));
    let endpoint = api
        .create_endpoint(&app, json!({"url": url, "secret": SECRET}))
        .await;

    let mut redis = stack.redis().await;
    let stored: String = redis::cmd("HGET")
        .arg(stack.keys().endpoints(&app))
        .arg(&endpoint)
        .query_async(&mut redis)
        .await
        .expect("stored endpoint");
    assert!(
        !stored.contains(SECRET),
        "the secret is not stored in the clear: {stored}"
    );
    assert!(!stored.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
    assert!(stored.contains("sealed:v1:"));
    assert_eq!(api.endpoint_secret(&app, &endpoint).await, SECRET);

    let msg = api.send(&app, "invoice.paid", json!({"n": 1})).await;
    let delivery = eventually("the delivery", Duration::from_secs(20), || async {
        receiver.deliveries("sealed").into_iter().next()
    })
    .await;
    let header = |name: &str| delivery.headers.get(name).cloned().unwrap_or_default();
    assert_eq!(header("webhook-id"), msg);
    let expected = expected_signature(SECRET, &msg, &header("webhook-timestamp"), &delivery.body);
    assert_eq!(header("webhook-signature"), expected);
}

#[apply(backends)]
#[tokio::test]
async fn no_secret_or_token_reaches_the_logs(#[case] backend: Backend) {
    let stack = Stack::on(backend, "nolog")
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "50")
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0");
    let (hookline, logs) = stack
        .start_capturing_logs(Role::Serve, &[("HOOKLINE__LOG__FILTER", "debug")])
        .await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("nolog-app").await;
    let url = receiver.url("failing", Reply::Always(500));
    let endpoint = api
        .create_endpoint(&app, json!({"url": url, "secret": SECRET}))
        .await;
    let generated = api
        .create_endpoint(&app, json!({"url": receiver.url("ok", Reply::Always(200))}))
        .await;
    let generated_secret = api.endpoint_secret(&app, &generated).await;
    let msg = api.send(&app, "invoice.paid", json!({"n": 1})).await;
    let access = api
        .post(
            &format!("/api/v1/auth/app-portal-access/{app}"),
            json!({}),
            StatusCode::OK,
        )
        .await;
    let app_token = access["token"].as_str().expect("token").to_owned();
    let base = hookline.api_url.clone().expect("url");
    Api::new(&base, &app_token)
        .get(&format!("/api/v1/app/{app}/msg"))
        .await;
    // Failed authentication with a near-miss token is logged without the token.
    let near_miss = format!("{TOKEN}x");
    let (status, _) = Api::new(&base, &near_miss)
        .call(Method::GET, "/api/v1/app", None, &[])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    eventually(
        "the retries to be exhausted",
        Duration::from_secs(20),
        || async {
            let d = api.destination(&app, &msg, &endpoint).await?;
            (d["status"] == 2).then_some(())
        },
    )
    .await;
    eventually("the other delivery", Duration::from_secs(20), || async {
        (receiver.count("ok") == 1).then_some(())
    })
    .await;

    let captured = logs.at_debug_level();
    for secret in [
        SECRET,
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        generated_secret.as_str(),
        generated_secret.trim_start_matches("whsec_"),
        TOKEN,
        app_token.as_str(),
        "guest:guest",
    ] {
        assert!(
            !captured.contains(secret),
            "the logs contain a secret ({secret})"
        );
    }
}
