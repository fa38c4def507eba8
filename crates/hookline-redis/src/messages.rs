//! Messages, idempotency claims and per-endpoint delivery state.

use std::sync::LazyLock;

use async_trait::async_trait;
use hookline_core::id;
use hookline_core::model::{DestinationStatus, Message, MessageStatus};
use hookline_core::ports::{IdempotencyClaim, MessageStore, Page, PageRequest, StoreError};
use redis::{AsyncCommands, Script};
use time::OffsetDateTime;

use crate::paging::{page, page_ids, read_records};
use crate::{decode, encode, unavailable, RedisStore};

const PENDING: &str = "P:";
const DONE: &str = "D:";

/// Claims all keys or none. Returns the first existing value, or nil when claimed.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        for _, key in ipairs(KEYS) do
            local value = redis.call('GET', key)
            if value then return value end
        end
        for _, key in ipairs(KEYS) do
            redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
        end
        return false
        ",
    )
});

/// Deletes keys still held by the given pending owner.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        for _, key in ipairs(KEYS) do
            if redis.call('GET', key) == ARGV[1] then redis.call('DEL', key) end
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
    ) -> Result<IdempotencyClaim, StoreError> {
        let mut conn = self.conn();
        let mut invocation = CLAIM.prepare_invoke();
        for key in keys {
            invocation.key(self.keys.idempotency(app_id, key));
        }
        invocation
            .arg(format!("{PENDING}{owner}"))
            .arg(lease_ms.max(1));
        let existing: Option<String> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(match existing {
            None => IdempotencyClaim::Claimed,
            Some(value) => match value.strip_prefix(DONE) {
                Some(response) => IdempotencyClaim::Done(response.to_owned()),
                None => IdempotencyClaim::InProgress,
            },
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
        invocation.arg(format!("{PENDING}{owner}"));
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
        let mut conn = self.conn();
        let app = &message.app_id;
        let retention = retention_secs.max(1);
        let dest_key = self.keys.destinations(app, &message.id);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set_ex(
                self.keys.message(app, &message.id),
                encode(message)?,
                retention,
            )
            .ignore()
            .zadd(self.keys.messages(app), &message.id, 0)
            .ignore()
            .cmd("ZREMRANGEBYLEX")
            .arg(self.keys.messages(app))
            .arg("-")
            .arg(format!("({}", expired_before("msg", retention)))
            .ignore();
        for endpoint_id in endpoint_ids {
            let pending = DestinationStatus {
                endpoint_id: endpoint_id.clone(),
                status: MessageStatus::Pending,
                attempts: 0,
                next_attempt: None,
            };
            pipe.hset(&dest_key, endpoint_id, encode(&pending)?)
                .ignore();
        }
        if !endpoint_ids.is_empty() {
            pipe.expire(&dest_key, retention as i64).ignore();
        }
        pipe.query_async::<()>(&mut conn).await.map_err(unavailable)
    }

    async fn remove_message(&self, app_id: &str, msg_id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn();
        redis::pipe()
            .atomic()
            .del(self.keys.message(app_id, msg_id))
            .ignore()
            .del(self.keys.destinations(app_id, msg_id))
            .ignore()
            .zrem(self.keys.messages(app_id), msg_id)
            .ignore()
            .query_async::<()>(&mut conn)
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
