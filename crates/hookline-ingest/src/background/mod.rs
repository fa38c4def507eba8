//! Background tasks: work an API call starts and a spawned task of the ingest process runs
//! (recovering or replaying an endpoint, expunging an app's payloads, statistics).
//!
//! The record is stored before the call answers, and the runner saves its progress as it
//! goes (about every second), renewing its lease (`background_task_lease`, 30 s by default,
//! [`DEFAULT_LEASE`]) each time. A task
//! whose process dies (a crash, a restart, a shutdown) is not resumed: its lease lapses, it
//! reads as `failed` from then on and its lock (one recovery per endpoint) is free again, so
//! the operation can simply be started again. Sends go through the publisher as manual
//! delivery tasks, so the dispatcher's rate limits apply to them like to any delivery.

pub mod purge;
pub mod redeliver;
pub mod stats;

use std::time::Duration;

use hookline_core::id;
use hookline_core::model::{BackgroundTask, TaskKind, TaskStatus, TASK_ID_PREFIX};
use hookline_core::ports::{QueueError, StoreError, TaskStart};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::routes::common::unix_ms;
use crate::state::ApiState;

/// How long a task counts as running after its last save, unless configured; past it, its
/// process is gone.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// How often a runner saves its progress (and so renews its lease) at most; a quarter of a
/// shorter lease.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// What a background task does, with everything it needs to know.
pub enum Work {
    Redeliver(Box<redeliver::Plan>),
    Purge { app_id: String },
    AppStats(stats::AppStatsPlan),
    EventTypes,
}

/// A new running task of `kind`, created now.
pub fn new_task(state: &ApiState, kind: TaskKind) -> BackgroundTask {
    let now = crate::routes::common::now();
    let id = id::new_id(TASK_ID_PREFIX, unix_ms(now));
    BackgroundTask::new(id, kind, now, now + state.config().background_task_lease)
}

/// Starts `work` as `task`, or answers the task that stands in its way: the one an earlier
/// request with the same idempotency key started, or the running holder of its lock.
pub async fn start(
    state: &ApiState,
    task: BackgroundTask,
    start: TaskStart,
    work: Work,
) -> Result<BackgroundTask, ApiError> {
    if let Some(existing) = state.jobs().begin_task(&task, &start).await? {
        return Ok(existing);
    }
    let runner = state.clone();
    let begun = task.clone();
    tokio::spawn(async move { run_to_end(runner, begun, work).await });
    Ok(task)
}

/// Runs the work and records how it ended. If even that record cannot be written, the lease
/// lapses and the task reads as failed.
async fn run_to_end(state: ApiState, task: BackgroundTask, work: Work) {
    let mut progress = Progress::new(state.clone(), task);
    let outcome = match work {
        Work::Redeliver(plan) => redeliver::run(&state, &mut progress, *plan).await,
        Work::Purge { app_id } => purge::run(&state, &mut progress, &app_id).await,
        Work::AppStats(plan) => stats::app_stats(&state, &mut progress, plan).await,
        Work::EventTypes => stats::event_types(&state, &mut progress).await,
    };
    progress.task.status = match outcome {
        Ok(()) => TaskStatus::Finished,
        Err(failure) => {
            tracing::warn!(task_id = %progress.task.id, error = %failure.detail(), "background task failed");
            progress.task.error = Some(failure.to_string());
            TaskStatus::Failed
        }
    };
    if let Err(error) = progress.save().await {
        tracing::warn!(task_id = %progress.task.id, %error, "could not record the end of a background task");
    }
}

/// Why a task stopped. Its text is shown to API callers, so store and broker failures say
/// only that a service was unavailable; the detail goes to the log.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("a backing service was unavailable; start the task again")]
    Store(#[from] StoreError),
    #[error("the message broker was unavailable; start the task again")]
    Queue(#[from] QueueError),
    #[error("{0}")]
    Stopped(&'static str),
}

impl Failure {
    /// The full cause, for the log.
    fn detail(&self) -> String {
        match self {
            Self::Store(error) => error.to_string(),
            Self::Queue(error) => error.to_string(),
            Self::Stopped(reason) => (*reason).to_owned(),
        }
    }
}

/// A running task's record and when it was last saved.
pub struct Progress {
    state: ApiState,
    pub task: BackgroundTask,
    saved_at: tokio::time::Instant,
    save_every: Duration,
}

impl Progress {
    fn new(state: ApiState, task: BackgroundTask) -> Self {
        let save_every = SAVE_EVERY.min(state.config().background_task_lease / 4);
        Self {
            state,
            task,
            saved_at: tokio::time::Instant::now(),
            save_every,
        }
    }

    /// Whether the next [`Progress::checkpoint`] saves.
    pub fn due(&self) -> bool {
        self.saved_at.elapsed() >= self.save_every
    }

    /// Saves the progress if the last save is old enough. Call it often: it is what keeps
    /// the lease.
    pub async fn checkpoint(&mut self) -> Result<(), StoreError> {
        if self.due() {
            self.save().await?;
        }
        Ok(())
    }

    /// Saves the progress now, renewing the lease.
    pub async fn save(&mut self) -> Result<(), StoreError> {
        let now = OffsetDateTime::now_utc();
        self.task.updated_at = now;
        if self.task.status == TaskStatus::Running {
            self.task.lease_until = now + self.state.config().background_task_lease;
        }
        self.state.jobs().save_task(&self.task).await?;
        self.saved_at = tokio::time::Instant::now();
        Ok(())
    }
}

/// The `idempotency-key` header, scoped to the operation and its app, as a store key.
pub fn idempotency_key(
    headers: &axum::http::HeaderMap,
    operation: &str,
    scope: &str,
) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::BadRequest("idempotency-key must be visible ASCII".into()))?;
    let key = hookline_core::names::IdempotencyKey::parse(text)
        .map_err(|e| ApiError::BadRequest(format!("idempotency-key {e}")))?;
    Ok(Some(format!("{operation}:{scope}:{}", key.as_str())))
}

/// How a task of this request starts: with its idempotency key, if it sent one.
pub fn task_start(state: &ApiState, idempotency_key: Option<String>) -> TaskStart {
    TaskStart {
        idempotency_key,
        idempotency_ttl_secs: state.config().idempotency_ttl.as_secs(),
    }
}
