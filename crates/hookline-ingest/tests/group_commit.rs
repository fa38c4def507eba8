//! The accept path's group commit ([`hookline_ingest::group_commit`]) on real engines:
//! Redis with RabbitMQ, and the embedded store with its queue. Concurrent requests share
//! their writes, yet each is answered once, for its own message, and one refused write
//! fails only its own request.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hookline_core::address::AddressPolicy;
use hookline_core::backlog::SharedTally;
use hookline_core::id;
use hookline_core::model::{App, Endpoint, Message, SignatureScheme};
use hookline_core::names::EventTypeName;
use hookline_core::ports::{
    AttemptLog, BackgroundTaskStore, BacklogLedger, MessageStore, Registry, RetrySchedule,
    Sequencer, TaskPublisher, TokenStore,
};
use hookline_embedded::{EmbeddedConfig, EmbeddedQueue};
use hookline_events::OperationalEvents;
use hookline_ingest::auth::AdminTokens;
use hookline_ingest::error::ApiError;
use hookline_ingest::intake::{accept, NewMessage};
use hookline_ingest::{ApiState, IngestConfig, Services};
use hookline_metrics::Metrics;
use hookline_rabbitmq::{RabbitBroker, RabbitConfig};
use hookline_redis::{Keys, RedisConfig, RedisStore};
use time::OffsetDateTime;
use tokio::time::Instant;

const REDIS_URL: &str = "redis://127.0.0.1:6379";
const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

#[derive(Clone, Copy)]
enum Backend {
    RedisRabbit,
    Embedded,
}

/// The ports of one test, under names of its own.
struct Stack {
    state: ApiState,
    registry: Arc<dyn Registry>,
    messages: Arc<dyn MessageStore>,
    engine: Engine,
}

enum Engine {
    RedisRabbit {
        store: RedisStore,
        prefix: String,
        broker: RabbitBroker,
    },
    Embedded {
        queue: EmbeddedQueue,
        _dir: tempfile::TempDir,
    },
}

impl Stack {
    async fn start(backend: Backend) -> Self {
        match backend {
            Backend::RedisRabbit => {
                let prefix = format!("hltest-group-{:016x}:", rand::random::<u64>());
                let store = RedisStore::connect(&RedisConfig {
                    prefix: prefix.clone(),
                    ..RedisConfig::new(REDIS_URL)
                })
                .expect("redis");
                let broker = RabbitBroker::start(RabbitConfig {
                    urls: vec![AMQP_URL.to_owned()],
                    prefix: format!("hltest-group-{:016x}", rand::random::<u64>()),
                    queue_expires: Some(Duration::from_secs(300)),
                    ..RabbitConfig::default()
                });
                assert!(
                    broker.wait_ready(Duration::from_secs(30)).await,
                    "broker not ready"
                );
                let publisher = broker.publisher();
                Self::of(
                    &store,
                    publisher,
                    Engine::RedisRabbit {
                        store: store.clone(),
                        prefix,
                        broker,
                    },
                )
            }
            Backend::Embedded => {
                let dir = tempfile::tempdir().expect("temp dir");
                let (store, queue) = hookline_embedded::open(&EmbeddedConfig {
                    data_dir: dir.path().to_owned(),
                    main_key: None,
                })
                .expect("embedded");
                let publisher: Arc<dyn TaskPublisher> = Arc::new(queue.clone());
                Self::of(&store, publisher, Engine::Embedded { queue, _dir: dir })
            }
        }
    }

    fn of<S>(store: &S, publisher: Arc<dyn TaskPublisher>, engine: Engine) -> Self
    where
        S: Registry
            + MessageStore
            + AttemptLog
            + RetrySchedule
            + TokenStore
            + BackgroundTaskStore
            + BacklogLedger
            + Sequencer
            + Clone
            + 'static,
    {
        let registry: Arc<dyn Registry> = Arc::new(store.clone());
        let messages: Arc<dyn MessageStore> = Arc::new(store.clone());
        let events = OperationalEvents::new(
            None,
            Arc::clone(&registry),
            Arc::clone(&messages),
            Arc::clone(&publisher),
        );
        let state = ApiState::new(Services {
            registry: Arc::clone(&registry),
            messages: Arc::clone(&messages),
            attempts: Arc::new(store.clone()),
            publisher,
            tokens: Arc::new(store.clone()),
            jobs: Arc::new(store.clone()),
            schedule: Arc::new(store.clone()),
            sequencer: Arc::new(store.clone()),
            backlog: SharedTally::default(),
            ledger: Arc::new(store.clone()),
            events,
            metrics: Arc::new(Metrics::new().expect("metrics")),
            readiness: Vec::new(),
            admin_tokens: AdminTokens::new(std::iter::empty()),
            resolver: hookline_net::Resolver::system(AddressPolicy::default()),
            config: IngestConfig::default(),
        });
        Self {
            state,
            registry,
            messages,
            engine,
        }
    }

    /// Tasks in the queue.
    async fn depth(&self) -> u64 {
        match &self.engine {
            Engine::RedisRabbit { broker, .. } => {
                u64::from(broker.queue_depth().await.expect("queue depth"))
            }
            Engine::Embedded { queue, .. } => queue.depth().await.expect("queue depth"),
        }
    }

    /// Waits (bounded) until the queue holds `expected` tasks; the broker's count may lag
    /// its confirms a little.
    async fn expect_depth(&self, expected: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let depth = self.depth().await;
            if depth == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "queue holds {depth} tasks, expected {expected}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn app(&self, endpoints: usize) -> App {
        let now = OffsetDateTime::now_utc();
        let app = App {
            id: id::new_id("app", now_ms()),
            uid: None,
            name: "group commit".into(),
            metadata: Default::default(),
            rate_limit: None,
            created_at: now,
            updated_at: now,
        };
        self.registry.create_app(&app).await.expect("app");
        for n in 0..endpoints {
            self.add_endpoint(&app, n).await;
        }
        app
    }

    async fn add_endpoint(&self, app: &App, n: usize) -> Endpoint {
        let endpoint = endpoint(&app.id, n);
        self.registry
            .create_endpoint(&endpoint, 1000)
            .await
            .expect("endpoint");
        endpoint
    }

    async fn stop(self) {
        drop(self.state);
        if let Engine::RedisRabbit { store, broker, .. } = &self.engine {
            store.delete_all().await.expect("redis cleanup");
            broker.delete_topology().await.expect("broker cleanup");
            broker.shutdown().await;
        }
    }
}

fn now_ms() -> u64 {
    u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn endpoint(app_id: &str, n: usize) -> Endpoint {
    let now = OffsetDateTime::now_utc();
    Endpoint {
        id: format!("ep_{n:04}"),
        app_id: app_id.to_owned(),
        uid: None,
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

fn new_message(app_id: &str, n: usize, key: Option<String>) -> NewMessage {
    NewMessage {
        message: Message {
            id: id::new_id("msg", now_ms()),
            app_id: app_id.to_owned(),
            event_type: EventTypeName::parse("order.created").expect("name"),
            event_id: None,
            channels: None,
            tags: None,
            payload: serde_json::value::RawValue::from_string(format!("{{\"n\":{n}}}"))
                .expect("payload"),
            timestamp: OffsetDateTime::now_utc(),
            deliver_at: None,
        },
        retention_secs: 3600,
        idempotency_keys: key.into_iter().collect(),
        deliver_at: None,
    }
}

/// The answer body: the message id, which tells the requests apart.
fn render(message: &Message) -> Result<String, ApiError> {
    Ok(message.id.clone())
}

/// Accepts `news` for `app` all at once, one task each; the answers in order.
async fn accept_all(
    stack: &Stack,
    app: &App,
    news: Vec<NewMessage>,
) -> Vec<Result<String, ApiError>> {
    let found = stack
        .state
        .group()
        .app_with_endpoints(&app.id)
        .await
        .expect("read")
        .expect("app");
    let requests: Vec<_> = news
        .into_iter()
        .map(|new| {
            let state = stack.state.clone();
            let found = Arc::clone(&found);
            tokio::spawn(async move {
                accept(&state, &found.0, &found.1, new, render)
                    .await
                    .map(|accepted| accepted.0)
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(requests.len());
    for request in requests {
        answers.push(request.await.expect("request task"));
    }
    answers
}

/// 200 concurrent accepts: each answered once with its own message, every message stored
/// with its mark cleared, every task queued; a repeated key answers the original and
/// queues nothing.
async fn concurrent_accepts_are_each_stored_and_answered_once(backend: Backend) {
    let stack = Stack::start(backend).await;
    let app = stack.app(2).await;
    let news: Vec<NewMessage> = (0..200)
        .map(|n| new_message(&app.id, n, (n % 2 == 0).then(|| format!("idem:k{n}"))))
        .collect();
    let ids: Vec<String> = news.iter().map(|new| new.message.id.clone()).collect();
    let answers = accept_all(&stack, &app, news).await;
    for (answer, id) in answers.iter().zip(&ids) {
        assert_eq!(answer.as_ref().expect("accepted"), id, "its own message");
    }
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 200);
    for id in &ids {
        let stored = stack.messages.get_message(&app.id, id).await.expect("read");
        assert!(stored.is_some(), "{id} stored");
        let mark = stack.messages.unconfirmed(&app.id, id).await.expect("read");
        assert!(mark.is_none(), "{id} confirmed");
    }
    stack.expect_depth(400).await;
    let counted = stack
        .state
        .backlog()
        .drain(|| "b1".into())
        .expect("counted");
    let total: i64 = counted
        .changes
        .iter()
        .filter(|c| c.endpoint_id.is_none())
        .map(|c| c.delta)
        .sum();
    assert_eq!(total, 400, "every queued task counted pending once");

    let repeat = new_message(&app.id, 0, Some("idem:k0".into()));
    let again = accept_all(&stack, &app, vec![repeat]).await;
    assert_eq!(again[0].as_ref().expect("original"), &ids[0]);
    stack.expect_depth(400).await;
    assert!(
        stack.state.backlog().drain(|| "b2".into()).is_none(),
        "a repeat queues and counts nothing"
    );
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_accepts_are_each_stored_and_answered_once_on_redis_and_rabbitmq() {
    concurrent_accepts_are_each_stored_and_answered_once(Backend::RedisRabbit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_accepts_are_each_stored_and_answered_once_embedded() {
    concurrent_accepts_are_each_stored_and_answered_once(Backend::Embedded).await;
}

/// A message whose write Redis refuses (a string sits where its destinations go) fails its
/// own request alone, and releases its key: a retry with the key is a new message.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_write_fails_only_its_own_request() {
    let stack = Stack::start(Backend::RedisRabbit).await;
    let Engine::RedisRabbit { prefix, .. } = &stack.engine else {
        unreachable!("a Redis stack")
    };
    let app = stack.app(1).await;
    let news: Vec<NewMessage> = (0..50)
        .map(|n| new_message(&app.id, n, Some(format!("idem:k{n}"))))
        .collect();
    let refused = news[7].message.id.clone();
    let mut raw = redis::Client::open(REDIS_URL)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    redis::cmd("SET")
        .arg(Keys::new(prefix).destinations(&app.id, &refused))
        .arg("not a hash")
        .query_async::<()>(&mut raw)
        .await
        .expect("plant a string");
    let answers = accept_all(&stack, &app, news).await;
    for (n, answer) in answers.iter().enumerate() {
        if n == 7 {
            assert!(
                matches!(answer, Err(ApiError::Unavailable(_))),
                "the refused write answers 503: {answer:?}"
            );
        } else {
            assert!(answer.is_ok(), "{n}: {answer:?}");
        }
    }
    stack.expect_depth(49).await;
    let retry = accept_all(
        &stack,
        &app,
        vec![new_message(&app.id, 7, Some("idem:k7".into()))],
    )
    .await;
    let retried = retry[0].as_ref().expect("a retry is accepted");
    assert_ne!(retried, &refused, "a new message, not the refused one");
    stack.expect_depth(50).await;
    stack.stop().await;
}

/// Requests for one app share reads, yet an endpoint created before a read is asked for is
/// always in it, however many reads of the app are on the wire meanwhile.
async fn a_read_never_predates_its_request(backend: Backend) {
    let stack = Stack::start(backend).await;
    let app = stack.app(0).await;
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..16)
        .map(|_| {
            let (state, stop, app_id) = (stack.state.clone(), Arc::clone(&stop), app.id.clone());
            tokio::spawn(async move {
                let mut reads = 0_u32;
                while !stop.load(Ordering::Relaxed) {
                    let found = state.group().app_with_endpoints(&app_id).await;
                    assert!(found.expect("read").is_some(), "the app exists");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for n in 0..100 {
        let created = stack.add_endpoint(&app, n).await;
        let found = stack
            .state
            .group()
            .app_with_endpoints(&app.id)
            .await
            .expect("read")
            .expect("app");
        assert!(
            found.1.iter().any(|ep| ep.id == created.id),
            "endpoint {n} created before the read is in it"
        );
        assert_eq!(found.1.len(), n + 1);
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.await.expect("reader") > 0);
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_never_predates_its_request_on_redis() {
    a_read_never_predates_its_request(Backend::RedisRabbit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_read_never_predates_its_request_embedded() {
    a_read_never_predates_its_request(Backend::Embedded).await;
}
