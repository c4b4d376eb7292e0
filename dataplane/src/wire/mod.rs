//! Zero-copy header views, in the manner of smoltcp's `wire`: a typed view over a byte buffer
//! per header. `new_checked` validates every length the accessors rely on, once, and returns
//! the drop reason the dataplane counts when it fails; the accessors after that are plain loads
//! with no further checks that could fail.
//!
//! Views are generic over `T: AsRef<[u8]>` (read) and `T: AsMut<[u8]>` (write), so the same
//! code reads a received frame and writes one being built in headroom.
//!
//! Constructors, accessors and setters are `#[inline(always)]`: inside the worker's large
//! fast-path function LLVM's inliner ran out of budget and left these few-instruction reads
//! as calls on every packet (≈ 10 % of a GRE decapsulation's samples).

pub mod checksum;
pub mod etherip;
pub mod ethernet;
pub mod geneve;
pub mod gre;
pub mod icmp;
pub mod ipv4;
pub mod ipv6;
pub mod udp;
pub mod vxlan;
pub mod vxlan_gpe;

pub use ethernet::{EtherType, EthernetFrame, L2Header, Mac};
pub use ipv4::Ipv4Packet;
pub use ipv6::Ipv6Packet;
pub use udp::UdpPacket;

/// IP protocol numbers the dataplane knows by name.
pub mod ipproto {
    pub const HOPOPT: u8 = 0;
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const IPV6_ROUTE: u8 = 43;
    pub const IPV6_FRAG: u8 = 44;
    pub const GRE: u8 = 47;
    pub const ESP: u8 = 50;
    pub const AH: u8 = 51;
    pub const ICMPV6: u8 = 58;
    pub const IPV6_NONXT: u8 = 59;
    pub const IPV6_OPTS: u8 = 60;
    pub const ETHERIP: u8 = 97;
    pub const SCTP: u8 = 132;
}

/// Read a big-endian u16 at `off`. Callers have checked the length.
#[inline(always)]
pub fn be16(b: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([b[off], b[off + 1]])
}

/// Read a big-endian u32 at `off`. Callers have checked the length.
#[allow(dead_code)] // used by the tunnel header views
#[inline(always)]
pub(crate) fn be32(b: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// Write a big-endian u16 at `off`.
#[inline(always)]
pub fn put16(b: &mut [u8], off: usize, v: u16) {
    b[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

/// Write a big-endian u32 at `off`.
#[inline(always)]
pub fn put32(b: &mut [u8], off: usize, v: u32) {
    b[off..off + 4].copy_from_slice(&v.to_be_bytes());
}
