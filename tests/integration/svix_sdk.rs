//! Must-show 1: the official `svix` Python SDK drives Hookline, and the `standardwebhooks`
//! package verifies what the receiver got.

use std::time::Duration;

use serde_json::json;

use crate::testkit::process::TOKEN;
use crate::testkit::python::{run_python, verify_delivery};
use crate::testkit::{backends, eventually, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

#[apply(backends)]
#[tokio::test]
async fn svix_python_sdk_message_is_delivered_and_verified_by_standardwebhooks(
    #[case] backend: Backend,
) {
    let stack = Stack::on(backend, "svix");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let url = receiver.url("svix", Reply::Always(204));

    let base = hookline.api_url.clone().expect("api url");
    let (ok, result) = run_python(
        "svix_roundtrip.py",
        &[
            ("HOOKLINE_URL", base.as_str()),
            ("HOOKLINE_TOKEN", TOKEN),
            ("RECEIVER_URL", url.as_str()),
        ],
        None,
    )
    .await;
    assert!(ok, "svix_roundtrip.py failed: {result}");
    let msg_id = result["msg_id"].as_str().expect("msg_id").to_owned();
    let app_id = result["app_id"].as_str().expect("app_id").to_owned();
    let endpoint_id = result["endpoint_id"]
        .as_str()
        .expect("endpoint_id")
        .to_owned();
    assert!(result["listed_ids"]
        .as_array()
        .is_some_and(|ids| ids.contains(&json!(msg_id))));
    assert_eq!(result["got_event_type"], "invoice.paid");
    assert_eq!(
        result["got_payload"],
        json!({"id": "inv_1", "amount": 4200})
    );
    // The SDK sends `with_content=false` unless asked: the payload is left out, as Svix does.
    assert_eq!(result["got_default_payload"], json!({}), "{result}");
    assert_eq!(result["created_payload"], json!({}), "{result}");
    assert_eq!(result["endpoint_event_types"], json!(["invoice.paid"]));

    let delivery = eventually(
        "the SDK's message at the receiver",
        Duration::from_secs(20),
        || async { receiver.deliveries("svix").into_iter().next() },
    )
    .await;
    assert_eq!(delivery.webhook_id(), msg_id);
    let secret = api.endpoint_secret(&app_id, &endpoint_id).await;

    let (verified, answer) = verify_delivery(&secret, &delivery.headers, &delivery.body).await;
    assert!(verified, "standardwebhooks rejected the delivery: {answer}");
    assert_eq!(answer["ok"], true);

    // The verifier is not a rubber stamp: a changed body or another secret fails.
    let tampered = delivery.body.replace("4200", "4201");
    let (ok, _) = verify_delivery(&secret, &delivery.headers, &tampered).await;
    assert!(!ok, "a tampered body must not verify");
    let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (ok, _) = verify_delivery(other, &delivery.headers, &delivery.body).await;
    assert!(!ok, "another secret must not verify");
}

/// The SDK's `message_attempt.resend` parses the answer as `EmptyResponse`, and its list
/// options (`tag`, `prev_iterator`) reach the server: resend does not throw, and the resent
/// message reaches the receiver again with the same `webhook-id`.
#[apply(backends)]
#[tokio::test]
async fn svix_python_sdk_resend_tags_and_prev_iterator(#[case] backend: Backend) {
    let stack = Stack::on(backend, "svixlists");
    let hookline = stack.start(Role::Serve).await;
    let receiver = Receiver::start().await;
    let url = receiver.url("lists", Reply::Always(204));
    let base = hookline.api_url.clone().expect("api url");
    let (ok, result) = run_python(
        "svix_lists.py",
        &[
            ("HOOKLINE_URL", base.as_str()),
            ("HOOKLINE_TOKEN", TOKEN),
            ("RECEIVER_URL", url.as_str()),
        ],
        None,
    )
    .await;
    assert!(ok, "svix_lists.py failed: {result}");
    assert_eq!(result["resend"], json!({}));
    let first_sent = result["sent"][0].clone();
    assert_eq!(result["tagged"], json!([first_sent]), "{result}");
    assert_eq!(result["tags"], json!([["vip"]]), "{result}");
    assert_eq!(
        result["back"], result["first"],
        "prev_iterator pages back: {result}"
    );
    let first_sent = first_sent.as_str().expect("id").to_owned();
    eventually(
        "the resent message delivered twice",
        Duration::from_secs(20),
        || async {
            let twice = receiver
                .deliveries("lists")
                .iter()
                .filter(|d| d.webhook_id() == first_sent)
                .count()
                >= 2;
            twice.then_some(())
        },
    )
    .await;
}
