//! Recovering an endpoint: resend every message that failed for it in a time range, as a
//! background job that reports progress and the final succeeded / failed / connection
//! errors / total summary.
//!
//! One job per endpoint at a time (a lock in the store), so starting recovery twice, even
//! concurrently, resends each message once. Only pairs whose delivery state is failed are
//! resent, and a successful resend marks them delivered, so running it again later resends
//! nothing twice either.

use std::collections::HashMap;
use std::time::Duration;

use hookline_core::id;
use hookline_core::model::{DeliveryTask, JobStatus, MessageStatus, RecoverJob, TriggerType};
use hookline_core::outcome::TransportError;
use hookline_core::ports::{PageRequest, StoreError};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::state::ApiState;

/// How long the endpoint stays locked if the process running its job dies.
const LOCK_TTL_SECS: u64 = 3600;
/// Messages read per page while looking for failed ones.
const PAGE: usize = 250;
/// How often outstanding resends are checked.
const POLL: Duration = Duration::from_millis(200);
/// How long the job waits for the resends' outcomes (a disabled endpoint makes none).
const OUTCOME_DEADLINE: Duration = Duration::from_secs(600);

/// Starts a recovery job, or answers the one already running for the endpoint.
pub async fn start(
    state: &ApiState,
    app_id: &str,
    endpoint_id: &str,
    since: OffsetDateTime,
    until: Option<OffsetDateTime>,
) -> Result<RecoverJob, ApiError> {
    let now = OffsetDateTime::now_utc();
    let job = RecoverJob {
        id: id::new_id("qtask", unix_ms(now)),
        app_id: app_id.to_owned(),
        endpoint_id: endpoint_id.to_owned(),
        since,
        until,
        status: JobStatus::Running,
        total: 0,
        succeeded: 0,
        failed: 0,
        connection_errors: 0,
        updated_at: now,
    };
    if let Some(running) = state.jobs().begin_recover(&job, LOCK_TTL_SECS).await? {
        return Ok(running);
    }
    let runner = state.clone();
    let started = job.clone();
    tokio::spawn(async move {
        let mut job = started;
        if let Err(error) = run(&runner, &mut job).await {
            tracing::warn!(job_id = %job.id, %error, "recovery failed");
            job.status = JobStatus::Failed;
        }
        job.updated_at = OffsetDateTime::now_utc();
        if let Err(error) = runner.jobs().save_job(&job).await {
            tracing::warn!(job_id = %job.id, %error, "could not record the recovery's end");
        }
        if let Err(error) = runner.jobs().end_recover(&job).await {
            tracing::warn!(job_id = %job.id, %error, "could not release the recovery lock");
        }
    });
    Ok(job)
}

async fn run(state: &ApiState, job: &mut RecoverJob) -> Result<(), ApiError> {
    let expected = queue_failed(state, job).await?;
    await_outcomes(state, job, expected).await?;
    job.status = JobStatus::Finished;
    Ok(())
}

/// Queues a manual resend of every failed pair; answers the attempt number each will make.
async fn queue_failed(
    state: &ApiState,
    job: &mut RecoverJob,
) -> Result<HashMap<String, u32>, ApiError> {
    let mut expected = HashMap::new();
    let mut iterator = Some(id::lower_bound("msg", unix_ms(job.since)));
    let until_ms = job.until.map(unix_ms);
    while let Some(after) = iterator.take() {
        let request = PageRequest {
            limit: PAGE,
            iterator: Some(after),
            ascending: true,
        };
        let page = state
            .messages()
            .list_messages(&job.app_id, &request)
            .await?;
        let mut tasks = Vec::new();
        for message in page.items {
            if until_ms.is_some_and(|until| unix_ms(message.timestamp) > until) {
                break;
            }
            let destinations = state
                .messages()
                .destinations(&job.app_id, &message.id)
                .await?;
            let Some(failed) = destinations
                .into_iter()
                .find(|d| d.endpoint_id == job.endpoint_id && d.status == MessageStatus::Fail)
            else {
                continue;
            };
            let attempt = failed.attempts.saturating_add(1);
            expected.insert(message.id.clone(), attempt);
            tasks.push(DeliveryTask::for_message(
                &message,
                &job.endpoint_id,
                attempt,
                TriggerType::Manual,
            ));
        }
        if !tasks.is_empty() {
            state.publisher().publish(&tasks).await?;
            job.total += tasks.len() as u64;
            job.updated_at = OffsetDateTime::now_utc();
            state.jobs().save_job(job).await?;
        }
        iterator = if page.done { None } else { page.iterator };
    }
    Ok(expected)
}

/// Waits until every resend has an attempt, counting the outcomes as they arrive.
async fn await_outcomes(
    state: &ApiState,
    job: &mut RecoverJob,
    mut expected: HashMap<String, u32>,
) -> Result<(), StoreError> {
    let deadline = tokio::time::Instant::now() + OUTCOME_DEADLINE;
    while !expected.is_empty() {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(job_id = %job.id, outstanding = expected.len(), "recovery stopped waiting for outcomes");
            return Err(StoreError::Unavailable(
                "outcomes did not arrive in time".into(),
            ));
        }
        let mut settled = Vec::new();
        for (msg_id, attempt_number) in &expected {
            let request = PageRequest {
                limit: 50,
                iterator: None,
                ascending: false,
            };
            let attempts = state
                .attempts()
                .attempts_by_message(&job.app_id, msg_id, &request)
                .await?;
            let outcome = attempts.items.into_iter().find(|a| {
                a.endpoint_id == job.endpoint_id
                    && a.attempt_number == *attempt_number
                    && a.trigger_type == TriggerType::Manual
            });
            if let Some(attempt) = outcome {
                match (attempt.status, attempt.error) {
                    (MessageStatus::Success, _) => job.succeeded += 1,
                    (_, Some(TransportError::Other) | None) => job.failed += 1,
                    (_, Some(_)) => job.connection_errors += 1,
                }
                settled.push(msg_id.clone());
            }
        }
        for msg_id in settled {
            expected.remove(&msg_id);
        }
        job.updated_at = OffsetDateTime::now_utc();
        state.jobs().save_job(job).await?;
        if !expected.is_empty() {
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(())
}

fn unix_ms(at: OffsetDateTime) -> u64 {
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}
