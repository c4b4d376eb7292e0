//! Ethernet II frames with optional 802.1Q / 802.1ad (QinQ) tags.

use super::{be16, put16};
use crate::stats::DropReason;
use std::fmt;
use std::str::FromStr;

/// Length of an untagged Ethernet header.
pub const HEADER_LEN: usize = 14;
/// Length of one VLAN tag.
pub const VLAN_TAG_LEN: usize = 4;

/// EtherType values the dataplane knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EtherType;

impl EtherType {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const IPV6: u16 = 0x86dd;
    /// Transparent Ethernet Bridging (GRE-TEB, NVGRE, Geneve's Ethernet payload).
    pub const TEB: u16 = 0x6558;
}

/// A 48-bit MAC address.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    pub const ZERO: Mac = Mac([0; 6]);

    /// The group bit (broadcast included).
    #[inline(always)]
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }
    #[inline(always)]
    pub fn is_broadcast(&self) -> bool {
        self.0 == [0xff; 6]
    }
    /// A locally administered unicast address derived from `seed` (for tunnels, tests).
    pub fn local(seed: u32) -> Mac {
        let s = seed.to_be_bytes();
        Mac([0x02, 0xfe, s[0], s[1], s[2], s[3]])
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split([':', '-']).collect();
        if parts.len() != 6 {
            return Err(format!(
                "'{s}' is not a MAC address (want six hex octets, aa:bb:cc:dd:ee:ff)"
            ));
        }
        let mut m = [0u8; 6];
        for (i, p) in parts.iter().enumerate() {
            if p.len() != 2 {
                return Err(format!("'{s}' is not a MAC address (octet '{p}')"));
            }
            m[i] = u8::from_str_radix(p, 16)
                .map_err(|_| format!("'{s}' is not a MAC address (octet '{p}')"))?;
        }
        Ok(Mac(m))
    }
}

/// View of an Ethernet header (no tags interpreted).
#[derive(Debug, Clone)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wrap without checks; accessors may panic if the buffer is shorter than 14 bytes.
    #[inline(always)]
    pub fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wrap after checking that the header fits.
    #[inline(always)]
    pub fn new_checked(buffer: T) -> Result<Self, DropReason> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(DropReason::EthTruncated);
        }
        Ok(EthernetFrame { buffer })
    }

    #[inline(always)]
    pub fn dst(&self) -> Mac {
        let b = self.buffer.as_ref();
        Mac([b[0], b[1], b[2], b[3], b[4], b[5]])
    }
    #[inline(always)]
    pub fn src(&self) -> Mac {
        let b = self.buffer.as_ref();
        Mac([b[6], b[7], b[8], b[9], b[10], b[11]])
    }
    #[inline(always)]
    pub fn ethertype(&self) -> u16 {
        be16(self.buffer.as_ref(), 12)
    }
    #[inline(always)]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline(always)]
    pub fn set_dst(&mut self, m: Mac) {
        self.buffer.as_mut()[0..6].copy_from_slice(&m.0);
    }
    #[inline(always)]
    pub fn set_src(&mut self, m: Mac) {
        self.buffer.as_mut()[6..12].copy_from_slice(&m.0);
    }
    #[inline(always)]
    pub fn set_ethertype(&mut self, t: u16) {
        put16(self.buffer.as_mut(), 12, t)
    }
}

/// Write a whole untagged Ethernet header at the start of `b` (which must hold 14 bytes).
#[inline(always)]
pub fn write_header(b: &mut [u8], dst: Mac, src: Mac, ethertype: u16) {
    b[0..6].copy_from_slice(&dst.0);
    b[6..12].copy_from_slice(&src.0);
    put16(b, 12, ethertype);
}

/// What the L2 parse of a frame found: up to two VLAN tags, the inner EtherType and where the
/// L3 header starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct L2Header {
    /// Outer tag VLAN id (802.1ad S-tag or the single 802.1Q tag), 0 when untagged.
    pub outer_vlan: u16,
    /// Inner tag VLAN id of a QinQ frame, 0 when absent.
    pub inner_vlan: u16,
    /// EtherType after the tags.
    pub ethertype: u16,
    /// Offset of the L3 header.
    pub l3_offset: usize,
}

impl L2Header {
    /// Parse the Ethernet header and up to two VLAN tags, checking every length.
    #[inline(always)]
    pub fn parse(b: &[u8]) -> Result<L2Header, DropReason> {
        if b.len() < HEADER_LEN {
            return Err(DropReason::EthTruncated);
        }
        let mut h = L2Header {
            ethertype: be16(b, 12),
            l3_offset: HEADER_LEN,
            ..Default::default()
        };
        if h.ethertype == EtherType::VLAN || h.ethertype == EtherType::QINQ {
            if b.len() < HEADER_LEN + VLAN_TAG_LEN {
                return Err(DropReason::VlanTruncated);
            }
            h.outer_vlan = be16(b, 14) & 0x0fff;
            h.ethertype = be16(b, 16);
            h.l3_offset += VLAN_TAG_LEN;
            if h.ethertype == EtherType::VLAN {
                if b.len() < HEADER_LEN + 2 * VLAN_TAG_LEN {
                    return Err(DropReason::VlanTruncated);
                }
                h.inner_vlan = be16(b, 18) & 0x0fff;
                h.ethertype = be16(b, 20);
                h.l3_offset += VLAN_TAG_LEN;
            }
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_parse_and_print() {
        let m: Mac = "02:AB:cd:00:11:ff".parse().unwrap();
        assert_eq!(m.to_string(), "02:ab:cd:00:11:ff");
        assert!("02:ab:cd:00:11".parse::<Mac>().is_err());
        assert!("02:ab:cd:00:11:zz".parse::<Mac>().is_err());
        assert!(Mac::BROADCAST.is_multicast() && Mac::BROADCAST.is_broadcast());
        assert!(!m.is_multicast());
    }

    #[test]
    fn l2_parse_untagged_dot1q_qinq_and_truncations() {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let h = L2Header::parse(&f).unwrap();
        assert_eq!((h.ethertype, h.l3_offset, h.outer_vlan), (0x0800, 14, 0));
        assert_eq!(L2Header::parse(&f[..13]), Err(DropReason::EthTruncated));

        let mut q = f.clone();
        q[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        q.extend_from_slice(&[0x20, 0x64, 0x86, 0xdd]);
        let h = L2Header::parse(&q).unwrap();
        assert_eq!((h.ethertype, h.l3_offset, h.outer_vlan), (0x86dd, 18, 100));
        assert_eq!(L2Header::parse(&q[..17]), Err(DropReason::VlanTruncated));

        let mut qq = f.clone();
        qq[12..14].copy_from_slice(&0x88a8u16.to_be_bytes());
        qq.extend_from_slice(&[0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x08, 0x00]);
        let h = L2Header::parse(&qq).unwrap();
        assert_eq!(
            (h.ethertype, h.l3_offset, h.outer_vlan, h.inner_vlan),
            (0x0800, 22, 10, 20)
        );
        assert_eq!(L2Header::parse(&qq[..21]), Err(DropReason::VlanTruncated));
    }
}
