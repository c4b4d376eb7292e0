//! IPv6 headers (RFC 8200) and the walk over extension headers to the upper-layer protocol.

use super::ipproto;
use super::{be16, put16};
use crate::stats::DropReason;
use std::net::Ipv6Addr;

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// Length of a Fragment extension header.
pub const FRAG_HEADER_LEN: usize = 8;
/// The minimum link MTU every IPv6 path carries (RFC 8200 §5).
pub const MIN_MTU: usize = 1280;
/// Bounds the extension-header walk so a hostile chain costs a fixed amount of work.
const MAX_EXT_HEADERS: usize = 8;

/// View of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// Where the upper-layer header of an IPv6 packet is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpperLayer {
    /// Upper-layer protocol (e.g. 6, 17, 50, 58); 59 when there is none.
    pub protocol: u8,
    /// Offset of the upper-layer header from the start of the IPv6 header.
    pub offset: usize,
    /// A Fragment header was present with a non-zero offset (ports are not in this packet).
    pub non_first_fragment: bool,
    /// A Fragment header was present.
    pub fragment: bool,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    #[inline(always)]
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wrap after checking version and that the payload length fits in the buffer.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::Ipv6Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(DropReason::Ipv6BadVersion);
        }
        if HEADER_LEN + be16(b, 4) as usize > b.len() {
            return Err(DropReason::Ipv6BadPayloadLength);
        }
        Ok(Ipv6Packet { buffer })
    }

    /// Traffic class (DSCP and ECN).
    #[inline(always)]
    pub fn traffic_class(&self) -> u8 {
        let b = self.buffer.as_ref();
        (b[0] << 4) | (b[1] >> 4)
    }
    #[inline(always)]
    pub fn flow_label(&self) -> u32 {
        let b = self.buffer.as_ref();
        (((b[1] & 0x0f) as u32) << 16) | ((b[2] as u32) << 8) | b[3] as u32
    }
    #[inline(always)]
    pub fn payload_len(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }
    /// Whole packet length (fixed header plus payload).
    #[inline(always)]
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len() as usize
    }
    #[inline(always)]
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[6]
    }
    #[inline(always)]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[7]
    }
    #[inline(always)]
    pub fn src(&self) -> [u8; 16] {
        self.buffer.as_ref()[8..24].try_into().unwrap_or([0; 16])
    }
    #[inline(always)]
    pub fn dst(&self) -> [u8; 16] {
        self.buffer.as_ref()[24..40].try_into().unwrap_or([0; 16])
    }
    #[inline(always)]
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.src())
    }
    #[inline(always)]
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.dst())
    }
    /// Payload after the fixed header, up to the payload length.
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.total_len()]
    }

    /// Walk Hop-by-Hop, Routing, Fragment and Destination Options headers to the upper layer.
    /// ESP (50) and AH (51) end the walk: they are what we process next.
    pub fn upper_layer(&self) -> Result<UpperLayer, DropReason> {
        let b = &self.buffer.as_ref()[..self.total_len()];
        let mut nh = self.next_header();
        let mut off = HEADER_LEN;
        let mut ul = UpperLayer {
            protocol: nh,
            offset: off,
            non_first_fragment: false,
            fragment: false,
        };
        for _ in 0..MAX_EXT_HEADERS {
            match nh {
                ipproto::HOPOPT | ipproto::IPV6_ROUTE | ipproto::IPV6_OPTS => {
                    if off + 2 > b.len() {
                        return Err(DropReason::Ipv6BadExtHeader);
                    }
                    let len = (b[off + 1] as usize + 1) * 8;
                    if off + len > b.len() {
                        return Err(DropReason::Ipv6BadExtHeader);
                    }
                    nh = b[off];
                    off += len;
                }
                ipproto::IPV6_FRAG => {
                    if off + FRAG_HEADER_LEN > b.len() {
                        return Err(DropReason::Ipv6BadExtHeader);
                    }
                    ul.fragment = true;
                    ul.non_first_fragment = be16(b, off + 2) & 0xfff8 != 0;
                    nh = b[off];
                    off += FRAG_HEADER_LEN;
                    if ul.non_first_fragment {
                        // The rest is payload of a later fragment, not headers.
                        ul.protocol = nh;
                        ul.offset = off;
                        return Ok(ul);
                    }
                }
                _ => {
                    ul.protocol = nh;
                    ul.offset = off;
                    return Ok(ul);
                }
            }
        }
        Err(DropReason::Ipv6BadExtHeader)
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    #[inline(always)]
    pub fn set_hop_limit(&mut self, h: u8) {
        self.buffer.as_mut()[7] = h;
    }
    #[inline(always)]
    pub fn set_payload_len(&mut self, l: u16) {
        put16(self.buffer.as_mut(), 4, l)
    }
    #[inline(always)]
    pub fn set_next_header(&mut self, nh: u8) {
        self.buffer.as_mut()[6] = nh;
    }
    #[inline(always)]
    pub fn set_traffic_class(&mut self, tc: u8) {
        let b = self.buffer.as_mut();
        b[0] = 0x60 | (tc >> 4);
        b[1] = (b[1] & 0x0f) | (tc << 4);
    }
    #[inline(always)]
    pub fn set_src(&mut self, a: [u8; 16]) {
        self.buffer.as_mut()[8..24].copy_from_slice(&a);
    }
    #[inline(always)]
    pub fn set_dst(&mut self, a: [u8; 16]) {
        self.buffer.as_mut()[24..40].copy_from_slice(&a);
    }
}

/// The fields of a fixed IPv6 header we emit (no extension headers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub next_header: u8,
    pub traffic_class: u8,
    pub flow_label: u32,
    pub hop_limit: u8,
    pub payload_len: u16,
}

impl Ipv6Repr {
    /// Write the 40-byte header at the start of `b`.
    #[inline(always)]
    pub fn emit(&self, b: &mut [u8]) {
        let w = 0x6000_0000u32 | ((self.traffic_class as u32) << 20) | (self.flow_label & 0xfffff);
        b[0..4].copy_from_slice(&w.to_be_bytes());
        put16(b, 4, self.payload_len);
        b[6] = self.next_header;
        b[7] = self.hop_limit;
        b[8..24].copy_from_slice(&self.src);
        b[24..40].copy_from_slice(&self.dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(nh: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN];
        Ipv6Repr {
            src: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            dst: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            next_header: nh,
            traffic_class: 0xb8,
            flow_label: 0x12345,
            hop_limit: 64,
            payload_len: payload.len() as u16,
        }
        .emit(&mut b);
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn emit_then_parse() {
        let b = pkt(17, &[0; 8]);
        let p = Ipv6Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            (p.traffic_class(), p.flow_label(), p.hop_limit()),
            (0xb8, 0x12345, 64)
        );
        let e = etherparse::Ipv6HeaderSlice::from_slice(&b).unwrap();
        assert_eq!(e.traffic_class(), 0xb8);
        assert_eq!(p.upper_layer().unwrap().protocol, 17);
    }

    #[test]
    fn malformed_is_classified() {
        let b = pkt(17, &[0; 8]);
        assert_eq!(
            Ipv6Packet::new_checked(&b[..39]).unwrap_err(),
            DropReason::Ipv6Truncated
        );
        assert_eq!(
            Ipv6Packet::new_checked(&b[..47]).unwrap_err(),
            DropReason::Ipv6BadPayloadLength
        );
        let mut v = b;
        v[0] = 0x40;
        assert_eq!(
            Ipv6Packet::new_checked(&v[..]).unwrap_err(),
            DropReason::Ipv6BadVersion
        );
    }

    #[test]
    fn ext_header_walk() {
        // Hop-by-hop (8 bytes) -> Fragment (first, offset 0) -> UDP.
        let mut ext = vec![ipproto::IPV6_FRAG, 0, 0, 0, 0, 0, 0, 0];
        ext.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 9]);
        ext.extend_from_slice(&[0; 8]);
        let b = pkt(ipproto::HOPOPT, &ext);
        let ul = Ipv6Packet::new_checked(&b[..])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert_eq!(
            (ul.protocol, ul.offset, ul.fragment, ul.non_first_fragment),
            (17, 56, true, false)
        );
        // Non-first fragment: walk stops there.
        let mut ext2 = ext.clone();
        ext2[10..12].copy_from_slice(&0x0010u16.to_be_bytes());
        let b = pkt(ipproto::HOPOPT, &ext2);
        let ul = Ipv6Packet::new_checked(&b[..])
            .unwrap()
            .upper_layer()
            .unwrap();
        assert!(ul.non_first_fragment);
        // Extension header claiming more than the packet holds.
        let b = pkt(ipproto::IPV6_OPTS, &[17, 5, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            Ipv6Packet::new_checked(&b[..])
                .unwrap()
                .upper_layer()
                .unwrap_err(),
            DropReason::Ipv6BadExtHeader
        );
        // Truncated inside the 2 bytes we must read.
        let b = pkt(ipproto::IPV6_OPTS, &[17]);
        assert_eq!(
            Ipv6Packet::new_checked(&b[..])
                .unwrap()
                .upper_layer()
                .unwrap_err(),
            DropReason::Ipv6BadExtHeader
        );
    }
}
