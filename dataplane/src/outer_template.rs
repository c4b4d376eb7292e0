//! The outer IP header of a tunnel-mode SA or an overlay tunnel as a template: the fields that
//! never change for it (version, protocol, addresses) are written once when the SA or the
//! tunnel table is made, and for IPv4 their share of the header checksum is summed once too.
//! Per packet, [`OuterTemplate::emit4`] copies the 20 octets and sets the few fields that vary
//! (TOS, total length, identification, DF, TTL), adding only those to the precomputed sum —
//! instead of writing every field and summing the whole header again.

use crate::wire::checksum;
use crate::wire::ipv4::{FLAG_DF, MIN_HEADER_LEN as IPV4_LEN};
use crate::wire::ipv6::HEADER_LEN as IPV6_LEN;
use crate::wire::put16;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A prebuilt outer header (IPv4 or IPv6, by how it was made).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OuterTemplate {
    hdr: [u8; IPV6_LEN],
    /// IPv4: one's-complement sum, folded to 16 bits, of the constant words: version/IHL,
    /// protocol, source and destination.
    sum: u32,
}

impl OuterTemplate {
    /// IPv4 from `src` to `dst` carrying `proto` (ESP, or UDP for NAT-T).
    pub fn v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8) -> Self {
        let mut hdr = [0u8; IPV6_LEN];
        hdr[0] = 0x45;
        hdr[9] = proto;
        hdr[12..16].copy_from_slice(&src.octets());
        hdr[16..20].copy_from_slice(&dst.octets());
        // Only the constant words are non-zero yet (TOS, length, ident, flags, TTL and the
        // checksum are 0), so this is exactly their share. `sum` returns a 32-bit partial sum
        // that can be close to 2^32; folded to 16 bits here, so that adding the per-packet
        // words in `emit4` cannot wrap a u32 (a wrap loses a carry: for some address pairs
        // the checksum of some packets came out one too high).
        let mut sum = checksum::sum(&hdr[..IPV4_LEN], 0);
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        OuterTemplate { hdr, sum }
    }

    /// IPv6 from `src` to `dst`, next header `proto`, flow label 0.
    pub fn v6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8) -> Self {
        let mut hdr = [0u8; IPV6_LEN];
        hdr[0] = 0x60;
        hdr[6] = proto;
        hdr[8..24].copy_from_slice(&src.octets());
        hdr[24..40].copy_from_slice(&dst.octets());
        OuterTemplate { hdr, sum: 0 }
    }

    /// Write the IPv4 header at the start of `b` (at least 20 octets, checked by the caller):
    /// what `Ipv4Repr::emit` would write for the same values.
    #[inline(always)]
    pub fn emit4(&self, b: &mut [u8], tos: u8, total_len: u16, ident: u16, df: bool, ttl: u8) {
        let flags = if df { FLAG_DF } else { 0 };
        let h = &mut b[..IPV4_LEN];
        h.copy_from_slice(&self.hdr[..IPV4_LEN]);
        h[1] = tos;
        put16(h, 2, total_len);
        put16(h, 4, ident);
        put16(h, 6, flags);
        h[8] = ttl;
        // The template's word 0 is 0x4500 and word 4 is 0x00pp: TOS and TTL are their low and
        // high octets, added here; the checksum word itself is 0 in the template.
        let acc = self.sum
            + tos as u32
            + total_len as u32
            + ident as u32
            + flags as u32
            + ((ttl as u32) << 8);
        put16(h, 10, checksum::finish(acc));
    }

    /// Write the IPv6 header at the start of `b` (at least 40 octets, checked by the caller).
    #[inline(always)]
    pub fn emit6(&self, b: &mut [u8], traffic_class: u8, payload_len: u16, hop_limit: u8) {
        let h = &mut b[..IPV6_LEN];
        h.copy_from_slice(&self.hdr);
        h[0] = 0x60 | (traffic_class >> 4);
        h[1] = traffic_class << 4;
        put16(h, 4, payload_len);
        h[7] = hop_limit;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ipv4::Ipv4Repr;
    use crate::wire::ipv6::Ipv6Repr;
    use proptest::prelude::*;

    /// What `Ipv4Repr::emit` writes for these values (`len` is the total length).
    #[allow(clippy::too_many_arguments)]
    fn emitted4(
        b: &mut [u8],
        src: [u8; 4],
        dst: [u8; 4],
        proto: u8,
        tos: u8,
        len: u16,
        ident: u16,
        df: bool,
        ttl: u8,
    ) {
        Ipv4Repr {
            src,
            dst,
            protocol: proto,
            tos,
            ttl,
            ident,
            dont_frag: df,
            payload_len: len.wrapping_sub(20),
        }
        .emit(b);
    }

    /// A header whose constant words sum (as 32-bit halves) to just under 2^32: adding the
    /// per-packet words to that unfolded sum wrapped a u32 and gave 0xffff for 0xfffe.
    #[test]
    fn the_checksum_survives_a_constant_sum_near_two_to_the_32() {
        let (src, dst) = ([186, 146, 0, 0], [0, 0, 81, 44]);
        let (proto, tos, len, ident, ttl) = (107, 0xaf, 0xf361, 0xdbc4, 0x9f);
        let mut want = [0u8; 20];
        emitted4(&mut want, src, dst, proto, tos, len, ident, true, ttl);
        assert_eq!(&want[10..12], &[0xff, 0xfe]);
        let mut got = [0u8; 20];
        OuterTemplate::v4(src.into(), dst.into(), proto)
            .emit4(&mut got, tos, len, ident, true, ttl);
        assert_eq!(got, want);
    }

    proptest! {
        /// The template writes exactly what the header emitters write, checksum included.
        #[test]
        fn template_matches_the_emitters(
            src: [u8; 4], dst: [u8; 4], proto: u8, tos: u8, len: u16, ident: u16, df: bool,
            ttl: u8, src6: [u8; 16], dst6: [u8; 16],
        ) {
            let mut want = [0xaau8; 24];
            emitted4(&mut want, src, dst, proto, tos, len, ident, df, ttl);
            let mut got = [0x55u8; 24];
            OuterTemplate::v4(src.into(), dst.into(), proto).emit4(&mut got, tos, len, ident, df, ttl);
            prop_assert_eq!(&got[..20], &want[..20]);
            prop_assert_eq!(&got[20..], &[0x55u8; 4][..], "nothing past the header");

            let mut want = [0u8; 40];
            Ipv6Repr {
                src: src6,
                dst: dst6,
                next_header: proto,
                traffic_class: tos,
                flow_label: 0,
                hop_limit: ttl,
                payload_len: len,
            }
            .emit(&mut want);
            let mut got = [0x55u8; 40];
            OuterTemplate::v6(src6.into(), dst6.into(), proto).emit6(&mut got, tos, len, ttl);
            prop_assert_eq!(got, want);
        }
    }
}
