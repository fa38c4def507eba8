//! Endpoint health from the dispatcher's side: the circuit breaker, auto-disabling an
//! endpoint that keeps failing, and the operational webhooks those decisions announce.

use hookline_core::model::{Attempt, DeliveryTask, Endpoint};
use hookline_core::ports::{Gate, StoreError};
use serde_json::json;
use time::OffsetDateTime;

use crate::delivery::{Dispatcher, Outcome};

/// The attempt after which `message.attempt.failing` is sent (as Svix does, the fourth).
const FAILING_AFTER_ATTEMPT: u32 = 4;

impl Dispatcher {
    /// Whether the endpoint may be called now for message `msg_id` (one probing message
    /// at a time once the open period has ended). A circuit this dispatcher recently
    /// learned is closed is not asked about again (see `cache.rs` for the bound).
    pub(crate) async fn gate(
        &self,
        app_id: &str,
        endpoint_id: &str,
        msg_id: &str,
    ) -> Result<Gate, StoreError> {
        if self.circuits.is_closed(app_id, endpoint_id) {
            return Ok(Gate::Closed);
        }
        let gate = self
            .stores
            .health
            .gate(
                app_id,
                endpoint_id,
                msg_id,
                OffsetDateTime::now_utc(),
                self.config.request_timeout,
            )
            .await?;
        self.circuits
            .learn(app_id, endpoint_id, gate == Gate::Closed);
        Ok(gate)
    }

    /// Disables the endpoint (410 Gone, or failing without a success for too long) and
    /// announces it.
    pub(crate) async fn disable(
        &self,
        endpoint: &Endpoint,
        failing_since: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut disabled = endpoint.clone();
        disabled.disabled = true;
        disabled.updated_at = now;
        self.stores
            .registry
            .update_endpoint(endpoint, &disabled)
            .await?;
        tracing::info!(endpoint_id = %endpoint.id, ?failing_since, "endpoint disabled");
        if let Some(app) = self.stores.registry.get_app(&endpoint.app_id).await? {
            self.events
                .endpoint_disabled(&app, &disabled, failing_since)
                .await;
        }
        Ok(())
    }

    /// `message.attempt.failing` after the fourth failure, `message.attempt.exhausted` after
    /// the last.
    pub(crate) async fn announce_attempt(
        &self,
        task: &DeliveryTask,
        endpoint: &Endpoint,
        attempt: &Attempt,
        outcome: Outcome,
    ) {
        let event_type = match outcome {
            Outcome::Exhausted => "message.attempt.exhausted",
            Outcome::RetryScheduled if task.attempt == FAILING_AFTER_ATTEMPT => {
                "message.attempt.failing"
            }
            _ => return,
        };
        let Ok(Some(app)) = self.stores.registry.get_app(&task.app_id).await else {
            return;
        };
        let last_attempt = json!({
            "id": attempt.id,
            "responseStatusCode": attempt.response_status_code,
            "timestamp": attempt
                .timestamp
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        });
        self.events
            .attempt_event(event_type, &app, endpoint, &task.msg_id, last_attempt)
            .await;
    }
}
