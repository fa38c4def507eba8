//! The HTTP routes, one module per resource.

pub mod apps;
pub mod attempts;
pub mod auth;
pub mod common;
pub mod endpoint_headers;
pub mod endpoint_secret;
pub mod endpoints;
pub mod event_types;
pub mod health;
pub mod manual;
pub mod messages;
