//! The tunnel fast paths against the node pipeline: the same bursts — packets routed into GRE
//! and IPIP, frames from a port cross-connected as a whole to an L2 tunnel of every kind,
//! tunnel packets from the peer, plain forwarding between them — valid and corrupted, must
//! give the same frames, drop counters and per-tunnel counters either way.

use super::tests::{adjacency, route, udp4, Rig, HOST_A, HOST_B, MAC0, MAC1};
use super::*;
use crate::packet::HeapPacket;
use crate::tables::fib::{Fib, NextHop};
use crate::tables::iface::{IfKind, Interface, PortEntry, XCONNECT_PORT};
use crate::tables::tunnels::{Attach, TunnelEntry, TunnelShared, TunnelSpec, TunnelTable};
use crate::tunnel::{self, Endpoints, TunnelEncap, TunnelKind};
use crate::wire::ethernet::{self, EtherType};
use crate::wire::{Ipv4Packet, Mac};
use proptest::prelude::*;
use std::sync::Arc;

const MAC2: Mac = Mac([2, 0, 0, 0, 0, 0x12]);
/// The L2 tunnel kinds port 2 can be cross-connected to; the last is VXLAN over IPv6.
const L2_KINDS: [TunnelKind; 7] = [
    TunnelKind::Vxlan,
    TunnelKind::GreTeb,
    TunnelKind::Nvgre,
    TunnelKind::Geneve,
    TunnelKind::Etherip,
    TunnelKind::VxlanGpe,
    TunnelKind::Vxlan,
];

fn v4(local: &str, remote: &str) -> Endpoints {
    Endpoints::V4 {
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
    }
}

fn v6(local: &str, remote: &str) -> Endpoints {
    Endpoints::V6 {
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
    }
}

/// The last variant runs its L2 tunnel and IPIP over IPv6.
fn v6_variant(l2: usize) -> bool {
    l2 == L2_KINDS.len() - 1
}

/// Variant 2 narrows our IPIP tunnel to IPv6 (ip6ip4): the IPv4 packets routed into it and
/// the IPv4-in-IPIP from the peer are not its payload.
fn narrow_ipip(l2: usize) -> bool {
    l2 == 2
}

/// The odd variants cross-connect VLAN 300 of port 2 (tag removed, put back on the way out);
/// the others the whole port.
fn xconnect_vlan(l2: usize) -> u16 {
    if l2 % 2 == 1 {
        300
    } else {
        0
    }
}

/// Tunnel 0: GRE key 7 to 10.1.0.2 (10.9/16 routed in); 1: IPIP to 10.1.0.3 or
/// 2001:db8:1::3 (10.7/16 and 2001:db8:7::/48 routed in); 2: L2 tunnel `L2_KINDS[l2]`
/// cross-connected to the whole of port 2. Our side's view when `ours`, the peer's otherwise.
fn encaps(l2: usize, ours: bool) -> [TunnelEncap; 3] {
    let flip = |a: &str, b: &str| {
        if ours {
            (a.to_string(), b.to_string())
        } else {
            (b.to_string(), a.to_string())
        }
    };
    let (l, r) = flip("10.1.0.1", "10.1.0.2");
    let mut gre = TunnelEncap::new(TunnelKind::Gre, v4(&l, &r));
    gre.key = Some(7);
    let mut ipip = if v6_variant(l2) {
        let (l, r) = flip("2001:db8:1::1", "2001:db8:1::3");
        TunnelEncap::new(TunnelKind::Ipip, v6(&l, &r))
    } else {
        let (l, r) = flip("10.1.0.1", "10.1.0.3");
        TunnelEncap::new(TunnelKind::Ipip, v4(&l, &r))
    };
    if ours && narrow_ipip(l2) {
        ipip.payload = tunnel::Payload::Ipv6;
    }
    let kind = L2_KINDS[l2];
    let ends = if v6_variant(l2) {
        let (l, r) = flip("2001:db8:1::1", "2001:db8:1::2");
        v6(&l, &r)
    } else {
        let (l, r) = flip("10.1.0.1", "10.1.0.2");
        v4(&l, &r)
    };
    let mut x = TunnelEncap::new(kind, ends);
    if kind != TunnelKind::Etherip {
        x.key = Some(5000);
    }
    [gre, ipip, x]
}

/// Port 0: 10.0.0.1/24 with host A; port 1: the underlay 10.1.0.1/24 and 2001:db8:1::1/64,
/// the peer(s) behind HOST_B; port 2: cross-connected to tunnel 2, whole or VLAN 300 of it
/// (`xconnect_vlan`).
fn rig(l2: usize) -> Rig {
    let mut r = Rig::new();
    r.p = Pipeline::new(3);
    let port_if = |port, mac, src: [u8; 4]| Interface {
        kind: IfKind::Port { port, vlan: 0 },
        mac,
        mtu: 1500,
        icmp_src_v4: Some(src),
        icmp_src_v6: None,
    };
    let tun_if = |tunnel| Interface {
        kind: IfKind::Tunnel { tunnel },
        mac: Mac::ZERO,
        mtu: 1476,
        icmp_src_v4: Some([192, 168, 100, 1]),
        icmp_src_v6: None,
    };
    let interfaces = vec![
        port_if(0, MAC0, [10, 0, 0, 1]),
        port_if(1, MAC1, [10, 1, 0, 1]),
        port_if(2, MAC2, [10, 2, 0, 1]),
        tun_if(0),
        tun_if(1),
    ];
    let adj = adjacency;
    let nhs = vec![
        NextHop::Local { ifindex: 0 },
        adj(0, 0, HOST_A, MAC0),
        NextHop::Local { ifindex: 1 },
        adj(1, 1, HOST_B, MAC1),
        NextHop::Tunnel { tunnel: 0 },
        NextHop::Tunnel { tunnel: 1 },
    ];
    let rt = route;
    let routes = [
        rt("10.0.0.1", 32, 0),
        rt("10.0.0.0", 24, 1),
        rt("10.1.0.1", 32, 2),
        rt("10.1.0.0", 24, 3),
        rt("2001:db8:1::1", 128, 2),
        rt("2001:db8:1::", 64, 3),
        rt("10.9.0.0", 16, 4),
        rt("10.7.0.0", 16, 5),
        rt("2001:db8:a::1", 128, 0),
        rt("2001:db8:a::", 64, 1),
        rt("2001:db8:7::", 48, 5),
    ];
    let [gre, ipip, x] = encaps(l2, true);
    let entry = |encap: TunnelEncap, attach, mtu| TunnelSpec {
        entry: TunnelEntry {
            encap,
            inbound_only: false,
            attach,
            mtu,
            shared: Arc::new(TunnelShared::new(1)),
        },
        remote_any: false,
        geneve_known: vec![],
    };
    let fib = Fib::build(&routes, nhs).unwrap();
    // As the control thread does: far ends looked up once per table version.
    let mut tunnels = TunnelTable::build(vec![
        entry(gre, Attach::L3 { ifindex: 3 }, 1476),
        entry(ipip, Attach::L3 { ifindex: 4 }, 1480),
        entry(
            x,
            Attach::Xconnect {
                port: 2,
                vlan: xconnect_vlan(l2),
            },
            1400,
        ),
    ])
    .unwrap();
    tunnels.route_outer(&fib);
    let pe = |mac, untagged, xconnects| PortEntry {
        mac,
        untagged,
        vlans: vec![],
        xconnects,
    };
    r.t = Tables {
        version: 1,
        ports: vec![
            pe(MAC0, Some(0), vec![]),
            pe(MAC1, Some(1), vec![]),
            pe(
                MAC2,
                Some(2),
                vec![(
                    match xconnect_vlan(l2) {
                        0 => XCONNECT_PORT,
                        v => v,
                    },
                    2,
                )],
            ),
        ],
        interfaces,
        fib,
        ipsec: Default::default(),
        tunnels,
    };
    r
}

/// A frame from the peer: `inner` in the peer's side of tunnel `which`.
fn from_peer(l2: usize, which: usize, inner: &[u8]) -> Vec<u8> {
    let t = &encaps(l2, false)[which];
    let mut p = HeapPacket::with_room(inner, 256, 64);
    tunnel::encap(&mut p, t, 99, None, 1).unwrap();
    assert!(p.prepend(ethernet::HEADER_LEN));
    let et = if t.endpoints.is_v6() {
        EtherType::IPV6
    } else {
        EtherType::IPV4
    };
    ethernet::write_header(p.data_mut(), MAC1, HOST_B, et);
    p.to_vec()
}

/// The frame kinds of a test burst: (ingress port, frame).
fn frame(l2: usize, kind: u8, len: usize, ttl: u8) -> (u16, Vec<u8>) {
    let inner_ip = |dst: [u8; 4]| {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 9, 1, 1], dst, ttl)
            .udp(5678, 1234)
            .write(&mut v, &vec![0x17; len])
            .unwrap();
        v
    };
    let inner_ip6 = |dst: &str| {
        let dst: std::net::Ipv6Addr = dst.parse().unwrap();
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv6([0x20; 16], dst.octets(), ttl)
            .udp(5678, 1234)
            .write(&mut v, &vec![0x17; len])
            .unwrap();
        v
    };
    let v6 = v6_variant(l2);
    match kind % 8 {
        0 => (0, udp4(MAC0, [10, 0, 0, 2], [10, 9, 1, 1], ttl, len)),
        1 if v6 => {
            let mut f = vec![];
            f.extend_from_slice(&MAC0.0);
            f.extend_from_slice(&HOST_A.0);
            f.extend_from_slice(&[0x86, 0xdd]);
            f.extend_from_slice(&inner_ip6("2001:db8:7::1"));
            (0, f)
        }
        1 => (0, udp4(MAC0, [10, 0, 0, 2], [10, 7, 1, 1], ttl, len)),
        2 => (0, udp4(MAC0, [10, 0, 0, 2], [10, 1, 0, 2], ttl, len)),
        3 => {
            let mut f = udp4(
                Mac([2, 0, 0, 0, 0, 0x77]),
                [192, 168, 1, 1],
                [192, 168, 1, 2],
                ttl,
                len,
            );
            let vlan = xconnect_vlan(l2);
            if vlan != 0 {
                let [hi, lo] = vlan.to_be_bytes();
                f.splice(12..12, [0x81, 0x00, hi, lo]);
            }
            (2, f)
        }
        4 => (1, from_peer(l2, 0, &inner_ip([10, 0, 0, 2]))),
        5 if v6 => (1, from_peer(l2, 1, &inner_ip6("2001:db8:a::3"))),
        5 => (1, from_peer(l2, 1, &inner_ip([10, 0, 0, 3]))),
        6 => (
            1,
            from_peer(
                l2,
                2,
                &udp4(
                    Mac([2, 0, 0, 0, 0, 0x77]),
                    [192, 168, 1, 2],
                    [192, 168, 1, 1],
                    ttl,
                    len,
                ),
            ),
        ),
        _ => (1, from_peer(l2, 0, &inner_ip([10, 1, 0, 1]))),
    }
}

type Seen = (Vec<Vec<Vec<u8>>>, Vec<u64>, Vec<Vec<u64>>, usize);

/// Everything observable after the bursts (one per ingress port, in port order).
fn observe(fast: bool, l2: usize, frames: &[(u16, Vec<u8>)]) -> Seen {
    let bursts: Vec<(u16, Vec<Vec<u8>>)> = (0..3u16)
        .map(|port| {
            let burst = frames
                .iter()
                .filter(|(p, _)| *p == port)
                .map(|(_, f)| f.clone())
                .collect();
            (port, burst)
        })
        .collect();
    observe_bursts(fast, l2, &bursts)
}

/// Everything observable after these bursts, in order, with no transmission in between.
fn observe_bursts(fast: bool, l2: usize, bursts: &[(u16, Vec<Vec<u8>>)]) -> Seen {
    let mut r = rig(l2);
    r.p.fast_path = fast;
    for (port, burst) in bursts {
        if !burst.is_empty() {
            r.rx(*port, burst);
        }
    }
    // Per port as a multiset (the fast path emits its packets ahead of the others), with
    // the outer IPv4 identification cleared: the tunnel's counter hands out values in the
    // order packets reach encapsulation, which the two paths do not share.
    let mut tx: Vec<Vec<Vec<u8>>> = (0..3).map(|p| r.take_tx(p)).collect();
    for q in tx.iter_mut() {
        for f in q.iter_mut() {
            if f.len() >= 34 && f[12..14] == [0x08, 0x00] && f[14] == 0x45 {
                f[18..20].fill(0);
                let mut ip = Ipv4Packet::new_unchecked(&mut f[14..34]);
                ip.fill_checksum();
            }
        }
        q.sort();
    }
    let drops = DropReason::ALL.iter().map(|&d| r.drops(d)).collect();
    let tunnels = (0..3)
        .map(|i| {
            let c = r.t.tunnels.get(i).unwrap().shared.worker(0).unwrap();
            let mut v = vec![
                c.rx_packets.get(),
                c.rx_bytes.get(),
                c.tx_packets.get(),
                c.tx_bytes.get(),
            ];
            v.extend(DropReason::ALL.iter().map(|&d| c.drops[d as usize].get()));
            v
        })
        .collect();
    (tx, drops, tunnels, r.env.punted.len())
}

proptest! {
    /// The fast paths decide exactly what the node pipeline decides, for valid frames and for
    /// frames with any early byte corrupted, truncated or padded.
    #[test]
    fn same_result_as_the_node_pipeline(
        l2 in 0..L2_KINDS.len(),
        specs in proptest::collection::vec(
            (any::<u8>(), 1u8..=3, 0usize..1500, proptest::option::of((0usize..110, any::<u8>())), 0usize..4, any::<bool>()),
            1..40,
        ),
    ) {
        let frames: Vec<(u16, Vec<u8>)> = specs
            .iter()
            .map(|&(kind, ttl, len, flip, cut, pad)| {
                let (port, mut f) = frame(l2, kind, len, ttl + (kind % 3) * 30);
                if let Some((at, x)) = flip {
                    if at < f.len() {
                        f[at] ^= x;
                    }
                }
                if pad {
                    f.extend_from_slice(&[0; 6]);
                }
                let keep = f.len().saturating_sub(cut * 7);
                f.truncate(keep);
                (port, f)
            })
            .collect();
        prop_assert_eq!(observe(true, l2, &frames), observe(false, l2, &frames));
    }
}

/// Each frame kind alone, valid: sent (or, for the packet to our own address, punted) the
/// same way by both paths.
#[test]
fn every_kind_alone_matches() {
    for l2 in 0..L2_KINDS.len() {
        for kind in 0..8u8 {
            let (port, f) = frame(l2, kind, 100, 64);
            let frames = [(port, f)];
            let fast = observe(true, l2, &frames);
            assert_eq!(fast, observe(false, l2, &frames), "l2 {l2} kind {kind}");
            let sent: usize = fast.0.iter().map(|q| q.len()).sum();
            let want = match kind {
                7 => (0, 1),
                1 | 5 if narrow_ipip(l2) => (0, 0),
                _ => (1, 0),
            };
            assert_eq!((sent, fast.3), want, "l2 {l2} kind {kind}: {:?}", fast.1);
        }
    }
}

/// Decapsulated frames that find their cross-connect's TX queue full are dropped by the
/// tunnel, not received by it, the same way on both paths.
#[test]
fn a_full_tx_queue_is_a_tunnel_drop_either_way() {
    for l2 in 0..L2_KINDS.len() {
        let burst: Vec<Vec<u8>> = (0..MAX_BURST).map(|_| frame(l2, 6, 100, 64).1).collect();
        // The queue holds two bursts: the third finds it full.
        let bursts = vec![(1u16, burst); 3];
        let fast = observe_bursts(true, l2, &bursts);
        assert_eq!(fast, observe_bursts(false, l2, &bursts), "l2 {l2}");
        let (tx, drops, tunnels, _) = fast;
        let full = DropReason::TxQueueFull;
        assert_eq!(tx[2].len(), 2 * MAX_BURST);
        assert_eq!(drops[full as usize], MAX_BURST as u64);
        assert_eq!(
            tunnels[2][0],
            2 * MAX_BURST as u64,
            "received: what was queued"
        );
        assert_eq!(tunnels[2][4 + full as usize], MAX_BURST as u64);
    }
}
