//! Every Redis key Hookline uses, in one place.
//!
//! Keys of one app share the hash tag `{<app_id>}` and the schedule's keys share `{sched}`,
//! so multi-key scripts and transactions stay on one Redis Cluster slot.

/// Builds keys under a prefix (default `hl:`).
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Sorted set (lex) of all app ids.
    pub fn apps(&self) -> String {
        format!("{}apps", self.prefix)
    }
    /// Hash uid → app id (`~<id>|<unix ms>` while the create that claimed it is pending).
    pub fn app_uids(&self) -> String {
        format!("{}app_uids", self.prefix)
    }
    /// Hash event type name → JSON.
    pub fn event_types(&self) -> String {
        format!("{}event_types", self.prefix)
    }
    /// One app token's JSON, by the digest of the token; expires with the token.
    pub fn app_token(&self, digest: &str) -> String {
        format!("{}app_token:{digest}", self.prefix)
    }
    /// Set of the digests of an app's tokens, for revoking them all.
    pub fn app_tokens(&self, app: &str) -> String {
        format!("{}{{{app}}}:tokens", self.prefix)
    }
    /// A background task's JSON. Background tasks span apps, so their keys share the hash
    /// tag `{bgtask}`: beginning one (lock, idempotency key, record, index) is one script.
    pub fn background_task(&self, task: &str) -> String {
        format!("{}{{bgtask}}:task:{task}", self.prefix)
    }
    /// Sorted set (lex) of background task ids.
    pub fn background_tasks(&self) -> String {
        format!("{}{{bgtask}}:tasks", self.prefix)
    }
    /// The id of the task holding a background task lock (e.g. an endpoint's recovery),
    /// expiring with that task's lease.
    pub fn background_task_lock(&self, lock: &str) -> String {
        format!("{}{{bgtask}}:lock:{lock}", self.prefix)
    }
    /// The id of the task an idempotency key started.
    pub fn background_task_idempotency(&self, key: &str) -> String {
        format!("{}{{bgtask}}:idem:{key}", self.prefix)
    }
    /// The theoretical arrival time (GCRA) of an endpoint's next slot, in unix nanoseconds.
    /// (The `gcra` key of earlier versions held milliseconds; the names differ so that
    /// versions running side by side during an upgrade never read each other's units.)
    pub fn rate_limit(&self, app: &str, endpoint: &str) -> String {
        format!("{}{{{app}}}:gcra_ns:{endpoint}", self.prefix)
    }
    /// When an endpoint's last rate-limited send went out, in unix nanoseconds.
    pub fn rate_limit_last(&self, app: &str, endpoint: &str) -> String {
        format!("{}{{{app}}}:gcra_last_ns:{endpoint}", self.prefix)
    }
    /// The theoretical arrival time (GCRA) of the next slot of the app's throttle (all its
    /// endpoints together), in unix nanoseconds. On the app's slot, beside its endpoints'
    /// keys, so one script can decide both limits of a send.
    pub fn app_rate_limit(&self, app: &str) -> String {
        format!("{}{{{app}}}:app_gcra_ns", self.prefix)
    }
    /// The theoretical time (GCRA) of the app's next throttled send, which its last gate
    /// decides on, in unix nanoseconds.
    pub fn app_rate_limit_last(&self, app: &str) -> String {
        format!("{}{{{app}}}:app_gcra_last_ns", self.prefix)
    }
    /// Hash of an endpoint's health: consecutive failures, failing since, open until.
    pub fn health(&self, app: &str, endpoint: &str) -> String {
        format!("{}{{{app}}}:health:{endpoint}", self.prefix)
    }
    /// Set of `app:endpoint` whose circuit is open (for the open-circuits gauge).
    pub fn open_circuits(&self) -> String {
        format!("{}open_circuits", self.prefix)
    }
    /// Held by the one delivery probing a half-open circuit.
    pub fn health_probe(&self, app: &str, endpoint: &str) -> String {
        format!("{}{{{app}}}:probe:{endpoint}", self.prefix)
    }
    /// The app's JSON.
    pub fn app(&self, app: &str) -> String {
        format!("{}{{{app}}}:app", self.prefix)
    }
    /// Hash endpoint id → JSON.
    pub fn endpoints(&self, app: &str) -> String {
        format!("{}{{{app}}}:eps", self.prefix)
    }
    /// Hash endpoint uid → endpoint id.
    pub fn endpoint_uids(&self, app: &str) -> String {
        format!("{}{{{app}}}:ep_uids", self.prefix)
    }
    /// An idempotency record (`idem:<key>` or `eventid:<id>`).
    pub fn idempotency(&self, app: &str, key: &str) -> String {
        format!("{}{{{app}}}:idem:{key}", self.prefix)
    }
    /// Sorted set of the app's unconfirmed message ids (the outbox), scored by the time
    /// (unix ms) after which a sweeper may queue their tasks.
    pub fn outbox(&self, app: &str) -> String {
        format!("{}{{{app}}}:outbox", self.prefix)
    }
    /// Sorted set of the app ids that may have outbox marks, scored by when an ingest process
    /// last registered each (unix ms); the outbox sweep reads only these apps. Global, with a
    /// hash tag of its own: only single-key commands and one-key scripts touch it.
    pub fn outbox_apps(&self) -> String {
        format!("{}{{outbox_apps}}", self.prefix)
    }
    /// Hash message id → `deliverAt` (unix ms) of the app's unconfirmed messages that have one.
    pub fn outbox_deliver_at(&self, app: &str) -> String {
        format!("{}{{{app}}}:outbox_at", self.prefix)
    }
    /// Sorted set message id → place (unix µs): an ordered endpoint's line.
    pub fn fifo_line(&self, app: &str, endpoint: &str) -> String {
        format!("{}{{{app}}}:fifo:{endpoint}", self.prefix)
    }
    /// The place (unix µs) of the line's last message that joined without a later due time.
    pub fn fifo_last(&self, app: &str, endpoint: &str) -> String {
        format!("{}{{{app}}}:fifo_last:{endpoint}", self.prefix)
    }
    /// Hash message id → task JSON: the line's tasks waiting for their turn.
    pub fn fifo_waiting(&self, app: &str, endpoint: &str) -> String {
        format!("{}{{{app}}}:fifo_wait:{endpoint}", self.prefix)
    }
    /// Hash message id → when its waiting task was handed out to be queued (unix ms).
    pub fn fifo_handed(&self, app: &str, endpoint: &str) -> String {
        format!("{}{{{app}}}:fifo_handed:{endpoint}", self.prefix)
    }
    /// Sorted set `<app id> <endpoint id>` → when a message last joined that line (unix ms):
    /// the lines the stall sweep visits. Global, with a hash tag of its own: only
    /// single-key commands and one-key scripts touch it.
    pub fn fifo_lines(&self) -> String {
        format!("{}{{fifo_lines}}", self.prefix)
    }
    /// A message's JSON (expires with its retention).
    pub fn message(&self, app: &str, msg: &str) -> String {
        format!("{}{{{app}}}:msg:{msg}", self.prefix)
    }
    /// Sorted set (lex) of the app's message ids.
    pub fn messages(&self, app: &str) -> String {
        format!("{}{{{app}}}:msgs", self.prefix)
    }
    /// Hash endpoint id → destination status of one message.
    pub fn destinations(&self, app: &str, msg: &str) -> String {
        format!("{}{{{app}}}:dest:{msg}", self.prefix)
    }
    /// An attempt's JSON.
    pub fn attempt(&self, app: &str, attempt: &str) -> String {
        format!("{}{{{app}}}:atmpt:{attempt}", self.prefix)
    }
    /// Sorted set (lex) of a message's attempt ids.
    pub fn message_attempts(&self, app: &str, msg: &str) -> String {
        format!("{}{{{app}}}:msg_atmpts:{msg}", self.prefix)
    }
    /// Sorted set (lex) of an endpoint's attempt ids.
    pub fn endpoint_attempts(&self, app: &str, endpoint: &str) -> String {
        format!("{}{{{app}}}:ep_atmpts:{endpoint}", self.prefix)
    }
    /// Sorted set schedule key → due time (ms).
    pub fn schedule_due(&self) -> String {
        format!("{}{{sched}}:due", self.prefix)
    }
    /// Sorted set schedule key → lease expiry (ms) for claimed tasks.
    pub fn schedule_leases(&self) -> String {
        format!("{}{{sched}}:leases", self.prefix)
    }
    /// Hash schedule key → task JSON.
    pub fn schedule_tasks(&self) -> String {
        format!("{}{{sched}}:tasks", self.prefix)
    }
    /// Hash schedule key → token of its current claim (while it is under lease).
    pub fn schedule_claims(&self) -> String {
        format!("{}{{sched}}:claims", self.prefix)
    }
    /// The backlog view's keys share the hash tag `{backlog}`: one flush is one script on
    /// that slot. Sorted set app id → tasks pending (negative while a flush that cancels
    /// it has not landed).
    pub fn backlog_apps(&self) -> String {
        format!("{}{{backlog}}:apps", self.prefix)
    }
    /// Sorted set `<app id> <endpoint id>` → tasks pending (ids never hold a space).
    pub fn backlog_endpoints(&self) -> String {
        format!("{}{{backlog}}:endpoints", self.prefix)
    }
    /// Sorted set app id → frontier (unix ms), for the apps with tasks pending.
    pub fn backlog_app_frontiers(&self) -> String {
        format!("{}{{backlog}}:app_frontiers", self.prefix)
    }
    /// Sorted set `<app id> <endpoint id>` → frontier (unix ms), for pending endpoints.
    pub fn backlog_endpoint_frontiers(&self) -> String {
        format!("{}{{backlog}}:endpoint_frontiers", self.prefix)
    }
    /// Sorted set app id → since when (unix ms) its count is negative.
    pub fn backlog_app_debts(&self) -> String {
        format!("{}{{backlog}}:app_debts", self.prefix)
    }
    /// Sorted set `<app id> <endpoint id>` → since when (unix ms) its count is negative.
    pub fn backlog_endpoint_debts(&self) -> String {
        format!("{}{{backlog}}:endpoint_debts", self.prefix)
    }
    /// The sum of the apps' positive counts.
    pub fn backlog_total(&self) -> String {
        format!("{}{{backlog}}:total", self.prefix)
    }
    /// Present for a while after the flush (chunk) it names was recorded.
    pub fn backlog_batch(&self, batch: &str) -> String {
        format!("{}{{backlog}}:batch:{batch}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_app_keys_share_one_hash_tag() {
        let keys = Keys::new("hl:");
        for key in [
            keys.app("app_1"),
            keys.endpoints("app_1"),
            keys.message("app_1", "msg_1"),
            keys.attempt("app_1", "atmpt_1"),
            keys.idempotency("app_1", "idem:k"),
            keys.rate_limit("app_1", "ep_1"),
            keys.rate_limit_last("app_1", "ep_1"),
            keys.app_rate_limit("app_1"),
            keys.app_rate_limit_last("app_1"),
        ] {
            assert!(key.starts_with("hl:{app_1}:"), "{key}");
        }
        assert!(keys.schedule_due().contains("{sched}"));
        assert!(keys.schedule_tasks().contains("{sched}"));
        assert!(keys.schedule_claims().contains("{sched}"));
        for key in [
            keys.background_task("qtask_1"),
            keys.background_tasks(),
            keys.background_task_lock("recover:app_1:ep_1"),
            keys.background_task_idempotency("k"),
        ] {
            assert!(key.starts_with("hl:{bgtask}:"), "{key}");
        }
        for key in [
            keys.backlog_apps(),
            keys.backlog_endpoints(),
            keys.backlog_app_frontiers(),
            keys.backlog_endpoint_frontiers(),
            keys.backlog_app_debts(),
            keys.backlog_endpoint_debts(),
            keys.backlog_total(),
            keys.backlog_batch("b1:0"),
        ] {
            assert!(key.starts_with("hl:{backlog}:"), "{key}");
        }
    }
}
