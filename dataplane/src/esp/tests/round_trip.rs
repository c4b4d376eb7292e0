//! Property tests: encapsulate and decapsulate with every suite, both modes, IPv4/IPv6
//! inner and outer, NAT-T and ESN (across 2^32); single-octet tampering is an ICV failure,
//! every truncation is refused, and random input never panics.

use super::*;
use crate::outer::OuterPolicy;
use crate::packet::{HeapPacket, Packet};
use crate::stats::DropReason;
use crate::wire::{Ipv4Packet, Ipv6Packet, UdpPacket};
use proptest::prelude::*;

fn check_outer(sa: &Sa, b: &[u8], policy: &OuterPolicy, inner_tos: u8) -> usize {
    let natt = sa.natt();
    let (l4, off) = match b[0] >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(b).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(ip.total_len() as usize, b.len());
            if sa.mode().is_tunnel() {
                assert_eq!(ip.ttl(), policy.ttl);
                assert_eq!(ip.tos(), policy.outer_tos(inner_tos));
                assert_eq!((ip.src(), ip.dst()), (V4_A, V4_B));
            }
            (ip.protocol(), ip.header_len())
        }
        6 => {
            let ip = Ipv6Packet::new_checked(b).unwrap();
            assert_eq!(ip.total_len(), b.len());
            if sa.mode().is_tunnel() {
                assert_eq!(ip.hop_limit(), policy.ttl);
                assert_eq!(ip.traffic_class(), policy.outer_tos(inner_tos));
            }
            let ul = ip.upper_layer().unwrap();
            (ul.protocol, ul.offset)
        }
        _ => panic!("bad outer"),
    };
    match natt {
        Some(n) => {
            assert_eq!(l4, ipproto::UDP);
            let u = UdpPacket::new_checked(&b[off..]).unwrap();
            assert_eq!((u.src_port(), u.dst_port()), (n.sport, n.dport));
            assert_eq!(u.len() as usize, b.len() - off);
            if b[0] >> 4 == 4 {
                assert_eq!(u.checksum(), 0);
            } else {
                let ip = Ipv6Packet::new_checked(b).unwrap();
                assert!(u.verify_v6(&ip.src(), &ip.dst(), false));
            }
            off + 8
        }
        None => {
            assert_eq!(l4, ipproto::ESP);
            off
        }
    }
}

#[derive(Clone, Debug)]
struct Case {
    suite: Suite,
    tunnel: u8,
    v6: bool,
    hbh: bool,
    natt: bool,
    esn: bool,
    start: u64,
    tos: u8,
    df: bool,
    payload: Vec<u8>,
    junk: Vec<u8>,
    policy: OuterPolicy,
}

fn case() -> impl Strategy<Value = Case> {
    let suites = all_suites();
    (
        (
            proptest::sample::select(suites),
            0u8..3,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![
                Just(1u64),
                1u64..1000,
                (1u64 << 32) - 3..(1u64 << 32) + 3,
                (u32::MAX as u64 - 2)..=(u32::MAX as u64),
            ],
        ),
        (
            any::<u8>(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::collection::vec(any::<u8>(), 0..6),
            (1u8..=255, any::<bool>(), any::<u8>(), 0u8..3),
        ),
    )
        .prop_map(
            |(
                (suite, tunnel, v6, hbh, natt, esn, start),
                (tos, df, payload, junk, (ttl, fixed, dscp, dfp)),
            )| {
                use crate::outer::{DfPolicy, TosPolicy};
                Case {
                    suite,
                    tunnel,
                    v6,
                    hbh,
                    natt,
                    esn,
                    // Without ESN the sequence space ends at 2^32 - 1.
                    start: if esn {
                        start
                    } else {
                        start.min(u32::MAX as u64)
                    },
                    tos,
                    df,
                    payload,
                    junk,
                    policy: OuterPolicy {
                        ttl,
                        tos: if fixed {
                            TosPolicy::Fixed(dscp)
                        } else {
                            TosPolicy::Preserve
                        },
                        df: [DfPolicy::Propagate, DfPolicy::Set, DfPolicy::Clear][dfp as usize],
                    },
                }
            },
        )
}

fn inner_packet(c: &Case) -> Vec<u8> {
    if c.v6 {
        ipv6(ipproto::UDP, c.tos, c.hbh, &c.payload)
    } else {
        ipv4(ipproto::UDP, c.tos, c.df, &c.payload)
    }
}

fn case_cfg(c: &Case) -> SaConfig {
    SaConfig {
        esn: c.esn,
        natt: c.natt.then(NatT::default),
        replay_window: 128,
        ..SaConfig::new(0x1000_0001, mode(c.tunnel), c.suite)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Encapsulate, check the outer headers, decapsulate: the original packet comes back
    /// (link-layer junk after it excepted), and every truncation of the ESP packet is refused
    /// without a panic.
    #[test]
    fn round_trip(c in case()) {
        let (mut tx, mut rx) = pair(&case_cfg(&c));
        tx.set_next_seq_out(c.start);
        rx.replay_mut().reset_to(c.start - 1);
        let orig = inner_packet(&c);
        let mut framed = orig.clone();
        framed.extend_from_slice(&c.junk);
        let mut p = HeapPacket::from_frame(&framed);
        let info = encap(&mut tx, &mut p, &c.policy).unwrap();
        prop_assert_eq!(info.seq, c.start);
        prop_assert_eq!(info.len, p.len());
        let wire = p.to_vec();
        let esp = check_outer(&tx, &wire, &c.policy, c.tos);
        prop_assert_eq!(
            u32::from_be_bytes(wire[esp..esp + 4].try_into().unwrap()),
            0x1000_0001
        );
        prop_assert_eq!(
            u32::from_be_bytes(wire[esp + 4..esp + 8].try_into().unwrap()),
            c.start as u32
        );
        if !c.suite.encrypts() {
            // GMAC and NULL carry the payload in the clear right after the IV.
            let at = esp + 8 + c.suite.iv_len();
            let clear = if c.tunnel == 0 { &c.payload[..] } else { &orig[..] };
            prop_assert_eq!(&wire[at..at + clear.len()], clear);
        }

        for n in 0..wire.len() {
            let mut t = HeapPacket::from_frame(&wire[..n]);
            prop_assert!(decap(&mut rx, &mut t).is_err(), "truncated to {} accepted", n);
            if n >= esp {
                // Cut inside ESP with the IP and UDP lengths made to agree, so the ESP parser
                // itself meets the short packet.
                let mut t = HeapPacket::from_frame(&consistent_cut(&wire, esp, n));
                prop_assert!(decap(&mut rx, &mut t).is_err(), "cut to {} accepted", n);
                let mut t = HeapPacket::from_frame(&wire[esp..n]);
                prop_assert!(decap_esp(&mut rx, &mut t).is_err(), "esp cut to {}", n);
            }
        }
        prop_assert_eq!(rx.replay().top(), c.start - 1);

        let mut q = HeapPacket::from_frame(&wire);
        let d = decap(&mut rx, &mut q).unwrap();
        prop_assert_eq!(q.data(), &orig[..]);
        prop_assert_eq!(d.seq, c.start);
        prop_assert_eq!(d.family, Some(if c.v6 { IpFamily::V6 } else { IpFamily::V4 }));
        let nh = match (c.tunnel, c.v6) {
            (0, _) => ipproto::UDP,
            (_, false) => ipproto::IPIP,
            (_, true) => ipproto::IPV6,
        };
        prop_assert_eq!(d.next_header, nh);
        prop_assert_eq!(d.payload_len, info.payload_len);
        prop_assert_eq!(rx.counters().in_packets.get(), 1);

        // The same packet again is a duplicate.
        let mut again = HeapPacket::from_frame(&wire);
        prop_assert_eq!(decap(&mut rx, &mut again), Err(DropReason::EspReplayDuplicate));
        prop_assert_eq!(rx.counters().replay_drops.get(), 1);
    }

    /// Any single changed octet from the IV on is an ICV failure, whatever the suite.
    #[test]
    fn tamper_is_auth_failure(c in case(), pos in any::<prop::sample::Index>(), x in 1u8..=255) {
        let (mut tx, mut rx) = pair(&case_cfg(&c));
        tx.set_next_seq_out(c.start);
        rx.replay_mut().reset_to(c.start - 1);
        let mut p = HeapPacket::from_frame(&inner_packet(&c));
        encap(&mut tx, &mut p, &c.policy).unwrap();
        let mut wire = p.to_vec();
        let esp = check_outer(&tx, &wire, &c.policy, c.tos);
        let i = esp + 8 + pos.index(wire.len() - esp - 8);
        wire[i] ^= x;
        let mut q = HeapPacket::from_frame(&wire);
        prop_assert_eq!(decap(&mut rx, &mut q), Err(DropReason::EspAuthFailed));
        prop_assert_eq!(rx.replay().top(), c.start - 1);
        prop_assert_eq!(rx.counters().auth_failures.get(), 1);
    }

    /// Random bytes, and random bytes behind a plausible IPv4/IPv6/UDP header, never panic.
    #[test]
    fn garbage_never_panics(
        c in case(),
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        head in 0u8..4,
    ) {
        let (_, mut rx) = pair(&case_cfg(&c));
        let frame = match head {
            0 => bytes,
            1 => ipv4(ipproto::ESP, 0, false, &bytes),
            2 => ipv6(ipproto::ESP, 0, c.hbh, &bytes),
            _ => {
                let mut u = vec![0x11, 0x94, 0x11, 0x94, 0, 0, 0, 0];
                u[4..6].copy_from_slice(&((bytes.len() + 8) as u16).to_be_bytes());
                u.extend_from_slice(&bytes);
                ipv4(ipproto::UDP, 0, false, &u)
            }
        };
        for room in [0usize, 4, 128] {
            let mut p = HeapPacket::with_room(&frame, room, room);
            prop_assert!(decap(&mut rx, &mut p).is_err());
            let mut p = HeapPacket::with_room(&frame, room, room);
            prop_assert!(decap_esp(&mut rx, &mut p).is_err());
        }
        prop_assert_eq!(rx.counters().in_packets.get(), 0);
    }
}

/// `wire[..n]` with the outer IP (and UDP) length fields rewritten to match.
fn consistent_cut(wire: &[u8], esp: usize, n: usize) -> Vec<u8> {
    let mut w = wire[..n].to_vec();
    if w[0] >> 4 == 4 {
        let mut ip = Ipv4Packet::new_unchecked(&mut w[..]);
        ip.set_total_len(n as u16);
        let udp = ip.protocol() == ipproto::UDP;
        ip.fill_checksum();
        if udp {
            w[esp - 4..esp - 2].copy_from_slice(&((n - esp + 8) as u16).to_be_bytes());
        }
    } else {
        w[4..6].copy_from_slice(&((n - 40) as u16).to_be_bytes());
        if esp >= 48 && w[esp - 8..esp - 6] == [0x11, 0x94] {
            w[esp - 4..esp - 2].copy_from_slice(&((n - esp + 8) as u16).to_be_bytes());
        }
    }
    w
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `encap_esp` / `decap_esp` with the least headroom they need (GMAC with ESN borrows 4
    /// octets in front of the SPI on both sides).
    #[test]
    fn esp_only_round_trip(c in case(), nh in any::<u8>()) {
        let mut cfg = case_cfg(&c);
        cfg.mode = if c.tunnel == 0 { Mode::Transport } else { mode(1) };
        let nh = if c.tunnel == 0 { nh.max(1) } else { ipproto::IPIP };
        let nh = if nh == ipproto::IPV6_NONXT { 17 } else { nh };
        let (mut tx, mut rx) = pair(&cfg);
        tx.set_next_seq_out(c.start);
        rx.replay_mut().reset_to(c.start - 1);
        let body = if c.tunnel == 0 { c.payload.clone() } else { ipv4(17, c.tos, c.df, &c.payload) };
        let scratch = if c.esn && matches!(c.suite, Suite::AesGmac(_)) { 4 } else { 0 };
        let hdr = 8 + c.suite.iv_len();
        if hdr + scratch > 0 {
            let mut p = HeapPacket::with_room(&body, hdr + scratch - 1, 64);
            prop_assert_eq!(encap_esp(&mut tx, &mut p, nh), Err(DropReason::NoHeadroom));
        }
        let mut p = HeapPacket::with_room(&body, hdr + scratch, 64);
        let e = encap_esp(&mut tx, &mut p, nh).unwrap();
        prop_assert_eq!(e.seq, c.start);
        prop_assert_eq!(e.len, p.len());
        prop_assert_eq!(p.headroom(), scratch);
        let wire = p.to_vec();
        if scratch > 0 {
            let mut q = HeapPacket::with_room(&wire, 0, 0);
            prop_assert_eq!(decap_esp(&mut rx, &mut q), Err(DropReason::NoHeadroom));
        }
        let mut q = HeapPacket::with_room(&wire, scratch, 0);
        let d = decap_esp(&mut rx, &mut q).unwrap();
        prop_assert_eq!(q.data(), &body[..]);
        prop_assert_eq!((d.next_header, d.seq), (nh, c.start));
    }
}
