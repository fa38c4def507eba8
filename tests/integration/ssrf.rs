//! SSRF: endpoint URLs that reach the platform's own network are refused when saved, and a
//! name that turns into loopback after it was saved is refused at connect time.

use std::net::Ipv4Addr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::testkit::dns::TestDns;
use crate::testkit::{backends, eventually, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

#[apply(backends)]
#[tokio::test]
async fn internal_endpoint_urls_are_refused_when_saved(#[case] backend: Backend) {
    let stack = Stack::on(backend, "ssrf").with("HOOKLINE__DELIVERY__ALLOWED_SUBNETS", "");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let app = api.create_app("ssrf-app").await;
    let path = format!("/api/v1/app/{app}/endpoint");
    let port = hookline
        .api_url
        .as_deref()
        .and_then(|u| u.rsplit(':').next())
        .expect("port")
        .to_owned();
    let refused = [
        "http://10.0.0.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://[::1]/".to_owned(),
        "http://0.0.0.0/".to_owned(),
        "http://[::ffff:127.0.0.1]/".to_owned(),
        format!("http://localhost:{port}/"),
        "http://192.168.0.10:8080/hook".to_owned(),
        "http://[fd12::1]/".to_owned(),
    ];
    for url in &refused {
        let (status, error) = api
            .call(Method::POST, &path, Some(&json!({"url": url})), &[])
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {error}");
        assert!(
            error["detail"].to_string().contains("url"),
            "{url}: {error}"
        );
    }
    // An update cannot smuggle one in either.
    let endpoint = api
        .create_endpoint(&app, json!({"url": "https://example.com/hook"}))
        .await;
    let (status, error) = api
        .call(
            Method::PATCH,
            &format!("{path}/{endpoint}"),
            Some(&json!({"url": "http://127.0.0.1:9/"})),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    let listed = api.get(&path).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
}

#[apply(backends)]
#[tokio::test]
async fn a_name_rebound_to_loopback_is_refused_at_connect_time(#[case] backend: Backend) {
    let dns = TestDns::start(Ipv4Addr::new(93, 184, 216, 34)).await;
    let stack = Stack::on(backend, "rebind")
        .with("HOOKLINE__DELIVERY__ALLOWED_SUBNETS", "")
        .with("HOOKLINE__DELIVERY__DNS_SERVER", &dns.addr.to_string())
        .with("HOOKLINE__DELIVERY__RETRY_SCHEDULE_MS", "50")
        .with("HOOKLINE__DELIVERY__RETRY_JITTER", "0");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let receiver_port = receiver.base.rsplit(':').next().expect("port").to_owned();
    receiver.url("sink", Reply::Always(200));
    let app = api.create_app("rebind-app").await;

    // Public when saved...
    let url = format!("http://rebind.hookline.test:{receiver_port}/sink");
    let endpoint = api.create_endpoint(&app, json!({"url": url})).await;
    // ...loopback when delivered.
    dns.answer_with(Ipv4Addr::LOCALHOST);
    let msg = api
        .send(&app, "invoice.paid", json!({"secret": "internal"}))
        .await;

    let destination = eventually("both attempts refused", Duration::from_secs(20), || async {
        let d = api.destination(&app, &msg, &endpoint).await?;
        (d["status"] == 2).then_some(d)
    })
    .await;
    assert_eq!(destination["attempts"], 2);
    let attempts = api.attempts_of_message(&app, &msg).await;
    assert_eq!(attempts.len(), 2);
    for attempt in &attempts {
        assert_eq!(attempt["errorKind"], "blocked", "{attempt}");
        assert_eq!(attempt["responseStatusCode"], 0);
    }
    assert_eq!(
        receiver.count("sink"),
        0,
        "nothing reached the loopback receiver"
    );
}
