//! Endpoints whose receivers accept only an OAuth2 bearer token from their own authorisation
//! server: the `…/endpoint/{id}/oauth` API, and deliveries that carry a token from a real
//! token server on loopback to a receiver that checks it, on both deployments.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::testkit::bearer_receiver::BearerReceiver;
use crate::testkit::token_server::TokenServer;
use crate::testkit::{eventually, sdk_backends, Api, Backend, Reply, Role, Stack};
use rstest_reuse::apply;

const CLIENT_ID: &str = "hookline deliveries";
const CLIENT_SECRET: &str = "cs-8c1f/e2+9a&secret";
const HOUR: Duration = Duration::from_secs(3600);

/// Sets the endpoint's OAuth2 client to `tokens`' one, answering the status.
async fn set_oauth(api: &Api, app: &str, endpoint: &str, config: Value) -> (StatusCode, Value) {
    let path = format!("/api/v1/app/{app}/endpoint/{endpoint}/oauth");
    api.call(Method::PUT, &path, Some(&config), &[]).await
}

fn client_config(tokens: &TokenServer, auth_method: &str) -> Value {
    json!({
        "authMethod": auth_method,
        "clientId": CLIENT_ID,
        "clientSecret": CLIENT_SECRET,
        "grantType": "clientCredentials",
        "tokenUrl": tokens.url,
        "scopes": ["webhooks.write", "audit"],
        "extraParams": {"audience": "https://receiver.example"},
    })
}

/// An app, and an endpoint at `path` of `receiver` with `tokens`' client.
async fn oauth_endpoint(
    api: &Api,
    receiver: &BearerReceiver,
    tokens: &TokenServer,
    path: &str,
) -> (String, String) {
    let app = api.create_app(&format!("{path}-app")).await;
    let url = receiver.url(path, Reply::Always(200));
    let endpoint = api.create_endpoint(&app, json!({ "url": url })).await;
    let (status, body) = set_oauth(
        api,
        &app,
        &endpoint,
        client_config(tokens, "clientSecretBasic"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    (app, endpoint)
}

/// The endpoint's attempts, newest first (every page).
async fn attempts(api: &Api, app: &str, endpoint: &str, filter: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut iterator: Option<String> = None;
    loop {
        let after = iterator
            .as_deref()
            .map_or(String::new(), |i| format!("&iterator={i}"));
        let page = api
            .get(&format!(
                "/api/v1/app/{app}/attempt/endpoint/{endpoint}?limit=250{filter}{after}"
            ))
            .await;
        all.extend(page["data"].as_array().expect("data").iter().cloned());
        if page["done"] == true {
            return all;
        }
        iterator = page["iterator"].as_str().map(str::to_owned);
    }
}

fn field_error(body: &Value) -> String {
    body["detail"][0]["loc"][1]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[apply(sdk_backends)]
#[tokio::test]
async fn the_oauth_client_is_set_shown_without_its_secret_and_removed(#[case] backend: Backend) {
    let stack = Stack::on(backend, "oauth-api");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let tokens = TokenServer::start(CLIENT_ID, CLIENT_SECRET, HOUR).await;
    let app = api.create_app("oauth-api-app").await;
    let endpoint = api
        .create_endpoint(&app, json!({"url": "http://127.0.0.1:9/hook"}))
        .await;
    let path = format!("/api/v1/app/{app}/endpoint/{endpoint}/oauth");
    let (status, body) = api.call(Method::GET, &path, None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["code"], "not_found", "{body}");

    // What is not built is refused, naming the field.
    let refusals = [
        ("authMethod", json!("clientSecretJwt"), "authMethod"),
        ("grantType", json!("refreshToken"), "grantType"),
        (
            "jwtParams",
            json!({"signingAlgorithm": "HS256"}),
            "jwtParams",
        ),
        ("refreshToken", json!("rt-1"), "refreshToken"),
        ("clientSecret", Value::Null, "clientSecret"),
        ("tokenUrl", json!("ftp://127.0.0.1/token"), "tokenUrl"),
        (
            "tokenUrl",
            json!("http://169.254.169.254/token"),
            "tokenUrl",
        ),
        (
            "tokenUrl",
            json!("http://user:pw@127.0.0.1/token"),
            "tokenUrl",
        ),
        ("scopes", json!(["two words"]), "scopes"),
        (
            "extraParams",
            json!({"grant_type": "password"}),
            "extraParams",
        ),
    ];
    for (field, value, named) in refusals {
        let mut config = client_config(&tokens, "clientSecretPost");
        config[field] = value.clone();
        let (status, body) = set_oauth(&api, &app, &endpoint, config).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field} {value}: {body}"
        );
        assert_eq!(field_error(&body), named, "{field} {value}: {body}");
        assert!(!body.to_string().contains(CLIENT_SECRET), "{body}");
    }
    let (status, _) = api.call(Method::GET, &path, None, &[]).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a refused PUT stores nothing"
    );

    let (status, body) = set_oauth(
        &api,
        &app,
        &endpoint,
        client_config(&tokens, "clientSecretPost"),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let shown = api.get(&path).await;
    assert_eq!(
        shown,
        json!({
            "authMethod": "clientSecretPost",
            "clientId": CLIENT_ID,
            "extraParams": {"audience": "https://receiver.example"},
            "grantType": "clientCredentials",
            "scopes": ["webhooks.write", "audit"],
            "tokenUrl": tokens.url,
            "hasClientSecret": true,
        })
    );
    let whole = api
        .get(&format!("/api/v1/app/{app}/endpoint/{endpoint}"))
        .await;
    assert!(!whole.to_string().contains(CLIENT_SECRET), "{whole}");

    let (status, _) = api.call(Method::DELETE, &path, None, &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.call(Method::GET, &path, None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// (a) One dispatcher, 1,000 deliveries to one endpoint: one token serves them all.
#[apply(sdk_backends)]
#[tokio::test]
async fn a_thousand_deliveries_share_one_token(#[case] backend: Backend) {
    let stack = Stack::on(backend, "oauth-many");
    let tokens = TokenServer::start(CLIENT_ID, CLIENT_SECRET, HOUR).await;
    let receiver = BearerReceiver::start(&tokens).await;
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let (app, endpoint) = oauth_endpoint(&api, &receiver, &tokens, "many").await;
    let sent: HashSet<String> = api
        .send_many(&app, "invoice.paid", 1_000)
        .await
        .into_iter()
        .collect();
    receiver
        .receiver()
        .await_all("many", &sent, Duration::from_secs(120))
        .await;
    assert!(
        tokens.requests() <= 2,
        "{} token requests",
        tokens.requests()
    );
    assert_eq!(
        receiver.rejected(),
        0,
        "no delivery went without a valid token"
    );
    let form = tokens.last_form();
    assert_eq!(
        form.get("scope").map(String::as_str),
        Some("webhooks.write audit")
    );
    assert_eq!(
        form.get("audience").map(String::as_str),
        Some("https://receiver.example")
    );
    // The attempt log never shows the token.
    let logged = attempts(&api, &app, &endpoint, "").await;
    let first = logged.first().expect("an attempt");
    assert_eq!(
        first["requestHeaders"]["authorization"], "[redacted]",
        "{first}"
    );
    let metrics = reqwest::get(format!("{}/metrics", hookline.ops_url().await))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let ok = format!(
        "hookline_oauth_token_requests_total{{result=\"ok\"}} {}",
        tokens.requests()
    );
    assert!(metrics.contains(&ok), "{ok} in {metrics}");
}

/// (b) A token revoked mid-run: the 401s it brings cost one new token, and every message is
/// delivered within its attempt.
#[apply(sdk_backends)]
#[tokio::test]
async fn a_revoked_token_is_replaced_once(#[case] backend: Backend) {
    let stack = Stack::on(backend, "oauth-revoke");
    let tokens = TokenServer::start(CLIENT_ID, CLIENT_SECRET, HOUR).await;
    // Slow refusals: deliveries made with the revoked token are still being refused after
    // the new token came, and must not drop it.
    let receiver = BearerReceiver::start_slow_to_refuse(&tokens, Duration::from_millis(150)).await;
    let (hookline, logs) = stack
        .start_capturing_logs(Role::Serve, &[("HOOKLINE__LOG__FILTER", "debug")])
        .await;
    let api = stack.api(&hookline);
    let (app, endpoint) = oauth_endpoint(&api, &receiver, &tokens, "revoke").await;
    let mut sent: HashSet<String> = api
        .send_many(&app, "invoice.paid", 300)
        .await
        .into_iter()
        .collect();
    eventually("a hundred deliveries", Duration::from_secs(60), || async {
        (receiver.receiver().count("revoke") >= 100).then_some(())
    })
    .await;
    let before = tokens.requests();
    assert!(tokens.revoke_all() >= 1);
    sent.extend(api.send_many(&app, "invoice.paid", 300).await);
    receiver
        .receiver()
        .await_all("revoke", &sent, Duration::from_secs(120))
        .await;
    assert!(receiver.rejected() >= 1, "the revoked token was refused");
    assert_eq!(
        tokens.requests(),
        before + 1,
        "one new token after the revocation"
    );
    // The 401 was answered within the attempt: no attempt failed.
    let failed = attempts(&api, &app, &endpoint, "&status=2").await;
    assert!(failed.is_empty(), "{failed:?}");
    // Debug logs, 401s and token requests included, never show a token or the secret.
    let captured = logs.at_debug_level();
    let issued = tokens.all_issued();
    assert_eq!(issued.len(), 2);
    for secret in issued.iter().map(String::as_str).chain([CLIENT_SECRET]) {
        assert!(!captured.contains(secret), "a secret in the logs: {secret}");
    }
}

/// (c) A token server that is down: `token` attempts, retried, then delivered once it is back.
#[apply(sdk_backends)]
#[tokio::test]
async fn a_token_server_outage_is_retried_then_delivered(#[case] backend: Backend) {
    let stack = Stack::on(backend, "oauth-down")
        .with(
            "HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS",
            &["100"; 20].join(","),
        )
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0")
        .with("HOOKLINE__DELIVERY__CIRCUIT_OPEN_MS", "500");
    let tokens = TokenServer::start(CLIENT_ID, CLIENT_SECRET, HOUR).await;
    tokens.set_down(true);
    let receiver = BearerReceiver::start(&tokens).await;
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let (app, endpoint) = oauth_endpoint(&api, &receiver, &tokens, "down").await;
    let sent: HashSet<String> = api
        .send_many(&app, "invoice.paid", 5)
        .await
        .into_iter()
        .collect();
    // Token failures count for the circuit breaker like any failed attempt: once it opens,
    // tasks are held (`circuit_open`) between probes, which are token attempts again.
    let failed = eventually(
        "retried token attempts",
        Duration::from_secs(60),
        || async {
            let logged = attempts(&api, &app, &endpoint, "").await;
            let kinds = |a: &&Value| a["errorKind"] == "token" || a["errorKind"] == "circuit_open";
            assert!(logged.iter().all(|a| kinds(&a)), "{logged:?}");
            let failed: Vec<Value> = logged
                .into_iter()
                .filter(|a| a["errorKind"] == "token")
                .collect();
            let retried = failed
                .iter()
                .any(|a| a["attemptNumber"].as_u64() >= Some(2));
            (failed.len() >= 6 && retried).then_some(failed)
        },
    )
    .await;
    for attempt in &failed {
        assert_eq!(attempt["errorKind"], "token", "{attempt}");
        assert_eq!(attempt["responseStatusCode"], 0, "{attempt}");
        let response = attempt["response"].as_str().unwrap_or_default();
        assert!(
            response.starts_with("token endpoint answered 503: ")
                && response.contains("temporarily_unavailable"),
            "{response}"
        );
        assert!(!attempt.to_string().contains(CLIENT_SECRET), "{attempt}");
        assert!(
            attempt["requestHeaders"].get("authorization").is_none(),
            "{attempt}"
        );
    }
    assert_eq!(
        receiver.receiver().count("down"),
        0,
        "nothing was sent without a token"
    );
    assert!(tokens.requests() >= 2);

    tokens.set_down(false);
    receiver
        .receiver()
        .await_all("down", &sent, Duration::from_secs(60))
        .await;
    assert_eq!(tokens.issued(), 1, "one token once the server was back");
    assert_eq!(receiver.rejected(), 0);
}
