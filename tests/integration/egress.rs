//! What a delivery presents and trusts on the way out: a client certificate per endpoint
//! (mTLS) against a receiver that requires one, a private CA per endpoint, and the
//! operator's egress proxy, through which every delivery goes while the address policy
//! still refuses internal destinations before the proxy sees them.

use std::net::Ipv4Addr;
use std::time::Duration;

use hookline_core::outbound::ClientIdentity;
use hookline_net::testing::TestCa;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::testkit::dns::TestDns;
use crate::testkit::forward_proxy::ForwardProxy;
use crate::testkit::tls_receiver::TlsReceiver;
use crate::testkit::{eventually, sdk_backends, Api, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

/// A stack that gives up after two quick attempts, reads endpoints afresh each time and
/// keeps attempting however many fail in a row (no circuit holds them).
fn quick(backend: Backend, name: &str) -> Stack {
    Stack::on(backend, name)
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "50")
        .with("HOOKLINE__DELIVERY__CIRCUIT_FAILURE_THRESHOLD", "1000")
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0")
        .with("HOOKLINE__DELIVERY__ENDPOINT_CACHE_MS", "0")
}

fn mtls_path(app: &str, endpoint: &str) -> String {
    format!("/api/v1/app/{app}/endpoint/{endpoint}/mtls")
}

async fn put_mtls(api: &Api, app: &str, endpoint: &str, body: Value) -> (StatusCode, Value) {
    api.call(Method::PUT, &mtls_path(app, endpoint), Some(&body), &[])
        .await
}

/// An endpoint's attempts, newest first.
async fn endpoint_attempts(api: &Api, app: &str, endpoint: &str) -> Vec<Value> {
    let page = api
        .get(&format!(
            "/api/v1/app/{app}/attempt/endpoint/{endpoint}?limit=250"
        ))
        .await;
    page["data"].as_array().expect("data").clone()
}

/// Waits until every one of `messages` has given up on `endpoint`; answers its attempts.
async fn all_failed(api: &Api, app: &str, endpoint: &str, messages: &[String]) -> Vec<Value> {
    eventually(
        "every delivery to fail",
        Duration::from_secs(30),
        || async {
            for msg in messages {
                let d = api.destination(app, msg, endpoint).await?;
                if d["status"] != 2 {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    endpoint_attempts(api, app, endpoint).await
}

/// The ways a bad configuration is refused, each naming its field and echoing no key.
async fn refusals(api: &Api, app: &str, endpoint: &str, ca: &TestCa) {
    let (a, b) = (ca.client("refused-a"), ca.client("refused-b"));
    let key_line = b.key.lines().nth(1).expect("a key line").to_owned();
    let cases = [
        (json!({}), "identity"),
        (
            json!({"identity": format!("{}{}", a.certificate, b.key)}),
            "identity",
        ),
        (json!({"identity": "garbage"}), "identity"),
        (json!({"serverCaCert": "garbage"}), "serverCaCert"),
        (json!({"serverCaCert": b.key}), "serverCaCert"),
    ];
    for (body, field) in cases {
        let (status, error) = put_mtls(api, app, endpoint, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        assert_eq!(error["detail"][0]["loc"][1], field, "{error}");
        assert!(!error.to_string().contains(&key_line), "{error}");
    }
    let (status, _) = api
        .call(Method::GET, &mtls_path(app, endpoint), None, &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was saved");
}

#[apply(sdk_backends)]
#[tokio::test]
async fn each_endpoint_presents_its_own_client_certificate(#[case] backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new(dir.path(), "receiver-ca");
    let client_a = ca.client("client-a");
    let receiver = TlsReceiver::start(&ca.server("receiver"), Some(&ca.certificate)).await;
    let stack = quick(backend, "mtls");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let app = api.create_app("mtls-app").await;
    let a = api
        .create_endpoint(&app, json!({"url": receiver.url("a")}))
        .await;
    let b = api
        .create_endpoint(&app, json!({"url": receiver.url("b")}))
        .await;
    refusals(&api, &app, &a, &ca).await;

    let (status, body) = put_mtls(
        &api,
        &app,
        &a,
        json!({"identity": client_a.identity_pem(), "serverCaCert": ca.certificate}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = put_mtls(&api, &app, &b, json!({"serverCaCert": ca.certificate})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let shown = api.get(&mtls_path(&app, &a)).await;
    let expected = hookline_net::tls::summarize(&ClientIdentity {
        certificate: client_a.certificate.clone(),
        key: client_a.key.clone().into(),
    })
    .expect("summary");
    assert_eq!(shown["identity"]["subject"], "CN=client-a", "{shown}");
    assert_eq!(shown["identity"]["issuer"], "CN=receiver-ca", "{shown}");
    assert_eq!(
        shown["identity"]["sha256Fingerprint"],
        expected.sha256_fingerprint
    );
    assert!(shown["identity"]["notAfter"].is_string(), "{shown}");
    assert_eq!(shown["trustSystemRoots"], false);
    assert!(shown["serverCaCert"]
        .as_str()
        .is_some_and(|pem| pem.contains("BEGIN CERTIFICATE")));
    assert!(!shown.to_string().contains("PRIVATE KEY"), "{shown}");
    assert_eq!(api.get(&mtls_path(&app, &b)).await["identity"], Value::Null);

    // Every message goes to both endpoints, so A's and B's requests interleave: were a
    // connection made with A's certificate reused for B, B's requests would arrive.
    let mut sent = Vec::new();
    for n in 0..6 {
        sent.push(api.send(&app, "invoice.paid", json!({ "n": n })).await);
    }
    eventually("A's deliveries", Duration::from_secs(30), || async {
        (receiver.deliveries("a").len() >= sent.len()).then_some(())
    })
    .await;
    let attempts = all_failed(&api, &app, &b, &sent).await;
    assert_eq!(attempts.len(), 2 * sent.len(), "two attempts per message");
    for attempt in &attempts {
        assert_eq!(attempt["errorKind"], "tls", "{attempt}");
        assert_eq!(
            attempt["response"],
            "tls: the receiver requires a client certificate (CertificateRequired)",
            "{attempt}"
        );
    }
    assert!(receiver.deliveries("b").is_empty(), "B never got through");
    assert!(receiver.refused_handshakes() >= 1);
    let delivered = receiver.deliveries("a");
    for delivery in &delivered {
        assert_eq!(
            delivery.client.as_deref(),
            Some(expected.sha256_fingerprint.as_str()),
            "A's certificate on every request"
        );
    }
    let ids: std::collections::HashSet<_> =
        delivered.iter().map(|d| d.webhook_id.clone()).collect();
    assert_eq!(ids, sent.iter().cloned().collect());
}

#[apply(sdk_backends)]
#[tokio::test]
async fn a_private_ca_is_trusted_only_while_configured(#[case] backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new(dir.path(), "private-ca");
    let receiver = TlsReceiver::start(&ca.server("private-receiver"), None).await;
    let stack = quick(backend, "privca");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let app = api.create_app("privca-app").await;
    let endpoint = api
        .create_endpoint(&app, json!({"url": receiver.url("c")}))
        .await;
    let (status, body) = put_mtls(
        &api,
        &app,
        &endpoint,
        json!({"serverCaCert": ca.certificate}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let trusted = api.send(&app, "invoice.paid", json!({"n": 1})).await;
    eventually(
        "the delivery over the private CA",
        Duration::from_secs(30),
        || async {
            receiver
                .deliveries("c")
                .iter()
                .any(|d| d.webhook_id == trusted)
                .then_some(())
        },
    )
    .await;

    let (status, _) = api
        .call(Method::DELETE, &mtls_path(&app, &endpoint), None, &[])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, error) = api
        .call(Method::GET, &mtls_path(&app, &endpoint), None, &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert_eq!(error["code"], "not_found");
    let untrusted = api.send(&app, "invoice.paid", json!({"n": 2})).await;
    all_failed(&api, &app, &endpoint, std::slice::from_ref(&untrusted)).await;
    let attempts = api.attempts_of_message(&app, &untrusted).await;
    assert_eq!(attempts.len(), 2);
    for attempt in &attempts {
        assert_eq!(attempt["errorKind"], "tls", "{attempt}");
        assert_eq!(
            attempt["response"], "tls: invalid peer certificate: UnknownIssuer",
            "{attempt}"
        );
    }
    assert_eq!(receiver.deliveries("c").len(), 1);
}

#[apply(sdk_backends)]
#[tokio::test]
async fn every_delivery_goes_through_the_egress_proxy_and_the_policy_still_applies(
    #[case] backend: Backend,
) {
    // Deliveries may reach 127.0.0.1 only. The proxy listens on 127.0.0.2 under a name the
    // test's DNS server answers: the policy would refuse that address, but it is the proxy.
    let dns = TestDns::start(Ipv4Addr::new(93, 184, 216, 34)).await;
    let proxy = ForwardProxy::start("127.0.0.2", "egress", "proxy-pass-7f3a").await;
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new(dir.path(), "proxied-ca");
    let tls_receiver = TlsReceiver::start(&ca.server("proxied-receiver"), None).await;
    let receiver = Receiver::start().await;
    let proxy_url = format!(
        "http://egress:proxy-pass-7f3a@proxy.hookline.test:{}",
        proxy.addr.port()
    );
    let stack = quick(backend, "egress")
        .with("HOOKLINE__DELIVERY__ALLOWED_SUBNETS", "127.0.0.1/32")
        .with("HOOKLINE__DELIVERY__DNS_SERVER", &dns.addr.to_string())
        .with("HOOKLINE__DELIVERY__EGRESS_PROXY", &proxy_url);
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let app = api.create_app("egress-app").await;
    let plain = api
        .create_endpoint(
            &app,
            json!({"url": receiver.url("plain", Reply::Always(200))}),
        )
        .await;
    let tls = api
        .create_endpoint(&app, json!({"url": tls_receiver.url("tls")}))
        .await;
    let (status, body) = put_mtls(&api, &app, &tls, json!({"serverCaCert": ca.certificate})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // Public when saved, internal when delivered.
    let blocked_url = format!("http://blocked.hookline.test:{}/blocked", receiver.port());
    let blocked = api.create_endpoint(&app, json!({"url": blocked_url})).await;
    dns.answer_with(Ipv4Addr::new(127, 0, 0, 2));

    let mut sent = Vec::new();
    for n in 0..4 {
        sent.push(api.send(&app, "invoice.paid", json!({ "n": n })).await);
    }
    eventually("the deliveries", Duration::from_secs(30), || async {
        (receiver.count("plain") == sent.len()
            && tls_receiver.deliveries("tls").len() == sent.len())
        .then_some(())
    })
    .await;
    for delivery in receiver.deliveries("plain") {
        assert!(
            proxy.made(delivery.peer.port()),
            "{:?} bypassed the proxy",
            delivery.peer
        );
    }
    for delivery in tls_receiver.deliveries("tls") {
        assert!(
            proxy.made(delivery.peer.port()),
            "{:?} bypassed the proxy",
            delivery.peer
        );
    }
    let targets = proxy.targets();
    let plain_target = format!("127.0.0.1:{}", receiver.port());
    assert_eq!(
        targets.iter().filter(|t| **t == plain_target).count(),
        sent.len(),
        "one relayed request per plain delivery: {targets:?}"
    );
    assert!(
        targets.contains(&format!("127.0.0.1:{}", tls_receiver.port)),
        "{targets:?}"
    );
    assert_eq!(proxy.refused(), 0, "the credentials were sent");

    let attempts = all_failed(&api, &app, &blocked, &sent).await;
    assert_eq!(attempts.len(), 2 * sent.len());
    for attempt in &attempts {
        assert_eq!(attempt["errorKind"], "blocked", "{attempt}");
    }
    assert!(
        proxy.targets().iter().all(|t| !t.contains("blocked")),
        "the proxy never saw the blocked destination: {:?}",
        proxy.targets()
    );
    assert_eq!(receiver.count("blocked"), 0);
    let _ = plain;
}
