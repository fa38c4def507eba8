//! Every key name of the `records` table and of the ordered endpoints' `fifo_*` tables,
//! and nothing else knows them. Parts are joined with `\0`, which no id, uid, name or
//! header value can contain, so one app's keys never prefix another's.

pub(crate) fn app(id: &str) -> String {
    format!("app\0{id}")
}
pub(crate) fn apps() -> &'static str {
    "ix\0apps"
}
pub(crate) fn app_uid(uid: &str) -> String {
    format!("app_uid\0{uid}")
}

pub(crate) fn endpoint(app: &str, id: &str) -> String {
    format!("ep\0{app}\0{id}")
}
pub(crate) fn endpoints(app: &str) -> String {
    format!("ep\0{app}\0")
}
pub(crate) fn endpoint_uid(app: &str, uid: &str) -> String {
    format!("ep_uid\0{app}\0{uid}")
}
pub(crate) fn endpoint_uids(app: &str) -> String {
    format!("ep_uid\0{app}\0")
}

pub(crate) fn event_type(name: &str) -> String {
    format!("et\0{name}")
}
pub(crate) fn event_types() -> &'static str {
    "et\0"
}

pub(crate) fn message(app: &str, id: &str) -> String {
    format!("msg\0{app}\0{id}")
}
pub(crate) fn messages(app: &str) -> String {
    format!("ix\0msgs\0{app}")
}
pub(crate) fn destination(app: &str, msg: &str, endpoint: &str) -> String {
    format!("dest\0{app}\0{msg}\0{endpoint}")
}
pub(crate) fn destinations(app: &str, msg: &str) -> String {
    format!("dest\0{app}\0{msg}\0")
}
/// A message's outbox mark (its tasks are not confirmed yet); all marks share `outbox\0`.
pub(crate) fn outbox(app: &str, msg: &str) -> String {
    format!("{}{app}\0{msg}", outbox_all())
}
pub(crate) fn outbox_all() -> &'static str {
    "outbox\0"
}
pub(crate) fn idempotency(app: &str, key: &str) -> String {
    format!("idem\0{app}\0{key}")
}

pub(crate) fn attempt(app: &str, id: &str) -> String {
    format!("att\0{app}\0{id}")
}
pub(crate) fn message_attempts(app: &str, msg: &str) -> String {
    format!("ix\0msg_att\0{app}\0{msg}")
}
pub(crate) fn endpoint_attempts(app: &str, endpoint: &str) -> String {
    format!("ix\0ep_att\0{app}\0{endpoint}")
}

pub(crate) fn app_token(digest: &str) -> String {
    format!("tok\0{digest}")
}
pub(crate) fn app_tokens(app: &str) -> String {
    format!("ix\0toks\0{app}")
}
pub(crate) fn background_task(id: &str) -> String {
    format!("bgtask\0{id}")
}
pub(crate) fn background_tasks() -> &'static str {
    "ix\0bgtasks"
}
/// The id of the task holding a background task lock, expiring with its lease.
pub(crate) fn background_task_lock(lock: &str) -> String {
    format!("bglock\0{lock}")
}
/// The id of the task an idempotency key started.
pub(crate) fn background_task_idempotency(key: &str) -> String {
    format!("bgidem\0{key}")
}

pub(crate) fn health(app: &str, endpoint: &str) -> String {
    format!("health\0{app}\0{endpoint}")
}
pub(crate) fn all_health() -> &'static str {
    "health\0"
}

/// An ordered endpoint's line, in the `fifo_*` tables (not `records`): the key of its
/// `last`, and the prefix of its messages' keys with `\0`.
pub(crate) fn line(app: &str, endpoint: &str) -> String {
    format!("{app}\0{endpoint}")
}
/// A message in a line, in the `fifo_*` tables.
pub(crate) fn in_line(line: &str, msg: &str) -> String {
    format!("{line}\0{msg}")
}
/// The prefix of every key of an app's lines, in the `fifo_*` tables.
pub(crate) fn lines_of_app(app: &str) -> String {
    format!("{app}\0")
}
