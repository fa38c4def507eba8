//! The HTTP routes, one module per resource.

pub mod apps;
pub mod attempt_walk;
pub mod attempts;
pub mod auth;
pub mod background_tasks;
pub mod common;
pub mod endpoint_activity;
pub mod endpoint_example;
pub mod endpoint_headers;
pub mod endpoint_messages;
pub mod endpoint_secret;
pub mod endpoint_stats;
pub mod endpoints;
pub mod event_type_import;
pub mod event_types;
pub mod expunge;
pub mod health;
pub mod manual;
pub mod message_destinations;
pub mod message_precheck;
pub mod messages;
pub mod operational;
pub mod operational_extras;
pub mod paging;
pub mod replay;
pub mod statistics;
