//! This adapter's errors, and how they map onto the core's [`QueueError`].

use hookline_core::ports::QueueError;

/// A [`RabbitConfig`](crate::RabbitConfig) that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("at least one AMQP URL is required")]
    NoUrls,
    /// Carries the URL with its credentials redacted.
    #[error("not a valid AMQP URL: {0}")]
    BadUrl(String),
    #[error("the prefix must be non-empty and contain only letters, digits, '-', '_' and '.'")]
    BadPrefix,
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    #[error("reconnect_max must not be below reconnect_min")]
    ReconnectRange,
    #[error("shards must be between 1 and {0}")]
    Shards(u16),
    #[error("bulk_every must be at least 2")]
    BulkEvery,
}

/// Failures of the broker helpers (depth, dead-letter count, teardown) and of set-up steps.
#[derive(Debug, thiserror::Error)]
pub enum RabbitError {
    /// No live connection right now; the supervisor is reconnecting.
    #[error("not connected to RabbitMQ")]
    NotConnected,
    /// The broker shut down or [`RabbitBroker::shutdown`](crate::RabbitBroker::shutdown) ran.
    #[error("the RabbitMQ adapter is shut down")]
    Shutdown,
    /// The operation did not finish in time.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// The broker or the client library refused the operation. The source is the AMQP
    /// client's error, kept opaque so callers do not depend on the client library.
    #[error("{operation} failed: {source}")]
    Amqp {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl RabbitError {
    /// Wraps a lapin error with the operation it interrupted.
    pub(crate) fn amqp(operation: &'static str) -> impl FnOnce(lapin::Error) -> Self {
        move |source| Self::Amqp {
            operation,
            source: Box::new(source),
        }
    }
}

impl From<RabbitError> for QueueError {
    fn from(error: RabbitError) -> Self {
        QueueError::Unavailable(error.to_string())
    }
}

/// Awaits `future` for at most `limit`, naming `operation` in the timeout error.
pub(crate) async fn bounded<T>(
    operation: &'static str,
    limit: std::time::Duration,
    future: impl std::future::Future<Output = Result<T, lapin::Error>>,
) -> Result<T, RabbitError> {
    match tokio::time::timeout(limit, future).await {
        Ok(result) => result.map_err(RabbitError::amqp(operation)),
        Err(_) => Err(RabbitError::Timeout(operation)),
    }
}
