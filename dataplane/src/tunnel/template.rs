//! A tunnel's outer headers as a template (VPP's "rewrite string"). The outer IP header, the
//! UDP header and the tunnel header are built once, when the tunnel table is, and per packet
//! [`EncapTemplate::encap`] copies them and sets only what varies with the packet: the UDP
//! source port and length, the NVGRE FlowID, the protocol of an IP payload (GRE protocol,
//! VXLAN-GPE next protocol, Geneve protocol, IPIP's 4 or 41), the GRE checksum, and the outer
//! TOS, length and TTL — over IPv4 also identification, DF and the header checksum (from a
//! precomputed partial sum), over IPv6 the flow label and the UDP checksum. It writes exactly
//! what [`encap`](super::encap) writes for the same packet; the property test below holds the
//! two equal for every kind, family and option.
//!
//! Tunnels sending GRE sequence numbers (a shared counter) have no template and take `encap`.

use super::encap::{ethertype_of, inspect};
use super::{udp_src_port, Endpoints, PayloadType, TunnelEncap, TunnelKind};
use crate::outer_template::OuterTemplate;
use crate::packet::Packet;
use crate::stats::DropReason;
use crate::wire::geneve::GeneveRepr;
use crate::wire::gre::{self, GrePacket, GreRepr};
use crate::wire::ipv4::MIN_HEADER_LEN as IPV4_LEN;
use crate::wire::ipv6::HEADER_LEN as IPV6_LEN;
use crate::wire::vxlan::VxlanRepr;
use crate::wire::vxlan_gpe::{next_protocol, VxlanGpeRepr};
use crate::wire::{etherip, ipproto, put16, udp};

/// Room for the UDP and tunnel headers after the outer IPv4 header: UDP, Geneve and 48
/// octets of options (longer option lists take the general path).
const MAX_REST: usize = 64;

/// The field of the tunnel header that follows the payload's type, patched per packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Patch {
    None,
    /// GRE protocol (EtherType) at octet 2 of the GRE header.
    GreProtocol,
    /// VXLAN-GPE next protocol at octet 3.
    GpeNext,
    /// Geneve protocol (EtherType) at octet 2.
    GeneveProtocol,
}

/// The prebuilt outer headers of one tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncapTemplate {
    /// Outer IP header for an Ethernet or IPv4 payload, and for an IPv6 one (they differ
    /// only for IPIP: protocol 4 or 41).
    ip: [OuterTemplate; 2],
    /// IPv6 underlay: the addresses (for the UDP checksum) and whether it is computed.
    v6: Option<V6>,
    /// UDP header (source port, length and checksum 0) when the kind uses UDP, then the
    /// tunnel header as sent for an Ethernet or IPv4 payload.
    rest: [u8; MAX_REST],
    rest_len: u8,
    patch: Patch,
    udp: bool,
    nvgre: bool,
    gre_checksum: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct V6 {
    src: [u8; 16],
    dst: [u8; 16],
    udp_checksum: bool,
}

impl EncapTemplate {
    /// The template of `t`, or `None` when it has none (GRE sequence numbers, Geneve options
    /// longer than the template holds).
    pub fn new(t: &TunnelEncap) -> Option<Self> {
        if t.gre_sequence && t.kind != TunnelKind::Nvgre {
            return None;
        }
        let udp_len = if t.kind.is_udp() { udp::HEADER_LEN } else { 0 };
        let rest_len = udp_len + t.tunnel_header_len();
        if rest_len > MAX_REST {
            return None;
        }
        let mut rest = [0u8; MAX_REST];
        if udp_len != 0 {
            udp::write_header(&mut rest, 0, t.dst_port, 0);
        }
        // The tunnel header as `encap` writes it for an IPv4 (or Ethernet) payload and flow
        // hash 0; what depends on either is patched per packet.
        let ty = match t.carries() {
            super::Payload::Ethernet => PayloadType::Ethernet,
            _ => PayloadType::Ipv4,
        };
        let key = t.key.unwrap_or(0);
        let th = &mut rest[udp_len..rest_len];
        let (proto, patch) = match t.kind {
            TunnelKind::Gre | TunnelKind::GreTeb | TunnelKind::Nvgre => {
                let nv = t.kind == TunnelKind::Nvgre;
                GreRepr {
                    protocol: ethertype_of(ty),
                    checksum: t.gre_checksum && !nv,
                    key: if nv {
                        Some(gre::nvgre_key(key, 0))
                    } else {
                        t.key
                    },
                    seq: None,
                }
                .emit(th);
                (ipproto::GRE, Patch::GreProtocol)
            }
            TunnelKind::Vxlan => {
                VxlanRepr { vni: key }.emit(th);
                (ipproto::UDP, Patch::None)
            }
            TunnelKind::VxlanGpe => {
                VxlanGpeRepr {
                    vni: key,
                    next_protocol: 0,
                }
                .emit(th);
                (ipproto::UDP, Patch::GpeNext)
            }
            TunnelKind::Geneve => {
                GeneveRepr {
                    oam: false,
                    critical: t.geneve_options.critical(),
                    protocol: ethertype_of(ty),
                    vni: key,
                    options: t.geneve_options.as_bytes(),
                }
                .emit(th);
                (ipproto::UDP, Patch::GeneveProtocol)
            }
            TunnelKind::Ipip => (ipproto::IPIP, Patch::None),
            TunnelKind::Etherip => {
                etherip::EtheripRepr.emit(th);
                (ipproto::ETHERIP, Patch::None)
            }
        };
        let proto6 = if t.kind == TunnelKind::Ipip {
            ipproto::IPV6
        } else {
            proto
        };
        let (ip, v6) = match t.endpoints {
            Endpoints::V4 { local, remote } => (
                [
                    OuterTemplate::v4(local, remote, proto),
                    OuterTemplate::v4(local, remote, proto6),
                ],
                None,
            ),
            Endpoints::V6 { local, remote } => (
                [
                    OuterTemplate::v6(local, remote, proto),
                    OuterTemplate::v6(local, remote, proto6),
                ],
                Some(V6 {
                    src: local.octets(),
                    dst: remote.octets(),
                    udp_checksum: !t.udp6_zero_checksum,
                }),
            ),
        };
        Some(EncapTemplate {
            ip,
            v6,
            rest,
            rest_len: rest_len as u8,
            patch,
            udp: udp_len != 0,
            nvgre: t.kind == TunnelKind::Nvgre,
            gre_checksum: t.gre_checksum && t.kind != TunnelKind::Nvgre,
        })
    }

    /// Octets prepended: outer IP, UDP and tunnel header.
    #[inline]
    pub fn overhead(&self) -> usize {
        self.ip_len() + self.rest_len as usize
    }

    #[inline(always)]
    fn ip_len(&self) -> usize {
        if self.v6.is_some() {
            IPV6_LEN
        } else {
            IPV4_LEN
        }
    }

    /// Encapsulate `p` into `t` (the tunnel this template was made from) as
    /// [`encap`](super::encap)`(p, t, inner_flow_hash(p, carries Ethernet), None, ip_id)`
    /// does, with the same errors, and leaving the packet unchanged on error.
    #[inline(always)]
    pub fn encap<P: Packet>(
        &self,
        p: &mut P,
        t: &TunnelEncap,
        ip_id: u16,
    ) -> Result<(), DropReason> {
        let (inner, hash) = inspect(p.data(), t)?;
        let ip_len = self.ip_len();
        let rest = self.rest_len as usize;
        let hdr = ip_len + rest;
        let ip_payload = rest + p.len();
        // The IPv4 total length counts the header, the IPv6 payload length does not.
        let limit = match self.v6 {
            Some(_) => u16::MAX as usize,
            None => u16::MAX as usize - IPV4_LEN,
        };
        if ip_payload > limit {
            return Err(DropReason::MtuExceeded);
        }
        if p.headroom() < hdr || !p.prepend(hdr) {
            return Err(DropReason::NoHeadroom);
        }
        let b = p.data_mut();
        if b.len() < hdr {
            return Err(DropReason::NoHeadroom);
        }
        copy_short(&mut b[ip_len..hdr], &self.rest[..rest]);
        let th = if self.udp {
            ip_len + udp::HEADER_LEN
        } else {
            ip_len
        };
        match self.patch {
            Patch::None => {}
            Patch::GreProtocol | Patch::GeneveProtocol => {
                put16(b, th + 2, ethertype_of(inner.ty()))
            }
            Patch::GpeNext => {
                b[th + 3] = match inner.ty() {
                    PayloadType::Ethernet => next_protocol::ETHERNET,
                    PayloadType::Ipv4 => next_protocol::IPV4,
                    PayloadType::Ipv6 => next_protocol::IPV6,
                }
            }
        }
        if self.nvgre {
            // The key's low octet (GRE octet 7) is the FlowID.
            b[th + 7] = super::nvgre_flow_id(hash);
        }
        if self.gre_checksum {
            GrePacket::new_unchecked(&mut b[th..]).fill_checksum();
        }
        if self.udp {
            put16(b, ip_len, udp_src_port(hash, t.sport_min, t.sport_max));
            put16(b, ip_len + 4, ip_payload as u16);
        }
        let ip = &self.ip[(inner.ty() == PayloadType::Ipv6) as usize];
        let tos = t.outer.outer_tos(inner.tos());
        match &self.v6 {
            None => {
                let df = t.outer.outer_df(inner.df());
                let ident = if df { 0 } else { ip_id };
                let total = (IPV4_LEN + ip_payload) as u16;
                ip.emit4(b, tos, total, ident, df, t.outer.ttl);
            }
            Some(v6) => {
                if self.udp && v6.udp_checksum {
                    udp::fill_checksum_v6(&mut b[ip_len..], &v6.src, &v6.dst);
                }
                ip.emit6(b, tos, ip_payload as u16, t.outer.ttl);
                // The flow label (RFC 6438) from the inner flow: the low nibble of octet 1
                // and octets 2-3, which the template leaves 0.
                let fl = super::outer_flow_label(hash);
                b[1] |= (fl >> 16) as u8;
                put16(b, 2, fl as u16);
            }
        }
        Ok(())
    }
}

/// Copy `src` (at most [`MAX_REST`] octets) to `dst`, of the same length, in a few fixed-size
/// moves (the last one overlapping) rather than a call to `memmove`, which a variable-length
/// `copy_from_slice` becomes and which cost more than the copy itself at these lengths.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    if n >= 16 {
        let mut i = 0;
        while i + 16 < n {
            dst[i..i + 16].copy_from_slice(&src[i..i + 16]);
            i += 16;
        }
        dst[n - 16..].copy_from_slice(&src[n - 16..]);
    } else if n >= 8 {
        dst[..8].copy_from_slice(&src[..8]);
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    }
}

/// Encapsulate `p` into `t`: with its template `tpl` when it has one (and no GRE sequence
/// number `seq` is to be sent), else with [`encap`](super::encap) and the payload's flow hash —
/// the pipeline's one way in, whichever path the packet takes.
#[inline(always)]
pub fn encap_with<P: Packet>(
    p: &mut P,
    t: &TunnelEncap,
    tpl: Option<&EncapTemplate>,
    seq: Option<u32>,
    ip_id: u16,
) -> Result<(), DropReason> {
    match tpl {
        Some(tpl) if seq.is_none() => tpl.encap(p, t, ip_id),
        _ => {
            let ethernet = t.carries() == super::Payload::Ethernet;
            let hash = super::inner_flow_hash(p.data(), ethernet);
            super::encap(p, t, hash, seq, ip_id)
        }
    }
}

#[cfg(test)]
mod tests {
    //! The template against the general encapsulation, on random tunnels and inner packets.

    use super::*;
    use crate::outer::{DfPolicy, OuterPolicy, TosPolicy};
    use crate::packet::HeapPacket;
    use crate::tunnel::{encap, inner_flow_hash, Payload};
    use crate::wire::geneve::GeneveOptionBuf;
    use proptest::prelude::*;

    /// An inner packet: an IPv4 or IPv6 header (TOS, DF, protocol, ports random) or an
    /// Ethernet frame (maybe VLAN-tagged) around one, or random bytes; then cut to `cut`.
    fn inner(kind: u8, tos: u8, df: bool, proto: u8, tail: &[u8], cut: usize) -> Vec<u8> {
        let mut ip = Vec::new();
        let v6 = kind % 2 == 1;
        if !v6 {
            ip.extend_from_slice(&[0x45, tos, 0, 0, 0, 0, if df { 0x40 } else { 0 }, 0, 64]);
            ip.push(proto);
            ip.extend_from_slice(&[0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        } else {
            ip.extend_from_slice(&[0x60 | (tos >> 4), tos << 4, 0, 0, 0, 0, proto, 64]);
            ip.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            ip.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        }
        ip.extend_from_slice(tail);
        let mut b = match kind / 2 {
            0 => ip,
            1 | 2 => {
                let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
                if kind / 2 == 2 {
                    f.extend_from_slice(&[0x81, 0, 0, 42]);
                }
                f.extend_from_slice(if !v6 { &[8, 0] } else { &[0x86, 0xdd] });
                f.extend_from_slice(&ip);
                f
            }
            _ => tail.to_vec(),
        };
        b.truncate(cut.max(1));
        b
    }

    proptest! {
        /// Same bytes and same errors as `encap` with the flow hash of the payload, for every
        /// kind over IPv4 and IPv6 (UDP checksum or zero), with keys, GRE checksums, Geneve options, TOS and DF policies,
        /// payload narrowing and inner packets of every type, whole or cut short.
        #[test]
        fn the_template_writes_what_encap_writes(
            k in 0..TunnelKind::ALL.len(),
            key in 1u32..0xff_ffff,
            keyed: bool,
            gre_checksum: bool,
            payload in 0u8..4,
            opts in 0usize..3,
            critical: bool,
            sport in (0u16..0xffff, 0u16..0xffff),
            dst_port: u16,
            ttl in 1u8..=255,
            tos_fixed in proptest::option::of(any::<u8>()),
            df_mode in 0u8..3,
            inner_kind in 0u8..7,
            tos: u8, df: bool, proto: u8,
            tail in proptest::collection::vec(any::<u8>(), 0..80),
            cut in 0usize..160,
            ip_id: u16,
            outer_v6: bool,
            udp6_zero: bool,
        ) {
            let kind = TunnelKind::ALL[k];
            let ends = if outer_v6 {
                Endpoints::V6 {
                    local: "2001:db8::1".parse().unwrap(),
                    remote: "2001:db8:77::7".parse().unwrap(),
                }
            } else {
                Endpoints::V4 {
                    local: "192.0.2.1".parse().unwrap(),
                    remote: "198.51.100.7".parse().unwrap(),
                }
            };
            let mut t = TunnelEncap::new(kind, ends);
            t.key = match kind {
                TunnelKind::Ipip | TunnelKind::Etherip => None,
                TunnelKind::Gre | TunnelKind::GreTeb if !keyed => None,
                _ => Some(key),
            };
            t.gre_checksum = gre_checksum;
            t.udp6_zero_checksum = udp6_zero;
            t.payload = [Payload::Ip, Payload::Ipv4, Payload::Ipv6, Payload::Ethernet]
                [payload as usize];
            if kind == TunnelKind::Geneve && opts > 0 {
                let mut o = Vec::new();
                for i in 0..opts {
                    // Class, type (critical bit 0x80), length 1 word, 4 octets of data.
                    let ty = if critical && i == 0 { 0x81 } else { 0x01 };
                    o.extend_from_slice(&[0x01, 0x02, ty, 1, 9, 8, 7, i as u8]);
                }
                t.geneve_options = GeneveOptionBuf::new(&o).unwrap();
            }
            (t.sport_min, t.sport_max) = sport;
            t.dst_port = dst_port;
            t.outer = OuterPolicy {
                ttl,
                tos: tos_fixed.map_or(TosPolicy::Preserve, TosPolicy::Fixed),
                df: [DfPolicy::Propagate, DfPolicy::Set, DfPolicy::Clear][df_mode as usize],
            };
            let tpl = EncapTemplate::new(&t).expect("every tunnel without sequence numbers");
            prop_assert_eq!(tpl.overhead(), t.overhead());

            let b = inner(inner_kind, tos, df, proto, &tail, cut);
            let ethernet = t.carries() == Payload::Ethernet;
            let mut want = HeapPacket::with_room(&b, 128, 0);
            let want_r = encap(&mut want, &t, inner_flow_hash(&b, ethernet), None, ip_id);
            let mut got = HeapPacket::with_room(&b, 128, 0);
            let got_r = tpl.encap(&mut got, &t, ip_id);
            prop_assert_eq!(got_r, want_r);
            prop_assert_eq!(got.data(), want.data());
        }
    }

    #[test]
    fn copy_short_copies_every_length() {
        let src: Vec<u8> = (1..=MAX_REST as u8).collect();
        for n in 0..=MAX_REST {
            let mut dst = vec![0u8; n];
            copy_short(&mut dst, &src[..n]);
            assert_eq!(dst, &src[..n], "length {n}");
        }
    }

    #[test]
    fn no_template_with_gre_sequence_numbers() {
        let v4 = Endpoints::V4 {
            local: "192.0.2.1".parse().unwrap(),
            remote: "192.0.2.2".parse().unwrap(),
        };
        let mut gre = TunnelEncap::new(TunnelKind::Gre, v4);
        assert!(EncapTemplate::new(&gre).is_some());
        gre.gre_sequence = true;
        assert!(EncapTemplate::new(&gre).is_none());
    }
}
