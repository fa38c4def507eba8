//! The dashboard in a real headless Chromium: a person logs in with a portal link, reads a
//! failed attempt, resends it and recovers every failure; an app-scoped login sees no other
//! app; screenshots of the main pages at desktop and phone width land in
//! `target/dashboard-screenshots/`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::testkit::process::TOKEN;
use crate::testkit::{eventually, Api, Browser, Gate, Receiver, Reply, Role, Stack};

const PHONE: (u32, u32) = (390, 844);
const DESKTOP: (u32, u32) = (1280, 900);

/// One retry 100 ms after the first attempt, so a failing message is settled as failed at once
/// and no scheduled attempt can pass for the resend this test clicks.
fn stack(name: &str) -> Stack {
    Stack::new(name).with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "100")
}

#[tokio::test]
async fn a_portal_login_reads_a_failed_attempt_resends_it_and_recovers_the_rest() {
    let stack = stack("dashflow");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("dashboard-flow").await;
    let url = receiver.url("hooks", Reply::Always(500));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    let first = api
        .send(&app, "invoice.paid", json!({"invoice": "inv_1"}))
        .await;
    settled_as_failed(&api, &app, &endpoint, std::slice::from_ref(&first)).await;

    let (link, _token) = portal_link(&api, &hookline, &app).await;
    let browser = Browser::start().await;
    browser.goto(&link).await;
    browser.wait_text("li.endpoint", "Failed").await;
    let address = browser.client.current_url().await.expect("url");
    assert!(
        !address.as_str().contains("hlapp_"),
        "the token leaves the address bar: {address}"
    );

    // The endpoint's log shows the failed attempt; its page shows the response body.
    browser.click("li.endpoint a", &url).await;
    browser.wait_text("#attempt-log", "500").await;
    browser.click("#attempt-log a", "Details").await;
    browser
        .wait_text("#response", "answer 500 to request hooks")
        .await;

    // Resend: the new, successful attempt appears on the page, and the receiver got the
    // same message again.
    receiver.url("hooks", Reply::Always(200));
    browser.click("button", "Resend this message").await;
    browser.wait_text("#resend-result", "Succeeded").await;
    browser.wait_text("#message-attempts", "Succeeded").await;
    let resent = receiver.completed("hooks");
    assert_eq!(resent.last().map(|d| d.webhook_id()), Some(first.as_str()));

    // Recover: three more failures, then "Resend all failed" reports them delivered.
    receiver.url("hooks", Reply::Always(500));
    let failed = api.send_many(&app, "invoice.paid", 3).await;
    settled_as_failed(&api, &app, &endpoint, &failed).await;
    receiver.url("hooks", Reply::Always(200));
    browser.click("a", "← Endpoint").await;
    browser.click("button", "Resend all failed").await;
    let summary = browser.wait_text("#recover-result", "Finished.").await;
    let summary = summary.text().await.expect("summary");
    assert!(
        summary.contains("Succeeded 3") && summary.contains("Total 3"),
        "{summary}"
    );
    assert!(
        summary.contains("Failed 0") && summary.contains("Connection errors 0"),
        "{summary}"
    );
    for msg in &failed {
        let status = api
            .destination(&app, msg, &endpoint)
            .await
            .expect("destination");
        assert_eq!(status["status"], 0, "{msg} delivered by the recovery");
    }
    browser.close().await;
}

#[tokio::test]
async fn an_app_login_sees_only_its_app_and_the_pages_fit_a_phone() {
    let stack = stack("dashtenancy");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let base = hookline.api_url.clone().expect("api url");
    let app = api.create_app("acme-invoicing").await;
    let other = api.create_app("other-tenant").await;
    let hidden = receiver.url("other-tenants-receiver", Reply::Always(200));
    let other_endpoint = api.create_endpoint(&other, json!({"url": hidden})).await;
    api.post(
        "/api/v1/event-type",
        json!({"name": "invoice.paid", "description": "An invoice was paid in full.",
               "schemas": {"1": {"type": "object", "examples": [{"invoiceId": "inv_1042", "amount": 12000, "currency": "EUR"}]}}}),
        StatusCode::CREATED,
    )
    .await;
    let url = receiver.url("billing", Reply::Sequence(vec![500, 200]));
    let endpoint = api
        .create_endpoint(
            &app,
            json!({"url": url, "description": "Billing service", "filterTypes": ["invoice.paid"]}),
        )
        .await;
    let msg = api
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "invoice.paid", "eventId": "evt-1042",
                   "payload": {"invoiceId": "inv_1042", "amount": 12000, "currency": "EUR", "lines": [{"sku": "plan-pro", "quantity": 1}]}}),
            StatusCode::ACCEPTED,
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    eventually("the retry succeeded", Duration::from_secs(20), || async {
        let d = api.destination(&app, &msg, &endpoint).await?;
        (d["status"] == 0).then_some(())
    })
    .await;
    let attempts = api.attempts_of_message(&app, &msg).await;
    let failed_attempt = attempts[0]["id"].as_str().expect("attempt id").to_owned();

    let (link, token) = portal_link(&api, &hookline, &app).await;
    let browser = Browser::start().await;
    browser.goto(&link).await;
    browser.wait_text("li.endpoint", "50 % of 2").await;

    // The other tenant's app, endpoint and messages, asked for by id, show nothing of it.
    for page in [
        format!("#/app/{other}"),
        format!("#/app/{other}/endpoint/{other_endpoint}"),
        format!("#/app/{other}/messages"),
    ] {
        browser.goto(&format!("{base}/dashboard{page}")).await;
        browser.wait_text(".error", "not found").await;
        let source = browser.client.source().await.expect("source");
        assert!(
            !source.contains("other-tenants-receiver") && !source.contains("other-tenant"),
            "{page}"
        );
    }
    // Over HTTP, the same token gets 404 for the other app and 403 for the admin listing.
    let scoped = Api::new(&base, &token);
    for path in [
        format!("/api/v1/app/{other}"),
        format!("/api/v1/app/{other}/endpoint"),
    ] {
        let (status, body) = scoped.call(Method::GET, &path, None, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(!body.to_string().contains("other-tenants-receiver"));
    }
    let (status, _) = scoped.call(Method::GET, "/api/v1/app", None, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The main pages, at desktop and phone width. On a phone nothing is wider than the screen
    // except inside tables that scroll on their own.
    let pages = [
        ("endpoints", format!("#/app/{app}"), "Billing service"),
        (
            "endpoint",
            format!("#/app/{app}/endpoint/{endpoint}"),
            "Attempt log",
        ),
        (
            "attempt",
            format!("#/app/{app}/msg/{msg}/attempt/{failed_attempt}"),
            "answer 500",
        ),
        (
            "message",
            format!("#/app/{app}/messages?q=evt-1042"),
            "inv_1042",
        ),
        (
            "event-types",
            format!("#/app/{app}/event-types"),
            "inv_1042",
        ),
    ];
    for (width, height, label) in [
        (DESKTOP.0, DESKTOP.1, "desktop"),
        (PHONE.0, PHONE.1, "phone"),
    ] {
        browser.resize(width, height).await;
        for (name, page, expect) in &pages {
            browser.goto(&format!("{base}/dashboard{page}")).await;
            browser.wait_text("main", expect).await;
            browser.screenshot(&format!("{name}-{label}")).await;
            if label == "phone" {
                let overflow = browser
                    .client
                    .execute(
                        "return document.documentElement.scrollWidth - window.innerWidth",
                        vec![],
                    )
                    .await
                    .expect("measure");
                assert!(
                    overflow.as_i64().is_some_and(|px| px <= 0),
                    "{name} overflows a phone by {overflow} px"
                );
            }
        }
    }

    // A long payload is pretty-printed and folded; times show relative and absolute.
    let long: serde_json::Map<String, Value> = (0..40)
        .map(|i| (format!("line_item_{i:02}"), json!(i)))
        .collect();
    let long_msg = api.send(&app, "invoice.paid", Value::Object(long)).await;
    browser.resize(DESKTOP.0, DESKTOP.1).await;
    browser
        .goto(&format!(
            "{base}/dashboard#/app/{app}/messages?q={long_msg}"
        ))
        .await;
    let folded = browser
        .wait_text("details.block summary", "Payload (42 lines)")
        .await;
    folded.click().await.expect("unfold");
    browser
        .wait_text("details.block pre", "\"line_item_39\": 39")
        .await;
    let received = browser.wait_for("main time").await;
    let title = received
        .attr("title")
        .await
        .expect("title")
        .unwrap_or_default();
    let text = received.text().await.expect("time text");
    let relative = text.split(" · ").next().unwrap_or_default();
    assert!(
        !title.is_empty() && text.ends_with(&title) && !relative.is_empty() && relative != title,
        "relative and absolute: {text} / {title}"
    );

    // An admin logs in with a token and sees every app.
    browser.resize(DESKTOP.0, DESKTOP.1).await;
    browser.click("#logout", "Log out").await;
    let input = browser.wait_for("#token").await;
    input.send_keys(TOKEN).await.expect("type token");
    browser.click("form button", "Log in").await;
    browser.wait_text("main", "other-tenant").await;
    browser.wait_text("main", "acme-invoicing").await;
    browser.screenshot("apps-desktop").await;
    browser.close().await;
}

/// An admin's Backlog page lists an app whose deliveries wait at a receiver, with their
/// number, and drops it by itself (it refreshes) once they are delivered.
#[tokio::test]
async fn the_backlog_page_lists_an_app_whose_deliveries_wait() {
    let stack = stack("dashbacklog")
        .with("HOOKLINE__DELIVERY__TIMEOUT_MS", "60000")
        .with("HOOKLINE__OPS__BACKLOG_FLUSH_MS", "200");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let gate = Gate::closed();
    let app = api.create_app("backlog-flood").await;
    let url = receiver.url("held", Reply::Held(gate.clone()));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    api.send_many(&app, "order.created", 3).await;

    let browser = Browser::start().await;
    let base = hookline.api_url.as_deref().expect("api url");
    browser.goto(&format!("{base}/dashboard")).await;
    let input = browser.wait_for("#token").await;
    input.send_keys(TOKEN).await.expect("type token");
    browser.click("form button", "Log in").await;
    browser.click("#nav a", "Backlog").await;
    let row = browser
        .wait_text("#backlog-apps tbody tr", "backlog-flood")
        .await;
    let cells: Vec<String> = {
        let mut texts = Vec::new();
        for cell in row
            .find_all(fantoccini::Locator::Css("td"))
            .await
            .expect("cells")
        {
            texts.push(cell.text().await.expect("cell text"));
        }
        texts
    };
    assert_eq!(
        cells[..3],
        ["backlog-flood", app.as_str(), "3"],
        "{cells:?}"
    );
    browser
        .wait_text("#backlog-endpoints tbody tr", &endpoint)
        .await;
    browser.screenshot("backlog-desktop").await;

    gate.open();
    browser
        .wait_text("#backlog-apps tbody", "Nothing here yet.")
        .await;
    browser.close().await;
}

/// A fresh portal link for `app`, pointed at this test's API address; and its token.
async fn portal_link(
    api: &Api,
    hookline: &crate::testkit::process::Process,
    app: &str,
) -> (String, String) {
    let access: Value = api
        .post(
            &format!("/api/v1/auth/app-portal-access/{app}"),
            json!({}),
            StatusCode::OK,
        )
        .await;
    let url = access["url"].as_str().expect("url");
    let (_, rest) = url.split_once("/dashboard/").expect("a dashboard link");
    let base = hookline.api_url.as_deref().expect("api url");
    (
        format!("{base}/dashboard/{rest}"),
        access["token"].as_str().expect("token").to_owned(),
    )
}

async fn settled_as_failed(api: &Api, app: &str, endpoint: &str, messages: &[String]) {
    for msg in messages {
        eventually(
            "the message settled as failed",
            Duration::from_secs(20),
            || async {
                let d = api.destination(app, msg, endpoint).await?;
                (d["status"] == 2).then_some(())
            },
        )
        .await;
    }
}

#[tokio::test]
async fn the_endpoint_controls_change_the_endpoint_through_the_api() {
    let stack = stack("dashcontrols");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let base = hookline.api_url.clone().expect("api url");
    let app = api.create_app("controls").await;
    let url = receiver.url("hooks", Reply::Sequence(vec![500, 200]));
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    let paid = api.send(&app, "invoice.paid", json!({"n": 1})).await;
    eventually("the retry succeeded", Duration::from_secs(20), || async {
        let d = api.destination(&app, &paid, &endpoint).await?;
        (d["status"] == 0).then_some(())
    })
    .await;
    let path = format!("/api/v1/app/{app}/endpoint/{endpoint}");
    let (link, _) = portal_link(&api, &hookline, &app).await;
    let browser = Browser::start().await;
    browser.goto(&link).await;
    browser
        .goto(&format!("{base}/dashboard#/app/{app}/endpoint/{endpoint}"))
        .await;
    browser.wait_text("#attempt-log", "Failed").await;

    // Filter the log to failures: only the failed attempt is left.
    let status = browser.wait_for("#filter-status").await;
    status.select_by_value("2").await.expect("select");
    browser.click("form.filters button", "Apply filters").await;
    eventually("only failures listed", Duration::from_secs(20), || async {
        let rows = browser
            .client
            .find_all(fantoccini::Locator::Css("#attempt-log tbody tr"))
            .await
            .ok()?;
        let text = browser
            .wait_for("#attempt-log tbody")
            .await
            .text()
            .await
            .ok()?;
        (rows.len() == 1 && text.contains("Failed") && !text.contains("Succeeded")).then_some(())
    })
    .await;

    // Reveal, from the keyboard: the secret the API holds.
    let secret = api.endpoint_secret(&app, &endpoint).await;
    let reveal = browser.wait_text("button", "Reveal").await;
    browser
        .client
        .execute(
            "arguments[0].focus()",
            vec![serde_json::to_value(&reveal).expect("element")],
        )
        .await
        .expect("focus");
    browser
        .client
        .active_element()
        .await
        .expect("focused")
        .send_keys("\u{e007}")
        .await
        .expect("Enter");
    browser.wait_text("#secret-value", &secret).await;

    // Rotate (after the confirmation): the page shows the new secret, the API agrees.
    browser.click("button", "Rotate").await;
    eventually("the confirmation", Duration::from_secs(20), || async {
        browser.client.accept_alert().await.ok()
    })
    .await;
    browser.wait_text("main", "Rotated.").await;
    let rotated = api.endpoint_secret(&app, &endpoint).await;
    assert_ne!(rotated, secret);
    browser.wait_text("#secret-value", &rotated).await;

    // Add a header, then remove it.
    browser
        .wait_for("#header-name")
        .await
        .send_keys("X-Tenant")
        .await
        .expect("type");
    browser
        .wait_for("#header-value")
        .await
        .send_keys("acme")
        .await
        .expect("type");
    browser.click("button", "Add header").await;
    browser.wait_text("main", "x-tenant: acme").await;
    let headers = api.get(&format!("{path}/headers")).await;
    assert_eq!(headers["headers"]["x-tenant"], "acme");
    browser.click("button", "Remove").await;
    eventually("the header removed", Duration::from_secs(20), || async {
        let headers = api.get(&format!("{path}/headers")).await;
        (headers["headers"] == json!({})).then_some(())
    })
    .await;

    // Disable, then enable again.
    browser.click("button", "Disable endpoint").await;
    browser.wait_text("button", "Enable endpoint").await;
    assert_eq!(api.get(&path).await["disabled"], true);
    browser.click("button", "Enable endpoint").await;
    browser.wait_text("button", "Disable endpoint").await;
    assert_eq!(api.get(&path).await["disabled"], false);
    browser.close().await;
}

/// An ordered endpoint's page says so and shows its line: how long it is while the head is
/// being delivered, and, once a head keeps failing, that message as what blocks the rest,
/// with its attempts, its next attempt and how many wait behind it. The toggle turns
/// ordered delivery on through the API.
#[tokio::test]
async fn an_ordered_endpoint_shows_what_blocks_its_line() {
    // Svix's schedule: a failed head waits seconds for its next attempt, blocking the line.
    let stack = Stack::new("dashfifo").with("HOOKLINE__DELIVERY__TIMEOUT_MS", "60000");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let base = hookline.api_url.clone().expect("api url");
    let app = api.create_app("ordered").await;
    let failing = receiver.url("failing", Reply::Always(500));
    let blocked = api
        .create_endpoint(&app, json!({"url": failing, "fifo": true}))
        .await;
    let gate = Gate::closed();
    let held = receiver.url("held", Reply::Held(gate.clone()));
    let moving = api
        .create_endpoint(&app, json!({"url": held, "fifo": true}))
        .await;
    let plain_url = receiver.url("plain", Reply::Always(204));
    let plain = api.create_endpoint(&app, json!({"url": plain_url})).await;
    let first = api.send(&app, "order.created", json!({"n": 1})).await;
    api.send(&app, "order.created", json!({"n": 2})).await;

    let (link, _) = portal_link(&api, &hookline, &app).await;
    let browser = Browser::start().await;
    browser.goto(&link).await;
    browser.wait_text("li.endpoint", "Ordered (FIFO)").await;

    // The failing endpoint: its first message blocks the second.
    browser
        .goto(&format!("{base}/dashboard#/app/{app}/endpoint/{blocked}"))
        .await;
    browser.wait_text("main p", "Ordered delivery (FIFO)").await;
    let state = browser
        .wait_text("#fifo-line-state", "1 waiting.")
        .await
        .text()
        .await
        .expect("line text");
    assert!(
        state.contains(&format!("Blocked by {first} since attempt "))
            && state.contains(", next attempt "),
        "{state}"
    );
    browser.screenshot("endpoint-fifo-blocked-desktop").await;
    browser.click("#fifo-line-state a", &first).await;
    browser.wait_text("main", "\"n\": 1").await;

    // The held endpoint: its head is in flight, not failing; once the receiver answers,
    // the line empties.
    browser
        .goto(&format!("{base}/dashboard#/app/{app}/endpoint/{moving}"))
        .await;
    let state = browser
        .wait_text("#fifo-line-state", "2 messages in line")
        .await;
    let text = state.text().await.expect("line text");
    assert!(text.contains(&format!("delivering {first}")), "{text}");
    gate.open();
    browser
        .wait_text("#fifo-line-state", "The line is empty.")
        .await;

    // An ordinary endpoint has no line; the toggle makes it ordered.
    browser
        .goto(&format!("{base}/dashboard#/app/{app}/endpoint/{plain}"))
        .await;
    browser.wait_text("#attempt-log", "Succeeded").await;
    assert!(browser
        .client
        .find(fantoccini::Locator::Css("#fifo-line"))
        .await
        .is_err());
    browser.click("button", "Deliver in order (FIFO)").await;
    eventually("the confirmation", Duration::from_secs(20), || async {
        browser.client.accept_alert().await.ok()
    })
    .await;
    browser.wait_text("button", "Stop ordered delivery").await;
    browser
        .wait_text("#fifo-line-state", "The line is empty.")
        .await;
    let path = format!("/api/v1/app/{app}/endpoint/{plain}");
    assert_eq!(api.get(&path).await["fifo"], true);
    browser.close().await;
}

/// The endpoint page shows how deliveries reach the endpoint: its Ed25519 public key, the
/// client certificate it presents and the CAs it trusts, its OAuth2 client. It never shows
/// the secret key, the certificate's private key or the client secret, not even in the
/// page's source.
#[tokio::test]
async fn the_endpoint_page_shows_credentials_without_their_secrets() {
    const SECRET_KEY: &str = "whsk_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const PUBLIC_KEY: &str = "whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=";
    const CLIENT_SECRET: &str = "dash-client-secret-0b7e";
    let dir = tempfile::tempdir().expect("dir");
    let ca = hookline_net::testing::TestCa::new(dir.path(), "dash-ca");
    let client = ca.client("dash-client");
    let stack = Stack::new("dashreach");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let base = hookline.api_url.clone().expect("api url");
    let app = api.create_app("reach").await;
    let url = receiver.url("reach", Reply::Always(200));
    let endpoint = api
        .create_endpoint(&app, json!({"url": url, "secret": SECRET_KEY}))
        .await;
    let path = format!("/api/v1/app/{app}/endpoint/{endpoint}");
    let mtls = json!({"identity": client.identity_pem(), "serverCaCert": ca.certificate});
    let (status, body) = api
        .call(Method::PUT, &format!("{path}/mtls"), Some(&mtls), &[])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let oauth = json!({"grantType": "clientCredentials", "authMethod": "clientSecretBasic",
        "tokenUrl": "https://auth.example.com/oauth/token", "clientId": "dash",
        "clientSecret": CLIENT_SECRET, "scopes": ["webhooks.write"]});
    let (status, body) = api
        .call(Method::PUT, &format!("{path}/oauth"), Some(&oauth), &[])
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let (link, _) = portal_link(&api, &hookline, &app).await;
    let browser = Browser::start().await;
    browser.goto(&link).await;
    browser
        .goto(&format!("{base}/dashboard#/app/{app}/endpoint/{endpoint}"))
        .await;
    browser.wait_text("#signing", "Ed25519 · v1a").await;
    browser.wait_text("#secret-value", PUBLIC_KEY).await;
    browser.wait_text("#tls-subject", "CN=dash-client").await;
    browser
        .wait_text("#tls-trust", "1 custom CA certificate only")
        .await;
    browser
        .wait_text("#oauth-token-url", "https://auth.example.com/oauth/token")
        .await;
    browser.wait_text("#reach", "set (never shown)").await;
    browser.screenshot("endpoint-security-desktop").await;
    let source = browser.client.source().await.expect("source");
    let key_line = client.key.lines().nth(1).expect("a key line");
    for secret in [SECRET_KEY, CLIENT_SECRET, key_line] {
        assert!(
            !source.contains(secret),
            "the page shows a secret: {secret}"
        );
    }

    // Removing the OAuth2 client, after the confirmation.
    browser.click("#reach button", "Remove OAuth2 client").await;
    eventually("the confirmation", Duration::from_secs(20), || async {
        browser.client.accept_alert().await.ok()
    })
    .await;
    browser.wait_text("#oauth-none", "No OAuth2 client.").await;
    let (status, _) = api
        .call(Method::GET, &format!("{path}/oauth"), None, &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    browser.close().await;
}
