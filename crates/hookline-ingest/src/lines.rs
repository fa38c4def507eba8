//! Ordered (FIFO) endpoints at the API: a message joins its endpoint's line before its
//! task is queued (`hookline_core::fifo`), so a dispatcher that takes the task finds its
//! message in the line; and a message removed again (its request failed) leaves its lines.

use hookline_core::fifo::{Joining, Leaving};
use hookline_core::model::DeliveryTask;

use hookline_core::ports::StoreError;

use crate::state::ApiState;

/// Puts the messages of the ordered tasks among `tasks` in their lines, in the order of
/// `tasks`; a message due later (`deliver_at`) takes its place at that time. Call before
/// queueing or scheduling the tasks.
pub(crate) async fn join(
    state: &ApiState,
    tasks: &[DeliveryTask],
    deliver_at: Option<time::OffsetDateTime>,
) -> Result<(), StoreError> {
    let joining: Vec<Joining> = tasks
        .iter()
        .filter(|task| task.in_line)
        .map(|task| Joining {
            app_id: task.app_id.clone(),
            endpoint_id: task.endpoint_id.clone(),
            msg_id: task.msg_id.clone(),
            due: deliver_at,
        })
        .collect();
    if joining.is_empty() {
        return Ok(());
    }
    let now = time::OffsetDateTime::now_utc();
    state.sequencer().join(&joining, now).await
}

/// Takes the messages of the ordered tasks among `tasks` out of their lines (their message
/// was removed) and queues the tasks whose turn came. Best effort: what it cannot queue
/// (the broker is what failed) the scheduler's stall sweep queues later.
pub(crate) async fn leave(state: &ApiState, tasks: &[DeliveryTask]) {
    let leaving: Vec<Leaving> = tasks
        .iter()
        .filter(|task| task.in_line)
        .map(Leaving::of)
        .collect();
    if leaving.is_empty() {
        return;
    }
    let now = time::OffsetDateTime::now_utc();
    let handed = match state.sequencer().leave(&leaving, now).await {
        Ok(handed) => handed,
        Err(error) => {
            tracing::warn!(%error, "a removed message could not leave its lines; the stall sweep will");
            return;
        }
    };
    let handed: Vec<_> = handed.into_iter().map(DeliveryTask::queued_now).collect();
    if handed.is_empty() {
        return;
    }
    if let Err(error) = state.publisher().publish(&handed).await {
        tracing::warn!(%error, "tasks whose turn came were not queued; the stall sweep will");
    }
}
