//! How to reach RabbitMQ and how the adapter behaves while it cannot.

use std::fmt;
use std::time::Duration;

use hookline_core::fair::Share;

use crate::error::ConfigError;

/// Most delivery shards: each is two quorum queues (a Raft group each) per deployment.
pub const MAX_SHARDS: u16 = 64;
use crate::redact::redact_url;

/// Settings of one [`RabbitBroker`](crate::RabbitBroker).
///
/// Build it with struct-update syntax over [`RabbitConfig::default`] and check it with
/// [`RabbitConfig::validate`] at start-up, before any port binds. Its `Debug` output shows
/// the URLs with their credentials redacted, so logging it is safe.
#[derive(Clone)]
pub struct RabbitConfig {
    /// AMQP URLs (`amqp://user:pass@host:5672/%2f`), tried in order on every (re)connect.
    /// Add `?heartbeat=10` to notice a silently dead peer sooner than the broker default.
    pub urls: Vec<String>,
    /// Prefix of every exchange and queue name (`<prefix>.deliveries`, ...).
    pub prefix: String,
    /// Unacknowledged deliveries the broker sends one source ahead of its acks.
    pub prefetch: u16,
    /// Deliveries of one task before the quorum queue dead-letters it (`x-delivery-limit`).
    pub delivery_limit: u32,
    /// Confirm-mode channels publishing in parallel; concurrent `publish` calls share them.
    pub publisher_channels: usize,
    /// First wait between reconnect attempts; doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Longest wait between reconnect attempts.
    pub reconnect_max: Duration,
    /// `x-expires` on both queues, so throw-away queues (tests) vanish when unused.
    /// Leave `None` in production.
    pub queue_expires: Option<Duration>,
    /// Longest a `publish` call waits for the broker's confirms before answering
    /// [`QueueError::Unavailable`](hookline_core::ports::QueueError::Unavailable).
    pub publish_timeout: Duration,
    /// Longest one connection attempt (TCP, TLS, AMQP handshake) may take.
    pub connect_timeout: Duration,
    /// Longest any other broker operation may take: declares, channel opens, consumer
    /// set-up and cancel, acks. lapin can leave such a future pending forever once its
    /// connection is gone, so every await on it is bounded by this.
    pub rpc_timeout: Duration,
    /// Delivery queues per lane; each application's tasks go to one shard (a stable hash of
    /// its id), so tasks spread over this many quorum queues, whose leaders the broker
    /// places on different nodes. May be raised on a running deployment, not lowered
    /// without draining the queues that go away.
    pub shards: u16,
    /// What one application may put in the fast lane from one publishing process; what it
    /// sends beyond goes to the bulk lane.
    pub fair_share: Share,
    /// A consumer takes from the bulk lane first once in this many picks, so bulk work gets
    /// at least this share of a dispatcher whose fast lane is never empty.
    pub bulk_every: u32,
}

impl Default for RabbitConfig {
    fn default() -> Self {
        Self {
            urls: vec!["amqp://guest:guest@127.0.0.1:5672/%2f".to_owned()],
            prefix: "hookline".to_owned(),
            prefetch: 128,
            delivery_limit: 20,
            publisher_channels: 4,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(10),
            queue_expires: None,
            publish_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            rpc_timeout: Duration::from_secs(5),
            shards: 4,
            fair_share: Share {
                rate: 100.0,
                burst: 200,
            },
            bulk_every: 4,
        }
    }
}

impl fmt::Debug for RabbitConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|url| redact_url(url)).collect();
        f.debug_struct("RabbitConfig")
            .field("urls", &urls)
            .field("prefix", &self.prefix)
            .field("prefetch", &self.prefetch)
            .field("delivery_limit", &self.delivery_limit)
            .field("publisher_channels", &self.publisher_channels)
            .field("reconnect_min", &self.reconnect_min)
            .field("reconnect_max", &self.reconnect_max)
            .field("queue_expires", &self.queue_expires)
            .field("publish_timeout", &self.publish_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("rpc_timeout", &self.rpc_timeout)
            .field("shards", &self.shards)
            .field("fair_share", &self.fair_share)
            .field("bulk_every", &self.bulk_every)
            .finish()
    }
}

impl RabbitConfig {
    /// Checks what the broker would otherwise reject at run time, or what would make the
    /// adapter spin: call it once at start-up and refuse to start on an error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.urls.is_empty() {
            return Err(ConfigError::NoUrls);
        }
        for url in &self.urls {
            if url.parse::<lapin::uri::AMQPUri>().is_err() {
                return Err(ConfigError::BadUrl(redact_url(url)));
            }
        }
        if self.prefix.is_empty()
            || !self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(ConfigError::BadPrefix);
        }
        if self.prefetch == 0 {
            return Err(ConfigError::Zero("prefetch"));
        }
        if self.delivery_limit == 0 {
            return Err(ConfigError::Zero("delivery_limit"));
        }
        if self.publisher_channels == 0 {
            return Err(ConfigError::Zero("publisher_channels"));
        }
        for (name, value) in [
            ("reconnect_min", self.reconnect_min),
            ("publish_timeout", self.publish_timeout),
            ("connect_timeout", self.connect_timeout),
            ("rpc_timeout", self.rpc_timeout),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Zero(name));
            }
        }
        if !(1..=MAX_SHARDS).contains(&self.shards) {
            return Err(ConfigError::Shards(MAX_SHARDS));
        }
        if !(self.fair_share.rate.is_finite() && self.fair_share.rate > 0.0) {
            return Err(ConfigError::Zero("fair_share.rate"));
        }
        if self.fair_share.burst == 0 {
            return Err(ConfigError::Zero("fair_share.burst"));
        }
        if self.bulk_every < 2 {
            return Err(ConfigError::BulkEvery);
        }
        if self.reconnect_max < self.reconnect_min {
            return Err(ConfigError::ReconnectRange);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        assert!(RabbitConfig::default().validate().is_ok());
    }

    #[test]
    fn rejects_what_would_fail_later() {
        let base = RabbitConfig::default;
        let cases = [
            RabbitConfig {
                urls: vec![],
                ..base()
            },
            RabbitConfig {
                urls: vec!["http://user:secret@x".into()],
                ..base()
            },
            RabbitConfig {
                prefix: "a b".into(),
                ..base()
            },
            RabbitConfig {
                prefetch: 0,
                ..base()
            },
            RabbitConfig {
                publisher_channels: 0,
                ..base()
            },
            RabbitConfig {
                shards: 0,
                ..base()
            },
            RabbitConfig {
                bulk_every: 1,
                ..base()
            },
            RabbitConfig {
                reconnect_min: Duration::from_secs(2),
                reconnect_max: Duration::from_secs(1),
                ..base()
            },
        ];
        for (i, config) in cases.iter().enumerate() {
            assert!(config.validate().is_err(), "case {i}");
        }
    }

    #[test]
    fn debug_output_hides_the_password() {
        let config = RabbitConfig {
            urls: vec!["amqp://user:s3cret@host/%2f".into()],
            ..RabbitConfig::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("amqp://***@host/%2f"), "{shown}");
    }

    #[test]
    fn bad_url_error_hides_the_password() {
        let config = RabbitConfig {
            urls: vec!["http://user:secret@x".into()],
            ..RabbitConfig::default()
        };
        let message = config.validate().expect_err("invalid").to_string();
        assert!(!message.contains("secret"), "{message}");
    }
}
