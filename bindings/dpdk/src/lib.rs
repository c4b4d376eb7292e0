//! Safe wrappers over DPDK: EAL initialisation, the packet pool, owned mbufs, ports with
//! single-owner RX/TX queue handles, rings, lcore launch. No protocol knowledge here.
//!
//! Every `unsafe` block says why it is sound. The fast path (mbuf field access and resizing)
//! is plain Rust over the `rte_mbuf` layout; only burst RX/TX, alloc/free and ring operations
//! cross into C, once per burst or per buffer.

mod eal;
mod error;
pub mod lcore;
mod mbuf;
mod mempool;
mod port;
mod ring;

pub use eal::{plugin_args, Eal};
pub use error::Error;
pub use lcore::{tsc, tsc_hz};
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use port::{Link, Port, PortConfig, PortInfo, PortStats, RxQueue, TxQueue};
pub use ring::Ring;

/// Result of DPDK calls.
pub type Result<T> = std::result::Result<T, Error>;
