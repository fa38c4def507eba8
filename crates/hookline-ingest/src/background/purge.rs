//! Expunging every message payload of an app: what `DELETE …/msg/{id}/content` does to one
//! message, done to each message the app has, oldest first. Messages created after the task
//! started are left alone.

use hookline_core::ports::PageRequest;

use super::{Failure, Progress};
use crate::state::ApiState;
use hookline_core::model::TaskData;

/// Messages read per page.
const PAGE: usize = 250;

pub async fn run(state: &ApiState, progress: &mut Progress, app_id: &str) -> Result<(), Failure> {
    let started = progress.task.created_at;
    let mut purged = 0u64;
    let mut request = PageRequest {
        limit: PAGE,
        iterator: None,
        ascending: true,
        event_types: None,
    };
    loop {
        let page = state.messages().list_messages(app_id, &request).await?;
        for message in &page.items {
            if message.timestamp > started {
                return Ok(());
            }
            if state
                .messages()
                .expunge_payload(app_id, &message.id)
                .await?
            {
                purged += 1;
                progress.task.data = TaskData::Purge {
                    messages_purged: purged,
                };
            }
            progress.checkpoint().await?;
        }
        match page.iterator {
            Some(next) if !page.done => request.iterator = Some(next),
            _ => return Ok(()),
        }
    }
}
