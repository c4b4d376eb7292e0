//! The management API: JSON over a root-only Unix socket, one request per line and one
//! response line back. `proto` holds the message types (shared with `ferroctl`), `server`
//! the socket thread, which hands each request to the control loop and waits for its answer,
//! and `client` the blocking client `ferroctl` uses.

pub mod client;
pub mod proto;
pub mod server;
