//! UDP headers (RFC 768) and their checksum over IPv4 and IPv6 pseudo-headers.

use super::checksum;
use super::{be16, put16};
use crate::stats::DropReason;

/// Length of a UDP header.
pub const HEADER_LEN: usize = 8;

/// View of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    #[inline(always)]
    pub fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }
    /// Wrap after checking the header fits and the length field is within the buffer.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::UdpTruncated);
        }
        let l = be16(b, 4) as usize;
        if l < HEADER_LEN || l > b.len() {
            return Err(DropReason::UdpBadLength);
        }
        Ok(UdpPacket { buffer })
    }
    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }
    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }
    #[inline(always)]
    pub fn len(&self) -> u16 {
        be16(self.buffer.as_ref(), 4)
    }
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len() as usize == HEADER_LEN
    }
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), 6)
    }
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len() as usize]
    }
    /// Verify over IPv4 (a zero checksum means "not computed" and passes). The zero test
    /// is inlined into the tunnel decap path, where it is the common case; the sum is not.
    #[inline(always)]
    pub fn verify_v4(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        self.checksum() == 0 || self.verify_v4_sum(src, dst)
    }
    #[inline(never)]
    fn verify_v4_sum(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        let d = &self.buffer.as_ref()[..self.len() as usize];
        checksum::finish(checksum::sum(
            d,
            checksum::pseudo_v4(src, dst, 17, self.len()),
        )) == 0
    }
    /// Verify over IPv6 (zero is invalid unless the caller allows it per RFC 6936).
    pub fn verify_v6(&self, src: &[u8; 16], dst: &[u8; 16], allow_zero: bool) -> bool {
        if self.checksum() == 0 {
            return allow_zero;
        }
        let d = &self.buffer.as_ref()[..self.len() as usize];
        let ps = checksum::pseudo_v6(src, dst, 17, self.len() as u32);
        checksum::finish(checksum::sum(d, ps)) == 0
    }
}

/// Write a UDP header at the start of `b` with checksum 0.
#[inline(always)]
pub fn write_header(b: &mut [u8], sport: u16, dport: u16, len: u16) {
    put16(b, 0, sport);
    put16(b, 2, dport);
    put16(b, 4, len);
    put16(b, 6, 0);
}

/// Compute and store the checksum of the datagram in `b` (header + payload, exactly `len`
/// bytes) over an IPv4 pseudo-header.
pub fn fill_checksum_v4(b: &mut [u8], src: [u8; 4], dst: [u8; 4]) {
    let len = b.len() as u16;
    put16(b, 6, 0);
    let mut c = checksum::finish(checksum::sum(b, checksum::pseudo_v4(src, dst, 17, len)));
    if c == 0 {
        c = 0xffff; // RFC 768: a computed zero is sent as all ones
    }
    put16(b, 6, c);
}

/// Same over an IPv6 pseudo-header (mandatory for IPv6 unless RFC 6935 zero-checksum applies).
pub fn fill_checksum_v6(b: &mut [u8], src: &[u8; 16], dst: &[u8; 16]) {
    let len = b.len() as u32;
    put16(b, 6, 0);
    let mut c = checksum::finish(checksum::sum(b, checksum::pseudo_v6(src, dst, 17, len)));
    if c == 0 {
        c = 0xffff;
    }
    put16(b, 6, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_etherparse() {
        let payload = b"hello ferrogate";
        let mut d = vec![0u8; HEADER_LEN + payload.len()];
        let n = d.len() as u16;
        write_header(&mut d, 1234, 4789, n);
        d[HEADER_LEN..].copy_from_slice(payload);
        let (s4, d4) = ([192, 0, 2, 1], [198, 51, 100, 7]);
        fill_checksum_v4(&mut d, s4, d4);
        let h = etherparse::UdpHeader::with_ipv4_checksum(
            1234,
            4789,
            &etherparse::Ipv4Header::new(d.len() as u16, 64, etherparse::IpNumber::UDP, s4, d4)
                .unwrap(),
            payload,
        )
        .unwrap();
        assert_eq!(h.checksum, be16(&d, 6));
        assert!(UdpPacket::new_checked(&d[..]).unwrap().verify_v4(s4, d4));

        let (s6, d6) = ([0x20u8; 16], [0xfeu8; 16]);
        fill_checksum_v6(&mut d, &s6, &d6);
        let h6 = etherparse::UdpHeader::with_ipv6_checksum(
            1234,
            4789,
            &etherparse::Ipv6Header {
                traffic_class: 0,
                flow_label: Default::default(),
                payload_length: d.len() as u16,
                next_header: etherparse::IpNumber::UDP,
                hop_limit: 64,
                source: s6,
                destination: d6,
            },
            payload,
        )
        .unwrap();
        assert_eq!(h6.checksum, be16(&d, 6));
        assert!(UdpPacket::new_checked(&d[..])
            .unwrap()
            .verify_v6(&s6, &d6, false));
    }

    #[test]
    fn a_computed_zero_is_sent_as_all_ones_over_ipv6() {
        // Two payload bytes set to the checksum of the rest make the sum all ones, i.e. a
        // computed checksum of 0, which must go out as 0xffff (0 means "none").
        let (s6, d6) = ([0x20u8; 16], [0xfeu8; 16]);
        let mut d = vec![0u8; HEADER_LEN + 10];
        write_header(&mut d, 1234, 4789, (HEADER_LEN + 10) as u16);
        fill_checksum_v6(&mut d, &s6, &d6);
        let c = be16(&d, 6);
        put16(&mut d, HEADER_LEN, c);
        fill_checksum_v6(&mut d, &s6, &d6);
        assert_eq!(be16(&d, 6), 0xffff);
        assert!(UdpPacket::new_checked(&d[..])
            .unwrap()
            .verify_v6(&s6, &d6, false));
    }

    #[test]
    fn malformed_is_classified() {
        let mut d = [0u8; 12];
        write_header(&mut d, 1, 2, 13);
        assert_eq!(
            UdpPacket::new_checked(&d[..]).unwrap_err(),
            DropReason::UdpBadLength
        );
        write_header(&mut d, 1, 2, 7);
        assert_eq!(
            UdpPacket::new_checked(&d[..]).unwrap_err(),
            DropReason::UdpBadLength
        );
        assert_eq!(
            UdpPacket::new_checked(&d[..7]).unwrap_err(),
            DropReason::UdpTruncated
        );
    }
}
