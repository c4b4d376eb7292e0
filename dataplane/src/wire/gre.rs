//! GRE headers (RFC 2784 with the key and sequence extensions of RFC 2890), and NVGRE
//! (RFC 7637), which is GRE with the K bit, protocol 0x6558 and a key of VSID(24) | FlowID(8).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! |C|R|K|S|s|Recur|  Reserved0 | Ver |         Protocol Type         |
//! |      Checksum (optional)          |       Reserved1 (optional)    |
//! |                         Key (optional)                            |
//! |                 Sequence Number (optional)                        |
//! ```
//!
//! Receive rules (RFC 2784 §2.3): a packet with any of bits 1–5 set is discarded, bits 2 and 3
//! being the K and S bits RFC 2890 later defined. That leaves bit 1 (RFC 1701 routing,
//! counted as `GreRoutingBit`) and bits 4–5 (RFC 1701 strict source route and the first
//! recursion-control bit, counted as `GreReservedBits`). Bits 6–12 are "reserved for future
//! use ... MUST be ignored on receipt", and are. A version other than 0 (1 is PPTP's
//! enhanced GRE) is `GreBadVersion`.

use super::checksum;
use super::{be16, be32, put16, put32};
use crate::stats::DropReason;

/// Length of the base header (flags and protocol type).
pub const BASE_LEN: usize = 4;
/// Longest header: base plus checksum, key and sequence words.
pub const MAX_HEADER_LEN: usize = 16;
/// Checksum present.
pub const FLAG_C: u16 = 0x8000;
/// Routing present (RFC 1701; must be 0 under RFC 2784).
pub const FLAG_R: u16 = 0x4000;
/// Key present (RFC 2890).
pub const FLAG_K: u16 = 0x2000;
/// Sequence number present (RFC 2890).
pub const FLAG_S: u16 = 0x1000;
/// Reserved0 bits 4–5 (RFC 1701 strict source route and the top recursion bit): a receiver
/// discards the packet when they are set (RFC 2784 §2.3).
pub const RESERVED_MUST_BE_ZERO: u16 = 0x0c00;
/// Reserved0 bits 6–12: sent as zero, ignored on receipt.
pub const RESERVED_IGNORED: u16 = 0x03f8;
/// Version field mask.
pub const VERSION_MASK: u16 = 0x0007;

/// View of a GRE packet (header and payload).
#[derive(Debug, Clone)]
pub struct GrePacket<T: AsRef<[u8]>> {
    buffer: T,
}

/// Header length implied by the C, K and S bits of `flags`.
#[inline(always)]
pub fn header_len_for(flags: u16) -> usize {
    BASE_LEN
        + if flags & FLAG_C != 0 { 4 } else { 0 }
        + if flags & FLAG_K != 0 { 4 } else { 0 }
        + if flags & FLAG_S != 0 { 4 } else { 0 }
}

impl<T: AsRef<[u8]>> GrePacket<T> {
    #[inline(always)]
    pub fn new_unchecked(buffer: T) -> Self {
        GrePacket { buffer }
    }

    /// Wrap after checking the base header, the flag bits, the version and that every
    /// optional field the flags announce is in the buffer. The buffer is the GRE packet: the
    /// payload runs to its end (the caller bounds it by the outer IP length).
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < BASE_LEN {
            return Err(DropReason::GreTruncated);
        }
        let f = be16(b, 0);
        if f & FLAG_R != 0 {
            return Err(DropReason::GreRoutingBit);
        }
        if f & RESERVED_MUST_BE_ZERO != 0 {
            return Err(DropReason::GreReservedBits);
        }
        if f & VERSION_MASK != 0 {
            return Err(DropReason::GreBadVersion);
        }
        if b.len() < header_len_for(f) {
            return Err(DropReason::GreTruncated);
        }
        Ok(GrePacket { buffer })
    }

    /// The flags-and-version word.
    #[inline(always)]
    pub fn flags(&self) -> u16 {
        be16(self.buffer.as_ref(), 0)
    }
    #[inline(always)]
    pub fn checksum_present(&self) -> bool {
        self.flags() & FLAG_C != 0
    }
    #[inline(always)]
    pub fn key_present(&self) -> bool {
        self.flags() & FLAG_K != 0
    }
    #[inline(always)]
    pub fn seq_present(&self) -> bool {
        self.flags() & FLAG_S != 0
    }
    #[inline(always)]
    pub fn version(&self) -> u8 {
        (self.flags() & VERSION_MASK) as u8
    }
    #[inline(always)]
    pub fn protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }
    /// Header length with the optional fields.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        header_len_for(self.flags())
    }
    /// The checksum field, when present.
    #[inline(always)]
    pub fn checksum(&self) -> Option<u16> {
        self.checksum_present()
            .then(|| be16(self.buffer.as_ref(), 4))
    }
    /// The key, when present.
    #[inline(always)]
    pub fn key(&self) -> Option<u32> {
        let off = BASE_LEN + if self.checksum_present() { 4 } else { 0 };
        self.key_present().then(|| be32(self.buffer.as_ref(), off))
    }
    /// The sequence number, when present.
    #[inline(always)]
    pub fn seq(&self) -> Option<u32> {
        let off = self.header_len() - 4;
        self.seq_present().then(|| be32(self.buffer.as_ref(), off))
    }
    /// True when no checksum is present, or when it verifies over header and payload.
    #[inline(always)]
    pub fn verify_checksum(&self) -> bool {
        !self.checksum_present() || checksum::checksum(self.buffer.as_ref()) == 0
    }
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GrePacket<T> {
    #[inline(always)]
    pub fn set_protocol(&mut self, p: u16) {
        put16(self.buffer.as_mut(), 2, p)
    }
    /// Overwrite the key. No-op when the K bit is clear.
    #[inline(always)]
    pub fn set_key(&mut self, k: u32) {
        if self.key_present() {
            let off = BASE_LEN + if self.checksum_present() { 4 } else { 0 };
            put32(self.buffer.as_mut(), off, k)
        }
    }
    /// Overwrite the sequence number. No-op when the S bit is clear.
    #[inline(always)]
    pub fn set_seq(&mut self, s: u32) {
        if self.seq_present() {
            let off = self.header_len() - 4;
            put32(self.buffer.as_mut(), off, s)
        }
    }
    /// Compute the checksum over header and payload (RFC 2784 §2.5) and store it. No-op when
    /// the C bit is clear.
    #[inline(always)]
    pub fn fill_checksum(&mut self) {
        if self.checksum_present() {
            let b = self.buffer.as_mut();
            put16(b, 4, 0);
            let c = checksum::checksum(b);
            put16(b, 4, c);
        }
    }
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// The fields of a GRE header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GreRepr {
    pub protocol: u16,
    /// Checksum present (the value is computed over the payload by `fill_checksum`).
    pub checksum: bool,
    pub key: Option<u32>,
    pub seq: Option<u32>,
}

impl GreRepr {
    /// Read the fields of a checked packet (checksum presence only, not its validity).
    #[inline(always)]
    pub fn parse<T: AsRef<[u8]>>(p: &GrePacket<T>) -> GreRepr {
        GreRepr {
            protocol: p.protocol(),
            checksum: p.checksum_present(),
            key: p.key(),
            seq: p.seq(),
        }
    }
    /// The flags word this header carries (version 0).
    #[inline(always)]
    pub fn flags(&self) -> u16 {
        (if self.checksum { FLAG_C } else { 0 })
            | (if self.key.is_some() { FLAG_K } else { 0 })
            | (if self.seq.is_some() { FLAG_S } else { 0 })
    }
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        header_len_for(self.flags())
    }
    /// Write the header at the start of `b` (which holds `header_len()` bytes or more). The
    /// checksum field is written as zero: call `GrePacket::fill_checksum` once the payload is
    /// in place.
    #[inline]
    pub fn emit(&self, b: &mut [u8]) {
        put16(b, 0, self.flags());
        put16(b, 2, self.protocol);
        let mut off = BASE_LEN;
        if self.checksum {
            put32(b, off, 0);
            off += 4;
        }
        if let Some(k) = self.key {
            put32(b, off, k);
            off += 4;
        }
        if let Some(s) = self.seq {
            put32(b, off, s);
        }
    }
}

/// NVGRE (RFC 7637 §3.2) VSIDs 0–0xFFF are reserved and 0xFFFFFF is vendor-specific.
pub const NVGRE_VSID_MIN: u32 = 0x1000;
pub const NVGRE_VSID_MAX: u32 = 0xff_fffe;

/// The 32-bit GRE key of an NVGRE packet: VSID in the high 24 bits, FlowID in the low 8.
#[inline(always)]
pub fn nvgre_key(vsid: u32, flow_id: u8) -> u32 {
    ((vsid & 0xff_ffff) << 8) | flow_id as u32
}

/// Split an NVGRE key into (VSID, FlowID).
#[inline(always)]
pub fn nvgre_split(key: u32) -> (u32, u8) {
    (key >> 8, key as u8)
}

/// Check the NVGRE constraints on a GRE header (RFC 7637 §3.2: C and S clear, K set, protocol
/// 0x6558) and return the VSID.
#[inline]
pub fn nvgre_vsid<T: AsRef<[u8]>>(p: &GrePacket<T>) -> Result<u32, DropReason> {
    let f = p.flags();
    if f & (FLAG_C | FLAG_S) != 0 || p.protocol() != super::EtherType::TEB {
        return Err(DropReason::NvgreBadHeader);
    }
    match p.key() {
        Some(k) => Ok(nvgre_split(k).0),
        None => Err(DropReason::NvgreBadHeader),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(r: GreRepr, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; r.header_len() + payload.len()];
        r.emit(&mut b);
        b[r.header_len()..].copy_from_slice(payload);
        GrePacket::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn emit_then_parse_all_options() {
        let r = GreRepr {
            protocol: 0x0800,
            checksum: true,
            key: Some(0xdead_beef),
            seq: Some(7),
        };
        let b = pkt(r, b"payload!x");
        assert_eq!(b.len(), 16 + 9);
        assert_eq!(&b[..4], &[0xb0, 0, 0x08, 0]);
        let p = GrePacket::new_checked(&b[..]).unwrap();
        assert_eq!(GreRepr::parse(&p), r);
        assert_eq!(p.header_len(), 16);
        assert!(p.verify_checksum());
        assert_eq!(p.payload(), b"payload!x");
        let mut bad = b.clone();
        bad[20] ^= 1;
        assert!(!GrePacket::new_checked(&bad[..]).unwrap().verify_checksum());
    }

    #[test]
    fn each_option_alone() {
        for (c, k, s, hl) in [
            (false, None, None, 4),
            (true, None, None, 8),
            (false, Some(1), None, 8),
            (false, None, Some(2), 8),
            (false, Some(3), Some(4), 12),
        ] {
            let r = GreRepr {
                protocol: 0x86dd,
                checksum: c,
                key: k,
                seq: s,
            };
            let b = pkt(r, &[1, 2, 3]);
            let p = GrePacket::new_checked(&b[..]).unwrap();
            assert_eq!((p.header_len(), p.key(), p.seq()), (hl, k, s));
            assert!(p.verify_checksum());
        }
    }

    #[test]
    fn setters() {
        let r = GreRepr {
            protocol: 0x0800,
            checksum: true,
            key: Some(1),
            seq: Some(2),
        };
        let mut b = pkt(r, &[9; 5]);
        let mut p = GrePacket::new_checked(&mut b[..]).unwrap();
        p.set_key(0x11223344);
        p.set_seq(0x55667788);
        p.set_protocol(0x86dd);
        p.fill_checksum();
        assert_eq!(
            (p.key(), p.seq(), p.protocol()),
            (Some(0x11223344), Some(0x55667788), 0x86dd)
        );
        assert!(p.verify_checksum());
    }

    #[test]
    fn malformed_is_classified() {
        let b = pkt(
            GreRepr {
                protocol: 0x0800,
                checksum: true,
                key: Some(1),
                seq: Some(2),
            },
            &[],
        );
        assert_eq!(
            GrePacket::new_checked(&b[..3]).unwrap_err(),
            DropReason::GreTruncated
        );
        assert_eq!(
            GrePacket::new_checked(&b[..15]).unwrap_err(),
            DropReason::GreTruncated
        );
        let with = |mask: u16| {
            let mut v = b.clone();
            let f = be16(&v, 0) | mask;
            put16(&mut v, 0, f);
            GrePacket::new_checked(v).map(|_| ())
        };
        assert_eq!(with(FLAG_R), Err(DropReason::GreRoutingBit));
        assert_eq!(with(0x0800), Err(DropReason::GreReservedBits));
        assert_eq!(with(0x0400), Err(DropReason::GreReservedBits));
        assert_eq!(with(0x0001), Err(DropReason::GreBadVersion));
        assert_eq!(with(0x0004), Err(DropReason::GreBadVersion));
        // Reserved0 bits 6-12 are ignored on receipt (RFC 2784 §2.3).
        assert_eq!(with(RESERVED_IGNORED), Ok(()));
    }

    #[test]
    fn nvgre_key_layout_and_checks() {
        assert_eq!(nvgre_key(0x123456, 0x78), 0x1234_5678);
        assert_eq!(nvgre_split(0x1234_5678), (0x123456, 0x78));
        let ok = pkt(
            GreRepr {
                protocol: 0x6558,
                checksum: false,
                key: Some(nvgre_key(5000, 3)),
                seq: None,
            },
            &[0; 14],
        );
        assert_eq!(
            nvgre_vsid(&GrePacket::new_checked(&ok[..]).unwrap()),
            Ok(5000)
        );
        for r in [
            GreRepr {
                protocol: 0x6558,
                checksum: true,
                key: Some(1 << 8),
                seq: None,
            },
            GreRepr {
                protocol: 0x6558,
                checksum: false,
                key: Some(1 << 8),
                seq: Some(1),
            },
            GreRepr {
                protocol: 0x6558,
                checksum: false,
                key: None,
                seq: None,
            },
            GreRepr {
                protocol: 0x0800,
                checksum: false,
                key: Some(1 << 8),
                seq: None,
            },
        ] {
            let b = pkt(r, &[0; 14]);
            assert_eq!(
                nvgre_vsid(&GrePacket::new_checked(&b[..]).unwrap()),
                Err(DropReason::NvgreBadHeader),
                "{r:?}"
            );
        }
    }
}
