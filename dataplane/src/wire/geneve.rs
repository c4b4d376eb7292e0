//! Geneve headers (RFC 8926), carried in UDP to port 6081.
//!
//! ```text
//! |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
//! |        Virtual Network Identifier (VNI)       |    Reserved   |
//! |                    Variable-Length Options                    |
//! ```
//!
//! Options are TLVs: Class (16), Type (8, high bit = critical), 3 reserved bits, Length (5, in
//! 4-byte words of data after the 4-byte option header).
//!
//! `GenevePacket::new_checked` checks the structure (version 0, options within the packet).
//! `GeneveRepr::parse` is the data path's parse: an OAM frame (O bit) is refused with
//! `GeneveOam` (it belongs to the control plane), a protocol type other than Ethernet, IPv4 or
//! IPv6 with `GeneveBadProtocol`, and the option list is walked whatever the C bit says: an
//! option running past the options area is `GeneveBadOption`, an option with the critical bit
//! that is not in the caller's known list is `GeneveCriticalOption` (RFC 8926 §3.5.1).

use super::{be16, be32, put16, put32, EtherType};
use crate::stats::DropReason;

/// Length of the fixed header.
pub const HEADER_LEN: usize = 8;
/// IANA UDP port.
pub const UDP_PORT: u16 = 6081;
/// Longest options area (6-bit length in 4-byte words).
pub const MAX_OPTIONS_LEN: usize = 63 * 4;
/// Length of an option TLV header.
pub const OPTION_HEADER_LEN: usize = 4;
/// OAM flag (byte 1).
pub const FLAG_O: u8 = 0x80;
/// Critical options present (byte 1).
pub const FLAG_C: u8 = 0x40;
/// Critical bit of an option type.
pub const OPTION_CRITICAL: u8 = 0x80;
/// Largest VNI (24 bits).
pub const VNI_MAX: u32 = 0xff_ffff;

/// View of a Geneve packet.
#[derive(Debug, Clone)]
pub struct GenevePacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> GenevePacket<T> {
    #[inline(always)]
    pub fn new_unchecked(buffer: T) -> Self {
        GenevePacket { buffer }
    }

    /// Wrap after checking the fixed header fits, the version is 0 and the options area is
    /// within the buffer.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        let b = buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(DropReason::GeneveTruncated);
        }
        if b[0] >> 6 != 0 {
            return Err(DropReason::GeneveBadVersion);
        }
        if HEADER_LEN + ((b[0] & 0x3f) as usize) * 4 > b.len() {
            return Err(DropReason::GeneveOptionsBeyond);
        }
        Ok(GenevePacket { buffer })
    }

    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 6
    }
    /// Length of the options area in bytes.
    #[inline(always)]
    pub fn options_len(&self) -> usize {
        ((self.buffer.as_ref()[0] & 0x3f) as usize) * 4
    }
    /// Header length, options included.
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }
    #[inline(always)]
    pub fn oam(&self) -> bool {
        self.buffer.as_ref()[1] & FLAG_O != 0
    }
    #[inline(always)]
    pub fn critical(&self) -> bool {
        self.buffer.as_ref()[1] & FLAG_C != 0
    }
    #[inline(always)]
    pub fn protocol(&self) -> u16 {
        be16(self.buffer.as_ref(), 2)
    }
    #[inline(always)]
    pub fn vni(&self) -> u32 {
        be32(self.buffer.as_ref(), 4) >> 8
    }
    /// The raw options area.
    #[inline(always)]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> GenevePacket<T> {
    #[inline(always)]
    pub fn set_vni(&mut self, vni: u32) {
        put32(self.buffer.as_mut(), 4, (vni & VNI_MAX) << 8)
    }
    #[inline(always)]
    pub fn set_protocol(&mut self, p: u16) {
        put16(self.buffer.as_mut(), 2, p)
    }
    #[inline(always)]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = self.header_len();
        &mut self.buffer.as_mut()[hl..]
    }
}

/// One option TLV.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneveOption<'a> {
    pub class: u16,
    /// Type, critical bit included.
    pub typ: u8,
    pub data: &'a [u8],
}

impl GeneveOption<'_> {
    #[inline(always)]
    pub fn critical(&self) -> bool {
        self.typ & OPTION_CRITICAL != 0
    }
}

/// Iterator over the TLVs of an options area. Yields `Err(GeneveBadOption)` once (and then
/// stops) when a TLV runs past the end.
#[derive(Clone, Debug)]
pub struct GeneveOptions<'a> {
    rest: &'a [u8],
}

impl<'a> GeneveOptions<'a> {
    pub fn new(area: &'a [u8]) -> Self {
        GeneveOptions { rest: area }
    }
}

impl<'a> Iterator for GeneveOptions<'a> {
    type Item = Result<GeneveOption<'a>, DropReason>;
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let r = self.rest;
        if r.is_empty() {
            return None;
        }
        if r.len() < OPTION_HEADER_LEN {
            self.rest = &[];
            return Some(Err(DropReason::GeneveBadOption));
        }
        let end = OPTION_HEADER_LEN + ((r[3] & 0x1f) as usize) * 4;
        if end > r.len() {
            self.rest = &[];
            return Some(Err(DropReason::GeneveBadOption));
        }
        self.rest = &r[end..];
        Some(Ok(GeneveOption {
            class: be16(r, 0),
            typ: r[2],
            data: &r[OPTION_HEADER_LEN..end],
        }))
    }
}

/// Walk an options area: every TLV must fit, and every critical option must be in `known`
/// (pairs of class and type, the type with its critical bit). Returns whether any critical
/// option was present.
#[inline]
pub fn check_options(area: &[u8], known: &[(u16, u8)]) -> Result<bool, DropReason> {
    let mut any_critical = false;
    for o in GeneveOptions::new(area) {
        let o = o?;
        if o.critical() {
            any_critical = true;
            if !known.iter().any(|&(c, t)| c == o.class && t == o.typ) {
                return Err(DropReason::GeneveCriticalOption);
            }
        }
    }
    Ok(any_critical)
}

/// The fields of a Geneve header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneveRepr<'a> {
    pub oam: bool,
    /// The C bit: some option is critical.
    pub critical: bool,
    /// 0x6558 (Ethernet), 0x0800 or 0x86DD.
    pub protocol: u16,
    pub vni: u32,
    /// Whole option TLVs (a multiple of 4 bytes, at most 252).
    pub options: &'a [u8],
}

impl<'a> GeneveRepr<'a> {
    /// The data path's parse (see the module notes): refuses OAM, unknown protocol types,
    /// malformed options and unknown critical options.
    #[inline]
    pub fn parse<T: AsRef<[u8]>>(
        p: &'a GenevePacket<T>,
        known: &[(u16, u8)],
    ) -> Result<GeneveRepr<'a>, DropReason> {
        if p.oam() {
            return Err(DropReason::GeneveOam);
        }
        let protocol = p.protocol();
        if !matches!(protocol, EtherType::TEB | EtherType::IPV4 | EtherType::IPV6) {
            return Err(DropReason::GeneveBadProtocol);
        }
        check_options(p.options(), known)?;
        Ok(GeneveRepr {
            oam: false,
            critical: p.critical(),
            protocol,
            vni: p.vni(),
            options: p.options(),
        })
    }
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.len()
    }
    /// Write the header and options at the start of `b` (which holds `header_len()` bytes).
    /// The options length must be a multiple of 4 and at most 252 (the bits beyond are
    /// masked off).
    #[inline(always)]
    pub fn emit(&self, b: &mut [u8]) {
        let words = ((self.options.len() / 4) & 0x3f) as u8;
        b[0] = words;
        b[1] = (if self.oam { FLAG_O } else { 0 }) | (if self.critical { FLAG_C } else { 0 });
        put16(b, 2, self.protocol);
        put32(b, 4, (self.vni & VNI_MAX) << 8);
        let n = words as usize * 4;
        b[HEADER_LEN..HEADER_LEN + n].copy_from_slice(&self.options[..n]);
    }
}

/// A validated list of options to send, held inline (no allocation, `Copy`), for a tunnel's
/// configuration.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct GeneveOptionBuf {
    bytes: [u8; MAX_OPTIONS_LEN],
    len: u8,
    critical: bool,
}

impl Default for GeneveOptionBuf {
    fn default() -> Self {
        GeneveOptionBuf {
            bytes: [0; MAX_OPTIONS_LEN],
            len: 0,
            critical: false,
        }
    }
}

impl std::fmt::Debug for GeneveOptionBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneveOptionBuf")
            .field("bytes", &self.as_bytes())
            .field("critical", &self.critical)
            .finish()
    }
}

impl GeneveOptionBuf {
    /// Validate whole TLVs (at most 252 bytes, every TLV within the area).
    pub fn new(tlvs: &[u8]) -> Result<Self, DropReason> {
        if tlvs.len() > MAX_OPTIONS_LEN || tlvs.len() & 3 != 0 {
            return Err(DropReason::GeneveBadOption);
        }
        let mut critical = false;
        for o in GeneveOptions::new(tlvs) {
            critical |= o?.critical();
        }
        let mut bytes = [0; MAX_OPTIONS_LEN];
        bytes[..tlvs.len()].copy_from_slice(tlvs);
        Ok(GeneveOptionBuf {
            bytes,
            len: tlvs.len() as u8,
            critical,
        })
    }
    #[inline(always)]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len as usize
    }
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Some option has the critical bit (the C flag to send).
    #[inline(always)]
    pub fn critical(&self) -> bool {
        self.critical
    }
}

/// Build one option TLV (control-plane helper; `data` is padded to 4 bytes).
pub fn option_tlv(class: u16, typ: u8, data: &[u8]) -> Vec<u8> {
    let words = data.len().div_ceil(4).min(31);
    let mut v = vec![0u8; OPTION_HEADER_LEN + words * 4];
    put16(&mut v, 0, class);
    v[2] = typ;
    v[3] = words as u8;
    let n = data.len().min(words * 4);
    v[OPTION_HEADER_LEN..OPTION_HEADER_LEN + n].copy_from_slice(&data[..n]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(opts: &[u8], critical: bool, payload: &[u8]) -> Vec<u8> {
        let r = GeneveRepr {
            oam: false,
            critical,
            protocol: EtherType::TEB,
            vni: 0xabcdef,
            options: opts,
        };
        let mut b = vec![0u8; r.header_len() + payload.len()];
        r.emit(&mut b);
        b[r.header_len()..].copy_from_slice(payload);
        b
    }

    #[test]
    fn emit_then_parse_with_options() {
        let mut opts = option_tlv(0x0102, 0x80, &[1, 2, 3, 4]);
        opts.extend(option_tlv(0xffff, 0x01, &[]));
        opts.extend(option_tlv(0x0001, 0x02, &[9; 6]));
        let b = pkt(&opts, true, &[0xee; 14]);
        assert_eq!(&b[..8], &[6, 0x40, 0x65, 0x58, 0xab, 0xcd, 0xef, 0]);
        let p = GenevePacket::new_checked(&b[..]).unwrap();
        assert_eq!((p.options_len(), p.header_len()), (24, 32));
        let r = GeneveRepr::parse(&p, &[(0x0102, 0x80)]).unwrap();
        assert_eq!(
            (r.critical, r.protocol, r.vni, r.options),
            (true, 0x6558, 0xabcdef, &opts[..])
        );
        let all: Vec<_> = GeneveOptions::new(p.options())
            .map(Result::unwrap)
            .collect();
        assert_eq!(all.len(), 3);
        assert_eq!(
            all[0],
            GeneveOption {
                class: 0x0102,
                typ: 0x80,
                data: &[1, 2, 3, 4]
            }
        );
        assert_eq!(all[2].data, &[9, 9, 9, 9, 9, 9, 0, 0]);
        assert_eq!(p.payload(), &[0xee; 14]);
        let buf = GeneveOptionBuf::new(&opts).unwrap();
        assert!(buf.critical() && buf.len() == 24);
        assert!(!GeneveOptionBuf::new(&opts[12..]).unwrap().critical());
    }

    #[test]
    fn setters() {
        let mut b = pkt(&[], false, &[]);
        let mut p = GenevePacket::new_checked(&mut b[..]).unwrap();
        p.set_vni(5);
        p.set_protocol(EtherType::IPV6);
        assert_eq!((p.vni(), p.protocol()), (5, 0x86dd));
    }

    #[test]
    fn malformed_is_classified() {
        let opts = option_tlv(0x0102, 0x80, &[1, 2, 3, 4]);
        let b = pkt(&opts, true, &[]);
        assert_eq!(
            GenevePacket::new_checked(&b[..7]).unwrap_err(),
            DropReason::GeneveTruncated
        );
        let mut v = b.clone();
        v[0] |= 0x40;
        assert_eq!(
            GenevePacket::new_checked(&v[..]).unwrap_err(),
            DropReason::GeneveBadVersion
        );
        // Options area longer than the packet.
        assert_eq!(
            GenevePacket::new_checked(&b[..15]).unwrap_err(),
            DropReason::GeneveOptionsBeyond
        );
        // Unknown critical option (the known list lacks it), known one passes.
        let p = GenevePacket::new_checked(&b[..]).unwrap();
        assert_eq!(
            GeneveRepr::parse(&p, &[]).unwrap_err(),
            DropReason::GeneveCriticalOption
        );
        assert_eq!(
            GeneveRepr::parse(&p, &[(0x0102, 0x00)]).unwrap_err(),
            DropReason::GeneveCriticalOption
        );
        assert!(GeneveRepr::parse(&p, &[(0x0102, 0x80)]).is_ok());
        // Unknown non-critical option passes.
        let b2 = pkt(&option_tlv(0x0102, 0x7f, &[1]), false, &[]);
        assert!(GeneveRepr::parse(&GenevePacket::new_checked(&b2[..]).unwrap(), &[]).is_ok());
        // TLV claiming more data than the options area holds.
        let mut v = b.clone();
        v[8 + 3] = 2;
        assert_eq!(
            GeneveRepr::parse(
                &GenevePacket::new_checked(&v[..]).unwrap(),
                &[(0x0102, 0x80)]
            )
            .unwrap_err(),
            DropReason::GeneveBadOption
        );
        // OAM.
        let mut v = b.clone();
        v[1] |= FLAG_O;
        assert_eq!(
            GeneveRepr::parse(
                &GenevePacket::new_checked(&v[..]).unwrap(),
                &[(0x0102, 0x80)]
            )
            .unwrap_err(),
            DropReason::GeneveOam
        );
        // Protocol type.
        let mut v = b;
        put16(&mut v, 2, 0x8847);
        assert_eq!(
            GeneveRepr::parse(
                &GenevePacket::new_checked(&v[..]).unwrap(),
                &[(0x0102, 0x80)]
            )
            .unwrap_err(),
            DropReason::GeneveBadProtocol
        );
        // Option buffers.
        assert_eq!(
            GeneveOptionBuf::new(&[0; 3]).unwrap_err(),
            DropReason::GeneveBadOption
        );
        assert_eq!(
            GeneveOptionBuf::new(&[0; 256]).unwrap_err(),
            DropReason::GeneveBadOption
        );
        assert_eq!(
            GeneveOptionBuf::new(&[0, 1, 2, 3]).unwrap_err(),
            DropReason::GeneveBadOption
        );
    }
}
