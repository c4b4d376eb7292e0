//! VXLAN Generic Protocol Extension headers (draft-ietf-nvo3-vxlan-gpe), carried in UDP to
//! port 4790.
//!
//! ```text
//! |R|R|Ver|I|P|B|O|       Reserved                |Next Protocol  |
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! ```
//!
//! Version must be 0 and the I flag set. With the P bit clear there is no next-protocol field
//! and the payload is an Ethernet frame, as in VXLAN (the draft's compatibility rule). The O
//! bit marks an OAM packet: the view reads it, but `VxlanGpeRepr::parse` (the data path's
//! parse) refuses it with `VxlanGpeOam`, as it refuses next protocols other than IPv4, IPv6
//! and Ethernet (NSH, MPLS, ...) with `VxlanGpeBadNextProtocol`. The B bit and reserved bits
//! are ignored.

use super::{be32, put32};
use crate::stats::DropReason;

/// Length of the VXLAN-GPE header.
pub const HEADER_LEN: usize = 8;
/// IANA UDP port.
pub const UDP_PORT: u16 = 4790;
/// Instance (valid VNI) flag.
pub const FLAG_I: u8 = 0x08;
/// Next-protocol field present.
pub const FLAG_P: u8 = 0x04;
/// BUM traffic flag (informational; ignored).
pub const FLAG_B: u8 = 0x02;
/// OAM flag.
pub const FLAG_O: u8 = 0x01;
/// Largest VNI (24 bits).
pub const VNI_MAX: u32 = 0xff_ffff;

/// Next Protocol values.
pub mod next_protocol {
    pub const IPV4: u8 = 1;
    pub const IPV6: u8 = 2;
    pub const ETHERNET: u8 = 3;
    pub const NSH: u8 = 4;
}

/// View of a VXLAN-GPE packet.
#[derive(Debug, Clone)]
pub struct VxlanGpePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanGpePacket<T> {
    #[inline(always)]
    pub fn new_unchecked(buffer: T) -> Self {
        VxlanGpePacket { buffer }
    }

    /// Wrap after checking the header fits, the version is 0 and the I flag is set.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::VxlanTruncated);
        }
        if (b[0] >> 4) & 0x3 != 0 {
            return Err(DropReason::VxlanGpeBadVersion);
        }
        if b[0] & FLAG_I == 0 {
            return Err(DropReason::VxlanIFlagClear);
        }
        Ok(VxlanGpePacket { buffer })
    }

    #[inline(always)]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[0]
    }
    #[inline(always)]
    pub fn version(&self) -> u8 {
        (self.flags() >> 4) & 0x3
    }
    #[inline(always)]
    pub fn next_protocol_present(&self) -> bool {
        self.flags() & FLAG_P != 0
    }
    #[inline(always)]
    pub fn oam(&self) -> bool {
        self.flags() & FLAG_O != 0
    }
    /// The next-protocol field; Ethernet when the P bit is clear.
    #[inline(always)]
    pub fn next_protocol(&self) -> u8 {
        if self.next_protocol_present() {
            self.buffer.as_ref()[3]
        } else {
            next_protocol::ETHERNET
        }
    }
    #[inline(always)]
    pub fn vni(&self) -> u32 {
        be32(self.buffer.as_ref(), 4) >> 8
    }
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanGpePacket<T> {
    #[inline(always)]
    pub fn set_vni(&mut self, vni: u32) {
        put32(self.buffer.as_mut(), 4, (vni & VNI_MAX) << 8)
    }
    /// Set the next protocol and the P bit.
    #[inline(always)]
    pub fn set_next_protocol(&mut self, np: u8) {
        let b = self.buffer.as_mut();
        b[0] |= FLAG_P;
        b[3] = np;
    }
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The fields of a VXLAN-GPE data packet header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VxlanGpeRepr {
    pub vni: u32,
    /// IPv4, IPv6 or Ethernet (`next_protocol::*`).
    pub next_protocol: u8,
}

impl VxlanGpeRepr {
    /// The data path's parse: OAM packets and next protocols we do not carry are refused.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(p: &VxlanGpePacket<T>) -> Result<VxlanGpeRepr, DropReason> {
        if p.oam() {
            return Err(DropReason::VxlanGpeOam);
        }
        let np = p.next_protocol();
        match np {
            next_protocol::IPV4 | next_protocol::IPV6 | next_protocol::ETHERNET => {
                Ok(VxlanGpeRepr {
                    vni: p.vni(),
                    next_protocol: np,
                })
            }
            _ => Err(DropReason::VxlanGpeBadNextProtocol),
        }
    }
    /// Write the 8-byte header (I and P set, version 0) at the start of `b`.
    #[inline(always)]
    pub fn emit(&self, b: &mut [u8]) {
        put32(
            b,
            0,
            (((FLAG_I | FLAG_P) as u32) << 24) | self.next_protocol as u32,
        );
        put32(b, 4, (self.vni & VNI_MAX) << 8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hdr(np: u8) -> [u8; 8] {
        let mut b = [0u8; 8];
        VxlanGpeRepr {
            vni: 0x123456,
            next_protocol: np,
        }
        .emit(&mut b);
        b
    }

    #[test]
    fn emit_then_parse() {
        let b = hdr(next_protocol::IPV6);
        assert_eq!(b, [0x0c, 0, 0, 2, 0x12, 0x34, 0x56, 0]);
        let p = VxlanGpePacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            VxlanGpeRepr::parse(&p),
            Ok(VxlanGpeRepr {
                vni: 0x123456,
                next_protocol: 2
            })
        );
        let mut m = [0x08, 0, 0, 0, 0, 0, 0, 0];
        let mut v = VxlanGpePacket::new_unchecked(&mut m[..]);
        v.set_vni(7);
        v.set_next_protocol(next_protocol::IPV4);
        assert_eq!(m, [0x0c, 0, 0, 1, 0, 0, 7, 0]);
    }

    #[test]
    fn p_clear_means_ethernet_and_b_bit_is_ignored() {
        let b = [0x08 | FLAG_B, 0xff, 0xff, 0x01, 0, 0, 9, 0xff];
        let p = VxlanGpePacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            VxlanGpeRepr::parse(&p).unwrap().next_protocol,
            next_protocol::ETHERNET
        );
        assert_eq!(p.vni(), 9);
    }

    #[test]
    fn malformed_is_classified() {
        let b = hdr(next_protocol::ETHERNET);
        assert_eq!(
            VxlanGpePacket::new_checked(&b[..7]).unwrap_err(),
            DropReason::VxlanTruncated
        );
        let mut v = b;
        v[0] |= 0x10;
        assert_eq!(
            VxlanGpePacket::new_checked(&v[..]).unwrap_err(),
            DropReason::VxlanGpeBadVersion
        );
        let mut v = b;
        v[0] &= !FLAG_I;
        assert_eq!(
            VxlanGpePacket::new_checked(&v[..]).unwrap_err(),
            DropReason::VxlanIFlagClear
        );
        let mut v = b;
        v[0] |= FLAG_O;
        let p = VxlanGpePacket::new_checked(&v[..]).unwrap();
        assert!(p.oam());
        assert_eq!(VxlanGpeRepr::parse(&p), Err(DropReason::VxlanGpeOam));
        for np in [0, next_protocol::NSH, 5, 0xff] {
            let v = hdr(np);
            let p = VxlanGpePacket::new_checked(&v[..]).unwrap();
            assert_eq!(
                VxlanGpeRepr::parse(&p),
                Err(DropReason::VxlanGpeBadNextProtocol)
            );
        }
    }
}
