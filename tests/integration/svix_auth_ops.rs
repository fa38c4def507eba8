//! App portal tokens, operational webhook endpoints, health and clean errors, driven through
//! both official Svix SDKs (Python `svix` and npm `svix`) on both deployments.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::testkit::js::run_js;
use crate::testkit::process::TOKEN;
use crate::testkit::python::{run_python, verify_delivery};
use crate::testkit::{eventually, sdk_backends, Api, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

const CONFIGURED_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ROTATED_KEY: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

fn status(seen: &Value, at: &str) -> Value {
    seen.pointer(at)
        .and_then(|v| v.get("status"))
        .cloned()
        .unwrap_or_else(|| panic!("{at} was refused: {seen}"))
}

/// Capabilities restrict (a call outside them is refused with 403, one inside succeeds),
/// `application` creates the app, logout ends exactly the calling token, expire-all honours
/// its sessions and delay; health parses, a wrong method is a JSON 405 and a refused
/// operation a JSON 400, each raised by the SDK as its API exception.
#[apply(sdk_backends)]
#[tokio::test]
async fn app_portal_tokens_are_scoped_and_ended_through_both_sdks(#[case] backend: Backend) {
    let stack = Stack::on(backend, "svixauth");
    let hookline = stack.start(Role::Serve).await;
    let receiver = Receiver::start().await;
    let url = receiver.url("portal", Reply::Always(204));
    let base = hookline.api_url.clone().expect("api url");
    let env = [
        ("HOOKLINE_URL", base.as_str()),
        ("HOOKLINE_TOKEN", TOKEN),
        ("RECEIVER_URL", url.as_str()),
    ];

    let (ok, py) = run_python("svix_auth.py", &env, None).await;
    assert!(ok, "svix_auth.py failed: {py}");
    assert_eq!(py["health"], Value::Null);
    assert_eq!(py["app"]["uid"], "py-portal-app", "{py}");
    assert_eq!(py["app"]["name"], "Portal from Python");
    assert_eq!(py["url_has_token"], true);
    assert_eq!(py["view_base"]["list"], "ok", "{py}");
    for outside in ["get_secret", "rotate_secret", "create_endpoint"] {
        assert_eq!(status(&py, &format!("/view_base/{outside}")), 403, "{py}");
    }
    assert_eq!(py["manage_secret"]["get_secret"], "ok", "{py}");
    assert_eq!(py["manage_secret"]["rotate_secret"], "ok", "{py}");
    assert_eq!(status(&py, "/manage_secret/create_endpoint"), 403);
    assert_eq!(py["read_only"]["get"], "ok");
    assert_eq!(status(&py, "/read_only/create_endpoint"), 403);
    assert_eq!(
        py["feature_flags"]["loc"],
        json!([["body", "featureFlags"]])
    );
    assert_eq!(py["no_view_base"]["loc"], json!([["body", "capabilities"]]));
    assert_eq!(py["logout"], "ok");
    assert_eq!(status(&py, "/after_logout"), 401);
    assert_eq!(
        py["other_token_after_logout"], "ok",
        "logout ends only its own token"
    );
    assert_eq!(status(&py, "/admin_logout"), 400);
    assert_eq!(status(&py, "/session_expired"), 401);
    assert_eq!(py["other_session"], "ok", "another session's token is kept");
    assert_eq!(py["before_delayed_expiry"], "ok");
    assert_eq!(status(&py, "/after_delayed_expiry"), 401);
    assert_eq!(py["unsupported"]["status"], 400);
    assert_eq!(py["unsupported"]["code"], "not_supported");
    assert_eq!(
        py["unsupported"]["detail"],
        "connector.list is not supported by Hookline: there is no connector catalog; endpoints take a URL"
    );
    assert_eq!(py["wrong_method"]["status"], 405);
    assert_eq!(py["wrong_method"]["code"], "method_not_allowed");

    let (ok, js) = run_js("auth.mjs", &env).await;
    assert!(ok, "auth.mjs failed: {js}");
    assert_eq!(js["health"], Value::Null);
    assert_eq!(
        js["app"],
        json!({"uid": "js-portal-app", "name": "Portal from JavaScript"})
    );
    assert_eq!(js["view_secret"]["list"], "ok", "{js}");
    assert_eq!(js["view_secret"]["getSecret"], "ok", "{js}");
    assert_eq!(status(&js, "/view_secret/rotateSecret"), 403);
    assert_eq!(status(&js, "/view_secret/deleteEndpoint"), 403);
    assert!(
        js["view_secret"]["rotateSecret"]["body"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("ManageEndpointSecret")),
        "the refusal names what is missing: {js}"
    );
    assert_eq!(js["manage_endpoint"]["create"], "ok", "{js}");
    assert_eq!(status(&js, "/manage_endpoint/sendMessage"), 403);
    assert_eq!(status(&js, "/unknown_capability"), 422);
    assert_eq!(
        js["unknown_capability"]["body"]["detail"][0]["loc"],
        json!(["body", "capabilities[1]"])
    );
    assert_eq!(js["dashboard_url_has_token"], true);
    assert_eq!(js["dashboard_token"], "ok");
    assert_eq!(js["logout"], "ok");
    assert_eq!(status(&js, "/after_logout"), 401);
    assert_eq!(js["other_token_after_logout"], "ok");
    assert_eq!(status(&js, "/admin_logout"), 400);
    assert_eq!(js["admin_logout"]["body"]["code"], "bad_request");
    assert_eq!(
        js["other_session_expired"], "ok",
        "sessionIds names other sessions"
    );
    for token in ["session", "dashboard", "manager"] {
        assert_eq!(status(&js, &format!("/expire_all/{token}")), 401, "{js}");
    }
    assert_eq!(status(&js, "/unsupported"), 400);
    assert_eq!(js["unsupported"]["body"]["code"], "not_supported");
    assert_eq!(status(&js, "/wrong_method"), 405);
    assert_eq!(js["wrong_method"]["body"]["code"], "method_not_allowed");
}

/// One SDK's operational endpoints, as its script reported them.
struct OpRun<'a> {
    sdk: &'a str,
    seen: Value,
}

impl OpRun<'_> {
    fn id(&self, which: &str) -> &str {
        self.seen[which].as_str().expect("an endpoint id")
    }

    fn is_event(&self, delivery: &crate::testkit::receiver::Delivery, kind: &str) -> bool {
        serde_json::from_str::<Value>(&delivery.body)
            .is_ok_and(|b| b["type"] == kind && b["data"]["appId"] == self.seen["app"])
    }
}

/// The operational event `kind` about the run's app at `path`, once it arrived.
async fn event_at(
    receiver: &Receiver,
    path: &str,
    run: &OpRun<'_>,
    kind: &str,
) -> crate::testkit::receiver::Delivery {
    eventually(
        "an operational event at its endpoint",
        Duration::from_secs(30),
        || async {
            receiver
                .deliveries(path)
                .into_iter()
                .find(|d| run.is_event(d, kind))
        },
    )
    .await
}

/// The endpoints a message of the operator application was addressed to.
async fn destinations(api: &Api, msg_id: &str) -> Vec<String> {
    let listed = api
        .get(&format!(
            "/api/v1/app/hookline-operator/msg/{msg_id}/endpoint"
        ))
        .await;
    listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|d| d["id"].as_str().expect("id").to_owned())
        .collect()
}

/// What each SDK's operational endpoints received: signed with their (rotated) secrets,
/// carrying their headers, filtered by their event types, nothing for a disabled one.
async fn check_operational_run(receiver: &Receiver, api: &Api, run: &OpRun<'_>) {
    let sdk = run.sdk;
    let all = format!("{sdk}-all");
    let created = event_at(receiver, &all, run, "endpoint.created").await;
    let deleted = event_at(receiver, &all, run, "endpoint.deleted").await;
    let secret = run.seen["all_secret"].as_str().expect("secret");
    assert_eq!(secret, ROTATED_KEY, "{}", run.seen);
    for delivery in [&created, &deleted] {
        let (verified, answer) = verify_delivery(secret, &delivery.headers, &delivery.body).await;
        assert!(verified, "{sdk}: signed with the rotated secret: {answer}");
        assert_eq!(
            delivery.headers.get("x-op-source").map(String::as_str),
            Some(sdk)
        );
        assert_eq!(
            delivery.headers.get("x-extra").map(String::as_str),
            Some("1")
        );
    }
    let (verified, _) = verify_delivery(
        run.seen["filtered_secret"].as_str().expect("secret"),
        &created.headers,
        &created.body,
    )
    .await;
    assert!(
        !verified,
        "{sdk}: another endpoint's secret does not verify"
    );
    let filtered = event_at(
        receiver,
        &format!("{sdk}-filtered"),
        run,
        "endpoint.created",
    )
    .await;
    let secret = run.seen["filtered_secret"].as_str().expect("secret");
    let (verified, answer) = verify_delivery(secret, &filtered.headers, &filtered.body).await;
    assert!(
        verified,
        "{sdk}: the filtered endpoint's delivery: {answer}"
    );

    let to_created = destinations(api, created.webhook_id()).await;
    let to_deleted = destinations(api, deleted.webhook_id()).await;
    assert!(
        to_created.iter().any(|id| id == run.id("all")),
        "{to_created:?}"
    );
    assert!(to_created.iter().any(|id| id == run.id("filtered")));
    assert!(
        to_deleted.iter().all(|id| id != run.id("filtered")),
        "{sdk}: the filter excludes endpoint.deleted: {to_deleted:?}"
    );
    for message in [&to_created, &to_deleted] {
        assert!(
            message.iter().all(|id| id != run.id("off")),
            "{sdk}: a disabled endpoint gets nothing: {message:?}"
        );
    }
}

/// Operational webhook endpoints made, changed, rotated and deleted through each SDK, and
/// operational events reaching them signed with their own secrets, beside the endpoint
/// configured in the settings.
#[apply(sdk_backends)]
#[tokio::test]
async fn operational_webhook_endpoints_through_both_sdks_receive_signed_events(
    #[case] backend: Backend,
) {
    let receiver = Receiver::start().await;
    let configured = receiver.url("configured", Reply::Always(200));
    let stack = Stack::on(backend, "svixops")
        .with("HOOKLINE__OPERATIONAL_WEBHOOKS__URL", &configured)
        .with("HOOKLINE__OPERATIONAL_WEBHOOKS__SECRET", CONFIGURED_SECRET);
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let base = hookline.api_url.clone().expect("api url");
    let app_url = receiver.url("app", Reply::Always(204));

    let mut runs = Vec::new();
    for sdk in ["py", "js"] {
        let urls: Vec<String> = ["all", "filtered", "off"]
            .iter()
            .map(|kind| receiver.url(&format!("{sdk}-{kind}"), Reply::Always(200)))
            .collect();
        let env = [
            ("HOOKLINE_URL", base.as_str()),
            ("HOOKLINE_TOKEN", TOKEN),
            ("OP_ALL_URL", urls[0].as_str()),
            ("OP_FILTERED_URL", urls[1].as_str()),
            ("OP_OFF_URL", urls[2].as_str()),
            ("APP_URL", app_url.as_str()),
            ("NEW_KEY", ROTATED_KEY),
        ];
        let (ok, seen) = if sdk == "py" {
            run_python("svix_operational.py", &env, None).await
        } else {
            run_js("operational.mjs", &env).await
        };
        assert!(ok, "{sdk} operational script failed: {seen}");
        runs.push(OpRun { sdk, seen });
    }
    let (py, js) = (&runs[0].seen, &runs[1].seen);

    assert_eq!(py["created"]["metadata"], json!({"team": "ops"}));
    assert_eq!(py["by_uid"]["eventTypes"], json!(["endpoint.created"]));
    assert_eq!(py["by_uid"]["throttleRate"], 10);
    assert_eq!(py["upsert_update"]["description"], "only endpoint.created");
    assert_eq!(
        py["upsert_update"]["uid"], "py-op-filtered",
        "an upsert keeps the uid"
    );
    assert_eq!(
        py["upsert_create"],
        json!({"uid": "py-op-upserted", "is_new": true})
    );
    assert_eq!(
        py["headers"],
        json!({"headers": {"x-extra": "1", "x-op-source": "py"}, "sensitive": []})
    );
    assert_eq!(
        py["unsent_type"]["loc"],
        json!([["body", "eventTypes", "0"]])
    );
    assert_eq!(py["configured_uid"]["loc"], json!([["body", "uid"]]));
    assert_eq!(py["configured_get"]["status"], 404);
    assert_eq!(
        py["bad_grace"]["loc"],
        json!([["body", "gracePeriodSeconds"]])
    );
    assert_eq!(py["after_delete"]["status"], 404);
    assert_eq!(js["got"]["filterTypes"], json!(["endpoint.created"]));
    assert_eq!(js["updated"]["rateLimit"], 20);
    assert_eq!(js["updated"]["description"], "only endpoint.created");
    assert_eq!(
        js["headers"],
        json!({"headers": {"x-extra": "1", "x-op-source": "js"}, "sensitive": []}),
        "PUT replaced and PATCH merged the headers"
    );
    assert_eq!(js["after_delete"]["status"], 404);
    assert_eq!(js["app_token"]["status"], 403, "admin only: {js}");

    // The list holds what the API made, never the configured endpoint.
    let listed = api.get("/api/v1/operational-webhook/endpoint").await;
    let mut ids: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|ep| ep["id"].as_str().expect("id"))
        .collect();
    ids.sort_unstable();
    let mut made: Vec<&str> = runs
        .iter()
        .flat_map(|run| ["all", "filtered", "off"].map(|which| run.id(which)))
        .collect();
    made.sort_unstable();
    assert_eq!(ids, made, "{listed}");

    // A field the operation does not have is refused, not ignored.
    let (code, body) = api
        .call(
            Method::PUT,
            &format!("/api/v1/operational-webhook/endpoint/{}", runs[0].id("all")),
            Some(&json!({"url": app_url, "secret": ROTATED_KEY})),
            &[],
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    for run in &runs {
        check_operational_run(&receiver, &api, run).await;
        // The configured endpoint keeps receiving alongside, with its own secret.
        let notice = event_at(&receiver, "configured", run, "endpoint.created").await;
        let (verified, answer) =
            verify_delivery(CONFIGURED_SECRET, &notice.headers, &notice.body).await;
        assert!(verified, "the configured endpoint's delivery: {answer}");
    }
}
