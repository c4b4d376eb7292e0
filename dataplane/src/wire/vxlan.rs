//! VXLAN headers (RFC 7348 §5), carried in UDP to port 4789.
//!
//! ```text
//! |R|R|R|R|I|R|R|R|            Reserved                           |
//! |                VXLAN Network Identifier (VNI) |   Reserved    |
//! ```
//!
//! The I flag must be set; every reserved bit is sent as zero and ignored on receipt.

use super::{be32, put32};
use crate::stats::DropReason;

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;
/// IANA UDP port.
pub const UDP_PORT: u16 = 4789;
/// The I flag (valid VNI).
pub const FLAG_I: u8 = 0x08;
/// Largest VNI (24 bits).
pub const VNI_MAX: u32 = 0xff_ffff;

/// View of a VXLAN packet (header and the Ethernet frame after it).
#[derive(Debug, Clone)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    #[inline(always)]
    pub fn new_unchecked(buffer: T) -> Self {
        VxlanPacket { buffer }
    }

    /// Wrap after checking the header fits and the I flag is set.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::VxlanTruncated);
        }
        if b[0] & FLAG_I == 0 {
            return Err(DropReason::VxlanIFlagClear);
        }
        Ok(VxlanPacket { buffer })
    }

    #[inline(always)]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[0]
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

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanPacket<T> {
    /// Set the VNI (the low reserved byte is zeroed).
    #[inline(always)]
    pub fn set_vni(&mut self, vni: u32) {
        put32(self.buffer.as_mut(), 4, (vni & VNI_MAX) << 8)
    }
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The fields of a VXLAN header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VxlanRepr {
    pub vni: u32,
}

impl VxlanRepr {
    #[inline(always)]
    pub fn parse<T: AsRef<[u8]>>(p: &VxlanPacket<T>) -> VxlanRepr {
        VxlanRepr { vni: p.vni() }
    }
    /// Write the 8-byte header at the start of `b`.
    #[inline(always)]
    pub fn emit(&self, b: &mut [u8]) {
        put32(b, 0, (FLAG_I as u32) << 24);
        put32(b, 4, (self.vni & VNI_MAX) << 8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_then_parse() {
        let mut b = [0u8; 8];
        VxlanRepr { vni: 5000 }.emit(&mut b);
        assert_eq!(b, [0x08, 0, 0, 0, 0, 0x13, 0x88, 0]);
        let p = VxlanPacket::new_checked(&b[..]).unwrap();
        assert_eq!(VxlanRepr::parse(&p), VxlanRepr { vni: 5000 });
        assert!(p.payload().is_empty());
        VxlanPacket::new_unchecked(&mut b[..]).set_vni(0xabcdef);
        assert_eq!(VxlanPacket::new_checked(&b[..]).unwrap().vni(), 0xabcdef);
    }

    #[test]
    fn reserved_bits_are_ignored() {
        let b = [0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x01, 0xff];
        let p = VxlanPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.vni(), 1);
    }

    #[test]
    fn malformed_is_classified() {
        let mut b = [0u8; 8];
        VxlanRepr { vni: 1 }.emit(&mut b);
        assert_eq!(
            VxlanPacket::new_checked(&b[..7]).unwrap_err(),
            DropReason::VxlanTruncated
        );
        b[0] = 0xf7;
        assert_eq!(
            VxlanPacket::new_checked(&b[..]).unwrap_err(),
            DropReason::VxlanIFlagClear
        );
    }
}
