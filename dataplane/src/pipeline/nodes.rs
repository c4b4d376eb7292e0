//! The node bodies of the forwarding pipeline: what happens to one packet in each node.

use super::{Ctx, Env, Node, Pipeline};
use crate::events::{Event, PuntKind, Punted};
use crate::icmp_error::{to_icmp4_error, to_icmp6_error, IcmpError};
use crate::packet::Packet;
use crate::stats::DropReason;
use crate::tables::fib::NextHop;
use crate::tables::iface::Adjacency;
use crate::tables::Tables;
use crate::wire::ethernet::{self, EtherType, L2Header};
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::Ipv6Packet;
use crate::wire::{put16, Mac};
use std::net::IpAddr;

impl<P: Packet> Pipeline<P> {
    /// Ethernet termination: find the ingress interface, keep frames for our MAC, broadcast
    /// and multicast, strip L2 from IP packets, punt ARP.
    pub(super) fn l2_in<E: Env<P>>(&mut self, t: &Tables, ctx: &Ctx, env: &mut E, i: usize) {
        let Some(p) = self.slots[i].as_mut() else {
            return;
        };
        let m = &mut self.meta[i];
        if p.is_multi_segment() {
            return self.drop(ctx, i, DropReason::MultiSegment);
        }
        let l2 = match L2Header::parse(p.data()) {
            Ok(h) => h,
            Err(r) => return self.drop(ctx, i, r),
        };
        let Some(pe) = t.ports.get(m.in_port as usize) else {
            return self.drop(ctx, i, DropReason::UnknownVlan);
        };
        if !pe.xconnects.is_empty() {
            if let Some((tun, strip)) = pe.xconnect(l2.outer_vlan) {
                return self.xconnect_in(ctx, i, tun, strip);
            }
        }
        let d = p.data();
        let dst = Mac([d[0], d[1], d[2], d[3], d[4], d[5]]);
        if dst != pe.mac && !dst.is_multicast() {
            return self.drop(ctx, i, DropReason::NotForUs);
        }
        let ifx = match (l2.inner_vlan, pe.interface(l2.outer_vlan)) {
            (0, Some(ifx)) => ifx,
            _ => return self.drop(ctx, i, DropReason::UnknownVlan),
        };
        m.in_if = ifx;
        match l2.ethertype {
            EtherType::IPV4 | EtherType::IPV6 => {
                m.v6 = l2.ethertype == EtherType::IPV6;
                m.l2_len = l2.l3_offset as u8;
                // Cannot fail: parse checked the frame holds l3_offset bytes.
                if !p.adj(l2.l3_offset) {
                    return self.drop(ctx, i, DropReason::EthTruncated);
                }
                self.sched.push(Node::IpIn, i);
            }
            EtherType::ARP => {
                let port = m.in_port;
                self.punt(ctx, env, i, PuntKind::L2 { port });
            }
            _ => self.drop(ctx, i, DropReason::UnknownEthertype),
        }
    }

    /// IP input: validate the header, cut Ethernet padding, look the destination up.
    pub(super) fn ip_in<E: Env<P>>(&mut self, t: &Tables, ctx: &Ctx, env: &mut E, i: usize) {
        let Some(p) = self.slots[i].as_mut() else {
            return;
        };
        let m = &mut self.meta[i];
        let looked_up = if !m.v6 {
            let (dst, src0, total) = match Ipv4Packet::new_checked(p.data()) {
                Ok(ip) => {
                    if !m.local_origin && !ip.verify_checksum() {
                        return self.drop(ctx, i, DropReason::Ipv4BadChecksum);
                    }
                    (ip.dst(), ip.src()[0], ip.total_len() as usize)
                }
                Err(r) => return self.drop(ctx, i, r),
            };
            if src0 >= 224 {
                return self.drop(ctx, i, DropReason::Ipv4BadSource);
            }
            let pad = p.len() - total;
            if pad > 0 && !p.trim(pad) {
                return self.drop(ctx, i, DropReason::Ipv4BadTotalLength);
            }
            if dst[0] >= 224 {
                // Multicast and limited broadcast: only ever for the host stack.
                return self.sched.push(Node::Local, i);
            }
            t.fib.lookup4_idx(dst)
        } else {
            let (dst, total) = match Ipv6Packet::new_checked(p.data()) {
                Ok(ip) => (ip.dst(), ip.total_len()),
                Err(r) => return self.drop(ctx, i, r),
            };
            let pad = p.len() - total;
            if pad > 0 && !p.trim(pad) {
                return self.drop(ctx, i, DropReason::Ipv6BadPayloadLength);
            }
            if dst[0] == 0xff {
                return self.sched.push(Node::Local, i);
            }
            t.fib.lookup6_idx(dst)
        };
        match looked_up {
            Ok((_, NextHop::Local { .. })) => {
                if !t.ipsec.sa_in.is_empty() || m.sa_in != 0 || !t.tunnels.is_empty() {
                    self.local_dispatch(t, ctx, env, i)
                } else {
                    self.sched.push(Node::Local, i)
                }
            }
            Ok((idx, _)) => {
                m.nh = idx;
                self.sched.push(Node::Forward, i);
            }
            Err(r) => self.drop(ctx, i, r),
        }
    }

    /// Local delivery: everything addressed to the gateway goes to the control thread,
    /// except what the host stack could only misread (see [`local_refusal`]).
    pub(super) fn local<E: Env<P>>(&mut self, ctx: &Ctx, env: &mut E, i: usize) {
        let m = self.meta[i];
        if let Some(r) = self.slots[i]
            .as_ref()
            .and_then(|p| local_refusal(p.data(), m.v6))
        {
            return self.drop(ctx, i, r);
        }
        let l2_len = if m.passes == 0 { m.l2_len } else { 0 };
        self.punt(
            ctx,
            env,
            i,
            PuntKind::L3 {
                ifindex: m.in_if,
                l2_len,
            },
        );
    }

    /// Forwarding: TTL / hop limit, then act on the next hop.
    pub(super) fn forward<E: Env<P>>(&mut self, t: &Tables, ctx: &mut Ctx, env: &mut E, i: usize) {
        let Some(p) = self.slots[i].as_mut() else {
            return;
        };
        let m = self.meta[i];
        if !m.local_origin {
            let d = p.data_mut();
            let expired = if m.v6 {
                // Length checked in ip_in.
                if d[7] <= 1 {
                    true
                } else {
                    d[7] -= 1;
                    false
                }
            } else if d[8] <= 1 {
                true
            } else {
                Ipv4Packet::new_unchecked(d).decrement_ttl();
                false
            };
            if expired {
                let reason = if m.v6 {
                    DropReason::HopLimitExpired
                } else {
                    DropReason::TtlExpired
                };
                return self.icmp_error(t, ctx, i, IcmpError::TimeExceeded, reason);
            }
        }
        let Some(nh) = t.fib.nexthops().get(m.nh as usize) else {
            return self.drop(ctx, i, DropReason::NoRoute);
        };
        // Decrypted traffic is always checked: its SA's selectors apply even with no policy.
        if !m.esp_out && (m.sa_in != 0 || !t.ipsec.is_inactive()) {
            let out_if = match nh {
                NextHop::Forward(adj) => adj.ifindex,
                _ => m.in_if,
            };
            if !self.policy_check(t, ctx, env, i, out_if) {
                return;
            }
        }
        let Some(p) = self.slots[i].as_mut() else {
            return;
        };
        match *nh {
            NextHop::Forward(adj) => {
                if p.len() > adj.mtu as usize {
                    let df = m.v6 || Ipv4Packet::new_unchecked(p.data()).dont_frag();
                    if df {
                        // (Our own packets hear nothing: icmp_error only counts them.)
                        let mtu = adj.mtu as u32;
                        return self.icmp_error(
                            t,
                            ctx,
                            i,
                            IcmpError::TooBig { mtu },
                            DropReason::MtuExceeded,
                        );
                    }
                    // DF clear, ours or transit (a GRE packet whose far end is behind a
                    // smaller MTU included): fragmented here (RFC 791), the first fragment
                    // goes on, the others follow through output after this run.
                    if let Err(r) = self.fragment_into(env, i, adj.mtu as usize, Node::Output) {
                        return self.drop(ctx, i, r);
                    }
                }
                self.sched.push(Node::Output, i);
            }
            NextHop::Glean { ifindex } => {
                let addr = dst_addr(p.data(), m.v6);
                self.resolve(ctx, env, ifindex, addr);
                self.drop(ctx, i, DropReason::NoNeighbor)
            }
            NextHop::Unresolved { ifindex, gateway } => {
                self.resolve(ctx, env, ifindex, gateway);
                self.drop(ctx, i, DropReason::NoNeighbor)
            }
            NextHop::Local { .. } => self.sched.push(Node::Local, i),
            NextHop::Blackhole => self.drop(ctx, i, DropReason::RouteBlackhole),
            NextHop::Tunnel { tunnel } => {
                self.meta[i].tun = tunnel;
                self.sched.push(Node::Encap, i);
            }
            NextHop::Vti { vti } => self.vti_out(t, ctx, env, i, vti),
        }
    }

    /// Output: prepend the adjacency's L2 header and queue for TX.
    pub(super) fn output(&mut self, t: &Tables, ctx: &Ctx, i: usize) {
        let Some(NextHop::Forward(adj)) = t.fib.nexthops().get(self.meta[i].nh as usize) else {
            return self.drop(ctx, i, DropReason::NoRoute);
        };
        let Some(p) = self.slots[i].as_mut() else {
            return;
        };
        let et = if self.meta[i].v6 {
            EtherType::IPV6
        } else {
            EtherType::IPV4
        };
        if !put_l2(p, adj, et) {
            return self.drop(ctx, i, DropReason::NoHeadroom);
        }
        let Some(q) = self.tx.get_mut(adj.port as usize) else {
            return self.drop(ctx, i, DropReason::TxQueueFull);
        };
        if q.len() == q.capacity() {
            return self.drop(ctx, i, DropReason::TxQueueFull);
        }
        if let Some(p) = self.slots[i].take() {
            q.push(p);
        }
    }

    /// Turn packet `i` into an ICMP error towards its source (if allowed and within the
    /// rate) and route it; otherwise drop it. Either way the original counts under `reason`.
    pub(super) fn icmp_error(
        &mut self,
        t: &Tables,
        ctx: &mut Ctx,
        i: usize,
        kind: IcmpError,
        reason: DropReason,
    ) {
        ctx.counters.drop(reason);
        let m = self.meta[i];
        let ifc = t.interfaces.get(m.in_if as usize);
        let src4 = ifc.and_then(|f| f.icmp_src_v4);
        let src6 = ifc.and_then(|f| f.icmp_src_v6);
        let Some(mut p) = self.slots[i].take() else {
            return;
        };
        if m.local_origin {
            return;
        }
        if !ctx.icmp.allow(ctx.now) {
            return ctx.counters.drop(DropReason::IcmpRateLimited);
        }
        let made = match (m.v6, src4, src6) {
            (false, Some(src), _) => to_icmp4_error(&mut p, kind, src),
            (true, _, Some(src)) => to_icmp6_error(&mut p, kind, src),
            _ => false,
        };
        if made {
            self.slots[i] = Some(p);
            self.meta[i].local_origin = true;
            self.reenter(ctx, i, Node::IpIn);
        }
    }

    fn resolve<E: Env<P>>(&mut self, ctx: &mut Ctx, env: &mut E, ifindex: u16, addr: IpAddr) {
        if ctx.resolve.should_ask(ifindex, addr, ctx.now) {
            let _ = env.event(Event::Resolve { ifindex, addr });
        }
    }

    fn punt<E: Env<P>>(&mut self, ctx: &Ctx, env: &mut E, i: usize, kind: PuntKind) {
        let Some(pkt) = self.slots[i].take() else {
            return;
        };
        match env.punt(Punted { pkt, kind }) {
            Ok(()) => ctx.counters.punted.inc(),
            Err(_) => ctx.counters.drop(DropReason::PuntQueueFull),
        }
    }
}

/// Destination address of the IP packet at the start of `d` (header already validated).
fn dst_addr(d: &[u8], v6: bool) -> IpAddr {
    if v6 {
        IpAddr::from(Ipv6Packet::new_unchecked(d).dst())
    } else {
        IpAddr::from(Ipv4Packet::new_unchecked(d).dst())
    }
}

/// Why a packet addressed to us (data at its IP header, already validated by `ip_in`) must
/// not reach the host stack: a fragment (nothing here reassembles — smoltcp is built without
/// reassembly and would read a fragment as a whole packet, and ESP and the tunnels refuse
/// fragments — so it is counted as `Ipv4Fragment`, IPv6 fragments included), or UDP whose
/// header is cut short or whose length field runs past the packet (the tunnel and IKE/NAT-T
/// demultiplexing cannot read its port either).
fn local_refusal(d: &[u8], v6: bool) -> Option<DropReason> {
    let (fragment, proto, l4) = if v6 {
        let ul = Ipv6Packet::new_checked(d)
            .and_then(|ip| ip.upper_layer())
            .ok()?;
        (ul.fragment, ul.protocol, ul.offset)
    } else {
        let ip = Ipv4Packet::new_checked(d).ok()?;
        (ip.is_fragment(), ip.protocol(), ip.header_len())
    };
    if fragment {
        return Some(DropReason::Ipv4Fragment);
    }
    if proto == crate::wire::ipproto::UDP {
        return crate::wire::udp::UdpPacket::new_checked(d.get(l4..)?).err();
    }
    None
}

/// Put the Ethernet header (and 802.1Q tag) of adjacency `adj` in front of the IP packet `p`
/// carrying `et`; false when the headroom is short (nothing changed).
#[inline(always)]
pub(super) fn put_l2<P: Packet>(p: &mut P, adj: &Adjacency, et: u16) -> bool {
    if adj.vlan == 0 {
        if !p.prepend(ethernet::HEADER_LEN) {
            return false;
        }
        ethernet::write_header(p.data_mut(), adj.dst, adj.src, et);
    } else {
        if !p.prepend(ethernet::HEADER_LEN + ethernet::VLAN_TAG_LEN) {
            return false;
        }
        let d = p.data_mut();
        ethernet::write_header(d, adj.dst, adj.src, EtherType::VLAN);
        put16(d, 14, adj.vlan);
        put16(d, 16, et);
    }
    true
}
