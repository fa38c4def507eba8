//! App-scoped tokens: `app_token:<digest>` holds the token's record with a TTL equal to its
//! lifetime; the app's token set lets "expire all" find them.

use std::sync::LazyLock;

use async_trait::async_trait;
use hookline_core::model::AppToken;
use hookline_core::names::SessionId;
use hookline_core::ports::{StoreError, TokenExpiry, TokenStore};
use redis::{AsyncCommands, Script};
use time::OffsetDateTime;

use crate::{decode, encode, unavailable, RedisStore};

/// KEYS: token. ARGV: the record as read, the shortened record, its TTL in seconds.
/// Replaces the record only if it is still the one read, so a concurrent logout is not
/// undone and a concurrent, shorter expiry is not lengthened.
static SHORTEN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
            return 1
        end
        return 0
        ",
    )
});

fn ttl_secs(until: OffsetDateTime, now: OffsetDateTime) -> u64 {
    u64::try_from((until - now).whole_seconds().max(1)).unwrap_or(1)
}

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

    async fn revoke_app_token(&self, digest: &str) -> Result<bool, StoreError> {
        let Some(token) = self.find_app_token(digest).await? else {
            return Ok(false);
        };
        let mut conn = self.conn();
        let removed: u64 = conn
            .del(self.keys.app_token(digest))
            .await
            .map_err(unavailable)?;
        // Two slots: the set entry goes second, so a token that exists stays revocable.
        let _: () = conn
            .srem(self.keys.app_tokens(&token.app_id), digest)
            .await
            .map_err(unavailable)?;
        Ok(removed > 0)
    }

    async fn expire_app_tokens(
        &self,
        app_id: &str,
        sessions: Option<&[SessionId]>,
        at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let set = self.keys.app_tokens(app_id);
        let digests: Vec<String> = conn.smembers(&set).await.map_err(unavailable)?;
        let mut changed = 0;
        for digest in &digests {
            let key = self.keys.app_token(digest);
            let body: Option<String> = conn.get(&key).await.map_err(unavailable)?;
            let Some(body) = body else {
                let _: () = conn.srem(&set, digest).await.map_err(unavailable)?;
                continue;
            };
            let mut token: AppToken = decode("app token", &body)?;
            match TokenExpiry::decide(&token, sessions, at, now) {
                TokenExpiry::Keep => {}
                TokenExpiry::Revoke => {
                    let _: () = conn.del(&key).await.map_err(unavailable)?;
                    let _: () = conn.srem(&set, digest).await.map_err(unavailable)?;
                    changed += 1;
                }
                TokenExpiry::Shorten(until) => {
                    token.expires_at = until;
                    let replaced: u64 = SHORTEN
                        .key(&key)
                        .arg(&body)
                        .arg(encode(&token)?)
                        .arg(ttl_secs(until, now))
                        .invoke_async(&mut conn)
                        .await
                        .map_err(unavailable)?;
                    changed += replaced;
                }
            }
        }
        Ok(changed)
    }
}
