//! One delivery task, start to finish.

use std::sync::Arc;

use bytes::Bytes;
use hookline_core::backlog::SharedTally;
use hookline_core::fifo::{Leaving, Turn};
use hookline_core::id::new_id;
use hookline_core::model::{
    Attempt, DeliveryTask, DestinationStatus, Endpoint, MessageStatus, SignatureScheme, TriggerType,
};
use hookline_core::outcome::{classify, AttemptResult};
use hookline_core::plan::plan_after_attempt;
use hookline_core::ports::{
    AttemptLog, EndpointHealth, Gate, MessageStore, QueueError, RateLimiter, Registry,
    RetrySchedule, Sequencer, SettledAttempt, Settlement, StoreError, TaskPublisher,
};
use hookline_core::rate::Limits;
use hookline_core::signing::{hex_body_signature, signature_header, KeyType, SigningKey};
use hookline_events::OperationalEvents;
use hookline_metrics::Metrics;
use hookline_net::Resolver;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE};
use time::OffsetDateTime;

use crate::cache::{AppThrottles, EndpointCache, KnownCircuits};
use crate::config::DispatcherConfig;
use crate::in_flight::InFlight;
use crate::keys::KeyCache;
use crate::oauth::TokenCache;
use crate::sender::{Exchange, Sender, SenderError};
use crate::turns::ends_turn;

/// How long an attempt waits for one of its endpoint's request slots before giving its worker
/// back: long enough for a fast endpoint's slots to turn over, short against a slow one.
const SLOT_WAIT: std::time::Duration = std::time::Duration::from_millis(50);
/// How long a task waits in the schedule when its endpoint had no free slot.
const BUSY_ENDPOINT_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// What became of one task. Every variant means "ack it".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The endpoint answered 2xx.
    Succeeded,
    /// The attempt failed and the next one is in the retry schedule.
    RetryScheduled,
    /// The last attempt failed; the destination is marked failed.
    Exhausted,
    /// A manual attempt (resend) failed; the pair's retry plan is unchanged.
    ManualFailed,
    /// The endpoint answered 410 Gone and has been disabled.
    Disabled,
    /// Nothing to do: the endpoint or message was deleted, or the endpoint is disabled.
    Skipped,
    /// The endpoint's rate limit or the app's throttle gave this attempt a later slot, or
    /// the endpoint already has its most attempts in flight; it waits in the schedule, not
    /// in a worker.
    Deferred,
    /// The endpoint's circuit is open: the attempt waits in the schedule, not spent, until
    /// the circuit may be tried again.
    Held,
    /// An ordered endpoint's task whose turn has not come: it waits with its endpoint's
    /// line in the store, which hands it back when the message ahead of it is done.
    Waiting,
}

impl Outcome {
    /// The `outcome` label of `hookline_deliveries_total`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::RetryScheduled => "retry_scheduled",
            Self::Exhausted => "exhausted",
            Self::ManualFailed => "manual_failed",
            Self::Disabled => "disabled",
            Self::Skipped => "skipped",
            Self::Deferred => "deferred",
            Self::Held => "held",
            Self::Waiting => "waiting",
        }
    }
}

/// Why a task could not be settled; the task must go back to the queue.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A task whose turn came could not be queued.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// The stores a dispatcher reads and writes.
#[derive(Clone)]
pub struct Stores {
    pub registry: Arc<dyn Registry>,
    pub messages: Arc<dyn MessageStore>,
    pub attempts: Arc<dyn AttemptLog>,
    pub schedule: Arc<dyn RetrySchedule>,
    pub limiter: Arc<dyn RateLimiter>,
    pub health: Arc<dyn EndpointHealth>,
    pub settlement: Arc<dyn Settlement>,
    /// The lines of ordered endpoints: whose turn it is.
    pub sequencer: Arc<dyn Sequencer>,
    /// Queues the tasks of ordered endpoints whose turn came.
    pub publisher: Arc<dyn TaskPublisher>,
    /// This process's backlog tally: tasks taken and concluded (flushed to the store by the
    /// process, never written on a delivery's path).
    pub backlog: SharedTally,
}

/// What [`Dispatcher::admit`] decided.
enum Admission {
    /// Call the endpoint.
    Send(Box<Admitted>),
    /// The task is settled without a call.
    Done(Outcome),
}

/// A task cleared to call its endpoint, with what the call needs.
struct Admitted {
    endpoint: Endpoint,
    previous: Option<DestinationStatus>,
    body: Bytes,
    secrets: Vec<SigningKey>,
}

/// What [`Dispatcher::deliver`] leaves to do.
pub enum Delivered {
    /// The task is settled (nothing to send, or held or deferred, already written): ack it.
    Done(Outcome),
    /// An attempt was made: settle it, with others, through [`Dispatcher::settle_batch`],
    /// then ack it.
    Attempted(Box<Attempted>),
}

/// An attempt made and what follows from it, not yet durable.
pub struct Attempted {
    pub(crate) task: DeliveryTask,
    pub(crate) endpoint: Endpoint,
    pub(crate) settled: SettledAttempt,
    /// The endpoint answered 410 Gone.
    pub(crate) gone: bool,
    pub(crate) success: bool,
}

/// A request made, as the attempt log keeps it.
pub(crate) struct Sent {
    pub(crate) exchange: Exchange,
    pub(crate) request_headers: std::collections::BTreeMap<String, String>,
}

/// Delivers tasks. Stateless apart from its HTTP connection pool and caches.
pub struct Dispatcher {
    pub(crate) config: DispatcherConfig,
    pub(crate) stores: Stores,
    pub(crate) sender: Sender,
    pub(crate) events: OperationalEvents,
    pub(crate) metrics: Arc<Metrics>,
    in_flight: InFlight,
    pub(crate) endpoints: EndpointCache,
    pub(crate) circuits: KnownCircuits,
    apps: AppThrottles,
    pub(crate) queue_age: crate::queue_age::QueueAge,
    /// OAuth2 access tokens of the endpoints that need one, shared by every worker.
    pub(crate) tokens: TokenCache,
    /// Ed25519 signing keys already read, so a delivery does not derive them again.
    keys: KeyCache,
}

impl Dispatcher {
    /// Deliveries connect only to addresses `resolver` permits.
    pub fn new(
        config: DispatcherConfig,
        stores: Stores,
        resolver: Resolver,
        events: OperationalEvents,
        metrics: Arc<Metrics>,
    ) -> Result<Self, SenderError> {
        let endpoints = EndpointCache::new(config.cache_ttl);
        let circuits = KnownCircuits::new(config.cache_ttl);
        let apps = AppThrottles::new(config.cache_ttl);
        let sender = Sender::new(
            config.request_timeout,
            config.max_response_bytes,
            &config.user_agent,
            resolver,
            config.egress_proxy.as_ref(),
        )?;
        Ok(Self {
            config,
            stores,
            sender,
            events,
            metrics,
            in_flight: InFlight::default(),
            endpoints,
            circuits,
            apps,
            queue_age: crate::queue_age::QueueAge::default(),
            tokens: TokenCache::default(),
            keys: KeyCache::default(),
        })
    }

    pub fn config(&self) -> &DispatcherConfig {
        &self.config
    }

    /// Makes the task's attempt, or settles it without one. Safe to repeat: a redelivered
    /// task makes one more attempt with the same `webhook-id`.
    ///
    /// Two steps here: [`Self::admit`] (the endpoint, the circuit, the rate limits) and
    /// [`Self::exchange`] (one of the endpoint's slots, sign, POST); the third, settling
    /// (record, schedule, health), is [`Self::settle_batch`], once for many attempts. A
    /// step that ends the task early has put it where it must go (the schedule, the
    /// attempt log) before it returns, so the caller only acks.
    pub async fn deliver(&self, task: &DeliveryTask) -> Result<Delivered, DeliveryError> {
        let admitted = match self.admit(task).await? {
            Admission::Send(admitted) => admitted,
            Admission::Done(outcome) => {
                if task.in_line && ends_turn(outcome) {
                    self.pass_turns(&[Leaving::of(task)]).await?;
                }
                return Ok(Delivered::Done(outcome));
            }
        };
        let Some(sent) = self.exchange(task, &admitted).await? else {
            return Ok(Delivered::Done(Outcome::Deferred));
        };
        Ok(Delivered::Attempted(Box::new(
            self.conclude(task, *admitted, sent),
        )))
    }

    /// The endpoint, from this dispatcher's copy unless it is too old for the task.
    async fn endpoint(&self, task: &DeliveryTask) -> Result<Option<Endpoint>, StoreError> {
        let (app, id) = (&task.app_id, &task.endpoint_id);
        if let Some(known) = self.endpoints.get(app, id, task.endpoint_version) {
            return Ok(known);
        }
        let endpoint = self.stores.registry.get_endpoint(app, id).await?;
        self.endpoints.put(app, id, endpoint.clone());
        Ok(endpoint)
    }

    /// The app's throttle, from this dispatcher's copy unless it is older than the cache's
    /// ttl: an unthrottled app costs no read per delivery either.
    async fn app_throttle(&self, app_id: &str) -> Result<Option<u16>, StoreError> {
        if let Some(known) = self.apps.get(app_id) {
            return Ok(known);
        }
        let app = self.stores.registry.get_app(app_id).await?;
        // By id only: a uid naming another app must not lend it its throttle.
        let throttle = app
            .filter(|app| app.id == app_id)
            .and_then(|app| app.throttle());
        self.apps.put(app_id, throttle);
        Ok(throttle)
    }

    /// Whether the task may call its endpoint now. A task that may not has been dealt with:
    /// dropped (endpoint or message gone, already delivered), held by an open circuit, or
    /// deferred to a slot of its endpoint's rate limit or its app's throttle.
    async fn admit(&self, task: &DeliveryTask) -> Result<Admission, DeliveryError> {
        let Some(endpoint) = self.endpoint(task).await? else {
            tracing::debug!(msg_id = %task.msg_id, endpoint_id = %task.endpoint_id, "endpoint gone; dropping task");
            return Ok(Admission::Done(Outcome::Skipped));
        };
        if endpoint.disabled {
            return Ok(Admission::Done(Outcome::Skipped));
        }
        let previous = self.previous(task, &endpoint.id).await?;
        if task.trigger == TriggerType::Scheduled
            && previous
                .as_ref()
                .is_some_and(|p| p.status == MessageStatus::Success)
        {
            return Ok(Admission::Done(Outcome::Skipped));
        }
        if task.in_line {
            match self.stores.sequencer.turn(task).await? {
                Turn::Go => {}
                Turn::Wait => return Ok(Admission::Done(Outcome::Waiting)),
                // Delivered or given up already: a duplicate must not repeat it now.
                Turn::Gone => return Ok(Admission::Done(Outcome::Skipped)),
            }
        }
        let Some(body) = self.payload(task).await? else {
            tracing::debug!(msg_id = %task.msg_id, "message gone; dropping task");
            return Ok(Admission::Done(Outcome::Skipped));
        };
        // An open circuit holds the task without spending its attempt (and before the rate
        // limit, which it must not use up). A person's resend bypasses the breaker; its
        // result still counts for the circuit.
        if task.trigger != TriggerType::Manual {
            let gate = self.gate(&task.app_id, &endpoint.id, &task.msg_id).await?;
            if let Gate::Open { until } = gate {
                let held = self.hold(task, &endpoint, previous.as_ref(), until).await?;
                return Ok(Admission::Done(held));
            }
        }
        let throttle = self.app_throttle(&task.app_id).await?;
        let limits = Limits::new(&endpoint.id, endpoint.rate_limit, throttle);
        if !limits.is_empty() && !self.within_rate_limits(task, limits).await? {
            return Ok(Admission::Done(Outcome::Deferred));
        }
        let secrets: Result<Vec<SigningKey>, _> = endpoint
            .signing_secrets(OffsetDateTime::now_utc())
            .map(|text| self.keys.parse(text))
            .collect();
        // The hex body scheme is an HMAC keyed by the current secret's text; the API refuses
        // it beside an ed25519 key, so one here is a damaged record too.
        let unsignable = |keys: &[SigningKey]| {
            matches!(endpoint.signature_scheme, SignatureScheme::HexBody { .. })
                && keys.first().map(SigningKey::key_type) != Some(KeyType::Hmac)
        };
        let secrets = match secrets {
            Ok(keys) if !unsignable(&keys) => keys,
            _ => {
                // Secrets are generated or validated on save, so this is a damaged record.
                // Never send unsigned; leave the task for an operator rather than retry it
                // forever.
                tracing::error!(endpoint_id = %endpoint.id, "stored endpoint secret is unreadable; task dropped");
                return Ok(Admission::Done(Outcome::Skipped));
            }
        };
        Ok(Admission::Send(Box::new(Admitted {
            endpoint,
            previous,
            body,
            secrets,
        })))
    }

    /// The pair's state, for retries and manual attempts: a retry whose message a resend
    /// already delivered is dropped, and a failed resend keeps the pending retry plan.
    /// First attempts skip the read, unless held (a resend may have delivered meanwhile).
    async fn previous(
        &self,
        task: &DeliveryTask,
        endpoint_id: &str,
    ) -> Result<Option<DestinationStatus>, StoreError> {
        let first = task.attempt <= 1 && task.held_since_ms.is_none();
        if first && task.trigger != TriggerType::Manual {
            return Ok(None);
        }
        Ok(self
            .stores
            .messages
            .destinations(&task.app_id, &task.msg_id)
            .await?
            .into_iter()
            .find(|d| d.endpoint_id == endpoint_id))
    }

    /// Signs and sends the request in one of the endpoint's slots, with the endpoint's OAuth2
    /// bearer token when it has a client (`oauth.rs`). `None` when no slot came free within a
    /// moment: the endpoint is slow, and the task waits in the schedule, not in a worker.
    async fn exchange(
        &self,
        task: &DeliveryTask,
        admitted: &Admitted,
    ) -> Result<Option<Sent>, StoreError> {
        let endpoint = &admitted.endpoint;
        let cap = self.config.max_in_flight_per_endpoint;
        let Some(slot) = self.in_flight.acquire(&endpoint.id, cap, SLOT_WAIT).await else {
            self.metrics.busy_endpoint_deferrals.inc();
            let later = OffsetDateTime::now_utc() + BUSY_ENDPOINT_WAIT;
            self.stores.schedule.schedule(task, later).await?;
            return Ok(None);
        };
        let signed_at = OffsetDateTime::now_utc();
        let body = admitted.body.clone();
        let headers = signed_headers(endpoint, &admitted.secrets, task, &body, signed_at);
        let sent = match &endpoint.oauth {
            Some(client) => self.post_authorized(endpoint, client, headers, body).await,
            None => self.post(endpoint, headers, body).await,
        };
        drop(slot);
        self.metrics.attempt_took(sent.exchange.duration);
        Ok(Some(sent))
    }

    /// One POST to the endpoint, with its TLS settings, and its request headers as the
    /// attempt log keeps them.
    pub(crate) async fn post(&self, endpoint: &Endpoint, headers: HeaderMap, body: Bytes) -> Sent {
        let request_headers = self.logged_headers(&headers);
        let exchange = self
            .sender
            .post(&endpoint.url, endpoint.tls.as_ref(), headers, body)
            .await;
        Sent {
            exchange,
            request_headers,
        }
    }

    /// The attempt's record and what follows from it, decided but not yet written.
    fn conclude(&self, task: &DeliveryTask, admitted: Admitted, sent: Sent) -> Attempted {
        let Admitted {
            endpoint, previous, ..
        } = admitted;
        let verdict = classify(sent.exchange.result);
        let now = OffsetDateTime::now_utc();
        let retry_delay = self.retry_delay(task, &sent.exchange);
        let plan = plan_after_attempt(verdict, task.trigger, retry_delay, previous.as_ref(), now);
        let attempt = attempt_record(task, &endpoint, plan.attempt_status, sent, now);
        let destination = DestinationStatus {
            endpoint_id: endpoint.id.clone(),
            status: plan.destination_status,
            attempts: task
                .attempt
                .max(previous.as_ref().map_or(0, |p| p.attempts)),
            next_attempt: plan.next_attempt,
        };
        Attempted {
            task: task.clone(),
            success: plan.attempt_status == MessageStatus::Success,
            gone: plan.disable_endpoint,
            settled: SettledAttempt {
                attempt,
                destination,
                retention_secs: self.config.retention_secs,
                next: plan.schedule_at.map(|due| (task.next_attempt(), due)),
            },
            endpoint,
        }
    }

    /// The schedule's wait after this attempt; a 429/503 `Retry-After` stretches it, within
    /// the schedule's longest delay.
    fn retry_delay(&self, task: &DeliveryTask, exchange: &Exchange) -> Option<std::time::Duration> {
        let retry = &self.config.retry;
        retry
            .delay_after_random(task.attempt)
            .map(|delay| match exchange.retry_after {
                Some(asked) => delay.max(asked.min(retry.max_delay())),
                None => delay,
            })
    }

    /// Logs, measures and announces a settled attempt.
    pub(crate) async fn settled(
        &self,
        task: &DeliveryTask,
        endpoint: &Endpoint,
        attempt: &Attempt,
        outcome: Outcome,
        now: OffsetDateTime,
    ) {
        tracing::debug!(
            msg_id = %task.msg_id,
            endpoint_id = %endpoint.id,
            attempt = task.attempt,
            status = attempt.response_status_code,
            ?outcome,
            "attempt recorded"
        );
        if outcome == Outcome::Succeeded && task.trigger == TriggerType::Scheduled {
            if let Some(accepted_ms) = hookline_core::id::timestamp_ms(&task.msg_id) {
                let waited = unix_ms(now).saturating_sub(accepted_ms);
                self.metrics
                    .end_to_end
                    .observe(std::time::Duration::from_millis(waited).as_secs_f64());
            }
        }
        self.announce_attempt(task, endpoint, attempt, outcome)
            .await;
    }

    /// Whether the task may be sent now under its endpoint's rate limit and its app's
    /// throttle. When not, it has been deferred through the schedule to a slot it holds, so
    /// it holds no worker.
    ///
    /// It reserves the slots it does not hold yet, its endpoint's first and its app's only
    /// once at its endpoint's slot ([`Limits::next_reservation`]), so a shared app slot is
    /// never spent on a task that still waits for its endpoint; a slot is reserved once per
    /// attempt and the task carries what it holds. Then the last gate of both limits at once,
    /// which records the send under both or neither, so a wait at one never uses up the
    /// other.
    async fn within_rate_limits(
        &self,
        task: &DeliveryTask,
        limits: Limits<'_>,
    ) -> Result<bool, StoreError> {
        let limiter = &self.stores.limiter;
        let now = OffsetDateTime::now_utc();
        let mut held = task.held_slots();
        while let Some(limit) = limits.next_reservation(held) {
            let wait = limiter.reserve(&task.app_id, limit, now).await?;
            held = held.with(limit.subject);
            if !wait.is_zero() {
                self.stores
                    .schedule
                    .schedule(&task.deferred(held), now + wait)
                    .await?;
                return Ok(false);
            }
        }
        let gates: Vec<_> = limits.all().collect();
        // The gate's time is taken now, after the reservations' round trips, so what it
        // records is as close to the send as it can be.
        let now = OffsetDateTime::now_utc();
        match limiter.admit(&task.app_id, &gates, now).await? {
            None => Ok(true),
            // Its slot came too close to the previous send (slots arrive late and bunch):
            // keep the slots and try again once the interval has passed.
            Some(left) => {
                self.stores
                    .schedule
                    .schedule(&task.deferred(held), now + left)
                    .await?;
                Ok(false)
            }
        }
    }

    /// The request headers as the attempt log keeps them, with the user agent the sender
    /// adds.
    pub(crate) fn logged_headers(
        &self,
        headers: &HeaderMap,
    ) -> std::collections::BTreeMap<String, String> {
        let sent = headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        let user_agent = ("user-agent", self.config.user_agent.as_str());
        hookline_core::headers::redacted(sent.chain([user_agent]))
    }

    /// The payload rides in the task; older or trimmed tasks fall back to the stored message.
    async fn payload(&self, task: &DeliveryTask) -> Result<Option<Bytes>, StoreError> {
        if let Some(payload) = &task.payload {
            return Ok(Some(Bytes::copy_from_slice(payload.get().as_bytes())));
        }
        let message = self
            .stores
            .messages
            .get_message(&task.app_id, &task.msg_id)
            .await?;
        Ok(message.map(|m| Bytes::copy_from_slice(m.payload.get().as_bytes())))
    }
}

/// The attempt log's entry for a request made (or, for a hold, not made).
pub(crate) fn attempt_record(
    task: &DeliveryTask,
    endpoint: &Endpoint,
    status: MessageStatus,
    sent: Sent,
    now: OffsetDateTime,
) -> Attempt {
    let Sent {
        exchange,
        request_headers,
    } = sent;
    let (status_code, error) = match exchange.result {
        AttemptResult::Status(code) => (code, None),
        AttemptResult::Transport(kind) => (0, Some(kind)),
    };
    Attempt {
        id: new_id("atmpt", unix_ms(now)),
        app_id: task.app_id.clone(),
        msg_id: task.msg_id.clone(),
        endpoint_id: endpoint.id.clone(),
        url: endpoint.url.clone(),
        attempt_number: task.attempt,
        status,
        response_status_code: status_code,
        response: exchange.response_body,
        response_headers: exchange.response_headers,
        response_duration_ms: u64::try_from(exchange.duration.as_millis()).unwrap_or(u64::MAX),
        error,
        trigger_type: task.trigger,
        timestamp: now,
        event_type: task.event_type.clone(),
        request_headers,
    }
}

/// The signature headers of the endpoint's scheme plus its own headers. The message id is
/// the `webhook-id`, so a repeated delivery carries the same id and receivers can deduplicate.
fn signed_headers(
    endpoint: &Endpoint,
    secrets: &[SigningKey],
    task: &DeliveryTask,
    body: &[u8],
    now: OffsetDateTime,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in &endpoint.headers {
        // Names and values were validated when the endpoint was saved; skip rather than fail
        // a delivery if a stored record disagrees.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(name, value);
        }
    }
    let timestamp = now.unix_timestamp();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let (id, time, signature) = match &endpoint.signature_scheme {
        SignatureScheme::Standard | SignatureScheme::HexBody { .. } => {
            ("webhook-id", "webhook-timestamp", "webhook-signature")
        }
        SignatureScheme::Svix => ("svix-id", "svix-timestamp", "svix-signature"),
    };
    insert(&mut headers, id, &task.msg_id);
    insert(&mut headers, time, &timestamp.to_string());
    match &endpoint.signature_scheme {
        SignatureScheme::HexBody { header } => {
            // Only the current secret: this scheme has no room for a second signature.
            let value = hex_body_signature(endpoint.secret.expose(), body);
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(header.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                headers.insert(name, value);
            }
        }
        SignatureScheme::Standard | SignatureScheme::Svix => {
            let value = signature_header(secrets, &task.msg_id, timestamp, body);
            insert(&mut headers, signature, &value);
        }
    }
    headers
}

fn insert(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), value);
    }
}

pub(crate) fn unix_ms(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}
