//! Every call the official Svix SDKs make on applications, event types, endpoints, messages
//! and attempts, through both: the Python SDK (svix 2.9.1, tests/python/svix_<resource>.py)
//! and the JavaScript SDK (npm svix 1.99.1, tests/js/<resource>.mjs). Each script creates,
//! reads, updates, lists both ways (an iterator, then the prevIterator back to the earlier
//! page), filters and deletes, checks the SDK parsed each answer into its types, and fails
//! on the first surprise. Destinations (`fifoEndpoint` only, endpoints with ordered
//! delivery) exist in the Python SDK alone: tests/python/svix_destinations.py. What only a receiver can see (custom headers delivered, the old
//! secret still signing during a rotation's grace period, the chosen example, a resend) is
//! checked here at a real receiver.

use std::net::Ipv4Addr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::testkit::dns::TestDns;
use crate::testkit::js::run_js;
use crate::testkit::process::{Process, TOKEN};
use crate::testkit::python::{run_python, verify_delivery};
use crate::testkit::receiver::Delivery;
use crate::testkit::{eventually, sdk_backends, Api, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

/// The two SDKs; each script has one file per SDK.
#[derive(Debug, Clone, Copy)]
enum Sdk {
    Python,
    Js,
}

/// Runs the `resource` script of `sdk` against `hookline` with `env`; answers what it
/// printed, after asserting it succeeded.
async fn run_sdk(sdk: Sdk, resource: &str, hookline: &Process, env: &[(&str, &str)]) -> Value {
    let base = hookline.api_url.clone().expect("api url");
    let mut all = vec![("HOOKLINE_URL", base.as_str()), ("HOOKLINE_TOKEN", TOKEN)];
    all.extend_from_slice(env);
    let (ok, result) = match sdk {
        Sdk::Python => run_python(&format!("svix_{resource}.py"), &all, None).await,
        Sdk::Js => run_js(&format!("{resource}.mjs"), &all).await,
    };
    assert!(ok, "{sdk:?} {resource} script failed: {result}");
    assert_eq!(result["ok"], true, "{result}");
    result
}

/// A deployment whose resolver answers every name with loopback, so that an endpoint at
/// `play.svix.com` (the Svix Play filter of the app list) can be saved without the network.
async fn stack_with_loopback_dns(backend: Backend, name: &str) -> (Stack, TestDns) {
    let dns = TestDns::start(Ipv4Addr::LOCALHOST).await;
    let stack =
        Stack::on(backend, name).with("HOOKLINE__DELIVERY__DNS_SERVER", &dns.addr.to_string());
    (stack, dns)
}

async fn applications(backend: Backend, sdk: Sdk) {
    let (stack, _dns) = stack_with_loopback_dns(backend, "sdkapps").await;
    let hookline = stack.start(Role::Serve).await;
    let receiver = Receiver::start().await;
    let url = receiver.url("apps", Reply::Always(204));
    let result = run_sdk(sdk, "applications", &hookline, &[("RECEIVER_URL", &url)]).await;
    assert_eq!(result["apps"].as_array().map(Vec::len), Some(4), "{result}");
}

#[apply(sdk_backends)]
#[tokio::test]
async fn python_sdk_applications(#[case] backend: Backend) {
    applications(backend, Sdk::Python).await;
}

#[apply(sdk_backends)]
#[tokio::test]
async fn js_sdk_applications(#[case] backend: Backend) {
    applications(backend, Sdk::Js).await;
}

async fn event_types(backend: Backend, sdk: Sdk) {
    let stack = Stack::on(backend, "sdktypes");
    let hookline = stack.start(Role::Serve).await;
    let result = run_sdk(sdk, "event_types", &hookline, &[]).await;
    assert_eq!(
        result["types"].as_array().map(Vec::len),
        Some(4),
        "{result}"
    );
    flagged_types_are_hidden_from_app_tokens(&stack, &hookline).await;
}

/// An app portal token holds no feature flags, so a type behind one is neither listed nor
/// readable with it, while an admin sees it.
async fn flagged_types_are_hidden_from_app_tokens(stack: &Stack, hookline: &Process) {
    let admin = stack.api(hookline);
    for body in [
        json!({"name": "flagged.type", "description": "beta only", "featureFlags": ["beta"]}),
        json!({"name": "open.type", "description": "for everyone"}),
    ] {
        admin
            .post("/api/v1/event-type", body, StatusCode::CREATED)
            .await;
    }
    let app = admin.create_app("flags-app").await;
    let access = admin
        .post(
            &format!("/api/v1/auth/app-portal-access/{app}"),
            json!({}),
            StatusCode::OK,
        )
        .await;
    let token = access["token"].as_str().expect("a token");
    let portal = Api::new(&admin.base, token);
    let names = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|t| t["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let everything = names(&admin.get("/api/v1/event-type?limit=250").await);
    assert!(
        everything.contains(&"flagged.type".to_owned()),
        "{everything:?}"
    );
    let seen = names(&portal.get("/api/v1/event-type?limit=250").await);
    assert!(!seen.contains(&"flagged.type".to_owned()), "{seen:?}");
    assert!(
        seen.contains(&"open.type".to_owned()),
        "unflagged types stay listed: {seen:?}"
    );
    let (status, body) = portal
        .call(Method::GET, "/api/v1/event-type/flagged.type", None, &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[apply(sdk_backends)]
#[tokio::test]
async fn python_sdk_event_types(#[case] backend: Backend) {
    event_types(backend, Sdk::Python).await;
}

#[apply(sdk_backends)]
#[tokio::test]
async fn js_sdk_event_types(#[case] backend: Backend) {
    event_types(backend, Sdk::Js).await;
}

/// What a receiver must see of the endpoints script's two examples: A (created with a
/// custom header, rotated with an hour's grace) and B (headers patched, rotated with none).
async fn endpoints(backend: Backend, sdk: Sdk) {
    let stack = Stack::on(backend, "sdkendpoints");
    let hookline = stack.start(Role::Serve).await;
    let receiver = Receiver::start().await;
    let a_url = receiver.url("a", Reply::Always(204));
    let b_url = receiver.url("b", Reply::Always(204));
    let other = receiver.url("other", Reply::Always(204));
    let env = [
        ("RECEIVER_A", a_url.as_str()),
        ("RECEIVER_B", b_url.as_str()),
        ("RECEIVER_OTHER", other.as_str()),
    ];
    let result = run_sdk(sdk, "endpoints", &hookline, &env).await;
    let (a, b) = (&result["a"], &result["b"]);

    let at_a = delivery(&receiver, "a", &a["msg"]).await;
    assert_eq!(
        at_a.headers.get("x-tenant").map(String::as_str),
        Some("acme"),
        "the header given at create is delivered: {:?}",
        at_a.headers
    );
    assert_eq!(
        serde_json::from_str::<Value>(&at_a.body).ok(),
        Some(json!({"n": 1}))
    );
    assert_verifies(&at_a, &a["new"], true, "A's new secret").await;
    assert_verifies(&at_a, &a["old"], true, "A's old secret, within its grace").await;
    assert_verifies(&at_a, &json!(OTHER_SECRET), false, "a secret A never had").await;

    let at_b = delivery(&receiver, "b", &b["msg"]).await;
    assert_eq!(
        serde_json::from_str::<Value>(&at_b.body).ok(),
        Some(json!({"n": 0}))
    );
    let custom: Vec<(&str, &str)> = at_b
        .headers
        .iter()
        .filter(|(name, _)| name.starts_with("x-") && name.as_str() != "x-forwarded-for")
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect::<std::collections::BTreeMap<_, _>>()
        .into_iter()
        .collect();
    assert_eq!(custom, [("x-three", "3"), ("x-two", "2")], "B's headers");
    assert_verifies(&at_b, &b["new"], true, "B's new secret").await;
    assert_verifies(
        &at_b,
        &b["old"],
        false,
        "B's old secret, rotated with no grace",
    )
    .await;
}

/// A secret that signs nothing here.
const OTHER_SECRET: &str = "whsec_plJ3nmyCDGBKInavdOK15jsl4bVG8qGl";

/// The delivery of message `msg` at `path`, once it has arrived.
async fn delivery(receiver: &Receiver, path: &str, msg: &Value) -> Delivery {
    let msg = msg.as_str().expect("a message id").to_owned();
    eventually(
        "the example at the receiver",
        Duration::from_secs(20),
        || async {
            receiver
                .deliveries(path)
                .into_iter()
                .find(|d| d.webhook_id() == msg)
        },
    )
    .await
}

/// Checks with the `standardwebhooks` library whether `secret` verifies `delivery`.
async fn assert_verifies(delivery: &Delivery, secret: &Value, expected: bool, what: &str) {
    let secret = secret.as_str().expect("a secret");
    let (verified, answer) = verify_delivery(secret, &delivery.headers, &delivery.body).await;
    assert_eq!(verified, expected, "{what}: {answer}");
}

#[apply(sdk_backends)]
#[tokio::test]
async fn python_sdk_endpoints(#[case] backend: Backend) {
    endpoints(backend, Sdk::Python).await;
}

#[apply(sdk_backends)]
#[tokio::test]
async fn js_sdk_endpoints(#[case] backend: Backend) {
    endpoints(backend, Sdk::Js).await;
}

async fn messages(backend: Backend, sdk: Sdk) {
    let stack = Stack::on(backend, "sdkmessages");
    let hookline = stack.start(Role::Serve).await;
    let receiver = Receiver::start().await;
    let url = receiver.url("messages", Reply::Always(204));
    let result = run_sdk(sdk, "messages", &hookline, &[("RECEIVER_URL", &url)]).await;
    assert_eq!(result["sent"].as_array().map(Vec::len), Some(3), "{result}");
}

#[apply(sdk_backends)]
#[tokio::test]
async fn python_sdk_messages(#[case] backend: Backend) {
    messages(backend, Sdk::Python).await;
}

#[apply(sdk_backends)]
#[tokio::test]
async fn js_sdk_messages(#[case] backend: Backend) {
    messages(backend, Sdk::Js).await;
}

/// The attempts script resends its first message to the endpoint that accepts: it arrives
/// there a second time under the same `webhook-id`.
async fn attempts(backend: Backend, sdk: Sdk) {
    let stack = Stack::on(backend, "sdkattempts");
    let hookline = stack.start(Role::Serve).await;
    let receiver = Receiver::start().await;
    let ok = receiver.url("ok", Reply::Always(200));
    let fail = receiver.url("fail", Reply::Always(500));
    let env = [
        ("RECEIVER_OK", ok.as_str()),
        ("RECEIVER_FAIL", fail.as_str()),
    ];
    let result = run_sdk(sdk, "attempts", &hookline, &env).await;
    let resent = result["resent"].as_str().expect("resent id").to_owned();
    eventually(
        "the resent message twice",
        Duration::from_secs(20),
        || async {
            let times = receiver
                .deliveries("ok")
                .iter()
                .filter(|d| d.webhook_id() == resent)
                .count();
            (times == 2).then_some(())
        },
    )
    .await;
}

#[apply(sdk_backends)]
#[tokio::test]
async fn python_sdk_attempts(#[case] backend: Backend) {
    attempts(backend, Sdk::Python).await;
}

#[apply(sdk_backends)]
#[tokio::test]
async fn js_sdk_attempts(#[case] backend: Backend) {
    attempts(backend, Sdk::Js).await;
}

/// The destinations script (the Python SDK's: the JavaScript SDK has no destinations) sees a
/// destination whose receiver fails turn `retrying`, and leaves one `fifoEndpoint`
/// destination, A, whose secret it rotated with an hour's grace, and sends it a message
/// last: it arrives with A's custom header, signed with both secrets.
#[apply(sdk_backends)]
#[tokio::test]
async fn python_sdk_destinations(#[case] backend: Backend) {
    let stack = Stack::on(backend, "sdkdestinations");
    let hookline = stack.start(Role::Serve).await;
    let receiver = Receiver::start().await;
    let a_url = receiver.url("ordered", Reply::Always(204));
    let b_url = receiver.url("b", Reply::Always(204));
    let other = receiver.url("other", Reply::Always(204));
    let fail = receiver.url("fail", Reply::Always(500));
    let env = [
        ("RECEIVER_URL", a_url.as_str()),
        ("RECEIVER_B", b_url.as_str()),
        ("RECEIVER_OTHER", other.as_str()),
        ("RECEIVER_FAIL", fail.as_str()),
    ];
    let result = run_sdk(Sdk::Python, "destinations", &hookline, &env).await;
    let at_a = delivery(&receiver, "ordered", &result["msg"]).await;
    assert_eq!(
        at_a.headers.get("x-tenant").map(String::as_str),
        Some("acme"),
        "config.headers are delivered: {:?}",
        at_a.headers
    );
    assert_eq!(
        serde_json::from_str::<Value>(&at_a.body).ok(),
        Some(json!({"n": 1}))
    );
    assert_verifies(&at_a, &result["new"], true, "A's rotated secret").await;
    assert_verifies(
        &at_a,
        &result["old"],
        true,
        "A's config.key, within its grace",
    )
    .await;
    assert_verifies(&at_a, &json!(OTHER_SECRET), false, "a secret A never had").await;
}
