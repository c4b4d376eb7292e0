//! Decapsulation: find the tunnel a packet belongs to, validate it, strip the outer headers.

use super::{GreSeqState, PayloadType, TunnelEncap, TunnelKind};
use crate::outer::{ecn, ecn_decap};
use crate::packet::Packet;
use crate::stats::DropReason;
use crate::wire::ethernet::{self, EtherType, L2Header};
use crate::wire::geneve::{self, GenevePacket, GeneveRepr};
use crate::wire::gre::{self, GrePacket};
use crate::wire::udp::{self, UdpPacket};
use crate::wire::vxlan::{self, VxlanPacket};
use crate::wire::vxlan_gpe::{self, next_protocol, VxlanGpePacket, VxlanGpeRepr};
use crate::wire::{be16, checksum, etherip, ipproto, ipv4, ipv6, put16, Ipv4Packet, Ipv6Packet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Receive-side settings shared by all tunnels of a worker: which UDP ports are tunnel ports,
/// whether a zero UDP checksum is accepted over IPv6, and which Geneve critical options are
/// understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecapConfig<'a> {
    /// UDP port of VXLAN (0 = none).
    pub vxlan_port: u16,
    /// UDP port of VXLAN-GPE (0 = none).
    pub vxlan_gpe_port: u16,
    /// UDP port of Geneve (0 = none).
    pub geneve_port: u16,
    /// Accept a zero UDP checksum over IPv6 (RFC 6935/6936 tunnel exception).
    pub udp6_zero_checksum: bool,
    /// Geneve options (class, type with its critical bit) this gateway understands; a
    /// critical option not listed drops the packet.
    pub geneve_known_options: &'a [(u16, u8)],
    /// Further UDP ports and the tunnel kind each carries (tunnels configured with a port
    /// other than their kind's); searched after the three above.
    pub other_udp_ports: &'a [(u16, TunnelKind)],
}

impl Default for DecapConfig<'static> {
    fn default() -> Self {
        DecapConfig {
            vxlan_port: vxlan::UDP_PORT,
            vxlan_gpe_port: vxlan_gpe::UDP_PORT,
            geneve_port: geneve::UDP_PORT,
            udp6_zero_checksum: false,
            geneve_known_options: &[],
            other_udp_ports: &[],
        }
    }
}

/// What the tunnel table is searched with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DemuxKey {
    /// Outer destination (our tunnel endpoint).
    pub local: IpAddr,
    /// Outer source (the peer).
    pub remote: IpAddr,
    /// Outer protocol: 47 (GRE), 4 or 41 (IPIP), 97 (EtherIP) or 17 (UDP).
    pub proto: u8,
    /// UDP destination port; 0 when not UDP.
    pub port: u16,
    /// GRE key as sent (all 32 bits: NVGRE's VSID is `id >> 8`, see
    /// [`nvgre_vsid`](Self::nvgre_vsid)), or the VXLAN / VXLAN-GPE / Geneve VNI.
    pub id: Option<u32>,
}

impl DemuxKey {
    /// The VSID, reading the GRE key as NVGRE's.
    #[inline]
    pub fn nvgre_vsid(&self) -> Option<u32> {
        self.id.map(|k| gre::nvgre_split(k).0)
    }
}

/// The result of [`decap_parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecapInfo {
    pub key: DemuxKey,
    /// The encapsulation on the wire. GRE is `Gre` for an IP payload and `GreTeb` for an
    /// Ethernet payload; NVGRE looks like `GreTeb` with a key, and only the tunnel found
    /// says which it is ([`decap`] then checks the NVGRE rules).
    pub kind: TunnelKind,
    /// The inner packet's type.
    pub payload: PayloadType,
    /// Bytes from the start of the outer IP header to the inner packet (outer IP with any
    /// extension headers, UDP, tunnel header): what [`decap`] strips.
    pub header_len: usize,
    /// Length of the inner packet (an inner IP packet's own length; an Ethernet frame runs to
    /// the end of the outer payload).
    pub inner_len: usize,
    /// Outer TOS / traffic class (its ECN bits are folded into the inner header).
    pub outer_tos: u8,
    /// The GRE flags word (0 when not GRE).
    pub gre_flags: u16,
    /// The GRE sequence number, when present.
    pub gre_seq: Option<u32>,
    /// The outer packet is UDP over IPv6 with a zero checksum (accepted by [`decap_parse`]
    /// only under `DecapConfig::udp6_zero_checksum`; the tunnel found must allow it too).
    pub udp6_zero_checksum: bool,
}

/// Check the inner packet at the start of `b` and return its length. `ipip` selects the
/// reason for an IP version that contradicts the outer protocol.
#[inline(always)]
fn inner_len(b: &[u8], ty: PayloadType, ipip: bool) -> Result<usize, DropReason> {
    match ty {
        PayloadType::Ethernet => {
            if b.len() < ethernet::HEADER_LEN {
                return Err(DropReason::InnerTruncated);
            }
            Ok(b.len())
        }
        PayloadType::Ipv4 => {
            if b.len() < ipv4::MIN_HEADER_LEN {
                return Err(DropReason::InnerTruncated);
            }
            if b[0] >> 4 != 4 {
                return Err(if ipip {
                    DropReason::IpipBadInner
                } else {
                    DropReason::Ipv4BadVersion
                });
            }
            let hl = ((b[0] & 0x0f) as usize) * 4;
            if hl < ipv4::MIN_HEADER_LEN {
                return Err(DropReason::Ipv4BadIhl);
            }
            let tl = be16(b, 2) as usize;
            if tl < hl {
                return Err(DropReason::Ipv4BadTotalLength);
            }
            if tl > b.len() {
                return Err(DropReason::InnerTruncated);
            }
            Ok(tl)
        }
        PayloadType::Ipv6 => {
            if b.len() < ipv6::HEADER_LEN {
                return Err(DropReason::InnerTruncated);
            }
            if b[0] >> 4 != 6 {
                return Err(if ipip {
                    DropReason::IpipBadInner
                } else {
                    DropReason::Ipv6BadVersion
                });
            }
            let tl = ipv6::HEADER_LEN + be16(b, 4) as usize;
            if tl > b.len() {
                return Err(DropReason::InnerTruncated);
            }
            Ok(tl)
        }
    }
}

/// The tunnel header inside an outer packet: (kind, payload, header length, id, GRE flags,
/// GRE sequence).
type Tun = (
    TunnelKind,
    PayloadType,
    usize,
    Option<u32>,
    u16,
    Option<u32>,
);

#[inline(always)]
fn parse_gre(b: &[u8]) -> Result<Tun, DropReason> {
    let g = GrePacket::new_checked(b)?;
    if !g.verify_checksum() {
        return Err(DropReason::GreBadChecksum);
    }
    let (kind, ty) = match g.protocol() {
        EtherType::IPV4 => (TunnelKind::Gre, PayloadType::Ipv4),
        EtherType::IPV6 => (TunnelKind::Gre, PayloadType::Ipv6),
        EtherType::TEB => (TunnelKind::GreTeb, PayloadType::Ethernet),
        _ => return Err(DropReason::GreBadProtocol),
    };
    Ok((kind, ty, g.header_len(), g.key(), g.flags(), g.seq()))
}

#[inline(always)]
fn parse_udp_tunnel(kind: TunnelKind, b: &[u8], cfg: &DecapConfig) -> Result<Tun, DropReason> {
    match kind {
        TunnelKind::Vxlan => {
            let v = VxlanPacket::new_checked(b)?;
            Ok((
                kind,
                PayloadType::Ethernet,
                vxlan::HEADER_LEN,
                Some(v.vni()),
                0,
                None,
            ))
        }
        TunnelKind::VxlanGpe => {
            let v = VxlanGpePacket::new_checked(b)?;
            let r = VxlanGpeRepr::parse(&v)?;
            let ty = match r.next_protocol {
                next_protocol::IPV4 => PayloadType::Ipv4,
                next_protocol::IPV6 => PayloadType::Ipv6,
                _ => PayloadType::Ethernet,
            };
            Ok((kind, ty, vxlan_gpe::HEADER_LEN, Some(r.vni), 0, None))
        }
        _ => {
            let g = GenevePacket::new_checked(b)?;
            let r = GeneveRepr::parse(&g, cfg.geneve_known_options)?;
            let ty = match r.protocol {
                EtherType::IPV4 => PayloadType::Ipv4,
                EtherType::IPV6 => PayloadType::Ipv6,
                _ => PayloadType::Ethernet,
            };
            Ok((kind, ty, r.header_len(), Some(r.vni), 0, None))
        }
    }
}

/// Read an outer packet (starting at the outer IP header, link header already removed),
/// validate the outer headers and the tunnel header, and say which tunnel to look up and
/// where the inner packet is.
///
/// The outer IPv4 header checksum is the ingress node's business (it has verified it); this
/// checks lengths, refuses fragments (`Ipv4Fragment`: no reassembly, outer IPv6 fragments
/// included), verifies a non-zero UDP checksum (and a zero one over IPv6 unless
/// `cfg.udp6_zero_checksum`) with `UdpBadChecksum`, the GRE checksum when present, every
/// tunnel header rule (the `Gre*`, `Vxlan*`, `VxlanGpe*`, `Geneve*`, `Etherip*` reasons) and the
/// inner packet's length (`InnerTruncated`). A packet that is not a tunnel packet (another
/// protocol, another UDP port) is `TunnelNoMatch`.
#[inline(always)]
pub fn decap_parse(pkt: &[u8], cfg: &DecapConfig) -> Result<DecapInfo, DropReason> {
    let (local, remote, proto, outer_tos, l4_off, l4) = match pkt.first().map(|v| v >> 4) {
        Some(4) => {
            let ip = Ipv4Packet::new_checked(pkt)?;
            if ip.is_fragment() {
                return Err(DropReason::Ipv4Fragment);
            }
            let hl = ip.header_len();
            (
                IpAddr::V4(Ipv4Addr::from(ip.dst())),
                IpAddr::V4(Ipv4Addr::from(ip.src())),
                ip.protocol(),
                ip.tos(),
                hl,
                &pkt[hl..ip.total_len() as usize],
            )
        }
        Some(6) => {
            let ip = Ipv6Packet::new_checked(pkt)?;
            let ul = ip.upper_layer()?;
            if ul.fragment {
                return Err(DropReason::Ipv4Fragment);
            }
            (
                IpAddr::V6(Ipv6Addr::from(ip.dst())),
                IpAddr::V6(Ipv6Addr::from(ip.src())),
                ul.protocol,
                ip.traffic_class(),
                ul.offset,
                &pkt[ul.offset..ip.total_len()],
            )
        }
        None => return Err(DropReason::Ipv4Truncated),
        _ => return Err(DropReason::Ipv4BadVersion),
    };

    let mut port = 0;
    let mut udp6_zero = false;
    let mut off = l4_off;
    let (kind, payload, tlen, id, gre_flags, gre_seq, tun) = {
        let (t, tun): (Tun, &[u8]) = match proto {
            ipproto::GRE => (parse_gre(l4)?, l4),
            ipproto::IPIP => ((TunnelKind::Ipip, PayloadType::Ipv4, 0, None, 0, None), l4),
            ipproto::IPV6 => ((TunnelKind::Ipip, PayloadType::Ipv6, 0, None, 0, None), l4),
            ipproto::ETHERIP => {
                etherip::EtheripPacket::new_checked(l4)?;
                (
                    (
                        TunnelKind::Etherip,
                        PayloadType::Ethernet,
                        etherip::HEADER_LEN,
                        None,
                        0,
                        None,
                    ),
                    l4,
                )
            }
            ipproto::UDP => {
                let u = UdpPacket::new_checked(l4)?;
                port = u.dst_port();
                let kind = if port == 0 {
                    return Err(DropReason::TunnelNoMatch);
                } else if port == cfg.vxlan_port {
                    TunnelKind::Vxlan
                } else if port == cfg.vxlan_gpe_port {
                    TunnelKind::VxlanGpe
                } else if port == cfg.geneve_port {
                    TunnelKind::Geneve
                } else if let Some(&(_, k)) = cfg.other_udp_ports.iter().find(|(p, _)| *p == port) {
                    k
                } else {
                    return Err(DropReason::TunnelNoMatch);
                };
                udp6_zero = local.is_ipv6() && u.checksum() == 0;
                let ok = match (local, remote) {
                    (IpAddr::V4(l), IpAddr::V4(r)) => u.verify_v4(r.octets(), l.octets()),
                    (IpAddr::V6(l), IpAddr::V6(r)) => {
                        u.verify_v6(&r.octets(), &l.octets(), cfg.udp6_zero_checksum)
                    }
                    _ => false,
                };
                if !ok {
                    return Err(DropReason::UdpBadChecksum);
                }
                off += udp::HEADER_LEN;
                let d = &l4[udp::HEADER_LEN..u.len() as usize];
                (parse_udp_tunnel(kind, d, cfg)?, d)
            }
            _ => return Err(DropReason::TunnelNoMatch),
        };
        (t.0, t.1, t.2, t.3, t.4, t.5, tun)
    };
    off += tlen;
    let inner_len = inner_len(&tun[tlen..], payload, kind == TunnelKind::Ipip)?;
    Ok(DecapInfo {
        key: DemuxKey {
            local,
            remote,
            proto,
            port,
            id,
        },
        kind,
        payload,
        header_len: off,
        inner_len,
        outer_tos,
        gre_flags,
        gre_seq,
        udp6_zero_checksum: udp6_zero,
    })
}

/// Where the inner ECN field is, relative to the inner packet: (offset of the IP header,
/// is IPv6). `None` for a non-IP inner frame.
#[inline(always)]
fn inner_ip(b: &[u8], ty: PayloadType) -> Option<(usize, bool)> {
    let (off, et) = match ty {
        PayloadType::Ipv4 => (0, EtherType::IPV4),
        PayloadType::Ipv6 => (0, EtherType::IPV6),
        PayloadType::Ethernet => {
            let l2 = L2Header::parse(b).ok()?;
            (l2.l3_offset, l2.ethertype)
        }
    };
    let ip = b.get(off..)?;
    match et {
        EtherType::IPV4 if ip.len() >= ipv4::MIN_HEADER_LEN && ip[0] >> 4 == 4 => {
            Some((off, false))
        }
        EtherType::IPV6 if ip.len() >= ipv6::HEADER_LEN && ip[0] >> 4 == 6 => Some((off, true)),
        _ => None,
    }
}

/// Check the packet against the tunnel the table found for `info.key`, then strip the outer
/// headers in place (the packet then starts at the inner packet and is exactly `inner_len`
/// long).
///
/// `t` is the tunnel's description. Checks, in order (nothing is changed on failure):
/// * the wire format matches the tunnel: GRE-TEB vs GRE vs NVGRE (`GreBadProtocol`, NVGRE's
///   C=0, S=0, K=1 and protocol 0x6558 with `NvgreBadHeader`), GRE key presence
///   (`GreKeyMismatch`), the payload the tunnel carries (`IpipBadInner`,
///   `VxlanGpeBadNextProtocol`, `GeneveBadProtocol`, `GreBadProtocol`), the encapsulation
///   (`TunnelNoMatch`). Key / VNI values and addresses are the lookup's business;
/// * RFC 6040 §4.2 on the inner IP header (through the Ethernet header and VLAN tags of an L2
///   payload): outer CE over a Not-ECT inner packet, or over a non-IP frame (which has no ECN
///   field to carry the mark), is `EcnCeOnNotEct`;
/// * with `t.gre_sequence`, a GRE sequence number must be present and in order per `seq`
///   (`GreSequence`); the state advances only if everything else passed.
///
/// Then the outer headers are removed, trailing bytes past the inner packet trimmed, and the
/// inner ECN field updated (the inner IPv4 header checksum patched incrementally).
#[inline(always)]
pub fn decap<P: Packet>(
    p: &mut P,
    info: &DecapInfo,
    t: &TunnelEncap,
    seq: Option<&mut GreSeqState>,
) -> Result<PayloadType, DropReason> {
    // The encapsulation on the wire against the tunnel's.
    let wire_ok = match t.kind {
        TunnelKind::Gre => info.kind == TunnelKind::Gre,
        TunnelKind::GreTeb | TunnelKind::Nvgre => info.kind == TunnelKind::GreTeb,
        k => info.kind == k,
    };
    if !wire_ok {
        return Err(match t.kind {
            TunnelKind::Gre | TunnelKind::GreTeb if info.kind.is_gre() => {
                DropReason::GreBadProtocol
            }
            TunnelKind::Nvgre if info.kind.is_gre() => DropReason::NvgreBadHeader,
            _ => DropReason::TunnelNoMatch,
        });
    }
    match t.kind {
        TunnelKind::Nvgre => {
            let f = info.gre_flags;
            if f & (gre::FLAG_C | gre::FLAG_S) != 0 || f & gre::FLAG_K == 0 {
                return Err(DropReason::NvgreBadHeader);
            }
        }
        TunnelKind::Gre | TunnelKind::GreTeb if t.key.is_some() != info.key.id.is_some() => {
            return Err(DropReason::GreKeyMismatch);
        }
        _ => {}
    }
    if !t.carries().accepts(info.payload) {
        return Err(t.kind.bad_payload());
    }

    // Room for what parse saw (the packet is the one parsed; this keeps a mismatch harmless).
    let end = match info.header_len.checked_add(info.inner_len) {
        Some(e) if e <= p.len() => e,
        _ => return Err(DropReason::InnerTruncated),
    };

    // RFC 6040 decapsulation.
    let site = inner_ip(&p.data()[info.header_len..end], info.payload);
    let outer_ecn = info.outer_tos & ecn::MASK;
    let new_tos = match site {
        Some((off, v6)) => {
            let b = &p.data()[info.header_len + off..];
            let tos = if v6 { (b[0] << 4) | (b[1] >> 4) } else { b[1] };
            let n = ecn_decap(tos, info.outer_tos)?;
            (n != tos).then_some((off, v6, n))
        }
        None if outer_ecn == ecn::CE => return Err(DropReason::EcnCeOnNotEct),
        None => None,
    };

    // RFC 2890 sequence.
    if t.gre_sequence && t.kind.is_gre() {
        let s = info.gre_seq.ok_or(DropReason::GreSequence)?;
        if let Some(state) = seq {
            state.accept(s)?;
        }
    }

    if !p.adj(info.header_len) {
        return Err(DropReason::InnerTruncated);
    }
    let extra = p.len() - info.inner_len;
    if extra != 0 && !p.trim(extra) {
        return Err(DropReason::InnerTruncated);
    }
    if let Some((off, v6, tos)) = new_tos {
        let b = &mut p.data_mut()[off..];
        if v6 {
            b[0] = (b[0] & 0xf0) | (tos >> 4);
            b[1] = (b[1] & 0x0f) | (tos << 4);
        } else {
            let old = be16(b, 0);
            b[1] = tos;
            let c = checksum::update16(be16(b, 10), old, be16(b, 0));
            put16(b, 10, c);
        }
    }
    Ok(info.payload)
}
