//! The tables a worker reads: built by the control thread, immutable once published, swapped
//! in whole (RCU). A worker picks up a new version only at a burst boundary.

pub mod fib;
pub mod iface;
pub mod ipsec;
pub mod lpm;
pub mod tunnels;

use arc_swap::ArcSwap;
use fib::Fib;
use iface::{Interface, PortEntry};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One published version of everything the workers look up.
#[derive(Debug)]
pub struct Tables {
    /// Monotonic version, reported back by each worker once it runs on it.
    pub version: u64,
    /// Ingress demultiplexing, indexed by DPDK port id.
    pub ports: Vec<PortEntry>,
    /// L3 interfaces, indexed by `IfIndex`.
    pub interfaces: Vec<Interface>,
    /// Routes and next hops.
    pub fib: Fib,
    /// Security policies and inbound SA index.
    pub ipsec: ipsec::IpsecTables,
    /// Overlay tunnels and their demultiplexer.
    pub tunnels: tunnels::TunnelTable,
}

impl Tables {
    /// Tables that drop everything (before the first publish).
    pub fn empty() -> Tables {
        Tables {
            version: 0,
            ports: Vec::new(),
            interfaces: Vec::new(),
            fib: Fib::empty(),
            ipsec: ipsec::IpsecTables::default(),
            tunnels: tunnels::TunnelTable::default(),
        }
    }
}

/// Where the control thread publishes and workers look. The version number is checked with a
/// plain atomic load per burst; the `ArcSwap` is only touched when it changed.
pub struct TablesHandle {
    current: ArcSwap<Tables>,
    version: AtomicU64,
}

impl TablesHandle {
    pub fn new(t: Tables) -> TablesHandle {
        let v = t.version;
        TablesHandle {
            current: ArcSwap::from_pointee(t),
            version: AtomicU64::new(v),
        }
    }

    /// Publish a new version (control thread). Returns the previous one, which the caller
    /// must keep alive until every worker reports a version at least `t.version`, so that the
    /// last reference (and the free) is never dropped on a worker.
    pub fn publish(&self, t: Arc<Tables>) -> Arc<Tables> {
        let v = t.version;
        let old = self.current.swap(t);
        self.version.store(v, Ordering::Release);
        old
    }

    /// Version of the newest table (cheap; workers poll it once per burst).
    #[inline]
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The newest tables.
    pub fn load(&self) -> Arc<Tables> {
        self.current.load_full()
    }
}
