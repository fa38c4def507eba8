//! App tokens, stored by digest.

use async_trait::async_trait;
use hookline_core::model::AppToken;
use hookline_core::names::SessionId;
use hookline_core::ports::{StoreError, TokenExpiry, TokenStore};
use time::OffsetDateTime;

use crate::db::{unavailable, Durability, RECORDS};
use crate::keys;
use crate::records::{self, Writer};
use crate::EmbeddedStore;

#[async_trait]
impl TokenStore for EmbeddedStore {
    async fn create_app_token(&self, digest: &str, token: &AppToken) -> Result<(), StoreError> {
        let ttl = (token.expires_at - OffsetDateTime::now_utc()).whole_seconds();
        let ttl = Some(u64::try_from(ttl).unwrap_or(0).max(1));
        let (digest, token) = (digest.to_owned(), token.clone());
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                w.put(&keys::app_token(&digest), &token, ttl)?;
                w.index(&keys::app_tokens(&token.app_id), &digest, ttl)
            })
            .await
    }

    async fn find_app_token(&self, digest: &str) -> Result<Option<AppToken>, StoreError> {
        let key = keys::app_token(digest);
        self.db
            .read(move |txn| {
                let table = txn.open_table(RECORDS).map_err(unavailable)?;
                records::get(&table, &key, crate::db::now_ms(), "app token")
            })
            .await
    }

    async fn revoke_app_tokens(&self, app_id: &str) -> Result<u64, StoreError> {
        let index = keys::app_tokens(app_id);
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                let digests = records::index_ids(&w.records, &index, w.now_ms)?;
                let mut revoked = 0;
                for digest in &digests {
                    let key = keys::app_token(digest);
                    if w.get::<AppToken>(&key, "app token")?.is_some() {
                        revoked += 1;
                    }
                    w.delete(&key)?;
                    w.unindex(&index, digest)?;
                }
                Ok(revoked)
            })
            .await
    }

    async fn revoke_app_token(&self, digest: &str) -> Result<bool, StoreError> {
        let digest = digest.to_owned();
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                let key = keys::app_token(&digest);
                let Some(token) = w.get::<AppToken>(&key, "app token")? else {
                    return Ok(false);
                };
                w.delete(&key)?;
                w.unindex(&keys::app_tokens(&token.app_id), &digest)?;
                Ok(true)
            })
            .await
    }

    async fn expire_app_tokens(
        &self,
        app_id: &str,
        sessions: Option<&[SessionId]>,
        at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        let index = keys::app_tokens(app_id);
        let sessions = sessions.map(<[SessionId]>::to_vec);
        self.db
            .write(Durability::Immediate, move |txn| {
                let mut w = Writer::open(txn)?;
                let digests = records::index_ids(&w.records, &index, w.now_ms)?;
                let mut changed = 0;
                for digest in &digests {
                    let key = keys::app_token(digest);
                    let Some(mut token) = w.get::<AppToken>(&key, "app token")? else {
                        continue;
                    };
                    match TokenExpiry::decide(&token, sessions.as_deref(), at, now) {
                        TokenExpiry::Keep => {}
                        TokenExpiry::Revoke => {
                            w.delete(&key)?;
                            w.unindex(&index, digest)?;
                            changed += 1;
                        }
                        TokenExpiry::Shorten(until) => {
                            token.expires_at = until;
                            let until_ms = u64::try_from(until.unix_timestamp_nanos() / 1_000_000)
                                .unwrap_or(0);
                            w.put_until(&key, &token, until_ms)?;
                            changed += 1;
                        }
                    }
                }
                Ok(changed)
            })
            .await
    }
}
