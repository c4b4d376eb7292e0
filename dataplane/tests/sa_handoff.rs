//! Make-before-break at the worker: an SA removal that arrives while packets for that SA wait
//! in the owner's hand-off ring (classified by another worker with tables that still named
//! it) takes effect only after those packets went through, so none is lost.

use dataplane::esp::store::{OwnedSa, SaCmd};
use dataplane::esp::{AesKeyLen, Mode, Sa, SaConfig, Suite};
use dataplane::outer::OuterPolicy;
use dataplane::packet::{HeapPacket, Packet};
use dataplane::pipeline::{Handoff, Meta, Node};
use dataplane::stats::DropReason;
use dataplane::tables::fib::{Fib, FibRoute, NextHop};
use dataplane::tables::iface::{Adjacency, IfKind, Interface, PortEntry};
use dataplane::tables::{Tables, TablesHandle};
use dataplane::wire::Mac;
use dataplane::worker::{RxQueue, TxQueue, Worker, WorkerShared};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct NoRx;
impl RxQueue<HeapPacket> for NoRx {
    fn rx_burst(&mut self, _: &mut Vec<HeapPacket>) -> usize {
        0
    }
}
struct MemTx(Arc<Mutex<Vec<HeapPacket>>>);
impl TxQueue<HeapPacket> for MemTx {
    fn tx_burst(&mut self, pkts: &mut Vec<HeapPacket>) -> usize {
        let n = pkts.len();
        self.0.lock().unwrap().extend(pkts.drain(..));
        n
    }
}

fn clock() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

const MAC: Mac = Mac([2, 0, 0, 0, 0, 1]);
const PEER: Mac = Mac([2, 0, 0, 0, 0, 2]);

fn tables() -> Tables {
    let adj = NextHop::Forward(Adjacency {
        ifindex: 0,
        port: 0,
        vlan: 0,
        dst: PEER,
        src: MAC,
        mtu: 1500,
    });
    Tables {
        version: 1,
        ports: vec![PortEntry {
            mac: MAC,
            untagged: Some(0),
            vlans: vec![],
            xconnects: vec![],
        }],
        interfaces: vec![Interface {
            kind: IfKind::Port { port: 0, vlan: 0 },
            mac: MAC,
            mtu: 1500,
            icmp_src_v4: Some([192, 0, 2, 1]),
            icmp_src_v6: None,
        }],
        fib: Fib::build(
            &[FibRoute {
                addr: "192.0.2.2".parse().unwrap(),
                len: 32,
                nexthop: 0,
            }],
            vec![adj],
        )
        .unwrap(),
        ipsec: Default::default(),
        tunnels: Default::default(),
    }
}

#[test]
fn removal_waits_for_the_packets_already_handed_over() {
    let shared: Arc<WorkerShared<HeapPacket>> = Arc::new(WorkerShared::default());
    let cfg = SaConfig::new(
        0x1001,
        Mode::Tunnel4 {
            local: "192.0.2.1".parse().unwrap(),
            remote: "192.0.2.2".parse().unwrap(),
        },
        Suite::AesGcm(AesKeyLen::Aes128),
    );
    let sa = Sa::new(&cfg, &[7; 20], &[]).unwrap();
    // What the worker finds when it starts: its SA installed and already removed again, and
    // ten packets another worker classified for that SA before the removal.
    let install = SaCmd::Install {
        slot: 3,
        sa: Box::new(OwnedSa {
            sa,
            outer: OuterPolicy::default(),
        }),
    };
    assert!(shared.sa_cmds.push(install).is_ok());
    for i in 0..10u8 {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, 0, 2], [10, 9, 1, 1], 64)
            .udp(1, 2)
            .write(&mut v, &[i; 8])
            .unwrap();
        let h = Handoff {
            pkt: HeapPacket::from_frame(&v),
            meta: Meta {
                sa_out: 3,
                ..Meta::default()
            },
            node: Node::EspOut,
        };
        assert!(shared.handoff.push(h).is_ok());
    }
    assert!(shared.sa_cmds.push(SaCmd::Remove { slot: 3 }).is_ok());

    let out = Arc::new(Mutex::new(Vec::new()));
    let w = Worker {
        id: 0,
        rx: vec![(0, NoRx)],
        tx: vec![Some(MemTx(out.clone()))],
        inject: vec![],
        shared: shared.clone(),
        peers: vec![shared.clone()],
        tables: Arc::new(TablesHandle::new(tables())),
        burst: 32,
        clock,
        clock_hz: 1_000_000_000,
        icmp_rate: 10,
        idle_sleep: Duration::from_micros(100),
        alloc: Box::new(|| None),
    };
    let th = std::thread::spawn(move || w.run());
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared.sa_retired.is_empty() {
        assert!(Instant::now() < deadline, "SA never retired");
        std::thread::sleep(Duration::from_millis(1));
    }
    shared.stop.store(true, Ordering::Relaxed);
    th.join().unwrap();

    let c = &shared.counters;
    assert_eq!(
        c.drops[DropReason::EspNoOutboundSa as usize].get(),
        0,
        "a handed-over packet met a removed SA"
    );
    let out = out.lock().unwrap();
    assert_eq!(out.len(), 10);
    for (i, p) in out.iter().enumerate() {
        let d = p.data();
        assert_eq!(d[14 + 9], 50, "sealed");
        // Sealed once each, in order: sequence numbers 1..=10.
        assert_eq!(
            u32::from_be_bytes(d[38..42].try_into().unwrap()),
            i as u32 + 1
        );
    }
    assert_eq!(shared.sa_retired.len(), 1);
}
