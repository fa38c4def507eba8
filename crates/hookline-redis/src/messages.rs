//! Messages, idempotency claims and per-endpoint delivery state.

mod batch;

use std::sync::LazyLock;

use async_trait::async_trait;
use hookline_core::id;
use hookline_core::model::{DestinationStatus, Message};
use hookline_core::ports::{
    ConfirmedMessage, IdempotencyClaim, MessageStore, NewUnconfirmed, Page, PageRequest,
    StoreError, Unconfirmed,
};
use redis::{AsyncCommands, Script};
use time::OffsetDateTime;

use self::batch::AppGroups;
use crate::paging::{page, page_ids, read_records};
use crate::{decode, encode, unavailable, RedisStore};

const DONE: &str = "D:";

/// A claim under lease is `L:<lease_until_ms>:<owner>`, kept past its lease so a retry can
/// adopt the owner's message. (`P:<owner>` is the older form, which expired with its lease.)
const ADOPTED: &str = "A:";

/// KEYS: the idempotency keys. ARGV: owner, now_ms, lease_until_ms, keep_ms.
/// Claims all keys or none. Returns a `D:` response, `P:` while another request's lease
/// lasts, `A:<owner>` when it took over the claim of a request whose lease ended, or nil
/// when it claimed the keys afresh.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local adopt = false
        for _, key in ipairs(KEYS) do
            local value = redis.call('GET', key)
            if value then
                if string.sub(value, 1, 2) == 'D:' then return value end
                local until_ms, owner = string.match(value, '^L:(%d+):(.*)$')
                if not until_ms or tonumber(until_ms) > tonumber(ARGV[2]) then return 'P:' end
                if not adopt then adopt = owner end
            end
        end
        local owner = adopt or ARGV[1]
        for _, key in ipairs(KEYS) do
            redis.call('SET', key, 'L:' .. ARGV[3] .. ':' .. owner, 'PX', ARGV[4])
        end
        if adopt then return 'A:' .. adopt end
        return false
        ",
    )
});

/// Deletes keys still claimed by the given owner.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        for _, key in ipairs(KEYS) do
            local value = redis.call('GET', key)
            if value then
                local _, owner = string.match(value, '^L:(%d+):(.*)$')
                if owner == ARGV[1] or value == 'P:' .. ARGV[1] then redis.call('DEL', key) end
            end
        end
        return 1
        ",
    )
});

#[async_trait]
impl MessageStore for RedisStore {
    async fn claim_idempotency(
        &self,
        app_id: &str,
        keys: &[String],
        owner: &str,
        lease_ms: u64,
        keep_secs: u64,
    ) -> Result<IdempotencyClaim, StoreError> {
        let mut conn = self.conn();
        let mut invocation = CLAIM.prepare_invoke();
        for key in keys {
            invocation.key(self.keys.idempotency(app_id, key));
        }
        let now = crate::outbox::now_ms();
        let lease = i64::try_from(lease_ms.max(1)).unwrap_or(i64::MAX);
        let keep_ms = keep_secs.saturating_mul(1000).max(lease_ms.max(1));
        invocation
            .arg(owner)
            .arg(now)
            .arg(now.saturating_add(lease))
            .arg(keep_ms);
        let existing: Option<String> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(match existing {
            None => IdempotencyClaim::Claimed,
            Some(value) => {
                if let Some(response) = value.strip_prefix(DONE) {
                    IdempotencyClaim::Done(response.to_owned())
                } else if let Some(owner) = value.strip_prefix(ADOPTED) {
                    IdempotencyClaim::Adopted(owner.to_owned())
                } else {
                    IdempotencyClaim::InProgress
                }
            }
        })
    }

    async fn complete_idempotency(
        &self,
        app_id: &str,
        keys: &[String],
        response: &str,
        ttl_secs: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let value = format!("{DONE}{response}");
        let mut pipe = redis::pipe();
        pipe.atomic();
        for key in keys {
            pipe.set_ex(self.keys.idempotency(app_id, key), &value, ttl_secs.max(1))
                .ignore();
        }
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    async fn idempotent_response(
        &self,
        app_id: &str,
        key: &str,
    ) -> Result<Option<String>, StoreError> {
        let value: Option<String> = self
            .conn()
            .get(self.keys.idempotency(app_id, key))
            .await
            .map_err(unavailable)?;
        Ok(value.and_then(|v| v.strip_prefix(DONE).map(str::to_owned)))
    }

    async fn release_idempotency(
        &self,
        app_id: &str,
        keys: &[String],
        owner: &str,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let mut invocation = RELEASE.prepare_invoke();
        for key in keys {
            invocation.key(self.keys.idempotency(app_id, key));
        }
        invocation.arg(owner);
        invocation
            .invoke_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn insert_message(
        &self,
        message: &Message,
        endpoint_ids: &[String],
        retention_secs: u64,
    ) -> Result<(), StoreError> {
        let pipe = self.insert_pipe(message, endpoint_ids, retention_secs)?;
        pipe.query_async::<()>(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn insert_unconfirmed(
        &self,
        message: &Message,
        endpoint_ids: &[String],
        retention_secs: u64,
        deliver_at: Option<OffsetDateTime>,
        lease_ms: u64,
    ) -> Result<(), StoreError> {
        let mut pipe = self.insert_pipe(message, endpoint_ids, retention_secs)?;
        // Listed for the sweep before the mark exists (a separate, global command).
        self.register_for_sweep(&message.app_id).await?;
        self.mark_unconfirmed(&mut pipe, message, deliver_at, lease_ms);
        pipe.query_async::<()>(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn confirm_message(
        &self,
        app_id: &str,
        msg_id: &str,
        keys: &[String],
        response: &str,
        ttl_secs: u64,
    ) -> Result<(), StoreError> {
        let value = format!("{DONE}{response}");
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.unmark(&mut pipe, app_id, msg_id);
        for key in keys {
            pipe.set_ex(self.keys.idempotency(app_id, key), &value, ttl_secs.max(1))
                .ignore();
        }
        pipe.query_async::<()>(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn unconfirmed(
        &self,
        app_id: &str,
        msg_id: &str,
    ) -> Result<Option<Unconfirmed>, StoreError> {
        self.read_mark(app_id, msg_id).await
    }

    async fn claim_unconfirmed(
        &self,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<Unconfirmed>, StoreError> {
        self.claim_marks(lease_ms, limit.max(1)).await
    }

    async fn remove_message(&self, app_id: &str, msg_id: &str) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .del(self.keys.message(app_id, msg_id))
            .ignore()
            .del(self.keys.destinations(app_id, msg_id))
            .ignore()
            .zrem(self.keys.messages(app_id), msg_id)
            .ignore();
        self.unmark(&mut pipe, app_id, msg_id);
        pipe.query_async::<()>(&mut self.conn())
            .await
            .map_err(unavailable)
    }

    async fn get_message(&self, app_id: &str, msg_id: &str) -> Result<Option<Message>, StoreError> {
        let mut conn = self.conn();
        let body: Option<String> = conn
            .get(self.keys.message(app_id, msg_id))
            .await
            .map_err(unavailable)?;
        body.map(|b| decode("message", &b)).transpose()
    }

    async fn expunge_payload(&self, app_id: &str, msg_id: &str) -> Result<bool, StoreError> {
        let key = self.keys.message(app_id, msg_id);
        let Some(mut message) = self.get_message(app_id, msg_id).await? else {
            return Ok(false);
        };
        message.payload = serde_json::value::RawValue::from_string("{}".into())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        crate::set_keep_ttl(&mut self.conn(), &key, &encode(&message)?).await
    }

    async fn list_messages(
        &self,
        app_id: &str,
        request: &PageRequest,
    ) -> Result<Page<Message>, StoreError> {
        let mut conn = self.conn();
        let (ids, more) = page_ids(&mut conn, &self.keys.messages(app_id), request).await?;
        let keys: Vec<String> = ids.iter().map(|id| self.keys.message(app_id, id)).collect();
        let messages: Vec<_> = read_records(&mut conn, &keys, "message").await?;
        Ok(page(
            messages,
            ids.last().cloned(),
            more,
            ids.first().cloned(),
        ))
    }

    async fn destinations(
        &self,
        app_id: &str,
        msg_id: &str,
    ) -> Result<Vec<DestinationStatus>, StoreError> {
        let mut conn = self.conn();
        let bodies: Vec<String> = conn
            .hvals(self.keys.destinations(app_id, msg_id))
            .await
            .map_err(unavailable)?;
        let mut destinations = bodies
            .iter()
            .map(|b| decode::<DestinationStatus>("destination", b))
            .collect::<Result<Vec<_>, _>>()?;
        destinations.sort_by(|a, b| a.endpoint_id.cmp(&b.endpoint_id));
        Ok(destinations)
    }

    /// One round trip for the whole batch: one `MULTI`/`EXEC` per app on its slot (see
    /// `messages/batch.rs`), after the apps are listed for the sweep.
    async fn insert_unconfirmed_batch(
        &self,
        items: &[NewUnconfirmed],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut results = vec![Ok(()); items.len()];
        let mut groups = AppGroups::default();
        for (index, item) in items.iter().enumerate() {
            let message = &item.message;
            match self.insert_commands(message, &item.endpoint_ids, item.retention_secs) {
                Ok(commands) => groups.push(&message.app_id, index, (commands, item)),
                Err(error) => results[index] = Err(error),
            }
        }
        if groups.is_empty() {
            return Ok(results);
        }
        // Listed for the sweep before any mark exists (a separate, global command).
        self.register_all_for_sweep(&groups.apps()).await?;
        let write = |pipe: &mut redis::Pipeline,
                     (commands, item): &(InsertCommands, &NewUnconfirmed)| {
            commands.add_to(pipe);
            self.mark_unconfirmed(pipe, &item.message, item.deliver_at, item.lease_ms);
        };
        // One trim per app, by the longest retention: it keeps every message of the group.
        let trim = |pipe: &mut redis::Pipeline,
                    app: &str,
                    items: &[(usize, (InsertCommands, &NewUnconfirmed))]| {
            let longest = items.iter().map(|(_, (c, _))| c.retention).max();
            if let Some(retention) = longest {
                self.trim_index(pipe, app, retention);
            }
        };
        groups.run(&self.conn(), &mut results, write, trim).await?;
        Ok(results)
    }

    /// One round trip for the whole batch, like [`MessageStore::insert_unconfirmed_batch`].
    async fn confirm_messages_batch(
        &self,
        items: &[ConfirmedMessage],
    ) -> Result<Vec<Result<(), StoreError>>, StoreError> {
        let mut results = vec![Ok(()); items.len()];
        let mut groups = AppGroups::default();
        for (index, item) in items.iter().enumerate() {
            groups.push(&item.app_id, index, item);
        }
        let write = |pipe: &mut redis::Pipeline, item: &&ConfirmedMessage| {
            self.unmark(pipe, &item.app_id, &item.msg_id);
            if item.keys.is_empty() {
                return;
            }
            let value = format!("{DONE}{}", item.response);
            for key in &item.keys {
                pipe.set_ex(
                    self.keys.idempotency(&item.app_id, key),
                    &value,
                    item.ttl_secs.max(1),
                )
                .ignore();
            }
        };
        groups
            .run(&self.conn(), &mut results, write, |_, _, _| {})
            .await?;
        Ok(results)
    }
}

impl RedisStore {
    /// The transaction that stores a message and its pending destinations.
    fn insert_pipe(
        &self,
        message: &Message,
        endpoint_ids: &[String],
        retention_secs: u64,
    ) -> Result<redis::Pipeline, StoreError> {
        let commands = self.insert_commands(message, endpoint_ids, retention_secs)?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        commands.add_to(&mut pipe);
        self.trim_index(&mut pipe, &message.app_id, commands.retention);
        Ok(pipe)
    }

    /// What storing a message writes, encoded: encoding is all that can fail, so a message
    /// that does not encode adds no command to a shared pipeline.
    fn insert_commands(
        &self,
        message: &Message,
        endpoint_ids: &[String],
        retention_secs: u64,
    ) -> Result<InsertCommands, StoreError> {
        if self.log_elsewhere {
            return Ok(InsertCommands::default());
        }
        let app = &message.app_id;
        let destinations = endpoint_ids
            .iter()
            .map(|endpoint_id| {
                let pending = DestinationStatus::pending(endpoint_id);
                Ok((endpoint_id.clone(), encode(&pending)?))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(InsertCommands {
            message_key: self.keys.message(app, &message.id),
            body: encode(message)?,
            index_key: self.keys.messages(app),
            msg_id: message.id.clone(),
            dest_key: self.keys.destinations(app, &message.id),
            destinations,
            retention: retention_secs.max(1),
        })
    }

    /// Trims the entries of `app`'s message index that are older than `retention_secs`.
    fn trim_index(&self, pipe: &mut redis::Pipeline, app: &str, retention_secs: u64) {
        if self.log_elsewhere {
            return;
        }
        pipe.cmd("ZREMRANGEBYLEX")
            .arg(self.keys.messages(app))
            .arg("-")
            .arg(format!("({}", expired_before("msg", retention_secs)))
            .ignore();
    }
}

/// The writes that store one message and its pending destinations, encoded (none when the
/// log lives elsewhere: `message_key` is empty).
#[derive(Default)]
struct InsertCommands {
    message_key: String,
    body: String,
    index_key: String,
    msg_id: String,
    dest_key: String,
    destinations: Vec<(String, String)>,
    retention: u64,
}

impl InsertCommands {
    /// Adds the writes to `pipe`; the index trim is the caller's (once per app suffices).
    fn add_to(&self, pipe: &mut redis::Pipeline) {
        if self.message_key.is_empty() {
            return;
        }
        pipe.set_ex(&self.message_key, &self.body, self.retention)
            .ignore()
            .zadd(&self.index_key, &self.msg_id, 0)
            .ignore();
        for (endpoint_id, pending) in &self.destinations {
            pipe.hset(&self.dest_key, endpoint_id, pending).ignore();
        }
        if !self.destinations.is_empty() {
            pipe.expire(&self.dest_key, self.retention as i64).ignore();
        }
    }
}

/// The smallest id of `prefix` that is still within `retention_secs`: index entries below it
/// point at expired records and can be trimmed.
pub(crate) fn expired_before(prefix: &str, retention_secs: u64) -> String {
    let now_ms = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).max(0) as u64;
    id::lower_bound(
        prefix,
        now_ms.saturating_sub(retention_secs.saturating_mul(1000)),
    )
}
