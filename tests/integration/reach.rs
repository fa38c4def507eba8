//! Reaching endpoints that need more than HMAC, as a whole: keys set through the JavaScript
//! SDK, and no secret of any of it in a debug-level log.

use std::time::Duration;

use hookline_net::testing::TestCa;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::testkit::bearer_receiver::BearerReceiver;
use crate::testkit::forward_proxy::ForwardProxy;
use crate::testkit::js::run_js;
use crate::testkit::process::TOKEN;
use crate::testkit::tls_receiver::TlsReceiver;
use crate::testkit::token_server::TokenServer;
use crate::testkit::{backends, eventually, sdk_backends, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

/// The JavaScript SDK has no `keyType`, but its `secret` and `key` take a `whsk_` key: the
/// script verifies deliveries with Node's crypto, before and during a rotation.
#[apply(backends)]
#[tokio::test]
async fn the_javascript_sdk_signs_with_ed25519_keys(#[case] backend: Backend) {
    let stack = Stack::on(backend, "jsed");
    let hookline = stack.start(Role::Serve).await;
    let base = hookline.api_url.clone().expect("api url");
    let (ok, seen) = run_js(
        "asymmetric.mjs",
        &[("HOOKLINE_URL", base.as_str()), ("HOOKLINE_TOKEN", TOKEN)],
    )
    .await;
    assert!(ok, "asymmetric.mjs failed: {seen}");
    assert_eq!(seen["signatures"], 2, "{seen}");
}

const HMAC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Two ed25519 secret keys (seeds 0..31 and 32..63), given by the test so it knows them.
const ED25519_KEYS: [&str; 2] = [
    "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    "whsk_ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=",
];
const CLIENT_SECRET: &str = "oauth-client-secret-5d1e";
const PROXY_PASSWORD: &str = "proxy-pass-91c4";

/// Every feature that holds a credential at once, with the whole deployment logging at debug
/// level: an HMAC secret, ed25519 keys through a rotation, a client certificate's private
/// key, an OAuth2 client secret and its tokens through a revocation, and the proxy's
/// password. None of them may appear in the log.
#[apply(sdk_backends)]
#[tokio::test]
async fn a_debug_log_of_every_credential_holds_none_of_them(#[case] backend: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new(dir.path(), "reach-ca");
    let client = ca.client("reach-client");
    let tls_receiver =
        TlsReceiver::start(&ca.server("reach-receiver"), Some(&ca.certificate)).await;
    let tokens = TokenServer::start("reach", CLIENT_SECRET, Duration::from_secs(3600)).await;
    let bearer = BearerReceiver::start(&tokens).await;
    let receiver = Receiver::start().await;
    let proxy = ForwardProxy::start("127.0.0.2", "egress", PROXY_PASSWORD).await;
    let proxy_url = format!(
        "http://egress:{PROXY_PASSWORD}@127.0.0.2:{}",
        proxy.addr.port()
    );
    let stack = Stack::on(backend, "reachlog")
        .with("HOOKLINE__DELIVERY__ENDPOINT_CACHE_MS", "0")
        .with("HOOKLINE__DELIVERY__EGRESS_PROXY", &proxy_url);
    let (hookline, logs) = stack
        .start_capturing_logs(Role::Serve, &[("HOOKLINE__LOG__FILTER", "debug")])
        .await;
    let api = stack.api(&hookline);
    let app = api.create_app("reach-app").await;
    let hmac = api
        .create_endpoint(
            &app,
            json!({"url": receiver.url("hmac", Reply::Always(200)), "secret": HMAC_SECRET}),
        )
        .await;
    let signed = api
        .create_endpoint(
            &app,
            json!({"url": receiver.url("ed25519", Reply::Always(200)), "secret": ED25519_KEYS[0]}),
        )
        .await;
    let mtls = api
        .create_endpoint(&app, json!({"url": tls_receiver.url("mtls")}))
        .await;
    let body = json!({"identity": client.identity_pem(), "serverCaCert": ca.certificate});
    let path = format!("/api/v1/app/{app}/endpoint/{mtls}/mtls");
    let (status, answer) = api.call(Method::PUT, &path, Some(&body), &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");
    let oauth = api
        .create_endpoint(
            &app,
            json!({"url": bearer.url("oauth", Reply::Always(200))}),
        )
        .await;
    let body = json!({"grantType": "clientCredentials", "authMethod": "clientSecretPost",
        "tokenUrl": tokens.url, "clientId": "reach", "clientSecret": CLIENT_SECRET});
    let path = format!("/api/v1/app/{app}/endpoint/{oauth}/oauth");
    let (status, answer) = api.call(Method::PUT, &path, Some(&body), &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{answer}");

    let delivered = |n: usize| {
        let (receiver, tls_receiver, bearer) = (&receiver, &tls_receiver, &bearer);
        async move {
            (receiver.count("hmac") == n
                && receiver.count("ed25519") == n
                && tls_receiver.deliveries("mtls").len() == n
                && bearer.receiver().count("oauth") == n)
                .then_some(())
        }
    };
    api.send(&app, "invoice.paid", json!({"n": 1})).await;
    eventually("the first deliveries", Duration::from_secs(30), || {
        delivered(1)
    })
    .await;
    // A rotation to a second ed25519 key, and a revoked token that must be replaced.
    let rotate = format!("/api/v1/app/{app}/endpoint/{signed}/secret/rotate");
    api.post(&rotate, json!({"key": ED25519_KEYS[1]}), StatusCode::OK)
        .await;
    assert!(tokens.revoke_all() >= 1);
    api.send(&app, "invoice.paid", json!({"n": 2})).await;
    eventually("the second deliveries", Duration::from_secs(30), || {
        delivered(2)
    })
    .await;
    assert_eq!(tokens.issued(), 2, "the revoked token was replaced");
    assert!(
        proxy.targets().len() >= 8,
        "every delivery and token request went through the proxy: {:?}",
        proxy.targets()
    );
    let _ = hmac;

    let captured = logs.at_debug_level();
    let key_lines = client
        .key
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .map(str::to_owned);
    let mut secrets: Vec<String> = vec![
        HMAC_SECRET.to_owned(),
        HMAC_SECRET.trim_start_matches("whsec_").to_owned(),
        CLIENT_SECRET.to_owned(),
        PROXY_PASSWORD.to_owned(),
        TOKEN.to_owned(),
    ];
    secrets.extend(ED25519_KEYS.iter().map(|k| k.to_string()));
    secrets.extend(
        ED25519_KEYS
            .iter()
            .map(|k| k.trim_start_matches("whsk_")[..24].to_owned()),
    );
    secrets.extend(key_lines);
    secrets.extend(tokens.all_issued());
    for secret in &secrets {
        assert!(
            !captured.contains(secret.as_str()),
            "a secret in the debug log: {secret}"
        );
    }
    assert!(
        !captured.contains("whsk_"),
        "a whsk_ value in the debug log"
    );
}
