//! ESP decapsulation in place: from the outer IP header ([`decap`]) or from the SPI
//! ([`decap_esp`]) to the inner packet.
//!
//! Order of work per RFC 4303 §3.4: lengths, SPI, replay check (which also infers the ESN high
//! bits), ICV verification (constant time) and decryption, replay window update (only now, so
//! forged packets never move it), padding check (1, 2, 3...), next header against the SA's
//! mode, then strip. Tunnel mode folds the outer ECN into the inner header (RFC 6040) and
//! fixes the inner IPv4 checksum; transport mode closes the gap where ESP was and fixes the
//! IP header. Every failure is a [`DropReason`]; all offsets are checked before use.

use super::layout::v6_chain;
use super::sa::{Mode, Sa};
use crate::outer::ecn_decap;
use crate::packet::Packet;
use crate::stats::DropReason;
use crate::wire::checksum;
use crate::wire::ipv6::HEADER_LEN as IPV6_LEN;
use crate::wire::{be16, ipproto, put16, udp, Ipv4Packet, Ipv6Packet, UdpPacket};

/// IP version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpFamily {
    V4,
    V6,
}

/// What one decapsulation produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecapInfo {
    /// Family of the IP header the packet now starts with: the inner header in tunnel mode,
    /// the (fixed-up) original header in transport mode. `None` after [`decap_esp`] in
    /// transport mode, where the packet starts at the upper-layer payload.
    pub family: Option<IpFamily>,
    /// The ESP Next Header field (4 or 41 in tunnel mode; the upper-layer protocol otherwise).
    pub next_header: u8,
    /// Full sequence number (with the inferred high bits under ESN).
    pub seq: u64,
    /// Protected payload length: the inner packet (tunnel) or upper-layer payload (transport).
    pub payload_len: usize,
    /// This packet crossed the SA's soft lifetime (reported once per SA).
    pub soft_expired: bool,
}

/// Decapsulate the ESP packet in `pkt`, which starts at its outer IPv4/IPv6 header (ESP
/// directly or UDP-encapsulated). Errors are counted on the SA.
pub fn decap<P: Packet>(sa: &mut Sa, pkt: &mut P) -> Result<DecapInfo, DropReason> {
    from_ip(sa, pkt).map_err(|e| sa.count_drop(e))
}

/// Decapsulate an ESP packet that starts at the SPI. In tunnel mode the result starts at the
/// inner IP header (no outer header, so no ECN folding); in transport mode it starts at the
/// upper-layer payload. Errors are counted on the SA.
pub fn decap_esp<P: Packet>(sa: &mut Sa, pkt: &mut P) -> Result<DecapInfo, DropReason> {
    from_esp(sa, pkt).map_err(|e| sa.count_drop(e))
}

/// Where the payload of an opened ESP packet is.
struct Opened {
    seq: u64,
    nh: u8,
    /// First payload octet (after the IV).
    start: usize,
    /// End of the payload (start of the padding).
    end: usize,
}

fn from_esp<P: Packet>(sa: &mut Sa, pkt: &mut P) -> Result<DecapInfo, DropReason> {
    sa.check_hard()?;
    // GMAC with ESN borrows 4 octets in front of the ESP header while checking the ICV.
    let scratch = if sa.esn() && matches!(sa.suite(), super::crypto::Suite::AesGmac(_)) {
        4
    } else {
        0
    };
    if !pkt.prepend(scratch) {
        return Err(DropReason::NoHeadroom);
    }
    let o = open(sa, pkt.data_mut(), scratch)?;
    check_next_header(sa, o.nh)?;
    let family = if sa.mode().is_tunnel() {
        Some(strip_to_inner(pkt, &o, None)?)
    } else {
        shrink(pkt, o.start, o.end)?;
        None
    };
    let n = pkt.len();
    Ok(finish(sa, &o, family, n))
}

fn from_ip<P: Packet>(sa: &mut Sa, pkt: &mut P) -> Result<DecapInfo, DropReason> {
    sa.check_hard()?;
    let d = pkt.data();
    let (family, total, off, proto, outer_tos, nh_field) = match d.first().map(|b| b >> 4) {
        Some(4) => {
            let ip = Ipv4Packet::new_checked(d)?;
            if ip.is_fragment() {
                return Err(DropReason::Ipv4Fragment);
            }
            let t = ip.total_len() as usize;
            (IpFamily::V4, t, ip.header_len(), ip.protocol(), ip.tos(), 9)
        }
        Some(6) => {
            let ip = Ipv6Packet::new_checked(d)?;
            let t = ip.total_len();
            let c = v6_chain(&d[..t])?;
            (
                IpFamily::V6,
                t,
                c.end,
                c.protocol,
                ip.traffic_class(),
                c.nh_field,
            )
        }
        _ => return Err(DropReason::EspMalformed),
    };
    if !pkt.trim(pkt.len() - total) {
        return Err(DropReason::EspMalformed);
    }
    let esp = match proto {
        ipproto::ESP => off,
        ipproto::UDP => natt_esp(pkt.data(), off)?,
        _ => return Err(DropReason::EspMalformed),
    };
    let o = open(sa, pkt.data_mut(), esp)?;
    check_next_header(sa, o.nh)?;
    let family = if sa.mode().is_tunnel() {
        strip_to_inner(pkt, &o, Some(outer_tos))?
    } else {
        // Close the gap [off, o.start) (UDP, ESP header, IV) by moving the IP header up.
        let b = pkt.data_mut();
        b.copy_within(0..off, o.start - off);
        let new_len = off + (o.end - o.start);
        shrink(pkt, o.start - off, o.end)?;
        let b = pkt.data_mut();
        b[nh_field] = o.nh;
        match family {
            IpFamily::V4 => {
                let mut ip = Ipv4Packet::new_unchecked(&mut *b);
                ip.set_total_len(new_len as u16);
                ip.fill_checksum();
            }
            IpFamily::V6 => put16(b, 4, (new_len - IPV6_LEN) as u16),
        }
        family
    };
    let n = if sa.mode().is_tunnel() {
        pkt.len()
    } else {
        o.end - o.start
    };
    Ok(finish(sa, &o, Some(family), n))
}

/// Offset of ESP inside the UDP datagram at `off` (RFC 3948), or `NattBadHeader` for a bad
/// UDP header, a NAT keepalive or an IKE packet (non-ESP marker: SPI 0).
fn natt_esp(b: &[u8], off: usize) -> Result<usize, DropReason> {
    let rest = b.get(off..).ok_or(DropReason::NattBadHeader)?;
    let u = UdpPacket::new_checked(rest).map_err(|_| DropReason::NattBadHeader)?;
    if u.len() as usize != rest.len() {
        return Err(DropReason::NattBadHeader);
    }
    let esp = off + udp::HEADER_LEN;
    match b.get(esp..esp + 4) {
        Some(spi) if spi != [0, 0, 0, 0] => Ok(esp),
        _ => Err(DropReason::NattBadHeader),
    }
}

/// Check lengths and SPI, run the replay check, verify and decrypt, update the window, and
/// check the padding. `b[esp..]` is the ESP packet to its last ICV octet. Inlined: its
/// result came back through the stack and stalled the reload (store forwarding).
#[inline(always)]
fn open(sa: &mut Sa, b: &mut [u8], esp: usize) -> Result<Opened, DropReason> {
    let suite = sa.suite();
    let start = esp + 8 + suite.iv_len();
    let icv = suite.icv_len();
    if b.len() < start + 2 + icv {
        return Err(DropReason::EspMalformed);
    }
    let spi = u32::from_be_bytes([b[esp], b[esp + 1], b[esp + 2], b[esp + 3]]);
    if spi != sa.spi() {
        return Err(DropReason::EspNoSa);
    }
    let seq_low = u32::from_be_bytes([b[esp + 4], b[esp + 5], b[esp + 6], b[esp + 7]]);
    let seq = sa.replay().check(seq_low)?;
    sa.crypto().open(b, esp, sa.esn_high(seq))?;
    sa.replay_mut().update(seq);

    let ct_end = b.len() - icv;
    let nh = b[ct_end - 1];
    let pad_len = b[ct_end - 2] as usize;
    if start + pad_len + 2 > ct_end {
        return Err(DropReason::EspBadPadding);
    }
    let end = ct_end - 2 - pad_len;
    let monotonic = b[end..ct_end - 2]
        .iter()
        .enumerate()
        .all(|(i, &x)| x as usize == i + 1);
    if !monotonic {
        return Err(DropReason::EspBadPadding);
    }
    Ok(Opened {
        seq,
        nh,
        start,
        end,
    })
}

/// Next header against the SA's mode. 59 (no next header) marks a dummy packet (RFC 4303
/// §2.6), which is authenticated but carries nothing.
fn check_next_header(sa: &Sa, nh: u8) -> Result<(), DropReason> {
    match (sa.mode(), nh) {
        (_, ipproto::IPV6_NONXT) | (Mode::Transport, ipproto::HOPOPT) => {
            Err(DropReason::EspBadNextHeader)
        }
        (Mode::Transport, _) | (_, ipproto::IPIP) | (_, ipproto::IPV6) => Ok(()),
        _ => Err(DropReason::EspModeMismatch),
    }
}

/// Keep only `[start, end)` of the packet.
fn shrink<P: Packet>(pkt: &mut P, start: usize, end: usize) -> Result<(), DropReason> {
    let tail = pkt.len().saturating_sub(end);
    if end < start || !pkt.trim(tail) || !pkt.adj(start) {
        return Err(DropReason::EspMalformed);
    }
    Ok(())
}

/// Tunnel mode: validate the inner header the next header announced, fold the outer ECN in,
/// and keep only the inner packet (dropping any TFC padding after it).
fn strip_to_inner<P: Packet>(
    pkt: &mut P,
    o: &Opened,
    outer_tos: Option<u8>,
) -> Result<IpFamily, DropReason> {
    let inner = pkt
        .data_mut()
        .get_mut(o.start..o.end)
        .ok_or(DropReason::EspMalformed)?;
    let version = inner
        .first()
        .map(|v| v >> 4)
        .ok_or(DropReason::InnerTruncated)?;
    let (family, len) = match (o.nh, version) {
        (ipproto::IPIP, 4) => {
            let mut ip = Ipv4Packet::new_checked(&mut *inner)?;
            if let Some(ot) = outer_tos {
                let tos = ip.tos();
                let new = ecn_decap(tos, ot)?;
                if new != tos {
                    let b = ip.into_inner();
                    let old_word = be16(b, 0);
                    b[1] = new;
                    let c = checksum::update16(be16(b, 10), old_word, be16(b, 0));
                    put16(b, 10, c);
                    ip = Ipv4Packet::new_unchecked(b);
                }
            }
            (IpFamily::V4, ip.total_len() as usize)
        }
        (ipproto::IPV6, 6) => {
            let mut ip = Ipv6Packet::new_checked(&mut *inner)?;
            if let Some(ot) = outer_tos {
                let tc = ip.traffic_class();
                let new = ecn_decap(tc, ot)?;
                if new != tc {
                    ip.set_traffic_class(new);
                }
            }
            (IpFamily::V6, ip.total_len())
        }
        _ => return Err(DropReason::IpipBadInner),
    };
    shrink(pkt, o.start, o.start + len)?;
    Ok(family)
}

#[inline]
fn finish(sa: &mut Sa, o: &Opened, family: Option<IpFamily>, payload_len: usize) -> DecapInfo {
    let c = sa.counters();
    c.in_packets.inc();
    c.in_bytes.add(payload_len as u64);
    let soft_expired = sa.charge(payload_len as u64);
    DecapInfo {
        family,
        next_header: o.nh,
        seq: o.seq,
        payload_len,
        soft_expired,
    }
}
