//! App-scoped tokens: `app_token:<digest>` holds the token's record with a TTL equal to its
//! lifetime; the app's token set lets "expire all" find them.

use async_trait::async_trait;
use hookline_core::model::AppToken;
use hookline_core::ports::{StoreError, TokenStore};
use redis::AsyncCommands;
use time::OffsetDateTime;

use crate::{decode, encode, unavailable, RedisStore};

#[async_trait]
impl TokenStore for RedisStore {
    async fn create_app_token(&self, digest: &str, token: &AppToken) -> Result<(), StoreError> {
        let ttl = (token.expires_at - OffsetDateTime::now_utc())
            .whole_seconds()
            .max(1);
        let ttl = u64::try_from(ttl).unwrap_or(1);
        let mut conn = self.conn();
        let set = self.keys.app_tokens(&token.app_id);
        // Two slots (the token key is found by digest, the set by app): not one transaction.
        // The set is written first, so a token that exists can always be revoked.
        let _: () = conn.sadd(&set, digest).await.map_err(unavailable)?;
        let _: () = conn
            .expire(&set, i64::try_from(ttl).unwrap_or(i64::MAX).max(1))
            .await
            .map_err(unavailable)?;
        conn.set_ex(self.keys.app_token(digest), encode(token)?, ttl)
            .await
            .map_err(unavailable)
    }

    async fn find_app_token(&self, digest: &str) -> Result<Option<AppToken>, StoreError> {
        let mut conn = self.conn();
        let body: Option<String> = conn
            .get(self.keys.app_token(digest))
            .await
            .map_err(unavailable)?;
        body.map(|b| decode("app token", &b)).transpose()
    }

    async fn revoke_app_tokens(&self, app_id: &str) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let set = self.keys.app_tokens(app_id);
        let digests: Vec<String> = conn.smembers(&set).await.map_err(unavailable)?;
        let mut revoked = 0;
        for digest in &digests {
            let removed: u64 = conn
                .del(self.keys.app_token(digest))
                .await
                .map_err(unavailable)?;
            revoked += removed;
        }
        let _: () = conn.del(&set).await.map_err(unavailable)?;
        Ok(revoked)
    }
}
