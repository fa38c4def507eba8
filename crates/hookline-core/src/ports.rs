//! The small traits behind which the RabbitMQ, Redis and embedded adapters live.
//!
//! Roles hold them as `Arc<dyn …>` so the same role code runs on any backend. Errors say what
//! the caller must do: [`QueueError::Unavailable`] and [`StoreError::Unavailable`] mean "answer
//! 503 / try again later", never "the data is gone".

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::model::{
    App, AppToken, Attempt, BackgroundTask, DeliveryTask, DestinationStatus, Endpoint, EventType,
    Message,
};
use crate::names::SessionId;
use crate::rate::Limit;

/// Failures of the task queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The broker cannot be reached or refused the operation; retry later.
    #[error("message broker unavailable: {0}")]
    Unavailable(String),
    /// The broker answered, but did not take the task (nack, unroutable).
    #[error("message broker rejected the task: {0}")]
    Rejected(String),
}

/// Failures of the Redis (or embedded) store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or timed out; retry later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored record could not be decoded: a bug or a manual edit, not the caller's fault.
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// A unique key (uid, event type name) is already taken.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// A cap checked atomically with the insert it guards is reached (`max` of `what`).
    #[error("the maximum of {max} {what} is reached")]
    LimitReached { what: &'static str, max: usize },
}

/// Publishes delivery tasks durably.
#[async_trait]
pub trait TaskPublisher: Send + Sync {
    /// Returns only after the broker has confirmed every task (persistent, routed to the
    /// durable queue). Tasks are published pipelined, not one round trip each.
    async fn publish(&self, tasks: &[DeliveryTask]) -> Result<(), QueueError>;

    /// Whether the publisher currently holds a live broker connection.
    async fn is_ready(&self) -> bool;
}

/// Settles one received task.
#[async_trait]
pub trait TaskAcker: Send + Sync {
    /// The outcome is durable elsewhere: remove the task from the queue.
    async fn ack(&self) -> Result<(), QueueError>;
    /// Give the task back to the queue for another consumer (shutdown, transient failure).
    async fn requeue(&self) -> Result<(), QueueError>;
}

/// A task taken from the queue, to be settled by its acker exactly once.
pub struct ReceivedTask {
    pub task: DeliveryTask,
    pub acker: Box<dyn TaskAcker>,
}

/// A stream of tasks from the queue. Reconnects internally; undecodable tasks are
/// dead-lettered by the adapter and never reach the caller.
#[async_trait]
pub trait TaskSource: Send {
    /// The next task; waits through broker outages. `None` once [`TaskSource::close`] ran.
    async fn next(&mut self) -> Option<ReceivedTask>;
    /// Stop receiving new tasks; tasks already handed out can still be settled.
    async fn close(&mut self);
}

/// One page of a listing, newest first unless asked otherwise.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass back to get the following page; `None` when `done`.
    pub iterator: Option<String>,
    pub prev_iterator: Option<String>,
    pub done: bool,
}

/// Which page of a listing to read.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: usize,
    /// Continue after this item id (exclusive).
    pub iterator: Option<String>,
    /// Oldest first instead of newest first.
    pub ascending: bool,
    /// Only messages of these event types are wanted. A store with an index for it may
    /// leave the others out; one without returns everything, and the caller filters.
    pub event_types: Option<Vec<String>>,
}

/// Apps, endpoints and event types: the configuration producers manage.
#[async_trait]
pub trait Registry: Send + Sync {
    /// Stores a new app; [`StoreError::Conflict`] if its uid is taken.
    async fn create_app(&self, app: &App) -> Result<(), StoreError>;
    /// Finds an app by id or uid.
    async fn get_app(&self, id_or_uid: &str) -> Result<Option<App>, StoreError>;
    async fn list_apps(&self, page: &PageRequest) -> Result<Page<App>, StoreError>;
    /// Replaces an app; `previous` is the stored version (for uid bookkeeping).
    async fn update_app(&self, previous: &App, app: &App) -> Result<(), StoreError>;
    /// Deletes an app with its endpoints.
    async fn delete_app(&self, app: &App) -> Result<(), StoreError>;

    /// Stores a new endpoint unless its app already has `max_per_app` endpoints
    /// ([`StoreError::LimitReached`]) or its uid is taken ([`StoreError::Conflict`]); the
    /// count, the uid and the insert are one atomic step.
    async fn create_endpoint(
        &self,
        endpoint: &Endpoint,
        max_per_app: usize,
    ) -> Result<(), StoreError>;
    /// Finds an endpoint of `app_id` by id or uid.
    async fn get_endpoint(
        &self,
        app_id: &str,
        id_or_uid: &str,
    ) -> Result<Option<Endpoint>, StoreError>;
    /// Every endpoint of an app, oldest first: the fan-out list at ingest.
    async fn endpoints_of_app(&self, app_id: &str) -> Result<Vec<Endpoint>, StoreError>;
    /// An app (by id or uid) with [`Registry::endpoints_of_app`]: what creating a message
    /// reads. A store that can read both at once overrides this.
    async fn app_with_endpoints(
        &self,
        id_or_uid: &str,
    ) -> Result<Option<(App, Vec<Endpoint>)>, StoreError> {
        let Some(app) = self.get_app(id_or_uid).await? else {
            return Ok(None);
        };
        let endpoints = self.endpoints_of_app(&app.id).await?;
        Ok(Some((app, endpoints)))
    }
    async fn update_endpoint(
        &self,
        previous: &Endpoint,
        endpoint: &Endpoint,
    ) -> Result<(), StoreError>;
    async fn delete_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError>;

    async fn create_event_type(&self, event_type: &EventType) -> Result<(), StoreError>;
    async fn get_event_type(&self, name: &str) -> Result<Option<EventType>, StoreError>;
    async fn list_event_types(&self) -> Result<Vec<EventType>, StoreError>;
    async fn update_event_type(&self, event_type: &EventType) -> Result<(), StoreError>;
    async fn delete_event_type(&self, name: &str) -> Result<bool, StoreError>;
}

/// The state of an idempotency claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// This request owns the keys and must finish or release them.
    Claimed,
    /// The request that held the keys stopped before it finished (its lease ran out). This
    /// request now owns them and must finish that request's message, whose id this is: it
    /// may be stored already, and its tasks may or may not be queued.
    Adopted(String),
    /// Another request owns them and has not finished.
    InProgress,
    /// An earlier request finished; this is its stored response.
    Done(String),
}

/// A stored message whose tasks are not confirmed by the queue yet: the outbox mark.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Unconfirmed {
    pub app_id: String,
    pub msg_id: String,
    /// `deliverAt`: its tasks go to the retry schedule, not the queue, while this is ahead.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub deliver_at: Option<OffsetDateTime>,
}

/// One message of [`MessageStore::insert_unconfirmed_batch`]: the arguments of
/// [`MessageStore::insert_unconfirmed`].
#[derive(Debug, Clone)]
pub struct NewUnconfirmed {
    pub message: Message,
    pub endpoint_ids: Vec<String>,
    pub retention_secs: u64,
    pub deliver_at: Option<OffsetDateTime>,
    pub lease_ms: u64,
}

/// One message of [`MessageStore::confirm_messages_batch`]: the arguments of
/// [`MessageStore::confirm_message`].
#[derive(Debug, Clone)]
pub struct ConfirmedMessage {
    pub app_id: String,
    pub msg_id: String,
    pub keys: Vec<String>,
    pub response: String,
    pub ttl_secs: u64,
}

/// A message to accept in one write with its tasks: what
/// [`MessageStore::accept_and_enqueue`] stores, queues and records.
#[derive(Debug, Clone)]
pub struct AcceptedMessage {
    pub message: Message,
    pub endpoint_ids: Vec<String>,
    pub retention_secs: u64,
    /// One task per endpoint, to be queued now (never a future `deliverAt`).
    pub tasks: Vec<DeliveryTask>,
    /// The idempotency keys to record `response` under, for `ttl_secs`.
    pub keys: Vec<String>,
    pub response: String,
    pub ttl_secs: u64,
}

/// Messages, their idempotency keys and their per-endpoint delivery state.
#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Claims every key in `keys` (all or none) for `owner` for `lease_ms`. The claim and its
    /// owner are remembered for `keep_secs`, so a request that finds it with its lease run
    /// out adopts the owner's message instead of creating a second one.
    async fn claim_idempotency(
        &self,
        app_id: &str,
        keys: &[String],
        owner: &str,
        lease_ms: u64,
        keep_secs: u64,
    ) -> Result<IdempotencyClaim, StoreError>;
    /// Records `response` under every key for `ttl_secs`.
    async fn complete_idempotency(
        &self,
        app_id: &str,
        keys: &[String],
        response: &str,
        ttl_secs: u64,
    ) -> Result<(), StoreError>;
    /// The response recorded under a completed idempotency key, if it is still kept.
    async fn idempotent_response(
        &self,
        app_id: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError>;
    /// Gives up a claim so a retry of the request can proceed.
    async fn release_idempotency(
        &self,
        app_id: &str,
        keys: &[String],
        owner: &str,
    ) -> Result<(), StoreError>;

    /// Stores a message and marks it pending for each of `endpoint_ids`, atomically.
    async fn insert_message(
        &self,
        message: &Message,
        endpoint_ids: &[String],
        retention_secs: u64,
    ) -> Result<(), StoreError>;
    /// Stores a message like [`MessageStore::insert_message`] and, in the same write, marks it
    /// unconfirmed (in the outbox) until [`MessageStore::confirm_message`]. The mark can be
    /// claimed by [`MessageStore::claim_unconfirmed`] once `lease_ms` have passed, so a
    /// message whose request died before its tasks were confirmed is still queued.
    async fn insert_unconfirmed(
        &self,
        message: &Message,
        endpoint_ids: &[String],
        retention_secs: u64,
        deliver_at: Option<OffsetDateTime>,
        lease_ms: u64,
    ) -> Result<(), StoreError>;
    /// The message's tasks are confirmed by the queue: clears its outbox mark and records
    /// `response` under `keys` (none for a sweep) for `ttl_secs`, in one write.
    async fn confirm_message(
        &self,
        app_id: &str,
        msg_id: &str,
        keys: &[String],
        response: &str,
        ttl_secs: u64,
    ) -> Result<(), StoreError>;
    /// The outbox mark of a message, if its tasks are not confirmed yet.
    async fn unconfirmed(
        &self,
        app_id: &str,
        msg_id: &str,
    ) -> Result<Option<Unconfirmed>, StoreError>;
    /// Takes up to `limit` outbox marks whose lease ran out, each under a new lease of
    /// `lease_ms`, so concurrent sweepers take different messages.
    async fn claim_unconfirmed(
        &self,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<Unconfirmed>, StoreError>;
    /// Removes a message that was never accepted (its tasks could not be queued), with its
    /// outbox mark.
    async fn remove_message(&self, app_id: &str, msg_id: &str) -> Result<(), StoreError>;
    async fn get_message(&self, app_id: &str, msg_id: &str) -> Result<Option<Message>, StoreError>;
    async fn list_messages(
        &self,
        app_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Message>, StoreError>;
    /// Replaces a message's payload with `{}`, keeping its retention; `false` if it is gone.
    async fn expunge_payload(&self, app_id: &str, msg_id: &str) -> Result<bool, StoreError>;
    /// Per-endpoint delivery state of a message.
    async fn destinations(
        &self,
        app_id: &str,
        msg_id: &str,
    ) -> Result<Vec<DestinationStatus>, StoreError>;

    /// Where delivery of each of `msg_ids` to `endpoint_id` stands (messages gone, or never
    /// meant for the endpoint, are left out): an endpoint's statistics. A store that can read
    /// them in one query overrides this.
    async fn destination_states(
        &self,
        app_id: &str,
        endpoint_id: &str,
        msg_ids: &[String],
    ) -> Result<Vec<(String, crate::model::MessageStatus)>, StoreError> {
        let mut states = Vec::with_capacity(msg_ids.len());
        for msg_id in msg_ids {
            let found = self
                .destinations(app_id, msg_id)
                .await?
                .into_iter()
                .find(|d| d.endpoint_id == endpoint_id);
            if let Some(destination) = found {
                states.push((msg_id.clone(), destination.status));
            }
        }
        Ok(states)
    }

    /// [`MessageStore::insert_unconfirmed`] for many messages at once (concurrent requests'
    /// messages share one write). Each message is its own atomic write, as if inserted alone;
    /// the answer has one result per item, in order, and one item's failure is not the
    /// others'. `Err` when the whole write failed (nothing reached the store, or it is not
    /// known what did). A store that can write several at once overrides this.
    async fn insert_unconfirmed_batch(
        &self,
        items: &[NewUnconfirmed],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            results.push(
                self.insert_unconfirmed(
                    &item.message,
                    &item.endpoint_ids,
                    item.retention_secs,
                    item.deliver_at,
                    item.lease_ms,
                )
                .await,
            );
        }
        Ok(results)
    }
    /// [`MessageStore::confirm_message`] for many messages at once, answered like
    /// [`MessageStore::insert_unconfirmed_batch`].
    async fn confirm_messages_batch(
        &self,
        items: &[ConfirmedMessage],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            results.push(
                self.confirm_message(
                    &item.app_id,
                    &item.msg_id,
                    &item.keys,
                    &item.response,
                    item.ttl_secs,
                )
                .await,
            );
        }
        Ok(results)
    }

    /// For a store that owns the delivery queue too (the publisher's queue is in the same
    /// database): stores the message as [`MessageStore::insert_message`] does, queues its
    /// tasks as [`TaskPublisher::publish`] does and records the response under its keys as
    /// [`MessageStore::confirm_message`] does, all in one durable write, with no outbox
    /// mark (nothing can be stored without its tasks). `Ok(Some(()))`: all of it is durable
    /// and the tasks are ready to consume. `Err`: nothing was written. `Ok(None)`: this
    /// store cannot; the caller takes the outbox path (store, publish, confirm).
    async fn accept_and_enqueue(&self, item: &AcceptedMessage) -> Result<Option<()>, StoreError> {
        let _ = item;
        Ok(None)
    }
}

/// The attempt log.
#[async_trait]
pub trait AttemptLog: Send + Sync {
    /// Records an attempt and the destination's new state in one write.
    async fn record_attempt(
        &self,
        attempt: &Attempt,
        destination: &DestinationStatus,
        retention_secs: u64,
    ) -> Result<(), StoreError>;
    async fn get_attempt(
        &self,
        app_id: &str,
        attempt_id: &str,
    ) -> Result<Option<Attempt>, StoreError>;
    /// Clears an attempt's stored response body, keeping its retention; `false` if gone.
    async fn expunge_response(&self, app_id: &str, attempt_id: &str) -> Result<bool, StoreError>;
    async fn attempts_by_message(
        &self,
        app_id: &str,
        msg_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Attempt>, StoreError>;
    async fn attempts_by_endpoint(
        &self,
        app_id: &str,
        endpoint_id: &str,
        page: &PageRequest,
    ) -> Result<Page<Attempt>, StoreError>;
}

/// An attempt made, with what follows from it: the unit of [`Settlement::settle`].
#[derive(Debug, Clone)]
pub struct SettledAttempt {
    pub attempt: Attempt,
    /// The destination's state after the attempt.
    pub destination: DestinationStatus,
    pub retention_secs: u64,
    /// The next attempt and when it is due, if there is one.
    pub next: Option<(DeliveryTask, OffsetDateTime)>,
}

/// One endpoint's results in a batch, for its health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub app_id: String,
    pub endpoint_id: String,
    pub results: crate::breaker::Results,
}

/// An endpoint's health after a batch was settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthAfter {
    pub app_id: String,
    pub endpoint_id: String,
    pub health: crate::breaker::Health,
}

/// Makes the outcomes of many attempts durable at once: the dispatcher's batched write.
#[async_trait]
pub trait Settlement: Send + Sync {
    /// Records every attempt with its destination's state, then puts every next attempt in
    /// the retry schedule, then applies each endpoint's results to its health, so that a
    /// crash part way repeats an attempt rather than loses one (the caller acks the batch's
    /// tasks only after this returns). Answers each reported endpoint's health, in the
    /// order of `health`. On an error nothing may be assumed written; writing the same
    /// batch again is harmless apart from counting its failures twice.
    async fn settle(
        &self,
        attempts: &[&SettledAttempt],
        health: &[HealthReport],
        rules: crate::breaker::OpenRules,
    ) -> Result<Vec<HealthAfter>, StoreError>;
}

/// The lines of ordered (FIFO) endpoints ([`crate::fifo`], whose [`crate::fifo::Line`] is
/// the reference for every step here). Each step on one line is atomic, so a task asking
/// for its turn and the message ahead of it leaving cannot miss each other.
#[async_trait]
pub trait Sequencer: Send + Sync {
    /// Puts each message in its endpoint's line, in the order given, at
    /// [`crate::fifo::place`]; one already in its line keeps its place. Durable before it
    /// returns: a task is queued only after its message joined.
    async fn join(
        &self,
        joining: &[crate::fifo::Joining],
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Whether `task` may call its endpoint now ([`crate::fifo::Line::turn`]). A task
    /// answered `Wait` is kept with its line (the caller acks it) and handed back by
    /// [`Sequencer::leave`] or [`Sequencer::stalled`] when its turn comes.
    async fn turn(&self, task: &DeliveryTask) -> Result<crate::fifo::Turn, StoreError>;
    /// Takes messages out of their lines (delivered, given up, removed) and answers the
    /// tasks that now head their lines and were waiting: the caller queues them. Safe to
    /// repeat.
    async fn leave(
        &self,
        leaving: &[crate::fifo::Leaving],
        now: OffsetDateTime,
    ) -> Result<Vec<DeliveryTask>, StoreError>;
    /// Waiting head tasks that were never handed out, or handed out at least `stale` ago
    /// (whoever took them died before queueing them), at most `limit`: marked handed now,
    /// for the caller to queue. Lines found empty for a while are forgotten.
    async fn stalled(
        &self,
        now: OffsetDateTime,
        stale: std::time::Duration,
        limit: usize,
    ) -> Result<Vec<DeliveryTask>, StoreError>;
    /// The line of one endpoint.
    async fn line(
        &self,
        app_id: &str,
        endpoint_id: &str,
    ) -> Result<crate::fifo::LineState, StoreError>;
    /// Forgets an endpoint's line and its waiting tasks (the endpoint was deleted).
    async fn remove_line(&self, app_id: &str, endpoint_id: &str) -> Result<(), StoreError>;
}

/// A task claimed from the retry schedule, held under a lease until completed.
#[derive(Debug, Clone)]
pub struct ClaimedTask {
    pub claim: ScheduleClaim,
    pub task: DeliveryTask,
}

/// One claim of a schedule key. The same key can be claimed again once a lease runs out, so
/// the token names this claim alone: completing it never touches a later claim of the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ScheduleClaim {
    pub key: String,
    pub token: String,
}

impl ScheduleClaim {
    /// A token for the claims of one `claim_due` call at `now`; each claim appends its
    /// position in the batch (`claim_token`), which makes it unique per claim.
    pub fn batch_token(now: OffsetDateTime) -> String {
        let ms = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        crate::id::new_id("clm", ms)
    }

    /// The token of the `index`th claim of a batch.
    pub fn claim_token(batch: &str, index: usize) -> String {
        format!("{batch}:{index}")
    }
}

/// The durable schedule of future deliveries (retries, `deliverAt`).
#[async_trait]
pub trait RetrySchedule: Send + Sync {
    /// Stores `task` to be due at `due`; the same `schedule_key` is stored once.
    async fn schedule(&self, task: &DeliveryTask, due: OffsetDateTime) -> Result<(), StoreError>;
    /// Atomically moves up to `limit` due tasks under a lease that ends `lease_ms` from
    /// `now`, each with a fresh claim token. Claims whose lease ran out (their scheduler
    /// died) are due again first, and their tokens no longer complete anything.
    async fn claim_due(
        &self,
        now: OffsetDateTime,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<ClaimedTask>, StoreError>;
    /// Forgets claimed tasks once they are safely back on the queue. A claim that is no
    /// longer the key's current one (its lease ran out and the key was claimed again) is
    /// left alone; an entry scheduled again while its claim was in flight stays due.
    async fn complete(&self, claims: &[ScheduleClaim]) -> Result<(), StoreError>;
    /// When the earliest task is due, if any.
    async fn next_due(&self) -> Result<Option<OffsetDateTime>, StoreError>;
    /// Tasks waiting (due or not) plus tasks under lease.
    async fn backlog(&self) -> Result<u64, StoreError>;
    /// Stores every task of `tasks` to be due at `due`, all or none: a message's `deliverAt`
    /// tasks, so a failure never leaves some of them scheduled for a message that was refused.
    async fn schedule_all(
        &self,
        tasks: &[DeliveryTask],
        due: OffsetDateTime,
    ) -> Result<(), StoreError>;
}

/// App-scoped tokens, stored by the SHA-256 digest of the token (never the token itself).
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a token until its expiry.
    async fn create_app_token(&self, digest: &str, token: &AppToken) -> Result<(), StoreError>;
    /// The token with this digest, if it exists and was not revoked.
    async fn find_app_token(&self, digest: &str) -> Result<Option<AppToken>, StoreError>;
    /// Revokes every token of an app; answers how many were revoked.
    async fn revoke_app_tokens(&self, app_id: &str) -> Result<u64, StoreError>;
    /// Revokes the one token with this digest (a logout); answers whether it existed.
    async fn revoke_app_token(&self, digest: &str) -> Result<bool, StoreError>;
    /// Makes the app's tokens (only those of the sessions in `sessions`, when given) expire
    /// at `at` unless they expire sooner; a time not after `now` revokes them. Answers how
    /// many tokens it shortened or revoked.
    async fn expire_app_tokens(
        &self,
        app_id: &str,
        sessions: Option<&[SessionId]>,
        at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError>;
}

/// What "expire all" does to one stored token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenExpiry {
    /// Not of the named sessions, or already expiring by then: left alone.
    Keep,
    /// Revoked now.
    Revoke,
    /// Kept until the new, earlier expiry.
    Shorten(OffsetDateTime),
}

impl TokenExpiry {
    /// The one rule both stores apply to each token of the app.
    pub fn decide(
        token: &AppToken,
        sessions: Option<&[SessionId]>,
        at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Self {
        let named = sessions.is_none_or(|sessions| {
            token
                .session_id
                .as_ref()
                .is_some_and(|session| sessions.contains(session))
        });
        if !named {
            Self::Keep
        } else if at <= now {
            Self::Revoke
        } else if at < token.expires_at {
            Self::Shorten(at)
        } else {
            Self::Keep
        }
    }
}

/// How a background task starts.
#[derive(Debug, Clone, Default)]
pub struct TaskStart {
    /// Answer the task an earlier request started under this key (scoped by the caller)
    /// instead of starting another, for `idempotency_ttl_secs`.
    pub idempotency_key: Option<String>,
    pub idempotency_ttl_secs: u64,
}

/// Background tasks: every kind in one store, listed newest first across apps.
#[async_trait]
pub trait BackgroundTaskStore: Send + Sync {
    /// Stores `task` (running) unless the start's idempotency key names a task already, or
    /// `task.lock` is held by a task whose lease holds: then answers that task and stores
    /// nothing. Taking the lock, the key and the record is one atomic step.
    async fn begin_task(
        &self,
        task: &BackgroundTask,
        start: &TaskStart,
    ) -> Result<Option<BackgroundTask>, StoreError>;
    /// Records progress. The lock `task` holds is renewed until its `lease_until` while it
    /// runs, and released once it has ended.
    async fn save_task(&self, task: &BackgroundTask) -> Result<(), StoreError>;
    async fn get_task(&self, task_id: &str) -> Result<Option<BackgroundTask>, StoreError>;
    /// Tasks by id (creation time), newest first unless asked otherwise. Records are kept
    /// [`crate::model::TASK_RETENTION`] after their last save.
    async fn list_tasks(&self, page: &PageRequest) -> Result<Page<BackgroundTask>, StoreError>;
}

/// Delivery rate limits shared by every dispatcher (GCRA): each endpoint's, and each app's
/// over all its endpoints. The decisions are [`crate::rate`]'s; a store keeps each limit's
/// state under the app.
#[async_trait]
pub trait RateLimiter: Send + Sync {
    /// Reserves the next send slot of `limit` (of app `app_id`), answering how long from
    /// `now` until that slot (zero: send now). The slot is taken either way, so a deferred
    /// task must be sent at its slot without asking again.
    async fn reserve(
        &self,
        app_id: &str,
        limit: Limit<'_>,
        now: OffsetDateTime,
    ) -> Result<std::time::Duration, StoreError>;

    /// The last gate before sending, of every one of `limits` at once
    /// ([`crate::rate::admit_all`] on each limit's [`Limit::gate`]): records a send at `now`
    /// under each of them when each one's gate admits it and answers `None`; otherwise
    /// records nothing and answers how long until every gate would. Slots can arrive late
    /// and bunch up; this keeps any one-second window within each limit.
    async fn admit(
        &self,
        app_id: &str,
        limits: &[Limit<'_>],
        now: OffsetDateTime,
    ) -> Result<Option<std::time::Duration>, StoreError>;
}

/// An endpoint's circuit: may a delivery try it now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Healthy: send.
    Closed,
    /// Failing: do not call it; hold the task, without spending an attempt, until `until`:
    /// the end of the open period, or (when another message holds the probe) the end of
    /// that probe's lease.
    Open { until: OffsetDateTime },
    /// The open period ended and this message holds the probe: its attempts may call the
    /// endpoint, and a success closes the circuit.
    Probe,
}

/// An endpoint's current run of failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureStreak {
    pub consecutive: u32,
    /// When the run began (the first failure since the last success); `None` after a success.
    pub failing_since: Option<OffsetDateTime>,
}

/// Per-endpoint health shared by every dispatcher: the circuit breaker and the failure
/// streak that auto-disables an endpoint.
#[async_trait]
pub trait EndpointHealth: Send + Sync {
    /// Whether a delivery of message `msg_id` may call the endpoint. After the open period
    /// exactly one message gets [`Gate::Probe`], a lease for `probe_ttl` that each of its
    /// attempts renews; a failure extends it by an open period, so the probing message's
    /// own retries may keep trying while every other task is held. Another message may
    /// probe once the lease lapses.
    async fn gate(
        &self,
        app_id: &str,
        endpoint_id: &str,
        msg_id: &str,
        now: OffsetDateTime,
        probe_ttl: std::time::Duration,
    ) -> Result<Gate, StoreError>;

    /// Records an attempt's result. A success clears the streak, closes the circuit and is
    /// remembered for `open_for`; the `threshold`-th consecutive failure opens the circuit
    /// for `open_for` unless the endpoint succeeded within the last `open_for` (it is
    /// alive, only flaky: its failures are retried, not held).
    async fn record(
        &self,
        app_id: &str,
        endpoint_id: &str,
        success: bool,
        now: OffsetDateTime,
        threshold: u32,
        open_for: std::time::Duration,
    ) -> Result<FailureStreak, StoreError>;

    /// Endpoints whose circuit is open (or was, and has not had a success since).
    async fn open_circuits(&self) -> Result<u64, StoreError>;
}

/// The backlog's totals, fed by every process's [`crate::backlog::Tally`] once per flush
/// interval and read by the admin's backlog view. Never on a delivery's path.
#[async_trait]
pub trait BacklogLedger: Send + Sync {
    /// Adds one process's flush to every key it names, by
    /// [`crate::backlog::Balance::apply`] at `now`. Recording a batch whose id was recorded
    /// within [`crate::backlog::BATCH_MEMORY_MS`] changes nothing, so a retry after an
    /// error that did write counts once.
    async fn add(
        &self,
        batch: &crate::backlog::TallyBatch,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// The total pending, the oldest age over every pending key, and the `limit` apps and
    /// endpoints with the most pending (most first), at `now`.
    async fn busiest(
        &self,
        limit: usize,
        now: OffsetDateTime,
    ) -> Result<crate::backlog::BacklogView, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(session: Option<&str>, expires_at: OffsetDateTime) -> AppToken {
        AppToken {
            app_id: "app_1".into(),
            read_only: false,
            capabilities: None,
            session_id: session.map(|s| SessionId::parse(s).expect("valid")),
            expires_at,
        }
    }

    #[test]
    fn expire_all_shortens_revokes_or_keeps_each_token() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let later = now + time::Duration::hours(2);
        let soon = now + time::Duration::minutes(5);
        let a = token(Some("a"), later);
        let none = token(None, later);
        let only_b = [SessionId::parse("b").expect("valid")];
        let decide = TokenExpiry::decide;
        assert_eq!(decide(&a, None, now, now), TokenExpiry::Revoke);
        assert_eq!(decide(&none, None, soon, now), TokenExpiry::Shorten(soon));
        assert_eq!(
            decide(&a, None, later + time::Duration::hours(1), now),
            TokenExpiry::Keep,
            "never lengthened"
        );
        assert_eq!(decide(&a, Some(&only_b), now, now), TokenExpiry::Keep);
        assert_eq!(decide(&none, Some(&only_b), now, now), TokenExpiry::Keep);
        let b = token(Some("b"), later);
        assert_eq!(decide(&b, Some(&only_b), now, now), TokenExpiry::Revoke);
    }
}
