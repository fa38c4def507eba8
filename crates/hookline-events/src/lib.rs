//! Operational webhooks: `endpoint.created`, `endpoint.updated`, `endpoint.deleted`,
//! `endpoint.disabled`, `message.attempt.failing` and `message.attempt.exhausted`, sent to the
//! operator's endpoints through the same pipeline as every other message (stored, queued
//! with confirms, signed, retried).
//!
//! The operator's endpoints live in an internal application (uid `hookline-operator`) that
//! is created on first use: the one configured in the settings (uid `operator`, kept in step
//! with them) and those created through `/api/v1/operational-webhook/endpoint`, each with its
//! own secret, headers and event type filter. Emitting is best effort: the operation that
//! caused an event has already happened, so a failure to queue the event is logged, never
//! returned.

use std::collections::BTreeMap;
use std::sync::Arc;

use hookline_core::id::new_id;
use hookline_core::model::{App, DeliveryTask, Endpoint, Message, SignatureScheme, TriggerType};
use hookline_core::names::{EventTypeName, Uid};
use hookline_core::ports::{MessageStore, Registry, StoreError, TaskPublisher};
use hookline_core::secret::SecretText;
use serde_json::{json, Value};
use time::OffsetDateTime;

/// The uid of the internal application that holds the operator's endpoints.
pub const OPERATOR_APP_UID: &str = "hookline-operator";
/// The uid of the endpoint configured in the settings; the API does not hand it out.
pub const CONFIGURED_ENDPOINT_UID: &str = "operator";
/// Every event type Hookline sends to operational webhook endpoints.
pub const EVENT_TYPES: [&str; 6] = [
    "endpoint.created",
    "endpoint.updated",
    "endpoint.deleted",
    "endpoint.disabled",
    "message.attempt.failing",
    "message.attempt.exhausted",
];
const RETENTION_SECS: u64 = 30 * 24 * 3600;

/// Where operational webhooks go.
#[derive(Debug, Clone)]
pub struct OperatorTarget {
    pub url: String,
    /// `whsec_…`; receivers verify with it as with any endpoint. Redacted in `Debug`.
    pub secret: SecretText,
}

/// Emits operational events; does nothing when no operator target is configured.
#[derive(Clone)]
pub struct OperationalEvents {
    target: Option<OperatorTarget>,
    registry: Arc<dyn Registry>,
    messages: Arc<dyn MessageStore>,
    publisher: Arc<dyn TaskPublisher>,
}

impl OperationalEvents {
    pub fn new(
        target: Option<OperatorTarget>,
        registry: Arc<dyn Registry>,
        messages: Arc<dyn MessageStore>,
        publisher: Arc<dyn TaskPublisher>,
    ) -> Self {
        Self {
            target,
            registry,
            messages,
            publisher,
        }
    }

    /// Whether `app` is the internal operator application (its own failures emit nothing,
    /// or a dead operator endpoint would feed itself events).
    pub fn is_operator_app(app: &App) -> bool {
        app.uid
            .as_ref()
            .is_some_and(|uid| uid.as_str() == OPERATOR_APP_UID)
    }

    /// `endpoint.created`, `endpoint.updated` or `endpoint.deleted`.
    pub async fn endpoint_changed(&self, event_type: &str, app: &App, endpoint: &Endpoint) {
        if Self::is_operator_app(app) {
            return;
        }
        self.emit(event_type, endpoint_data(app, endpoint)).await;
    }

    /// `endpoint.disabled`; `trigger` is `automatic` (failing too long, or 410 Gone).
    pub async fn endpoint_disabled(
        &self,
        app: &App,
        endpoint: &Endpoint,
        fail_since: Option<OffsetDateTime>,
    ) {
        if Self::is_operator_app(app) {
            return;
        }
        let mut data = endpoint_data(app, endpoint);
        data["trigger"] = json!("automatic");
        data["failSince"] = json!(fail_since.map(rfc3339));
        self.emit("endpoint.disabled", data).await;
    }

    /// `message.attempt.failing` or `message.attempt.exhausted`.
    pub async fn attempt_event(
        &self,
        event_type: &str,
        app: &App,
        endpoint: &Endpoint,
        msg_id: &str,
        last_attempt: Value,
    ) {
        if Self::is_operator_app(app) {
            return;
        }
        let mut data = endpoint_data(app, endpoint);
        data["msgId"] = json!(msg_id);
        data["lastAttempt"] = last_attempt;
        self.emit(event_type, data).await;
    }

    /// Whether `endpoint` is the one configured in the settings (managed by them, not by
    /// the API).
    pub fn is_configured_endpoint(endpoint: &Endpoint) -> bool {
        endpoint
            .uid
            .as_ref()
            .is_some_and(|uid| uid.as_str() == CONFIGURED_ENDPOINT_UID)
    }

    /// The operator application, if it exists yet.
    pub async fn operator_app(&self) -> Result<Option<App>, StoreError> {
        self.registry.get_app(OPERATOR_APP_UID).await
    }

    /// The operator application, created on first use.
    pub async fn ensure_operator_app(&self) -> Result<App, StoreError> {
        if let Some(app) = self.operator_app().await? {
            return Ok(app);
        }
        let now = OffsetDateTime::now_utc();
        let app = App {
            id: new_id("app", unix_ms(now)),
            uid: Uid::parse(OPERATOR_APP_UID).ok(),
            name: "Hookline operational webhooks".into(),
            metadata: BTreeMap::new(),
            rate_limit: None,
            created_at: now,
            updated_at: now,
        };
        match self.registry.create_app(&app).await {
            Ok(()) => Ok(app),
            // Another process created it first.
            Err(StoreError::Conflict(_)) => self
                .operator_app()
                .await?
                .ok_or(StoreError::Conflict("operator application")),
            Err(error) => Err(error),
        }
    }

    async fn emit(&self, event_type: &str, data: Value) {
        if let Err(error) = self.try_emit(event_type, data).await {
            tracing::warn!(event_type, %error, "operational webhook not queued");
        }
    }

    async fn try_emit(&self, event_type: &str, data: Value) -> Result<(), String> {
        let event_type = EventTypeName::parse(event_type).map_err(|e| e.to_string())?;
        let destinations = self
            .destinations(&event_type)
            .await
            .map_err(|e| e.to_string())?;
        let Some(first) = destinations.first() else {
            return Ok(());
        };
        let now = OffsetDateTime::now_utc();
        let payload = json!({"type": event_type, "timestamp": rfc3339(now), "data": data});
        let payload = serde_json::value::to_raw_value(&payload).map_err(|e| e.to_string())?;
        let message = Message {
            id: new_id("msg", unix_ms(now)),
            app_id: first.app_id.clone(),
            event_type,
            event_id: None,
            channels: None,
            tags: None,
            payload,
            timestamp: now,
            deliver_at: None,
        };
        let ids: Vec<String> = destinations.iter().map(|ep| ep.id.clone()).collect();
        self.messages
            .insert_message(&message, &ids, RETENTION_SECS)
            .await
            .map_err(|e| e.to_string())?;
        let tasks: Vec<DeliveryTask> = ids
            .iter()
            .map(|id| DeliveryTask::for_message(&message, id, 1, TriggerType::Scheduled))
            .collect();
        if let Err(error) = self.publisher.publish(&tasks).await {
            // Not queued: do not leave a message that looks accepted.
            let _ = self
                .messages
                .remove_message(&message.app_id, &message.id)
                .await;
            return Err(error.to_string());
        }
        Ok(())
    }

    /// The enabled operator endpoints whose filter takes `event_type`: those made through
    /// the API, and the configured one while the settings name it.
    async fn destinations(&self, event_type: &EventTypeName) -> Result<Vec<Endpoint>, StoreError> {
        let app = match &self.target {
            Some(_) => self.ensure_operator_app().await?,
            None => match self.operator_app().await? {
                Some(app) => app,
                None => return Ok(Vec::new()),
            },
        };
        let mut endpoints = self.registry.endpoints_of_app(&app.id).await?;
        let configured = endpoints
            .iter()
            .position(Self::is_configured_endpoint)
            .map(|at| endpoints.remove(at));
        if let Some(target) = &self.target {
            endpoints.push(self.configured_endpoint(&app, configured, target).await?);
        }
        endpoints.retain(|endpoint| endpoint.accepts(event_type, None));
        Ok(endpoints)
    }

    /// The configured endpoint, created on first use and kept in step with the configured
    /// URL and secret.
    async fn configured_endpoint(
        &self,
        app: &App,
        existing: Option<Endpoint>,
        target: &OperatorTarget,
    ) -> Result<Endpoint, StoreError> {
        let now = OffsetDateTime::now_utc();
        match existing {
            Some(existing) if existing.url == target.url && existing.secret == target.secret => {
                Ok(existing)
            }
            Some(existing) => {
                let mut updated = existing.clone();
                updated.url = target.url.clone();
                updated.secret = target.secret.clone();
                updated.disabled = false;
                updated.updated_at = now;
                self.registry.update_endpoint(&existing, &updated).await?;
                Ok(updated)
            }
            None => {
                let endpoint = Endpoint {
                    id: new_id("ep", unix_ms(now)),
                    app_id: app.id.clone(),
                    uid: Uid::parse(CONFIGURED_ENDPOINT_UID).ok(),
                    url: target.url.clone(),
                    description: "Receives Hookline's operational webhooks".into(),
                    event_types: None,
                    channels: None,
                    disabled: false,
                    metadata: BTreeMap::new(),
                    rate_limit: None,
                    secret: target.secret.clone(),
                    old_secrets: Vec::new(),
                    headers: BTreeMap::new(),
                    signature_scheme: SignatureScheme::Standard,
                    fifo: false,
                    tls: None,
                    oauth: None,
                    created_at: now,
                    updated_at: now,
                };
                // The configured endpoint is never refused for the API's endpoint cap.
                self.registry.create_endpoint(&endpoint, usize::MAX).await?;
                Ok(endpoint)
            }
        }
    }
}

fn endpoint_data(app: &App, endpoint: &Endpoint) -> Value {
    json!({
        "appId": app.id,
        "appUid": app.uid,
        "endpointId": endpoint.id,
        "endpointUid": endpoint.uid,
    })
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn unix_ms(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}
