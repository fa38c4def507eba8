//! The embedded backend's own promises, through its public API: tasks handed out but not
//! acked come back when the database is opened again, one process owns a data dir, and
//! records past their retention are deleted.

use std::time::{Duration, Instant};

use hookline_core::model::{DeliveryTask, TriggerType};
use hookline_core::ports::{IdempotencyClaim, MessageStore, TaskPublisher, TaskSource};
use hookline_embedded::EmbeddedConfig;

fn config(dir: &tempfile::TempDir) -> EmbeddedConfig {
    EmbeddedConfig {
        data_dir: dir.path().to_owned(),
        main_key: None,
    }
}

fn task(n: u32) -> DeliveryTask {
    DeliveryTask {
        msg_id: format!("msg_{n}"),
        app_id: "app_1".into(),
        endpoint_id: "ep_1".into(),
        attempt: 1,
        trigger: TriggerType::Scheduled,
        event_type: "order.created".into(),
        payload: None,
        traceparent: None,
        rate_slot: false,
        held_since_ms: None,
        endpoint_version: None,
    }
}

async fn next_msg_id(source: &mut dyn TaskSource) -> (String, hookline_core::ports::ReceivedTask) {
    let received = tokio::time::timeout(Duration::from_secs(5), source.next())
        .await
        .expect("a task within 5 s")
        .expect("the source is open");
    (received.task.msg_id.clone(), received)
}

#[tokio::test]
async fn tasks_handed_out_but_not_acked_come_back_after_reopening() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let (store, queue) = hookline_embedded::open(&config(&dir)).expect("open");
        queue
            .publish(&[task(1), task(2), task(3)])
            .await
            .expect("publish");
        let mut source = queue.source();
        let (first, acked) = next_msg_id(&mut source).await;
        assert_eq!(first, "msg_1");
        acked.acker.ack().await.expect("ack");
        let (second, _held) = next_msg_id(&mut source).await;
        assert_eq!(second, "msg_2");
        // The process "dies" holding msg_2 unacked and msg_3 never handed out.
        store.flush().await.expect("flush");
    }
    // Dropping the last handle closed the database, so it opens again at once.
    let (_store, queue) = hookline_embedded::open(&config(&dir)).expect("reopen");
    assert_eq!(queue.depth().await.expect("depth"), 2);
    let mut source = queue.source();
    let (a, _) = next_msg_id(&mut source).await;
    let (b, _) = next_msg_id(&mut source).await;
    assert_eq!((a.as_str(), b.as_str()), ("msg_2", "msg_3"));
}

#[tokio::test]
async fn a_second_open_of_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let _first = hookline_embedded::open(&config(&dir)).expect("open");
    let second = hookline_embedded::open(&config(&dir));
    assert!(second.is_err(), "two owners of one database");
}

#[tokio::test]
async fn records_past_their_retention_are_deleted_by_the_janitor() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _queue) = hookline_embedded::open(&config(&dir)).expect("open");
    let keys = vec!["idem:k1".to_owned()];
    let claim = store
        .claim_idempotency("app_1", &keys, "owner", 10_000, 60)
        .await
        .expect("claim");
    assert_eq!(claim, IdempotencyClaim::Claimed);
    store
        .complete_idempotency("app_1", &keys, "{\"id\":\"msg_1\"}", 1)
        .await
        .expect("complete");
    assert_eq!(store.expire().await.expect("expire"), 0, "nothing due yet");
    // The key is remembered for one second, then the janitor deletes it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut removed = 0;
    while removed == 0 {
        assert!(Instant::now() < deadline, "the record never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
        removed = store.expire().await.expect("expire");
    }
    let again = store
        .claim_idempotency("app_1", &keys, "later", 10_000, 60)
        .await
        .expect("claim");
    assert_eq!(again, IdempotencyClaim::Claimed, "the key was forgotten");
}
