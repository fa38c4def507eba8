//! Embedded mode's own promises: a first start that needs nothing configured, and `kill -9`
//! of the whole process losing nothing. (Its API and delivery behaviour is checked by the
//! conformance tests, which run on both backends.)

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;

use crate::testkit::receiver::assert_duplicates_identical;
use crate::testkit::{eventually, Api, Backend, Receiver, Reply, Role, Stack};

/// With no admin token configured, the first start generates one, keeps it in the data dir
/// and prints it once; the next start uses the same token and does not print it.
#[tokio::test]
async fn first_start_generates_an_admin_token_and_prints_it_once() {
    let stack = Stack::on(Backend::Embedded, "firsttoken").without("HOOKLINE__AUTH__ADMIN_TOKENS");
    let data_dir = stack.data_dir().expect("embedded").to_owned();
    let mut first = stack.start(Role::Serve).await;
    let token = std::fs::read_to_string(data_dir.join("admin-token"))
        .expect("the token is kept in the data dir")
        .trim()
        .to_owned();
    let printed = first.stdout();
    assert!(printed.contains(&token), "printed once: {printed}");
    assert!(
        printed.contains(&format!("export HOOKLINE_TOKEN={token}")),
        "with a ready-to-paste example: {printed}"
    );
    let api = Api::new(first.api_url.as_deref().expect("api"), &token);
    let app = api.create_app("first-token").await;
    first.kill9().await;

    let second = stack.start(Role::Serve).await;
    let printed = second.stdout();
    assert!(!printed.contains(&token), "not printed again: {printed}");
    let api = Api::new(second.api_url.as_deref().expect("api"), &token);
    assert_eq!(api.get(&format!("/api/v1/app/{app}")).await["id"], app);
    let (status, _) = Api::new(
        second.api_url.as_deref().expect("api"),
        "not-the-token-at-all",
    )
    .call(reqwest::Method::GET, "/api/v1/app", None, &[])
    .await;
    assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED);
}

/// Must-show 2 of the embedded issue: `kill -9` of `hookline serve` with 2,000 messages in
/// flight, then a restart on the same data dir. Every message arrives at least once, a
/// duplicate carries the same `webhook-id` and body, and the database reads back whole.
#[tokio::test]
async fn kill_serve_mid_run_loses_no_message() {
    const MESSAGES: usize = 2_000;
    let stack = Stack::on(Backend::Embedded, "killserve")
        .with("HOOKLINE__DELIVERY__CONCURRENCY", "16")
        .with("HOOKLINE__DELIVERY__MAX_IN_FLIGHT_PER_ENDPOINT", "16");
    let mut hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("kill-serve").await;
    // 16 at a time at 100 ms each: about 160 deliveries a second, so most of the 2,000 are
    // still queued or in flight when the kill lands.
    let url = receiver.url("sink", Reply::Slow(Duration::from_millis(100)));
    api.create_endpoint(&app, json!({"url": url})).await;

    let sent: HashSet<String> = api
        .send_many(&app, "order.created", MESSAGES)
        .await
        .into_iter()
        .collect();
    assert_eq!(sent.len(), MESSAGES);
    eventually("deliveries under way", Duration::from_secs(60), || async {
        (receiver.count("sink") >= 300).then_some(())
    })
    .await;
    hookline.kill9().await;
    let killed_at = receiver.count("sink");
    assert!(
        killed_at < MESSAGES,
        "the kill landed before everything was delivered ({killed_at})"
    );

    let restarted = stack.start(Role::Serve).await;
    let seen = receiver
        .await_all("sink", &sent, Duration::from_secs(120))
        .await;
    assert_duplicates_identical(&seen, &sent);

    // No corruption: every accepted message reads back through the API after the crash.
    let api = stack.api(&restarted);
    let mut listed = HashSet::new();
    let mut iterator: Option<String> = None;
    loop {
        let path = match &iterator {
            Some(after) => format!("/api/v1/app/{app}/msg?limit=250&iterator={after}"),
            None => format!("/api/v1/app/{app}/msg?limit=250"),
        };
        let page = api.get(&path).await;
        for message in page["data"].as_array().expect("data") {
            listed.insert(message["id"].as_str().expect("id").to_owned());
        }
        if page["done"] == true {
            break;
        }
        iterator = page["iterator"].as_str().map(str::to_owned);
    }
    assert_eq!(listed, sent, "the message list after the restart");
    println!(
        "killed serve after {killed_at} deliveries; {} deliveries for {MESSAGES} messages ({} duplicates)",
        seen.len(),
        seen.len() - MESSAGES
    );
}
