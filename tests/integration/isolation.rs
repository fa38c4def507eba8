//! One slow endpoint must not hold up the others: it gets at most
//! `delivery.max_in_flight_per_endpoint` workers, its other tasks wait in the schedule, and
//! every delivery still arrives.

use std::time::Duration;

use serde_json::json;

use crate::testkit::{eventually, Receiver, Reply, Role, Stack};

#[tokio::test]
async fn a_slow_endpoint_holds_at_most_its_share_of_workers() {
    const MESSAGES: usize = 12;
    let stack = Stack::new("isolation")
        .with("HOOKLINE__DELIVERY__CONCURRENCY", "6")
        .with("HOOKLINE__DELIVERY__MAX_IN_FLIGHT_PER_ENDPOINT", "2");
    let hookline = stack.start(Role::Serve).await;
    let api = stack.api(&hookline);
    let receiver = Receiver::start().await;
    let app = api.create_app("isolation-app").await;
    let slow = receiver.url("slow", Reply::Slow(Duration::from_secs(2)));
    let fast = receiver.url("fast", Reply::Always(200));
    api.create_endpoint(&app, json!({"url": slow})).await;
    api.create_endpoint(&app, json!({"url": fast})).await;
    api.send_many(&app, "invoice.paid", MESSAGES).await;

    // Without the cap the six workers fill with slow deliveries and the fast endpoint waits
    // for them: it could not have everything before six slow ones completed. With it, slow
    // deliveries complete two every two seconds, far fewer by the time the fast ones are in.
    let slow_done = eventually("every fast delivery", Duration::from_secs(30), || async {
        (receiver.count("fast") == MESSAGES).then(|| receiver.completed("slow").len())
    })
    .await;
    assert!(
        slow_done < 6,
        "the fast endpoint waited for {slow_done} slow deliveries"
    );
    assert!(
        receiver.deliveries("slow").len() <= 2 + slow_done,
        "at most two slow deliveries in flight at once"
    );

    // Held back is not dropped: every slow delivery arrives too, never more than two at once.
    eventually("every slow delivery", Duration::from_secs(60), || async {
        (receiver.completed("slow").len() >= MESSAGES).then_some(())
    })
    .await;
    let ops = hookline.ops_url().await;
    let metrics = reqwest::get(format!("{ops}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    let deferrals = metrics
        .lines()
        .find_map(|l| l.strip_prefix("hookline_busy_endpoint_deferrals_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(
        deferrals > 0.0,
        "the busy endpoint's tasks were deferred: {deferrals}"
    );
}
