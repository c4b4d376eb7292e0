//! Pipeline tests of the tunnel nodes over heap packets: a GRE routed interface, VXLAN
//! cross-connects on VLANs, an inbound-only tunnel; MTU handling and per-tunnel counters.

use super::tests::{adjacency, route, udp4, Rig, HOST_A, HOST_B, MAC0, MAC1};
use super::*;
use crate::packet::HeapPacket;
use crate::tables::fib::{Fib, NextHop};
use crate::tables::iface::{IfKind, Interface, PortEntry};
use crate::tables::tunnels::{Attach, TunnelEntry, TunnelShared, TunnelSpec, TunnelTable};
use crate::tunnel::{self, Endpoints, TunnelEncap, TunnelKind};
use crate::wire::ethernet::{self, EtherType};
use crate::wire::{Ipv4Packet, Mac};
use std::sync::Arc;

const GRE: u32 = 0;
const VX300: u32 = 1;
const INBOUND: u32 = 2;
const VX301: u32 = 3;

fn ep(local: &str, remote: &str) -> Endpoints {
    Endpoints::V4 {
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
    }
}

fn tunnel(kind: TunnelKind, key: u32, e: Endpoints) -> TunnelEncap {
    let mut t = TunnelEncap::new(kind, e);
    t.key = Some(key);
    t
}

fn spec(entry: TunnelEntry, remote_any: bool) -> TunnelSpec {
    TunnelSpec {
        entry,
        remote_any,
        geneve_known: vec![],
    }
}

fn entry(encap: TunnelEncap, attach: Attach, mtu: u16, inbound_only: bool) -> TunnelEntry {
    TunnelEntry {
        encap,
        inbound_only,
        attach,
        mtu,
        shared: Arc::new(TunnelShared::new(1)),
    }
}

/// Port 0: 10.0.0.1/24 (host A, VLANs 300/301 cross-connected to VXLAN 100/101); port 1:
/// 10.1.0.1/24, the underlay to the peer VTEP 10.1.0.2 (host B). Interface 2 is GRE key 7 to
/// the peer (10.9.0.0/16 routed into it); 10.8.0.0/16 goes into an inbound-only tunnel.
fn rig() -> Rig {
    let mut r = Rig::new();
    let port_if = |port, mac, src: [u8; 4]| Interface {
        kind: IfKind::Port { port, vlan: 0 },
        mac,
        mtu: 1500,
        icmp_src_v4: Some(src),
        icmp_src_v6: None,
    };
    let interfaces = vec![
        port_if(0, MAC0, [10, 0, 0, 1]),
        port_if(1, MAC1, [10, 1, 0, 1]),
        Interface {
            kind: IfKind::Tunnel { tunnel: GRE },
            mac: Mac::ZERO,
            mtu: 1400,
            icmp_src_v4: Some([192, 168, 100, 1]),
            icmp_src_v6: None,
        },
    ];
    let adj = adjacency;
    let nhs = vec![
        NextHop::Local { ifindex: 0 },
        adj(0, 0, HOST_A, MAC0),
        NextHop::Local { ifindex: 1 },
        adj(1, 1, HOST_B, MAC1),
        NextHop::Tunnel { tunnel: GRE },
        NextHop::Tunnel { tunnel: INBOUND },
        NextHop::Local { ifindex: 2 },
    ];
    let rt = route;
    let routes = [
        rt("10.0.0.1", 32, 0),
        rt("10.0.0.0", 24, 1),
        rt("10.1.0.1", 32, 2),
        rt("10.1.0.0", 24, 3),
        rt("10.9.0.0", 16, 4),
        rt("10.8.0.0", 16, 5),
        rt("192.168.100.1", 32, 6),
    ];
    let us = ep("10.1.0.1", "10.1.0.2");
    let xc = |vlan| Attach::Xconnect { port: 0, vlan };
    let mut tunnels = TunnelTable::build(vec![
        spec(
            entry(
                tunnel(TunnelKind::Gre, 7, us),
                Attach::L3 { ifindex: 2 },
                1400,
                false,
            ),
            false,
        ),
        spec(
            entry(tunnel(TunnelKind::Vxlan, 100, us), xc(300), 1464, false),
            false,
        ),
        spec(
            entry(
                tunnel(TunnelKind::Gre, 9, us),
                Attach::L3 { ifindex: 2 },
                1400,
                true,
            ),
            true,
        ),
        spec(
            entry(tunnel(TunnelKind::Vxlan, 101, us), xc(301), 1464, false),
            false,
        ),
    ])
    .unwrap();
    // As the control thread does with every table version.
    let fib = Fib::build(&routes, nhs).unwrap();
    tunnels.route_outer(&fib);
    r.t = Tables {
        version: 1,
        ports: vec![
            PortEntry {
                mac: MAC0,
                untagged: Some(0),
                vlans: vec![],
                xconnects: vec![(300, VX300), (301, VX301)],
            },
            PortEntry {
                mac: MAC1,
                untagged: Some(1),
                vlans: vec![],
                xconnects: vec![],
            },
        ],
        interfaces,
        fib,
        ipsec: Default::default(),
        tunnels,
    };
    r
}

fn counters(r: &Rig, t: u32) -> &crate::tables::tunnels::TunnelCounters {
    r.t.tunnels.get(t).unwrap().shared.worker(0).unwrap()
}

/// A frame from the peer VTEP: `inner` encapsulated as the peer would (its side of `t`).
fn from_peer(kind: TunnelKind, key: u32, inner: &[u8]) -> Vec<u8> {
    let t = tunnel(kind, key, ep("10.1.0.2", "10.1.0.1"));
    let mut p = HeapPacket::with_room(inner, 256, 64);
    tunnel::encap(&mut p, &t, 99, None, 1).unwrap();
    assert!(p.prepend(14));
    ethernet::write_header(p.data_mut(), MAC1, HOST_B, EtherType::IPV4);
    p.to_vec()
}

/// Outer IPv4 (after 14 bytes of Ethernet) of a frame to the peer: (protocol, payload).
fn outer(f: &[u8]) -> (u8, Vec<u8>) {
    assert_eq!(&f[0..6], &HOST_B.0, "to the peer's MAC");
    let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src(), ip.dst()), ([10, 1, 0, 1], [10, 1, 0, 2]));
    (ip.protocol(), ip.payload().to_vec())
}

#[test]
fn routed_into_gre_and_back() {
    let mut r = rig();
    let f = udp4(MAC0, [10, 0, 0, 2], [10, 9, 1, 1], 64, 200);
    r.rx(0, std::slice::from_ref(&f));
    let out = r.take_tx(1);
    assert_eq!(out.len(), 1, "drops: {:?}", r.counters.total_drops());
    let (proto, gre) = outer(&out[0]);
    assert_eq!(proto, 47);
    assert_eq!(
        &gre[..8],
        &[0x20, 0, 0x08, 0x00, 0, 0, 0, 7],
        "GRE, K bit, key 7"
    );
    let inner = &gre[8..];
    assert_eq!(inner[8], 63, "inner TTL decremented once");
    assert_eq!(&inner[20..], &f[34..], "inner payload untouched");
    assert_eq!(counters(&r, GRE).tx_packets.get(), 1);
    assert_eq!(counters(&r, GRE).tx_bytes.get(), (f.len() - 14) as u64);

    // The peer's answer comes back through the tunnel and is routed to host A.
    let mut reply = Vec::new();
    etherparse::PacketBuilder::ipv4([10, 9, 1, 1], [10, 0, 0, 2], 64)
        .udp(5678, 1234)
        .write(&mut reply, &[1; 30])
        .unwrap();
    r.rx(1, &[from_peer(TunnelKind::Gre, 7, &reply)]);
    let back = r.take_tx(0);
    assert_eq!(back.len(), 1);
    assert_eq!(&back[0][0..6], &HOST_A.0);
    assert_eq!(back[0][14 + 8], 63);
    assert_eq!(&back[0][14 + 20..], &reply[20..]);
    assert_eq!(counters(&r, GRE).rx_packets.get(), 1);
    assert_eq!(r.counters.total_drops(), 0);
}

#[test]
fn keys_that_match_no_tunnel_are_refused() {
    let mut r = rig();
    let mut ip = Vec::new();
    etherparse::PacketBuilder::ipv4([10, 9, 1, 1], [10, 0, 0, 2], 64)
        .udp(1, 2)
        .write(&mut ip, &[0; 8])
        .unwrap();
    r.rx(1, &[from_peer(TunnelKind::Gre, 8, &ip)]);
    assert_eq!(r.drops(DropReason::TunnelNoMatch), 1);
    // Key 9 is the inbound-only tunnel from any remote: it receives.
    r.rx(1, &[from_peer(TunnelKind::Gre, 9, &ip)]);
    assert_eq!(r.take_tx(0).len(), 1);
    assert_eq!(counters(&r, INBOUND).rx_packets.get(), 1);
    // ...but is never used to send.
    r.rx(0, &[udp4(MAC0, [10, 0, 0, 2], [10, 8, 0, 1], 64, 10)]);
    assert_eq!(r.drops(DropReason::TunnelInboundOnly), 1);
    assert_eq!(
        counters(&r, INBOUND).drops[DropReason::TunnelInboundOnly as usize].get(),
        1
    );
    assert!(r.take_tx(1).is_empty());
}

fn tagged(vlan: u16, payload_len: usize) -> Vec<u8> {
    let mut f = udp4(
        Mac([0xff; 6]),
        [192, 168, 1, 1],
        [192, 168, 1, 2],
        64,
        payload_len,
    );
    f.splice(12..12, [0x81, 0x00, (vlan >> 8) as u8, vlan as u8]);
    f
}

#[test]
fn vlan_cross_connects_keep_vnis_apart() {
    let mut r = rig();
    let f300 = tagged(300, 50);
    let f301 = tagged(301, 60);
    r.rx(0, &[f300.clone(), f301.clone()]);
    let out = r.take_tx(1);
    assert_eq!(out.len(), 2);
    for (o, (vni, f)) in out.iter().zip([(100u8, &f300), (101, &f301)]) {
        let (proto, udp) = outer(o);
        assert_eq!(proto, 17);
        assert_eq!(&udp[2..4], &4789u16.to_be_bytes());
        assert_eq!(
            &udp[8..16],
            &[0x08, 0, 0, 0, 0, 0, vni, 0],
            "VXLAN I flag and VNI"
        );
        let mut untagged = f.clone();
        untagged.drain(12..16);
        assert_eq!(
            &udp[16..],
            &untagged[..],
            "the frame without its service tag"
        );
    }
    // From the peer: VNI 101 comes out tagged 301, VNI 100 tagged 300.
    let inner = {
        let mut f = tagged(1, 40);
        f.drain(12..16);
        f
    };
    r.rx(
        1,
        &[
            from_peer(TunnelKind::Vxlan, 101, &inner),
            from_peer(TunnelKind::Vxlan, 100, &inner),
            from_peer(TunnelKind::Vxlan, 102, &inner),
        ],
    );
    let back = r.take_tx(0);
    assert_eq!(back.len(), 2);
    assert_eq!(&back[0][12..16], &[0x81, 0, 0x01, 0x2d]);
    assert_eq!(&back[1][12..16], &[0x81, 0, 0x01, 0x2c]);
    for b in &back {
        assert_eq!(&b[..12], &inner[..12]);
        assert_eq!(&b[16..], &inner[12..]);
    }
    assert_eq!(r.drops(DropReason::TunnelNoMatch), 1, "VNI 102 is nobody's");
    assert_eq!(counters(&r, VX300).rx_packets.get(), 1);
    assert_eq!(counters(&r, VX301).rx_packets.get(), 1);
    // A frame too big for the L2 tunnel is dropped and counted against it.
    r.rx(0, &[tagged(300, 1500 - 28)]);
    assert_eq!(
        counters(&r, VX300).drops[DropReason::MtuExceeded as usize].get(),
        1
    );
}

#[test]
fn mtu_df_gets_icmp_and_no_df_is_fragmented_inside() {
    let mut r = rig();
    let mut f = udp4(MAC0, [10, 0, 0, 2], [10, 9, 1, 1], 64, 1450 - 28);
    f[20] |= 0x40;
    Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
    r.rx(0, std::slice::from_ref(&f));
    let back = r.take_tx(0);
    assert_eq!(back.len(), 1, "ICMP to the source");
    assert_eq!(&back[0][34..36], &[3, 4], "fragmentation needed");
    assert_eq!(u16::from_be_bytes([back[0][40], back[0][41]]), 1400);
    assert_eq!(
        counters(&r, GRE).drops[DropReason::MtuExceeded as usize].get(),
        1
    );

    f[20] &= !0x40;
    Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
    r.rx(0, std::slice::from_ref(&f));
    let out = r.take_tx(1);
    assert_eq!(out.len(), 2, "two fragments, each in its own GRE packet");
    let mut payload = Vec::new();
    for o in &out {
        let (proto, gre) = outer(o);
        assert_eq!(proto, 47);
        let inner = Ipv4Packet::new_checked(&gre[8..]).unwrap();
        assert!(inner.verify_checksum());
        assert!(inner.total_len() <= 1400);
        assert_eq!(inner.frag_offset(), payload.len());
        payload.extend_from_slice(inner.payload());
    }
    assert_eq!(payload, f[34..]);
    assert_eq!(counters(&r, GRE).tx_packets.get(), 2);
}

/// Fix found by tests/tests/tunnel_malformed.rs: a fragment of a tunnel packet and a UDP
/// packet to us with its header cut short went to the host stack (which would read them as
/// whole packets) and were lost without a counter; they are now counted drops.
#[test]
fn fragments_and_short_udp_to_us_are_counted_not_punted() {
    let mut r = rig();
    let mut ip = Vec::new();
    etherparse::PacketBuilder::ipv4([10, 9, 1, 1], [10, 0, 0, 2], 64)
        .udp(1, 2)
        .write(&mut ip, &[0; 8])
        .unwrap();
    let mut frag = from_peer(TunnelKind::Gre, 7, &ip);
    frag[14 + 6] |= 0x20; // MF
    Ipv4Packet::new_unchecked(&mut frag[14..34]).fill_checksum();
    // UDP to a tunnel port of ours with 4 bytes of header.
    let mut short = from_peer(TunnelKind::Gre, 7, &ip)[..14 + 24].to_vec();
    short[14 + 9] = 17;
    short[16..18].copy_from_slice(&24u16.to_be_bytes());
    Ipv4Packet::new_unchecked(&mut short[14..34]).fill_checksum();
    r.rx(1, &[frag, short]);
    assert_eq!(r.drops(DropReason::Ipv4Fragment), 1);
    assert_eq!(r.drops(DropReason::UdpTruncated), 1);
    assert!(r.env.punted.is_empty());
    assert_eq!(counters(&r, GRE).rx_packets.get(), 0);
}
