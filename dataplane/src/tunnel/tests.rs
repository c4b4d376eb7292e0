use super::*;
use crate::outer::{ecn, DfPolicy, TosPolicy};
use crate::packet::{HeapPacket, Packet};
use crate::wire::geneve::option_tlv;
use crate::wire::gre::{GrePacket, GreRepr};
use crate::wire::ipv4::Ipv4Repr;
use crate::wire::ipv6::Ipv6Repr;
use crate::wire::{be16, ipproto, put16, Ipv4Packet};

const L4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const R4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

fn v4() -> Endpoints {
    Endpoints::V4 {
        local: L4,
        remote: R4,
    }
}

fn v6() -> Endpoints {
    Endpoints::V6 {
        local: "2001:db8::1".parse().unwrap(),
        remote: "2001:db8::2".parse().unwrap(),
    }
}

/// An IPv4/UDP packet with `tos`, DF and `n` payload bytes.
fn ipv4(tos: u8, df: bool, n: usize) -> Vec<u8> {
    let mut b = vec![0u8; 20 + 8 + n];
    Ipv4Repr {
        src: [10, 0, 0, 1],
        dst: [10, 0, 0, 2],
        protocol: ipproto::UDP,
        tos,
        ttl: 64,
        ident: 1,
        dont_frag: df,
        payload_len: (8 + n) as u16,
    }
    .emit(&mut b);
    for (i, x) in b[20..].iter_mut().enumerate() {
        *x = i as u8;
    }
    b
}

fn ipv6(tc: u8, n: usize) -> Vec<u8> {
    let mut b = vec![0u8; 40 + n];
    Ipv6Repr {
        src: [0x20; 16],
        dst: [0x30; 16],
        next_header: ipproto::UDP,
        traffic_class: tc,
        flow_label: 1,
        hop_limit: 64,
        payload_len: n as u16,
    }
    .emit(&mut b);
    b
}

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 14];
    b[0] = 2;
    b[6] = 2;
    put16(&mut b, 12, ethertype);
    b.extend_from_slice(payload);
    b
}

fn tun(kind: TunnelKind, ep: Endpoints) -> TunnelEncap {
    let mut t = TunnelEncap::new(kind, ep);
    t.key = match kind {
        TunnelKind::Nvgre => Some(5000),
        TunnelKind::Vxlan | TunnelKind::VxlanGpe | TunnelKind::Geneve => Some(77),
        _ => None,
    };
    t.validate().unwrap();
    t
}

fn encap_ok(t: &TunnelEncap, inner: &[u8]) -> Vec<u8> {
    let mut p = HeapPacket::from_frame(inner);
    encap(&mut p, t, 0x1234_5678, Some(1), 0x4242).unwrap();
    p.to_vec()
}

fn roundtrip(t: &TunnelEncap, inner: &[u8]) -> Result<Vec<u8>, DropReason> {
    let outer = encap_ok(t, inner);
    let info = decap_parse(&outer, &DecapConfig::default())?;
    let mut p = HeapPacket::from_frame(&outer);
    decap(&mut p, &info, t, None)?;
    Ok(p.to_vec())
}

#[test]
fn inner_packs_type_tos_and_df_losslessly() {
    for ty in [PayloadType::Ethernet, PayloadType::Ipv4, PayloadType::Ipv6] {
        for df in [None, Some(false), Some(true)] {
            for tos in 0..=255u8 {
                let i = super::encap::Inner::new(ty, tos, df);
                assert_eq!((i.ty(), i.tos(), i.df()), (ty, tos, df));
            }
        }
    }
}

#[test]
fn udp_source_port_stays_in_range_and_spreads() {
    let mut seen = std::collections::HashSet::new();
    for i in 0..4096u32 {
        let h = i.wrapping_mul(0x9e37_79b9);
        let p = udp_src_port(h, 49152, 65535);
        assert!(p >= 49152);
        seen.insert(p);
        // The low half of the hash matters too.
        assert!((30000..=30009).contains(&udp_src_port(i, 30000, 30009)));
    }
    assert!(seen.len() > 3500, "{}", seen.len());
    let low: std::collections::HashSet<_> = (0..64u32).map(|i| udp_src_port(i, 0, 65535)).collect();
    assert!(low.len() > 60);
    assert_eq!(udp_src_port(0xffff_ffff, 4242, 4242), 4242);
    assert_eq!(
        udp_src_port(0xffff_ffff, 0, 65535),
        udp_src_port(0xffff_ffff, 0, 65535)
    );
    assert!((100..=200).contains(&udp_src_port(0xdead_beef, 200, 100)));
    assert!(outer_flow_label(u32::MAX) <= 0xf_ffff);
    assert_eq!(nvgre_flow_id(0x0102_0304), 4); // 1 ^ 2 ^ 3 ^ 4
    assert_eq!(nvgre_flow_id(0x0f00_00f0), 0xff);
}

#[test]
fn gre_sequence_serial_arithmetic() {
    let mut s = GreSeqState::default();
    assert_eq!(s.last(), None);
    assert!(s.accept(100).is_ok());
    assert_eq!(s.accept(100), Err(DropReason::GreSequence));
    assert_eq!(s.accept(99), Err(DropReason::GreSequence));
    assert!(s.accept(101).is_ok());
    assert!(s.accept(1000).is_ok()); // gaps are fine (losses)
    assert_eq!(s.accept(500), Err(DropReason::GreSequence));
    assert_eq!(s.last(), Some(1000));
    // Half the space ahead is "after"; exactly half is undefined and refused.
    assert_eq!(s.accept(1000 + 0x8000_0000), Err(DropReason::GreSequence));
    assert!(s.would_accept(1000 + 0x7fff_ffff));
    // Wrap-around.
    let mut w = GreSeqState::default();
    w.accept(u32::MAX - 1).unwrap();
    w.accept(u32::MAX).unwrap();
    w.accept(0).unwrap();
    w.accept(1).unwrap();
    assert_eq!(w.accept(u32::MAX), Err(DropReason::GreSequence));
    w.reset();
    assert!(w.accept(5).is_ok());
    let mut tx = GreSeqTx::default();
    assert_eq!((tx.next_seq(), tx.next_seq()), (0, 1));
}

#[test]
fn validate_refuses_bad_combinations() {
    let bad = |f: &dyn Fn(&mut TunnelEncap), k: TunnelKind| {
        let mut t = tun(k, v4());
        f(&mut t);
        t.validate().unwrap_err()
    };
    assert!(bad(&|t| t.key = None, TunnelKind::Vxlan).contains("VNI"));
    assert!(bad(&|t| t.key = Some(1 << 24), TunnelKind::Geneve).contains("24 bits"));
    assert!(bad(&|t| t.key = Some(0x10), TunnelKind::Nvgre).contains("reserved"));
    assert!(bad(&|t| t.gre_checksum = true, TunnelKind::Nvgre).contains("RFC 7637"));
    assert!(bad(&|t| t.gre_sequence = true, TunnelKind::Vxlan).contains("GRE"));
    assert!(bad(&|t| t.key = Some(1), TunnelKind::Ipip).contains("no key"));
    assert!(bad(&|t| t.payload = Payload::Ip, TunnelKind::Vxlan).contains("Ethernet"));
    assert!(bad(&|t| t.payload = Payload::Ethernet, TunnelKind::Gre).contains("gre-teb"));
    assert!(bad(&|t| t.dst_port = 0, TunnelKind::VxlanGpe).contains("port"));
    assert!(bad(
        &|t| {
            t.sport_min = 3000;
            t.sport_max = 2000
        },
        TunnelKind::Vxlan
    )
    .contains("range"));
    assert!(bad(&|t| t.outer.ttl = 0, TunnelKind::Gre).contains("TTL"));
    assert!(bad(
        &|t| t.geneve_options = GeneveOptionBuf::new(&option_tlv(1, 1, &[])).unwrap(),
        TunnelKind::Vxlan
    )
    .contains("options"));
    assert!(bad(
        &|t| {
            t.endpoints = Endpoints::V4 {
                local: L4,
                remote: Ipv4Addr::new(224, 0, 0, 5),
            }
        },
        TunnelKind::Vxlan
    )
    .contains("224.0.0.0/24"));
    assert!(bad(
        &|t| {
            t.endpoints = Endpoints::V4 {
                local: L4,
                remote: Ipv4Addr::new(239, 1, 1, 1),
            }
        },
        TunnelKind::Gre
    )
    .contains("multicast"));
    let mut m = tun(TunnelKind::Vxlan, v4());
    m.endpoints = Endpoints::V4 {
        local: L4,
        remote: Ipv4Addr::new(239, 1, 1, 1),
    };
    assert!(m.validate().is_ok());
    assert!(bad(
        &|t| {
            t.endpoints = Endpoints::V6 {
                local: "::".parse().unwrap(),
                remote: "2001:db8::2".parse().unwrap(),
            }
        },
        TunnelKind::Gre
    )
    .contains("unicast"));
}

#[test]
fn overhead_per_kind() {
    let want = [
        (TunnelKind::Gre, 24),
        (TunnelKind::GreTeb, 24),
        (TunnelKind::Nvgre, 28),
        (TunnelKind::Vxlan, 36),
        (TunnelKind::VxlanGpe, 36),
        (TunnelKind::Geneve, 36),
        (TunnelKind::Ipip, 20),
        (TunnelKind::Etherip, 22),
    ];
    for (k, n) in want {
        assert_eq!(tun(k, v4()).overhead(), n, "{k:?}");
        assert_eq!(tun(k, v6()).overhead(), n + 20, "{k:?}");
    }
    let mut g = tun(TunnelKind::Gre, v4());
    g.key = Some(1);
    g.gre_checksum = true;
    g.gre_sequence = true;
    assert_eq!(g.overhead(), 36);
    // NVGRE never sends C or S even if asked to by a bad config.
    let mut n = tun(TunnelKind::Nvgre, v4());
    n.gre_checksum = true;
    assert_eq!(n.overhead(), 28);
}

#[test]
fn encap_refuses_short_headroom_without_touching_the_packet() {
    let inner = ipv4(0, true, 10);
    for k in TunnelKind::ALL {
        let t = tun(k, v6());
        let inner = if t.carries() == Payload::Ethernet {
            eth(0x0800, &inner)
        } else {
            inner.clone()
        };
        let mut p = HeapPacket::with_room(&inner, t.overhead() - 1, 0);
        assert_eq!(
            encap(&mut p, &t, 0, None, 0),
            Err(DropReason::NoHeadroom),
            "{k:?}"
        );
        assert_eq!(p.data(), &inner[..]);
        let mut p = HeapPacket::with_room(&inner, t.overhead(), 0);
        assert!(encap(&mut p, &t, 0, None, 0).is_ok(), "{k:?}");
    }
}

#[test]
fn encap_refuses_payloads_the_tunnel_does_not_carry() {
    let cases: &[(TunnelKind, Payload, Vec<u8>, DropReason)] = &[
        (
            TunnelKind::Ipip,
            Payload::Ipv4,
            ipv6(0, 8),
            DropReason::IpipBadInner,
        ),
        (
            TunnelKind::Ipip,
            Payload::Ipv6,
            ipv4(0, true, 8),
            DropReason::IpipBadInner,
        ),
        (
            TunnelKind::Ipip,
            Payload::Ip,
            vec![0x50; 40],
            DropReason::IpipBadInner,
        ),
        (
            TunnelKind::Gre,
            Payload::Ip,
            vec![0x00; 40],
            DropReason::GreBadProtocol,
        ),
        (
            TunnelKind::VxlanGpe,
            Payload::Ipv6,
            ipv4(0, true, 8),
            DropReason::VxlanGpeBadNextProtocol,
        ),
        (
            TunnelKind::Geneve,
            Payload::Ipv4,
            ipv6(0, 8),
            DropReason::GeneveBadProtocol,
        ),
        (
            TunnelKind::Gre,
            Payload::Ip,
            ipv4(0, true, 8)[..19].to_vec(),
            DropReason::InnerTruncated,
        ),
        (
            TunnelKind::Ipip,
            Payload::Ip,
            ipv6(0, 0)[..39].to_vec(),
            DropReason::InnerTruncated,
        ),
        (
            TunnelKind::Gre,
            Payload::Ip,
            vec![],
            DropReason::InnerTruncated,
        ),
        (
            TunnelKind::Vxlan,
            Payload::Ethernet,
            vec![0; 13],
            DropReason::InnerTruncated,
        ),
    ];
    for (k, pl, inner, want) in cases {
        let mut t = tun(*k, v4());
        t.payload = *pl;
        let mut p = HeapPacket::from_frame(inner);
        assert_eq!(encap(&mut p, &t, 0, None, 0), Err(*want), "{k:?} {pl:?}");
        assert_eq!(p.data(), &inner[..]);
    }
    // Too long for an IPv4 total length.
    let t = tun(TunnelKind::Ipip, v4());
    let mut big = ipv4(0, true, 0);
    big.resize(65_535 - 19, 0);
    let mut p = HeapPacket::from_frame(&big);
    assert_eq!(encap(&mut p, &t, 0, None, 0), Err(DropReason::MtuExceeded));
    let mut ok = big.clone();
    ok.truncate(65_535 - 20);
    let mut p = HeapPacket::from_frame(&ok);
    assert!(encap(&mut p, &t, 0, None, 0).is_ok());
    assert_eq!(
        Ipv4Packet::new_checked(p.data()).unwrap().total_len(),
        65_535
    );
}

#[test]
fn outer_policy_applies() {
    // DF propagation and ident: inner DF set -> DF, id 0; inner DF clear -> id from caller.
    let mut t = tun(TunnelKind::Gre, v4());
    let o = encap_ok(&t, &ipv4(0xb8 | ecn::ECT1, true, 4));
    let ip = Ipv4Packet::new_checked(&o[..]).unwrap();
    assert!(ip.dont_frag() && ip.ident() == 0 && ip.verify_checksum());
    assert_eq!((ip.tos(), ip.ttl()), (0xb8 | ecn::ECT1, 64));
    let o = encap_ok(&t, &ipv4(0, false, 4));
    let ip = Ipv4Packet::new_checked(&o[..]).unwrap();
    assert!(!ip.dont_frag() && ip.ident() == 0x4242);
    // IPv6 inner -> DF set.
    let o = encap_ok(&t, &ipv6(0x28 | ecn::CE, 4));
    let ip = Ipv4Packet::new_checked(&o[..]).unwrap();
    assert!(ip.dont_frag());
    assert_eq!(ip.tos(), 0x28 | ecn::CE);
    // Fixed TOS keeps the inner ECN; fixed TTL.
    t.outer.tos = TosPolicy::Fixed(0x48 | ecn::CE);
    t.outer.ttl = 9;
    t.outer.df = DfPolicy::Clear;
    let o = encap_ok(&t, &ipv4(0xb8 | ecn::ECT0, true, 4));
    let ip = Ipv4Packet::new_checked(&o[..]).unwrap();
    assert_eq!(
        (ip.tos(), ip.ttl(), ip.dont_frag()),
        (0x48 | ecn::ECT0, 9, false)
    );
    // L2 inner: looked through Ethernet and two VLAN tags.
    let mut q = vec![0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x08, 0x00];
    q.extend(ipv4(0x20 | ecn::ECT0, false, 4));
    let v = tun(TunnelKind::Vxlan, v4());
    let o = encap_ok(&v, &eth(0x88a8, &q));
    let ip = Ipv4Packet::new_checked(&o[..]).unwrap();
    assert_eq!((ip.tos(), ip.dont_frag()), (0x20 | ecn::ECT0, false));
    // L2 inner, non-IP: Not-ECT, DF set.
    let o = encap_ok(&v, &eth(0x0806, &[0; 28]));
    let ip = Ipv4Packet::new_checked(&o[..]).unwrap();
    assert_eq!((ip.tos(), ip.dont_frag()), (0, true));
    // UDP checksum: zero over IPv4, computed over IPv6 unless told not to.
    assert_eq!(be16(&o, 26), 0);
    let mut v6t = tun(TunnelKind::Geneve, v6());
    let o = encap_ok(&v6t, &eth(0x0806, &[0; 28]));
    assert_ne!(be16(&o, 46), 0);
    v6t.udp6_zero_checksum = true;
    let o = encap_ok(&v6t, &eth(0x0806, &[0; 28]));
    assert_eq!(be16(&o, 46), 0);
}

/// Build an outer IPv4 packet around `l4` by hand (for malformed cases).
fn outer4(proto: u8, tos: u8, l4: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 20];
    Ipv4Repr {
        src: R4.octets(),
        dst: L4.octets(),
        protocol: proto,
        tos,
        ttl: 60,
        ident: 0,
        dont_frag: true,
        payload_len: l4.len() as u16,
    }
    .emit(&mut b);
    b.extend_from_slice(l4);
    b
}

fn gre(r: GreRepr, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; r.header_len()];
    r.emit(&mut b);
    b.extend_from_slice(payload);
    GrePacket::new_unchecked(&mut b[..]).fill_checksum();
    b
}

fn run(
    outer: &[u8],
    t: &TunnelEncap,
    seq: Option<&mut GreSeqState>,
) -> Result<Vec<u8>, DropReason> {
    let info = decap_parse(outer, &DecapConfig::default())?;
    let mut p = HeapPacket::from_frame(outer);
    let r = decap(&mut p, &info, t, seq);
    if r.is_err() {
        assert_eq!(p.data(), outer, "packet changed on drop");
    }
    r.map(|_| p.to_vec())
}

#[test]
fn decap_checks_the_packet_against_the_tunnel() {
    let inner4 = ipv4(0, true, 6);
    let frame = eth(0x0806, &[0; 28]);
    let g = |protocol, key, checksum, seq, pl: &[u8]| {
        outer4(
            ipproto::GRE,
            0,
            &gre(
                GreRepr {
                    protocol,
                    checksum,
                    key,
                    seq,
                },
                pl,
            ),
        )
    };
    let gre_t = tun(TunnelKind::Gre, v4());
    let teb_t = tun(TunnelKind::GreTeb, v4());
    let nv_t = tun(TunnelKind::Nvgre, v4());
    // Ethernet over GRE into an L3 GRE tunnel, and IP into a TEB tunnel.
    assert_eq!(
        run(&g(0x6558, None, false, None, &frame), &gre_t, None),
        Err(DropReason::GreBadProtocol)
    );
    assert_eq!(
        run(&g(0x0800, None, false, None, &inner4), &teb_t, None),
        Err(DropReason::GreBadProtocol)
    );
    // Key presence.
    assert_eq!(
        run(&g(0x0800, Some(1), false, None, &inner4), &gre_t, None),
        Err(DropReason::GreKeyMismatch)
    );
    let mut keyed = gre_t;
    keyed.key = Some(1);
    assert_eq!(
        run(&g(0x0800, None, false, None, &inner4), &keyed, None),
        Err(DropReason::GreKeyMismatch)
    );
    assert_eq!(
        run(&g(0x0800, Some(1), false, None, &inner4), &keyed, None),
        Ok(inner4.clone())
    );
    // NVGRE rules.
    assert_eq!(
        run(&g(0x6558, Some(5000 << 8), true, None, &frame), &nv_t, None),
        Err(DropReason::NvgreBadHeader)
    );
    assert_eq!(
        run(&g(0x6558, None, false, None, &frame), &nv_t, None),
        Err(DropReason::NvgreBadHeader)
    );
    assert_eq!(
        run(
            &g(0x0800, Some(5000 << 8), false, None, &inner4),
            &nv_t,
            None
        ),
        Err(DropReason::NvgreBadHeader)
    );
    assert_eq!(
        run(
            &g(0x6558, Some(5000 << 8 | 9), false, None, &frame),
            &nv_t,
            None
        ),
        Ok(frame.clone())
    );
    // Sequence numbers: required when configured, in order.
    let mut sq = gre_t;
    sq.gre_sequence = true;
    let mut st = GreSeqState::default();
    assert_eq!(
        run(&g(0x0800, None, false, None, &inner4), &sq, Some(&mut st)),
        Err(DropReason::GreSequence)
    );
    assert!(run(
        &g(0x0800, None, false, Some(10), &inner4),
        &sq,
        Some(&mut st)
    )
    .is_ok());
    assert_eq!(
        run(
            &g(0x0800, None, false, Some(9), &inner4),
            &sq,
            Some(&mut st)
        ),
        Err(DropReason::GreSequence)
    );
    // A packet dropped for another reason does not advance the state.
    let mut ce = g(0x0800, None, false, Some(20), &ipv4(0, true, 6));
    ce[1] = ecn::CE;
    let c = crate::wire::checksum::update16(be16(&ce, 10), 0x4500, 0x4500 | ecn::CE as u16);
    put16(&mut ce, 10, c);
    assert_eq!(run(&ce, &sq, Some(&mut st)), Err(DropReason::EcnCeOnNotEct));
    assert_eq!(st.last(), Some(10));
    assert!(run(
        &g(0x0800, None, false, Some(11), &inner4),
        &sq,
        Some(&mut st)
    )
    .is_ok());
    // Tunnels without sequence checking ignore S.
    assert!(run(&g(0x0800, None, false, Some(1), &inner4), &gre_t, None).is_ok());
    // Another encapsulation entirely.
    assert_eq!(
        run(
            &outer4(
                ipproto::ETHERIP,
                0,
                &[0x30, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
            ),
            &gre_t,
            None
        ),
        Err(DropReason::TunnelNoMatch)
    );
}

#[test]
fn decap_payload_family_checks() {
    let gpe_eth = tun(TunnelKind::VxlanGpe, v4());
    let mut gpe_ip = gpe_eth;
    gpe_ip.payload = Payload::Ip;
    let o = encap_ok(&gpe_ip, &ipv4(0, true, 3));
    let info = decap_parse(&o, &DecapConfig::default()).unwrap();
    let mut p = HeapPacket::from_frame(&o);
    assert_eq!(
        decap(&mut p, &info, &gpe_eth, None),
        Err(DropReason::VxlanGpeBadNextProtocol)
    );
    let mut gen4 = tun(TunnelKind::Geneve, v4());
    gen4.payload = Payload::Ipv4;
    let mut gen6 = gen4;
    gen6.payload = Payload::Ipv6;
    let o = encap_ok(&gen6, &ipv6(0, 3));
    let info = decap_parse(&o, &DecapConfig::default()).unwrap();
    let mut p = HeapPacket::from_frame(&o);
    assert_eq!(
        decap(&mut p, &info, &gen4, None),
        Err(DropReason::GeneveBadProtocol)
    );
    let mut ip4 = tun(TunnelKind::Ipip, v6());
    ip4.payload = Payload::Ipv4;
    let mut any = ip4;
    any.payload = Payload::Ip;
    let o = encap_ok(&any, &ipv6(0, 3));
    let info = decap_parse(&o, &DecapConfig::default()).unwrap();
    let mut p = HeapPacket::from_frame(&o);
    assert_eq!(
        decap(&mut p, &info, &ip4, None),
        Err(DropReason::IpipBadInner)
    );
    // Vxlan packet presented to a Geneve tunnel.
    let o = encap_ok(&tun(TunnelKind::Vxlan, v4()), &eth(0x0806, &[0; 28]));
    let info = decap_parse(&o, &DecapConfig::default()).unwrap();
    let mut p = HeapPacket::from_frame(&o);
    assert_eq!(
        decap(&mut p, &info, &tun(TunnelKind::Geneve, v4()), None),
        Err(DropReason::TunnelNoMatch)
    );
}

#[test]
fn decap_parse_outer_checks() {
    let cfg = DecapConfig::default();
    assert_eq!(
        decap_parse(&[], &cfg).unwrap_err(),
        DropReason::Ipv4Truncated
    );
    assert_eq!(
        decap_parse(&[0x50; 40], &cfg).unwrap_err(),
        DropReason::Ipv4BadVersion
    );
    let inner = ipv4(0, true, 6);
    let mut o = outer4(ipproto::IPIP, 0, &inner);
    assert_eq!(
        run(&o, &tun(TunnelKind::Ipip, v4()), None),
        Ok(inner.clone())
    );
    // Fragments are not decapsulated.
    o[6] |= 0x20; // MF
    assert_eq!(decap_parse(&o, &cfg).unwrap_err(), DropReason::Ipv4Fragment);
    // Other protocols and ports.
    let o = outer4(ipproto::TCP, 0, &[0; 20]);
    assert_eq!(
        decap_parse(&o, &cfg).unwrap_err(),
        DropReason::TunnelNoMatch
    );
    let mut u = vec![0u8; 16];
    crate::wire::udp::write_header(&mut u, 1, 0, 16);
    assert_eq!(
        decap_parse(&outer4(ipproto::UDP, 0, &u), &cfg).unwrap_err(),
        DropReason::TunnelNoMatch
    );
    // Truncated UDP and tunnel headers.
    assert_eq!(
        decap_parse(&outer4(ipproto::UDP, 0, &u[..7]), &cfg).unwrap_err(),
        DropReason::UdpTruncated
    );
    crate::wire::udp::write_header(&mut u, 1, 4789, 12);
    assert_eq!(
        decap_parse(&outer4(ipproto::UDP, 0, &u[..12]), &cfg).unwrap_err(),
        DropReason::VxlanTruncated
    );
    crate::wire::udp::write_header(&mut u, 1, 6081, 12);
    assert_eq!(
        decap_parse(&outer4(ipproto::UDP, 0, &u[..12]), &cfg).unwrap_err(),
        DropReason::GeneveTruncated
    );
    assert_eq!(
        decap_parse(&outer4(ipproto::GRE, 0, &[0, 0, 8]), &cfg).unwrap_err(),
        DropReason::GreTruncated
    );
    assert_eq!(
        decap_parse(&outer4(ipproto::ETHERIP, 0, &[0x30]), &cfg).unwrap_err(),
        DropReason::EtheripTruncated
    );
    // Bad UDP checksum over IPv4 (non-zero and wrong).
    let t = tun(TunnelKind::Vxlan, v4());
    let mut o = encap_ok(&t, &eth(0x0806, &[0; 28]));
    put16(&mut o, 26, 0x1234);
    assert_eq!(
        decap_parse(&o, &cfg).unwrap_err(),
        DropReason::UdpBadChecksum
    );
    // A correct non-zero UDP checksum over IPv4 is accepted.
    let l = o.len();
    // (encap_ok sent from L4 to R4: the pseudo-header uses the packet's own addresses)
    crate::wire::udp::fill_checksum_v4(&mut o[20..l], L4.octets(), R4.octets());
    assert!(decap_parse(&o, &cfg).is_ok());
    // Zero UDP checksum over IPv6 only when allowed.
    let mut t6 = tun(TunnelKind::Vxlan, v6());
    t6.udp6_zero_checksum = true;
    let o = encap_ok(&t6, &eth(0x0806, &[0; 28]));
    assert_eq!(
        decap_parse(&o, &cfg).unwrap_err(),
        DropReason::UdpBadChecksum
    );
    let allow = DecapConfig {
        udp6_zero_checksum: true,
        ..cfg
    };
    assert!(decap_parse(&o, &allow).is_ok());
    // A disabled port is not a tunnel port.
    let off = DecapConfig {
        vxlan_port: 0,
        ..allow
    };
    assert_eq!(
        decap_parse(&o, &off).unwrap_err(),
        DropReason::TunnelNoMatch
    );
}

#[test]
fn decap_outer_ipv6_extension_headers_and_fragments() {
    let inner = ipv4(0, true, 5);
    // Destination options (8 bytes) then GRE.
    let g = gre(
        GreRepr {
            protocol: 0x0800,
            checksum: false,
            key: None,
            seq: None,
        },
        &inner,
    );
    let mut ext = vec![ipproto::GRE, 0, 1, 4, 0, 0, 0, 0];
    ext.extend_from_slice(&g);
    let mut o = vec![0u8; 40];
    Ipv6Repr {
        src: [0x20; 16],
        dst: [0x21; 16],
        next_header: ipproto::IPV6_OPTS,
        traffic_class: 0,
        flow_label: 0,
        hop_limit: 9,
        payload_len: ext.len() as u16,
    }
    .emit(&mut o);
    o.extend_from_slice(&ext);
    let info = decap_parse(&o, &DecapConfig::default()).unwrap();
    assert_eq!((info.header_len, info.key.proto), (52, ipproto::GRE));
    assert_eq!(run(&o, &tun(TunnelKind::Gre, v6()), None), Ok(inner));
    // Same with a Fragment header instead.
    o[6] = ipproto::IPV6_FRAG;
    o[40] = ipproto::GRE;
    o[41] = 0;
    assert_eq!(
        decap_parse(&o, &DecapConfig::default()).unwrap_err(),
        DropReason::Ipv4Fragment
    );
}

#[test]
fn decap_inner_validation() {
    let t = tun(TunnelKind::Gre, v4());
    let g = |pl: &[u8]| {
        outer4(
            ipproto::GRE,
            0,
            &gre(
                GreRepr {
                    protocol: 0x0800,
                    checksum: false,
                    key: None,
                    seq: None,
                },
                pl,
            ),
        )
    };
    let inner = ipv4(0, true, 6);
    assert_eq!(
        run(&g(&inner[..19]), &t, None),
        Err(DropReason::InnerTruncated)
    );
    assert_eq!(
        run(&g(&inner[..33]), &t, None),
        Err(DropReason::InnerTruncated)
    );
    let mut v = inner.clone();
    v[0] = 0x65;
    assert_eq!(run(&g(&v), &t, None), Err(DropReason::Ipv4BadVersion));
    let mut v = inner.clone();
    v[0] = 0x44;
    assert_eq!(run(&g(&v), &t, None), Err(DropReason::Ipv4BadIhl));
    let mut v = inner.clone();
    put16(&mut v, 2, 19);
    assert_eq!(run(&g(&v), &t, None), Err(DropReason::Ipv4BadTotalLength));
    // IPv6 in GRE with a v4 header under the v6 protocol type.
    let o = outer4(
        ipproto::GRE,
        0,
        &gre(
            GreRepr {
                protocol: 0x86dd,
                checksum: false,
                key: None,
                seq: None,
            },
            &ipv4(0, true, 30),
        ),
    );
    assert_eq!(run(&o, &t, None), Err(DropReason::Ipv6BadVersion));
    // GRE checksum failure.
    let mut o = outer4(
        ipproto::GRE,
        0,
        &gre(
            GreRepr {
                protocol: 0x0800,
                checksum: true,
                key: None,
                seq: None,
            },
            &inner,
        ),
    );
    let n = o.len();
    o[n - 1] ^= 0xff;
    assert_eq!(run(&o, &t, None), Err(DropReason::GreBadChecksum));
}

#[test]
fn decap_ecn_on_inner_ipv4_keeps_checksum_valid() {
    let t = tun(TunnelKind::Ipip, v4());
    for (inner_ecn, outer_ecn, want) in [
        (ecn::ECT0, ecn::CE, Some(ecn::CE)),
        (ecn::ECT1, ecn::CE, Some(ecn::CE)),
        (ecn::ECT0, ecn::ECT1, Some(ecn::ECT1)),
        (ecn::ECT0, ecn::NOT_ECT, Some(ecn::ECT0)),
        (ecn::NOT_ECT, ecn::ECT0, Some(ecn::NOT_ECT)),
        (ecn::NOT_ECT, ecn::CE, None),
    ] {
        let inner = ipv4(0xb8 | inner_ecn, true, 6);
        let o = outer4(ipproto::IPIP, 0x20 | outer_ecn, &inner);
        let r = run(&o, &t, None);
        match want {
            None => assert_eq!(r, Err(DropReason::EcnCeOnNotEct)),
            Some(e) => {
                let d = r.unwrap();
                let ip = Ipv4Packet::new_checked(&d[..]).unwrap();
                assert_eq!(ip.tos(), 0xb8 | e);
                assert!(ip.verify_checksum());
            }
        }
    }
    // IPv6 inner through Ethernet: traffic class updated across the byte boundary.
    let v = tun(TunnelKind::Etherip, v4());
    let frame = eth(0x86dd, &ipv6(0xfc | ecn::ECT1, 4));
    let o = outer4(
        ipproto::ETHERIP,
        ecn::CE,
        &[&[0x30, 0][..], &frame].concat(),
    );
    let d = run(&o, &v, None).unwrap();
    assert_eq!(
        crate::wire::Ipv6Packet::new_checked(&d[14..])
            .unwrap()
            .traffic_class(),
        0xff
    );
    assert_eq!(d[14] >> 4, 6);
}

#[test]
fn decap_with_stale_info_is_harmless() {
    let t = tun(TunnelKind::Vxlan, v4());
    let o = encap_ok(&t, &eth(0x0806, &[0; 28]));
    let info = decap_parse(&o, &DecapConfig::default()).unwrap();
    let mut p = HeapPacket::from_frame(&o[..o.len() - 5]);
    assert_eq!(
        decap(&mut p, &info, &t, None),
        Err(DropReason::InnerTruncated)
    );
}

#[test]
fn roundtrip_each_kind_both_families() {
    for k in TunnelKind::ALL {
        for ep in [v4(), v6()] {
            let t = tun(k, ep);
            let inner = match t.carries() {
                Payload::Ethernet => eth(0x0800, &ipv4(0x02, false, 11)),
                _ => ipv6(0x01, 11),
            };
            assert_eq!(roundtrip(&t, &inner), Ok(inner), "{k:?} {ep:?}");
        }
    }
}
