//! IPv4 headers (RFC 791). Options are skipped, not interpreted: `header_len()` covers them and
//! `payload()` starts after them.

use super::checksum;
use super::{be16, put16};
use crate::stats::DropReason;
use std::net::Ipv4Addr;

/// Length of an IPv4 header without options.
pub const MIN_HEADER_LEN: usize = 20;
/// Don't Fragment flag in the flags/fragment-offset word.
pub const FLAG_DF: u16 = 0x4000;
/// More Fragments flag.
pub const FLAG_MF: u16 = 0x2000;
/// Fragment offset mask (in 8-byte units).
pub const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// View of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wrap without checks.
    #[inline(always)]
    pub fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wrap after checking version, IHL and total length against the buffer. The buffer may be
    /// longer than the packet (Ethernet padding); `total_len()` is the packet's own length.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(DropReason::Ipv4Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(DropReason::Ipv4BadVersion);
        }
        let hl = ((b[0] & 0x0f) as usize) * 4;
        if hl < MIN_HEADER_LEN || hl > b.len() {
            return Err(DropReason::Ipv4BadIhl);
        }
        let tl = be16(b, 2) as usize;
        if tl < hl || tl > b.len() {
            return Err(DropReason::Ipv4BadTotalLength);
        }
        Ok(Ipv4Packet { buffer })
    }

    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }
    /// Header length in bytes, options included.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        ((self.buffer.as_ref()[0] & 0x0f) as usize) * 4
    }
    /// DSCP and ECN byte (the old TOS).
    #[inline(always)]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[1]
    }
    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }
    #[inline(always)]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }
    /// Flags and fragment offset word.
    #[inline(always)]
    pub fn frag_word(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }
    #[inline(always)]
    pub fn dont_frag(&self) -> bool {
        self.frag_word() & FLAG_DF != 0
    }
    #[inline(always)]
    pub fn more_frags(&self) -> bool {
        self.frag_word() & FLAG_MF != 0
    }
    /// Fragment offset in bytes.
    #[inline(always)]
    pub fn frag_offset(&self) -> usize {
        ((self.frag_word() & FRAG_OFFSET_MASK) as usize) * 8
    }
    /// True for any fragment (first or later).
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        self.frag_word() & (FLAG_MF | FRAG_OFFSET_MASK) != 0
    }
    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[8]
    }
    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[9]
    }
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 10)
    }
    #[inline(always)]
    pub fn src(&self) -> [u8; 4] {
        let b = self.buffer.as_ref();
        [b[12], b[13], b[14], b[15]]
    }
    #[inline(always)]
    pub fn dst(&self) -> [u8; 4] {
        let b = self.buffer.as_ref();
        [b[16], b[17], b[18], b[19]]
    }
    #[inline(always)]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.src())
    }
    #[inline(always)]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.dst())
    }
    /// True when the header checksum verifies.
    #[inline(always)]
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(&self.buffer.as_ref()[..self.header_len()]) == 0
    }
    /// The payload up to `total_len` (Ethernet padding excluded).
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len() as usize]
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Decrement the TTL and patch the checksum incrementally (RFC 1624). Caller checked TTL > 1.
    /// Always inlined: it is on every forwarded packet's path, and out of line it cost a
    /// call and the header's reload.
    #[inline(always)]
    pub fn decrement_ttl(&mut self) {
        let b = self.buffer.as_mut();
        let old = be16(b, 8);
        b[8] = b[8].wrapping_sub(1);
        let new = be16(b, 8);
        let c = checksum::update16(be16(b, 10), old, new);
        put16(b, 10, c);
    }
    #[inline(always)]
    pub fn set_tos(&mut self, tos: u8) {
        self.buffer.as_mut()[1] = tos;
    }
    #[inline(always)]
    pub fn set_total_len(&mut self, len: u16) {
        put16(self.buffer.as_mut(), 2, len)
    }
    #[inline(always)]
    pub fn set_ident(&mut self, id: u16) {
        put16(self.buffer.as_mut(), 4, id)
    }
    #[inline(always)]
    pub fn set_frag_word(&mut self, w: u16) {
        put16(self.buffer.as_mut(), 6, w)
    }
    #[inline(always)]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[8] = ttl;
    }
    #[inline(always)]
    pub fn set_protocol(&mut self, p: u8) {
        self.buffer.as_mut()[9] = p;
    }
    #[inline(always)]
    pub fn set_src(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[12..16].copy_from_slice(&a);
    }
    #[inline(always)]
    pub fn set_dst(&mut self, a: [u8; 4]) {
        self.buffer.as_mut()[16..20].copy_from_slice(&a);
    }
    /// Recompute the header checksum from scratch.
    #[inline(always)]
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.buffer.as_mut();
        put16(b, 10, 0);
        let c = checksum::checksum(&b[..hl]);
        put16(b, 10, c);
    }
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (hl, tl) = (self.header_len(), self.total_len() as usize);
        &mut self.buffer.as_mut()[hl..tl]
    }
}

/// The fields of an option-less IPv4 header we emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src: [u8; 4],
    pub dst: [u8; 4],
    pub protocol: u8,
    pub tos: u8,
    pub ttl: u8,
    /// Identification field.
    pub ident: u16,
    pub dont_frag: bool,
    /// Payload length (header excluded).
    pub payload_len: u16,
}

impl Ipv4Repr {
    /// Write a 20-byte header with checksum at the start of `b` (callers make room for it; a
    /// shorter `b` is left as it is).
    ///
    /// The checksum is summed from the fields, not read back from `b`: the header usually
    /// lands in a buffer's headroom, and loading the bytes just stored there one by one
    /// stalls on store forwarding (it was a sixth of the encap cost).
    #[inline]
    pub fn emit(&self, b: &mut [u8]) {
        let total = self.payload_len.wrapping_add(MIN_HEADER_LEN as u16);
        let flags = if self.dont_frag { FLAG_DF } else { 0 };
        let acc = 0x4500u32
            + self.tos as u32
            + total as u32
            + self.ident as u32
            + flags as u32
            + u16::from_be_bytes([self.ttl, self.protocol]) as u32
            + checksum::pseudo_v4(self.src, self.dst, 0, 0);
        let Some(h) = b.first_chunk_mut::<MIN_HEADER_LEN>() else {
            return;
        };
        h[0] = 0x45;
        h[1] = self.tos;
        h[2..4].copy_from_slice(&total.to_be_bytes());
        h[4..6].copy_from_slice(&self.ident.to_be_bytes());
        h[6..8].copy_from_slice(&flags.to_be_bytes());
        h[8] = self.ttl;
        h[9] = self.protocol;
        h[10..12].copy_from_slice(&checksum::finish(acc).to_be_bytes());
        h[12..16].copy_from_slice(&self.src);
        h[16..20].copy_from_slice(&self.dst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr() -> Vec<u8> {
        let mut b = vec![0u8; 28];
        Ipv4Repr {
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
            protocol: 17,
            tos: 0,
            ttl: 64,
            ident: 7,
            dont_frag: true,
            payload_len: 8,
        }
        .emit(&mut b);
        b
    }

    #[test]
    fn emit_then_parse() {
        let b = hdr();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert_eq!(
            (p.ttl(), p.protocol(), p.total_len(), p.header_len()),
            (64, 17, 28, 20)
        );
        assert!(p.dont_frag() && !p.is_fragment());
        assert_eq!(p.payload().len(), 8);
        let e = etherparse::Ipv4HeaderSlice::from_slice(&b).unwrap();
        assert_eq!(e.ttl(), 64);
        assert_eq!(e.header_checksum(), p.checksum());
    }

    #[test]
    fn malformed_is_classified() {
        let b = hdr();
        assert_eq!(
            Ipv4Packet::new_checked(&b[..19]).unwrap_err(),
            DropReason::Ipv4Truncated
        );
        let mut v = b.clone();
        v[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            DropReason::Ipv4BadVersion
        );
        let mut v = b.clone();
        v[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            DropReason::Ipv4BadIhl
        );
        let mut v = b.clone();
        v[0] = 0x4f; // 60-byte header in a 28-byte buffer
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            DropReason::Ipv4BadIhl
        );
        let mut v = b.clone();
        v[2..4].copy_from_slice(&29u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            DropReason::Ipv4BadTotalLength
        );
        let mut v = b;
        v[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&v[..]).unwrap_err(),
            DropReason::Ipv4BadTotalLength
        );
    }

    #[test]
    fn ttl_decrement_keeps_checksum_valid() {
        let mut b = hdr();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.decrement_ttl();
        assert_eq!(p.ttl(), 63);
        assert!(p.verify_checksum());
    }
}
