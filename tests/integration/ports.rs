//! The store ports' atomic parts (schedule claims, leases, idempotency claims, the circuit)
//! under concurrency, checked on each adapter directly: Redis on 127.0.0.1 and the embedded
//! database in a temp dir.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hookline_core::model::{DeliveryTask, TriggerType};
use hookline_core::ports::{
    EndpointHealth, IdempotencyClaim, MessageStore, Registry, RetrySchedule,
};
use hookline_redis::{RedisConfig, RedisStore};
use rstest_reuse::apply;
use time::OffsetDateTime;

use crate::testkit::{backends, Backend};

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// The ports these tests exercise, as one object.
trait PortsUnderTest: RetrySchedule + MessageStore + EndpointHealth + Registry {}
impl<T: RetrySchedule + MessageStore + EndpointHealth + Registry> PortsUnderTest for T {}

/// A store of its own: a fresh Redis prefix, or a fresh embedded database.
struct Fresh {
    store: Arc<dyn PortsUnderTest>,
    redis: Option<RedisStore>,
    _data_dir: Option<tempfile::TempDir>,
}

impl Fresh {
    fn new(backend: Backend) -> Self {
        match backend {
            Backend::RabbitRedis | Backend::Clusters => {
                let url = if backend == Backend::Clusters {
                    crate::testkit::process::cluster_redis_urls()
                } else {
                    crate::testkit::process::redis_url()
                };
                let mut config = RedisConfig::new(url);
                config.cluster = backend == Backend::Clusters;
                config.prefix = format!(
                    "tstore{}-{}:",
                    std::process::id(),
                    SEQUENCE.fetch_add(1, Ordering::Relaxed)
                );
                let redis = RedisStore::connect(&config).expect("redis config");
                Self {
                    store: Arc::new(redis.clone()),
                    redis: Some(redis),
                    _data_dir: None,
                }
            }
            Backend::Embedded => {
                let dir = tempfile::tempdir().expect("temp dir");
                let (store, _queue) = hookline_embedded::open(&hookline_embedded::EmbeddedConfig {
                    data_dir: dir.path().to_owned(),
                    main_key: None,
                })
                .expect("embedded store");
                Self {
                    store: Arc::new(store),
                    redis: None,
                    _data_dir: Some(dir),
                }
            }
        }
    }

    /// Removes the Redis keys (the embedded database goes with its temp dir).
    async fn cleanup(self) {
        if let Some(redis) = self.redis {
            redis.delete_all().await.expect("cleanup");
        }
    }
}

fn task(n: u32) -> DeliveryTask {
    DeliveryTask {
        msg_id: format!("msg_{n}"),
        app_id: "app_1".into(),
        endpoint_id: "ep_1".into(),
        attempt: 2,
        trigger: TriggerType::Scheduled,
        event_type: String::new(),
        payload: None,
        traceparent: None,
        rate_slot: false,
    }
}

#[apply(backends)]
#[tokio::test]
async fn only_due_tasks_are_claimed_and_completed_ones_are_gone(#[case] backend: Backend) {
    let store = Fresh::new(backend);
    let now = OffsetDateTime::now_utc();
    store
        .store
        .schedule(&task(1), now - Duration::from_secs(1))
        .await
        .expect("schedule");
    store
        .store
        .schedule(&task(2), now + Duration::from_secs(60))
        .await
        .expect("schedule");
    assert_eq!(store.store.backlog().await.expect("backlog"), 2);

    let claimed = store.store.claim_due(now, 10_000, 10).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].task.msg_id, "msg_1");
    let next = store
        .store
        .next_due()
        .await
        .expect("next due")
        .expect("one waiting");
    assert!(next > now, "the future task is next");

    store
        .store
        .complete(&[claimed[0].key.clone()])
        .await
        .expect("complete");
    assert_eq!(store.store.backlog().await.expect("backlog"), 1);
    let later = store
        .store
        .claim_due(now + Duration::from_secs(3600), 10_000, 10)
        .await
        .expect("claim");
    let ids: Vec<_> = later.iter().map(|c| c.task.msg_id.as_str()).collect();
    assert_eq!(ids, ["msg_2"], "the completed task never comes back");
    store.cleanup().await;
}

#[apply(backends)]
#[tokio::test]
async fn an_expired_lease_makes_the_task_due_again(#[case] backend: Backend) {
    let store = Fresh::new(backend);
    let now = OffsetDateTime::now_utc();
    store.store.schedule(&task(7), now).await.expect("schedule");
    let first = store.store.claim_due(now, 500, 10).await.expect("claim");
    assert_eq!(first.len(), 1);
    // Within the lease, nobody else gets it...
    let during = store
        .store
        .claim_due(now + Duration::from_millis(400), 500, 10)
        .await
        .expect("claim");
    assert!(during.is_empty());
    // ...after it, the next claim takes it over (the first claimer died).
    let after = store
        .store
        .claim_due(now + Duration::from_millis(600), 500, 10)
        .await
        .expect("claim");
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].key, first[0].key);
    store.cleanup().await;
}

#[apply(backends)]
#[tokio::test]
async fn concurrent_schedulers_never_claim_the_same_task(#[case] backend: Backend) {
    let store = Fresh::new(backend);
    let now = OffsetDateTime::now_utc();
    for n in 0..1_000 {
        store.store.schedule(&task(n), now).await.expect("schedule");
    }
    let claimers = (0..8).map(|_| {
        let store = store.store.clone();
        async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.claim_due(now, 60_000, 37).await.expect("claim");
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|c| c.key));
            }
        }
    });
    let results = futures::future::join_all(claimers).await;
    let all: Vec<&String> = results.iter().flatten().collect();
    let distinct: HashSet<&String> = all.iter().copied().collect();
    assert_eq!(all.len(), 1_000, "every task claimed");
    assert_eq!(distinct.len(), 1_000, "no task claimed twice");
    store.cleanup().await;
}

#[apply(backends)]
#[tokio::test]
async fn one_of_many_concurrent_idempotency_claims_wins(#[case] backend: Backend) {
    let store = Fresh::new(backend);
    let keys = vec!["idem:k1".to_owned(), "eventid:e1".to_owned()];
    let claims = (0..20).map(|i| {
        let store = store.store.clone();
        let keys = keys.clone();
        async move {
            store
                .claim_idempotency("app_1", &keys, &format!("owner{i}"), 10_000, 60)
                .await
                .expect("claim")
        }
    });
    let results = futures::future::join_all(claims).await;
    let winners = results
        .iter()
        .filter(|c| **c == IdempotencyClaim::Claimed)
        .count();
    assert_eq!(winners, 1);
    assert!(results
        .iter()
        .all(|c| matches!(c, IdempotencyClaim::Claimed | IdempotencyClaim::InProgress)));

    store
        .store
        .complete_idempotency("app_1", &keys, "{\"id\":\"msg_1\"}", 60)
        .await
        .expect("complete");
    // A later request sharing either key gets the stored answer.
    let later = store
        .store
        .claim_idempotency("app_1", &["eventid:e1".to_owned()], "late", 10_000, 60)
        .await
        .expect("claim");
    assert_eq!(later, IdempotencyClaim::Done("{\"id\":\"msg_1\"}".into()));
    store.cleanup().await;
}

/// A task scheduled again while its claim is in flight (a deferral of the attempt the claim
/// carried) survives the claim's completion.
#[apply(backends)]
#[tokio::test]
async fn rescheduling_during_a_claim_is_not_lost_when_the_claim_completes(
    #[case] backend: Backend,
) {
    let store = Fresh::new(backend);
    let now = OffsetDateTime::now_utc();
    store.store.schedule(&task(9), now).await.expect("schedule");
    let claimed = store.store.claim_due(now, 10_000, 10).await.expect("claim");
    assert_eq!(claimed.len(), 1);
    // The dispatcher defers the same attempt to a later slot before the scheduler completes.
    let later = now + Duration::from_millis(50);
    store
        .store
        .schedule(&task(9), later)
        .await
        .expect("reschedule");
    store
        .store
        .complete(&[claimed[0].key.clone()])
        .await
        .expect("complete");
    let again = store
        .store
        .claim_due(later, 10_000, 10)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1, "the deferral survived the completion");
    store
        .store
        .complete(&[again[0].key.clone()])
        .await
        .expect("complete");
    assert_eq!(store.store.backlog().await.expect("backlog"), 0);
    store.cleanup().await;
}

/// The circuit opens at the threshold, lets exactly one probe through after the open
/// period, and closes on a success; the open-circuits gauge follows the circuit both ways
/// (only a success that closes an opened circuit removes it from the set).
#[apply(backends)]
#[tokio::test]
async fn the_circuit_opens_probes_once_and_closes_on_success(#[case] backend: Backend) {
    use hookline_core::ports::Gate;

    let store = Fresh::new(backend);
    let now = OffsetDateTime::now_utc();
    let open_for = Duration::from_millis(100);
    let probe_ttl = Duration::from_secs(5);
    let gate = |at| store.store.gate("app_1", "ep_1", at, probe_ttl);
    assert_eq!(gate(now).await.expect("gate"), Gate::Closed);
    for n in 1..=3 {
        let streak = store
            .store
            .record("app_1", "ep_1", false, now, 3, open_for)
            .await
            .expect("record");
        assert_eq!(streak.consecutive, n);
        assert!(streak.failing_since.is_some());
        if n < 3 {
            assert_eq!(gate(now).await.expect("gate"), Gate::Closed);
            assert_eq!(store.store.open_circuits().await.expect("gauge"), 0);
        }
    }
    assert_eq!(store.store.open_circuits().await.expect("gauge"), 1);
    assert_eq!(
        store
            .store
            .gate("app_1", "ep_1", now, probe_ttl)
            .await
            .expect("gate"),
        Gate::Open
    );
    let later = now + Duration::from_millis(150);
    assert_eq!(
        store
            .store
            .gate("app_1", "ep_1", later, probe_ttl)
            .await
            .expect("gate"),
        Gate::Probe
    );
    assert_eq!(
        store
            .store
            .gate("app_1", "ep_1", later, probe_ttl)
            .await
            .expect("gate"),
        Gate::Open,
        "one probe at a time"
    );
    let streak = store
        .store
        .record("app_1", "ep_1", true, later, 3, open_for)
        .await
        .expect("record");
    assert_eq!((streak.consecutive, streak.failing_since), (0, None));
    assert_eq!(gate(later).await.expect("gate"), Gate::Closed);
    assert_eq!(store.store.open_circuits().await.expect("gauge"), 0);
    store.cleanup().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_deferred_resend_does_not_replace_the_pending_retry_of_the_same_attempt(
    #[case] backend: Backend,
) {
    let store = Fresh::new(backend);
    let now = OffsetDateTime::now_utc();
    let retry = task(7);
    let resend = DeliveryTask {
        trigger: TriggerType::Manual,
        ..task(7)
    };
    let due = now - Duration::from_secs(1);
    store
        .store
        .schedule(&retry, due)
        .await
        .expect("schedule retry");
    store
        .store
        .schedule(&resend, due)
        .await
        .expect("defer resend");
    let claimed = store.store.claim_due(now, 10_000, 10).await.expect("claim");
    let mut triggers: Vec<_> = claimed.iter().map(|c| c.task.trigger).collect();
    triggers.sort_by_key(|t| t.code());
    assert_eq!(triggers, [TriggerType::Scheduled, TriggerType::Manual]);
    store.cleanup().await;
}

/// A claim whose lease ran out is adopted with its owner's message id (a retry then finishes
/// that message instead of creating a second one); the adopter holds a new lease.
#[apply(backends)]
#[tokio::test]
async fn an_expired_idempotency_claim_is_adopted_with_its_message_id(#[case] backend: Backend) {
    let store = Fresh::new(backend);
    let keys = vec!["idem:k1".to_owned()];
    let first = store
        .store
        .claim_idempotency("app_1", &keys, "msg_first", 100, 60)
        .await
        .expect("claim");
    assert_eq!(first, IdempotencyClaim::Claimed);
    let adopted =
        crate::testkit::eventually("the lease to run out", Duration::from_secs(5), || {
            let store = store.store.clone();
            let keys = keys.clone();
            async move {
                match store
                    .claim_idempotency("app_1", &keys, "msg_retry", 10_000, 60)
                    .await
                    .expect("claim")
                {
                    IdempotencyClaim::InProgress => None,
                    other => Some(other),
                }
            }
        })
        .await;
    assert_eq!(adopted, IdempotencyClaim::Adopted("msg_first".into()));
    let third = store
        .store
        .claim_idempotency("app_1", &keys, "msg_third", 10_000, 60)
        .await
        .expect("claim");
    assert_eq!(
        third,
        IdempotencyClaim::InProgress,
        "the adopter holds a lease"
    );
    store.cleanup().await;
}

/// A message stored unconfirmed is in the outbox until confirmed; a sweep takes it only
/// after its lease, and one sweeper's take hides it from the next until that lease ends.
#[apply(backends)]
#[tokio::test]
async fn an_unconfirmed_message_is_swept_after_its_lease_and_confirming_clears_it(
    #[case] backend: Backend,
) {
    let store = Fresh::new(backend);
    let now = OffsetDateTime::now_utc();
    let app = hookline_core::model::App {
        id: "app_outbox".into(),
        uid: None,
        name: "outbox".into(),
        metadata: Default::default(),
        rate_limit: None,
        created_at: now,
        updated_at: now,
    };
    store.store.create_app(&app).await.expect("app");
    let message = |id: &str| hookline_core::model::Message {
        id: id.into(),
        app_id: app.id.clone(),
        event_type: hookline_core::names::EventTypeName::parse("order.created").expect("name"),
        event_id: None,
        channels: None,
        payload: serde_json::value::RawValue::from_string("{}".into()).expect("payload"),
        timestamp: now,
    };
    let eps = ["ep_1".to_owned()];
    let (m1, m2) = (message("msg_a"), message("msg_b"));
    store
        .store
        .insert_unconfirmed(&m1, &eps, 3600, None, 0)
        .await
        .expect("insert");
    store
        .store
        .insert_unconfirmed(&m2, &eps, 3600, None, 60_000)
        .await
        .expect("insert");
    let swept = store
        .store
        .claim_unconfirmed(60_000, 10)
        .await
        .expect("sweep");
    let ids: Vec<_> = swept.iter().map(|u| u.msg_id.as_str()).collect();
    assert_eq!(ids, ["msg_a"], "only the mark whose lease ended");
    let again = store
        .store
        .claim_unconfirmed(60_000, 10)
        .await
        .expect("sweep");
    assert!(again.is_empty(), "a taken mark is leased: {again:?}");
    assert!(store
        .store
        .unconfirmed(&app.id, "msg_b")
        .await
        .expect("read")
        .is_some());
    store
        .store
        .confirm_message(&app.id, "msg_b", &["idem:b".to_owned()], "{}", 60)
        .await
        .expect("confirm");
    assert!(store
        .store
        .unconfirmed(&app.id, "msg_b")
        .await
        .expect("read")
        .is_none());
    let done = store
        .store
        .claim_idempotency(&app.id, &["idem:b".to_owned()], "x", 10_000, 60)
        .await
        .expect("claim");
    assert_eq!(
        done,
        IdempotencyClaim::Done("{}".into()),
        "confirm recorded the answer"
    );
    store.cleanup().await;
}

/// `schedule_all` stores every task of a message in one write.
#[apply(backends)]
#[tokio::test]
async fn schedule_all_stores_every_task(#[case] backend: Backend) {
    let store = Fresh::new(backend);
    let tasks: Vec<_> = (0..50).map(task).collect();
    let due = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    store
        .store
        .schedule_all(&tasks, due)
        .await
        .expect("schedule");
    assert_eq!(store.store.backlog().await.expect("backlog"), 50);
    let claimed = store
        .store
        .claim_due(OffsetDateTime::now_utc(), 10_000, 100)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 50);
    store.cleanup().await;
}
