//! Commands for people at a terminal: `listen`, `send`, `recover`, `bench`. They talk to Hookline
//! only through its public API (or receive from it), like any other client.

pub mod bench;
pub mod client;
pub mod listen;
pub mod recover;
pub mod send;
