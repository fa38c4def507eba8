//! Must-show 8: event type filters and disabled endpoints.

use std::time::Duration;

use serde_json::json;

use crate::testkit::{backends, eventually, Backend, Receiver, Reply, Role, Stack};
use rstest_reuse::apply;

#[apply(backends)]
#[tokio::test]
async fn filtered_and_disabled_endpoints_receive_only_what_they_subscribed_to(
    #[case] backend: Backend,
) {
    let stack = Stack::on(backend, "filters");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("filters-app").await;

    let everything = receiver.url("everything", Reply::Always(200));
    let paid_only = receiver.url("paid-only", Reply::Always(200));
    let disabled = receiver.url("disabled", Reply::Always(200));
    let all_ep = api.create_endpoint(&app, json!({"url": everything})).await;
    let paid_ep = api
        .create_endpoint(
            &app,
            json!({"url": paid_only, "filterTypes": ["invoice.paid"]}),
        )
        .await;
    let disabled_ep = api
        .create_endpoint(&app, json!({"url": disabled, "disabled": true}))
        .await;

    let created = api.send(&app, "customer.created", json!({"c": 1})).await;
    let paid = api.send(&app, "invoice.paid", json!({"p": 1})).await;

    eventually(
        "both messages at the catch-all endpoint",
        Duration::from_secs(20),
        || async {
            (receiver.count("everything") == 2 && receiver.count("paid-only") == 1).then_some(())
        },
    )
    .await;

    // Ingest fanned out only to subscribed, enabled endpoints...
    let created_to: Vec<_> = destination_ids(&api, &app, &created).await;
    let paid_to: Vec<_> = destination_ids(&api, &app, &paid).await;
    assert_eq!(created_to, vec![all_ep.clone()]);
    let mut expected = vec![all_ep.clone(), paid_ep.clone()];
    expected.sort();
    assert_eq!(paid_to, expected);
    // ...so the filtered endpoint saw only invoice.paid and the disabled one nothing.
    let paid_seen = receiver.deliveries("paid-only");
    assert_eq!(paid_seen.len(), 1);
    assert_eq!(paid_seen[0].webhook_id(), paid);
    assert_eq!(receiver.count("disabled"), 0);
    let disabled_attempts = api
        .get(&format!("/api/v1/app/{app}/attempt/endpoint/{disabled_ep}"))
        .await;
    assert_eq!(disabled_attempts["data"], json!([]));
}

async fn destination_ids(api: &crate::testkit::Api, app: &str, msg: &str) -> Vec<String> {
    let page = api
        .get(&format!("/api/v1/app/{app}/msg/{msg}/endpoint"))
        .await;
    let mut ids: Vec<String> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|d| d["id"].as_str().expect("id").to_owned())
        .collect();
    ids.sort();
    ids
}
