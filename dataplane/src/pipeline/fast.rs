//! The IPv4 forwarding fast path: the one case that dominates a router's load — an untagged
//! unicast frame to our MAC carrying an option-less, valid IPv4 header whose route is a
//! resolved untagged adjacency and that fits its MTU — done in one pass over the frame with
//! the Ethernet header rewritten in place (no strip and re-prepend).
//!
//! It must decide exactly what the node pipeline would for these packets, and it declines
//! (returns `None`, touching nothing) everything else — options, VLANs, TTL ≤ 1, punts,
//! errors, every drop — which then takes the general path, where each case is handled and
//! counted. The pipeline tests run the same frames through both paths.
//!
//! Ordering: within a burst, fast-path packets reach the TX queue before general-path ones.
//! Packets of one flow take the same path unless their headers differ in kind (options, TTL
//! about to expire), so a flow is not reordered in practice — the trade VPP makes too.

use crate::packet::Packet;
use crate::tables::fib::NextHop;
use crate::tables::Tables;
use crate::wire::checksum;

/// Try to forward the frame; on success the frame is rewritten and the TX port returned.
#[inline(always)]
pub(super) fn try_forward4<P: Packet>(t: &Tables, in_port: u16, p: &mut P) -> Option<u16> {
    if p.is_multi_segment() || !t.ipsec.is_inactive() {
        return None;
    }
    let pe = t.ports.get(in_port as usize)?;
    pe.untagged?;
    if !pe.xconnects.is_empty() {
        return None;
    }
    let d = p.data();
    // Ethernet (14) + option-less IPv4 (20).
    if d.len() < 34 || d[0..6] != pe.mac.0 || d[12..14] != [0x08, 0x00] || d[14] != 0x45 {
        return None;
    }
    let Ok(ip) = <&[u8; 20]>::try_from(&d[14..34]) else {
        return None;
    };
    let total = u16::from_be_bytes([ip[2], ip[3]]) as usize;
    // Within the frame, TTL left to decrement, unicast source and destination (multicast,
    // broadcast and class E go the general way).
    if total < 20 || total + 14 > d.len() || ip[8] <= 1 || ip[12] >= 224 || ip[16] >= 224 {
        return None;
    }
    let pad = d.len() - 14 - total;
    if !checksum::ipv4_header20_ok(ip) {
        return None;
    }
    let dst = [ip[16], ip[17], ip[18], ip[19]];
    let (_, nh) = t.fib.lookup4_idx(dst).ok()?;
    let NextHop::Forward(adj) = nh else {
        return None;
    };
    if adj.vlan != 0 || total > adj.mtu as usize {
        return None;
    }
    // Ethernet padding (short frames) goes; cannot fail, the frame holds `pad` more bytes.
    if pad > 0 && !p.trim(pad) {
        return None;
    }
    let d = p.data_mut();
    d[0..6].copy_from_slice(&adj.dst.0);
    d[6..12].copy_from_slice(&adj.src.0);
    // TTL is the high byte of the word at 22; RFC 1624 incremental update.
    let old = u16::from_be_bytes([d[22], d[23]]);
    d[22] -= 1;
    let new = u16::from_be_bytes([d[22], d[23]]);
    let c = checksum::update16(u16::from_be_bytes([d[24], d[25]]), old, new);
    d[24..26].copy_from_slice(&c.to_be_bytes());
    Some(adj.port)
}
