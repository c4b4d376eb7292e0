//! The control loop and a real worker thread, wired with in-memory queues and heap packets:
//! neighbor resolution through ARP, ping to the gateway answered by the host stack, route
//! changes under traffic, management requests.

use control::api::proto::Request;
use control::build::Runtime;
use control::config::{RawConfig, RawRoute};
use control::controller::Controller;
use control::state::State;
use crossbeam::queue::ArrayQueue;
use dataplane::packet::HeapPacket;
use dataplane::worker::{RxQueue, TxQueue, Worker, WorkerShared};
use etherparse::{PacketBuilder, SlicedPacket};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Q = Arc<Mutex<Vec<HeapPacket>>>;
struct MemRx(Q);
impl RxQueue<HeapPacket> for MemRx {
    fn rx_burst(&mut self, out: &mut Vec<HeapPacket>) -> usize {
        let mut q = self.0.lock().unwrap();
        let n = q.len().min(out.capacity() - out.len());
        out.extend(q.drain(..n));
        n
    }
}
struct MemTx(Q);
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

const CFG: &str = r#"
[[ports]]
name = "a"
devargs = "mem0"
[[ports]]
name = "b"
devargs = "mem1"
[[workers]]
lcore = 1
rx = ["a:0", "b:0"]
[[interfaces]]
name = "a"
port = "a"
addresses = ["10.0.0.1/24"]
[[interfaces]]
name = "b"
port = "b"
addresses = ["10.1.0.1/24"]
"#;

const HOST_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const HOST_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

struct Rig {
    ctl: Controller<HeapPacket>,
    rx: [Q; 2],
    tx: [Q; 2],
    shared: Arc<WorkerShared<HeapPacket>>,
    th: Option<std::thread::JoinHandle<i32>>,
}

impl Rig {
    fn new() -> Rig {
        let st = State::from_config(&RawConfig::parse(CFG).unwrap()).unwrap();
        let rt = Runtime::fake(2);
        let shared: Arc<WorkerShared<HeapPacket>> = Arc::new(WorkerShared::default());
        let inject: Vec<_> = (0..2).map(|_| Arc::new(ArrayQueue::new(64))).collect();
        let (ctl, handle) = Controller::new(
            st,
            rt,
            vec![shared.clone()],
            vec![1],
            inject.clone(),
            Box::new(|b: &[u8]| Some(HeapPacket::from_frame(b))),
            Box::new(control::controller::NoPlatform),
        )
        .unwrap();
        let rx: [Q; 2] = Default::default();
        let tx: [Q; 2] = Default::default();
        let w = Worker {
            id: 0,
            rx: vec![(0, MemRx(rx[0].clone())), (1, MemRx(rx[1].clone()))],
            tx: vec![Some(MemTx(tx[0].clone())), Some(MemTx(tx[1].clone()))],
            inject,
            shared: shared.clone(),
            peers: vec![shared.clone()],
            tables: handle,
            burst: 32,
            clock,
            clock_hz: 1_000_000_000,
            icmp_rate: 100,
            idle_sleep: Duration::from_micros(100),
            alloc: Box::new(|| Some(HeapPacket::with_room(&[], 128, 2048))),
        };
        let th = std::thread::spawn(move || w.run());
        Rig {
            ctl,
            rx,
            tx,
            shared,
            th: Some(th),
        }
    }

    /// Run the control loop until `cond` holds (or fail after 10 s).
    fn until(&mut self, what: &str, mut cond: impl FnMut(&mut Rig) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            self.ctl.poll(Instant::now());
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn send(&self, port: usize, f: Vec<u8>) {
        self.rx[port]
            .lock()
            .unwrap()
            .push(HeapPacket::from_frame(&f));
    }

    fn take(&self, port: usize) -> Vec<Vec<u8>> {
        self.tx[port]
            .lock()
            .unwrap()
            .drain(..)
            .map(|p| p.to_vec())
            .collect()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.th.take() {
            let _ = t.join();
        }
    }
}

fn udp(dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], seq: u32) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST_A, dst_mac)
        .ipv4(src, dst, 64)
        .udp(4000, 5000)
        .write(&mut v, &seq.to_be_bytes())
        .unwrap();
    v
}

fn arp_reply(src_mac: [u8; 6], src_ip: [u8; 4], to_mac: [u8; 6], to_ip: [u8; 4]) -> Vec<u8> {
    let mut f = to_mac.to_vec();
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&src_ip);
    f.extend_from_slice(&to_mac);
    f.extend_from_slice(&to_ip);
    f
}

#[test]
fn resolves_forwards_pings_and_changes_routes_under_traffic() {
    let mut r = Rig::new();
    let gw_a = [2, 0, 0, 0, 0, 1];
    let gw_b = [2, 0, 0, 0, 0, 2];

    // First packet to B: no neighbor. The worker asks, the controller ARPs on port b.
    r.send(0, udp(gw_a, [10, 0, 0, 2], [10, 1, 0, 2], 0));
    let mut arp = Vec::new();
    r.until("an ARP request on port b", |r| {
        arp.extend(r.take(1));
        !arp.is_empty()
    });
    assert_eq!(&arp[0][12..14], &[0x08, 0x06]);
    assert_eq!(&arp[0][38..42], &[10, 1, 0, 2], "asks for 10.1.0.2");
    r.send(1, arp_reply(HOST_B, [10, 1, 0, 2], gw_b, [10, 1, 0, 1]));
    let v0 = r.ctl.published_version();
    r.until("tables with B resolved", |r| r.ctl.running_version() > v0);

    // Now traffic flows, TTL decremented.
    for seq in 1..=10 {
        r.send(0, udp(gw_a, [10, 0, 0, 2], [10, 1, 0, 2], seq));
    }
    let mut got = Vec::new();
    r.until("10 packets at B", |r| {
        got.extend(r.take(1));
        got.len() >= 10
    });
    assert!(got.iter().all(|f| f[0..6] == HOST_B && f[14 + 8] == 63));

    // Ping the gateway from A: smoltcp answers; the reply is routed back to A (after the
    // controller resolves A through ARP as well).
    let mut ping = Vec::new();
    PacketBuilder::ethernet2(HOST_A, gw_a)
        .ipv4([10, 0, 0, 2], [10, 0, 0, 1], 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut ping, b"hi")
        .unwrap();
    r.send(0, ping.clone());
    let mut out_a = Vec::new();
    r.until("ARP for A", |r| {
        out_a.extend(r.take(0));
        out_a.iter().any(|f| f[12..14] == [0x08, 0x06])
    });
    r.send(0, arp_reply(HOST_A, [10, 0, 0, 2], gw_a, [10, 0, 0, 1]));
    let v1 = r.ctl.published_version();
    r.until("A resolved", |r| r.ctl.running_version() > v1);
    r.send(0, ping);
    r.until("echo reply at A", |r| {
        out_a.extend(r.take(0));
        out_a.iter().any(|f| {
            SlicedPacket::from_ethernet(f).ok().and_then(|s| s.transport).is_some_and(|t| {
                matches!(t, etherparse::TransportSlice::Icmpv4(i) if matches!(i.icmp_type(), etherparse::Icmpv4Type::EchoReply(_)))
            })
        })
    });

    // A stream to 10.1.0.2 keeps flowing while a route for a new destination is added.
    let before = r.shared.counters.tx_packets.get();
    for seq in 0..200u32 {
        r.send(0, udp(gw_a, [10, 0, 0, 2], [10, 1, 0, 2], 1000 + seq));
        if seq == 100 {
            let resp = r.ctl.handle(Request::RouteAdd {
                route: RawRoute {
                    prefix: "172.16.0.0/16".into(),
                    via: Some("10.1.0.2".into()),
                    ..Default::default()
                },
            });
            assert!(resp.ok, "{resp:?}");
        }
        r.ctl.poll(Instant::now());
    }
    r.send(0, udp(gw_a, [10, 0, 0, 2], [172, 16, 5, 5], 0));
    let mut seqs = Vec::new();
    let mut to_new = 0;
    r.until("stream + new destination", |r| {
        for f in r.take(1) {
            if f[30..34] == [172, 16, 5, 5] {
                to_new += 1;
            } else {
                seqs.push(u32::from_be_bytes(f[42..46].try_into().unwrap()));
            }
        }
        seqs.len() >= 200 && to_new == 1
    });
    seqs.sort();
    assert_eq!(
        seqs,
        (1000..1200).collect::<Vec<_>>(),
        "no packet of the stream lost"
    );
    assert!(r.shared.counters.tx_packets.get() >= before + 201);

    // A refused change names the problem and changes nothing.
    let v = r.ctl.published_version();
    let resp = r.ctl.handle(Request::RouteAdd {
        route: RawRoute {
            prefix: "172.16.0.0/16".into(),
            via: Some("10.1.0.3".into()),
            ..Default::default()
        },
    });
    assert!(
        !resp.ok
            && resp
                .error
                .as_deref()
                .unwrap()
                .contains("172.16.0.0/16 already has a route")
    );
    assert_eq!(r.ctl.published_version(), v);
    let resp = r.ctl.handle(Request::RouteDel {
        prefix: "172.16.0.0/16".into(),
    });
    assert!(resp.ok);
    let stats = r.ctl.handle(Request::ShowStats);
    assert!(stats.data[0]["rx_packets"].as_u64().unwrap() >= 213);
    let errors = r.ctl.handle(Request::ShowErrors);
    assert!(errors
        .data
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["reason"] == "no-neighbor"));
    let routes = r.ctl.handle(Request::ShowRoutes);
    assert!(routes
        .data
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["prefix"] == "10.1.0.0/24"));
    let _ = r.take(0);
}
