//! The attempt log: one JSON record per attempt, indexed per message and per endpoint.

use async_trait::async_trait;
use hookline_core::model::{Attempt, DestinationStatus};
use hookline_core::ports::{AttemptLog, Page, PageRequest, StoreError};
use redis::AsyncCommands;

use crate::messages::expired_before;
use crate::paging::{page, page_ids, read_records};
use crate::{decode, encode, unavailable, RedisStore};

#[async_trait]
impl AttemptLog for RedisStore {
    async fn record_attempt(
        &self,
        attempt: &Attempt,
        destination: &DestinationStatus,
        retention_secs: u64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let app = &attempt.app_id;
        let retention = retention_secs.max(1);
        let by_message = self.keys.message_attempts(app, &attempt.msg_id);
        let by_endpoint = self.keys.endpoint_attempts(app, &attempt.endpoint_id);
        let dest_key = self.keys.destinations(app, &attempt.msg_id);
        let keep = i64::try_from(self.max_attempts_per_endpoint).unwrap_or(i64::MAX);
        redis::pipe()
            .atomic()
            .set_ex(
                self.keys.attempt(app, &attempt.id),
                encode(attempt)?,
                retention,
            )
            .ignore()
            .zadd(&by_message, &attempt.id, 0)
            .ignore()
            .expire(&by_message, retention as i64)
            .ignore()
            .zadd(&by_endpoint, &attempt.id, 0)
            .ignore()
            .cmd("ZREMRANGEBYLEX")
            .arg(&by_endpoint)
            .arg("-")
            .arg(format!("({}", expired_before("atmpt", retention)))
            .ignore()
            // All scores are zero, so rank order is id order: this drops the oldest.
            .zremrangebyrank(&by_endpoint, 0, -(keep.saturating_add(1)) as isize)
            .ignore()
            .hset(&dest_key, &attempt.endpoint_id, encode(destination)?)
            .ignore()
            .expire(&dest_key, retention as i64)
            .ignore()
            .query_async::<()>(&mut conn)
            .await
            .map_err(unavailable)
    }

    async fn get_attempt(
        &self,
        app_id: &str,
        attempt_id: &str,
    ) -> Result<Option<Attempt>, StoreError> {
        let mut conn = self.conn();
        let body: Option<String> = conn
            .get(self.keys.attempt(app_id, attempt_id))
            .await
            .map_err(unavailable)?;
        body.map(|b| decode("attempt", &b)).transpose()
    }

    async fn expunge_response(&self, app_id: &str, attempt_id: &str) -> Result<bool, StoreError> {
        let key = self.keys.attempt(app_id, attempt_id);
        let Some(mut attempt) = self.get_attempt(app_id, attempt_id).await? else {
            return Ok(false);
        };
        attempt.response = String::new();
        crate::set_keep_ttl(&mut self.conn(), &key, &encode(&attempt)?).await
    }

    async fn attempts_by_message(
        &self,
        app_id: &str,
        msg_id: &str,
        request: &PageRequest,
    ) -> Result<Page<Attempt>, StoreError> {
        self.attempt_page(app_id, &self.keys.message_attempts(app_id, msg_id), request)
            .await
    }

    async fn attempts_by_endpoint(
        &self,
        app_id: &str,
        endpoint_id: &str,
        request: &PageRequest,
    ) -> Result<Page<Attempt>, StoreError> {
        self.attempt_page(
            app_id,
            &self.keys.endpoint_attempts(app_id, endpoint_id),
            request,
        )
        .await
    }
}

impl RedisStore {
    async fn attempt_page(
        &self,
        app_id: &str,
        index: &str,
        request: &PageRequest,
    ) -> Result<Page<Attempt>, StoreError> {
        let mut conn = self.conn();
        let (ids, more) = page_ids(&mut conn, index, request).await?;
        let keys: Vec<String> = ids.iter().map(|id| self.keys.attempt(app_id, id)).collect();
        let attempts: Vec<_> = read_records(&mut conn, &keys, "attempt").await?;
        Ok(page(
            attempts,
            ids.last().cloned(),
            more,
            ids.first().cloned(),
        ))
    }
}
