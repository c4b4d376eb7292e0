//! Pipeline tests over heap packets: a two-port router with a VLAN sub-interface.

use super::*;
use crate::events::{Event, PuntKind, Punted};
use crate::packet::HeapPacket;
use crate::tables::fib::{Fib, FibRoute, NextHop};
use crate::tables::iface::{Adjacency, IfKind, Interface, PortEntry};
use crate::wire::Mac;
use etherparse::{PacketBuilder, SlicedPacket};
use std::net::IpAddr;

pub(super) const MAC0: Mac = Mac([2, 0, 0, 0, 0, 0x10]);
pub(super) const MAC1: Mac = Mac([2, 0, 0, 0, 0, 0x11]);
pub(super) const HOST_A: Mac = Mac([2, 0, 0, 0, 0, 0xa]);
pub(super) const HOST_B: Mac = Mac([2, 0, 0, 0, 0, 0xb]);
const HOST_V: Mac = Mac([2, 0, 0, 0, 0, 0xc]);

#[derive(Default)]
pub(super) struct TestEnv {
    pub(super) punted: Vec<Punted<HeapPacket>>,
    events: Vec<Event>,
    punt_full: bool,
    handed: Vec<(u16, Handoff<HeapPacket>)>,
}

impl Env<HeapPacket> for TestEnv {
    fn punt(&mut self, p: Punted<HeapPacket>) -> Result<(), Punted<HeapPacket>> {
        if self.punt_full {
            return Err(p);
        }
        self.punted.push(p);
        Ok(())
    }
    fn event(&mut self, e: Event) -> bool {
        self.events.push(e);
        true
    }
    fn handoff(&mut self, owner: u16, h: Handoff<HeapPacket>) -> Result<(), Handoff<HeapPacket>> {
        self.handed.push((owner, h));
        Ok(())
    }
    fn alloc(&mut self) -> Option<HeapPacket> {
        Some(HeapPacket::with_room(&[], 128, 2048))
    }
}

/// Port 0 (10.0.0.1/24, 2001:db8:a::1/64) with host A at .2; port 1 (10.1.0.1/24,
/// 2001:db8:b::1/64) with host B at .2 and VLAN 100 (10.2.0.1/24, MTU 1000) with host V.
fn tables() -> Tables {
    let ifs = vec![
        Interface {
            kind: IfKind::Port { port: 0, vlan: 0 },
            mac: MAC0,
            mtu: 1500,
            icmp_src_v4: Some([10, 0, 0, 1]),
            icmp_src_v6: Some(
                "2001:db8:a::1"
                    .parse::<std::net::Ipv6Addr>()
                    .unwrap()
                    .octets(),
            ),
        },
        Interface {
            kind: IfKind::Port { port: 1, vlan: 0 },
            mac: MAC1,
            mtu: 1500,
            icmp_src_v4: Some([10, 1, 0, 1]),
            icmp_src_v6: None,
        },
        Interface {
            kind: IfKind::Port { port: 1, vlan: 100 },
            mac: MAC1,
            mtu: 1000,
            icmp_src_v4: Some([10, 2, 0, 1]),
            icmp_src_v6: None,
        },
    ];
    let adj = |ifindex, port, vlan, dst, src, mtu| {
        NextHop::Forward(Adjacency {
            ifindex,
            port,
            vlan,
            dst,
            src,
            mtu,
        })
    };
    let nhs = vec![
        NextHop::Local { ifindex: 0 },
        adj(0, 0, 0, HOST_A, MAC0, 1500),
        adj(1, 1, 0, HOST_B, MAC1, 1500),
        adj(2, 1, 100, HOST_V, MAC1, 1000),
        NextHop::Glean { ifindex: 1 },
        NextHop::Blackhole,
        NextHop::Unresolved {
            ifindex: 1,
            gateway: "10.1.0.9".parse().unwrap(),
        },
    ];
    let r = |a: &str, len, nexthop| FibRoute {
        addr: a.parse::<IpAddr>().unwrap(),
        len,
        nexthop,
    };
    let routes = vec![
        r("10.0.0.1", 32, 0),
        r("10.0.0.0", 24, 1),
        r("10.1.0.0", 24, 4),
        r("10.1.0.2", 32, 2),
        r("10.2.0.0", 24, 3),
        r("192.0.2.0", 24, 5),
        r("172.16.0.0", 12, 6),
        r("2001:db8:a::1", 128, 0),
        r("2001:db8:a::", 64, 1),
        r("2001:db8:b::", 64, 2),
    ];
    let ports = vec![
        PortEntry {
            mac: MAC0,
            untagged: Some(0),
            vlans: vec![],
            xconnects: vec![],
        },
        PortEntry {
            mac: MAC1,
            untagged: Some(1),
            vlans: vec![(100, 2)],
            xconnects: vec![],
        },
    ];
    Tables {
        version: 1,
        ports,
        interfaces: ifs,
        fib: Fib::build(&routes, nhs).unwrap(),
        ipsec: Default::default(),
        tunnels: Default::default(),
    }
}

pub(super) struct Rig {
    pub(super) t: Tables,
    pub(super) p: Pipeline<HeapPacket>,
    pub(super) env: TestEnv,
    pub(super) counters: Box<WorkerCounters>,
    icmp: RateLimiter,
    resolve: ResolveFilter,
}

impl Rig {
    pub(super) fn new() -> Rig {
        Rig {
            t: tables(),
            p: Pipeline::new(2),
            env: TestEnv::default(),
            counters: Box::default(),
            icmp: RateLimiter::new(1000, 1000, 1_000_000_000),
            resolve: ResolveFilter::new(1_000_000),
        }
    }

    pub(super) fn rx(&mut self, port: u16, frames: &[Vec<u8>]) {
        let mut v: Vec<HeapPacket> = frames.iter().map(|f| HeapPacket::from_frame(f)).collect();
        let mut ctx = Ctx {
            worker: 0,
            counters: &self.counters,
            now: 1_000_000_000,
            icmp: self.icmp.clone(),
            resolve: self.resolve.clone(),
        };
        self.p
            .run_rx(&self.t, &mut ctx, &mut self.env, &mut v, port);
        self.icmp = ctx.icmp;
        self.resolve = ctx.resolve;
        assert!(v.is_empty());
    }

    pub(super) fn take_tx(&mut self, port: usize) -> Vec<Vec<u8>> {
        self.p.tx[port].drain(..).map(|p| p.to_vec()).collect()
    }

    pub(super) fn drops(&self, r: DropReason) -> u64 {
        self.counters.drops[r as usize].get()
    }
}

/// An untagged adjacency with MTU 1500 (test tables).
pub(super) fn adjacency(ifindex: u16, port: u16, dst: Mac, src: Mac) -> NextHop {
    NextHop::Forward(Adjacency {
        ifindex,
        port,
        vlan: 0,
        dst,
        src,
        mtu: 1500,
    })
}

/// A route to next hop `nexthop` (test tables).
pub(super) fn route(addr: &str, len: u8, nexthop: u32) -> FibRoute {
    FibRoute {
        addr: addr.parse::<IpAddr>().unwrap(),
        len,
        nexthop,
    }
}

pub(super) fn udp4(dst_mac: Mac, src: [u8; 4], dst: [u8; 4], ttl: u8, len: usize) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST_A.0, dst_mac.0)
        .ipv4(src, dst, ttl)
        .udp(1234, 5678)
        .write(&mut v, &vec![0x42; len])
        .unwrap();
    v
}

pub(super) fn udp6(dst_mac: Mac, src: &str, dst: &str, hops: u8) -> Vec<u8> {
    let s: std::net::Ipv6Addr = src.parse().unwrap();
    let d: std::net::Ipv6Addr = dst.parse().unwrap();
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST_A.0, dst_mac.0)
        .ipv6(s.octets(), d.octets(), hops)
        .udp(1, 2)
        .write(&mut v, &[7; 20])
        .unwrap();
    v
}

#[test]
fn forwards_ipv4_with_ttl_decrement_and_mac_rewrite() {
    let mut r = Rig::new();
    let f = udp4(MAC0, [10, 0, 0, 2], [10, 1, 0, 2], 64, 100);
    r.rx(0, std::slice::from_ref(&f));
    let out = r.take_tx(1);
    assert_eq!(out.len(), 1);
    let s = SlicedPacket::from_ethernet(&out[0]).unwrap();
    let eth = s.link.unwrap().to_header().unwrap();
    let eth = match eth {
        etherparse::LinkHeader::Ethernet2(e) => e,
        _ => panic!(),
    };
    assert_eq!((eth.source, eth.destination), (MAC1.0, HOST_B.0));
    let ip = match s.net.unwrap() {
        etherparse::NetSlice::Ipv4(i) => i.header().to_header(),
        _ => panic!(),
    };
    assert_eq!(ip.time_to_live, 63);
    assert_eq!(ip.header_checksum, ip.calc_header_checksum());
    // Everything after the IP header is untouched.
    assert_eq!(&out[0][34..], &f[34..]);
    assert_eq!(r.counters.total_drops(), 0);
}

#[test]
fn forwards_ipv6_and_vlan_out_and_in() {
    let mut r = Rig::new();
    r.rx(0, &[udp6(MAC0, "2001:db8:a::2", "2001:db8:b::5", 2)]);
    let out = r.take_tx(1);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0][14 + 7], 1, "hop limit decremented");
    assert_eq!(&out[0][0..6], &HOST_B.0);

    r.rx(0, &[udp4(MAC0, [10, 0, 0, 2], [10, 2, 0, 9], 9, 10)]);
    let out = r.take_tx(1);
    assert_eq!(
        &out[0][12..16],
        &[0x81, 0x00, 0x00, 100],
        "tagged with VLAN 100"
    );
    assert_eq!(&out[0][16..18], &[0x08, 0x00]);

    // A frame tagged 100 arriving on port 1 belongs to the VLAN interface and routes to A.
    let mut tagged = udp4(MAC1, [10, 2, 0, 9], [10, 0, 0, 2], 9, 10);
    tagged.splice(12..12, [0x81, 0x00, 0x00, 100]);
    r.rx(1, &[tagged]);
    assert_eq!(r.take_tx(0).len(), 1);
    // Unknown VLAN 200 is refused.
    let mut tagged = udp4(MAC1, [10, 2, 0, 9], [10, 0, 0, 2], 9, 10);
    tagged.splice(12..12, [0x81, 0x00, 0x00, 200]);
    r.rx(1, &[tagged]);
    assert_eq!(r.drops(DropReason::UnknownVlan), 1);
}

#[test]
fn ttl_one_gets_time_exceeded_back_to_the_source() {
    let mut r = Rig::new();
    let f = udp4(MAC0, [10, 0, 0, 2], [10, 1, 0, 2], 1, 30);
    r.rx(0, std::slice::from_ref(&f));
    assert_eq!(r.drops(DropReason::TtlExpired), 1);
    assert!(r.take_tx(1).is_empty());
    let back = r.take_tx(0);
    assert_eq!(back.len(), 1);
    let s = SlicedPacket::from_ethernet(&back[0]).unwrap();
    match (s.net.unwrap(), s.transport.unwrap()) {
        (etherparse::NetSlice::Ipv4(ip), etherparse::TransportSlice::Icmpv4(icmp)) => {
            assert_eq!(ip.header().source(), [10, 0, 0, 1]);
            assert_eq!(ip.header().destination(), [10, 0, 0, 2]);
            assert!(matches!(
                icmp.icmp_type(),
                etherparse::Icmpv4Type::TimeExceeded(_)
            ));
            assert_eq!(icmp.payload(), &f[14..]);
        }
        _ => panic!("not icmp"),
    }
    // Hop limit 1 in IPv6 likewise.
    r.rx(0, &[udp6(MAC0, "2001:db8:a::2", "2001:db8:b::5", 1)]);
    assert_eq!(r.drops(DropReason::HopLimitExpired), 1);
    let back = r.take_tx(0);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0][14 + 40], 3, "ICMPv6 time exceeded");
}

#[test]
fn over_mtu_df_gets_frag_needed_and_no_df_is_fragmented() {
    let mut r = Rig::new();
    let mut f = udp4(MAC0, [10, 0, 0, 2], [10, 2, 0, 9], 64, 1200);
    f[20] |= 0x40; // DF
    crate::wire::Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
    r.rx(0, std::slice::from_ref(&f));
    assert_eq!(r.drops(DropReason::MtuExceeded), 1);
    let back = r.take_tx(0);
    assert_eq!(back.len(), 1);
    assert_eq!(&back[0][34..36], &[3, 4]);
    assert_eq!(u16::from_be_bytes([back[0][40], back[0][41]]), 1000);
    // Without DF it is fragmented to the MTU (1000): 976 + 252 payload octets.
    f[20] &= !0x40;
    crate::wire::Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
    r.rx(0, std::slice::from_ref(&f));
    let out = r.take_tx(1);
    assert_eq!(out.len(), 2, "drops {:?}", r.counters.total_drops());
    let mut payload = Vec::new();
    for (k, o) in out.iter().enumerate() {
        assert_eq!(&o[12..16], &[0x81, 0, 0, 100], "on VLAN 100");
        let ip = crate::wire::Ipv4Packet::new_checked(&o[18..]).unwrap();
        assert!(ip.verify_checksum());
        assert!(ip.total_len() <= 1000);
        assert_eq!(ip.ttl(), 63);
        assert_eq!(ip.more_frags(), k == 0);
        assert_eq!(ip.frag_offset(), payload.len());
        payload.extend_from_slice(ip.payload());
    }
    assert_eq!(&payload[..], &f[34..]);
    assert_eq!(r.drops(DropReason::FragmentNeeded), 0);
}

#[test]
fn malformed_frames_are_counted_by_reason() {
    let mut r = Rig::new();
    let good = udp4(MAC0, [10, 0, 0, 2], [10, 1, 0, 2], 64, 40);
    let mut ihl = good.clone();
    ihl[14] = 0x44;
    let mut longer = good.clone();
    longer[16..18].copy_from_slice(&2000u16.to_be_bytes());
    let mut v6_long = udp6(MAC0, "2001:db8:a::2", "2001:db8:b::5", 9);
    v6_long[18..20].copy_from_slice(&900u16.to_be_bytes());
    let mut badsum = good.clone();
    badsum[24] ^= 0xff;
    r.rx(
        0,
        &[
            good[..10].to_vec(),
            good[..30].to_vec(),
            ihl,
            longer,
            v6_long.clone(),
            v6_long[..40].to_vec(),
            badsum,
            udp4(HOST_B, [10, 0, 0, 2], [10, 1, 0, 2], 64, 10),
        ],
    );
    for reason in [
        DropReason::EthTruncated,
        DropReason::Ipv4Truncated,
        DropReason::Ipv4BadIhl,
        DropReason::Ipv4BadTotalLength,
        DropReason::Ipv6BadPayloadLength,
        DropReason::Ipv6Truncated,
        DropReason::Ipv4BadChecksum,
        DropReason::NotForUs,
    ] {
        assert_eq!(r.drops(reason), 1, "{reason}");
    }
    assert!(r.take_tx(1).is_empty());
}

#[test]
fn local_arp_and_unresolved_go_to_the_control_thread() {
    let mut r = Rig::new();
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&HOST_A.0);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    r.rx(
        0,
        &[
            arp,
            udp4(MAC0, [10, 0, 0, 2], [10, 0, 0, 1], 64, 10),
            udp4(MAC0, [10, 0, 0, 2], [10, 1, 0, 77], 64, 10),
            udp4(MAC0, [10, 0, 0, 2], [10, 1, 0, 77], 64, 10),
            udp4(MAC0, [10, 0, 0, 2], [172, 17, 0, 1], 64, 10),
            udp4(MAC0, [10, 0, 0, 2], [192, 0, 2, 1], 64, 10),
            udp4(MAC0, [10, 0, 0, 2], [8, 8, 8, 8], 64, 10),
        ],
    );
    let kinds: Vec<PuntKind> = r.env.punted.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        vec![
            PuntKind::L2 { port: 0 },
            PuntKind::L3 {
                ifindex: 0,
                l2_len: 14
            }
        ]
    );
    assert_eq!(
        r.env.punted[0].pkt.len(),
        14 + 28,
        "ARP punted as a whole frame"
    );
    assert_eq!(
        r.env.punted[1].pkt.data()[0],
        0x45,
        "local packet punted at L3"
    );
    assert_eq!(r.counters.punted.get(), 2);
    assert_eq!(r.drops(DropReason::NoNeighbor), 3);
    assert_eq!(
        r.env.events,
        vec![
            Event::Resolve {
                ifindex: 1,
                addr: "10.1.0.77".parse().unwrap()
            },
            Event::Resolve {
                ifindex: 1,
                addr: "10.1.0.9".parse().unwrap()
            },
        ],
        "one request per unresolved neighbor, not one per packet"
    );
    assert_eq!(r.drops(DropReason::RouteBlackhole), 1);
    assert_eq!(r.drops(DropReason::NoRoute), 1);

    r.env.punt_full = true;
    r.rx(0, &[udp4(MAC0, [10, 0, 0, 2], [10, 0, 0, 1], 64, 10)]);
    assert_eq!(r.drops(DropReason::PuntQueueFull), 1);
}

#[test]
fn local_origin_packets_are_routed_without_ttl_change() {
    let mut r = Rig::new();
    let f = udp4(MAC0, [10, 0, 0, 1], [10, 1, 0, 2], 1, 10);
    let mut v = vec![HeapPacket::from_frame(&f[14..])];
    let mut ctx = Ctx {
        worker: 0,
        counters: &r.counters,
        now: 0,
        icmp: r.icmp.clone(),
        resolve: r.resolve.clone(),
    };
    r.p.run_local(&r.t, &mut ctx, &mut r.env, &mut v);
    let out = r.take_tx(1);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0][14 + 8], 1, "TTL untouched");
}

mod fast_path {
    use super::*;
    use proptest::prelude::*;

    /// Everything observable after a burst: TX frames per port, drop counters, punts, events.
    fn observe(
        fast: bool,
        frames: &[Vec<u8>],
        port: u16,
    ) -> (Vec<Vec<Vec<u8>>>, Vec<u64>, usize, usize) {
        let mut r = Rig::new();
        r.p.fast_path = fast;
        r.rx(port, frames);
        // Per port as a multiset: the fast path may emit its packets ahead of the others.
        let mut tx = vec![r.take_tx(0), r.take_tx(1)];
        tx.iter_mut().for_each(|q| q.sort());
        let drops = DropReason::ALL.iter().map(|&d| r.drops(d)).collect();
        (tx, drops, r.env.punted.len(), r.env.events.len())
    }

    fn base(kind: u8, ttl: u8, len: usize) -> Vec<u8> {
        // IPv6: forwarded, to us, multicast, unrouted, and one with a longer payload.
        let dsts6 = ["2001:db8:b::7", "2001:db8:a::1", "ff02::1", "2001:db8:c::1"];
        if kind % 3 == 2 && kind.is_multiple_of(2) {
            let d = dsts6[(kind as usize / 6) % dsts6.len()];
            let mut f = udp6(MAC0, "2001:db8:a::2", d, ttl);
            f.extend(std::iter::repeat_n(0x33, len.min(1400)));
            let plen = (f.len() - 54) as u16;
            f[18..20].copy_from_slice(&plen.to_be_bytes());
            return f;
        }
        let dsts: [[u8; 4]; 7] = [
            [10, 1, 0, 2],
            [10, 0, 0, 7],
            [10, 2, 0, 5],
            [10, 0, 0, 1],
            [192, 0, 2, 1],
            [10, 1, 0, 9],
            [8, 8, 8, 8],
        ];
        udp4(
            MAC0,
            [10, 0, 0, 2],
            dsts[kind as usize % dsts.len()],
            ttl,
            len,
        )
    }

    proptest! {
        /// The fast path decides exactly what the node pipeline decides, for valid frames and
        /// for frames with any header byte corrupted, truncated or padded.
        #[test]
        fn same_result_as_the_node_pipeline(
            specs in proptest::collection::vec(
                (any::<u8>(), 0u8..=3, 0usize..1600, proptest::option::of((0usize..60, any::<u8>())), 0usize..4, any::<bool>()),
                1..40,
            ),
        ) {
            let frames: Vec<Vec<u8>> = specs
                .iter()
                .map(|&(kind, ttl, len, flip, cut, pad)| {
                    let mut f = base(kind, ttl.max(1) + (kind % 3) * 20, len);
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
                    f
                })
                .collect();
            prop_assert_eq!(observe(true, &frames, 0), observe(false, &frames, 0));
        }
    }

    #[test]
    fn takes_the_common_case() {
        let f = base(0, 64, 100);
        let mut r = Rig::new();
        r.rx(0, std::slice::from_ref(&f));
        let out = r.take_tx(1);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0][22], 63);
        let mut r2 = Rig::new();
        r2.p.fast_path = false;
        r2.rx(0, &[f]);
        assert_eq!(r2.take_tx(1), out);
    }
}
