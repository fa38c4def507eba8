//! Tenant isolation: an app-scoped token (from `app-portal-access`) sees and changes only its
//! own app. Another app's resources answer 403 or 404 with no data; expired and revoked
//! tokens answer 401.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::testkit::{backends, eventually, Api, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

struct Tenant {
    id: String,
    endpoint: String,
    msg: String,
    attempt: String,
}

/// An app with an endpoint, a delivered message and its attempt.
async fn tenant(api: &Api, receiver: &Receiver, uid: &str) -> Tenant {
    let id = api.create_app(uid).await;
    let url = receiver.url(uid, Reply::Always(200));
    let endpoint = api.create_endpoint(&id, json!({"url": url})).await;
    let msg = api
        .send(
            &id,
            "invoice.paid",
            json!({"owner": format!("secret-of-{uid}")}),
        )
        .await;
    let attempt = eventually("the tenant's attempt", Duration::from_secs(20), || async {
        let attempts = api.attempts_of_message(&id, &msg).await;
        attempts
            .first()
            .and_then(|a| a["id"].as_str().map(str::to_owned))
    })
    .await;
    Tenant {
        id,
        endpoint,
        msg,
        attempt,
    }
}

async fn portal_token(admin: &Api, app: &str, body: Value) -> String {
    let access = admin
        .post(
            &format!("/api/v1/auth/app-portal-access/{app}"),
            body,
            StatusCode::OK,
        )
        .await;
    assert!(access["url"]
        .as_str()
        .is_some_and(|u| u.contains("/dashboard")));
    access["token"].as_str().expect("token").to_owned()
}

#[apply(backends)]
#[tokio::test]
async fn an_app_token_reaches_nothing_of_another_app(#[case] backend: Backend) {
    let stack = Stack::on(backend, "tenancy");
    let hookline = stack.start(Role::Serve).await;
    let admin = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let a = tenant(&admin, &receiver, "tenant-a").await;
    let b = tenant(&admin, &receiver, "tenant-b").await;
    let base = hookline.api_url.clone().expect("url");
    let token_a = Api::new(&base, &portal_token(&admin, &a.id, json!({})).await);
    let b_secret = admin.endpoint_secret(&b.id, &b.endpoint).await;

    let (bid, bep, bmsg, batt, aid) = (&b.id, &b.endpoint, &b.msg, &b.attempt, &a.id);
    let b_ids = [
        ("app_id", bid.as_str()),
        ("endpoint_id", bep.as_str()),
        ("msg_id", bmsg.as_str()),
        ("attempt_id", batt.as_str()),
    ];
    let routes = documented_routes(&base).await;
    assert!(routes.len() >= 40, "the router's routes: {routes:?}");
    let mut calls = Vec::new();
    for (method, template) in &routes {
        if catalog_read(method, template) || own_session(method, template) {
            continue;
        }
        // Everything named by B's ids, then B's ids under A's own app path.
        calls.push((method.clone(), fill(template, &b_ids), false));
        // Only routes naming something inside the app: A's own lists are A's to read.
        if template.contains("{app_id}") && template.matches('{').count() > 1 {
            let mut mixed = b_ids;
            mixed[0] = ("app_id", aid.as_str());
            calls.push((method.clone(), fill(template, &mixed), true));
        }
    }
    let leaks = [
        bid.as_str(),
        bep,
        bmsg,
        batt,
        "secret-of-tenant-b",
        b_secret.as_str(),
    ];
    for (method, path, own_app) in &calls {
        let (status, answer) = token_a
            .call(method.clone(), path, Some(&json!({})), &[])
            .await;
        // Under its own app the token passes the scope check, so the empty body may be
        // refused before B's id is looked up; that answer says nothing about B.
        let refused = status == StatusCode::FORBIDDEN
            || status == StatusCode::NOT_FOUND
            || (*own_app && status == StatusCode::UNPROCESSABLE_ENTITY);
        assert!(refused, "{method} {path} answered {status}: {answer}");
        let text = answer.to_string();
        for leaked in leaks {
            assert!(
                !text.contains(leaked),
                "{method} {path} leaked {leaked}: {text}"
            );
        }
    }

    // B is untouched, and A's token works on A.
    let b_app = admin.get(&format!("/api/v1/app/{bid}")).await;
    assert_eq!(b_app["name"], "tenant-b");
    let b_endpoints = admin.get(&format!("/api/v1/app/{bid}/endpoint")).await;
    assert_eq!(b_endpoints["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(b_endpoints["data"][0]["disabled"], false);
    let b_msgs = admin.get(&format!("/api/v1/app/{bid}/msg")).await;
    assert_eq!(b_msgs["data"].as_array().map(Vec::len), Some(1));
    let own = token_a.get(&format!("/api/v1/app/{aid}/msg")).await;
    assert_eq!(own["data"][0]["id"], a.msg.as_str());
    token_a
        .post(
            &format!("/api/v1/app/{aid}/msg"),
            json!({"eventType": "x", "payload": {}}),
            StatusCode::ACCEPTED,
        )
        .await;
    token_a.get("/api/v1/event-type").await;
    assert!(token_a
        .endpoint_secret(aid, &a.endpoint)
        .await
        .starts_with("whsec_"));
}

/// Every route of the router, as `(method, path template)`, read from the OpenAPI document
/// the router is built with: a route added later is walked without editing this test.
async fn documented_routes(base: &str) -> Vec<(Method, String)> {
    let doc: Value = reqwest::get(format!("{base}/api/v1/openapi.json"))
        .await
        .expect("openapi.json")
        .json()
        .await
        .expect("JSON");
    let mut routes = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("operations").keys() {
            let method = method.to_uppercase().parse().expect("an HTTP method");
            routes.push((method, path.clone()));
        }
    }
    routes
}

/// The only routes outside an app that app tokens may use: reading the event type catalog.
fn catalog_read(method: &Method, template: &str) -> bool {
    method == Method::GET && template.starts_with("/api/v1/event-type")
}

/// Logging out, which every app token may do to itself (`svix_auth_ops.rs` covers it): it
/// reaches nothing of any app, and walking it would end the token under test.
fn own_session(method: &Method, template: &str) -> bool {
    method == Method::POST && template == "/api/v1/auth/logout"
}

/// `template` with its `{name}` segments replaced; names without a value get one that
/// exists nowhere.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut path = template.to_owned();
    for (name, value) in values {
        path = path.replace(&format!("{{{name}}}"), value);
    }
    while let Some(start) = path.find('{') {
        let end = path[start..]
            .find('}')
            .map_or(path.len(), |e| start + e + 1);
        path.replace_range(start..end, "unknown_id");
    }
    path
}

/// A read-only app token may call every route of its own app with `GET` only: every other
/// method answers 403 and changes nothing.
#[apply(backends)]
#[tokio::test]
async fn a_read_only_token_changes_nothing_on_any_route(#[case] backend: Backend) {
    let stack = Stack::on(backend, "tenancy-read-only");
    let hookline = stack.start(Role::Serve).await;
    let admin = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let a = tenant(&admin, &receiver, "reader-a").await;
    let base = hookline.api_url.clone().expect("url");
    let reader = Api::new(
        &base,
        &portal_token(&admin, &a.id, json!({"readOnly": true})).await,
    );
    let ids = [
        ("app_id", a.id.as_str()),
        ("endpoint_id", a.endpoint.as_str()),
        ("msg_id", a.msg.as_str()),
        ("attempt_id", a.attempt.as_str()),
    ];
    let routes = documented_routes(&base).await;
    let mut writes = 0;
    let writes_of_app = routes
        .iter()
        .filter(|(m, t)| m != Method::GET && !own_session(m, t));
    for (method, template) in writes_of_app {
        let path = fill(template, &ids);
        let (status, answer) = reader
            .call(method.clone(), &path, Some(&json!({})), &[])
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {answer}");
        writes += 1;
    }
    assert!(writes >= 15, "the router's writes: {routes:?}");
    let endpoints = admin.get(&format!("/api/v1/app/{}/endpoint", a.id)).await;
    assert_eq!(endpoints["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(endpoints["data"][0]["disabled"], false);
    let messages = admin.get(&format!("/api/v1/app/{}/msg", a.id)).await;
    assert_eq!(messages["data"].as_array().map(Vec::len), Some(1));
    let app = admin.get(&format!("/api/v1/app/{}", a.id)).await;
    assert_eq!(app["uid"], "reader-a");
}

#[apply(backends)]
#[tokio::test]
async fn expired_revoked_and_read_only_app_tokens_are_limited(#[case] backend: Backend) {
    let stack = Stack::on(backend, "tokens");
    let hookline = stack.start(Role::Serve).await;
    let admin = stack.api(&hookline);
    let base = hookline.api_url.clone().expect("url");
    let app = admin.create_app("token-app").await;
    let path = format!("/api/v1/app/{app}/msg");

    let short = Api::new(
        &base,
        &portal_token(&admin, &app, json!({"expiry": 1})).await,
    );
    short.get(&path).await;
    eventually(
        "the one-second token to expire",
        Duration::from_secs(10),
        || async {
            let (status, _) = short.call(Method::GET, &path, None, &[]).await;
            (status == StatusCode::UNAUTHORIZED).then_some(())
        },
    )
    .await;

    let revoked = Api::new(&base, &portal_token(&admin, &app, json!({})).await);
    revoked.get(&path).await;
    let (status, _) = admin
        .call(
            Method::POST,
            &format!("/api/v1/auth/app/{app}/expire-all"),
            Some(&json!({})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = revoked.call(Method::GET, &path, None, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let reader = Api::new(
        &base,
        &portal_token(&admin, &app, json!({"readOnly": true})).await,
    );
    reader.get(&path).await;
    let (status, _) = reader
        .call(
            Method::POST,
            &path,
            Some(&json!({"eventType": "x", "payload": {}})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let forged = Api::new(&base, "hlapp_notarealtokenatall0123456789abcdefgh");
    let (status, _) = forged.call(Method::GET, &path, None, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = admin
        .call(
            Method::POST,
            &format!("/api/v1/auth/app-portal-access/{app}"),
            Some(&json!({"expiry": 99_999_999})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[apply(backends)]
#[tokio::test]
async fn deleting_an_app_revokes_its_app_tokens(#[case] backend: Backend) {
    let stack = Stack::on(backend, "token-app-deleted");
    let hookline = stack.start(Role::Serve).await;
    let admin = stack.api(&hookline);
    let base = hookline.api_url.clone().expect("url");
    let app = admin.create_app("doomed").await;
    let portal = Api::new(&base, &portal_token(&admin, &app, json!({})).await);
    portal.get("/api/v1/event-type").await;
    portal.get(&format!("/api/v1/app/{app}/msg")).await;

    let (status, body) = admin
        .call(Method::DELETE, &format!("/api/v1/app/{app}"), None, &[])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for path in [
        "/api/v1/event-type".to_owned(),
        format!("/api/v1/app/{app}/msg"),
    ] {
        let (status, body) = portal.call(Method::GET, &path, None, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
    // An app of the same uid made later is not reachable with the old token either.
    admin.create_app("doomed").await;
    let (status, body) = portal
        .call(Method::GET, "/api/v1/app/doomed/msg", None, &[])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

/// A delete that stopped after the app's records were gone but before its tokens were
/// revoked leaves tokens that must not authenticate.
#[tokio::test]
async fn a_token_of_a_vanished_app_is_refused() {
    let stack = Stack::new("token-app-vanished");
    let hookline = stack.start(Role::Serve).await;
    let admin = stack.api(&hookline);
    let base = hookline.api_url.clone().expect("url");
    let app = admin.create_app("vanishing").await;
    let portal = Api::new(&base, &portal_token(&admin, &app, json!({})).await);
    portal.get("/api/v1/event-type").await;

    let mut redis = stack.redis().await;
    let _: () = redis::AsyncCommands::del(&mut redis, stack.keys().app(&app))
        .await
        .expect("delete the app record");
    let (status, body) = portal
        .call(Method::GET, "/api/v1/event-type", None, &[])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}
