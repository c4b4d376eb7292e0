//! The forwarding information base: IPv4 and IPv6 longest-prefix match to a next-hop index,
//! and the next hops themselves.
//!
//! Neighbors are folded in at build time, as routers do with adjacencies: every resolved
//! neighbor on a connected subnet becomes a host route whose next hop already holds the whole
//! L2 rewrite, and gateway routes carry their gateway's rewrite. So forwarding a packet is one
//! LPM lookup and one array read; only a destination with no resolved neighbor leaves the fast
//! path (a resolve request to the control thread and a counted drop).

use super::iface::{Adjacency, IfIndex};
use super::lpm::{Lpm4, Lpm6};
use crate::stats::DropReason;
use std::net::IpAddr;

/// What to do with a packet whose destination matched a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// Send it with this L2 rewrite.
    Forward(Adjacency),
    /// Addressed to the gateway itself (arrived on `ifindex`'s address).
    Local { ifindex: IfIndex },
    /// Connected subnet, neighbor unknown: ask the control thread to resolve the packet's
    /// destination on `ifindex`.
    Glean { ifindex: IfIndex },
    /// Gateway route whose gateway is not resolved yet.
    Unresolved { ifindex: IfIndex, gateway: IpAddr },
    /// Into an L3 tunnel.
    Tunnel { tunnel: u32 },
    /// Into a route-based IPsec interface.
    Vti { vti: u32 },
    /// Dropped on purpose.
    Blackhole,
}

/// One route as the control plane gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FibRoute {
    pub addr: IpAddr,
    pub len: u8,
    pub nexthop: u32,
}

/// IPv4 + IPv6 FIB with its next-hop array.
#[derive(Debug)]
pub struct Fib {
    v4: Lpm4,
    v6: Lpm6,
    nexthops: Vec<NextHop>,
    /// The smallest MTU of any adjacency: a packet no longer than this fits wherever it
    /// is forwarded, so size checks before a route lookup can stop there.
    min_mtu: u16,
}

impl Fib {
    /// Build from routes that index into `nexthops`. Errors name the offending prefix.
    pub fn build(routes: &[FibRoute], nexthops: Vec<NextHop>) -> Result<Fib, String> {
        let mut r4 = Vec::new();
        let mut r6 = Vec::new();
        for r in routes {
            if r.nexthop as usize >= nexthops.len() {
                return Err(format!(
                    "route {}/{}: next hop {} out of range",
                    r.addr, r.len, r.nexthop
                ));
            }
            match r.addr {
                IpAddr::V4(a) => r4.push((a, r.len, r.nexthop)),
                IpAddr::V6(a) => r6.push((a, r.len, r.nexthop)),
            }
        }
        let v4 = Lpm4::build(&r4).map_err(|e| format!("IPv4 FIB: {e}"))?;
        let v6 = Lpm6::build(&r6).map_err(|e| format!("IPv6 FIB: {e}"))?;
        let min_mtu = nexthops
            .iter()
            .filter_map(|n| match n {
                NextHop::Forward(a) => Some(a.mtu),
                _ => None,
            })
            .min()
            .unwrap_or(u16::MAX);
        Ok(Fib {
            v4,
            v6,
            nexthops,
            min_mtu,
        })
    }

    /// An empty FIB.
    pub fn empty() -> Fib {
        Fib::build(&[], Vec::new()).unwrap_or_else(|_| unreachable!("empty FIB always builds"))
    }

    /// Next hop for an IPv4 destination.
    #[inline]
    pub fn lookup4(&self, dst: [u8; 4]) -> Result<&NextHop, DropReason> {
        self.v4
            .lookup(u32::from_be_bytes(dst))
            .and_then(|i| self.nexthops.get(i as usize))
            .ok_or(DropReason::NoRoute)
    }

    /// Next hop for an IPv6 destination.
    #[inline]
    pub fn lookup6(&self, dst: [u8; 16]) -> Result<&NextHop, DropReason> {
        self.v6
            .lookup(u128::from_be_bytes(dst))
            .and_then(|i| self.nexthops.get(i as usize))
            .ok_or(DropReason::NoRoute)
    }

    /// Next-hop index and next hop for an IPv4 destination.
    #[inline]
    pub fn lookup4_idx(&self, dst: [u8; 4]) -> Result<(u32, &NextHop), DropReason> {
        let i = self
            .v4
            .lookup(u32::from_be_bytes(dst))
            .ok_or(DropReason::NoRoute)?;
        self.nexthops
            .get(i as usize)
            .map(|n| (i, n))
            .ok_or(DropReason::NoRoute)
    }

    /// Next-hop index and next hop for an IPv6 destination.
    #[inline]
    pub fn lookup6_idx(&self, dst: [u8; 16]) -> Result<(u32, &NextHop), DropReason> {
        let i = self
            .v6
            .lookup(u128::from_be_bytes(dst))
            .ok_or(DropReason::NoRoute)?;
        self.nexthops
            .get(i as usize)
            .map(|n| (i, n))
            .ok_or(DropReason::NoRoute)
    }

    /// Next hop for either family.
    pub fn lookup(&self, dst: IpAddr) -> Result<&NextHop, DropReason> {
        match dst {
            IpAddr::V4(a) => self.lookup4(a.octets()),
            IpAddr::V6(a) => self.lookup6(a.octets()),
        }
    }

    /// The smallest adjacency MTU (`u16::MAX` without adjacencies).
    #[inline]
    pub fn min_mtu(&self) -> u16 {
        self.min_mtu
    }

    pub fn nexthops(&self) -> &[NextHop] {
        &self.nexthops
    }

    /// Routes in each family.
    pub fn len(&self) -> (usize, usize) {
        (self.v4.len(), self.v6.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }
}
