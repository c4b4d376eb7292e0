//! The Internet checksum (RFC 1071), its incremental update (RFC 1624) and the pseudo-headers
//! of UDP/TCP/ICMPv6 over IPv4 and IPv6.

/// Ones-complement sum of `data` folded to 32 bits (not yet complemented). Odd trailing byte is
/// padded with zero, as the RFC says.
#[inline]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc: u64 = initial as u64;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        // Summing 32-bit halves into 64 bits cannot overflow for any frame we handle.
        acc += u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64;
        acc += u32::from_be_bytes([c[4], c[5], c[6], c[7]]) as u64;
    }
    let rest = chunks.remainder();
    let mut pairs = rest.chunks_exact(2);
    for p in &mut pairs {
        acc += u16::from_be_bytes([p[0], p[1]]) as u64;
    }
    if let [last] = pairs.remainder() {
        acc += (*last as u64) << 8;
    }
    fold64(acc)
}

#[inline(always)]
fn fold64(mut acc: u64) -> u32 {
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc as u32
}

/// Fold a 32-bit partial sum to 16 bits and complement it: the value to put in the header.
#[inline(always)]
pub fn finish(mut acc: u32) -> u16 {
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    !(acc as u16)
}

/// True if a 20-byte (option-less) IPv4 header's checksum verifies. The one's-complement sum
/// is byte-order independent, so native-order word loads (no byte swaps) give the same
/// verdict: the folded sum of a valid header is all ones.
#[inline(always)]
pub fn ipv4_header20_ok(h: &[u8; 20]) -> bool {
    let mut acc: u64 = 0;
    for w in h.chunks_exact(4) {
        acc += u32::from_ne_bytes([w[0], w[1], w[2], w[3]]) as u64;
    }
    let mut a = fold64(acc);
    a = (a & 0xffff) + (a >> 16);
    a = (a & 0xffff) + (a >> 16);
    a == 0xffff
}

/// The checksum of `data` alone.
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data, 0))
}

/// RFC 1624 eqn. 3: new checksum after one 16-bit word of the covered data changed.
#[inline(always)]
pub fn update16(old_csum: u16, old: u16, new: u16) -> u16 {
    let acc = (!old_csum) as u32 + (!old) as u32 + new as u32;
    finish(acc)
}

/// Partial sum of the IPv4 pseudo-header.
#[inline]
pub fn pseudo_v4(src: [u8; 4], dst: [u8; 4], proto: u8, len: u16) -> u32 {
    let mut acc = u16::from_be_bytes([src[0], src[1]]) as u32;
    acc += u16::from_be_bytes([src[2], src[3]]) as u32;
    acc += u16::from_be_bytes([dst[0], dst[1]]) as u32;
    acc += u16::from_be_bytes([dst[2], dst[3]]) as u32;
    acc + proto as u32 + len as u32
}

/// Partial sum of the IPv6 pseudo-header (RFC 8200 §8.1).
#[inline]
pub fn pseudo_v6(src: &[u8; 16], dst: &[u8; 16], next_header: u8, len: u32) -> u32 {
    let acc = sum(src, 0);
    let acc =
        sum(dst, acc) as u64 + (len >> 16) as u64 + (len & 0xffff) as u64 + next_header as u64;
    fold64(acc)
}

#[cfg(test)]
mod tests {
    #[test]
    fn header20_verdict_matches_full_checksum() {
        let mut h = [
            0x45u8, 0, 0, 84, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 10, 0, 1, 2, 10, 0, 2, 2,
        ];
        let c = super::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        assert!(super::ipv4_header20_ok(&h));
        for i in 0..20 {
            let mut b = h;
            b[i] ^= 0x10;
            assert!(!super::ipv4_header20_ok(&b), "corrupt byte {i}");
        }
    }

    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The 20-octet verdict is the full checksum's, for headers made valid and then
        /// possibly changed anywhere (carries out of every word included: the octets are
        /// arbitrary).
        #[test]
        fn header20_verdict_is_the_full_checksums(
            mut h in prop::array::uniform20(any::<u8>()),
            fix in any::<bool>(),
            flip in (0usize..20, any::<u8>()),
        ) {
            if fix {
                h[10..12].fill(0);
                let c = checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
            }
            if !fix || flip.1 % 2 == 0 {
                h[flip.0] ^= flip.1;
            }
            prop_assert_eq!(ipv4_header20_ok(&h), checksum(&h) == 0);
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 example bytes: sum = ddf2, checksum = !ddf2 = 220d.
        let d = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(sum(&d, 0)), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(
            checksum(&[0x12, 0x34, 0x56]),
            checksum(&[0x12, 0x34, 0x56, 0x00])
        );
    }

    #[test]
    fn incremental_matches_full_recompute() {
        let mut hdr = [
            0x45u8, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 0x40, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let c = checksum(&hdr);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&hdr), 0);
        for ttl in (1..=64u8).rev() {
            let old = u16::from_be_bytes([hdr[8], hdr[9]]);
            hdr[8] = ttl - 1;
            let new = u16::from_be_bytes([hdr[8], hdr[9]]);
            let oc = u16::from_be_bytes([hdr[10], hdr[11]]);
            hdr[10..12].copy_from_slice(&update16(oc, old, new).to_be_bytes());
            assert_eq!(checksum(&hdr), 0, "ttl {ttl}");
        }
    }
}
