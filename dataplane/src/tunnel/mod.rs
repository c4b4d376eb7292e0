//! The overlay tunnel dataplane core: encapsulation and decapsulation, in place on any
//! [`Packet`](crate::packet::Packet), for GRE (RFC 2784/2890), GRE-TEB, NVGRE (RFC 7637),
//! VXLAN (RFC 7348), VXLAN-GPE (draft-ietf-nvo3-vxlan-gpe), Geneve (RFC 8926), IP-in-IP
//! (RFC 2003 / RFC 4213: 4in4, 6in4, 4in6, 6in6) and EtherIP (RFC 3378).
//!
//! * [`encap`] prepends outer IPv4/IPv6, UDP when the kind uses it, and the tunnel header to an
//!   inner packet (L3 or Ethernet, per [`TunnelEncap::carries`]). The result starts at the outer
//!   IP header; the caller prepends the link header.
//! * [`decap_parse`] reads an outer packet (starting at the outer IP header), validates every
//!   header down to the inner one and returns the demultiplexing key the tunnel table is
//!   searched with, plus where the inner packet is. [`decap`] then checks the packet against
//!   the tunnel found (format, IPIP family, GRE sequence), strips the outer headers and folds
//!   the outer ECN into the inner header (RFC 6040).
//!
//! Nothing here allocates, locks, logs or panics per packet: every read is behind a length
//! check and every failure is a [`DropReason`].

mod decap;
mod encap;
mod template;

pub use decap::{decap, decap_parse, DecapConfig, DecapInfo, DemuxKey};
pub use encap::{encap, nvgre_flow_id, outer_flow_label, udp_src_port};
pub use template::{encap_with, EncapTemplate};

use crate::outer::OuterPolicy;
use crate::stats::DropReason;
use crate::wire::geneve::{self, GeneveOptionBuf};
use crate::wire::{be16, etherip, gre, ipproto, udp, vxlan, vxlan_gpe};
use std::net::{Ipv4Addr, Ipv6Addr};

/// The tunnel encapsulations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    /// GRE carrying IPv4/IPv6 (protocol type 0x0800/0x86DD), optional key, checksum, sequence.
    Gre,
    /// GRE carrying Ethernet (Transparent Ethernet Bridging, protocol 0x6558), optional key.
    GreTeb,
    /// NVGRE: GRE-TEB with the key VSID(24) | FlowID(8), no checksum or sequence.
    Nvgre,
    /// VXLAN over UDP (4789), Ethernet payload.
    Vxlan,
    /// VXLAN-GPE over UDP (4790), Ethernet, IPv4 or IPv6 payload.
    VxlanGpe,
    /// Geneve over UDP (6081), Ethernet, IPv4 or IPv6 payload, optional options.
    Geneve,
    /// IP in IP: IPv4 (protocol 4) or IPv6 (protocol 41) inside IPv4 or IPv6.
    Ipip,
    /// EtherIP (protocol 97), Ethernet payload.
    Etherip,
}

impl TunnelKind {
    /// Every kind.
    pub const ALL: [TunnelKind; 8] = [
        TunnelKind::Gre,
        TunnelKind::GreTeb,
        TunnelKind::Nvgre,
        TunnelKind::Vxlan,
        TunnelKind::VxlanGpe,
        TunnelKind::Geneve,
        TunnelKind::Ipip,
        TunnelKind::Etherip,
    ];

    /// Kinds carried in UDP.
    #[inline]
    pub fn is_udp(self) -> bool {
        matches!(
            self,
            TunnelKind::Vxlan | TunnelKind::VxlanGpe | TunnelKind::Geneve
        )
    }

    /// Kinds built on GRE.
    #[inline]
    pub fn is_gre(self) -> bool {
        matches!(
            self,
            TunnelKind::Gre | TunnelKind::GreTeb | TunnelKind::Nvgre
        )
    }

    /// The IANA UDP destination port of a UDP kind.
    #[inline]
    pub fn default_port(self) -> Option<u16> {
        match self {
            TunnelKind::Vxlan => Some(vxlan::UDP_PORT),
            TunnelKind::VxlanGpe => Some(vxlan_gpe::UDP_PORT),
            TunnelKind::Geneve => Some(geneve::UDP_PORT),
            _ => None,
        }
    }

    /// What the kind carries unless configured otherwise.
    #[inline]
    pub fn default_payload(self) -> Payload {
        match self {
            TunnelKind::Gre | TunnelKind::Ipip => Payload::Ip,
            _ => Payload::Ethernet,
        }
    }

    /// Name as in the configuration's `profile` (`ipip` covers the four IPIP profiles).
    pub fn name(self) -> &'static str {
        match self {
            TunnelKind::Gre => "gre",
            TunnelKind::GreTeb => "gre-teb",
            TunnelKind::Nvgre => "nvgre",
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::VxlanGpe => "vxlan-gpe",
            TunnelKind::Geneve => "geneve",
            TunnelKind::Ipip => "ipip",
            TunnelKind::Etherip => "etherip",
        }
    }

    /// The drop reason for an inner packet the tunnel does not carry.
    #[inline]
    pub(crate) fn bad_payload(self) -> DropReason {
        match self {
            TunnelKind::Gre | TunnelKind::GreTeb => DropReason::GreBadProtocol,
            TunnelKind::Nvgre => DropReason::NvgreBadHeader,
            TunnelKind::VxlanGpe => DropReason::VxlanGpeBadNextProtocol,
            TunnelKind::Geneve => DropReason::GeneveBadProtocol,
            TunnelKind::Ipip => DropReason::IpipBadInner,
            TunnelKind::Vxlan | TunnelKind::Etherip => DropReason::InnerTruncated,
        }
    }
}

/// What a tunnel carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Payload {
    /// Ethernet frames (L2 tunnels).
    #[default]
    Ethernet,
    /// IPv4 only (e.g. `ip4ip4`, `ip4ip6`).
    Ipv4,
    /// IPv6 only (e.g. `ip6ip4`, `ip6ip6`).
    Ipv6,
    /// IPv4 or IPv6, by the packet's version (GRE, IPIP "any").
    Ip,
}

impl Payload {
    /// True when a packet of type `t` may be carried.
    #[inline]
    pub fn accepts(self, t: PayloadType) -> bool {
        matches!(
            (self, t),
            (Payload::Ethernet, PayloadType::Ethernet)
                | (Payload::Ipv4 | Payload::Ip, PayloadType::Ipv4)
                | (Payload::Ipv6 | Payload::Ip, PayloadType::Ipv6)
        )
    }
}

/// What one packet's inner payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadType {
    Ethernet,
    Ipv4,
    Ipv6,
}

/// The outer addresses of a tunnel, one family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoints {
    V4 { local: Ipv4Addr, remote: Ipv4Addr },
    V6 { local: Ipv6Addr, remote: Ipv6Addr },
}

impl Endpoints {
    #[inline]
    pub fn is_v6(&self) -> bool {
        matches!(self, Endpoints::V6 { .. })
    }
    /// Length of the outer IP header this family takes.
    #[inline]
    pub fn ip_header_len(&self) -> usize {
        if self.is_v6() {
            crate::wire::ipv6::HEADER_LEN
        } else {
            crate::wire::ipv4::MIN_HEADER_LEN
        }
    }
    /// The far end is one host (not multicast or broadcast): only then may encapsulation
    /// skip IP output's checks for its packets.
    #[inline]
    pub fn remote_is_unicast(&self) -> bool {
        match self {
            Endpoints::V4 { remote, .. } => !remote.is_multicast() && !remote.is_broadcast(),
            Endpoints::V6 { remote, .. } => !remote.is_multicast(),
        }
    }
}

/// Default UDP source port range (RFC 7348 §5: the dynamic/private range).
pub const UDP_SPORT_MIN: u16 = 49152;
pub const UDP_SPORT_MAX: u16 = 65535;

/// Everything encapsulation needs to know about one tunnel (and what decapsulation checks a
/// packet against once the tunnel table has found it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelEncap {
    pub kind: TunnelKind,
    pub endpoints: Endpoints,
    /// What the tunnel carries; see [`TunnelEncap::carries`] for the kinds that fix it.
    pub payload: Payload,
    /// GRE key (32 bits), VXLAN / VXLAN-GPE / Geneve VNI (24 bits), NVGRE VSID (24 bits).
    pub key: Option<u32>,
    /// UDP source port range; the port is chosen from the inner flow hash (RFC 7348 §5).
    pub sport_min: u16,
    pub sport_max: u16,
    /// UDP destination port (defaults per kind: 4789, 4790, 6081).
    pub dst_port: u16,
    /// Send the GRE checksum (RFC 2784).
    pub gre_checksum: bool,
    /// Send GRE sequence numbers, and require in-order ones on receive (RFC 2890).
    pub gre_sequence: bool,
    /// Send a zero UDP checksum over IPv6 (RFC 6935/6936) instead of computing it.
    pub udp6_zero_checksum: bool,
    /// Outer TTL, DSCP and DF.
    pub outer: OuterPolicy,
    /// Geneve options to send.
    pub geneve_options: GeneveOptionBuf,
}

impl TunnelEncap {
    /// A tunnel of `kind` between `endpoints` with every option at its default.
    pub fn new(kind: TunnelKind, endpoints: Endpoints) -> Self {
        TunnelEncap {
            kind,
            endpoints,
            payload: kind.default_payload(),
            key: None,
            sport_min: UDP_SPORT_MIN,
            sport_max: UDP_SPORT_MAX,
            dst_port: kind.default_port().unwrap_or(0),
            gre_checksum: false,
            gre_sequence: false,
            udp6_zero_checksum: false,
            outer: OuterPolicy::default(),
            geneve_options: GeneveOptionBuf::default(),
        }
    }

    /// What the tunnel carries: Ethernet for GRE-TEB, NVGRE, VXLAN and EtherIP whatever
    /// `payload` says; IP for GRE and IPIP unless narrowed to one family.
    #[inline]
    pub fn carries(&self) -> Payload {
        match self.kind {
            TunnelKind::GreTeb | TunnelKind::Nvgre | TunnelKind::Vxlan | TunnelKind::Etherip => {
                Payload::Ethernet
            }
            TunnelKind::Gre | TunnelKind::Ipip if self.payload == Payload::Ethernet => Payload::Ip,
            _ => self.payload,
        }
    }

    /// GRE header length this tunnel sends.
    #[inline]
    fn gre_header_len(&self) -> usize {
        let mut f = 0;
        if self.key.is_some() || self.kind == TunnelKind::Nvgre {
            f |= gre::FLAG_K;
        }
        if self.kind != TunnelKind::Nvgre {
            if self.gre_checksum {
                f |= gre::FLAG_C;
            }
            if self.gre_sequence {
                f |= gre::FLAG_S;
            }
        }
        gre::header_len_for(f)
    }

    /// Length of the tunnel header alone (GRE, VXLAN, Geneve with options, EtherIP).
    #[inline]
    pub fn tunnel_header_len(&self) -> usize {
        match self.kind {
            TunnelKind::Gre | TunnelKind::GreTeb | TunnelKind::Nvgre => self.gre_header_len(),
            TunnelKind::Vxlan => vxlan::HEADER_LEN,
            TunnelKind::VxlanGpe => vxlan_gpe::HEADER_LEN,
            TunnelKind::Geneve => geneve::HEADER_LEN + self.geneve_options.len(),
            TunnelKind::Ipip => 0,
            TunnelKind::Etherip => etherip::HEADER_LEN,
        }
    }

    /// Bytes `encap` prepends: outer IP, UDP when used, and the tunnel header. (The inner
    /// Ethernet header of L2 tunnels is part of the payload, not of this.)
    #[inline]
    pub fn overhead(&self) -> usize {
        self.endpoints.ip_header_len()
            + if self.kind.is_udp() {
                udp::HEADER_LEN
            } else {
                0
            }
            + self.tunnel_header_len()
    }

    /// Control-plane check of the combination of settings (not called per packet).
    pub fn validate(&self) -> Result<(), String> {
        self.validate_field().map_err(|(_, e)| e)
    }

    /// [`validate`](Self::validate), also naming the setting at fault as the configuration
    /// calls it: `key`, `gre_checksum`, `payload`, `port`, `geneve_options`, `ttl`, `local`
    /// or `remote`.
    pub fn validate_field(&self) -> Result<(), (&'static str, String)> {
        let k = self.kind;
        let name = k.name();
        match (k, self.key) {
            (TunnelKind::Nvgre, None) => {
                return Err(("key", "nvgre needs a key (the VSID)".into()))
            }
            (TunnelKind::Nvgre, Some(v))
                if !(gre::NVGRE_VSID_MIN..=gre::NVGRE_VSID_MAX).contains(&v) =>
            {
                return Err((
                    "key",
                    format!(
                        "nvgre VSID {v} is reserved or out of range (RFC 7637: {}..={})",
                        gre::NVGRE_VSID_MIN,
                        gre::NVGRE_VSID_MAX
                    ),
                ))
            }
            (TunnelKind::Vxlan | TunnelKind::VxlanGpe | TunnelKind::Geneve, None) => {
                return Err(("key", format!("{name} needs a key (the VNI)")))
            }
            (TunnelKind::Vxlan | TunnelKind::VxlanGpe | TunnelKind::Geneve, Some(v))
                if v > vxlan::VNI_MAX =>
            {
                return Err(("key", format!("{name} VNI {v} does not fit in 24 bits")))
            }
            (TunnelKind::Ipip | TunnelKind::Etherip, Some(_)) => {
                return Err(("key", format!("{name} has no key")))
            }
            _ => {}
        }
        if (self.gre_checksum || self.gre_sequence)
            && !matches!(k, TunnelKind::Gre | TunnelKind::GreTeb)
        {
            return Err((
                "gre_checksum",
                format!(
                    "GRE checksum/sequence options do not apply to {name}{}",
                    if k == TunnelKind::Nvgre {
                        " (RFC 7637: C and S must be 0)"
                    } else {
                        ""
                    }
                ),
            ));
        }
        match (k, self.payload) {
            (
                TunnelKind::GreTeb | TunnelKind::Nvgre | TunnelKind::Vxlan | TunnelKind::Etherip,
                p,
            ) if p != Payload::Ethernet => {
                return Err(("payload", format!("{name} carries Ethernet frames only")))
            }
            (TunnelKind::Gre | TunnelKind::Ipip, Payload::Ethernet) => {
                return Err((
                    "payload",
                    format!("{name} carries IP packets (use gre-teb for Ethernet over GRE)"),
                ))
            }
            _ => {}
        }
        if k.is_udp() {
            if self.dst_port == 0 {
                return Err(("port", format!("{name} needs a UDP destination port")));
            }
            if self.sport_min == 0 || self.sport_min > self.sport_max {
                return Err((
                    "port",
                    format!(
                        "bad UDP source port range {}-{}",
                        self.sport_min, self.sport_max
                    ),
                ));
            }
        }
        if !self.geneve_options.is_empty() && k != TunnelKind::Geneve {
            return Err(("geneve_options", format!("{name} has no options")));
        }
        if self.outer.ttl == 0 {
            return Err(("ttl", "outer TTL 0".into()));
        }
        match self.endpoints {
            Endpoints::V4 { local, remote } => {
                if local.is_unspecified() || local.is_multicast() || local.is_broadcast() {
                    return Err((
                        "local",
                        format!("local address {local} is not a unicast address"),
                    ));
                }
                if remote.is_unspecified() || remote.is_broadcast() {
                    return Err(("remote", format!("remote address {remote} is not usable")));
                }
                if remote.is_multicast() {
                    if !k.is_udp() {
                        return Err(("remote", format!("{name} cannot use a multicast remote")));
                    }
                    if remote.octets()[..3] == [224, 0, 0] {
                        return Err((
                            "remote",
                            format!(
                                "multicast group {remote} is in the local network control \
                                 block 224.0.0.0/24 (RFC 5771)"
                            ),
                        ));
                    }
                }
            }
            Endpoints::V6 { local, remote } => {
                if local.is_unspecified() || local.is_multicast() {
                    return Err((
                        "local",
                        format!("local address {local} is not a unicast address"),
                    ));
                }
                if remote.is_unspecified() {
                    return Err(("remote", format!("remote address {remote} is not usable")));
                }
                if remote.is_multicast() {
                    if !k.is_udp() {
                        return Err(("remote", format!("{name} cannot use a multicast remote")));
                    }
                    if remote.octets()[1] & 0x0f <= 2 {
                        return Err((
                            "remote",
                            format!("multicast group {remote} has interface- or link-local scope"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A hash of the inner flow — addresses, protocol and ports of the inner IP packet (looked up
/// through the Ethernet header and VLAN tags of an L2 payload; the MAC addresses for a non-IP
/// frame) — for the outer entropy: UDP source port (RFC 7348 §5), NVGRE FlowID, IPv6 flow
/// label. Every read is length-checked; what cannot be read is left out of the hash.
#[inline]
pub fn inner_flow_hash(b: &[u8], ethernet: bool) -> u32 {
    use crate::wire::ethernet::{EtherType, L2Header};
    let (ip, et) = if ethernet {
        match L2Header::parse(b) {
            Ok(l2) => (b.get(l2.l3_offset..).unwrap_or(&[]), l2.ethertype),
            Err(_) => (&[][..], 0),
        }
    } else {
        match b.first().map(|v| v >> 4) {
            Some(4) => (b, EtherType::IPV4),
            Some(6) => (b, EtherType::IPV6),
            _ => (b, 0),
        }
    };
    flow_hash(b, ip, et)
}

/// [`inner_flow_hash`] once the inner headers are located: `ip` is the inner IP header (of
/// EtherType `et`) within the payload `b`, or empty.
#[inline(always)]
pub(super) fn flow_hash(b: &[u8], ip: &[u8], et: u16) -> u32 {
    use crate::wire::ethernet::EtherType;
    #[inline(always)]
    fn mix(h: u64, x: u64) -> u64 {
        (h ^ x).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29)
    }
    #[inline(always)]
    fn word(b: &[u8], at: usize) -> u64 {
        b.get(at..at + 8)
            .map(|w| u64::from_ne_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]))
            .unwrap_or(0)
    }
    let ports = |l4: usize| {
        ip.get(l4..l4 + 4)
            .map(|p| u32::from_ne_bytes([p[0], p[1], p[2], p[3]]) as u64)
            .unwrap_or(0)
    };
    let h = match et {
        EtherType::IPV4 if ip.len() >= crate::wire::ipv4::MIN_HEADER_LEN => {
            let proto = ip[9];
            let hl = ((ip[0] & 0x0f) as usize) * 4;
            let first = be16(ip, 6) & 0x1fff == 0;
            let l4 = if first && matches!(proto, ipproto::TCP | ipproto::UDP | ipproto::SCTP) {
                ports(hl)
            } else {
                0
            };
            mix(mix(word(ip, 12), proto as u64), l4)
        }
        EtherType::IPV6 if ip.len() >= crate::wire::ipv6::HEADER_LEN => {
            let proto = ip[6];
            let l4 = if matches!(proto, ipproto::TCP | ipproto::UDP | ipproto::SCTP) {
                ports(crate::wire::ipv6::HEADER_LEN)
            } else {
                0
            };
            let a = mix(
                mix(word(ip, 8), word(ip, 16)),
                mix(word(ip, 24), word(ip, 32)),
            );
            mix(mix(a, proto as u64), l4)
        }
        _ => mix(word(b, 0), word(b, 4)),
    };
    (h ^ (h >> 32)) as u32
}

/// RFC 2890 receive-side sequence state of one GRE tunnel: a packet is accepted only if its
/// sequence number is after the last accepted one in serial-number arithmetic (RFC 1982);
/// anything else is out of order and dropped with `GreSequence`. (RFC 2890's optional
/// reordering buffer is not implemented: out-of-order packets are dropped at once.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GreSeqState {
    last: u32,
    seen: bool,
}

impl GreSeqState {
    /// A state from its stored parts (`seen`, last accepted number).
    #[inline]
    pub fn from_parts(seen: bool, last: u32) -> Self {
        GreSeqState { last, seen }
    }
    /// Accept `seq` and remember it, or refuse it without changing the state.
    #[inline]
    pub fn accept(&mut self, seq: u32) -> Result<(), DropReason> {
        if !self.would_accept(seq) {
            return Err(DropReason::GreSequence);
        }
        self.last = seq;
        self.seen = true;
        Ok(())
    }
    /// True when `seq` would be accepted.
    #[inline]
    pub fn would_accept(&self, seq: u32) -> bool {
        !self.seen || (seq.wrapping_sub(self.last) as i32) > 0
    }
    /// The last accepted sequence number.
    #[inline]
    pub fn last(&self) -> Option<u32> {
        self.seen.then_some(self.last)
    }
    /// Forget the history (e.g. after the peer restarted): the next number is accepted.
    #[inline]
    pub fn reset(&mut self) {
        *self = GreSeqState::default();
    }
}

/// Send-side GRE sequence counter of one tunnel (RFC 2890 §2.2: starts at 0, wraps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GreSeqTx {
    next: u32,
}

impl GreSeqTx {
    /// The number for the next packet.
    #[inline]
    pub fn next_seq(&mut self) -> u32 {
        let s = self.next;
        self.next = s.wrapping_add(1);
        s
    }
}

#[cfg(test)]
mod tests;
