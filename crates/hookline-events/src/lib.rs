//! Operational webhooks: `endpoint.created`, `endpoint.updated`, `endpoint.deleted`,
//! `endpoint.disabled`, `message.attempt.failing` and `message.attempt.exhausted`, sent to an
//! operator's endpoint through the same pipeline as every other message (stored, queued with
//! confirms, signed, retried).
//!
//! The operator's endpoint lives in an internal application (uid `hookline-operator`) that
//! is created on first use. Emitting is best effort: the operation that caused an event has
//! already happened, so a failure to queue the event is logged, never returned.

use std::collections::BTreeMap;
use std::sync::Arc;

use hookline_core::id::new_id;
use hookline_core::model::{App, DeliveryTask, Endpoint, Message, SignatureScheme, TriggerType};
use hookline_core::names::{EventTypeName, Uid};
use hookline_core::ports::{MessageStore, Registry, StoreError, TaskPublisher};
use hookline_core::secret::SecretText;
use serde_json::{json, Value};
use time::OffsetDateTime;

/// The uid of the internal application that holds the operator's endpoint.
pub const OPERATOR_APP_UID: &str = "hookline-operator";
const OPERATOR_ENDPOINT_UID: &str = "operator";
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

    async fn emit(&self, event_type: &str, data: Value) {
        let Some(target) = &self.target else {
            return;
        };
        if let Err(error) = self.try_emit(target, event_type, data).await {
            tracing::warn!(event_type, %error, "operational webhook not queued");
        }
    }

    async fn try_emit(
        &self,
        target: &OperatorTarget,
        event_type: &str,
        data: Value,
    ) -> Result<(), String> {
        let endpoint = self
            .operator_endpoint(target)
            .await
            .map_err(|e| e.to_string())?;
        let now = OffsetDateTime::now_utc();
        let payload = json!({"type": event_type, "timestamp": rfc3339(now), "data": data});
        let payload = serde_json::value::to_raw_value(&payload).map_err(|e| e.to_string())?;
        let message = Message {
            id: new_id("msg", unix_ms(now)),
            app_id: endpoint.app_id.clone(),
            event_type: EventTypeName::parse(event_type).map_err(|e| e.to_string())?,
            event_id: None,
            channels: None,
            tags: None,
            payload: payload.clone(),
            timestamp: now,
            deliver_at: None,
        };
        self.messages
            .insert_message(&message, std::slice::from_ref(&endpoint.id), RETENTION_SECS)
            .await
            .map_err(|e| e.to_string())?;
        let task = DeliveryTask::for_message(&message, &endpoint.id, 1, TriggerType::Scheduled);
        if let Err(error) = self.publisher.publish(&[task]).await {
            // Not queued: do not leave a message that looks accepted.
            let _ = self
                .messages
                .remove_message(&message.app_id, &message.id)
                .await;
            return Err(error.to_string());
        }
        Ok(())
    }

    /// The operator's endpoint, created (with its application) on first use and kept in
    /// step with the configured URL and secret.
    async fn operator_endpoint(&self, target: &OperatorTarget) -> Result<Endpoint, StoreError> {
        let now = OffsetDateTime::now_utc();
        let app = match self.registry.get_app(OPERATOR_APP_UID).await? {
            Some(app) => app,
            None => {
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
                    Ok(()) => app,
                    // Another process created it first.
                    Err(StoreError::Conflict(_)) => self
                        .registry
                        .get_app(OPERATOR_APP_UID)
                        .await?
                        .ok_or(StoreError::Conflict("operator application"))?,
                    Err(error) => return Err(error),
                }
            }
        };
        match self
            .registry
            .get_endpoint(&app.id, OPERATOR_ENDPOINT_UID)
            .await?
        {
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
                    app_id: app.id,
                    uid: Uid::parse(OPERATOR_ENDPOINT_UID).ok(),
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
                    created_at: now,
                    updated_at: now,
                };
                // The operator's app holds only this endpoint: no cap applies.
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
