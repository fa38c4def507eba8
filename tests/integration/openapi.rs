//! Hookline's OpenAPI document: served, in step with the router, and honoured by the server
//! under schemathesis' generated requests.

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::testkit::process::TOKEN;
use crate::testkit::{backends, Backend, Role, Stack};
use rstest_reuse::apply;

#[apply(backends)]
#[tokio::test]
async fn every_documented_operation_is_routed(#[case] backend: Backend) {
    let stack = Stack::on(backend, "openapi");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let doc = reqwest::get(format!("{}/api/v1/openapi.json", api.base))
        .await
        .expect("openapi.json")
        .json::<Value>()
        .await
        .expect("JSON");
    let paths = doc["paths"].as_object().expect("paths");
    assert!(
        paths.len() >= 15,
        "every resource is documented: {:?}",
        paths.keys()
    );
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{app_id}", "app_unknown")
            .replace("{endpoint_id}", "ep_unknown")
            .replace("{msg_id}", "msg_unknown")
            .replace("{attempt_id}", "atmpt_unknown")
            .replace("{event_type_name}", "unknown.type");
        for method in item.as_object().expect("operations").keys() {
            let method: Method = method.to_uppercase().parse().expect("method");
            let (status, body) = api.call(method.clone(), &concrete, None, &[]).await;
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_ne!(
                body["detail"], "route not found",
                "{method} {path} is not routed"
            );
            operations += 1;
        }
    }
    assert!(operations >= 28, "{operations} operations");
    // The check can fail: an undocumented path is not routed.
    let (status, body) = api
        .call(Method::GET, "/api/v1/not-a-route", None, &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["detail"], "route not found");
}

/// Schemathesis (PyPI) against a live instance: fixed seed, bounded examples. No 5xx, and
/// every status code, content type and body matches the document.
#[apply(backends)]
#[tokio::test]
async fn schemathesis_finds_no_server_error_or_schema_mismatch(#[case] backend: Backend) {
    let st = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/st");
    assert!(
        st.exists(),
        "{} is missing: run scripts/python-env",
        st.display()
    );
    let stack = Stack::on(backend, "schemathesis");
    let hookline = stack.start(Role::Serve).await;
    let base = hookline.api_url.clone().expect("url");
    let output = tokio::process::Command::new(st)
        .args(["run", &format!("{base}/api/v1/openapi.json")])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--seed", "20261124", "--max-examples", "20", "--no-color"])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .output()
        .await
        .expect("run schemathesis");
    let report = String::from_utf8_lossy(&output.stdout);
    let summary: Vec<&str> = report.lines().rev().take(25).collect();
    println!(
        "{}",
        summary.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("passed"), "{report}");
}
