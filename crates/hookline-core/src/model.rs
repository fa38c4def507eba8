//! The domain records Hookline keeps and the delivery task it queues.
//!
//! These derive serde because adapters persist them; the HTTP API has its own shapes in the
//! ingest crate and maps to and from these.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;

use crate::names::{Channel, EventId, EventTypeName, SessionId, Uid};
use crate::outcome::TransportError;
use crate::scope::{Capability, TokenScope};
use crate::secret::SecretText;

/// A tenant of the platform: one customer of the producer, owning endpoints and messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct App {
    pub id: String,
    pub uid: Option<Uid>,
    pub name: String,
    pub metadata: BTreeMap<String, String>,
    /// The app's `throttleRate`: the most messages per second sent to all its endpoints
    /// together (`None`: unthrottled). Kept under its older wire name `rateLimit`; records
    /// written before it was enforced may hold 0, which means unthrottled
    /// ([`App::throttle`]).
    pub rate_limit: Option<u16>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl App {
    /// The throttle the dispatcher applies: messages per second to all the app's endpoints
    /// together, `None` when unthrottled (unset, or 0 in a record from before 0 was
    /// refused).
    pub fn throttle(&self) -> Option<u16> {
        self.rate_limit.filter(|r| *r > 0)
    }
}

/// A URL that receives an app's messages, with its filters and signing secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub id: String,
    pub app_id: String,
    pub uid: Option<Uid>,
    pub url: String,
    pub description: String,
    /// Event types this endpoint wants; `None` means every type.
    pub event_types: Option<Vec<EventTypeName>>,
    /// Channels this endpoint listens to; `None` means every message.
    pub channels: Option<Vec<Channel>>,
    pub disabled: bool,
    pub metadata: BTreeMap<String, String>,
    pub rate_limit: Option<u16>,
    /// The `whsec_…` signing secret; redacted in `Debug`.
    pub secret: SecretText,
    /// Secrets replaced by a rotation that still sign until they expire, so receivers can
    /// switch keys without rejecting a delivery.
    #[serde(default)]
    pub old_secrets: Vec<RetiredSecret>,
    /// Extra headers sent with every delivery.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How deliveries are signed.
    #[serde(default)]
    pub signature_scheme: SignatureScheme,
    /// Messages are delivered in the order they were accepted, one at a time
    /// ([`crate::fifo`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fifo: bool,
    /// A client certificate to present and the CAs to trust; `None`: no client certificate,
    /// the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<crate::outbound::EndpointTls>,
    /// An OAuth2 client whose bearer token every delivery carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<crate::outbound::OAuthClient>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// How an endpoint's deliveries are signed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum SignatureScheme {
    /// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    #[default]
    Standard,
    /// The same signature under Svix's header names (`svix-id`, `svix-timestamp`,
    /// `svix-signature`), for receivers written against Svix.
    Svix,
    /// Hex HMAC-SHA256 of the raw body in the named header (`Byl-Signature`), keyed by the
    /// secret's text.
    #[serde(rename_all = "camelCase")]
    HexBody { header: String },
}

/// A secret replaced by a rotation, still signing until `expires_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetiredSecret {
    pub secret: SecretText,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl Endpoint {
    /// Which saved state of the endpoint this is: its `updated_at` in unix nanoseconds, which
    /// every change sets.
    pub fn version(&self) -> i64 {
        i64::try_from(self.updated_at.unix_timestamp_nanos()).unwrap_or(i64::MAX)
    }

    /// Every secret that signs a delivery at `now`: the current one first, then retired ones
    /// that have not expired.
    pub fn signing_secrets(&self, now: OffsetDateTime) -> impl Iterator<Item = &str> {
        std::iter::once(self.secret.expose()).chain(
            self.old_secrets
                .iter()
                .filter(move |old| old.expires_at > now)
                .map(|old| old.secret.expose()),
        )
    }

    /// Replaces the secret; the old one keeps signing for `grace`. Expired retired secrets
    /// are dropped.
    pub fn rotate_secret(
        &mut self,
        new_secret: SecretText,
        grace: std::time::Duration,
        now: OffsetDateTime,
    ) {
        self.old_secrets.retain(|old| old.expires_at > now);
        let old = std::mem::replace(&mut self.secret, new_secret);
        self.old_secrets.push(RetiredSecret {
            secret: old,
            expires_at: now + grace,
        });
    }

    /// Whether a message of `event_type` on `channels` should be delivered here.
    ///
    /// Disabled endpoints accept nothing. An endpoint with a channel list only takes messages
    /// that name one of its channels; one without takes every message.
    pub fn accepts(&self, event_type: &EventTypeName, channels: Option<&[Channel]>) -> bool {
        if self.disabled {
            return false;
        }
        let type_ok = self
            .event_types
            .as_ref()
            .is_none_or(|types| types.contains(event_type));
        let channel_ok = match (&self.channels, channels) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(wanted), Some(given)) => given.iter().any(|c| wanted.contains(c)),
        };
        type_ok && channel_ok
    }
}

/// A kind of event the producer sends, with optional JSON schemas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventType {
    pub name: EventTypeName,
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    /// The one feature flag of records written before a type could carry several; new
    /// records keep their flags in `feature_flags` and leave this `None`.
    #[serde(default)]
    pub feature_flag: Option<String>,
    /// Feature flags an app portal session must hold to see this type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_flags: Option<Vec<String>>,
    /// The group the type is shown under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_name: Option<String>,
    pub schemas: Option<serde_json::Value>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl EventType {
    /// The type's feature flags, reading a record written with a single flag too.
    pub fn flags(&self) -> Option<Vec<String>> {
        self.feature_flags
            .clone()
            .or_else(|| self.feature_flag.clone().map(|flag| vec![flag]))
    }
}

/// One event accepted for an app.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub id: String,
    pub app_id: String,
    pub event_type: EventTypeName,
    pub event_id: Option<EventId>,
    pub channels: Option<Vec<Channel>>,
    /// Free-form labels a message list can be filtered by (Svix `tags`); never routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    /// The payload, minified once at ingest; delivered byte for byte.
    pub payload: Box<RawValue>,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// When delivery was asked to start (`deliverAt`); `None`: at once.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub deliver_at: Option<OffsetDateTime>,
}

/// Delivery status of a message to one endpoint, or of one attempt (Svix numbering).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MessageStatus {
    Success,
    Pending,
    Fail,
    Sending,
}

impl MessageStatus {
    /// The Svix wire number: Success 0, Pending 1, Fail 2, Sending 3.
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Pending => 1,
            Self::Fail => 2,
            Self::Sending => 3,
        }
    }

    /// The status with Svix wire number `code`.
    pub fn from_code(code: u8) -> Option<Self> {
        [Self::Success, Self::Pending, Self::Fail, Self::Sending]
            .into_iter()
            .find(|s| s.code() == code)
    }

    /// The Svix `statusText`.
    pub fn text(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Pending => "pending",
            Self::Fail => "fail",
            Self::Sending => "sending",
        }
    }
}

/// Why an attempt was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TriggerType {
    /// The normal pipeline: first delivery or a scheduled retry.
    Scheduled,
    /// A person asked for it (resend, recover).
    Manual,
}

impl TriggerType {
    /// The Svix wire number: Scheduled 0, Manual 1.
    pub fn code(self) -> u8 {
        match self {
            Self::Scheduled => 0,
            Self::Manual => 1,
        }
    }
}

/// One HTTP attempt to deliver a message to an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub id: String,
    pub app_id: String,
    pub msg_id: String,
    pub endpoint_id: String,
    pub url: String,
    /// 1-based number of this attempt for the (message, endpoint) pair.
    pub attempt_number: u32,
    pub status: MessageStatus,
    /// HTTP status; 0 when no response arrived.
    pub response_status_code: u16,
    /// The first bytes of the response body (bounded by the dispatcher's limit).
    pub response: String,
    pub response_duration_ms: u64,
    pub error: Option<TransportError>,
    pub trigger_type: TriggerType,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    /// The message's event type, so the log can be filtered by it without reading messages.
    /// Empty in records written before it was kept.
    #[serde(default)]
    pub event_type: String,
    /// The request headers as sent, with sensitive values redacted
    /// ([`crate::headers::redacted`]). Empty in records written before they were kept.
    #[serde(default)]
    pub request_headers: std::collections::BTreeMap<String, String>,
    /// The response's headers as received (bounded by the dispatcher).
    #[serde(default)]
    pub response_headers: std::collections::BTreeMap<String, String>,
}

/// Where delivery of one message to one endpoint stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationStatus {
    pub endpoint_id: String,
    pub status: MessageStatus,
    /// Attempts made so far.
    pub attempts: u32,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_attempt: Option<OffsetDateTime>,
}

impl DestinationStatus {
    /// A message just stored for `endpoint_id`: nothing attempted yet.
    pub fn pending(endpoint_id: &str) -> Self {
        Self {
            endpoint_id: endpoint_id.to_owned(),
            status: MessageStatus::Pending,
            attempts: 0,
            next_attempt: None,
        }
    }
}

/// An app-scoped API token (an app portal session): sees and changes only its app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppToken {
    pub app_id: String,
    /// Only reads are allowed.
    pub read_only: bool,
    /// What the token may do in its app; `None` (and tokens stored before capabilities
    /// existed) means every capability.
    #[serde(default)]
    pub capabilities: Option<BTreeSet<Capability>>,
    /// The session it was minted for, so "expire all" can name sessions.
    #[serde(default)]
    pub session_id: Option<SessionId>,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

impl AppToken {
    /// What the token may do in its app.
    pub fn scope(&self) -> TokenScope {
        TokenScope::stored(self.capabilities.clone(), self.read_only)
    }
}

/// How long background task records are kept after their last change (Svix lists the tasks
/// of the past 90 days).
pub const TASK_RETENTION: std::time::Duration = std::time::Duration::from_secs(90 * 24 * 3600);

/// The prefix of background task ids (Svix's `qtask_`).
pub const TASK_ID_PREFIX: &str = "qtask";

/// What a background task does (Svix's `BackgroundTaskType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TaskKind {
    /// Resend every message that failed for an endpoint in a time range.
    EndpointRecover,
    /// Send an endpoint the messages of a time range it never got an attempt for.
    EndpointReplay,
    /// Send an endpoint again the messages of a time range that match filters.
    EndpointBulkReplay,
    /// Expunge the payload of every message of an app.
    ApplicationPurgeContent,
    /// Count each app's messages in a period.
    ApplicationStats,
    /// List the event types each app's endpoints subscribe to.
    EventTypeAggregate,
}

impl TaskKind {
    /// Every kind, for parsing and listing.
    pub const ALL: [Self; 6] = [
        Self::EndpointRecover,
        Self::EndpointReplay,
        Self::EndpointBulkReplay,
        Self::ApplicationPurgeContent,
        Self::ApplicationStats,
        Self::EventTypeAggregate,
    ];
}

/// Where a background task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TaskStatus {
    Running,
    Finished,
    Failed,
}

/// A piece of work the API started and runs in the background (a recovery, a replay, a
/// purge, a statistic), with its progress so far.
///
/// The process running it renews `lease_until` as it goes. A task still `Running` after its
/// lease lapsed lost its process (a crash or a restart): it reads as failed
/// ([`BackgroundTask::status_at`]) and its lock is free again. Tasks are not resumed: the
/// operations they run can be started again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackgroundTask {
    pub id: String,
    pub kind: TaskKind,
    pub status: TaskStatus,
    /// The app it works on; `None` for tasks over every app (statistics).
    pub app_id: Option<String>,
    pub endpoint_id: Option<String>,
    /// Counts and results so far.
    pub data: TaskData,
    /// Why it failed, for a person to read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// While it runs, no other task holding the same lock starts (one recovery per endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub lease_until: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl BackgroundTask {
    /// A running task of `kind` with empty counts, created at `now` under a lease until
    /// `lease_until`.
    pub fn new(
        id: String,
        kind: TaskKind,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            kind,
            status: TaskStatus::Running,
            app_id: None,
            endpoint_id: None,
            data: TaskData::empty(kind),
            error: None,
            lock: None,
            lease_until,
            created_at: now,
            updated_at: now,
        }
    }

    /// The status as of `now`: a running task whose lease lapsed has lost its process.
    pub fn status_at(&self, now: OffsetDateTime) -> TaskStatus {
        match self.status {
            TaskStatus::Running if self.lease_until <= now => TaskStatus::Failed,
            status => status,
        }
    }

    /// The lease still holds: its process is at work.
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        self.status_at(now) == TaskStatus::Running
    }
}

/// What a background task has counted or found so far; the variant follows its kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum TaskData {
    /// Recover, replay and bulk replay.
    Deliveries(DeliveryCounts),
    /// Expunging an app's payloads.
    #[serde(rename_all = "camelCase")]
    Purge { messages_purged: u64 },
    /// Messages per app in a period.
    #[serde(rename_all = "camelCase")]
    AppStats {
        apps: Vec<AppUsage>,
        /// Ids or uids asked for that name no app.
        unresolved: Vec<String>,
    },
    /// Event types per app.
    #[serde(rename_all = "camelCase")]
    EventTypes { apps: Vec<AppEventTypes> },
}

impl TaskData {
    /// Zero counts for a task of `kind`.
    pub fn empty(kind: TaskKind) -> Self {
        match kind {
            TaskKind::EndpointRecover | TaskKind::EndpointReplay | TaskKind::EndpointBulkReplay => {
                Self::Deliveries(DeliveryCounts::default())
            }
            TaskKind::ApplicationPurgeContent => Self::Purge { messages_purged: 0 },
            TaskKind::ApplicationStats => Self::AppStats {
                apps: Vec::new(),
                unresolved: Vec::new(),
            },
            TaskKind::EventTypeAggregate => Self::EventTypes { apps: Vec::new() },
        }
    }
}

/// Messages a task sent to an endpoint, and what became of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryCounts {
    /// Messages queued for the endpoint.
    pub sent: u64,
    pub succeeded: u64,
    /// The receiver answered, but not with 2xx.
    pub failed: u64,
    /// No answer: refused, unreachable, timed out, TLS failure or blocked.
    pub connection_errors: u64,
}

impl DeliveryCounts {
    /// Sends whose outcome is not known yet.
    pub fn outstanding(&self) -> u64 {
        self.sent
            .saturating_sub(self.succeeded + self.failed + self.connection_errors)
    }
}

/// One app's messages in a statistics period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppUsage {
    pub app_id: String,
    pub app_uid: Option<String>,
    /// Messages created in the period.
    pub messages: u64,
    /// Their deliveries: one per (message, endpoint) it was routed to.
    pub message_destinations: u64,
}

/// The event types one app's endpoints subscribe to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppEventTypes {
    pub app_id: String,
    /// Named in some endpoint's filter, sorted.
    pub explicitly_subscribed: Vec<String>,
    /// Some endpoint has no event type filter (it takes every type).
    pub has_catch_all: bool,
}

/// The unit of work on the queue: deliver one message to one endpoint, once.
///
/// Wire form (JSON): `{msgId, appId, endpointId, attempt, trigger, eventType?, payload?,
/// traceparent?, rateSlot?, appSlot?, heldSinceMs?, endpointVersion?, queuedAtMs?}`.
/// The payload rides inline so a dispatcher needs no read of the message to deliver it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryTask {
    pub msg_id: String,
    pub app_id: String,
    pub endpoint_id: String,
    /// 1-based number of the attempt this task will make.
    pub attempt: u32,
    pub trigger: TriggerType,
    /// Copied into the attempt log; empty in tasks queued before it was carried.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub event_type: String,
    pub payload: Option<Box<RawValue>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// This attempt already holds its endpoint's rate-limit slot (it was deferred to it):
    /// it does not ask for one again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rate_slot: bool,
    /// This attempt already holds a slot of its app's throttle, taken once it was at its
    /// endpoint's slot ([`crate::rate::Limits::next_reservation`]): it does not ask for one
    /// again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub app_slot: bool,
    /// When this attempt was first held by an open circuit (unix ms); `None` until then and
    /// after every real attempt. Bounds how long a message may wait behind a circuit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_since_ms: Option<i64>,
    /// The endpoint's `updated_at` (unix ns) when the message was accepted: a dispatcher
    /// whose cached copy of the endpoint is older reads it again, so a change made before a
    /// message was sent always applies to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_version: Option<i64>,
    /// When this task was last put on the delivery queue (unix ms): by ingest for a first
    /// attempt, by the scheduler for a retry. The age of the task a dispatcher takes is how
    /// long deliveries wait in the queue, which the backlog view and its alert report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued_at_ms: Option<i64>,
    /// Its message joined the endpoint's line (a FIFO endpoint): the task asks for its turn
    /// before calling the endpoint ([`crate::fifo`]). Set when the task is made, never from
    /// the endpoint's current setting, so turning ordering on or off mid-stream loses no
    /// task.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_line: bool,
}

fn unix_ms_now() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or(i64::MAX)
}

impl DeliveryTask {
    /// Attempt number `attempt` of delivering `message` to `endpoint_id`, payload inline.
    pub fn for_message(
        message: &Message,
        endpoint_id: &str,
        attempt: u32,
        trigger: TriggerType,
    ) -> Self {
        Self {
            msg_id: message.id.clone(),
            app_id: message.app_id.clone(),
            endpoint_id: endpoint_id.to_owned(),
            attempt,
            trigger,
            event_type: message.event_type.as_str().to_owned(),
            payload: Some(message.payload.clone()),
            traceparent: None,
            rate_slot: false,
            app_slot: false,
            held_since_ms: None,
            endpoint_version: None,
            queued_at_ms: Some(unix_ms_now()),
            in_line: false,
        }
    }

    /// The same task, put on the queue now.
    pub fn queued_now(self) -> Self {
        Self {
            queued_at_ms: Some(unix_ms_now()),
            ..self
        }
    }

    /// The task as sent to `endpoint`: it carries the endpoint's version, and, when the
    /// endpoint is ordered, asks for its turn (its message must join the line before the
    /// task is queued).
    pub fn of_endpoint_version(self, endpoint: &Endpoint) -> Self {
        Self {
            endpoint_version: Some(endpoint.version()),
            in_line: endpoint.fifo,
            ..self
        }
    }

    /// The same delivery, one attempt later.
    pub fn next_attempt(&self) -> Self {
        Self {
            attempt: self.attempt.saturating_add(1),
            rate_slot: false,
            app_slot: false,
            held_since_ms: None,
            ..self.clone()
        }
    }

    /// The same attempt, held by an open circuit since `since` (unix ms).
    pub fn held(&self, since: i64) -> Self {
        Self {
            held_since_ms: Some(since),
            rate_slot: false,
            app_slot: false,
            ..self.clone()
        }
    }

    /// The rate-limit slots this attempt holds.
    pub fn held_slots(&self) -> crate::rate::Held {
        crate::rate::Held {
            endpoint: self.rate_slot,
            app: self.app_slot,
        }
    }

    /// The same attempt, deferred to the rate-limit slots `held` it now holds.
    pub fn deferred(&self, held: crate::rate::Held) -> Self {
        Self {
            rate_slot: held.endpoint,
            app_slot: held.app,
            ..self.clone()
        }
    }

    /// Identifies this (message, endpoint, attempt) in the retry schedule, so scheduling the
    /// same retry twice (after a redelivery) stores it once.
    ///
    /// A deferral to a rate-limit slot has a key of its own: the scheduler may still be
    /// completing the entry that brought the attempt, and must not remove the deferral.
    /// A person's resend has one too: it carries the same attempt number as the pending
    /// retry, and deferring it (rate limit, busy endpoint) must not replace that retry.
    pub fn schedule_key(&self) -> String {
        let manual = if self.trigger == TriggerType::Manual {
            ":manual"
        } else {
            ""
        };
        let slot = if self.rate_slot { ":slot" } else { "" };
        let app_slot = if self.app_slot { ":app" } else { "" };
        format!(
            "{}:{}:{}{manual}{slot}{app_slot}",
            self.msg_id, self.endpoint_id, self.attempt
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate::{Held, Subject};

    fn endpoint(types: Option<&[&str]>, channels: Option<&[&str]>, disabled: bool) -> Endpoint {
        let now = OffsetDateTime::UNIX_EPOCH;
        Endpoint {
            id: "ep_1".into(),
            app_id: "app_1".into(),
            uid: None,
            url: "http://127.0.0.1/".into(),
            description: String::new(),
            event_types: types.map(|t| {
                t.iter()
                    .map(|n| EventTypeName::parse(*n).unwrap())
                    .collect()
            }),
            channels: channels.map(|c| c.iter().map(|n| Channel::parse(*n).unwrap()).collect()),
            disabled,
            metadata: BTreeMap::new(),
            rate_limit: None,
            secret: SecretText::new(""),
            old_secrets: Vec::new(),
            headers: BTreeMap::new(),
            signature_scheme: SignatureScheme::Standard,
            fifo: false,
            tls: None,
            oauth: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn filters_by_type_channel_and_disabled() {
        let paid = EventTypeName::parse("invoice.paid").unwrap();
        let created = EventTypeName::parse("customer.created").unwrap();
        let eu = [Channel::parse("eu").unwrap()];
        let us = [Channel::parse("us").unwrap()];
        let cases = [
            (endpoint(None, None, false), &paid, None, true),
            (
                endpoint(Some(&["invoice.paid"]), None, false),
                &paid,
                None,
                true,
            ),
            (
                endpoint(Some(&["invoice.paid"]), None, false),
                &created,
                None,
                false,
            ),
            (endpoint(None, None, true), &paid, None, false),
            (endpoint(None, Some(&["eu"]), false), &paid, None, false),
            (
                endpoint(None, Some(&["eu"]), false),
                &paid,
                Some(&eu[..]),
                true,
            ),
            (
                endpoint(None, Some(&["eu"]), false),
                &paid,
                Some(&us[..]),
                false,
            ),
            (endpoint(None, None, false), &paid, Some(&us[..]), true),
        ];
        for (i, (ep, ty, ch, expected)) in cases.iter().enumerate() {
            assert_eq!(ep.accepts(ty, *ch), *expected, "case {i}");
        }
    }

    #[test]
    fn rotated_secrets_sign_until_they_expire() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut ep = endpoint(None, None, false);
        ep.secret = "first".into();
        ep.rotate_secret("second".into(), std::time::Duration::from_secs(60), now);
        let during: Vec<_> = ep.signing_secrets(now).collect();
        assert_eq!(during, ["second", "first"]);
        let later = now + std::time::Duration::from_secs(61);
        let after: Vec<_> = ep.signing_secrets(later).collect();
        assert_eq!(after, ["second"]);
        ep.rotate_secret("third".into(), std::time::Duration::from_secs(60), later);
        assert_eq!(ep.old_secrets.len(), 1, "the expired one is dropped");
    }

    #[test]
    fn endpoint_debug_shows_no_secret_and_the_record_round_trips() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut ep = endpoint(None, None, false);
        ep.secret = "whsec_currentcurrentcurrent".into();
        ep.rotate_secret(
            "whsec_nextnextnextnextnext".into(),
            std::time::Duration::from_secs(60),
            now,
        );
        let debug = format!("{ep:?}");
        for secret in ["currentcurrent", "nextnextnext"] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
        assert!(debug.contains("<redacted>"), "{debug}");
        let stored = serde_json::to_string(&ep).unwrap();
        let back: Endpoint = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, ep);
        assert_eq!(back.secret.expose(), "whsec_nextnextnextnextnext");
        assert_eq!(
            back.old_secrets[0].secret.expose(),
            "whsec_currentcurrentcurrent"
        );
    }

    #[test]
    fn a_running_task_whose_lease_lapsed_reads_as_failed() {
        let now = OffsetDateTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        let lease = std::time::Duration::from_secs(30);
        let mut task =
            BackgroundTask::new("qtask_1".into(), TaskKind::EndpointReplay, now, now + lease);
        assert_eq!(task.data, TaskData::Deliveries(DeliveryCounts::default()));
        assert_eq!(task.status_at(now), TaskStatus::Running);
        assert!(task.is_live(now));
        let later = now + lease;
        assert_eq!(
            task.status_at(later),
            TaskStatus::Failed,
            "its process is gone"
        );
        assert!(!task.is_live(later));
        task.status = TaskStatus::Finished;
        assert_eq!(
            task.status_at(later),
            TaskStatus::Finished,
            "an ended task stays so"
        );
        let counts = DeliveryCounts {
            sent: 5,
            succeeded: 2,
            failed: 1,
            connection_errors: 1,
        };
        assert_eq!(counts.outstanding(), 1);
        let stored = serde_json::to_string(&task).unwrap();
        let back: BackgroundTask = serde_json::from_str(&stored).unwrap();
        assert_eq!(back, task);
    }

    #[test]
    fn a_held_task_keeps_its_attempt_and_key_until_a_real_attempt() {
        let task = DeliveryTask {
            msg_id: "msg_1".into(),
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
        };
        let held = task.held(1_000);
        assert_eq!((held.attempt, held.held_since_ms), (2, Some(1_000)));
        assert_eq!(held.schedule_key(), task.schedule_key());
        let wire = serde_json::to_value(&held).expect("json");
        assert_eq!(wire["heldSinceMs"], 1_000);
        assert_eq!(held.next_attempt().held_since_ms, None);
        let at_slot = held.deferred(Held::default().with(Subject::Endpoint("ep_1")));
        assert_eq!(at_slot.held_since_ms, Some(1_000));
    }

    #[test]
    fn task_wire_form_is_camel_case_with_inline_payload() {
        let task = DeliveryTask {
            msg_id: "msg_1".into(),
            app_id: "app_1".into(),
            endpoint_id: "ep_1".into(),
            attempt: 1,
            trigger: TriggerType::Scheduled,
            event_type: String::new(),
            payload: Some(RawValue::from_string("{\"a\":1}".into()).unwrap()),
            traceparent: None,
            rate_slot: false,
            app_slot: false,
            held_since_ms: None,
            endpoint_version: None,
            queued_at_ms: None,
            in_line: false,
        };
        let json = serde_json::to_string(&task).unwrap();
        assert_eq!(
            json,
            r#"{"msgId":"msg_1","appId":"app_1","endpointId":"ep_1","attempt":1,"trigger":"scheduled","payload":{"a":1}}"#
        );
        assert_eq!(task.next_attempt().schedule_key(), "msg_1:ep_1:2");
        // A resend deferred while a retry of the same number waits must not replace it.
        let resend = DeliveryTask {
            trigger: TriggerType::Manual,
            ..task.next_attempt()
        };
        assert_eq!(resend.schedule_key(), "msg_1:ep_1:2:manual");
        let endpoint_slot = Held::default().with(Subject::Endpoint("ep_1"));
        assert_eq!(
            resend.deferred(endpoint_slot).schedule_key(),
            "msg_1:ep_1:2:manual:slot"
        );
    }

    /// A deferral holding a further slot has a key of its own each time, and the slots it
    /// holds ride in the task; the next attempt and a circuit hold start without any.
    #[test]
    fn a_deferred_task_carries_the_slots_it_holds() {
        let task = DeliveryTask {
            msg_id: "msg_1".into(),
            app_id: "app_1".into(),
            endpoint_id: "ep_1".into(),
            attempt: 1,
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
        };
        let endpoint = Held::default().with(Subject::Endpoint("ep_1"));
        let both = endpoint.with(Subject::App);
        let app_only = Held::default().with(Subject::App);
        let keys: Vec<_> = [Held::default(), endpoint, both, app_only]
            .into_iter()
            .map(|held| task.deferred(held).schedule_key())
            .collect();
        assert_eq!(
            keys,
            [
                "msg_1:ep_1:1",
                "msg_1:ep_1:1:slot",
                "msg_1:ep_1:1:slot:app",
                "msg_1:ep_1:1:app"
            ]
        );
        let deferred = task.deferred(both);
        assert_eq!(deferred.held_slots(), both);
        let wire = serde_json::to_value(&deferred).expect("json");
        assert_eq!(
            (wire["rateSlot"].clone(), wire["appSlot"].clone()),
            (true.into(), true.into())
        );
        let back: DeliveryTask = serde_json::from_value(wire).expect("task");
        assert_eq!(back.held_slots(), both);
        assert_eq!(deferred.next_attempt().held_slots(), Held::default());
        assert_eq!(deferred.held(1).held_slots(), Held::default());
    }

    /// An app stored before the throttle was enforced, with no rate or with 0, is
    /// unthrottled; both stores keep apps in this JSON form.
    #[test]
    fn an_app_record_without_a_rate_or_with_zero_is_unthrottled() {
        let earlier = r#"{"id":"app_1","uid":null,"name":"a","metadata":{},
            "createdAt":"2024-01-01T00:00:00Z","updatedAt":"2024-01-01T00:00:00Z"}"#;
        let mut app: App = serde_json::from_str(earlier).expect("an earlier record reads");
        assert_eq!((app.rate_limit, app.throttle()), (None, None));
        app.rate_limit = Some(0);
        assert_eq!(app.throttle(), None);
        app.rate_limit = Some(50);
        assert_eq!(app.throttle(), Some(50));
        let stored = serde_json::to_value(&app).expect("json");
        assert_eq!(stored["rateLimit"], 50);
        let back: App = serde_json::from_value(stored).expect("app");
        assert_eq!(back, app);
    }
}
