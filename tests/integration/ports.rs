//! The store ports' atomic parts (schedule claims, leases, idempotency claims, the circuit,
//! rate limits) under concurrency, checked on each adapter directly: Redis on 127.0.0.1 and
//! the embedded database in a temp dir.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hookline_core::backlog::{BacklogChange, BacklogView, TallyBatch, NEGATIVE_GRACE_MS};
use hookline_core::model::{App, AppToken, DeliveryTask, Endpoint, SignatureScheme, TriggerType};
use hookline_core::names::{SessionId, Uid};
use hookline_core::ports::{
    BackgroundTaskStore, BacklogLedger, EndpointHealth, IdempotencyClaim, MessageStore,
    PageRequest, RateLimiter, Registry, RetrySchedule, Sequencer, TaskStart, TokenStore,
};
use hookline_core::rate::{Limit, Subject};
use hookline_redis::{RedisConfig, RedisStore};
use rstest_reuse::apply;
use time::OffsetDateTime;

use crate::testkit::{backends, Backend};

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// The ports these tests exercise, as one object.
trait PortsUnderTest:
    RetrySchedule
    + MessageStore
    + EndpointHealth
    + RateLimiter
    + Registry
    + BackgroundTaskStore
    + TokenStore
    + BacklogLedger
    + Sequencer
{
}
impl<T> PortsUnderTest for T where
    T: RetrySchedule
        + MessageStore
        + EndpointHealth
        + RateLimiter
        + Registry
        + BackgroundTaskStore
        + TokenStore
        + BacklogLedger
        + Sequencer
{
}

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
        app_slot: false,
        held_since_ms: None,
        endpoint_version: None,
        queued_at_ms: None,
        in_line: false,
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
        .complete(&[claimed[0].claim.clone()])
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
    assert_eq!(after[0].claim.key, first[0].claim.key);
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
                mine.extend(batch.into_iter().map(|c| c.claim.key));
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
        .complete(&[claimed[0].claim.clone()])
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
        .complete(&[again[0].claim.clone()])
        .await
        .expect("complete");
    assert_eq!(store.store.backlog().await.expect("backlog"), 0);
    store.cleanup().await;
}

/// A claim whose lease ran out and was taken over by a second scheduler: the first
/// scheduler's late completion must leave the second claim alone, so that if the second
/// scheduler dies too the task is due again when its lease ends.
#[apply(backends)]
#[tokio::test]
async fn a_late_completion_does_not_remove_a_newer_claim_of_the_same_key(#[case] backend: Backend) {
    let store = Fresh::new(backend);
    let now = OffsetDateTime::now_utc();
    store.store.schedule(&task(5), now).await.expect("schedule");
    let first = store.store.claim_due(now, 500, 10).await.expect("claim A");
    assert_eq!(first.len(), 1);
    let taken_over = now + Duration::from_millis(600);
    let second = store
        .store
        .claim_due(taken_over, 500, 10)
        .await
        .expect("claim B");
    assert_eq!(second.len(), 1, "B takes the expired claim over");
    assert_ne!(
        first[0].claim.token, second[0].claim.token,
        "each claim has its own token"
    );
    // A finishes late and completes what it claimed.
    store
        .store
        .complete(&[first[0].claim.clone()])
        .await
        .expect("complete A");
    assert_eq!(
        store.store.backlog().await.expect("backlog"),
        1,
        "B's claim survives A's completion"
    );
    // B dies without completing: its lease ends and the task is due again.
    let again = store
        .store
        .claim_due(taken_over + Duration::from_millis(600), 500, 10)
        .await
        .expect("claim C");
    assert_eq!(again.len(), 1, "the task is due again when B's lease ends");
    assert_eq!(again[0].task.msg_id, "msg_5");
    store.cleanup().await;
}

/// The circuit opens at the threshold and tells until when; after the open period exactly
/// one message holds the probe (its own retries keep it, through a new open period after a
/// failure); a success closes it; a failure within an open period of that success does not
/// open it again (the endpoint is alive). The open-circuits gauge follows the circuit both
/// ways (only a success that closes an opened circuit removes it from the set).
#[apply(backends)]
#[tokio::test]
async fn the_circuit_opens_probes_once_and_closes_on_success(#[case] backend: Backend) {
    use hookline_core::ports::Gate;

    let store = Fresh::new(backend);
    let now = OffsetDateTime::now_utc();
    let open_for = Duration::from_millis(100);
    let probe_ttl = Duration::from_secs(5);
    let gate = |msg, at| store.store.gate("app_1", "ep_1", msg, at, probe_ttl);
    let record = |success, at| {
        store
            .store
            .record("app_1", "ep_1", success, at, 3, open_for)
    };
    assert_eq!(gate("msg_a", now).await.expect("gate"), Gate::Closed);
    for n in 1..=3 {
        let streak = record(false, now).await.expect("record");
        assert_eq!(streak.consecutive, n);
        assert!(streak.failing_since.is_some());
        if n < 3 {
            assert_eq!(gate("msg_a", now).await.expect("gate"), Gate::Closed);
            assert_eq!(store.store.open_circuits().await.expect("gauge"), 0);
        }
    }
    assert_eq!(store.store.open_circuits().await.expect("gauge"), 1);
    let Gate::Open { until } = gate("msg_a", now).await.expect("gate") else {
        panic!("open");
    };
    let millis = |d: time::Duration| d.whole_milliseconds();
    assert!(
        (millis(until - now) - 100).abs() <= 1,
        "until the open period ends: {until}"
    );
    let later = now + Duration::from_millis(150);
    assert_eq!(gate("msg_a", later).await.expect("gate"), Gate::Probe);
    let Gate::Open { until } = gate("msg_b", later).await.expect("gate") else {
        panic!("one probe at a time");
    };
    assert!(
        until > later + Duration::from_secs(4),
        "held for the probe's lease: {until}"
    );
    // The probe fails: a new open period, and the probing message keeps its lease.
    record(false, later).await.expect("record");
    assert_eq!(gate("msg_a", later).await.expect("gate"), Gate::Probe);
    assert!(matches!(
        gate("msg_b", later).await.expect("gate"),
        Gate::Open { .. }
    ));
    let streak = record(true, later).await.expect("record");
    assert_eq!((streak.consecutive, streak.failing_since), (0, None));
    assert_eq!(gate("msg_b", later).await.expect("gate"), Gate::Closed);
    assert_eq!(store.store.open_circuits().await.expect("gauge"), 0);
    // Failures within an open period of a success do not open the circuit; once the
    // success is older than that, the threshold does.
    let open_for = Duration::from_secs(60);
    let record = |success, at| {
        store
            .store
            .record("app_1", "ep_2", success, at, 3, open_for)
    };
    let gate = |at| store.store.gate("app_1", "ep_2", "msg_b", at, probe_ttl);
    record(true, now).await.expect("record");
    for _ in 0..3 {
        record(false, now).await.expect("record");
    }
    assert_eq!(gate(now).await.expect("gate"), Gate::Closed);
    let much_later = now + Duration::from_secs(61);
    record(false, much_later).await.expect("record");
    assert!(matches!(
        gate(much_later).await.expect("gate"),
        Gate::Open { .. }
    ));
    assert_eq!(store.store.open_circuits().await.expect("gauge"), 1);
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

/// The rate limit of endpoint `endpoint_id`.
fn endpoint_limit(endpoint_id: &str, per_second: u16) -> Limit<'_> {
    Limit {
        subject: Subject::Endpoint(endpoint_id),
        per_second,
    }
}

/// Asks the last gate every `step` for `span` on a simulated clock; answers how many sends
/// it admitted.
async fn admitted_on_a_clock(
    store: &Fresh,
    endpoint_id: &str,
    per_second: u16,
    step: Duration,
    span: Duration,
) -> usize {
    let start = OffsetDateTime::now_utc();
    let mut admitted = 0;
    let mut elapsed = Duration::ZERO;
    while elapsed < span {
        let verdict = store
            .store
            .admit(
                "app_1",
                &[endpoint_limit(endpoint_id, per_second)],
                start + elapsed,
            )
            .await
            .expect("admit");
        if verdict.is_none() {
            admitted += 1;
        }
        elapsed += step;
    }
    admitted
}

/// Limits whose interval is not a whole number of milliseconds hold exactly: 400/s is
/// 2.5 ms apart (not 2 ms, which is 500/s), and limits above 1,000/s are limited at all.
#[apply(backends)]
#[tokio::test]
async fn rate_limits_hold_at_sub_millisecond_intervals(#[case] backend: Backend) {
    let store = Fresh::new(backend);
    let second = Duration::from_secs(1);
    let at_400 =
        admitted_on_a_clock(&store, "ep_400", 400, Duration::from_micros(500), second).await;
    assert_eq!(at_400, 400, "400/s admits 400 in a second");
    let at_2000 = admitted_on_a_clock(
        &store,
        "ep_2000",
        2_000,
        Duration::from_micros(100),
        Duration::from_millis(100),
    )
    .await;
    assert_eq!(at_2000, 200, "2,000/s admits 200 in 100 ms");
    // 65,535/s is 15.26 us apart: on a 1 us clock, one send every 16 us.
    let at_max = admitted_on_a_clock(
        &store,
        "ep_max",
        65_535,
        Duration::from_micros(1),
        Duration::from_millis(2),
    )
    .await;
    assert_eq!(at_max, 125, "65,535/s admits 125 in 2 ms");

    // Reserved slots are one (5% wider) interval apart: 525 us at 2,000/s.
    let now = OffsetDateTime::now_utc();
    let mut waits = Vec::new();
    for _ in 0..100 {
        waits.push(
            store
                .store
                .reserve("app_1", endpoint_limit("ep_slots", 2_000), now)
                .await
                .expect("reserve"),
        );
    }
    for (n, wait) in waits.iter().enumerate() {
        let n = u64::try_from(n).expect("small");
        assert_eq!(*wait, Duration::from_micros(525 * n), "slot {n}");
    }
    store.cleanup().await;
}

/// Dispatchers reserving slots of one endpoint at the same moment each get their own slot:
/// the compare-and-set makes every reservation one decision on the latest state.
#[apply(backends)]
#[tokio::test]
async fn concurrent_reservations_get_distinct_slots(#[case] backend: Backend) {
    let store = Fresh::new(backend);
    let now = OffsetDateTime::now_utc();
    let reservations = (0..40).map(|_| {
        let store = store.store.clone();
        async move {
            store
                .reserve("app_1", endpoint_limit("ep_busy", 2_000), now)
                .await
                .expect("reserve")
        }
    });
    let mut waits = futures::future::join_all(reservations).await;
    waits.sort();
    let expected: Vec<_> = (0..40u64).map(|n| Duration::from_micros(525 * n)).collect();
    assert_eq!(waits, expected, "one slot each, 525 us apart");
    store.cleanup().await;
}

/// An app's throttle is a limit of its own beside its endpoints' (its slots and gate are
/// not any endpoint's), and the last gate of a send limited twice records the send under
/// both limits or neither: a wait at one never uses up the other. On Redis Cluster this is
/// one script over two keys, which must share the app's slot.
#[apply(backends)]
#[tokio::test]
async fn an_app_throttle_and_an_endpoint_limit_admit_a_send_together(#[case] backend: Backend) {
    let store = Fresh::new(backend);
    let now = OffsetDateTime::now_utc();
    let endpoint = endpoint_limit("ep_1", 10); // a send 100 ms after the last
    let app = Limit {
        subject: Subject::App,
        per_second: 20, // 52.5 ms apart, 15 ms early at most; slots 55.125 ms apart
    };
    let reserve = |limit, at| {
        let store = store.store.clone();
        async move { store.reserve("app_1", limit, at).await.expect("reserve") }
    };
    assert_eq!(reserve(endpoint, now).await, Duration::ZERO);
    assert_eq!(
        reserve(app, now).await,
        Duration::ZERO,
        "not the endpoint's slots"
    );
    assert_eq!(reserve(app, now).await, Duration::from_micros(55_125));
    assert_eq!(reserve(endpoint, now).await, Duration::from_millis(105));

    let admit = |limits: Vec<Limit<'static>>, at| {
        let store = store.store.clone();
        async move { store.admit("app_1", &limits, at).await.expect("admit") }
    };
    assert_eq!(admit(vec![endpoint, app], now).await, None, "both free");
    // The app's gate would let a send through, the endpoint's would not: turned back, and
    // the app's gate stays as it was.
    let early = now + Duration::from_millis(60);
    assert_eq!(
        admit(vec![endpoint, app], early).await,
        Some(Duration::from_millis(40))
    );
    assert_eq!(
        admit(vec![app], early).await,
        None,
        "nothing was recorded for the app"
    );
    // That send moved the app's next send to 112.5 ms, which a send may precede by 15 ms.
    assert_eq!(
        admit(vec![app], early).await,
        Some(Duration::from_micros(37_500))
    );
    // Another endpoint of the app: its own gate is free, the app's decides.
    let other = endpoint_limit("ep_2", 10);
    assert_eq!(
        admit(vec![other, app], early).await,
        Some(Duration::from_micros(37_500))
    );
    let after = early + Duration::from_micros(37_500);
    assert_eq!(admit(vec![other, app], after).await, None);
    store.cleanup().await;
}

fn app(n: usize, uid: &str) -> App {
    let now = OffsetDateTime::now_utc();
    App {
        id: format!("app_{n:04}"),
        uid: Some(Uid::parse(uid.to_owned()).expect("uid")),
        name: format!("app {n}"),
        metadata: Default::default(),
        rate_limit: None,
        created_at: now,
        updated_at: now,
    }
}

fn endpoint(app_id: &str, n: usize, uid: Option<&str>) -> Endpoint {
    let now = OffsetDateTime::now_utc();
    Endpoint {
        id: format!("ep_{n:04}"),
        app_id: app_id.to_owned(),
        uid: uid.map(|u| Uid::parse(u.to_owned()).expect("uid")),
        url: format!("https://example.com/{n}"),
        description: String::new(),
        event_types: None,
        channels: None,
        disabled: false,
        metadata: Default::default(),
        rate_limit: None,
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned().into(),
        old_secrets: Vec::new(),
        headers: Default::default(),
        signature_scheme: SignatureScheme::Standard,
        fifo: false,
        tls: None,
        oauth: None,
        created_at: now,
        updated_at: now,
    }
}

#[apply(backends)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_of_many_concurrent_creates_of_a_uid_wins(#[case] backend: Backend) {
    let store = Fresh::new(backend);
    let creates = (0..200).map(|n| {
        let store = store.store.clone();
        tokio::spawn(async move { store.create_app(&app(n, "shared")).await })
    });
    let results = futures::future::join_all(creates).await;
    let won: Vec<usize> = (0..200)
        .filter(|n| matches!(results[*n], Ok(Ok(()))))
        .collect();
    assert_eq!(won.len(), 1, "creates that succeeded: {won:?}");
    for result in &results {
        match result {
            Ok(Ok(())) | Ok(Err(hookline_core::ports::StoreError::Conflict(_))) => {}
            other => panic!("neither created nor a conflict: {other:?}"),
        }
    }
    let listed = store
        .store
        .list_apps(&PageRequest {
            limit: 250,
            ..PageRequest::default()
        })
        .await
        .expect("list");
    let holders: Vec<&str> = listed
        .items
        .iter()
        .filter(|a| a.uid.as_ref().is_some_and(|u| u.as_str() == "shared"))
        .map(|a| a.id.as_str())
        .collect();
    let winner = format!("app_{:04}", won[0]);
    assert_eq!(holders, [winner.as_str()]);
    let found = store.store.get_app("shared").await.expect("get");
    assert_eq!(found.map(|a| a.id), Some(winner));

    let owner = App {
        id: "app_owner".into(),
        ..app(0, "owner")
    };
    store
        .store
        .create_app(&owner)
        .await
        .expect("the endpoints' app");
    let creates = (0..200).map(|n| {
        let store = store.store.clone();
        tokio::spawn(async move {
            store
                .create_endpoint(&endpoint("app_owner", n, Some("shared-ep")), usize::MAX)
                .await
        })
    });
    let results = futures::future::join_all(creates).await;
    let won = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
    assert_eq!(won, 1, "endpoint creates that succeeded");
    let endpoints = store
        .store
        .endpoints_of_app("app_owner")
        .await
        .expect("list");
    assert_eq!(endpoints.len(), 1);
    store.cleanup().await;
}

#[apply(backends)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_endpoint_creates_stop_at_the_cap(#[case] backend: Backend) {
    let store = Fresh::new(backend);
    store
        .store
        .create_app(&app(0, "capped"))
        .await
        .expect("app");
    let creates = (0..200).map(|n| {
        let store = store.store.clone();
        tokio::spawn(async move {
            store
                .create_endpoint(&endpoint("app_0000", n, None), 100)
                .await
        })
    });
    let results = futures::future::join_all(creates).await;
    let mut created = 0;
    for result in &results {
        match result {
            Ok(Ok(())) => created += 1,
            Ok(Err(hookline_core::ports::StoreError::LimitReached { max: 100, .. })) => {}
            other => panic!("neither created nor refused at the cap: {other:?}"),
        }
    }
    assert_eq!(created, 100);
    let stored = store
        .store
        .endpoints_of_app("app_0000")
        .await
        .expect("list");
    assert_eq!(stored.len(), 100);
    store.cleanup().await;
}

/// What a create or delete that stopped between its steps leaves under a uid: a later create
/// takes it over, unless it may still be in progress or its app does hold the uid.
#[tokio::test]
async fn leftover_uid_claims_are_taken_over_only_when_their_app_does_not_hold_them() {
    use redis::AsyncCommands;
    let prefix = format!(
        "tstore{}-{}:",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    );
    let mut config = RedisConfig::new(crate::testkit::process::redis_url());
    config.prefix = prefix.clone();
    let store = RedisStore::connect(&config).expect("redis config");
    let keys = hookline_redis::Keys::new(&prefix);
    let mut redis = redis::Client::open(crate::testkit::process::redis_url())
        .expect("redis url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let now_ms =
        i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).expect("time");

    // A delete that stopped before releasing the uid: no app under it, and it is free.
    store.create_app(&app(1, "deleted")).await.expect("create");
    let _: () = redis.del(keys.app("app_0001")).await.expect("del");
    assert!(store.get_app("deleted").await.expect("get").is_none());
    store
        .create_app(&app(2, "deleted"))
        .await
        .expect("take over");
    let found = store.get_app("deleted").await.expect("get").map(|a| a.id);
    assert_eq!(found.as_deref(), Some("app_0002"));

    // A create that stopped before writing its record, long ago: free.
    let stale = format!("~app_ghost|{}", now_ms - 120_000);
    let _: () = redis
        .hset(keys.app_uids(), "stale", stale)
        .await
        .expect("hset");
    assert!(store.get_app("stale").await.expect("get").is_none());
    store.create_app(&app(3, "stale")).await.expect("take over");

    // A create that claimed the uid a moment ago may still write its record: refused.
    let young = format!("~app_ghost|{now_ms}");
    let _: () = redis
        .hset(keys.app_uids(), "young", young)
        .await
        .expect("hset");
    let refused = store.create_app(&app(4, "young")).await;
    assert!(
        matches!(refused, Err(hookline_core::ports::StoreError::Conflict(_))),
        "{refused:?}"
    );

    // A create that wrote its record but stopped before committing: its app keeps the uid.
    store.create_app(&app(5, "kept")).await.expect("create");
    let pending = format!("~app_0005|{}", now_ms - 120_000);
    let _: () = redis
        .hset(keys.app_uids(), "kept", pending)
        .await
        .expect("hset");
    let refused = store.create_app(&app(6, "kept")).await;
    assert!(
        matches!(refused, Err(hookline_core::ports::StoreError::Conflict(_))),
        "{refused:?}"
    );
    let found = store.get_app("kept").await.expect("get").map(|a| a.id);
    assert_eq!(found.as_deref(), Some("app_0005"));
    let committed: String = redis.hget(keys.app_uids(), "kept").await.expect("hget");
    assert_eq!(committed, "app_0005");

    // An uid an app moved away from (the update stopped before releasing it) is free.
    let moved = App {
        uid: Some(Uid::parse("elsewhere".to_owned()).expect("uid")),
        ..app(5, "kept")
    };
    let _: () = redis
        .set(
            keys.app("app_0005"),
            serde_json::to_string(&moved).expect("json"),
        )
        .await
        .expect("set");
    assert!(store.get_app("kept").await.expect("get").is_none());
    store.create_app(&app(7, "kept")).await.expect("take over");
    store.delete_all().await.expect("cleanup");
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
        tags: None,
        payload: serde_json::value::RawValue::from_string("{}".into()).expect("payload"),
        timestamp: now,
        deliver_at: None,
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
/// A running background task of `kind` holding `lock`, its lease ending in `lease`.
fn background_task(
    kind: hookline_core::model::TaskKind,
    lock: Option<&str>,
    lease: Duration,
) -> hookline_core::model::BackgroundTask {
    let now = OffsetDateTime::now_utc();
    let id = hookline_core::id::new_id("qtask", (now.unix_timestamp_nanos() / 1_000_000) as u64);
    let mut task = hookline_core::model::BackgroundTask::new(id, kind, now, now + lease);
    task.lock = lock.map(str::to_owned);
    task
}

/// One task holds a lock at a time: another answers the holder until the holder ends (its
/// save releases the lock) or its lease lapses (its process died).
#[apply(backends)]
#[tokio::test]
async fn a_background_task_lock_answers_its_holder_until_it_ends_or_its_lease_lapses(
    #[case] backend: Backend,
) {
    use hookline_core::model::{TaskKind, TaskStatus};
    let fresh = Fresh::new(backend);
    let store = &fresh.store;
    let plain = TaskStart::default();
    let lease = Duration::from_secs(60);
    let mut first = background_task(TaskKind::EndpointRecover, Some("recover:a:e"), lease);
    assert_eq!(store.begin_task(&first, &plain).await.expect("begin"), None);
    let second = background_task(TaskKind::EndpointRecover, Some("recover:a:e"), lease);
    let answered = store.begin_task(&second, &plain).await.expect("begin");
    assert_eq!(answered.map(|t| t.id), Some(first.id.clone()));
    assert_eq!(store.get_task(&second.id).await.expect("get"), None);
    let other = background_task(TaskKind::EndpointRecover, Some("recover:a:f"), lease);
    assert_eq!(store.begin_task(&other, &plain).await.expect("begin"), None);

    first.status = TaskStatus::Finished;
    store.save_task(&first).await.expect("save");
    assert_eq!(
        store.begin_task(&second, &plain).await.expect("begin"),
        None
    );

    // The holder stops renewing (its process died): the lock is free once its lease lapses.
    let mut dying = second.clone();
    dying.lease_until = OffsetDateTime::now_utc() + Duration::from_millis(300);
    store.save_task(&dying).await.expect("save");
    let third = background_task(TaskKind::EndpointRecover, Some("recover:a:e"), lease);
    crate::testkit::eventually(
        "the lapsed lease to free the lock",
        Duration::from_secs(10),
        || async {
            store
                .begin_task(&third, &plain)
                .await
                .expect("begin")
                .is_none()
                .then_some(())
        },
    )
    .await;
    let stale = store
        .get_task(&second.id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(
        stale.status,
        TaskStatus::Running,
        "the record itself is unchanged"
    );
    assert_eq!(
        stale.status_at(OffsetDateTime::now_utc()),
        TaskStatus::Failed
    );
    fresh.cleanup().await;
}

/// A repeated idempotency key answers the first task and stores nothing; the list holds
/// every task newest first and pages both ways.
#[apply(backends)]
#[tokio::test]
async fn an_idempotency_key_answers_the_first_background_task(#[case] backend: Backend) {
    use hookline_core::model::TaskKind;
    let fresh = Fresh::new(backend);
    let store = &fresh.store;
    let keyed = TaskStart {
        idempotency_key: Some("application.stats:org:k1".into()),
        idempotency_ttl_secs: 60,
    };
    let lease = Duration::from_secs(60);
    let first = background_task(TaskKind::ApplicationStats, None, lease);
    assert_eq!(store.begin_task(&first, &keyed).await.expect("begin"), None);
    let repeat = background_task(TaskKind::ApplicationStats, None, lease);
    let answered = store.begin_task(&repeat, &keyed).await.expect("begin");
    assert_eq!(answered, Some(first.clone()));
    let mut ids = vec![first.id.clone()];
    for _ in 0..2 {
        let task = background_task(TaskKind::EventTypeAggregate, None, lease);
        assert_eq!(
            store
                .begin_task(&task, &TaskStart::default())
                .await
                .expect("begin"),
            None
        );
        ids.push(task.id);
    }
    ids.sort();
    let request = |iterator: Option<String>, ascending: bool| PageRequest {
        limit: 2,
        iterator,
        ascending,
        event_types: None,
    };
    let newest = store.list_tasks(&request(None, false)).await.expect("list");
    let listed: Vec<_> = newest.items.iter().map(|t| t.id.clone()).collect();
    assert_eq!(listed, [ids[2].clone(), ids[1].clone()]);
    assert!(!newest.done);
    let rest = store
        .list_tasks(&request(newest.iterator.clone(), false))
        .await
        .expect("list");
    let listed: Vec<_> = rest.items.iter().map(|t| t.id.clone()).collect();
    assert_eq!(listed, [ids[0].clone()], "the repeat was never stored");
    assert!(rest.done);
    let oldest = store.list_tasks(&request(None, true)).await.expect("list");
    let listed: Vec<_> = oldest.items.iter().map(|t| t.id.clone()).collect();
    assert_eq!(listed, [ids[0].clone(), ids[1].clone()]);
    fresh.cleanup().await;
}

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

/// One change of a backlog flush: `app` alone, or `app` and its endpoint `ep`.
fn counted(
    app: &str,
    ep: Option<&str>,
    delta: i64,
    taken: Option<i64>,
    added: Option<i64>,
) -> BacklogChange {
    BacklogChange {
        app_id: app.into(),
        endpoint_id: ep.map(str::to_owned),
        delta,
        oldest_taken_ms: taken,
        first_added_ms: added,
    }
}

fn flush(id: &str, changes: Vec<BacklogChange>) -> TallyBatch {
    TallyBatch {
        id: format!("{id}-{}", SEQUENCE.fetch_add(1, Ordering::Relaxed)),
        changes,
    }
}

fn at_ms(base: OffsetDateTime, ms: i64) -> OffsetDateTime {
    base + time::Duration::milliseconds(ms)
}

/// `(app, pending, age)` of each listed app, and `(endpoint, pending, age)` of each
/// listed endpoint.
type Listed = (Vec<(String, u64, u64)>, Vec<(String, u64, u64)>);

fn listed(view: &BacklogView) -> Listed {
    (
        view.apps
            .iter()
            .map(|a| (a.app_id.clone(), a.pending, a.oldest_pending_age_ms))
            .collect(),
        view.endpoints
            .iter()
            .map(|e| {
                let key = format!("{}/{}", e.app_id, e.endpoint_id);
                (key, e.pending, e.oldest_pending_age_ms)
            })
            .collect(),
    )
}

fn row(key: &str, pending: u64, age: u64) -> (String, u64, u64) {
    (key.to_owned(), pending, age)
}

#[apply(backends)]
#[tokio::test]
async fn the_backlog_lists_the_busiest_apps_and_endpoints_with_their_frontiers(
    #[case] backend: Backend,
) {
    let fresh = Fresh::new(backend);
    let store = &fresh.store;
    let t0 = OffsetDateTime::now_utc();
    let ms = |offset: i64| Some(unix_ms(at_ms(t0, offset)));
    // An ingest flush: app_a gets 5 on ep_1, app_b 2 on ep_2 and 7 on ep_3.
    let accepted = flush(
        "ingest",
        vec![
            counted("app_a", None, 5, None, ms(-4_000)),
            counted("app_a", Some("ep_1"), 5, None, ms(-4_000)),
            counted("app_b", None, 9, None, ms(-3_000)),
            counted("app_b", Some("ep_2"), 2, None, ms(-3_000)),
            counted("app_b", Some("ep_3"), 7, None, ms(-2_000)),
        ],
    );
    store.add(&accepted, t0).await.expect("add");
    let view = store.busiest(10, t0).await.expect("view");
    assert_eq!(view.pending, 14);
    assert_eq!(view.oldest_pending_age_ms, Some(4_000));
    assert_eq!(
        listed(&view),
        (
            vec![row("app_b", 9, 3_000), row("app_a", 5, 4_000)],
            vec![
                row("app_b/ep_3", 7, 2_000),
                row("app_a/ep_1", 5, 4_000),
                row("app_b/ep_2", 2, 3_000),
            ],
        )
    );

    // A dispatcher took some of app_a's tasks (queued 3.5 s before t0) and concluded 2.
    let settled = flush(
        "dispatcher",
        vec![
            counted("app_a", None, -2, ms(-3_500), None),
            counted("app_a", Some("ep_1"), -2, ms(-3_500), None),
        ],
    );
    store.add(&settled, at_ms(t0, 1_000)).await.expect("add");
    // Nothing taken from app_b: its frontier stays and its age grows.
    let view = store.busiest(2, at_ms(t0, 1_000)).await.expect("view");
    assert_eq!(view.pending, 12);
    assert_eq!(view.oldest_pending_age_ms, Some(4_500));
    assert_eq!(
        listed(&view),
        (
            vec![row("app_b", 9, 4_000), row("app_a", 3, 4_500)],
            vec![row("app_b/ep_3", 7, 3_000), row("app_a/ep_1", 3, 4_500)],
        ),
        "the limit applies to each list"
    );

    // Everything of app_b concludes: it leaves both lists.
    let done = flush(
        "dispatcher",
        vec![
            counted("app_b", None, -9, ms(-1_000), None),
            counted("app_b", Some("ep_2"), -2, ms(-1_000), None),
            counted("app_b", Some("ep_3"), -7, ms(-1_000), None),
        ],
    );
    store.add(&done, at_ms(t0, 2_000)).await.expect("add");
    let view = store.busiest(10, at_ms(t0, 2_000)).await.expect("view");
    assert_eq!(view.pending, 3);
    assert_eq!(
        listed(&view),
        (
            vec![row("app_a", 3, 5_500)],
            vec![row("app_a/ep_1", 3, 5_500)]
        )
    );
    fresh.cleanup().await;
}

#[apply(backends)]
#[tokio::test]
async fn a_backlog_flush_added_twice_counts_once(#[case] backend: Backend) {
    let fresh = Fresh::new(backend);
    let store = &fresh.store;
    let now = OffsetDateTime::now_utc();
    let batch = flush("retried", vec![counted("app_a", None, 4, None, None)]);
    store.add(&batch, now).await.expect("add");
    store.add(&batch, now).await.expect("add again");
    let view = store.busiest(10, now).await.expect("view");
    assert_eq!(view.pending, 4);
    assert_eq!(listed(&view).0, vec![row("app_a", 4, 0)]);
    fresh.cleanup().await;
}

/// A dispatcher's flush can land before the ingest flush that counted the same tasks: the
/// negative count waits for it, unseen. One nothing cancels (its process died) is dropped
/// after the grace.
#[apply(backends)]
#[tokio::test]
async fn a_negative_backlog_waits_for_its_flush_then_expires(#[case] backend: Backend) {
    let fresh = Fresh::new(backend);
    let store = &fresh.store;
    let t0 = OffsetDateTime::now_utc();
    let early = flush(
        "dispatcher",
        vec![
            counted("app_a", None, -3, Some(unix_ms(t0)), None),
            counted("app_a", Some("ep_1"), -3, Some(unix_ms(t0)), None),
        ],
    );
    store.add(&early, t0).await.expect("add");
    let view = store.busiest(10, t0).await.expect("view");
    assert_eq!((view.pending, view.oldest_pending_age_ms), (0, None));
    assert_eq!(listed(&view), (vec![], vec![]), "a debt is not listed");
    let late = flush(
        "ingest",
        vec![
            counted("app_a", None, 3, None, Some(unix_ms(t0))),
            counted("app_a", Some("ep_1"), 3, None, Some(unix_ms(t0))),
        ],
    );
    store.add(&late, at_ms(t0, 500)).await.expect("add");
    let view = store.busiest(10, at_ms(t0, 500)).await.expect("view");
    assert_eq!(listed(&view), (vec![], vec![]), "cancelled to zero");

    // A debt nobody pays is dropped once its grace has passed...
    let orphan = flush("dispatcher", vec![counted("app_b", None, -2, None, None)]);
    store.add(&orphan, at_ms(t0, 1_000)).await.expect("add");
    let later = at_ms(t0, 1_000 + NEGATIVE_GRACE_MS);
    let tick = flush("other", vec![counted("app_c", None, 1, None, None)]);
    store.add(&tick, later).await.expect("add");
    // ...so new work for the app counts from zero.
    let fresh_work = flush("ingest", vec![counted("app_b", None, 2, None, None)]);
    store.add(&fresh_work, later).await.expect("add");
    let view = store.busiest(10, later).await.expect("view");
    assert_eq!(view.pending, 3);
    assert_eq!(
        listed(&view).0,
        vec![row("app_b", 2, 0), row("app_c", 1, 0)]
    );
    fresh.cleanup().await;
}

/// A flush of more keys than one script takes at once (Redis writes it in chunks).
#[apply(backends)]
#[tokio::test]
async fn a_large_backlog_flush_counts_every_key(#[case] backend: Backend) {
    let fresh = Fresh::new(backend);
    let store = &fresh.store;
    let now = OffsetDateTime::now_utc();
    let changes = (1..=600)
        .map(|n| counted(&format!("app_{n:04}"), None, n, None, None))
        .collect();
    store.add(&flush("many", changes), now).await.expect("add");
    let view = store.busiest(3, now).await.expect("view");
    assert_eq!(view.pending, 600 * 601 / 2);
    assert_eq!(
        listed(&view).0,
        vec![
            row("app_0600", 600, 0),
            row("app_0599", 599, 0),
            row("app_0598", 598, 0)
        ]
    );
    fresh.cleanup().await;
}

fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).expect("a time in range")
}

/// A Redis store of its own with a raw connection to the same Redis (single or cluster), to
/// look at and backdate the outbox sweep's registrations (`outbox_apps`).
struct RedisOnly {
    store: RedisStore,
    config: RedisConfig,
    keys: hookline_redis::Keys,
    raw: RawRedis,
}

enum RawRedis {
    Single(redis::aio::MultiplexedConnection),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl RedisOnly {
    async fn new(backend: Backend) -> Self {
        let prefix = format!(
            "tstore{}-{}:",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let cluster = backend == Backend::Clusters;
        let url = if cluster {
            crate::testkit::process::cluster_redis_urls()
        } else {
            crate::testkit::process::redis_url()
        };
        let mut config = RedisConfig::new(url.clone());
        config.cluster = cluster;
        config.prefix = prefix.clone();
        let store = RedisStore::connect(&config).expect("redis config");
        let raw = if cluster {
            let seeds: Vec<&str> = url.split(',').collect();
            let client = redis::cluster::ClusterClient::new(seeds).expect("cluster urls");
            RawRedis::Cluster(client.get_async_connection().await.expect("cluster"))
        } else {
            let client = redis::Client::open(url).expect("redis url");
            RawRedis::Single(
                client
                    .get_multiplexed_async_connection()
                    .await
                    .expect("redis"),
            )
        };
        let redis = Self {
            store,
            config,
            keys: hookline_redis::Keys::new(&prefix),
            raw,
        };
        // A process's first sweep walks the whole app list once (for marks on no list);
        // the tests look at the sweeps after it.
        assert!(redis.sweep().await.is_empty());
        redis
    }

    /// A store on the same keys with nothing in memory: another ingest process.
    fn another_process(&self) -> RedisStore {
        RedisStore::connect(&self.config).expect("redis config")
    }

    async fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> T {
        match &mut self.raw {
            RawRedis::Single(conn) => cmd.query_async(conn).await,
            RawRedis::Cluster(conn) => cmd.query_async(conn).await,
        }
        .expect("redis command")
    }

    /// The score of `app`'s registration (unix ms), if it is registered.
    async fn unregister(&mut self, app: &str) {
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(self.keys.outbox_apps()).arg(app);
        self.query::<()>(&cmd).await;
    }

    async fn registration(&mut self, app: &str) -> Option<i64> {
        let mut cmd = redis::cmd("ZSCORE");
        cmd.arg(self.keys.outbox_apps()).arg(app);
        self.query(&cmd).await
    }

    /// Moves `app`'s registration `ago` into the past, as if no process had registered it
    /// since.
    async fn backdate(&mut self, app: &str, ago: Duration) {
        let at = OffsetDateTime::now_utc() - ago;
        let ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).expect("time");
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(self.keys.outbox_apps()).arg(ms).arg(app);
        self.query::<()>(&cmd).await;
    }

    async fn create_apps(&self, ids: impl IntoIterator<Item = String>) {
        create_apps(&self.store, ids).await;
    }

    /// Every command the Redis server ran so far (the sum of `calls` in `INFO commandstats`);
    /// on a single Redis only.
    async fn commands_run(&mut self) -> Option<u64> {
        let RawRedis::Single(conn) = &mut self.raw else {
            return None;
        };
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(conn)
            .await
            .expect("info");
        let calls = info
            .lines()
            .filter_map(|line| line.split("calls=").nth(1))
            .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok());
        Some(calls.sum())
    }

    /// Stores message `msg` of `app` unconfirmed, its lease ending after `lease_ms`.
    async fn insert(&self, app: &str, msg: &str, lease_ms: u64) {
        let message = hookline_core::model::Message {
            id: msg.into(),
            app_id: app.into(),
            event_type: hookline_core::names::EventTypeName::parse("order.created").expect("name"),
            event_id: None,
            channels: None,
            tags: None,
            payload: serde_json::value::RawValue::from_string("{}".into()).expect("payload"),
            timestamp: OffsetDateTime::now_utc(),
            deliver_at: None,
        };
        self.store
            .insert_unconfirmed(&message, &["ep_1".to_owned()], 3600, None, lease_ms)
            .await
            .expect("insert");
    }

    async fn sweep(&self) -> Vec<(String, String)> {
        let swept = self
            .store
            .claim_unconfirmed(60_000, 100)
            .await
            .expect("sweep");
        swept.into_iter().map(|u| (u.app_id, u.msg_id)).collect()
    }

    async fn confirm(&self, app: &str, msg: &str) {
        self.store
            .confirm_message(app, msg, &[], "", 1)
            .await
            .expect("confirm");
    }
}

/// Far past any removal age of a registration (3 × refresh + lease = 4 min here).
const LONG_AGO: Duration = Duration::from_secs(3600);

/// A mark is swept however long ago its app was registered (never stranded), and the app
/// stays registered while it has a mark; once the mark is confirmed the old registration goes.
#[rstest::rstest]
#[case::rabbitmq_redis(Backend::RabbitRedis)]
#[case::clusters(Backend::Clusters)]
#[tokio::test]
async fn a_mark_of_an_app_registered_long_ago_is_still_swept(#[case] backend: Backend) {
    let mut redis = RedisOnly::new(backend).await;
    redis.create_apps(["app_old".to_owned()]).await;
    redis.insert("app_old", "msg_old", 0).await;
    assert!(
        redis.registration("app_old").await.is_some(),
        "a mark registers its app"
    );
    redis.backdate("app_old", LONG_AGO).await;

    let swept = redis.sweep().await;
    assert_eq!(swept, [("app_old".to_owned(), "msg_old".to_owned())]);
    assert!(
        redis.registration("app_old").await.is_some(),
        "an app with a mark (leased to the sweeper) stays registered"
    );
    redis.confirm("app_old", "msg_old").await;
    assert!(redis.sweep().await.is_empty());
    assert_eq!(
        redis.registration("app_old").await,
        None,
        "empty and old: removed"
    );
    redis.store.delete_all().await.expect("cleanup");
}

/// A mark whose app is on no list (written by a version without registrations) is swept by
/// the first sweep of a process, which registers its app.
#[rstest::rstest]
#[case::rabbitmq_redis(Backend::RabbitRedis)]
#[case::clusters(Backend::Clusters)]
#[tokio::test]
async fn a_mark_on_no_list_is_swept_by_a_new_process(#[case] backend: Backend) {
    let mut redis = RedisOnly::new(backend).await;
    redis
        .create_apps(["app_a".to_owned(), "app_b".to_owned()])
        .await;
    redis.insert("app_b", "msg_legacy", 0).await;
    redis.unregister("app_b").await;

    let restarted = redis.another_process();
    let swept = restarted
        .claim_unconfirmed(60_000, 100)
        .await
        .expect("sweep");
    assert_eq!(swept.len(), 1, "{swept:?}");
    assert_eq!(swept[0].msg_id, "msg_legacy");
    assert!(
        redis.registration("app_b").await.is_some(),
        "registered now"
    );
    assert_eq!(
        redis.registration("app_a").await,
        None,
        "no marks: not registered"
    );
    redis.store.delete_all().await.expect("cleanup");
}

/// The sweep removes only registrations that are old and whose app has no mark: a fresh one,
/// or an old one whose app has a mark still under its lease, stays.
#[rstest::rstest]
#[case::rabbitmq_redis(Backend::RabbitRedis)]
#[case::clusters(Backend::Clusters)]
#[tokio::test]
async fn only_old_registrations_without_marks_are_removed(#[case] backend: Backend) {
    let mut redis = RedisOnly::new(backend).await;
    let apps = ["app_fresh", "app_idle", "app_leased"];
    redis.create_apps(apps.map(str::to_owned)).await;
    for app in apps {
        redis.insert(app, "msg_1", 60_000).await;
    }
    redis.confirm("app_fresh", "msg_1").await;
    redis.confirm("app_idle", "msg_1").await;
    redis.backdate("app_idle", LONG_AGO).await;
    redis.backdate("app_leased", LONG_AGO).await;

    assert!(redis.sweep().await.is_empty(), "no lease ended");
    assert!(
        redis.registration("app_fresh").await.is_some(),
        "fresh: kept"
    );
    assert_eq!(
        redis.registration("app_idle").await,
        None,
        "old, empty: removed"
    );
    assert!(
        redis.registration("app_leased").await.is_some(),
        "old with a mark: kept"
    );
    redis.store.delete_all().await.expect("cleanup");
}

/// With many apps and one stale mark, a sweep visits the registered apps only (one script
/// call each), not every app.
#[rstest::rstest]
#[case::rabbitmq_redis(Backend::RabbitRedis)]
#[case::clusters(Backend::Clusters)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sweep_costs_the_registered_apps_not_all_apps(#[case] backend: Backend) {
    const APPS: usize = 2_000;
    let mut redis = RedisOnly::new(backend).await;
    let ids: Vec<String> = (0..APPS).map(|n| format!("app_{n:05}")).collect();
    let creates: Vec<_> = ids
        .chunks(APPS / 8)
        .map(|chunk| tokio::spawn(create_apps(redis.store.clone(), chunk.to_vec())))
        .collect();
    for create in creates {
        create.await.expect("create apps");
    }
    redis.insert("app_01000", "msg_stale", 0).await;
    redis.insert("app_01500", "msg_done", 0).await;
    redis.confirm("app_01500", "msg_done").await;

    let commands = redis.commands_run().await;
    let visited = redis.store.outbox_apps_visited();
    let swept = redis.sweep().await;
    let visited = redis.store.outbox_apps_visited() - visited;
    // Less the first INFO; other tests on the same Redis add theirs, so it is only printed.
    let commands = redis
        .commands_run()
        .await
        .zip(commands)
        .map(|(after, before)| after - before - 1);
    eprintln!("one sweep over {APPS} apps: {visited} apps visited, Redis commands: {commands:?}");
    assert_eq!(swept, [("app_01000".to_owned(), "msg_stale".to_owned())]);
    assert_eq!(visited, 2, "the two registered apps, not all {APPS}");
    redis.store.delete_all().await.expect("cleanup");
}

async fn create_apps(
    store: impl std::borrow::Borrow<RedisStore>,
    ids: impl IntoIterator<Item = String>,
) {
    let now = OffsetDateTime::now_utc();
    for id in ids {
        let app = App {
            name: id.clone(),
            id,
            uid: None,
            metadata: Default::default(),
            rate_limit: None,
            created_at: now,
            updated_at: now,
        };
        store.borrow().create_app(&app).await.expect("app");
    }
}

fn app_token(app_id: &str, session: &str, expires_at: OffsetDateTime) -> AppToken {
    AppToken {
        app_id: app_id.into(),
        read_only: false,
        capabilities: None,
        session_id: Some(SessionId::parse(session).expect("session id")),
        expires_at,
    }
}

/// Logout removes one token; expire-all revokes the named sessions' tokens, shortens (never
/// lengthens) the rest when given a delay, and leaves other apps' tokens alone.
#[apply(backends)]
#[tokio::test]
async fn app_tokens_log_out_one_at_a_time_and_expire_by_session(#[case] backend: Backend) {
    let fresh = Fresh::new(backend);
    let store = &fresh.store;
    let now = OffsetDateTime::now_utc();
    let later = now + time::Duration::hours(2);
    for (digest, app, session) in [
        ("d-a1", "app_a", "s1"),
        ("d-a2", "app_a", "s2"),
        ("d-a3", "app_a", "s3"),
        ("d-b1", "app_b", "s1"),
    ] {
        store
            .create_app_token(digest, &app_token(app, session, later))
            .await
            .expect("token");
    }
    assert!(store.revoke_app_token("d-a3").await.expect("logout"));
    assert!(!store.revoke_app_token("d-a3").await.expect("again"));
    assert!(store.find_app_token("d-a3").await.expect("read").is_none());

    let s1 = [SessionId::parse("s1").expect("id")];
    let revoked = store
        .expire_app_tokens("app_a", Some(&s1), now, now)
        .await
        .expect("expire s1");
    assert_eq!(revoked, 1);
    assert!(store.find_app_token("d-a1").await.expect("read").is_none());
    assert!(store.find_app_token("d-a2").await.expect("read").is_some());
    assert!(
        store.find_app_token("d-b1").await.expect("read").is_some(),
        "another app's token of the same session stays"
    );

    let soon = now + time::Duration::minutes(10);
    let shortened = store
        .expire_app_tokens("app_a", None, soon, now)
        .await
        .expect("shorten");
    assert_eq!(shortened, 1);
    let kept = store
        .find_app_token("d-a2")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(kept.expires_at, soon);
    let unchanged = store
        .expire_app_tokens("app_a", None, later, now)
        .await
        .expect("no lengthening");
    assert_eq!(unchanged, 0);
    let kept = store
        .find_app_token("d-a2")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(kept.expires_at, soon, "never lengthened");
    fresh.cleanup().await;
}

/// An ordered endpoint's task for message `msg` on `endpoint`.
fn in_line(endpoint: &str, msg: &str) -> DeliveryTask {
    DeliveryTask {
        msg_id: msg.into(),
        endpoint_id: endpoint.into(),
        in_line: true,
        ..task(1)
    }
}

fn joining(endpoint: &str, msg: &str) -> hookline_core::fifo::Joining {
    hookline_core::fifo::Joining {
        app_id: "app_1".into(),
        endpoint_id: endpoint.into(),
        msg_id: msg.into(),
        due: None,
    }
}

fn leaving(endpoint: &str, msg: &str) -> hookline_core::fifo::Leaving {
    hookline_core::fifo::Leaving::of(&in_line(endpoint, msg))
}

/// The walk of `hookline_core::fifo::Line`'s own test, through the port: only the head
/// goes, a leave hands the next waiting task out once, the stall sweep hands it again only
/// once it is stale, and a task of a message that left is gone.
#[apply(backends)]
#[tokio::test]
async fn an_ordered_line_lets_its_head_go_and_hands_the_next_task_out_once(
    #[case] backend: Backend,
) {
    use hookline_core::fifo::Turn;

    let fresh = Fresh::new(backend);
    let store = &fresh.store;
    let now = OffsetDateTime::now_utc();
    let entries: Vec<_> = ["m1", "m2", "m3"]
        .iter()
        .map(|m| joining("ep_a", m))
        .collect();
    store.join(&entries, now).await.expect("join");
    store.join(&entries[..1], now).await.expect("join again");
    assert_eq!(
        store.turn(&in_line("ep_a", "m3")).await.expect("turn"),
        Turn::Wait
    );
    assert_eq!(
        store.turn(&in_line("ep_a", "m2")).await.expect("turn"),
        Turn::Wait
    );
    assert_eq!(
        store.turn(&in_line("ep_a", "m1")).await.expect("turn"),
        Turn::Go
    );
    let line = store.line("app_1", "ep_a").await.expect("line");
    assert_eq!((line.length, line.waiting), (3, 2));
    assert_eq!(line.head.as_deref(), Some("m1"));

    let handed = store
        .leave(&[leaving("ep_a", "m1")], now)
        .await
        .expect("leave");
    assert_eq!(
        handed.iter().map(|t| t.msg_id.as_str()).collect::<Vec<_>>(),
        ["m2"]
    );
    assert!(handed[0].in_line, "the waiting task comes back as it was");
    let stale = Duration::from_secs(30);
    let soon = store
        .stalled(now + Duration::from_secs(1), stale, 10)
        .await
        .expect("sweep");
    assert!(soon.is_empty(), "handed out a moment ago: {soon:?}");
    let later = store
        .stalled(now + Duration::from_secs(31), stale, 10)
        .await
        .expect("sweep");
    assert_eq!(
        later.iter().map(|t| t.msg_id.as_str()).collect::<Vec<_>>(),
        ["m2"]
    );

    assert_eq!(
        store.turn(&in_line("ep_a", "m2")).await.expect("turn"),
        Turn::Go
    );
    let handed = store
        .leave(&[leaving("ep_a", "m2")], now)
        .await
        .expect("leave");
    assert_eq!(
        handed.iter().map(|t| t.msg_id.as_str()).collect::<Vec<_>>(),
        ["m3"]
    );
    assert_eq!(
        store.turn(&in_line("ep_a", "m1")).await.expect("turn"),
        Turn::Gone
    );
    assert_eq!(
        store.turn(&in_line("ep_a", "m3")).await.expect("turn"),
        Turn::Go
    );
    assert!(store
        .leave(&[leaving("ep_a", "m3")], now)
        .await
        .expect("leave")
        .is_empty());
    let line = store.line("app_1", "ep_a").await.expect("line");
    assert_eq!((line.length, line.waiting, line.head), (0, 0, None));
    fresh.cleanup().await;
}

/// A task asking for its turn while the message ahead of it leaves is never stranded: it
/// either goes, or the leave hands it out, exactly one of the two.
#[apply(backends)]
#[tokio::test]
async fn a_turn_racing_the_leave_ahead_of_it_is_never_stranded(#[case] backend: Backend) {
    use hookline_core::fifo::Turn;

    let fresh = Fresh::new(backend);
    let store = Arc::clone(&fresh.store);
    let now = OffsetDateTime::now_utc();
    for round in 0..100 {
        let endpoint = format!("ep_race{round}");
        let entries = [joining(&endpoint, "a"), joining(&endpoint, "b")];
        store.join(&entries, now).await.expect("join");
        let (task, gone) = (in_line(&endpoint, "b"), [leaving(&endpoint, "a")]);
        let (turn, handed) = tokio::join!(store.turn(&task), store.leave(&gone, now));
        let went = turn.expect("turn") == Turn::Go;
        let handed_out = !handed.expect("leave").is_empty();
        assert!(
            went != handed_out,
            "round {round}: went {went}, handed out {handed_out}"
        );
    }
    fresh.cleanup().await;
}

/// A message due later takes its place at its due time: what joins before that time goes
/// first, what joins after it goes after.
#[apply(backends)]
#[tokio::test]
async fn a_scheduled_message_joins_its_line_at_its_due_time(#[case] backend: Backend) {
    let fresh = Fresh::new(backend);
    let store = &fresh.store;
    let now = OffsetDateTime::now_utc();
    let scheduled = hookline_core::fifo::Joining {
        due: Some(now + Duration::from_secs(60)),
        ..joining("ep_due", "tomorrow")
    };
    store
        .join(&[joining("ep_due", "early"), scheduled], now)
        .await
        .expect("join");
    store
        .join(&[joining("ep_due", "later")], now)
        .await
        .expect("join");
    let head = |store: &Arc<dyn PortsUnderTest>| {
        let store = Arc::clone(store);
        async move { store.line("app_1", "ep_due").await.expect("line").head }
    };
    assert_eq!(head(store).await.as_deref(), Some("early"));
    store
        .leave(&[leaving("ep_due", "early")], now)
        .await
        .expect("leave");
    assert_eq!(head(store).await.as_deref(), Some("later"));
    store
        .leave(&[leaving("ep_due", "later")], now)
        .await
        .expect("leave");
    store
        .join(&[joining("ep_due", "after")], now + Duration::from_secs(61))
        .await
        .expect("join");
    assert_eq!(head(store).await.as_deref(), Some("tomorrow"));
    fresh.cleanup().await;
}
