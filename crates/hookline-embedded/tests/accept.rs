//! Accepting a message in one write ([`MessageStore::accept_and_enqueue`]): the message,
//! its pending destinations, its tasks and the response under its idempotency keys are all
//! there together, with no outbox mark, and all of it is still there when the database is
//! opened again.

use std::time::Duration;

use hookline_core::model::{DeliveryTask, Message, MessageStatus, TriggerType};
use hookline_core::names::EventTypeName;
use hookline_core::ports::{AcceptedMessage, IdempotencyClaim, MessageStore, TaskSource};
use hookline_embedded::{EmbeddedConfig, EmbeddedStore};
use serde_json::value::RawValue;
use time::OffsetDateTime;

const APP: &str = "app_1";
const RESPONSE: &str = "{\"id\":\"msg_1\"}";

fn config(dir: &tempfile::TempDir) -> EmbeddedConfig {
    EmbeddedConfig {
        data_dir: dir.path().to_owned(),
        main_key: None,
    }
}

fn message() -> Message {
    Message {
        id: "msg_1".into(),
        app_id: APP.into(),
        event_type: EventTypeName::parse("order.created").expect("name"),
        event_id: None,
        channels: None,
        tags: None,
        payload: RawValue::from_string("{\"n\":1}".into()).expect("payload"),
        timestamp: OffsetDateTime::now_utc(),
        deliver_at: None,
    }
}

fn accepted(keys: &[&str]) -> AcceptedMessage {
    let message = message();
    let endpoint_ids = vec!["ep_1".to_owned(), "ep_2".to_owned()];
    let tasks = endpoint_ids
        .iter()
        .map(|ep| DeliveryTask::for_message(&message, ep, 1, TriggerType::Scheduled))
        .collect();
    AcceptedMessage {
        message,
        endpoint_ids,
        retention_secs: 3600,
        tasks,
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        response: RESPONSE.into(),
        ttl_secs: 3600,
    }
}

/// The endpoints of the next `n` tasks the source hands out, sorted, each for `msg_1`.
async fn next_endpoints(source: &mut dyn TaskSource, n: usize) -> Vec<String> {
    let mut endpoints = Vec::new();
    for _ in 0..n {
        let received = tokio::time::timeout(Duration::from_secs(5), source.next())
            .await
            .expect("a task within 5 s")
            .expect("the source is open");
        assert_eq!(received.task.msg_id, "msg_1");
        assert_eq!(
            received.task.payload.as_ref().map(|p| p.get()),
            Some("{\"n\":1}")
        );
        endpoints.push(received.task.endpoint_id);
    }
    endpoints.sort();
    endpoints
}

/// What one write must leave: the message, a pending destination per endpoint, no outbox
/// mark, and the response under the key (a retry of the request gets it).
async fn assert_accepted(store: &EmbeddedStore, keys: &[String]) {
    let stored = store.get_message(APP, "msg_1").await.expect("read");
    assert_eq!(
        stored.map(|m| m.payload.get().to_owned()).as_deref(),
        Some("{\"n\":1}")
    );
    let destinations = store.destinations(APP, "msg_1").await.expect("read");
    let mut pending: Vec<_> = destinations
        .iter()
        .filter(|d| d.status == MessageStatus::Pending && d.attempts == 0)
        .map(|d| d.endpoint_id.clone())
        .collect();
    pending.sort();
    assert_eq!(pending, ["ep_1", "ep_2"]);
    assert_eq!(store.unconfirmed(APP, "msg_1").await.expect("read"), None);
    let response = store
        .idempotent_response(APP, &keys[0])
        .await
        .expect("read");
    assert_eq!(response.as_deref(), Some(RESPONSE));
    let retry = store
        .claim_idempotency(APP, keys, "a retry", 10_000, 60)
        .await
        .expect("claim");
    assert_eq!(retry, IdempotencyClaim::Done(RESPONSE.into()));
}

#[tokio::test]
async fn accept_and_enqueue_writes_message_tasks_and_response_together_and_durably() {
    let dir = tempfile::tempdir().expect("temp dir");
    let item = accepted(&["idem:k1"]);
    {
        let (store, queue) = hookline_embedded::open(&config(&dir)).expect("open");
        // As the accept path does: the key is claimed before the message is written.
        let claim = store
            .claim_idempotency(APP, &item.keys, "msg_1", 10_000, 60)
            .await
            .expect("claim");
        assert_eq!(claim, IdempotencyClaim::Claimed);
        let written = store.accept_and_enqueue(&item).await.expect("accept");
        assert_eq!(written, Some(()), "the embedded store writes it in one go");
        assert_accepted(&store, &item.keys).await;
        assert_eq!(queue.depth().await.expect("depth"), 2);
        // Ready at once, handed out from memory; never acked, so still queued.
        let mut source = queue.source();
        assert_eq!(next_endpoints(&mut source, 2).await, ["ep_1", "ep_2"]);
    }
    let (store, queue) = hookline_embedded::open(&config(&dir)).expect("reopen");
    assert_accepted(&store, &item.keys).await;
    assert_eq!(queue.depth().await.expect("depth"), 2);
    let mut source = queue.source();
    assert_eq!(next_endpoints(&mut source, 2).await, ["ep_1", "ep_2"]);
}
