//! Must-show 1: the official `svix` Python SDK drives Hookline, and the `standardwebhooks`
//! package verifies what the receiver got.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use crate::testkit::process::TOKEN;
use crate::testkit::{eventually, Receiver, Reply, Role, Stack};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    let python = repo().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/python-env (scripts/test does)",
        python.display()
    );
    python
}

async fn run_python(script: &str, env: &[(&str, &str)], stdin: Option<&str>) -> (bool, Value) {
    let mut child = tokio::process::Command::new(python())
        .arg(repo().join("tests/python").join(script))
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start python");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .await
        .expect("write stdin");
    drop(input);
    let output = child.wait_with_output().await.expect("python output");
    let text = String::from_utf8_lossy(&output.stdout);
    let last = text.lines().last().unwrap_or("");
    let value = serde_json::from_str(last).unwrap_or_else(|_| panic!("{script} printed: {text}"));
    (output.status.success(), value)
}

#[tokio::test]
async fn svix_python_sdk_message_is_delivered_and_verified_by_standardwebhooks() {
    let stack = Stack::new("svix");
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
    assert_eq!(result["endpoint_event_types"], json!(["invoice.paid"]));

    let delivery = eventually(
        "the SDK's message at the receiver",
        Duration::from_secs(20),
        || async { receiver.deliveries("svix").into_iter().next() },
    )
    .await;
    assert_eq!(delivery.webhook_id(), msg_id);
    let secret = api.endpoint_secret(&app_id, &endpoint_id).await;

    let check = |secret: String, body: String| {
        let headers = delivery.headers.clone();
        async move {
            let input = json!({"secret": secret, "headers": headers, "body": body}).to_string();
            run_python("verify_delivery.py", &[], Some(&input)).await
        }
    };
    let (verified, answer) = check(secret.clone(), delivery.body.clone()).await;
    assert!(verified, "standardwebhooks rejected the delivery: {answer}");
    assert_eq!(answer["ok"], true);

    // The verifier is not a rubber stamp: a changed body or another secret fails.
    let (tampered, _) = check(secret, delivery.body.replace("4200", "4201")).await;
    assert!(!tampered, "a tampered body must not verify");
    let (wrong_key, _) = check(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        delivery.body.clone(),
    )
    .await;
    assert!(!wrong_key, "another secret must not verify");
}
