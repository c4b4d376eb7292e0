//! What flows between a worker and the control thread besides table versions: punted packets
//! (for the host stack), injected packets (from it), and events (requests and notices). All of
//! it goes through bounded lock-free queues; a full queue drops and counts, never blocks.

use crate::tables::iface::IfIndex;
use std::net::IpAddr;

/// Why a packet was punted, i.e. what the control thread should do with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PuntKind {
    /// A whole Ethernet frame (ARP) that arrived on `port`.
    L2 { port: u16 },
    /// An IP packet addressed to us (data at the IP header) that arrived on `ifindex`. When
    /// `l2_len` is non-zero the packet is exactly as received and its original L2 header is
    /// still in the `l2_len` bytes of headroom in front of it (the host stack needs it for
    /// Neighbor Discovery).
    L3 { ifindex: IfIndex, l2_len: u8 },
    /// An IKE packet (UDP 500, or UDP 4500 after the non-ESP marker), data at the IP header.
    Ike { ifindex: IfIndex },
}

/// A packet handed to the control thread.
pub struct Punted<P> {
    pub pkt: P,
    pub kind: PuntKind,
}

/// How the control thread wants an injected packet sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectKind {
    /// A finished Ethernet frame: transmit as is on `port`.
    L2 { port: u16 },
    /// An IP packet from the gateway itself: route it (no TTL decrement, policies apply).
    L3,
}

/// A packet from the control thread.
pub struct Injected<P> {
    pub pkt: P,
    pub kind: InjectKind,
}

/// Requests and notices from workers to the control thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Resolve the MAC of `addr` on `ifindex` (neighbor missing).
    Resolve { ifindex: IfIndex, addr: IpAddr },
    /// An SA crossed its soft byte/packet lifetime: rekey.
    SaSoftExpired { sa: u32 },
    /// An SA reached its hard lifetime or exhausted its sequence numbers.
    SaHardExpired { sa: u32 },
    /// Outbound traffic matched a protect policy with no SA (IKE would start here).
    Acquire { policy: u32 },
}
