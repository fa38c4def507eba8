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
    let endpoint_body = json!({"url": "https://example.com/x"});
    let msg_body = json!({"eventType": "x", "payload": {}});
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/api/v1/app/{bid}"), None),
        (Method::GET, "/api/v1/app/tenant-b".into(), None),
        (
            Method::PUT,
            format!("/api/v1/app/{bid}"),
            Some(json!({"name": "stolen"})),
        ),
        (
            Method::PATCH,
            format!("/api/v1/app/{bid}"),
            Some(json!({"name": "stolen"})),
        ),
        (Method::DELETE, format!("/api/v1/app/{bid}"), None),
        (Method::GET, format!("/api/v1/app/{bid}/endpoint"), None),
        (
            Method::POST,
            format!("/api/v1/app/{bid}/endpoint"),
            Some(endpoint_body.clone()),
        ),
        (
            Method::GET,
            format!("/api/v1/app/{bid}/endpoint/{bep}"),
            None,
        ),
        (
            Method::PUT,
            format!("/api/v1/app/{bid}/endpoint/{bep}"),
            Some(endpoint_body.clone()),
        ),
        (
            Method::PATCH,
            format!("/api/v1/app/{bid}/endpoint/{bep}"),
            Some(json!({"disabled": true})),
        ),
        (
            Method::DELETE,
            format!("/api/v1/app/{bid}/endpoint/{bep}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/app/{bid}/endpoint/{bep}/secret"),
            None,
        ),
        (Method::GET, format!("/api/v1/app/{bid}/msg"), None),
        (
            Method::POST,
            format!("/api/v1/app/{bid}/msg"),
            Some(msg_body.clone()),
        ),
        (Method::GET, format!("/api/v1/app/{bid}/msg/{bmsg}"), None),
        (
            Method::GET,
            format!("/api/v1/app/{bid}/msg/{bmsg}/endpoint"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/app/{bid}/msg/{bmsg}/attempt/{batt}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/app/{bid}/attempt/endpoint/{bep}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/app/{bid}/attempt/msg/{bmsg}"),
            None,
        ),
        // B's ids under A's own app path.
        (
            Method::GET,
            format!("/api/v1/app/{aid}/endpoint/{bep}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/app/{aid}/endpoint/{bep}/secret"),
            None,
        ),
        (
            Method::DELETE,
            format!("/api/v1/app/{aid}/endpoint/{bep}"),
            None,
        ),
        (Method::GET, format!("/api/v1/app/{aid}/msg/{bmsg}"), None),
        (
            Method::GET,
            format!("/api/v1/app/{aid}/msg/{bmsg}/attempt/{batt}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/app/{aid}/attempt/endpoint/{bep}"),
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/app/{aid}/attempt/msg/{bmsg}"),
            None,
        ),
        // Routes outside any app, and token minting.
        (Method::GET, "/api/v1/app".into(), None),
        (
            Method::POST,
            "/api/v1/app".into(),
            Some(json!({"name": "mine"})),
        ),
        (
            Method::POST,
            "/api/v1/event-type".into(),
            Some(json!({"name": "x.y", "description": "d"})),
        ),
        (
            Method::POST,
            format!("/api/v1/auth/app-portal-access/{bid}"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/api/v1/auth/app-portal-access/{aid}"),
            Some(json!({})),
        ),
        (
            Method::POST,
            format!("/api/v1/auth/app/{bid}/expire-all"),
            Some(json!({})),
        ),
    ];
    for (method, path, body) in &routes {
        let (status, answer) = token_a.call(method.clone(), path, body.as_ref(), &[]).await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
            "{method} {path} answered {status}: {answer}"
        );
        let text = answer.to_string();
        for leaked in [
            bid.as_str(),
            bep,
            bmsg,
            batt,
            "secret-of-tenant-b",
            b_secret.as_str(),
        ] {
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
            msg_body,
            StatusCode::ACCEPTED,
        )
        .await;
    token_a.get("/api/v1/event-type").await;
    assert!(token_a
        .endpoint_secret(aid, &a.endpoint)
        .await
        .starts_with("whsec_"));
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
