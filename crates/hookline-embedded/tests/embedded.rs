//! The embedded backend's own promises, through its public API: tasks handed out but not
//! acked come back when the database is opened again, one process owns a data dir,
//! records past their retention are deleted, tasks come out whole whether their bodies
//! waited in memory or on disk, and endpoints kept in memory follow every change.

use std::time::{Duration, Instant};

use hookline_core::model::{App, DeliveryTask, Endpoint, TriggerType};
use hookline_core::ports::{IdempotencyClaim, MessageStore, Registry, TaskPublisher, TaskSource};
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
        app_slot: false,
        held_since_ms: None,
        endpoint_version: None,
        queued_at_ms: None,
        in_line: false,
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

fn with_payload(n: u32, bytes: usize) -> DeliveryTask {
    let payload = serde_json::to_string(&"x".repeat(bytes)).expect("payload");
    DeliveryTask {
        payload: Some(serde_json::value::RawValue::from_string(payload).expect("raw")),
        ..task(n)
    }
}

#[tokio::test]
async fn tasks_come_out_whole_from_memory_or_disk_and_concurrent_acks_empty_the_queue() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, queue) = hookline_embedded::open(&config(&dir)).expect("open");
    // A body too large to wait in memory between small ones.
    let mut published = vec![with_payload(0, 100 * 1024)];
    published.extend((1..200).map(|n| with_payload(n, 100)));
    queue.publish(&published).await.expect("publish");
    let mut sources: Vec<_> = (0..4).map(|_| queue.source()).collect();
    let mut received = Vec::new();
    for n in 0..published.len() {
        let (_, task) = next_msg_id(&mut sources[n % 4]).await;
        received.push(task);
    }
    for (sent, got) in published.iter().zip(&received) {
        assert_eq!(got.task.msg_id, sent.msg_id);
        let payload = |t: &DeliveryTask| t.payload.as_ref().map(|p| p.get().to_owned());
        assert_eq!(payload(&got.task), payload(sent), "{}", sent.msg_id);
    }
    let acks: Vec<_> = received
        .into_iter()
        .map(|r| tokio::spawn(async move { r.acker.ack().await }))
        .collect();
    for ack in acks {
        ack.await.expect("ack task").expect("ack");
    }
    assert_eq!(queue.depth().await.expect("depth"), 0);
    store.flush().await.expect("flush");
    drop((store, queue, sources));
    let (_store, queue) = hookline_embedded::open(&config(&dir)).expect("reopen");
    assert_eq!(queue.depth().await.expect("depth"), 0, "the acks were kept");
}

#[tokio::test]
async fn a_requeued_task_comes_back_first_and_whole() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_store, queue) = hookline_embedded::open(&config(&dir)).expect("open");
    queue
        .publish(&[with_payload(1, 10), task(2)])
        .await
        .expect("publish");
    let mut source = queue.source();
    let (first, received) = next_msg_id(&mut source).await;
    assert_eq!(first, "msg_1");
    received.acker.requeue().await.expect("requeue");
    let (again, received) = next_msg_id(&mut source).await;
    assert_eq!(again, "msg_1");
    let payload = received.task.payload.as_ref().map(|p| p.get().to_owned());
    assert_eq!(payload.as_deref(), Some("\"xxxxxxxxxx\""));
}

fn endpoint(id: &str, uid: &str) -> Endpoint {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "appId": "app_1",
        "uid": uid,
        "url": "https://example.com/hook",
        "description": "",
        "eventTypes": null,
        "channels": null,
        "disabled": false,
        "metadata": {},
        "rateLimit": null,
        "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "createdAt": "2026-01-01T00:00:00Z",
        "updatedAt": "2026-01-01T00:00:00Z",
    }))
    .expect("endpoint")
}

#[tokio::test]
async fn endpoints_read_again_after_every_change() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, _queue) = hookline_embedded::open(&config(&dir)).expect("open");
    let first = endpoint("ep_1", "first");
    store.create_endpoint(&first, 10).await.expect("create");
    let by_uid = store.get_endpoint("app_1", "first").await.expect("get");
    assert_eq!(by_uid.as_ref(), Some(&first));
    assert_eq!(
        store.endpoints_of_app("app_1").await.expect("list"),
        std::slice::from_ref(&first)
    );

    let disabled = Endpoint {
        disabled: true,
        ..first.clone()
    };
    store
        .update_endpoint(&first, &disabled)
        .await
        .expect("update");
    for id_or_uid in ["ep_1", "first"] {
        let read = store.get_endpoint("app_1", id_or_uid).await.expect("get");
        assert_eq!(read.as_ref(), Some(&disabled), "{id_or_uid}");
    }
    assert_eq!(
        store.endpoints_of_app("app_1").await.expect("list"),
        std::slice::from_ref(&disabled)
    );

    let second = endpoint("ep_2", "second");
    store.create_endpoint(&second, 10).await.expect("create");
    assert_eq!(
        store.endpoints_of_app("app_1").await.expect("list").len(),
        2
    );
    store.delete_endpoint(&disabled).await.expect("delete");
    assert_eq!(
        store.get_endpoint("app_1", "ep_1").await.expect("get"),
        None
    );
    assert_eq!(
        store.endpoints_of_app("app_1").await.expect("list"),
        std::slice::from_ref(&second)
    );

    let app: App = serde_json::from_value(serde_json::json!({
        "id": "app_1",
        "uid": null,
        "name": "app",
        "metadata": {},
        "rateLimit": null,
        "createdAt": "2026-01-01T00:00:00Z",
        "updatedAt": "2026-01-01T00:00:00Z",
    }))
    .expect("app");
    store.create_app(&app).await.expect("create app");
    assert!(store
        .get_endpoint("app_1", "ep_2")
        .await
        .expect("get")
        .is_some());
    store.delete_app(&app).await.expect("delete app");
    assert_eq!(
        store.get_endpoint("app_1", "ep_2").await.expect("get"),
        None
    );
    assert!(store
        .endpoints_of_app("app_1")
        .await
        .expect("list")
        .is_empty());
}

/// Applications take turns: one application's 20,000 waiting tasks do not delay another's,
/// and a requeued task keeps its application's place.
#[tokio::test]
async fn a_flood_from_one_application_does_not_delay_another() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_store, queue) = hookline_embedded::open(&config(&dir)).expect("open");
    let flood: Vec<_> = (0..20_000)
        .map(|n| DeliveryTask {
            app_id: "app_flood".into(),
            ..task(n)
        })
        .collect();
    queue.publish(&flood).await.expect("flood");
    let quiet = DeliveryTask {
        app_id: "app_quiet".into(),
        ..task(99_999)
    };
    queue.publish(&[quiet]).await.expect("quiet");
    let mut source = queue.source();
    let (first, _a) = next_msg_id(&mut source).await;
    let (second, _b) = next_msg_id(&mut source).await;
    assert_eq!(first, "msg_0");
    assert_eq!(second, "msg_99999", "the quiet task is next, not 20,001st");
    let (third, given_back) = next_msg_id(&mut source).await;
    assert_eq!(third, "msg_1");
    given_back.acker.requeue().await.expect("requeue");
    let (again, _c) = next_msg_id(&mut source).await;
    assert_eq!(again, "msg_1", "a task given back is next in its line");
}
