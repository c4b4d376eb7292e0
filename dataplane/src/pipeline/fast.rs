//! The fast paths: the cases that dominate a router's and a tunnel endpoint's load, each done
//! in one pass over the frame instead of a walk through the node queues —
//! * IPv4 and IPv6 forwarding: an untagged unicast frame to our MAC carrying an option-less,
//!   valid IPv4 header (or an IPv6 one) whose route is a resolved untagged adjacency and that
//!   fits its MTU, the Ethernet header rewritten in place (no strip and re-prepend);
//! * tunnel encapsulation of such a packet routed into an L3 tunnel, and of a frame from a
//!   port (or a VLAN, its tag removed) cross-connected to an L2 tunnel, when the route to the
//!   far end is a resolved untagged adjacency the result fits;
//! * tunnel decapsulation of such a packet addressed to us (or of an IPv6 one without
//!   extension headers), the inner frame sent out of its cross-connected port (tagged again
//!   for a VLAN cross-connect) or the inner IPv4 or IPv6 packet forwarded to a resolved
//!   untagged adjacency it fits.
//!
//! A valid untagged unicast IPv4 or IPv6 frame to our MAC that none of these takes (IPsec policies
//! configured, a VTI or local next hop, TTL about to expire, over the MTU...) still skips L2 and
//! IP input: it enters the node pipeline at forwarding or local dispatch (`Fast::Enter`).
//! Of those, an IPv4 packet an outbound policy protects with a tunnel-mode SA this worker
//! owns is sealed and sent in one pass too, and ESP to us for a policy-based SA this worker
//! owns is opened at once, its inner IPv4 packet forwarded in the same pass when the policies
//! let it through in the clear (`Pipeline::esp_out_fast` / `esp_in_fast`, next to the ESP
//! nodes they stand for).
//!
//! Each must decide exactly what the node pipeline would for these packets, and declines
//! (returns `None`, leaving the packet as it found it) everything else — options, VLANs,
//! TTL ≤ 1, fragments, punts, IPsec policies present, GRE sequence numbers, errors, every
//! drop — which then takes the general path, where each case is handled and counted. The
//! pipeline tests run the same frames through both paths.
//!
//! Ordering: within a burst, fast-path packets reach the TX queue before general-path ones.
//! Packets of one flow take the same path unless their headers differ in kind (options, TTL
//! about to expire), so a flow is not reordered in practice — the trade VPP makes too.

use crate::packet::Packet;
use crate::stats::DropReason;
use crate::tables::fib::NextHop;
use crate::tables::iface::{Adjacency, IfIndex, PortEntry};
use crate::tables::tunnels::{Attach, DemuxMemo, FastEncap, TunnelCounters, TunnelEntry};
use crate::tables::Tables;
use crate::tunnel::{self, EncapTemplate, Endpoints, PayloadType};
use crate::wire::ethernet::{self, EtherType, L2Header};
use crate::wire::{checksum, ipproto, Ipv4Packet};

/// What a fast path did with a packet it took.
pub(super) enum Fast<'t> {
    /// Rewritten: send it on this port.
    Tx(u16),
    /// Decapsulated to a cross-connect: send it on this port, then count it (these bytes)
    /// received on the tunnel — or, when the TX queue is full, dropped by it — as the
    /// decap node does.
    TxFromTunnel(u16, Option<&'t TunnelCounters>, u64),
    /// Through L2 and IP input (data at the IP header, arrived on `in_if`): on to
    /// forwarding with next hop `nh`, or, `None`, for the gateway (local dispatch).
    Enter {
        in_if: IfIndex,
        nh: Option<u32>,
        v6: bool,
    },
    /// Changed beyond handing back and then refused (cannot happen with the checks made
    /// first; kept so a failure is a counted drop, never a half-made packet on the general
    /// path).
    Drop(DropReason),
}

/// UDP ports the general path gives to IKE / NAT-T before any tunnel.
const IKE_PORTS: [u16; 2] = [500, 4500];

/// What the fast paths remember within one burst (one table version): the tunnel the last
/// received tunnel packet belonged to, and the tunnel last encapsulated into with everything
/// that needs. A burst is mostly one tunnel's traffic; fetching entry, plan, template and
/// counters once for it, not per packet, is worth a few percent of an encapsulation.
#[derive(Default)]
pub(super) struct BurstMemo<'t> {
    demux: DemuxMemo,
    encap: Option<EncapTarget<'t>>,
}

/// A tunnel the encapsulation fast path sends into (see [`encap_target`]).
#[derive(Clone, Copy)]
struct EncapTarget<'t> {
    tun: u32,
    e: &'t TunnelEntry,
    plan: &'t FastEncap,
    tpl: &'t EncapTemplate,
    /// This worker's counters of the tunnel.
    c: Option<&'t TunnelCounters>,
}

/// Try every fast path that applies to a frame from `in_port`.
#[inline(always)]
pub(super) fn try_fast<'t, P: Packet>(
    t: &'t Tables,
    memo: &mut BurstMemo<'t>,
    worker: u32,
    in_port: u16,
    p: &mut P,
) -> Option<Fast<'t>> {
    if p.is_multi_segment() {
        return None;
    }
    let pe = t.ports.get(in_port as usize)?;
    // With IPsec policies every packet needs the SPD: only the entry below applies.
    let inactive = t.ipsec.is_inactive();
    if !pe.xconnects.is_empty() {
        return inactive.then(|| try_xconnect_encap(t, memo, worker, pe, p))?;
    }
    let in_if = pe.untagged?;
    if p.data().get(12..14) == Some(&[0x86, 0xdd]) {
        if inactive {
            if let Some(f) = try_ipv6(t, memo, worker, pe, p) {
                return Some(f);
            }
        }
        return enter6(t, p, pe, in_if);
    }
    let ip = Ipv4Frame::parse(p.data(), pe)?;
    if inactive {
        if let Some(f) = try_ipv4(t, memo, worker, p, &ip) {
            return Some(f);
        }
    }
    enter4(t, p, &ip, in_if)
}

/// The IPv4 one-pass paths for a checked frame (no IPsec policies).
#[inline(always)]
fn try_ipv4<'t, P: Packet>(
    t: &'t Tables,
    memo: &mut BurstMemo<'t>,
    worker: u32,
    p: &mut P,
    ip: &Ipv4Frame,
) -> Option<Fast<'t>> {
    // Our own tunnel endpoints are known to be local in this version's FIB.
    if t.tunnels.is_local4(ip.dst) {
        return try_decap4(t, memo, worker, p, ip);
    }
    let (_, nh) = t.fib.lookup4_idx(ip.dst).ok()?;
    match *nh {
        NextHop::Forward(adj) => forward4(p, ip, &adj).map(Fast::Tx),
        NextHop::Local { .. } => try_decap4(t, memo, worker, p, ip),
        NextHop::Tunnel { tunnel } => try_routed_encap(t, memo, worker, p, ip, tunnel),
        _ => None,
    }
}

/// A checked frame no one-pass path took (IPsec, a VTI, a local address, TTL about to
/// expire, over the MTU...) enters the node pipeline past L2 and IP input, whose work on it is
/// already done: Ethernet removed, padding cut, the route looked up. A lookup error declines
/// (IP input counts it).
#[inline(always)]
fn enter4<'t, P: Packet>(
    t: &'t Tables,
    p: &mut P,
    ip: &Ipv4Frame,
    in_if: IfIndex,
) -> Option<Fast<'t>> {
    let (idx, nh) = t.fib.lookup4_idx(ip.dst).ok()?;
    let nh = match nh {
        NextHop::Local { .. } => None,
        _ => Some(idx),
    };
    // Cannot fail: the frame holds the 34 octets parsed and `pad` more.
    if !p.adj(ethernet::HEADER_LEN) {
        return None;
    }
    if ip.pad > 0 && !p.trim(ip.pad) {
        return Some(Fast::Drop(DropReason::Ipv4BadTotalLength));
    }
    Some(Fast::Enter {
        in_if,
        nh,
        v6: false,
    })
}

/// [`enter4`] for an untagged IPv6 frame to our MAC with a valid header and a unicast
/// destination (IP input's checks; multicast is its business).
#[inline(always)]
fn enter6<'t, P: Packet>(
    t: &'t Tables,
    p: &mut P,
    pe: &PortEntry,
    in_if: IfIndex,
) -> Option<Fast<'t>> {
    let d = p.data();
    if d.len() < 54 || d[0..6] != pe.mac.0 || d[14] >> 4 != 6 || d[38] == 0xff {
        return None;
    }
    let total = 40 + u16::from_be_bytes([d[18], d[19]]) as usize;
    if total + ethernet::HEADER_LEN > d.len() {
        return None;
    }
    let pad = d.len() - ethernet::HEADER_LEN - total;
    let (idx, nh) = t
        .fib
        .lookup6_idx(<[u8; 16]>::try_from(&d[38..54]).ok()?)
        .ok()?;
    let nh = match nh {
        NextHop::Local { .. } => None,
        _ => Some(idx),
    };
    // Cannot fail: the frame holds the 54 octets parsed and `pad` more.
    if !p.adj(ethernet::HEADER_LEN) {
        return None;
    }
    if pad > 0 && !p.trim(pad) {
        return Some(Fast::Drop(DropReason::Ipv6BadPayloadLength));
    }
    Some(Fast::Enter {
        in_if,
        nh,
        v6: true,
    })
}

/// An untagged frame to our MAC with a valid, option-less IPv4 header between unicast
/// addresses.
struct Ipv4Frame {
    /// The IP total length.
    total: usize,
    /// Ethernet padding after the IP packet.
    pad: usize,
    dst: [u8; 4],
}

impl Ipv4Frame {
    #[inline(always)]
    fn parse(d: &[u8], pe: &PortEntry) -> Option<Ipv4Frame> {
        // Ethernet (14) + option-less IPv4 (20).
        if d.len() < 34 || d[0..6] != pe.mac.0 || d[12..14] != [0x08, 0x00] {
            return None;
        }
        let ip = <&[u8; 20]>::try_from(&d[14..34]).ok()?;
        let total = unicast4_total(ip, d.len() - 14)?;
        Some(Ipv4Frame {
            total,
            pad: d.len() - 14 - total,
            dst: [ip[16], ip[17], ip[18], ip[19]],
        })
    }
}

/// The total length of an option-less IPv4 header with a valid checksum between unicast
/// addresses (multicast, broadcast and class E go the general way), within `room` bytes.
#[inline(always)]
pub(super) fn unicast4_total(ip: &[u8; 20], room: usize) -> Option<usize> {
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    if ip[0] != 0x45 || total < 20 || total > room || ip[12] >= 224 || ip[16] >= 224 {
        return None;
    }
    checksum::ipv4_header20_ok(ip).then_some(total)
}

/// Forward a checked IPv4 frame to `adj`; the TX port, or `None` (nothing changed).
#[inline(always)]
fn forward4<P: Packet>(p: &mut P, ip: &Ipv4Frame, adj: &Adjacency) -> Option<u16> {
    if p.data()[22] <= 1 || adj.vlan != 0 || ip.total > adj.mtu as usize {
        return None;
    }
    // Ethernet padding (short frames) goes; cannot fail, the frame holds `pad` more bytes.
    if ip.pad > 0 && !p.trim(ip.pad) {
        return None;
    }
    let d = p.data_mut();
    d[0..6].copy_from_slice(&adj.dst.0);
    d[6..12].copy_from_slice(&adj.src.0);
    Ipv4Packet::new_unchecked(&mut d[14..]).decrement_ttl();
    Some(adj.port)
}

/// Tunnel `tun`, with what sending into it takes, for an inner packet of type `inner` and
/// `inner_len` octets, when encapsulating here and now is what the general path would do:
/// the tunnel carries that type, its plan for this table version allows it ([`FastEncap`]:
/// it sends, keeps no GRE sequence, its far end is a resolved untagged adjacency), the inner
/// packet fits the plan's MTU, and the buffer has room for the outer headers and Ethernet.
/// No IPsec policy may be configured (one could protect the tunnel): every caller is behind
/// that check.
#[inline(always)]
fn encap_target<'t, P: Packet>(
    t: &'t Tables,
    memo: &mut BurstMemo<'t>,
    worker: u32,
    tun: u32,
    p: &P,
    inner: PayloadType,
    inner_len: usize,
) -> Option<EncapTarget<'t>> {
    let tg = match memo.encap {
        Some(m) if m.tun == tun => m,
        _ => {
            let e = t.tunnels.get(tun)?;
            let m = EncapTarget {
                tun,
                e,
                plan: t.tunnels.fast_encap(tun)?,
                tpl: t.tunnels.template(tun)?,
                c: e.shared.worker(worker),
            };
            memo.encap = Some(m);
            m
        }
    };
    let plan = tg.plan;
    let fits = inner_len <= plan.max_inner as usize && p.headroom() >= plan.room as usize;
    (fits && plan.carries.accepts(inner)).then_some(tg)
}

/// Encapsulate `p` (the inner packet or frame, already checked) into `tg`'s tunnel and put
/// the adjacency's Ethernet header in front; counted as the encap node counts.
#[inline(always)]
fn encap_and_send<P: Packet>(tg: &EncapTarget, worker: u32, p: &mut P) -> Fast<'static> {
    let e = tg.e;
    let ip_id = e.shared.next_ip_id(worker);
    let inner_len = p.len();
    if let Err(r) = tg.tpl.encap(p, &e.encap, ip_id) {
        if let Some(c) = tg.c {
            c.drops[r as usize].inc();
        }
        return Fast::Drop(r);
    }
    if let Some(c) = tg.c {
        c.tx_packets.inc();
        c.tx_bytes.add(inner_len as u64);
    }
    let et = match e.encap.endpoints {
        Endpoints::V4 { .. } => EtherType::IPV4,
        Endpoints::V6 { .. } => EtherType::IPV6,
    };
    // Room checked by `encap_target`.
    if !p.prepend(ethernet::HEADER_LEN) {
        return Fast::Drop(DropReason::NoHeadroom);
    }
    let adj = &tg.plan.adj;
    ethernet::write_header(p.data_mut(), adj.dst, adj.src, et);
    Fast::Tx(adj.port)
}

/// A frame from a port cross-connected as a whole to an L2 tunnel.
#[inline(always)]
fn try_xconnect_encap<'t, P: Packet>(
    t: &'t Tables,
    memo: &mut BurstMemo<'t>,
    worker: u32,
    pe: &PortEntry,
    p: &mut P,
) -> Option<Fast<'t>> {
    let l2 = L2Header::parse(p.data()).ok()?;
    // A VLAN cross-connect carries the frame without its service tag.
    let (tun, strip) = pe.xconnect(l2.outer_vlan)?;
    let tag = if strip { ethernet::VLAN_TAG_LEN } else { 0 };
    let tg = encap_target(
        t,
        memo,
        worker,
        tun,
        p,
        PayloadType::Ethernet,
        p.len() - tag,
    )?;
    if strip {
        // Past this point the packet is changed: failures are drops. The MAC addresses move
        // over the tag; parse saw the tag, so the frame holds it.
        p.data_mut().copy_within(0..12, tag);
        if !p.adj(tag) {
            return Some(Fast::Drop(DropReason::VlanTruncated));
        }
    }
    Some(encap_and_send(&tg, worker, p))
}

/// An IPv4 packet routed into an L3 tunnel.
#[inline(always)]
fn try_routed_encap<'t, P: Packet>(
    t: &'t Tables,
    memo: &mut BurstMemo<'t>,
    worker: u32,
    p: &mut P,
    ip: &Ipv4Frame,
    tun: u32,
) -> Option<Fast<'t>> {
    if p.data()[22] <= 1 {
        return None;
    }
    let tg = encap_target(t, memo, worker, tun, p, PayloadType::Ipv4, ip.total)?;
    // Past this point the packet is changed: failures are drops.
    if !p.adj(ethernet::HEADER_LEN) || (ip.pad > 0 && !p.trim(ip.pad)) {
        return Some(Fast::Drop(DropReason::EthTruncated));
    }
    Ipv4Packet::new_unchecked(p.data_mut()).decrement_ttl();
    Some(encap_and_send(&tg, worker, p))
}

/// A tunnel packet addressed to us over IPv4.
#[inline(always)]
fn try_decap4<'t, P: Packet>(
    t: &'t Tables,
    memo: &mut BurstMemo<'t>,
    worker: u32,
    p: &mut P,
    ip: &Ipv4Frame,
) -> Option<Fast<'t>> {
    let pkt = &p.data()[14..14 + ip.total];
    // Fragments go to the general path (which counts them).
    if u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff != 0 {
        return None;
    }
    let (info, tun) = demux(t, &mut memo.demux, pkt, pkt[9], 20)?;
    decap_and_send(t, worker, p, &info, tun)
}

/// An untagged IPv6 frame to our MAC (no extension headers needed but for decap): forwarded,
/// routed into a tunnel, or — to one of our tunnel endpoints known local in this version's
/// FIB — decapsulated.
#[inline(always)]
fn try_ipv6<'t, P: Packet>(
    t: &'t Tables,
    memo: &mut BurstMemo<'t>,
    worker: u32,
    pe: &PortEntry,
    p: &mut P,
) -> Option<Fast<'t>> {
    let d = p.data();
    if d.len() < 54 || d[0..6] != pe.mac.0 || d[14] >> 4 != 6 {
        return None;
    }
    let total = 40 + u16::from_be_bytes([d[18], d[19]]) as usize;
    let dst = <[u8; 16]>::try_from(&d[38..54]).ok()?;
    // Multicast is for the host stack.
    if total + 14 > d.len() || dst[0] == 0xff {
        return None;
    }
    let pad = d.len() - 14 - total;
    if t.tunnels.is_local6(dst) {
        return try_decap6(t, memo, worker, p, total);
    }
    let hop_left = d[21] > 1;
    match *t.fib.lookup6_idx(dst).ok()?.1 {
        NextHop::Forward(adj) if hop_left && adj.vlan == 0 && total <= adj.mtu as usize => {
            if pad > 0 && !p.trim(pad) {
                return None;
            }
            let d = p.data_mut();
            d[0..6].copy_from_slice(&adj.dst.0);
            d[6..12].copy_from_slice(&adj.src.0);
            d[21] -= 1;
            Some(Fast::Tx(adj.port))
        }
        NextHop::Tunnel { tunnel } if hop_left => {
            let tg = encap_target(t, memo, worker, tunnel, p, PayloadType::Ipv6, total)?;
            // Past this point the packet is changed: failures are drops.
            if !p.adj(ethernet::HEADER_LEN) || (pad > 0 && !p.trim(pad)) {
                return Some(Fast::Drop(DropReason::EthTruncated));
            }
            p.data_mut()[7] -= 1;
            Some(encap_and_send(&tg, worker, p))
        }
        _ => None,
    }
}

/// A tunnel packet addressed to us over IPv6 (`total` octets of IP), without extension
/// headers.
#[inline(always)]
fn try_decap6<'t, P: Packet>(
    t: &'t Tables,
    memo: &mut BurstMemo<'t>,
    worker: u32,
    p: &mut P,
    total: usize,
) -> Option<Fast<'t>> {
    let pkt = &p.data()[14..14 + total];
    let (info, tun) = demux(t, &mut memo.demux, pkt, pkt[6], 40)?;
    let e = t.tunnels.get(tun)?;
    if info.udp6_zero_checksum && !e.encap.udp6_zero_checksum {
        return None;
    }
    decap_and_send(t, worker, p, &info, tun)
}

/// Parse the tunnel packet `pkt` (an IP packet to us whose upper layer, `proto`, starts at
/// `l4`) and find its tunnel, as local dispatch and the decap node would: IKE and NAT-T
/// ports, protocols and ports no tunnel uses, parse errors and unknown keys decline.
#[inline(always)]
fn demux(
    t: &Tables,
    memo: &mut DemuxMemo,
    pkt: &[u8],
    proto: u8,
    l4: usize,
) -> Option<(tunnel::DecapInfo, u32)> {
    let port = if proto == ipproto::UDP {
        let dport = pkt
            .get(l4 + 2..l4 + 4)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))?;
        if IKE_PORTS.contains(&dport) {
            return None;
        }
        Some(dport)
    } else {
        None
    };
    if !t.tunnels.wants(proto, port) {
        return None;
    }
    let info = tunnel::decap_parse(pkt, &t.tunnels.decap_config()).ok()?;
    let tun = t.tunnels.lookup_memo(&info, memo)?;
    Some((info, tun))
}

/// Where the inner IP packet `inner` (just checked by decap_parse) is forwarded: the
/// untagged adjacency of its route when the node pipeline would forward it there — a valid
/// unicast header (IPv4 without options), TTL / hop limit left, a resolved adjacency it fits.
#[inline(always)]
fn inner_adjacency(t: &Tables, inner: &[u8], v6: bool) -> Option<Adjacency> {
    let nh = if v6 {
        let h = inner.get(..40)?;
        let total = 40 + u16::from_be_bytes([h[4], h[5]]) as usize;
        if h[0] >> 4 != 6 || total != inner.len() || h[24] == 0xff || h[7] <= 1 {
            return None;
        }
        t.fib
            .lookup6_idx(<[u8; 16]>::try_from(&h[24..40]).ok()?)
            .ok()?
            .1
    } else {
        let h = <&[u8; 20]>::try_from(inner.get(..20)?).ok()?;
        if unicast4_total(h, inner.len())? != inner.len() || h[8] <= 1 {
            return None;
        }
        t.fib.lookup4_idx([h[16], h[17], h[18], h[19]]).ok()?.1
    };
    match nh {
        NextHop::Forward(adj) if adj.vlan == 0 && inner.len() <= adj.mtu as usize => Some(*adj),
        _ => None,
    }
}

/// Decapsulate `p` (a frame whose IP packet `info` describes, in tunnel `tun`) and send the
/// inner frame out of its cross-connect or the inner packet to its next hop — or decline,
/// with the packet as it was, when the node pipeline would do anything else.
#[inline(always)]
fn decap_and_send<'t, P: Packet>(
    t: &'t Tables,
    worker: u32,
    p: &mut P,
    info: &tunnel::DecapInfo,
    tun: u32,
) -> Option<Fast<'t>> {
    let e = t.tunnels.get(tun)?;
    if e.encap.gre_sequence {
        return None;
    }
    // Where the inner packet goes, decided before anything changes.
    let inner = || {
        let at = 14 + info.header_len;
        p.data().get(at..at + info.inner_len)
    };
    let out = match (e.attach, info.payload) {
        (Attach::Xconnect { port, vlan }, PayloadType::Ethernet) => Ok((port, vlan)),
        (Attach::L3 { .. }, PayloadType::Ipv4) => {
            Err((inner_adjacency(t, inner()?, false)?, false))
        }
        (Attach::L3 { .. }, PayloadType::Ipv6) => Err((inner_adjacency(t, inner()?, true)?, true)),
        _ => return None,
    };
    if !p.adj(ethernet::HEADER_LEN) {
        return None;
    }
    if tunnel::decap(p, info, &e.encap, None).is_err() {
        // Nothing changed by decap: give the Ethernet header back, the general path counts.
        if !p.prepend(ethernet::HEADER_LEN) {
            return Some(Fast::Drop(DropReason::NoHeadroom));
        }
        return None;
    }
    let c = e.shared.worker(worker);
    match out {
        Ok((port, vlan)) => {
            let bytes = p.len() as u64;
            if vlan != 0 {
                // The service tag back in (room: the outer headers just removed).
                if !p.prepend(ethernet::VLAN_TAG_LEN) {
                    return Some(Fast::Drop(DropReason::NoHeadroom));
                }
                let d = p.data_mut();
                d.copy_within(ethernet::VLAN_TAG_LEN..ethernet::VLAN_TAG_LEN + 12, 0);
                d[12..14].copy_from_slice(&EtherType::VLAN.to_be_bytes());
                d[14..16].copy_from_slice(&vlan.to_be_bytes());
            }
            Some(Fast::TxFromTunnel(port, c, bytes))
        }
        Err((adj, v6)) => {
            // Into forwarding as arriving on the tunnel: received (as the decap node counts).
            if let Some(c) = c {
                c.rx_packets.inc();
                c.rx_bytes.add(p.len() as u64);
            }
            let d = p.data_mut();
            let et = if v6 {
                d[7] -= 1;
                EtherType::IPV6
            } else {
                Ipv4Packet::new_unchecked(d).decrement_ttl();
                EtherType::IPV4
            };
            // Room: the outer headers just removed.
            if !p.prepend(ethernet::HEADER_LEN) {
                return Some(Fast::Drop(DropReason::NoHeadroom));
            }
            ethernet::write_header(p.data_mut(), adj.dst, adj.src, et);
            Some(Fast::Tx(adj.port))
        }
    }
}
