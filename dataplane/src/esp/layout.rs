//! ESP packet geometry shared by encapsulation and decapsulation: header, padding and trailer
//! sizes for a suite, and where ESP sits in an IPv6 extension-header chain.

use super::crypto::{Suite, ESP_HEADER_LEN};
use crate::stats::DropReason;
use crate::wire::{ipproto, ipv6};

/// Sizes around a payload of a given length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// ESP header plus explicit IV.
    pub hdr: usize,
    /// Padding octets (1, 2, 3... on the wire).
    pub pad: usize,
    /// Padding, pad length, next header and ICV.
    pub trailer: usize,
}

impl Geometry {
    /// The minimal padding that aligns payload + pad + 2 to the suite's block (RFC 4303 §2.4).
    #[inline]
    pub fn new(suite: Suite, payload_len: usize) -> Self {
        let a = suite.pad_align();
        let pad = (a - (payload_len + 2) % a) % a;
        Geometry {
            hdr: ESP_HEADER_LEN + suite.iv_len(),
            pad,
            trailer: pad + 2 + suite.icv_len(),
        }
    }
}

/// The end of the part of an IPv6 header chain that precedes ESP: Hop-by-Hop, Routing and
/// Destination Options headers after the fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct V6Chain {
    /// Offset of the Next Header field that names the protocol after the chain.
    pub nh_field: usize,
    /// Offset where the chain ends.
    pub end: usize,
    /// The protocol after the chain (a Fragment header, 44, ends the walk too).
    pub protocol: u8,
}

/// Walk `b` (an IPv6 packet, trimmed to its length) over Hop-by-Hop, Routing and Destination
/// Options headers. The walk is bounded and every read is checked.
pub(crate) fn v6_chain(b: &[u8]) -> Result<V6Chain, DropReason> {
    const NH_FIELD: usize = 6;
    let Some(&first) = b.get(NH_FIELD) else {
        return Err(DropReason::Ipv6Truncated);
    };
    let mut c = V6Chain {
        nh_field: NH_FIELD,
        end: ipv6::HEADER_LEN,
        protocol: first,
    };
    for _ in 0..8 {
        match c.protocol {
            ipproto::HOPOPT | ipproto::IPV6_ROUTE | ipproto::IPV6_OPTS => {
                let (Some(&nh), Some(&l)) = (b.get(c.end), b.get(c.end + 1)) else {
                    return Err(DropReason::Ipv6BadExtHeader);
                };
                let len = (l as usize + 1) * 8;
                if c.end + len > b.len() {
                    return Err(DropReason::Ipv6BadExtHeader);
                }
                c.nh_field = c.end;
                c.protocol = nh;
                c.end += len;
            }
            _ => return Ok(c),
        }
    }
    Err(DropReason::Ipv6BadExtHeader)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esp::crypto::{AesKeyLen, Integ};

    #[test]
    fn padding_aligns_to_the_suite() {
        let gcm = Suite::AesGcm(AesKeyLen::Aes128);
        let cbc = Suite::AesCbc(AesKeyLen::Aes128, Integ::HmacSha1_96);
        for len in 0..100 {
            let g = Geometry::new(gcm, len);
            assert_eq!((len + g.pad + 2) % 4, 0);
            assert!(g.pad < 4);
            assert_eq!(g.hdr, 16);
            let g = Geometry::new(cbc, len);
            assert_eq!((len + g.pad + 2) % 16, 0);
            assert!(g.pad < 16);
            assert_eq!(g.trailer, g.pad + 2 + 12);
        }
    }

    #[test]
    fn v6_chain_walks_and_bounds() {
        let mut b = vec![0u8; 40];
        b[0] = 0x60;
        b[6] = ipproto::TCP;
        assert_eq!(
            v6_chain(&b).unwrap(),
            V6Chain {
                nh_field: 6,
                end: 40,
                protocol: 6
            }
        );
        b[6] = ipproto::HOPOPT;
        b.extend_from_slice(&[ipproto::IPV6_OPTS, 0, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&[ipproto::ESP, 1, 0, 0, 0, 0, 0, 0]);
        b.extend_from_slice(&[0; 8]);
        assert_eq!(
            v6_chain(&b).unwrap(),
            V6Chain {
                nh_field: 48,
                end: 64,
                protocol: 50
            }
        );
        assert_eq!(v6_chain(&b[..60]), Err(DropReason::Ipv6BadExtHeader));
        assert_eq!(v6_chain(&b[..41]), Err(DropReason::Ipv6BadExtHeader));
        assert_eq!(v6_chain(&b[..5]), Err(DropReason::Ipv6Truncated));
    }
}
