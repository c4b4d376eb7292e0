//! Turning an offending packet into the ICMP error that reports it, in place: the original IP
//! packet (already at offset 0 of the frame, L2 stripped) is trimmed to what an error may
//! quote, and the new IP + ICMP headers are prepended into headroom. No buffer is allocated,
//! which is what lets a worker answer "TTL exceeded" or "packet too big" on the hot path.
//!
//! The RFC 1812 §4.3.2.7 / RFC 4443 §2.4(e) suppression rules are applied here: no error about
//! an ICMP error, a non-first fragment, or a packet from an unspecified, multicast or broadcast
//! source (and none about multicast destinations, except ICMPv6 packet-too-big).

use crate::packet::Packet;
use crate::wire::icmp;
use crate::wire::ipproto;
use crate::wire::ipv4::{self, Ipv4Packet, Ipv4Repr};
use crate::wire::ipv6::{self, Ipv6Packet, Ipv6Repr};

/// What to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpError {
    /// TTL / hop limit reached zero in transit.
    TimeExceeded,
    /// The packet does not fit the next hop's MTU and may not be fragmented (IPv4 "fragmentation
    /// needed", IPv6 "packet too big"), with the MTU to report.
    TooBig { mtu: u32 },
}

/// TOS of generated errors: Internetwork Control (RFC 1812 §4.3.2.5).
const ERROR_TOS: u8 = 0xc0;
/// TTL / hop limit of generated errors.
const ERROR_TTL: u8 = 64;

/// Rewrite the IPv4 packet at the start of `pkt` into an ICMPv4 error from `our_src`.
/// Returns `false` (packet untouched) when the rules forbid an error or room is short; the
/// caller then just drops it under its original reason.
pub fn to_icmp4_error<P: Packet>(pkt: &mut P, kind: IcmpError, our_src: [u8; 4]) -> bool {
    let (src, total_len) = {
        let Ok(ip) = Ipv4Packet::new_checked(pkt.data()) else {
            return false;
        };
        let src = ip.src();
        let dst = ip.dst();
        if src == [0; 4] || src[0] >= 224 || src[0] == 127 || dst[0] >= 224 {
            return false;
        }
        if ip.frag_offset() != 0 {
            return false;
        }
        if ip.protocol() == ipproto::ICMP {
            match icmp::type_code(ip.payload()) {
                Some((t, _)) if !icmp::v4::is_error(t) => {}
                _ => return false,
            }
        }
        (src, ip.total_len() as usize)
    };
    const EXTRA: usize = ipv4::MIN_HEADER_LEN + icmp::HEADER_LEN;
    let keep = total_len.min(icmp::v4::MAX_ERROR_LEN - EXTRA);
    if pkt.headroom() < EXTRA {
        return false;
    }
    let excess = pkt.len() - keep;
    if !pkt.trim(excess) || !pkt.prepend(EXTRA) {
        return false;
    }
    let (ty, code, rest) = match kind {
        IcmpError::TimeExceeded => (icmp::v4::TIME_EXCEEDED, icmp::v4::CODE_TTL_EXCEEDED, 0),
        IcmpError::TooBig { mtu } => (
            icmp::v4::DEST_UNREACHABLE,
            icmp::v4::CODE_FRAG_NEEDED,
            mtu.min(0xffff),
        ),
    };
    let b = pkt.data_mut();
    Ipv4Repr {
        src: our_src,
        dst: src,
        protocol: ipproto::ICMP,
        tos: ERROR_TOS,
        ttl: ERROR_TTL,
        ident: 0,
        dont_frag: false,
        payload_len: (icmp::HEADER_LEN + keep) as u16,
    }
    .emit(b);
    icmp::emit_v4(&mut b[ipv4::MIN_HEADER_LEN..], ty, code, rest);
    true
}

/// Rewrite the IPv6 packet at the start of `pkt` into an ICMPv6 error from `our_src`.
/// Same contract as [`to_icmp4_error`].
pub fn to_icmp6_error<P: Packet>(pkt: &mut P, kind: IcmpError, our_src: [u8; 16]) -> bool {
    let (src, total_len) = {
        let Ok(ip) = Ipv6Packet::new_checked(pkt.data()) else {
            return false;
        };
        let src = ip.src();
        let dst = ip.dst();
        let too_big = matches!(kind, IcmpError::TooBig { .. });
        if src == [0; 16] || src[0] == 0xff || (dst[0] == 0xff && !too_big) {
            return false;
        }
        let Ok(ul) = ip.upper_layer() else {
            return false;
        };
        if ul.non_first_fragment {
            return false;
        }
        if ul.protocol == ipproto::ICMPV6 {
            match icmp::type_code(&pkt.data()[ul.offset.min(pkt.len())..]) {
                Some((t, _)) if !icmp::v6::is_error(t) => {}
                _ => return false,
            }
        }
        (src, ip.total_len())
    };
    const EXTRA: usize = ipv6::HEADER_LEN + icmp::HEADER_LEN;
    let keep = total_len.min(icmp::v6::MAX_ERROR_LEN - EXTRA);
    if pkt.headroom() < EXTRA {
        return false;
    }
    let excess = pkt.len() - keep;
    if !pkt.trim(excess) || !pkt.prepend(EXTRA) {
        return false;
    }
    let (ty, rest) = match kind {
        IcmpError::TimeExceeded => (icmp::v6::TIME_EXCEEDED, 0),
        IcmpError::TooBig { mtu } => (icmp::v6::PACKET_TOO_BIG, mtu),
    };
    let b = pkt.data_mut();
    Ipv6Repr {
        src: our_src,
        dst: src,
        next_header: ipproto::ICMPV6,
        traffic_class: ERROR_TOS,
        flow_label: 0,
        hop_limit: ERROR_TTL,
        payload_len: (icmp::HEADER_LEN + keep) as u16,
    }
    .emit(b);
    let (hdr, msg) = b.split_at_mut(ipv6::HEADER_LEN);
    let dst: [u8; 16] = hdr[24..40].try_into().unwrap_or([0; 16]);
    icmp::emit_v6(msg, ty, 0, rest, &our_src, &dst);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapPacket;
    use etherparse::{Icmpv4Type, Icmpv6Type, PacketBuilder, SlicedPacket};

    fn udp4(len: usize) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 9, 0, 1], 1)
            .udp(1000, 2000)
            .write(&mut v, &vec![0x5a; len])
            .unwrap();
        v
    }

    #[test]
    fn time_exceeded_v4_quotes_original_and_parses() {
        let orig = udp4(100);
        let mut p = HeapPacket::from_frame(&orig);
        assert!(to_icmp4_error(
            &mut p,
            IcmpError::TimeExceeded,
            [192, 0, 2, 1]
        ));
        let s = SlicedPacket::from_ip(p.data()).unwrap();
        let ip = match s.net.unwrap() {
            etherparse::NetSlice::Ipv4(i) => i,
            _ => panic!("not v4"),
        };
        assert_eq!(ip.header().destination(), [10, 0, 0, 1]);
        assert_eq!(ip.header().source(), [192, 0, 2, 1]);
        match s.transport.unwrap() {
            etherparse::TransportSlice::Icmpv4(i) => {
                assert!(matches!(i.icmp_type(), Icmpv4Type::TimeExceeded(_)));
                assert_eq!(i.payload(), &orig[..]);
            }
            _ => panic!("not icmp"),
        }
        assert!(crate::wire::icmp::verify_v4(&p.data()[20..]));
    }

    #[test]
    fn frag_needed_v4_is_capped_at_576() {
        let mut p = HeapPacket::from_frame(&udp4(1400));
        assert!(to_icmp4_error(
            &mut p,
            IcmpError::TooBig { mtu: 1400 },
            [192, 0, 2, 1]
        ));
        assert_eq!(p.len(), 576);
        assert_eq!(&p.data()[20..22], &[3, 4]);
        assert_eq!(u16::from_be_bytes([p.data()[26], p.data()[27]]), 1400);
    }

    #[test]
    fn no_error_about_errors_or_from_bad_sources() {
        let mut v = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 9, 0, 1], 1)
            .icmpv4(Icmpv4Type::TimeExceeded(
                etherparse::icmpv4::TimeExceededCode::TtlExceededInTransit,
            ))
            .write(&mut v, &[0; 28])
            .unwrap();
        let mut p = HeapPacket::from_frame(&v);
        assert!(!to_icmp4_error(
            &mut p,
            IcmpError::TimeExceeded,
            [1, 1, 1, 1]
        ));
        assert_eq!(p.data(), &v[..]);
        let mut m = udp4(10);
        m[12] = 224; // multicast source
        let mut p = HeapPacket::from_frame(&m);
        assert!(!to_icmp4_error(
            &mut p,
            IcmpError::TimeExceeded,
            [1, 1, 1, 1]
        ));
        let mut p = HeapPacket::with_room(&udp4(10), 10, 0);
        assert!(
            !to_icmp4_error(&mut p, IcmpError::TimeExceeded, [1, 1, 1, 1]),
            "no headroom"
        );
    }

    #[test]
    fn packet_too_big_v6() {
        let mut v = Vec::new();
        let (s, d) = (
            [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0x20u8; 16],
        );
        PacketBuilder::ipv6(s, d, 5)
            .udp(1, 2)
            .write(&mut v, &vec![1; 1400])
            .unwrap();
        let mut p = HeapPacket::from_frame(&v);
        let me = [0xfe; 16];
        assert!(to_icmp6_error(&mut p, IcmpError::TooBig { mtu: 1280 }, me));
        assert_eq!(p.len(), 1280);
        let s6 = SlicedPacket::from_ip(p.data()).unwrap();
        match s6.transport.unwrap() {
            etherparse::TransportSlice::Icmpv6(i) => {
                assert!(matches!(
                    i.icmp_type(),
                    Icmpv6Type::PacketTooBig { mtu: 1280 }
                ));
                let hdr = etherparse::Ipv6HeaderSlice::from_slice(p.data()).unwrap();
                assert_eq!(
                    i.icmp_type()
                        .calc_checksum(hdr.source(), hdr.destination(), i.payload())
                        .unwrap(),
                    i.checksum()
                );
            }
            _ => panic!("not icmpv6"),
        }
    }
}
