//! The dispatcher's batched write on the embedded store: a settled batch is what the ports
//! one at a time would have written, and the circuit it leaves is the one the gate sees.

use std::time::Duration;

use hookline_core::breaker::{OpenRules, Results};
use hookline_core::model::{Attempt, DeliveryTask, DestinationStatus, MessageStatus, TriggerType};
use hookline_core::ports::{
    AttemptLog, EndpointHealth, Gate, HealthReport, MessageStore, PageRequest, RetrySchedule,
    SettledAttempt, Settlement,
};
use hookline_embedded::{EmbeddedConfig, EmbeddedStore};
use time::OffsetDateTime;

const RULES: OpenRules = OpenRules {
    threshold: 3,
    open_for: Duration::from_secs(30),
};

fn open(dir: &tempfile::TempDir) -> EmbeddedStore {
    let config = EmbeddedConfig {
        data_dir: dir.path().to_owned(),
        main_key: None,
    };
    hookline_embedded::open(&config).expect("open").0
}

fn task(msg: usize, endpoint: &str) -> DeliveryTask {
    DeliveryTask {
        msg_id: format!("msg_{msg:04}"),
        app_id: "app_1".into(),
        endpoint_id: endpoint.into(),
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

/// Attempt `n` of the batch: message `n` to `endpoint`, failed ones retried at `due`.
fn settled(n: usize, endpoint: &str, success: bool, at: OffsetDateTime) -> SettledAttempt {
    let task = task(n, endpoint);
    let status = if success {
        MessageStatus::Success
    } else {
        MessageStatus::Fail
    };
    let due = at + Duration::from_secs(5);
    SettledAttempt {
        attempt: Attempt {
            id: format!("atmpt_{n:04}"),
            app_id: task.app_id.clone(),
            msg_id: task.msg_id.clone(),
            endpoint_id: endpoint.into(),
            url: "https://example.com/hook".into(),
            attempt_number: 1,
            status,
            response_status_code: if success { 200 } else { 500 },
            response: "ok".into(),
            response_duration_ms: 3,
            error: None,
            trigger_type: TriggerType::Scheduled,
            timestamp: at,
            event_type: task.event_type.clone(),
            request_headers: Default::default(),
            response_headers: Default::default(),
        },
        destination: DestinationStatus {
            endpoint_id: endpoint.into(),
            status: if success {
                MessageStatus::Success
            } else {
                MessageStatus::Pending
            },
            attempts: 1,
            next_attempt: (!success).then_some(due),
        },
        retention_secs: 3600,
        next: (!success).then(|| (task.next_attempt(), due)),
    }
}

/// Now, in whole milliseconds: what health stores.
fn now() -> OffsetDateTime {
    let ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).expect("now")
}

fn page() -> PageRequest {
    PageRequest {
        limit: 250,
        ..PageRequest::default()
    }
}

#[tokio::test]
async fn a_settled_batch_writes_every_record_retry_and_health_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir);
    let start = now();
    // Endpoint a: failures after a success, then a success. Endpoint b: only failures.
    let plan = [
        ("ep_a", false),
        ("ep_a", true),
        ("ep_b", false),
        ("ep_a", false),
        ("ep_b", false),
        ("ep_a", false),
        ("ep_b", false),
        ("ep_a", true),
        ("ep_b", false),
    ];
    let mut attempts = Vec::new();
    let (mut a, mut b) = (Results::default(), Results::default());
    for (n, (endpoint, success)) in plan.into_iter().enumerate() {
        let at = start + Duration::from_millis(n as u64);
        attempts.push(settled(n, endpoint, success, at));
        let results = if endpoint == "ep_a" { &mut a } else { &mut b };
        results.push(success, at);
    }
    let reports = [("ep_a", a), ("ep_b", b)].map(|(endpoint, results)| HealthReport {
        app_id: "app_1".into(),
        endpoint_id: endpoint.into(),
        results,
    });
    let after = store
        .settle(&attempts.iter().collect::<Vec<_>>(), &reports, RULES)
        .await
        .expect("settle");

    for settled in &attempts {
        let attempt = &settled.attempt;
        let stored = store
            .get_attempt("app_1", &attempt.id)
            .await
            .expect("get attempt")
            .expect("recorded");
        assert_eq!(&stored, attempt);
        let by_message = store
            .attempts_by_message("app_1", &attempt.msg_id, &page())
            .await
            .expect("by message");
        assert_eq!(by_message.items, vec![attempt.clone()]);
        let destinations = store
            .destinations("app_1", &attempt.msg_id)
            .await
            .expect("destinations");
        assert_eq!(destinations, vec![settled.destination.clone()]);
    }
    let by_endpoint = store
        .attempts_by_endpoint("app_1", "ep_b", &page())
        .await
        .expect("by endpoint");
    assert_eq!(by_endpoint.items.len(), 4);

    let failed = attempts.iter().filter(|a| a.next.is_some()).count() as u64;
    assert_eq!(store.backlog().await.expect("backlog"), failed);
    let later = start + Duration::from_secs(60);
    let claimed = store.claim_due(later, 10_000, 100).await.expect("claim");
    let mut retried: Vec<_> = claimed
        .iter()
        .map(|c| (c.task.msg_id.clone(), c.task.attempt))
        .collect();
    retried.sort();
    let mut wanted: Vec<_> = attempts
        .iter()
        .filter_map(|a| a.next.as_ref())
        .map(|(task, _)| (task.msg_id.clone(), task.attempt))
        .collect();
    wanted.sort();
    assert_eq!(retried, wanted);

    // The same results through `record`, one at a time, on a store of its own.
    let other_dir = tempfile::tempdir().expect("temp dir");
    let one_by_one = open(&other_dir);
    for settled in &attempts {
        let attempt = &settled.attempt;
        one_by_one
            .record(
                "app_1",
                &attempt.endpoint_id,
                attempt.status == MessageStatus::Success,
                attempt.timestamp,
                RULES.threshold,
                RULES.open_for,
            )
            .await
            .expect("record");
    }
    let names: Vec<_> = after.iter().map(|h| h.endpoint_id.as_str()).collect();
    assert_eq!(names, ["ep_a", "ep_b"], "in the order of the reports");
    let a_health = after[0].health;
    assert_eq!((a_health.consecutive, a_health.open_until_ms), (0, 0));
    let b_health = after[1].health;
    assert_eq!(b_health.consecutive, 4);
    assert_ne!(b_health.open_until_ms, 0, "four failures opened ep_b");
    for endpoint in ["ep_a", "ep_b"] {
        let now = start + Duration::from_secs(1);
        let batch = store
            .gate("app_1", endpoint, "msg_x", now, Duration::from_secs(5))
            .await
            .expect("gate");
        let single = one_by_one
            .gate("app_1", endpoint, "msg_x", now, Duration::from_secs(5))
            .await
            .expect("gate");
        assert_eq!(batch, single, "{endpoint}");
    }
    assert_eq!(store.open_circuits().await.expect("open circuits"), 1);
    // One more failure on ep_b continues the streak the batch stored.
    let streak = store
        .record(
            "app_1",
            "ep_b",
            false,
            later,
            RULES.threshold,
            RULES.open_for,
        )
        .await
        .expect("record");
    assert_eq!(streak.consecutive, 5);
    assert_eq!(streak.failing_since, Some(start + Duration::from_millis(2)));
}

#[tokio::test]
async fn a_success_in_a_batch_ends_the_probe_and_closes_the_circuit() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir);
    let start = now();
    let mut failures = Results::default();
    for n in 0..3 {
        failures.push(false, start + Duration::from_millis(n));
    }
    let report = |results| HealthReport {
        app_id: "app_1".into(),
        endpoint_id: "ep_1".into(),
        results,
    };
    let after = store
        .settle(&[], &[report(failures)], RULES)
        .await
        .expect("settle");
    let open_until = start + Duration::from_millis(2) + RULES.open_for;
    assert_eq!(after[0].health.failing_since(), Some(start));
    let probe_ttl = Duration::from_secs(5);
    let gate = |msg: &'static str, now| store.gate("app_1", "ep_1", msg, now, probe_ttl);
    let during = start + Duration::from_secs(1);
    assert!(matches!(
        gate("msg_a", during).await.expect("gate"),
        Gate::Open { .. }
    ));
    // After the open period one message probes; the others are held behind it.
    let past = open_until + Duration::from_millis(1);
    assert_eq!(gate("msg_a", past).await.expect("gate"), Gate::Probe);
    assert!(matches!(
        gate("msg_b", past).await.expect("gate"),
        Gate::Open { .. }
    ));
    // The probe fails: the circuit opens again and the probe keeps its lease.
    let mut failed = Results::default();
    failed.push(false, past);
    store
        .settle(&[], &[report(failed)], RULES)
        .await
        .expect("settle");
    let soon = past + Duration::from_secs(6);
    assert_eq!(gate("msg_a", soon).await.expect("gate"), Gate::Probe);
    assert!(matches!(
        gate("msg_b", soon).await.expect("gate"),
        Gate::Open { .. }
    ));
    // A success closes it for everyone.
    let mut healed = Results::default();
    healed.push(false, soon);
    healed.push(true, soon + Duration::from_millis(1));
    let after = store
        .settle(&[], &[report(healed)], RULES)
        .await
        .expect("settle");
    assert_eq!(after[0].health.open_until_ms, 0);
    assert_eq!(gate("msg_b", soon).await.expect("gate"), Gate::Closed);
    assert_eq!(store.open_circuits().await.expect("open circuits"), 0);
}

#[tokio::test]
async fn an_open_circuit_is_still_open_after_reopening_the_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let start = now();
    {
        let store = open(&dir);
        for n in 0..3 {
            let at = start + Duration::from_millis(n);
            store
                .record("app_1", "ep_1", false, at, RULES.threshold, RULES.open_for)
                .await
                .expect("record");
        }
        store.flush().await.expect("flush");
    }
    let store = open(&dir);
    let gate = store
        .gate("app_1", "ep_1", "msg_1", start, Duration::from_secs(5))
        .await
        .expect("gate");
    let until = start + Duration::from_millis(2) + RULES.open_for;
    assert_eq!(gate, Gate::Open { until });
    assert_eq!(store.open_circuits().await.expect("open circuits"), 1);
}
