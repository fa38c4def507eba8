//! Hookline's integration suite: the `hookline` binary against the real RabbitMQ and Redis on
//! 127.0.0.1, delivering to real HTTP receivers on loopback.
//!
//! Every test gets its own RabbitMQ names and Redis key prefix, so tests run in parallel on
//! the shared services without seeing each other's tasks.

mod testkit;

mod accept;
mod adversarial;
mod api;
mod asymmetric;
mod attempt_log;
mod background_tasks;
mod backlog;
mod bench;
mod breaker;
mod compatibility;
mod crashes;
mod dashboard;
mod delivery;
mod deploy;
mod egress;
mod embedded;
mod endpoint_changes;
mod failover;
mod fairness;
mod filters;
mod health;
mod idempotency;
mod isolation;
mod limits;
mod list_filters;
mod monitoring;
mod oauth;
mod observability;
mod openapi;
mod operations;
mod ordering;
mod outages;
mod ports;
mod postgres_log;
mod races;
mod reach;
mod scale;
mod secrets;
mod shutdown;
mod ssrf;
mod startup;
mod svix_auth_ops;
mod svix_resources;
mod svix_sdk;
mod tenancy;
mod throttle;
mod tls;
mod tools;
