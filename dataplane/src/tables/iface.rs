//! Interfaces and ports as the workers see them: which interface a frame arrived on (port +
//! VLAN), whether its destination MAC is ours, and the L2 header to put on a frame leaving
//! through an interface.

use crate::wire::Mac;

/// Interface index (position in `Tables::interfaces`).
pub type IfIndex = u16;

/// What an interface is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IfKind {
    /// A DPDK port, untagged (`vlan == 0`) or an 802.1Q sub-interface.
    Port { port: u16, vlan: u16 },
    /// An L3 tunnel (GRE, IPIP): packets routed into it are encapsulated.
    Tunnel { tunnel: u32 },
    /// A route-based IPsec interface.
    Vti { vti: u32 },
}

/// One L3 interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub kind: IfKind,
    pub mac: Mac,
    /// IP MTU.
    pub mtu: u16,
    /// Source for ICMP errors sent from this interface.
    pub icmp_src_v4: Option<[u8; 4]>,
    pub icmp_src_v6: Option<[u8; 16]>,
}

/// Per-port ingress demultiplexing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PortEntry {
    /// The port's MAC (frames to other unicast MACs are not for us).
    pub mac: Mac,
    /// Interface of untagged frames.
    pub untagged: Option<IfIndex>,
    /// Interfaces of tagged frames: (vlan, interface). Few per port, so a scan is cheapest.
    pub vlans: Vec<(u16, IfIndex)>,
    /// L2 cross-connects: (VLAN, tunnel index). A matching frame is carried into the tunnel
    /// whatever its MAC. VLAN 0 matches untagged frames, [`XCONNECT_PORT`] every frame on the
    /// port that no other entry matches (carried with its tags); a VLAN entry's tag is
    /// removed on the way in and put back on the way out.
    pub xconnects: Vec<(u16, u32)>,
}

/// The cross-connect "VLAN" of a whole-port cross-connect.
pub const XCONNECT_PORT: u16 = u16::MAX;

impl PortEntry {
    /// Interface for a frame with outer VLAN `vlan` (0 = untagged).
    #[inline]
    pub fn interface(&self, vlan: u16) -> Option<IfIndex> {
        if vlan == 0 {
            return self.untagged;
        }
        self.vlans.iter().find(|(v, _)| *v == vlan).map(|&(_, i)| i)
    }

    /// Cross-connect (tunnel, remove the tag) for a frame with outer VLAN `vlan` (0 =
    /// untagged).
    #[inline]
    pub fn xconnect(&self, vlan: u16) -> Option<(u32, bool)> {
        if self.xconnects.is_empty() {
            return None;
        }
        self.xconnects
            .iter()
            .find(|(v, _)| *v == vlan)
            .map(|&(_, x)| (x, vlan != 0))
            .or_else(|| {
                self.xconnects
                    .iter()
                    .find(|(v, _)| *v == XCONNECT_PORT)
                    .map(|&(_, x)| (x, false))
            })
    }
}

/// A precomputed L2 rewrite: everything needed to send an IP packet to one neighbor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Adjacency {
    pub ifindex: IfIndex,
    pub port: u16,
    /// 0 = untagged.
    pub vlan: u16,
    pub dst: Mac,
    pub src: Mac,
    /// IP MTU of the egress interface.
    pub mtu: u16,
}
