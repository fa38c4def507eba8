//! The dispatcher's steps called directly, on the embedded store and a loopback receiver:
//! `deliver` admits and sends but writes nothing; `settle_batch` writes a batch's records,
//! retries and health at once; what the batch's health says applies to the next task.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use hookline_core::address::AddressPolicy;
use hookline_core::backlog::SharedTally;
use hookline_core::model::{App, DeliveryTask, Endpoint, MessageStatus, TriggerType};
use hookline_core::ports::{AttemptLog, PageRequest, Registry, RetrySchedule, TaskPublisher};
use hookline_dispatcher::delivery::Stores;
use hookline_dispatcher::{Delivered, Dispatcher, DispatcherConfig, Outcome};
use hookline_embedded::{EmbeddedConfig, EmbeddedStore};
use hookline_events::OperationalEvents;
use hookline_metrics::Metrics;
use hookline_net::Resolver;
use serde_json::value::RawValue;
use time::OffsetDateTime;

/// A receiver on loopback answering `status`, counting requests.
async fn receiver(status: StatusCode) -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    let app = Router::new().route(
        "/hook",
        post(move || {
            let seen = Arc::clone(&seen);
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                status
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/hook"), count)
}

struct Setup {
    _dir: tempfile::TempDir,
    store: EmbeddedStore,
    dispatcher: Dispatcher,
    app: App,
    /// The dispatcher's backlog tally.
    backlog: SharedTally,
}

async fn setup(config: DispatcherConfig) -> Setup {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, queue) = hookline_embedded::open(&EmbeddedConfig {
        data_dir: dir.path().to_path_buf(),
        main_key: None,
    })
    .expect("embedded store");
    let now = OffsetDateTime::now_utc();
    let app = App {
        id: "app_inprocess".into(),
        uid: None,
        name: "in process".into(),
        metadata: BTreeMap::new(),
        rate_limit: None,
        created_at: now,
        updated_at: now,
    };
    store.create_app(&app).await.expect("app");
    let backlog = SharedTally::default();
    let stores = Stores {
        registry: Arc::new(store.clone()),
        messages: Arc::new(store.clone()),
        attempts: Arc::new(store.clone()),
        schedule: Arc::new(store.clone()),
        limiter: Arc::new(store.clone()),
        health: Arc::new(store.clone()),
        settlement: Arc::new(store.clone()),
        sequencer: Arc::new(store.clone()),
        publisher: Arc::new(queue.clone()),
        backlog: backlog.clone(),
    };
    let publisher: Arc<dyn TaskPublisher> = Arc::new(queue);
    let events = OperationalEvents::new(
        None,
        Arc::new(store.clone()),
        Arc::new(store.clone()),
        publisher,
    );
    let allowed = AddressPolicy::parse_allowed(&["127.0.0.1/32".to_owned()]).expect("subnet");
    let resolver = Resolver::system(AddressPolicy::new(allowed, false));
    let metrics = Arc::new(Metrics::new().expect("metrics"));
    let dispatcher =
        Dispatcher::new(config, stores, resolver, events, metrics).expect("dispatcher");
    Setup {
        _dir: dir,
        store,
        dispatcher,
        app,
        backlog,
    }
}

async fn endpoint(setup: &Setup, id: &str, url: &str) -> Endpoint {
    let now = OffsetDateTime::now_utc();
    let endpoint = Endpoint {
        id: id.into(),
        app_id: setup.app.id.clone(),
        uid: None,
        url: url.into(),
        description: String::new(),
        event_types: None,
        channels: None,
        disabled: false,
        metadata: BTreeMap::new(),
        rate_limit: None,
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into(),
        old_secrets: Vec::new(),
        headers: BTreeMap::new(),
        signature_scheme: Default::default(),
        fifo: false,
        tls: None,
        oauth: None,
        created_at: now,
        updated_at: now,
    };
    setup
        .store
        .create_endpoint(&endpoint, 100)
        .await
        .expect("endpoint");
    endpoint
}

fn task(app: &App, endpoint: &Endpoint, n: usize) -> DeliveryTask {
    DeliveryTask {
        msg_id: format!("msg_inprocess{n:04}"),
        app_id: app.id.clone(),
        endpoint_id: endpoint.id.clone(),
        attempt: 1,
        trigger: TriggerType::Scheduled,
        event_type: "order.created".into(),
        payload: Some(RawValue::from_string(format!("{{\"n\":{n}}}")).expect("json")),
        traceparent: None,
        rate_slot: false,
        app_slot: false,
        held_since_ms: None,
        endpoint_version: Some(endpoint.version()),
        queued_at_ms: None,
        in_line: false,
    }
}

async fn attempts_of(setup: &Setup, msg_id: &str) -> Vec<hookline_core::model::Attempt> {
    let page = PageRequest {
        limit: 50,
        ..PageRequest::default()
    };
    setup
        .store
        .attempts_by_message(&setup.app.id, msg_id, &page)
        .await
        .expect("attempts")
        .items
}

#[tokio::test]
async fn deliver_sends_and_writes_nothing_until_the_batch_is_settled() {
    let setup = setup(DispatcherConfig::default()).await;
    let (url, requests) = receiver(StatusCode::OK).await;
    let endpoint = endpoint(&setup, "ep_ok", &url).await;
    let mut attempted = Vec::new();
    for n in 0..5 {
        match setup
            .dispatcher
            .deliver(&task(&setup.app, &endpoint, n))
            .await
        {
            Ok(Delivered::Attempted(a)) => attempted.push(*a),
            Ok(Delivered::Done(outcome)) => panic!("not sent: {outcome:?}"),
            Err(error) => panic!("{error}"),
        }
    }
    assert_eq!(requests.load(Ordering::SeqCst), 5, "every task was sent");
    assert!(
        attempts_of(&setup, "msg_inprocess0000").await.is_empty(),
        "nothing written before the batch is settled"
    );
    let outcomes = setup
        .dispatcher
        .settle_batch(&attempted)
        .await
        .expect("settled");
    assert_eq!(outcomes, vec![Outcome::Succeeded; 5]);
    for n in 0..5 {
        let attempts = attempts_of(&setup, &format!("msg_inprocess{n:04}")).await;
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].status, MessageStatus::Success);
    }
    let counted = setup.backlog.drain(|| "b".into()).expect("counted");
    let app = counted
        .changes
        .iter()
        .find(|c| c.endpoint_id.is_none())
        .expect("the app's change");
    assert_eq!(app.delta, -5, "five deliveries concluded");
}

#[tokio::test]
async fn a_failing_batch_schedules_its_retries_and_opens_the_circuit_for_the_next_task() {
    let config = DispatcherConfig {
        circuit_failure_threshold: 3,
        circuit_open_for: Duration::from_secs(30),
        ..DispatcherConfig::default()
    };
    let setup = setup(config).await;
    let (url, requests) = receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
    let endpoint = endpoint(&setup, "ep_failing", &url).await;
    let mut attempted = Vec::new();
    for n in 0..3 {
        match setup
            .dispatcher
            .deliver(&task(&setup.app, &endpoint, n))
            .await
        {
            Ok(Delivered::Attempted(a)) => attempted.push(*a),
            other => panic!("not sent: {:?}", other.err()),
        }
    }
    let outcomes = setup
        .dispatcher
        .settle_batch(&attempted)
        .await
        .expect("settled");
    assert_eq!(outcomes, vec![Outcome::RetryScheduled; 3]);
    assert_eq!(
        setup.store.backlog().await.expect("backlog"),
        3,
        "three retries"
    );
    // The batch's three failures opened the circuit: the next task is held, not sent.
    let next = setup
        .dispatcher
        .deliver(&task(&setup.app, &endpoint, 3))
        .await
        .expect("delivered");
    assert!(matches!(next, Delivered::Done(Outcome::Held)), "held");
    assert!(
        setup.backlog.drain(|| "b".into()).is_none(),
        "retries and holds stay pending"
    );
    assert_eq!(
        requests.load(Ordering::SeqCst),
        3,
        "the held task was not sent"
    );
}
