//! Statistics over apps: messages per app in a period, and the event types each app's
//! endpoints subscribe to. Both read every record they count, so they run in the
//! background and publish each app's numbers as soon as they have them.

use std::collections::BTreeSet;

use hookline_core::id;
use hookline_core::model::{App, AppEventTypes, AppUsage, TaskData};
use hookline_core::ports::PageRequest;
use time::OffsetDateTime;

use super::{Failure, Progress};
use crate::state::ApiState;

/// Records read per page.
const PAGE: usize = 250;

/// The period and the apps to count.
pub struct AppStatsPlan {
    pub since: OffsetDateTime,
    pub until: OffsetDateTime,
    /// The apps asked for; `None` for every app.
    pub apps: Option<Vec<App>>,
    /// Ids or uids asked for that name no app.
    pub unresolved: Vec<String>,
}

/// Counts each app's messages created in the period and the deliveries they were routed to.
pub async fn app_stats(
    state: &ApiState,
    progress: &mut Progress,
    plan: AppStatsPlan,
) -> Result<(), Failure> {
    let mut usage = Vec::new();
    let mut apps = AppWalk::new(plan.apps.clone());
    while let Some(batch) = apps.next(state).await? {
        for app in batch {
            usage.push(count_app(state, progress, &app, &plan).await?);
            // Copied into the record only when it is saved: the list grows with every app.
            if progress.due() {
                progress.task.data = TaskData::AppStats {
                    apps: usage.clone(),
                    unresolved: plan.unresolved.clone(),
                };
                progress.checkpoint().await?;
            }
        }
    }
    progress.task.data = TaskData::AppStats {
        apps: usage,
        unresolved: plan.unresolved,
    };
    Ok(())
}

async fn count_app(
    state: &ApiState,
    progress: &mut Progress,
    app: &App,
    plan: &AppStatsPlan,
) -> Result<AppUsage, Failure> {
    let mut usage = AppUsage {
        app_id: app.id.clone(),
        app_uid: app.uid.as_ref().map(|uid| uid.as_str().to_owned()),
        messages: 0,
        message_destinations: 0,
    };
    let mut request = PageRequest {
        limit: PAGE,
        iterator: Some(id::lower_bound_at("msg", plan.since)),
        ascending: true,
        event_types: None,
    };
    loop {
        let page = state.messages().list_messages(&app.id, &request).await?;
        for message in &page.items {
            if message.timestamp > plan.until {
                return Ok(usage);
            }
            let destinations = state.messages().destinations(&app.id, &message.id).await?;
            usage.messages += 1;
            usage.message_destinations += destinations.len() as u64;
            progress.checkpoint().await?;
        }
        match page.iterator {
            Some(next) if !page.done => request.iterator = Some(next),
            _ => return Ok(usage),
        }
    }
}

/// Lists, for every app, the event types its enabled endpoints name in their filters and
/// whether one of them takes every type.
pub async fn event_types(state: &ApiState, progress: &mut Progress) -> Result<(), Failure> {
    let mut found = Vec::new();
    let mut apps = AppWalk::new(None);
    while let Some(batch) = apps.next(state).await? {
        for app in batch {
            let endpoints = state.registry().endpoints_of_app(&app.id).await?;
            let mut names = BTreeSet::new();
            let mut has_catch_all = false;
            for endpoint in endpoints.iter().filter(|e| !e.disabled) {
                match &endpoint.event_types {
                    Some(types) => names.extend(types.iter().map(|t| t.as_str().to_owned())),
                    None => has_catch_all = true,
                }
            }
            found.push(AppEventTypes {
                app_id: app.id.clone(),
                explicitly_subscribed: names.into_iter().collect(),
                has_catch_all,
            });
            if progress.due() {
                progress.task.data = TaskData::EventTypes {
                    apps: found.clone(),
                };
                progress.checkpoint().await?;
            }
        }
    }
    progress.task.data = TaskData::EventTypes { apps: found };
    Ok(())
}

/// The apps a statistic covers, a page at a time: the ones given, or every app.
struct AppWalk {
    given: Option<Vec<App>>,
    next: Option<PageRequest>,
}

impl AppWalk {
    fn new(given: Option<Vec<App>>) -> Self {
        Self {
            given,
            next: Some(PageRequest {
                limit: PAGE,
                iterator: None,
                ascending: true,
                event_types: None,
            }),
        }
    }

    async fn next(&mut self, state: &ApiState) -> Result<Option<Vec<App>>, Failure> {
        if let Some(given) = self.given.take() {
            self.next = None;
            return Ok(Some(given));
        }
        let Some(request) = self.next.take() else {
            return Ok(None);
        };
        let page = state.registry().list_apps(&request).await?;
        if !page.done {
            self.next = page.iterator.map(|iterator| PageRequest {
                iterator: Some(iterator),
                ..request
            });
        }
        Ok(Some(page.items))
    }
}
