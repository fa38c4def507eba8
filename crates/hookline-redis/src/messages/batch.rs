//! Many messages' writes in one round trip, grouped by app.
//!
//! Each app's writes are one `MULTI`/`EXEC` on its hash slot (`{app}`). On a single Redis (or
//! a Sentinel-managed primary) every app's transaction goes in one pipeline: one round trip.
//! Redis Cluster refuses a pipeline that spans slots, so there each app's transaction is a
//! pipeline of its own, and they run concurrently.
//!
//! Answers are per item. An item's commands are contiguous in its app's transaction and
//! Redis reports each command's outcome (it rolls nothing back: a runtime error such as
//! `WRONGTYPE` hits only its own command), so a failed command fails only its item. A
//! transaction Redis refused as a whole (`EXECABORT`) or that got no answer fails the items
//! of its app; a pipeline that got no answer at all fails the batch.

use std::collections::HashMap;

use futures::future::join_all;
use hookline_core::ports::StoreError;
use redis::aio::ConnectionLike;
use redis::{Pipeline, Value};

use crate::connection::Conn;
use crate::unavailable;

/// Prepared items (`P`: what an item writes, already encoded) grouped by app, in the order
/// their apps first appeared.
pub(super) struct AppGroups<P> {
    groups: Vec<Group<P>>,
    by_app: HashMap<String, usize>,
}

struct Group<P> {
    app: String,
    /// (index in the batch, prepared writes).
    items: Vec<(usize, P)>,
}

/// Where each item's commands are in one app's transaction.
struct Layout {
    /// (index in the batch, first command, number of commands).
    items: Vec<(usize, usize, usize)>,
}

impl<P> Default for AppGroups<P> {
    fn default() -> Self {
        Self {
            groups: Vec::new(),
            by_app: HashMap::new(),
        }
    }
}

impl<P: Sync> AppGroups<P> {
    pub(super) fn push(&mut self, app: &str, index: usize, prepared: P) {
        let next = self.groups.len();
        let at = *self.by_app.entry(app.to_owned()).or_insert(next);
        if at == next {
            self.groups.push(Group {
                app: app.to_owned(),
                items: Vec::new(),
            });
        }
        self.groups[at].items.push((index, prepared));
    }

    pub(super) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    pub(super) fn apps(&self) -> Vec<&str> {
        self.groups.iter().map(|g| g.app.as_str()).collect()
    }

    /// Writes every item: `write` adds one item's commands, `finish` what an app's
    /// transaction adds after its items (`app`, its items). Sets `results` of the items
    /// that failed; `Err` when no answer came back for the whole batch.
    pub(super) async fn run(
        &self,
        conn: &Conn,
        results: &mut [Result<(), StoreError>],
        write: impl Fn(&mut Pipeline, &P),
        finish: impl Fn(&mut Pipeline, &str, &[(usize, P)]),
    ) -> Result<(), StoreError> {
        if conn.is_cluster() {
            self.run_per_slot(conn, results, write, finish).await;
            Ok(())
        } else {
            self.run_pipelined(conn, results, write, finish).await
        }
    }

    /// Adds `group`'s commands to `pipe` (without `MULTI`/`EXEC`) and says where they are.
    fn lay_out(
        group: &Group<P>,
        pipe: &mut Pipeline,
        write: &impl Fn(&mut Pipeline, &P),
        finish: &impl Fn(&mut Pipeline, &str, &[(usize, P)]),
    ) -> Layout {
        let start = pipe.len();
        let mut items = Vec::with_capacity(group.items.len());
        for (index, prepared) in &group.items {
            let before = pipe.len();
            write(pipe, prepared);
            items.push((*index, before - start, pipe.len() - before));
        }
        finish(pipe, &group.app, &group.items);
        Layout { items }
    }

    /// One pipeline: `MULTI`, an app's commands, `EXEC`, for each app in turn.
    async fn run_pipelined(
        &self,
        conn: &Conn,
        results: &mut [Result<(), StoreError>],
        write: impl Fn(&mut Pipeline, &P),
        finish: impl Fn(&mut Pipeline, &str, &[(usize, P)]),
    ) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        let mut layouts = Vec::with_capacity(self.groups.len());
        for group in &self.groups {
            pipe.cmd("MULTI");
            let start = pipe.len();
            let layout = Self::lay_out(group, &mut pipe, &write, &finish);
            layouts.push((layout, pipe.len() - start));
            pipe.cmd("EXEC");
        }
        let replies = conn
            .clone()
            .req_packed_commands(&pipe, 0, pipe.len())
            .await
            .map_err(unavailable)?;
        let mut replies = replies.into_iter();
        for (layout, commands) in &layouts {
            let _multi = replies.next();
            let queued: Vec<Value> = replies.by_ref().take(*commands).collect();
            let exec = replies.next();
            answer(layout, exec, &queued, results);
        }
        Ok(())
    }

    /// One transaction per app, each a pipeline on its slot, all at once.
    async fn run_per_slot(
        &self,
        conn: &Conn,
        results: &mut [Result<(), StoreError>],
        write: impl Fn(&mut Pipeline, &P),
        finish: impl Fn(&mut Pipeline, &str, &[(usize, P)]),
    ) {
        let built: Vec<(Pipeline, Layout)> = self
            .groups
            .iter()
            .map(|group| {
                let mut pipe = redis::pipe();
                pipe.atomic();
                let layout = Self::lay_out(group, &mut pipe, &write, &finish);
                (pipe, layout)
            })
            .collect();
        let runs = built.iter().map(|(pipe, _)| async move {
            // The transaction's replies are skipped but for `EXEC`'s.
            conn.clone()
                .req_packed_commands(pipe, pipe.len() + 1, 1)
                .await
        });
        for ((_, layout), replies) in built.iter().zip(join_all(runs).await) {
            match replies {
                Ok(replies) => answer(layout, replies.into_iter().next(), &[], results),
                Err(error) => fail_all(layout, &unavailable(error), results),
            }
        }
    }
}

/// Sets the results of one app's items from its `EXEC` reply (and, when they were read, the
/// replies to its commands as they were queued).
fn answer(
    layout: &Layout,
    exec: Option<Value>,
    queued: &[Value],
    results: &mut [Result<(), StoreError>],
) {
    let replies = match exec {
        Some(Value::Array(replies)) => replies,
        other => {
            // Refused as a whole: the reason is with the command Redis would not queue.
            let why = queued
                .iter()
                .find_map(server_error)
                .or_else(|| other.as_ref().and_then(server_error))
                .unwrap_or_else(|| "the transaction was not executed".to_owned());
            fail_all(layout, &StoreError::Unavailable(why), results);
            return;
        }
    };
    for &(index, first, count) in &layout.items {
        let failed = replies
            .get(first..first + count)
            .map_or(Some("a reply is missing".to_owned()), |own| {
                own.iter().find_map(server_error)
            });
        if let Some(why) = failed {
            results[index] = Err(StoreError::Unavailable(why));
        }
    }
}

fn fail_all(layout: &Layout, error: &StoreError, results: &mut [Result<(), StoreError>]) {
    for &(index, _, _) in &layout.items {
        results[index] = Err(error.clone());
    }
}

fn server_error(value: &Value) -> Option<String> {
    match value {
        Value::ServerError(error) => Some(error.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use hookline_core::id;
    use hookline_core::model::Message;
    use hookline_core::names::EventTypeName;
    use hookline_core::ports::{ConfirmedMessage, MessageStore, NewUnconfirmed};
    use redis::AsyncCommands;
    use time::OffsetDateTime;

    use crate::{RedisConfig, RedisStore};

    /// A store under a prefix of its own, on a single Redis or on the Redis Cluster that
    /// `scripts/test` starts (the integration tests' defaults).
    fn store(cluster: bool) -> RedisStore {
        let url = if cluster {
            std::env::var("HOOKLINE_TEST_CLUSTER_REDIS_URLS").unwrap_or_else(|_| {
                (7101..=7106)
                    .map(|port| format!("redis://127.0.0.1:{port}"))
                    .collect::<Vec<_>>()
                    .join(",")
            })
        } else {
            std::env::var("HOOKLINE_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
        };
        let config = RedisConfig {
            cluster,
            prefix: format!("hltest-batch-{:016x}:", rand_u64()),
            ..RedisConfig::new(url)
        };
        RedisStore::connect(&config).expect("store")
    }

    fn rand_u64() -> u64 {
        let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
        // Unique enough per test run: the clock and this process.
        (nanos as u64) ^ (u64::from(std::process::id()) << 32)
    }

    fn item(app: &str, n: usize) -> NewUnconfirmed {
        let now = OffsetDateTime::now_utc();
        let now_ms = u64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
        NewUnconfirmed {
            message: Message {
                id: id::new_id("msg", now_ms),
                app_id: app.to_owned(),
                event_type: EventTypeName::parse("order.created").expect("name"),
                event_id: None,
                channels: None,
                tags: None,
                payload: serde_json::value::RawValue::from_string(format!("{{\"n\":{n}}}"))
                    .expect("payload"),
                timestamp: now,
                deliver_at: None,
            },
            endpoint_ids: vec!["ep_a".into(), "ep_b".into()],
            retention_secs: 3600,
            deliver_at: None,
            lease_ms: 60_000,
        }
    }

    /// Messages of several apps in one batch are stored with their marks; one whose write
    /// Redis refuses (its destinations key holds a string) fails alone; confirming the rest
    /// in one batch clears their marks and records their responses.
    async fn one_refused_item_fails_alone(cluster: bool) {
        let store = store(cluster);
        let items: Vec<NewUnconfirmed> = (0..60)
            .map(|n| item(&format!("app_batch{}", n % 3), n))
            .collect();
        let refused = &items[7].message;
        let _: () = store
            .conn()
            .set(store.keys.destinations(&refused.app_id, &refused.id), "x")
            .await
            .expect("plant a string");
        let results = store.insert_unconfirmed_batch(&items).await.expect("batch");
        assert_eq!(results.len(), items.len());
        for (n, (result, item)) in results.iter().zip(&items).enumerate() {
            let message = &item.message;
            if n == 7 {
                assert!(result.is_err(), "the refused item fails");
                continue;
            }
            assert!(result.is_ok(), "{n}: {result:?}");
            let stored = store.get_message(&message.app_id, &message.id).await;
            assert!(stored.expect("read").is_some(), "{n} stored");
            let mark = store.unconfirmed(&message.app_id, &message.id).await;
            assert!(mark.expect("read").is_some(), "{n} marked");
            let destinations = store.destinations(&message.app_id, &message.id).await;
            assert_eq!(destinations.expect("read").len(), 2, "{n} destinations");
        }
        let registered: Vec<String> = store
            .conn()
            .zrange(store.keys.outbox_apps(), 0, -1)
            .await
            .expect("outbox apps");
        assert_eq!(registered.len(), 3, "every app listed for the sweep");

        let confirms: Vec<ConfirmedMessage> = items
            .iter()
            .map(|item| ConfirmedMessage {
                app_id: item.message.app_id.clone(),
                msg_id: item.message.id.clone(),
                keys: vec![format!("idem:{}", item.message.id)],
                response: format!("answer {}", item.message.id),
                ttl_secs: 60,
            })
            .collect();
        let results = store
            .confirm_messages_batch(&confirms)
            .await
            .expect("batch");
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        for confirm in &confirms {
            let mark = store.unconfirmed(&confirm.app_id, &confirm.msg_id).await;
            assert!(mark.expect("read").is_none(), "mark cleared");
            let response = store
                .idempotent_response(&confirm.app_id, &confirm.keys[0])
                .await
                .expect("read");
            assert_eq!(response.as_deref(), Some(confirm.response.as_str()));
        }
        store.delete_all().await.expect("cleanup");
    }

    #[tokio::test]
    async fn one_refused_item_fails_alone_on_a_single_redis() {
        one_refused_item_fails_alone(false).await;
    }

    #[tokio::test]
    async fn one_refused_item_fails_alone_on_a_redis_cluster() {
        one_refused_item_fails_alone(true).await;
    }
}
