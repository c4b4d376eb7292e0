//! Encapsulation: prepend outer IP, UDP and the tunnel header in place.

use super::{Endpoints, PayloadType, TunnelEncap, TunnelKind};
use crate::packet::Packet;
use crate::stats::DropReason;
use crate::wire::ethernet::{self, EtherType, L2Header};
use crate::wire::geneve::GeneveRepr;
use crate::wire::gre::{self, GrePacket, GreRepr};
use crate::wire::ipv4::{self, Ipv4Repr};
use crate::wire::ipv6::{self, Ipv6Repr};
use crate::wire::vxlan::VxlanRepr;
use crate::wire::vxlan_gpe::{next_protocol, VxlanGpeRepr};
use crate::wire::{be16, etherip, ipproto, udp};

/// The UDP source port for a flow hash, within `[min, max]` (RFC 7348 §5 entropy). The hash's
/// low half is folded into its high half first and the range is then scaled by multiplication,
/// as Linux's `udp_flow_src_port` does, so both halves of the hash matter and no division is
/// needed.
#[inline]
pub fn udp_src_port(hash: u32, min: u16, max: u16) -> u16 {
    let (lo, hi) = if min <= max { (min, max) } else { (max, min) };
    let span = (hi - lo) as u64 + 1;
    let h = hash ^ (hash << 16);
    lo + ((h as u64 * span) >> 32) as u16
}

/// The NVGRE FlowID for a flow hash (RFC 7637 §3.2: per-flow entropy within a VSID).
#[inline]
pub fn nvgre_flow_id(hash: u32) -> u8 {
    let b = hash.to_be_bytes();
    b[0] ^ b[1] ^ b[2] ^ b[3]
}

/// The outer IPv6 flow label for a flow hash (RFC 6438: tunnel endpoints set it from the
/// inner flow so the underlay can balance on the outer header).
#[inline]
pub fn outer_flow_label(hash: u32) -> u32 {
    (hash ^ (hash >> 20)) & 0xf_ffff
}

/// What encapsulation needs from the inner packet: its type, TOS and IPv4 DF, packed in one
/// word. As a struct of three bytes it travelled through the stack, written with one width
/// and read back with another at an overlapping offset, which stalled store forwarding on
/// every packet.
#[derive(Clone, Copy)]
pub(super) struct Inner(u32);

impl Inner {
    #[inline(always)]
    pub(super) fn new(ty: PayloadType, tos: u8, df: Option<bool>) -> Self {
        let ty = match ty {
            PayloadType::Ethernet => 0,
            PayloadType::Ipv4 => 1,
            PayloadType::Ipv6 => 2,
        };
        let df = match df {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        };
        Inner(ty | (df << 4) | ((tos as u32) << 8))
    }
    #[inline(always)]
    pub fn ty(self) -> PayloadType {
        match self.0 & 0xf {
            0 => PayloadType::Ethernet,
            1 => PayloadType::Ipv4,
            _ => PayloadType::Ipv6,
        }
    }
    #[inline(always)]
    pub fn tos(self) -> u8 {
        (self.0 >> 8) as u8
    }
    #[inline(always)]
    pub fn df(self) -> Option<bool> {
        match (self.0 >> 4) & 0xf {
            0 => None,
            1 => Some(false),
            _ => Some(true),
        }
    }
}

/// TOS and DF of an IP header at the start of `b` (Not-ECT, no DF when it is not one).
#[inline(always)]
fn ip_tos_df(b: &[u8], ethertype: u16) -> (u8, Option<bool>) {
    match ethertype {
        EtherType::IPV4 if b.len() >= ipv4::MIN_HEADER_LEN && b[0] >> 4 == 4 => {
            (b[1], Some(be16(b, 6) & ipv4::FLAG_DF != 0))
        }
        EtherType::IPV6 if b.len() >= ipv6::HEADER_LEN && b[0] >> 4 == 6 => {
            ((b[0] << 4) | (b[1] >> 4), None)
        }
        _ => (0, None),
    }
}

// Always inlined: returned out of line, its result came back through the stack and was
// read with wider loads than it was written with, stalling store forwarding.
#[inline(always)]
fn classify_inner(b: &[u8], t: &TunnelEncap) -> Result<Inner, DropReason> {
    let carries = t.carries();
    if carries == super::Payload::Ethernet {
        if b.len() < ethernet::HEADER_LEN {
            return Err(DropReason::InnerTruncated);
        }
        // Look through the Ethernet header and VLAN tags to an IP header, if there is one.
        let (tos, df) = match L2Header::parse(b) {
            Ok(l2) => ip_tos_df(&b[l2.l3_offset..], l2.ethertype),
            Err(_) => (0, None),
        };
        return Ok(Inner::new(PayloadType::Ethernet, tos, df));
    }
    let (ty, ethertype, min) = match b.first().map(|v| v >> 4) {
        Some(4) => (PayloadType::Ipv4, EtherType::IPV4, ipv4::MIN_HEADER_LEN),
        Some(6) => (PayloadType::Ipv6, EtherType::IPV6, ipv6::HEADER_LEN),
        None => return Err(DropReason::InnerTruncated),
        _ => return Err(t.kind.bad_payload()),
    };
    if !carries.accepts(ty) {
        return Err(t.kind.bad_payload());
    }
    if b.len() < min {
        return Err(DropReason::InnerTruncated);
    }
    let (tos, df) = ip_tos_df(b, ethertype);
    Ok(Inner::new(ty, tos, df))
}

/// [`classify_inner`] and [`inner_flow_hash`](super::inner_flow_hash) (of a payload that is an
/// Ethernet frame exactly when the tunnel carries Ethernet, as every caller has it) from one
/// parse of the inner headers.
#[inline(always)]
pub(super) fn inspect(b: &[u8], t: &TunnelEncap) -> Result<(Inner, u32), DropReason> {
    if t.carries() == super::Payload::Ethernet {
        if b.len() < ethernet::HEADER_LEN {
            return Err(DropReason::InnerTruncated);
        }
        let (ip, et) = match L2Header::parse(b) {
            Ok(l2) => (b.get(l2.l3_offset..).unwrap_or(&[]), l2.ethertype),
            Err(_) => (&[][..], 0),
        };
        let (tos, df) = ip_tos_df(ip, et);
        let inner = Inner::new(PayloadType::Ethernet, tos, df);
        return Ok((inner, super::flow_hash(b, ip, et)));
    }
    let inner = classify_inner(b, t)?;
    let et = match inner.ty() {
        PayloadType::Ipv4 => EtherType::IPV4,
        _ => EtherType::IPV6,
    };
    Ok((inner, super::flow_hash(b, b, et)))
}

#[inline]
pub(super) fn ethertype_of(ty: PayloadType) -> u16 {
    match ty {
        PayloadType::Ethernet => EtherType::TEB,
        PayloadType::Ipv4 => EtherType::IPV4,
        PayloadType::Ipv6 => EtherType::IPV6,
    }
}

/// Encapsulate the packet in place.
///
/// `p` holds the inner payload: an IP packet for GRE, IPIP and IP-carrying VXLAN-GPE/Geneve
/// tunnels, an Ethernet frame for GRE-TEB, NVGRE, VXLAN, EtherIP and Ethernet-carrying
/// VXLAN-GPE/Geneve. On success `p` starts at the outer IP header.
///
/// * `inner_hash`: the inner flow's hash; it picks the UDP source port, the NVGRE FlowID and
///   the outer IPv6 flow label.
/// * `seq`: the GRE sequence number to send when `t.gre_sequence` is set (the caller keeps the
///   per-tunnel counter, e.g. [`GreSeqTx`](super::GreSeqTx)); 0 is sent if it is `None`.
///   Ignored otherwise.
/// * `ip_id`: the outer IPv4 identification when DF is clear (the caller's counter); with DF
///   set the datagram is atomic and 0 is sent (RFC 6864 §4.1).
///
/// Outer TTL, DSCP and DF follow `t.outer`; the outer ECN field is a copy of the inner one
/// (RFC 6040 normal mode), looked up through the Ethernet header and VLAN tags of an L2 inner
/// frame. The outer UDP checksum is zero over IPv4 (RFC 7348 §5) and computed over IPv6
/// unless `t.udp6_zero_checksum` (RFC 6935/6936).
///
/// Errors (the packet is unchanged): `NoHeadroom`; `InnerTruncated` for an inner packet
/// shorter than its base header; the kind's protocol reason (`GreBadProtocol`,
/// `IpipBadInner`, `VxlanGpeBadNextProtocol`, `GeneveBadProtocol`) for an inner packet the
/// tunnel does not carry; `MtuExceeded` when the result would not fit an IP length field.
pub fn encap<P: Packet>(
    p: &mut P,
    t: &TunnelEncap,
    inner_hash: u32,
    seq: Option<u32>,
    ip_id: u16,
) -> Result<(), DropReason> {
    let inner = classify_inner(p.data(), t)?;
    let inner_len = p.len();
    let ip_len = t.endpoints.ip_header_len();
    let udp_len = if t.kind.is_udp() { udp::HEADER_LEN } else { 0 };
    let tun_len = t.tunnel_header_len();
    let hdr = ip_len + udp_len + tun_len;
    let ip_payload = udp_len + tun_len + inner_len;
    let limit = if t.endpoints.is_v6() {
        u16::MAX as usize
    } else {
        u16::MAX as usize - ip_len
    };
    if ip_payload > limit {
        return Err(DropReason::MtuExceeded);
    }
    if p.headroom() < hdr || !p.prepend(hdr) {
        return Err(DropReason::NoHeadroom);
    }
    let b = p.data_mut();
    let key = t.key.unwrap_or(0);

    // Tunnel header, then the GRE checksum over it and the payload.
    let th = ip_len + udp_len;
    let protocol = match t.kind {
        TunnelKind::Gre | TunnelKind::GreTeb | TunnelKind::Nvgre => {
            let nv = t.kind == TunnelKind::Nvgre;
            let r = GreRepr {
                protocol: ethertype_of(inner.ty()),
                checksum: t.gre_checksum && !nv,
                key: if nv {
                    Some(gre::nvgre_key(key, nvgre_flow_id(inner_hash)))
                } else {
                    t.key
                },
                seq: (t.gre_sequence && !nv).then(|| seq.unwrap_or(0)),
            };
            r.emit(&mut b[th..]);
            GrePacket::new_unchecked(&mut b[th..]).fill_checksum();
            ipproto::GRE
        }
        TunnelKind::Vxlan => {
            VxlanRepr { vni: key }.emit(&mut b[th..]);
            ipproto::UDP
        }
        TunnelKind::VxlanGpe => {
            VxlanGpeRepr {
                vni: key,
                next_protocol: match inner.ty() {
                    PayloadType::Ethernet => next_protocol::ETHERNET,
                    PayloadType::Ipv4 => next_protocol::IPV4,
                    PayloadType::Ipv6 => next_protocol::IPV6,
                },
            }
            .emit(&mut b[th..]);
            ipproto::UDP
        }
        TunnelKind::Geneve => {
            GeneveRepr {
                oam: false,
                critical: t.geneve_options.critical(),
                protocol: ethertype_of(inner.ty()),
                vni: key,
                options: t.geneve_options.as_bytes(),
            }
            .emit(&mut b[th..]);
            ipproto::UDP
        }
        TunnelKind::Ipip => match inner.ty() {
            PayloadType::Ipv6 => ipproto::IPV6,
            _ => ipproto::IPIP,
        },
        TunnelKind::Etherip => {
            etherip::EtheripRepr.emit(&mut b[th..]);
            ipproto::ETHERIP
        }
    };

    let tos = t.outer.outer_tos(inner.tos());
    match t.endpoints {
        Endpoints::V4 { local, remote } => {
            let (src, dst) = (local.octets(), remote.octets());
            if udp_len != 0 {
                let sport = udp_src_port(inner_hash, t.sport_min, t.sport_max);
                udp::write_header(&mut b[ip_len..], sport, t.dst_port, ip_payload as u16);
            }
            let df = t.outer.outer_df(inner.df());
            Ipv4Repr {
                src,
                dst,
                protocol,
                tos,
                ttl: t.outer.ttl,
                ident: if df { 0 } else { ip_id },
                dont_frag: df,
                payload_len: ip_payload as u16,
            }
            .emit(b);
        }
        Endpoints::V6 { local, remote } => {
            let (src, dst) = (local.octets(), remote.octets());
            if udp_len != 0 {
                let sport = udp_src_port(inner_hash, t.sport_min, t.sport_max);
                let d = &mut b[ip_len..];
                udp::write_header(d, sport, t.dst_port, ip_payload as u16);
                if !t.udp6_zero_checksum {
                    udp::fill_checksum_v6(d, &src, &dst);
                }
            }
            Ipv6Repr {
                src,
                dst,
                next_header: protocol,
                traffic_class: tos,
                flow_label: outer_flow_label(inner_hash),
                hop_limit: t.outer.ttl,
                payload_len: ip_payload as u16,
            }
            .emit(b);
        }
    }
    Ok(())
}
