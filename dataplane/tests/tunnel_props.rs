//! Property tests of the tunnel core: encap → decap gives the inner packet back for every kind,
//! both outer families and random inner packets and settings; decap of truncated, mutated or
//! random packets never panics, leaves a dropped packet untouched, and an accepted one is
//! exactly the inner length.

use dataplane::outer::{DfPolicy, OuterPolicy, TosPolicy};
use dataplane::packet::{HeapPacket, Packet};
use dataplane::stats::DropReason;
use dataplane::tunnel::{
    decap, decap_parse, encap, DecapConfig, Endpoints, GreSeqState, Payload, PayloadType,
    TunnelEncap, TunnelKind,
};
use dataplane::wire::geneve::{option_tlv, GeneveOptionBuf};
use dataplane::wire::ipv4::Ipv4Repr;
use dataplane::wire::ipv6::Ipv6Repr;
use proptest::prelude::*;
use std::net::{Ipv4Addr, Ipv6Addr};

const KNOWN: &[(u16, u8)] = &[(0x0102, 0x80), (0xffff, 0xff)];

fn cfg(t: &TunnelEncap) -> DecapConfig<'static> {
    let mut c = DecapConfig {
        geneve_known_options: KNOWN,
        udp6_zero_checksum: t.udp6_zero_checksum,
        ..DecapConfig::default()
    };
    match t.kind {
        TunnelKind::Vxlan => c.vxlan_port = t.dst_port,
        TunnelKind::VxlanGpe => c.vxlan_gpe_port = t.dst_port,
        TunnelKind::Geneve => c.geneve_port = t.dst_port,
        _ => {}
    }
    c
}

fn ipv4_packet(tos: u8, df: bool, opt_words: usize, payload: &[u8]) -> Vec<u8> {
    let hl = 20 + opt_words * 4;
    let mut b = vec![0u8; hl];
    Ipv4Repr {
        src: [10, 0, 0, 1],
        dst: [10, 0, 0, 2],
        protocol: 17,
        tos,
        ttl: 64,
        ident: 9,
        dont_frag: df,
        payload_len: (opt_words * 4 + payload.len()) as u16,
    }
    .emit(&mut b);
    if opt_words > 0 {
        // Re-emit with the longer IHL (options are NOPs).
        b[0] = 0x40 | (hl / 4) as u8;
        for x in &mut b[20..] {
            *x = 1;
        }
        let mut ip = dataplane::wire::Ipv4Packet::new_unchecked(&mut b[..]);
        ip.fill_checksum();
    }
    b.extend_from_slice(payload);
    b
}

fn ipv6_packet(tc: u8, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 40];
    Ipv6Repr {
        src: [0x20; 16],
        dst: [0x21; 16],
        next_header: 17,
        traffic_class: tc,
        flow_label: 0xabcde,
        hop_limit: 3,
        payload_len: payload.len() as u16,
    }
    .emit(&mut b);
    b.extend_from_slice(payload);
    b
}

/// An inner IP packet of a random family.
fn ip_inner(v6: bool) -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u8>(),
        any::<bool>(),
        0usize..3,
        prop::collection::vec(any::<u8>(), 0..160),
    )
        .prop_map(move |(tos, df, ow, pl)| {
            if v6 {
                ipv6_packet(tos, &pl)
            } else {
                ipv4_packet(tos, df, ow, &pl)
            }
        })
}

/// An inner Ethernet frame: untagged or VLAN-tagged IPv4/IPv6, ARP, or random content.
fn eth_inner() -> impl Strategy<Value = Vec<u8>> {
    (
        0u8..5,
        any::<bool>(),
        ip_inner(false),
        ip_inner(true),
        prop::collection::vec(any::<u8>(), 0..80),
    )
        .prop_map(|(shape, vlan, i4, i6, junk)| {
            let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
            let (et, body) = match shape {
                0 => (0x0800u16, i4),
                1 => (0x86dd, i6),
                2 => (0x0806, junk),
                3 => (0x0800, junk), // claims IPv4, is not
                _ => (0x1234, junk),
            };
            if vlan {
                f.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
            }
            f.extend_from_slice(&et.to_be_bytes());
            f.extend_from_slice(&body);
            f
        })
}

#[derive(Debug, Clone)]
struct Case {
    t: TunnelEncap,
    inner: Vec<u8>,
    hash: u32,
    seq: u32,
    ip_id: u16,
}

fn case() -> impl Strategy<Value = Case> {
    let settings = (
        prop::sample::select(TunnelKind::ALL.to_vec()),
        any::<bool>(),
        0u8..4,
        any::<u32>(),
        any::<(bool, bool, bool)>(),
        (1u8..=255, prop::option::of(any::<u8>()), 0u8..3),
        prop::collection::vec((0u8..3, 0usize..3), 0..4),
        (any::<u32>(), any::<u32>(), any::<u16>()),
    );
    (settings, ip_inner(false), ip_inner(true), eth_inner()).prop_map(
        |(
            (kind, v6, pl, key, (csum, seq_on, zero6), (ttl, tos, df), opts, (hash, seq, ip_id)),
            i4,
            i6,
            ie,
        )| {
            let ep = if v6 {
                Endpoints::V6 {
                    local: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
                    remote: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2),
                }
            } else {
                Endpoints::V4 {
                    local: Ipv4Addr::new(192, 0, 2, 1),
                    remote: Ipv4Addr::new(192, 0, 2, 2),
                }
            };
            let mut t = TunnelEncap::new(kind, ep);
            t.key = match kind {
                TunnelKind::Gre | TunnelKind::GreTeb => (key & 1 == 1).then_some(key),
                TunnelKind::Nvgre => Some(0x1000 + key % 0xfe_f000),
                TunnelKind::Vxlan | TunnelKind::VxlanGpe | TunnelKind::Geneve => {
                    Some(key & 0xff_ffff)
                }
                _ => None,
            };
            if matches!(kind, TunnelKind::Gre | TunnelKind::GreTeb) {
                t.gre_checksum = csum;
                t.gre_sequence = seq_on;
            }
            t.udp6_zero_checksum = zero6;
            t.outer = OuterPolicy {
                ttl,
                tos: tos.map_or(TosPolicy::Preserve, TosPolicy::Fixed),
                df: [DfPolicy::Propagate, DfPolicy::Set, DfPolicy::Clear][df as usize],
            };
            if kind.is_udp() && key & 2 == 2 {
                t.dst_port = 1024 + (key >> 16) as u16 % 1000;
                t.sport_min = 20000;
                t.sport_max = 20000 + (key >> 8) as u16 % 100;
            }
            // What the tunnel carries and an inner packet to match.
            let flexible = matches!(kind, TunnelKind::VxlanGpe | TunnelKind::Geneve);
            let (payload, inner) = if kind.default_payload() == Payload::Ethernet && !flexible {
                (Payload::Ethernet, ie)
            } else {
                match pl {
                    0 if flexible => (Payload::Ethernet, ie),
                    1 => (Payload::Ipv4, i4),
                    2 => (Payload::Ipv6, i6),
                    _ => (Payload::Ip, if key & 4 == 4 { i6 } else { i4 }),
                }
            };
            t.payload = payload;
            if kind == TunnelKind::Geneve {
                let mut tlvs = Vec::new();
                for (ty, words) in opts {
                    let (class, typ) = match ty {
                        0 => (0x0102, 0x80), // critical, known
                        1 => (0x0001, 0x05), // not critical
                        _ => (0xffff, 0xff), // critical, known
                    };
                    tlvs.extend(option_tlv(class, typ, &vec![0xa5; words * 4]));
                }
                t.geneve_options = GeneveOptionBuf::new(&tlvs).unwrap();
            }
            t.validate().unwrap();
            Case {
                t,
                inner,
                hash,
                seq,
                ip_id,
            }
        },
    )
}

fn encapsulated(c: &Case) -> Vec<u8> {
    let mut p = HeapPacket::with_room(&c.inner, 512, 0);
    encap(&mut p, &c.t, c.hash, Some(c.seq), c.ip_id).unwrap();
    p.to_vec()
}

/// Decapsulate `bytes` as tunnel `t` would; check the invariants whatever the outcome.
fn try_decap(bytes: &[u8], t: &TunnelEncap) -> Result<Vec<u8>, DropReason> {
    let info = decap_parse(bytes, &cfg(t))?;
    assert!(info.header_len + info.inner_len <= bytes.len());
    let mut p = HeapPacket::from_frame(bytes);
    let mut seq = GreSeqState::default();
    match decap(&mut p, &info, t, Some(&mut seq)) {
        Ok(ty) => {
            assert_eq!(ty, info.payload);
            assert_eq!(p.len(), info.inner_len);
            Ok(p.to_vec())
        }
        Err(e) => {
            assert_eq!(p.data(), bytes, "dropped packet was changed");
            Err(e)
        }
    }
}

proptest! {
    // At least 1024 cases; PROPTEST_CASES raises it.
    #![proptest_config(ProptestConfig { cases: ProptestConfig::default().cases.max(1024), ..ProptestConfig::default() })]

    #[test]
    fn encap_then_decap_is_identity(c in case()) {
        let outer = encapsulated(&c);
        prop_assert_eq!(outer.len(), c.t.overhead() + c.inner.len());
        let info = decap_parse(&outer, &cfg(&c.t)).unwrap();
        let want_ty = match c.t.carries() {
            Payload::Ethernet => PayloadType::Ethernet,
            _ if c.inner[0] >> 4 == 6 => PayloadType::Ipv6,
            _ => PayloadType::Ipv4,
        };
        prop_assert_eq!(info.payload, want_ty);
        prop_assert_eq!(info.header_len, c.t.overhead());
        match c.t.kind {
            TunnelKind::Nvgre => prop_assert_eq!(info.key.nvgre_vsid(), c.t.key),
            TunnelKind::Ipip | TunnelKind::Etherip => prop_assert_eq!(info.key.id, None),
            _ => prop_assert_eq!(info.key.id, c.t.key),
        }
        if c.t.gre_sequence {
            prop_assert_eq!(info.gre_seq, Some(c.seq));
        }
        prop_assert_eq!(try_decap(&outer, &c.t), Ok(c.inner.clone()));
    }

    #[test]
    fn encap_needs_exactly_the_overhead_in_headroom(c in case(), room in 0usize..400) {
        let mut p = HeapPacket::with_room(&c.inner, room, 0);
        let r = encap(&mut p, &c.t, c.hash, Some(c.seq), c.ip_id);
        if room >= c.t.overhead() {
            prop_assert!(r.is_ok());
        } else {
            prop_assert_eq!(r, Err(DropReason::NoHeadroom));
            prop_assert_eq!(p.data(), &c.inner[..]);
        }
    }

    #[test]
    fn decap_of_truncated_packets_is_refused(c in case(), cut in any::<prop::sample::Index>()) {
        let outer = encapsulated(&c);
        let n = cut.index(outer.len());
        // The outer length field no longer matches.
        prop_assert!(try_decap(&outer[..n], &c.t).is_err());
        // Outer lengths patched to the cut: the tunnel or inner header is what is short.
        let mut b = outer[..n].to_vec();
        let ip_len = c.t.endpoints.ip_header_len();
        if c.t.endpoints.is_v6() {
            if n >= 40 {
                b[4..6].copy_from_slice(&((n - 40) as u16).to_be_bytes());
            }
        } else if n >= 20 {
            b[2..4].copy_from_slice(&(n as u16).to_be_bytes());
        }
        if c.t.kind.is_udp() && n >= ip_len + 8 {
            b[ip_len + 4..ip_len + 6].copy_from_slice(&((n - ip_len) as u16).to_be_bytes());
        }
        let r = try_decap(&b, &c.t);
        // An Ethernet frame has no length of its own: a cut one is still a frame once it
        // holds an Ethernet header. Anything else cut short is refused.
        if c.t.carries() != Payload::Ethernet || n < c.t.overhead() + 14 {
            prop_assert!(r.is_err(), "accepted a packet cut at {} of {}", n, outer.len());
        }
    }

    #[test]
    fn decap_of_mutated_packets_never_panics(
        c in case(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8),
        other in prop::sample::select(TunnelKind::ALL.to_vec()),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut outer = encapsulated(&c);
        for (i, x) in &flips {
            let i = i.index(outer.len());
            outer[i] ^= x;
        }
        let _ = try_decap(&outer, &c.t);
        let n = cut.index(outer.len());
        let _ = try_decap(&outer[..n], &c.t);
        // The same bytes presented to a tunnel of another kind.
        let mut t = c.t;
        t.kind = other;
        let _ = try_decap(&outer, &t);
    }

    #[test]
    fn decap_of_random_bytes_never_panics(
        first in prop::sample::select(vec![0x45u8, 0x46, 0x4f, 0x60, 0x00]),
        proto in prop::sample::select(vec![4u8, 17, 41, 47, 97, 0, 60, 44]),
        rest in prop::collection::vec(any::<u8>(), 0..300),
        kind in prop::sample::select(TunnelKind::ALL.to_vec()),
    ) {
        let mut b = vec![first];
        b.extend_from_slice(&rest);
        if b.len() > 9 && first >> 4 == 4 {
            b[9] = proto;
            let n = b.len() as u16;
            b[2..4].copy_from_slice(&n.to_be_bytes());
        }
        if b.len() > 6 && first >> 4 == 6 {
            b[6] = proto;
            let n = (b.len().saturating_sub(40)) as u16;
            b[4..6].copy_from_slice(&n.to_be_bytes());
        }
        let ep = Endpoints::V4 { local: Ipv4Addr::new(1, 1, 1, 1), remote: Ipv4Addr::new(2, 2, 2, 2) };
        let mut t = TunnelEncap::new(kind, ep);
        t.key = Some(0x1000);
        let _ = try_decap(&b, &t);
    }
}
