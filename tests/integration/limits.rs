//! Bad input: oversized, deeply nested and malformed bodies, over-long names and too many
//! endpoints get 413/422/409 with the JSON error shape; the service keeps serving and no
//! partial message is stored.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::testkit::{backends, Backend, Role, Stack};
use rstest_reuse::apply;

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!({ "a": inner }))
}

#[apply(backends)]
#[tokio::test]
async fn limits_answer_clear_errors_and_lose_nothing(#[case] backend: Backend) {
    let stack = Stack::on(backend, "limits")
        .with("HOOKLINE__API__MAX_BODY_BYTES", "65536")
        .with("HOOKLINE__API__MAX_PAYLOAD_DEPTH", "16")
        .with("HOOKLINE__API__MAX_ENDPOINTS_PER_APP", "3");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let app = api.create_app("limits-app").await;
    let path = format!("/api/v1/app/{app}/msg");

    // Too large: 413 with the JSON error body.
    let big = json!({"eventType": "big", "payload": {"blob": "x".repeat(70_000)}});
    let (status, error) = api.call(Method::POST, &path, Some(&big), &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{error}");
    assert_eq!(error["code"], "payload_too_large", "{error}");

    // Too deep: 422 naming the payload. Exactly at the limit is fine.
    let deep = json!({"eventType": "deep", "payload": nested(17)});
    let (status, error) = api.call(Method::POST, &path, Some(&deep), &[]).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(error["detail"].to_string().contains("payload"), "{error}");

    // Names past their length limits.
    let cases = [
        (
            json!({"eventType": "e".repeat(300), "payload": {}}),
            "eventType",
        ),
        (
            json!({"eventType": "ok", "channels": ["c".repeat(200)], "payload": {}}),
            "channels",
        ),
        (
            json!({"eventType": "ok", "eventId": "i".repeat(300), "payload": {}}),
            "eventId",
        ),
        (
            json!({"eventType": "ok", "payload": "not an object"}),
            "payload",
        ),
        (
            json!({"eventType": "ok", "payload": {}, "channels": "eu"}),
            "channels",
        ),
    ];
    for (body, field) in &cases {
        let (status, error) = api.call(Method::POST, &path, Some(body), &[]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {error}");
        assert!(
            error["detail"].to_string().contains(field),
            "{field}: {error}"
        );
    }
    let (status, error) = api
        .call(
            Method::POST,
            "/api/v1/app",
            Some(&json!({"name": "x", "uid": "u".repeat(300)})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");

    // Malformed JSON and a wrong content: client errors in the JSON shape.
    for raw in [
        "{",
        "[1, 2",
        "\u{0}",
        "{\"eventType\": \"a\", \"payload\": {}} trailing",
    ] {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", api.base))
            .bearer_auth(&api.token)
            .header("content-type", "application/json")
            .body(raw.to_owned())
            .send()
            .await
            .expect("request");
        let status = response.status();
        let body: Value = response.json().await.expect("a JSON error");
        assert!(status.is_client_error(), "{raw:?}: {status}");
        assert!(body["code"].is_string(), "{raw:?}: {body}");
    }

    // Endpoints per app.
    for n in 0..3 {
        api.create_endpoint(&app, json!({"url": format!("https://example.com/{n}")}))
            .await;
    }
    let (status, error) = api
        .call(
            Method::POST,
            &format!("/api/v1/app/{app}/endpoint"),
            Some(&json!({"url": "https://example.com/4"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert!(
        error["detail"].as_str().is_some_and(|d| d.contains('3')),
        "{error}"
    );

    // Oversized request headers are refused by the HTTP layer (431), not processed.
    let mut request = reqwest::Client::new()
        .get(format!("{}{path}", api.base))
        .bearer_auth(&api.token);
    for n in 0..200 {
        request = request.header(format!("x-filler-{n}"), "y".repeat(100));
    }
    let status = request.send().await.map(|r| r.status());
    assert!(
        matches!(status, Ok(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)) || status.is_err(),
        "{status:?}"
    );

    // Still serving, and only the valid message exists.
    let ok = api.send(&app, "fine", nested(16)).await;
    let listed = api.get(&path).await;
    let ids: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, [ok.as_str()]);
}
