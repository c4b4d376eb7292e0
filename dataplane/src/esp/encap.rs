//! ESP encapsulation in place on any [`Packet`] whose data starts at an IP header.
//!
//! - Tunnel mode: the whole inner IPv4/IPv6 packet becomes the ESP payload (next header 4 or
//!   41) behind a new outer IPv4/IPv6 header from the SA's addresses, with TTL, DSCP and DF from
//!   an [`OuterPolicy`] and ECN copied from the inner header (RFC 6040 normal mode).
//! - Transport mode: ESP goes between the IP header (IPv6: after Hop-by-Hop, Routing and
//!   Destination Options headers) and its payload; next header is the original protocol.
//! - [`encap_esp`]: the packet is the payload alone; only the ESP header, IV, trailer and ICV
//!   are added (for callers that build the IP header themselves).
//!
//! With NAT-T a UDP header (checksum 0 over IPv4, RFC 3948; computed over IPv6) precedes ESP.
//! Every room and limit is checked before anything is written or a sequence number is used,
//! so a refused packet leaves the SA unchanged.

use super::crypto::MAX_IV_LEN;
use super::layout::{v6_chain, Geometry};
use super::sa::{Mode, Sa};
use crate::outer::OuterPolicy;
use crate::packet::Packet;
use crate::stats::DropReason;
use crate::wire::ipv4::MIN_HEADER_LEN as IPV4_LEN;
use crate::wire::ipv6::HEADER_LEN as IPV6_LEN;
use crate::wire::{ipproto, put16, put32, udp, Ipv4Packet, Ipv6Packet};

/// What one encapsulation produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncapInfo {
    /// Sequence number used (all 64 bits with ESN).
    pub seq: u64,
    /// Length of the packet now (outer headers through ICV).
    pub len: usize,
    /// Protected payload length (inner packet or transport payload), charged to the lifetime.
    pub payload_len: usize,
    /// This packet crossed the SA's soft lifetime (reported once per SA).
    pub soft_expired: bool,
}

/// The length the IP packet at the start of `d` will have once sealed with `sa` (outer
/// header in tunnel mode, UDP for NAT-T, ESP header, IV, padding, trailer and ICV): what a
/// path-MTU check before sealing compares — so an oversized packet is refused before it
/// spends a sequence number.
#[inline]
pub fn sealed_len(sa: &Sa, d: &[u8]) -> usize {
    let natt = if sa.natt().is_some() {
        udp::HEADER_LEN
    } else {
        0
    };
    let (outer, payload) = match sa.mode() {
        Mode::Tunnel4 { .. } => (IPV4_LEN, d.len()),
        Mode::Tunnel6 { .. } => (IPV6_LEN, d.len()),
        // Transport: the header stays in front (extension headers of IPv6 aside).
        Mode::Transport => {
            let hl = match d.first().map(|b| b >> 4) {
                Some(4) => ((d[0] & 0x0f) as usize * 4).min(d.len()),
                _ => IPV6_LEN.min(d.len()),
            };
            (hl, d.len() - hl)
        }
    };
    let g = Geometry::new(sa.suite(), payload);
    outer + natt + g.hdr + payload + g.trailer
}

/// The largest packet that, sealed with `sa`, is at most `mtu` long (whatever its padding):
/// the MTU to report in an ICMP error and to fragment to.
pub fn max_inner_len(sa: &Sa, mtu: usize) -> usize {
    let natt = if sa.natt().is_some() {
        udp::HEADER_LEN
    } else {
        0
    };
    let outer = match sa.mode() {
        Mode::Tunnel4 { .. } => IPV4_LEN,
        Mode::Tunnel6 { .. } => IPV6_LEN,
        Mode::Transport => 0,
    };
    let suite = sa.suite();
    let g = Geometry::new(suite, 0);
    // Room for the payload plus its padding, pad length and next header, rounded down to
    // the alignment, minus those two trailer octets.
    let room = mtu.saturating_sub(outer + natt + g.hdr + suite.icv_len());
    let a = suite.pad_align().max(1);
    (room - room % a).saturating_sub(2)
}

/// Encapsulate the IP packet in `pkt` per the SA's mode. Errors are counted on the SA.
pub fn encap<P: Packet>(
    sa: &mut Sa,
    pkt: &mut P,
    policy: &OuterPolicy,
) -> Result<EncapInfo, DropReason> {
    encap_with_iv(sa, pkt, policy, None)
}

/// Add ESP header, IV, trailer and ICV around the payload `pkt` holds; `next_header` goes in
/// the trailer. Errors are counted on the SA.
pub fn encap_esp<P: Packet>(
    sa: &mut Sa,
    pkt: &mut P,
    next_header: u8,
) -> Result<EncapInfo, DropReason> {
    encap_esp_with_iv(sa, pkt, next_header, None)
}

/// [`encap`] with the explicit IV forced (known-answer tests).
pub(crate) fn encap_with_iv<P: Packet>(
    sa: &mut Sa,
    pkt: &mut P,
    policy: &OuterPolicy,
    iv: Option<&[u8; MAX_IV_LEN]>,
) -> Result<EncapInfo, DropReason> {
    let r = match sa.mode() {
        Mode::Transport => transport(sa, pkt, iv),
        _ => tunnel(sa, pkt, policy, iv),
    };
    r.map_err(|e| sa.count_drop(e))
}

/// [`encap_esp`] with the explicit IV forced (known-answer tests).
pub(crate) fn encap_esp_with_iv<P: Packet>(
    sa: &mut Sa,
    pkt: &mut P,
    next_header: u8,
    iv: Option<&[u8; MAX_IV_LEN]>,
) -> Result<EncapInfo, DropReason> {
    esp_only(sa, pkt, next_header, iv).map_err(|e| sa.count_drop(e))
}

fn esp_only<P: Packet>(
    sa: &mut Sa,
    pkt: &mut P,
    nh: u8,
    iv: Option<&[u8; MAX_IV_LEN]>,
) -> Result<EncapInfo, DropReason> {
    sa.check_hard()?;
    let payload_len = pkt.len();
    let g = Geometry::new(sa.suite(), payload_len);
    // GMAC with ESN borrows 4 octets in front of the ESP header while computing the ICV.
    let scratch = if gmac_esn(sa) { 4 } else { 0 };
    sa.peek_seq_out()?;
    check_room(pkt, scratch + g.hdr, g.trailer)?;
    if !pkt.prepend(scratch + g.hdr) {
        return Err(DropReason::NoHeadroom);
    }
    let seq = seal(sa, pkt, scratch, g, nh, iv)?;
    if !pkt.adj(scratch) {
        return Err(DropReason::EspMalformed);
    }
    Ok(finish(sa, seq, pkt.len(), payload_len))
}

fn tunnel<P: Packet>(
    sa: &mut Sa,
    pkt: &mut P,
    policy: &OuterPolicy,
    iv: Option<&[u8; MAX_IV_LEN]>,
) -> Result<EncapInfo, DropReason> {
    sa.check_hard()?;
    let d = pkt.data();
    let (inner_len, inner_tos, inner_df, nh) = match d.first().map(|b| b >> 4) {
        Some(4) => {
            let ip = Ipv4Packet::new_checked(d)?;
            (
                ip.total_len() as usize,
                ip.tos(),
                Some(ip.dont_frag()),
                ipproto::IPIP,
            )
        }
        Some(6) => {
            let ip = Ipv6Packet::new_checked(d)?;
            (ip.total_len(), ip.traffic_class(), None, ipproto::IPV6)
        }
        Some(_) => return Err(DropReason::Ipv4BadVersion),
        None => return Err(DropReason::Ipv4Truncated),
    };
    let outer_ip = match sa.mode() {
        Mode::Tunnel4 { .. } => IPV4_LEN,
        Mode::Tunnel6 { .. } => IPV6_LEN,
        Mode::Transport => return Err(DropReason::EspModeMismatch),
    };
    let g = Geometry::new(sa.suite(), inner_len);
    let natt = sa.natt();
    let esp = outer_ip + if natt.is_some() { udp::HEADER_LEN } else { 0 };
    let total = esp + g.hdr + inner_len + g.trailer;
    let limit = if outer_ip == IPV6_LEN { IPV6_LEN } else { 0 } + u16::MAX as usize;
    if total > limit {
        return Err(DropReason::EspMalformed);
    }
    sa.peek_seq_out()?;
    let extra = pkt.len() - inner_len; // link-layer padding after the inner packet
    check_room(pkt, esp + g.hdr, g.trailer.saturating_sub(extra))?;
    if !pkt.trim(extra) || !pkt.prepend(esp + g.hdr) {
        return Err(DropReason::NoHeadroom);
    }
    let seq = seal(sa, pkt, esp, g, nh, iv)?;

    let ident = sa.take_ident();
    let b = pkt.data_mut();
    let total = b.len();
    let tos = policy.outer_tos(inner_tos);
    // The outer header from the SA's template (constant fields and their checksum share
    // precomputed); `esp + g.hdr` octets were prepended, so `b` holds it.
    let Some(tpl) = sa.outer_template() else {
        return Err(DropReason::EspModeMismatch);
    };
    let (src, dst) = match sa.mode() {
        Mode::Tunnel4 { .. } => {
            let df = policy.outer_df(inner_df);
            tpl.emit4(b, tos, total as u16, ident, df, policy.ttl);
            (None, None)
        }
        Mode::Tunnel6 { local, remote } => {
            tpl.emit6(b, tos, (total - IPV6_LEN) as u16, policy.ttl);
            (Some(local.octets()), Some(remote.octets()))
        }
        Mode::Transport => return Err(DropReason::EspModeMismatch),
    };
    if let Some(n) = natt {
        let u = &mut b[outer_ip..];
        udp::write_header(u, n.sport, n.dport, (total - outer_ip) as u16);
        if let (Some(s), Some(d)) = (src, dst) {
            udp::fill_checksum_v6(u, &s, &d);
        }
    }
    Ok(finish(sa, seq, total, inner_len))
}

fn transport<P: Packet>(
    sa: &mut Sa,
    pkt: &mut P,
    iv: Option<&[u8; MAX_IV_LEN]>,
) -> Result<EncapInfo, DropReason> {
    sa.check_hard()?;
    let d = pkt.data();
    let (v6, total, ins, nh_field, nh) = match d.first().map(|b| b >> 4) {
        Some(4) => {
            let ip = Ipv4Packet::new_checked(d)?;
            if ip.is_fragment() {
                // Transport mode protects whole datagrams only (RFC 4303 §3.1.1).
                return Err(DropReason::EspMalformed);
            }
            (
                false,
                ip.total_len() as usize,
                ip.header_len(),
                9,
                ip.protocol(),
            )
        }
        Some(6) => {
            let ip = Ipv6Packet::new_checked(d)?;
            let total = ip.total_len();
            let c = v6_chain(&d[..total])?;
            if c.protocol == ipproto::IPV6_FRAG {
                return Err(DropReason::EspMalformed);
            }
            (true, total, c.end, c.nh_field, c.protocol)
        }
        Some(_) => return Err(DropReason::Ipv4BadVersion),
        None => return Err(DropReason::Ipv4Truncated),
    };
    let payload_len = total - ins;
    let g = Geometry::new(sa.suite(), payload_len);
    let natt = sa.natt();
    let udp_len = if natt.is_some() { udp::HEADER_LEN } else { 0 };
    let add = udp_len + g.hdr;
    let new_total = total + add + g.trailer;
    let limit = if v6 { IPV6_LEN } else { 0 } + u16::MAX as usize;
    if new_total > limit {
        return Err(DropReason::EspMalformed);
    }
    sa.peek_seq_out()?;
    let extra = pkt.len() - total;
    check_room(pkt, add, g.trailer.saturating_sub(extra))?;
    if !pkt.trim(extra) || !pkt.prepend(add) {
        return Err(DropReason::NoHeadroom);
    }
    pkt.data_mut().copy_within(add..add + ins, 0);
    let esp = ins + udp_len;
    let seq = seal(sa, pkt, esp, g, nh, iv)?;

    let b = pkt.data_mut();
    b[nh_field] = if natt.is_some() {
        ipproto::UDP
    } else {
        ipproto::ESP
    };
    if v6 {
        put16(b, 4, (new_total - IPV6_LEN) as u16);
    } else {
        let mut ip = Ipv4Packet::new_unchecked(&mut *b);
        ip.set_total_len(new_total as u16);
        ip.fill_checksum();
    }
    if let Some(n) = natt {
        let (src, dst) = if v6 {
            let ip = Ipv6Packet::new_unchecked(&*b);
            (Some(ip.src()), Some(ip.dst()))
        } else {
            (None, None)
        };
        let u = &mut b[ins..];
        udp::write_header(u, n.sport, n.dport, (new_total - ins) as u16);
        if let (Some(s), Some(d)) = (src, dst) {
            udp::fill_checksum_v6(u, &s, &d);
        }
    }
    Ok(finish(sa, seq, new_total, payload_len))
}

#[inline]
fn gmac_esn(sa: &Sa) -> bool {
    sa.esn() && matches!(sa.suite(), super::crypto::Suite::AesGmac(_))
}

#[inline]
fn check_room<P: Packet>(pkt: &P, front: usize, back: usize) -> Result<(), DropReason> {
    if pkt.headroom() < front {
        return Err(DropReason::NoHeadroom);
    }
    if pkt.tailroom() < back {
        return Err(DropReason::NoTailroom);
    }
    Ok(())
}

/// `pkt` holds `esp` octets of headers (the caller's), `g.hdr` octets of room for the ESP
/// header and IV, then the payload to its end. Append the trailer, take a sequence number,
/// write header, IV and trailer, and seal.
fn seal<P: Packet>(
    sa: &mut Sa,
    pkt: &mut P,
    esp: usize,
    g: Geometry,
    nh: u8,
    iv: Option<&[u8; MAX_IV_LEN]>,
) -> Result<u64, DropReason> {
    if !pkt.append(g.trailer) {
        return Err(DropReason::NoTailroom);
    }
    let (ivl, icvl) = (sa.suite().iv_len(), sa.suite().icv_len());
    let len = pkt.len();
    let Some(pad_at) = len
        .checked_sub(icvl + 2 + g.pad)
        .filter(|&p| p >= esp + g.hdr)
    else {
        return Err(DropReason::EspMalformed);
    };
    let seq = sa.take_seq_out()?;
    let b = pkt.data_mut();
    for (i, x) in b[pad_at..pad_at + g.pad].iter_mut().enumerate() {
        *x = (i + 1) as u8;
    }
    b[pad_at + g.pad] = g.pad as u8;
    b[pad_at + g.pad + 1] = nh;
    put32(b, esp, sa.spi());
    put32(b, esp + 4, seq as u32);
    let ivf = &mut b[esp + 8..esp + 8 + ivl];
    match iv {
        Some(v) => ivf.copy_from_slice(&v[..ivl]),
        None => sa.crypto().write_iv(seq, ivf),
    }
    sa.crypto().seal(b, esp, sa.esn_high(seq))?;
    Ok(seq)
}

#[inline]
fn finish(sa: &mut Sa, seq: u64, len: usize, payload_len: usize) -> EncapInfo {
    let c = sa.counters();
    c.out_packets.inc();
    c.out_bytes.add(payload_len as u64);
    let soft_expired = sa.charge(payload_len as u64);
    EncapInfo {
        seq,
        len,
        payload_len,
        soft_expired,
    }
}
