//! The Svix-shaped API: resources, paging, errors and authentication, over HTTP.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::testkit::{backends, Api, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

#[apply(backends)]
#[tokio::test]
async fn apps_endpoints_and_event_types_support_crud_with_svix_shapes(#[case] backend: Backend) {
    let stack = Stack::on(backend, "crud");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let empty = api.get("/api/v1/app").await;
    assert_eq!(empty["data"], json!([]), "a fresh deployment lists no apps");
    assert_eq!(empty["done"], true);

    // Apps: create, uid lookup, get_if_exists, conflict, update, delete.
    let app = api
        .post(
            "/api/v1/app",
            json!({"name": "Acme", "uid": "acme"}),
            StatusCode::CREATED,
        )
        .await;
    assert!(app["id"].as_str().is_some_and(|id| id.starts_with("app_")));
    assert_eq!(api.get("/api/v1/app/acme").await["id"], app["id"]);
    let again = api
        .post(
            "/api/v1/app?get_if_exists=true",
            json!({"name": "Acme", "uid": "acme"}),
            StatusCode::OK,
        )
        .await;
    assert_eq!(again["id"], app["id"]);
    let conflict = api
        .post(
            "/api/v1/app",
            json!({"name": "Other", "uid": "acme"}),
            StatusCode::CONFLICT,
        )
        .await;
    assert!(conflict["code"].is_string() && conflict["detail"].is_string());
    let (status, renamed) = api
        .call(
            Method::PUT,
            "/api/v1/app/acme",
            Some(&json!({"name": "Acme Inc", "uid": "acme"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    assert_eq!(renamed["name"], "Acme Inc");

    // Endpoints: a generated whsec secret, filters, patch, delete.
    let endpoint = api
        .post(
            "/api/v1/app/acme/endpoint",
            json!({"url": "https://example.com/hook", "filterTypes": ["invoice.paid"], "channels": ["eu"], "uid": "main"}),
            StatusCode::CREATED,
        )
        .await;
    let ep_id = endpoint["id"].as_str().expect("id");
    assert!(ep_id.starts_with("ep_"));
    assert_eq!(endpoint["filterTypes"], json!(["invoice.paid"]));
    assert_eq!(endpoint["channels"], json!(["eu"]));
    assert!(
        endpoint.get("secret").is_none(),
        "the secret is not in EndpointOut"
    );
    let secret = api.endpoint_secret("acme", "main").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    let given = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let second = api
        .post(
            "/api/v1/app/acme/endpoint",
            json!({"url": "https://example.com/two", "secret": given}),
            StatusCode::CREATED,
        )
        .await;
    let second_id = second["id"].as_str().expect("id");
    assert_eq!(api.endpoint_secret("acme", second_id).await, given);
    let (status, patched) = api
        .call(
            Method::PATCH,
            &format!("/api/v1/app/acme/endpoint/{ep_id}"),
            Some(&json!({"disabled": true})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["disabled"], true);
    assert_eq!(
        patched["url"], "https://example.com/hook",
        "patch keeps other fields"
    );
    let listed = api.get("/api/v1/app/acme/endpoint").await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2));
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/api/v1/app/acme/endpoint/{second_id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, missing) = api
        .call(
            Method::GET,
            &format!("/api/v1/app/acme/endpoint/{second_id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");

    // Event types.
    api.post(
        "/api/v1/event-type",
        json!({"name": "invoice.paid", "description": "An invoice was paid"}),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        api.get("/api/v1/event-type/invoice.paid").await["description"],
        "An invoice was paid"
    );
    let (status, _) = api
        .call(Method::DELETE, "/api/v1/event-type/invoice.paid", None, &[])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let (status, _) = api
        .call(Method::DELETE, "/api/v1/app/acme", None, &[])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.call(Method::GET, "/api/v1/app/acme", None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[apply(backends)]
#[tokio::test]
async fn messages_page_with_iterators_newest_first(#[case] backend: Backend) {
    let stack = Stack::on(backend, "paging");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let app = api.create_app("paging-app").await;
    let mut sent = Vec::new();
    for n in 0..7 {
        sent.push(api.send(&app, "tick", json!({"n": n})).await);
    }
    let mut seen = Vec::new();
    let mut iterator: Option<String> = None;
    loop {
        let query = iterator
            .as_deref()
            .map_or(String::new(), |i| format!("&iterator={i}"));
        let page = api
            .get(&format!("/api/v1/app/{app}/msg?limit=3{query}"))
            .await;
        let items = page["data"].as_array().expect("data");
        assert!(items.len() <= 3);
        seen.extend(
            items
                .iter()
                .map(|m| m["id"].as_str().expect("id").to_owned()),
        );
        if page["done"] == true {
            break;
        }
        iterator = page["iterator"].as_str().map(str::to_owned);
        assert!(
            iterator.is_some(),
            "a page that is not done has an iterator"
        );
    }
    sent.reverse();
    assert_eq!(seen, sent, "every message once, newest first");
    let got = api.get(&format!("/api/v1/app/{app}/msg/{}", sent[0])).await;
    assert_eq!(got["payload"], json!({"n": 6}));
    assert_eq!(got["eventType"], "tick");
}

#[apply(backends)]
#[tokio::test]
async fn bad_input_gets_a_clear_error_naming_the_field(#[case] backend: Backend) {
    let stack = Stack::on(backend, "badinput");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let app = api.create_app("bad-app").await;
    let msg_path = format!("/api/v1/app/{app}/msg");

    let cases: Vec<(&str, Value, &str)> = vec![
        ("/api/v1/app", json!({"name": 5}), "name"),
        (
            "/api/v1/app",
            json!({"name": "x", "uid": "has space"}),
            "uid",
        ),
        (&msg_path, json!({"payload": {}}), "eventType"),
        (
            &msg_path,
            json!({"eventType": "bad type!", "payload": {}}),
            "eventType",
        ),
        (
            &msg_path,
            json!({"eventType": "a", "payload": {}, "channels": ["no way"]}),
            "channels",
        ),
    ];
    let endpoint_path = format!("/api/v1/app/{app}/endpoint");
    let mut cases = cases;
    cases.push((&endpoint_path, json!({"url": "not a url"}), "url"));
    cases.push((
        &endpoint_path,
        json!({"url": "https://x.example", "secret": "nope"}),
        "secret",
    ));
    for (path, body, field) in &cases {
        let (status, error) = api.call(Method::POST, path, Some(body), &[]).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {body}: {error}"
        );
        let named = error["detail"]
            .as_array()
            .is_some_and(|d| d.iter().any(|e| e["loc"].to_string().contains(field)));
        assert!(named, "{path} {body}: the error names `{field}`: {error}");
    }

    // Malformed JSON is a client error with a JSON body, never a 500.
    let response = reqwest::Client::new()
        .post(format!("{}{msg_path}", api.base))
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body("{\"eventType\": ")
        .send()
        .await
        .expect("request");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON error body");
    assert!(status.is_client_error(), "{status}");
    assert!(body["code"].is_string(), "{body}");

    // Nothing was stored by any of them.
    let listed = api.get(&msg_path).await;
    assert_eq!(listed["data"], json!([]));
}

#[apply(backends)]
#[tokio::test]
async fn requests_without_a_valid_admin_token_are_refused(#[case] backend: Backend) {
    let stack = Stack::on(backend, "auth");
    let hookline = stack.start(Role::Serve).await;
    let base = hookline.api_url.clone().expect("url");
    for token in ["", "wrong-token-0123456789abc"] {
        let api = Api::new(&base, token);
        let (status, body) = api.call(Method::GET, "/api/v1/app", None, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body["code"].is_string());
    }
    // Health needs no token.
    let (status, _) = Api::new(&base, "")
        .call(Method::GET, "/api/v1/health", None, &[])
        .await;
    assert!(status.is_success());
}

#[apply(backends)]
#[tokio::test]
async fn destinations_list_by_message_id_and_by_event_id(#[case] backend: Backend) {
    let stack = Stack::on(backend, "destinations-by-event");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("destinations").await;
    let url = receiver.url("hook", Reply::Always(200));
    let endpoint = api.create_endpoint(&app, json!({ "url": url })).await;
    let message = api
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "invoice.paid", "eventId": "evt-dest", "payload": {}}),
            StatusCode::ACCEPTED,
        )
        .await;
    let msg = message["id"].as_str().expect("message id");
    for name in [msg, "evt-dest"] {
        let listed = api
            .get(&format!("/api/v1/app/{app}/msg/{name}/endpoint"))
            .await;
        let ids: Vec<&Value> = listed["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|d| &d["id"])
            .collect();
        assert_eq!(ids, [&json!(endpoint)], "by {name}: {listed}");
    }
}

#[apply(backends)]
#[tokio::test]
async fn a_rejected_message_creates_no_application(#[case] backend: Backend) {
    let stack = Stack::on(backend, "reject-no-app");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let bad = [
        json!({"eventType": "bad type!", "payload": {}, "application": {"name": "New"}}),
        json!({"eventType": "ok", "payload": [1], "application": {"name": "New"}}),
        json!({"eventType": "ok", "payload": {}, "channels": [], "application": {"name": "New"}}),
        json!({"eventType": "ok", "payload": {}, "application": {"name": " "}}),
    ];
    for body in bad {
        let (status, error) = api
            .call(Method::POST, "/api/v1/app/fresh/msg", Some(&body), &[])
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        assert_eq!(error["code"], "validation", "{error}");
        let (status, _) = api.call(Method::GET, "/api/v1/app/fresh", None, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "after {body}");
    }
    assert_eq!(api.get("/api/v1/app").await["data"], json!([]));

    // A valid one still creates the app with the message.
    let ok = json!({"eventType": "ok", "payload": {}, "application": {"name": "New"}});
    api.post("/api/v1/app/fresh/msg", ok, StatusCode::ACCEPTED)
        .await;
    assert_eq!(api.get("/api/v1/app/fresh").await["uid"], "fresh");
}

#[apply(backends)]
#[tokio::test]
async fn undecodable_path_segments_answer_the_json_error_shape(#[case] backend: Backend) {
    let stack = Stack::on(backend, "bad-path-utf8");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let app = api.create_app("utf8").await;
    let paths = [
        "/api/v1/app/%ff%fe/msg".to_owned(),
        "/api/v1/app/%ff%fe".to_owned(),
        format!("/api/v1/app/{app}/endpoint/%c3%28"),
        format!("/api/v1/app/{app}/msg/%ff/endpoint"),
        "/api/v1/event-type/%ff".to_owned(),
    ];
    for path in paths {
        let (status, body) = api.call(Method::GET, &path, None, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["code"], "bad_request", "{path}: {body}");
        assert!(body["detail"].is_string(), "{path}: {body}");
    }
}
