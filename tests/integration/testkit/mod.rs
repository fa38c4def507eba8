//! What the integration tests share: a Hookline deployment per test, loopback receivers, an
//! API client and condition waits with deadlines.

pub mod api;
pub mod bearer_receiver;
pub mod browser;
pub mod dns;
pub mod forward_proxy;
pub mod js;
pub mod listen;
pub mod pg_node;
pub mod process;
pub mod python;
pub mod rabbit_node;
pub mod receiver;
pub mod tls_receiver;
pub mod token_server;
pub mod wait;

pub use api::Api;
pub use browser::Browser;
pub use pg_node::PrivatePostgres;
pub use process::{Backend, Role, Stack};
pub use rabbit_node::PrivateNode;

/// The conformance suite's parameter: `#[apply(backends)]` on a test taking
/// `#[case] backend: Backend` runs it on RabbitMQ + Redis, embedded, and on the RabbitMQ
/// and Redis clusters.
#[rstest_reuse::template]
#[rstest::rstest]
#[case::rabbitmq_redis(Backend::RabbitRedis)]
#[case::embedded(Backend::Embedded)]
#[case::clusters(Backend::Clusters)]
pub fn backends(#[case] backend: Backend) {}

/// The SDK tests' parameter: the two ways Hookline is deployed (RabbitMQ + Redis, and
/// embedded). The clusters add nothing an SDK can see, and every case starts a deployment.
#[rstest_reuse::template]
#[rstest::rstest]
#[case::rabbitmq_redis(Backend::RabbitRedis)]
#[case::embedded(Backend::Embedded)]
pub fn sdk_backends(#[case] backend: Backend) {}
pub use receiver::{Gate, Receiver, Reply};
pub use wait::eventually;
