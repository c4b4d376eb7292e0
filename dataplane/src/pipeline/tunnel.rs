//! The overlay tunnel nodes: decapsulation of tunnel packets addressed to us (find the tunnel,
//! validate, strip, then route the inner packet as arriving on the tunnel interface, or send
//! the inner frame out of its cross-connect) and encapsulation of packets routed into an L3
//! tunnel or arriving on a cross-connected port (MTU check — ICMP error with DF, inner
//! fragmentation without — then encap and route the result as a packet of our own, which is
//! how ESP can protect it).
//!
//! Counting: drops before a tunnel is identified are counted per worker only; from then on
//! they are also counted against the tunnel, beside its rx/tx packets and bytes.

use super::{Ctx, Env, Node, Pipeline};
use crate::icmp_error::IcmpError;
use crate::packet::Packet;
use crate::stats::DropReason;
use crate::tables::fib::NextHop;
use crate::tables::tunnels::{Attach, TunnelCounters};
use crate::tables::Tables;
use crate::tunnel::{self, Endpoints, Payload, PayloadType};
use crate::wire::ethernet::{self, EtherType};
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::put16;

impl<P: Packet> Pipeline<P> {
    /// Drop packet `i` under `r`, also against the tunnel's counters when there are some.
    #[inline]
    fn tunnel_drop(&mut self, ctx: &Ctx, i: usize, c: Option<&TunnelCounters>, r: DropReason) {
        if let Some(c) = c {
            c.drops[r as usize].inc();
        }
        self.drop(ctx, i, r);
    }

    /// A frame that arrived on a cross-connected port (or VLAN): remove the service VLAN tag
    /// (port-wide cross-connects carry the frame as it is) and send it to the encap node.
    pub(super) fn xconnect_in(&mut self, ctx: &Ctx, i: usize, tun: u32, strip_tag: bool) {
        let Some(p) = self.slots[i].as_mut() else {
            return;
        };
        if strip_tag {
            // Move the MAC addresses over the tag, then drop the first four bytes.
            let d = p.data_mut();
            d.copy_within(0..12, ethernet::VLAN_TAG_LEN);
            if !p.adj(ethernet::VLAN_TAG_LEN) {
                return self.drop(ctx, i, DropReason::VlanTruncated);
            }
        }
        self.meta[i].tun = tun;
        self.sched.push(Node::Encap, i);
    }

    /// Decapsulation of a tunnel packet addressed to us (data at the outer IP header).
    pub(super) fn decap(&mut self, t: &Tables, ctx: &Ctx, i: usize) {
        let Some(p) = self.slots[i].as_mut() else {
            return;
        };
        let info = match tunnel::decap_parse(p.data(), &t.tunnels.decap_config()) {
            Ok(info) => info,
            Err(r) => return self.drop(ctx, i, r),
        };
        let Some(e) = t.tunnels.lookup(&info).and_then(|ti| t.tunnels.get(ti)) else {
            return self.drop(ctx, i, DropReason::TunnelNoMatch);
        };
        let c = e.shared.worker(ctx.worker);
        if info.udp6_zero_checksum && !e.encap.udp6_zero_checksum {
            return self.tunnel_drop(ctx, i, c, DropReason::UdpBadChecksum);
        }
        let mut seq = c.filter(|_| e.encap.gre_sequence).map(|c| c.seq_state());
        let ty = match tunnel::decap(p, &info, &e.encap, seq.as_mut()) {
            Ok(ty) => ty,
            Err(r) => return self.tunnel_drop(ctx, i, c, r),
        };
        if let (Some(c), Some(s)) = (c, seq) {
            c.set_seq_state(s);
        }
        // Received on the tunnel once delivered: into IP input as arriving on the tunnel
        // interface, or onto the cross-connect's TX queue; what cannot be is a drop instead.
        let received = |c: Option<&TunnelCounters>, bytes: u64| {
            if let Some(c) = c {
                c.rx_packets.inc();
                c.rx_bytes.add(bytes);
            }
        };
        let bytes = p.len() as u64;
        match e.attach {
            Attach::L3 { ifindex } if ty != PayloadType::Ethernet => {
                let m = &mut self.meta[i];
                m.in_if = ifindex;
                m.v6 = ty == PayloadType::Ipv6;
                m.l2_len = 0;
                // The outer packet's protection (if any) was checked on the way in; the inner
                // one is a new arrival on the tunnel interface.
                m.sa_in = 0;
                m.local_origin = false;
                received(c, bytes);
                self.reenter(ctx, i, Node::IpIn);
            }
            Attach::Xconnect { port, vlan } if ty == PayloadType::Ethernet => {
                if vlan != 0 {
                    if !p.prepend(ethernet::VLAN_TAG_LEN) {
                        return self.tunnel_drop(ctx, i, c, DropReason::NoHeadroom);
                    }
                    let d = p.data_mut();
                    d.copy_within(ethernet::VLAN_TAG_LEN..ethernet::VLAN_TAG_LEN + 12, 0);
                    put16(d, 12, EtherType::VLAN);
                    put16(d, 14, vlan);
                }
                let Some(q) = self.tx.get_mut(port as usize) else {
                    return self.tunnel_drop(ctx, i, c, DropReason::TxQueueFull);
                };
                if q.len() == q.capacity() {
                    return self.tunnel_drop(ctx, i, c, DropReason::TxQueueFull);
                }
                if let Some(p) = self.slots[i].take() {
                    q.push(p);
                    received(c, bytes);
                }
            }
            _ => self.tunnel_drop(ctx, i, c, DropReason::XconnectNoPeer),
        }
    }

    /// Encapsulation into tunnel `meta.tun` of an inner IP packet (routed into an L3 tunnel)
    /// or Ethernet frame (from a cross-connect).
    pub(super) fn encap<E: Env<P>>(&mut self, t: &Tables, ctx: &mut Ctx, env: &mut E, i: usize) {
        let m = self.meta[i];
        let Some(e) = t.tunnels.get(m.tun) else {
            return self.drop(ctx, i, DropReason::NoRoute);
        };
        let c = e.shared.worker(ctx.worker);
        if e.inbound_only {
            return self.tunnel_drop(ctx, i, c, DropReason::TunnelInboundOnly);
        }
        let Some(p) = self.slots[i].as_mut() else {
            return;
        };
        let ethernet = e.encap.carries() == Payload::Ethernet;
        if p.len() > e.mtu as usize {
            if ethernet {
                // A bridged frame has no IP context to report to: drop it (RFC 7348 §4.3
                // forbids fragmenting VXLAN, and a cross-connect has no address to send from).
                return self.tunnel_drop(ctx, i, c, DropReason::MtuExceeded);
            }
            let df = m.v6 || Ipv4Packet::new_unchecked(p.data()).dont_frag();
            if df {
                if let Some(c) = c {
                    c.drops[DropReason::MtuExceeded as usize].inc();
                }
                let mtu = e.mtu as u32;
                return self.icmp_error(
                    t,
                    ctx,
                    i,
                    IcmpError::TooBig { mtu },
                    DropReason::MtuExceeded,
                );
            }
            // RFC 4459 §3: fragment the inner packet, not the outer one — the fragments are
            // then reassembled by the final destination, not by the tunnel's far end (ours
            // does not reassemble), and each one is a whole tunnel packet ESP can protect.
            if let Err(r) = self.fragment_into(env, i, e.mtu as usize, Node::Encap) {
                return self.tunnel_drop(ctx, i, c, r);
            }
        }
        let Some(p) = self.slots[i].as_mut() else {
            return;
        };
        let seq = e.encap.gre_sequence.then(|| e.shared.next_tx_seq());
        let ip_id = e.shared.next_ip_id(ctx.worker);
        let inner_len = p.len();
        if let Err(r) = tunnel::encap_with(p, &e.encap, t.tunnels.template(m.tun), seq, ip_id) {
            return self.tunnel_drop(ctx, i, c, r);
        }
        if let Some(c) = c {
            c.tx_packets.inc();
            c.tx_bytes.add(inner_len as u64);
        }
        let direct = outer_adjacency(t, m.tun, &e.encap.endpoints, p.len());
        let m = &mut self.meta[i];
        m.v6 = e.encap.endpoints.is_v6();
        m.local_origin = true;
        m.esp_out = false;
        m.sa_in = 0;
        m.l2_len = 0;
        match direct {
            Some(nh) => {
                m.nh = nh;
                // Still a re-entry for the loop bound, like the IP input pass it skips.
                self.reenter(ctx, i, Node::Output);
            }
            None => self.reenter(ctx, i, Node::IpIn),
        }
    }
}

/// Where a packet just encapsulated into tunnel `tun` (`len` octets from its outer IP
/// header) can go without passing IP input and forwarding again: the index of its next hop
/// when no IPsec policy could claim it and the route to the far end is a resolved adjacency
/// it fits. Those passes would do nothing else for it — the outer header is ours and valid,
/// nothing pads it, our own packets keep their TTL. Everything else (IPsec policies present,
/// so ESP may protect the tunnel; no route; an unresolved neighbor; a tunnel, VTI or local
/// next hop, i.e. recursion; over the MTU; a multicast far end) returns `None` and takes the
/// general path, which handles and counts it.
#[inline]
pub(super) fn outer_adjacency(t: &Tables, tun: u32, ends: &Endpoints, len: usize) -> Option<u32> {
    if !t.ipsec.is_inactive() {
        return None;
    }
    if !ends.remote_is_unicast() {
        return None;
    }
    let idx = t.tunnels.outer_route(tun, &t.fib)?;
    match t.fib.nexthops().get(idx as usize)? {
        NextHop::Forward(adj) if len <= adj.mtu as usize => Some(idx),
        _ => None,
    }
}
