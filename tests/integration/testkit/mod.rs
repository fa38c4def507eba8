//! What the integration tests share: a Hookline deployment per test, loopback receivers, an
//! API client and condition waits with deadlines.

pub mod api;
pub mod browser;
pub mod dns;
pub mod process;
pub mod python;
pub mod receiver;
pub mod wait;

pub use api::Api;
pub use browser::Browser;
pub use process::{Role, Stack};
pub use receiver::{Receiver, Reply};
pub use wait::eventually;
