//! EtherIP headers (RFC 3378), IP protocol 97: a 16-bit header, version 3 in the high nibble
//! and 12 reserved bits that are zero, followed by an Ethernet frame.
//!
//! A header that is not exactly 0x3000 is refused with `EtheripBadVersion`: a non-zero
//! reserved field is some other revision of the header, which we do not speak (FreeBSD's
//! `if_gif` compares the whole first octet the same way).

use super::{be16, put16};
use crate::stats::DropReason;

/// Length of the EtherIP header.
pub const HEADER_LEN: usize = 2;
/// The version this header carries.
pub const VERSION: u8 = 3;
/// The whole header word we send and accept.
pub const HEADER_WORD: u16 = 0x3000;

/// View of an EtherIP packet.
#[derive(Debug, Clone)]
pub struct EtheripPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EtheripPacket<T> {
    #[inline(always)]
    pub fn new_unchecked(buffer: T) -> Self {
        EtheripPacket { buffer }
    }

    /// Wrap after checking the header fits, the version is 3 and the reserved bits are zero.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::EtheripTruncated);
        }
        if be16(b, 0) != HEADER_WORD {
            return Err(DropReason::EtheripBadVersion);
        }
        Ok(EtheripPacket { buffer })
    }

    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }
    #[inline(always)]
    pub fn reserved(&self) -> u16 {
        be16(self.buffer.as_ref(), 0) & 0x0fff
    }
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EtheripPacket<T> {
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[HEADER_LEN..]
    }
}

/// The EtherIP header (it has no variable fields).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EtheripRepr;

impl EtheripRepr {
    #[inline(always)]
    pub fn parse<T: AsRef<[u8]>>(_p: &EtheripPacket<T>) -> EtheripRepr {
        EtheripRepr
    }
    /// Write the 2-byte header at the start of `b`.
    #[inline(always)]
    pub fn emit(&self, b: &mut [u8]) {
        put16(b, 0, HEADER_WORD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_then_parse() {
        let mut b = [0u8; 16];
        EtheripRepr.emit(&mut b);
        assert_eq!(&b[..2], &[0x30, 0x00]);
        let p = EtheripPacket::new_checked(&b[..]).unwrap();
        assert_eq!((p.version(), p.reserved(), p.payload().len()), (3, 0, 14));
    }

    #[test]
    fn malformed_is_classified() {
        assert_eq!(
            EtheripPacket::new_checked(&[0x30][..]).unwrap_err(),
            DropReason::EtheripTruncated
        );
        for w in [[0x20, 0x00], [0x40, 0x00], [0x30, 0x01], [0x38, 0x00]] {
            assert_eq!(
                EtheripPacket::new_checked(&w[..]).unwrap_err(),
                DropReason::EtheripBadVersion
            );
        }
    }
}
