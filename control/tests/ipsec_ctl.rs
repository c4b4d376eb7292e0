//! The control loop with two real worker threads on in-memory queues and heap packets,
//! driving IPsec through management requests: a make-before-break rekey under a stream
//! (the new outbound SA lives on the other worker, so packets cross the hand-off rings while
//! the old SA is removed), the grace period of a replaced inbound SA, clear, lifetimes in
//! seconds, refusals that change nothing.
//!
//! Time is passed to `Controller::poll`, so grace periods and lifetimes are crossed by
//! asking for a later instant, never by sleeping.

use control::api::proto::{Request, Response};
use control::build::Runtime;
use control::config::{RawConfig, RawSa};
use control::controller::Controller;
use control::state::State;
use crossbeam::queue::ArrayQueue;
use dataplane::esp::{self, AesKeyLen, Mode, Sa, SaConfig, Suite};
use dataplane::outer::OuterPolicy;
use dataplane::packet::{HeapPacket, Packet};
use dataplane::worker::{RxQueue, TxQueue, Worker, WorkerShared};
use etherparse::PacketBuilder;
use std::collections::HashMap;
use std::net::Ipv4Addr;
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

const KEY_OUT1: &str = "0101010101010101010101010101010101010101";
const KEY_IN1: &str = "0202020202020202020202020202020202020202";
const KEY_OUT2: &str = "0303030303030303030303030303030303030303";
const KEY_IN2: &str = "0404040404040404040404040404040404040404";

/// lan (port a, 10.0.0.1/24, host A .2, polled by worker 0) and wan (port b, 192.0.2.1/24,
/// peer .2, polled by worker 1); 10.9.0.0/16 behind the peer, protected by policy `p`.
const CFG: &str = r#"
[[ports]]
name = "a"
devargs = "mem0"
[[ports]]
name = "b"
devargs = "mem1"
[[workers]]
lcore = 1
rx = ["a:0"]
[[workers]]
lcore = 2
rx = ["b:0"]
[system.lcore_cpus]
"0" = 0
"1" = 0
"2" = 0
[[interfaces]]
name = "lan"
port = "a"
addresses = ["10.0.0.1/24"]
[[interfaces]]
name = "wan"
port = "b"
addresses = ["192.0.2.1/24"]
[[neighbors]]
ip = "10.0.0.2"
mac = "02:00:00:00:00:0a"
interface = "lan"
[[neighbors]]
ip = "192.0.2.2"
mac = "02:00:00:00:00:0b"
interface = "wan"
[[routes]]
prefix = "10.9.0.0/16"
via = "192.0.2.2"
[ipsec]
rekey_grace_secs = 30
[[ipsec.sa]]
name = "out1"
spi = 4097
direction = "out"
src = "192.0.2.1"
dst = "192.0.2.2"
encryption = "aes-gcm-128"
key = "0101010101010101010101010101010101010101"
[[ipsec.sa]]
name = "in1"
spi = 8193
direction = "in"
src = "192.0.2.2"
dst = "192.0.2.1"
encryption = "aes-gcm-128"
key = "0202020202020202020202020202020202020202"
[[ipsec.policy]]
name = "p"
priority = 10
direction = "both"
src = "10.0.0.0/24"
dst = "10.9.0.0/16"
action = "protect"
sa = ["out1"]
sa_in = ["in1"]
"#;

const HOST_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
const PEER: [u8; 6] = [2, 0, 0, 0, 0, 0xb];
const GW_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const GW_B: [u8; 6] = [2, 0, 0, 0, 0, 2];
const ME: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const THEM: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

struct Rig {
    ctl: Controller<HeapPacket>,
    rx: [Q; 2],
    tx: [Q; 2],
    shared: Vec<Arc<WorkerShared<HeapPacket>>>,
    th: Vec<std::thread::JoinHandle<i32>>,
}

impl Rig {
    fn new() -> Rig {
        let st = State::from_config(&RawConfig::parse(CFG).unwrap()).unwrap();
        let rt = Runtime::fake(2);
        let shared: Vec<Arc<WorkerShared<HeapPacket>>> =
            (0..2).map(|_| Arc::new(WorkerShared::default())).collect();
        let inject: Vec<_> = (0..2).map(|_| Arc::new(ArrayQueue::new(64))).collect();
        let (ctl, handle) = Controller::new(
            st,
            rt,
            shared.clone(),
            vec![1, 2],
            inject.clone(),
            Box::new(|b: &[u8]| Some(HeapPacket::from_frame(b))),
            Box::new(control::controller::NoPlatform),
        )
        .unwrap();
        let rx: [Q; 2] = Default::default();
        let tx: [Q; 2] = Default::default();
        let mut th = Vec::new();
        for w in 0..2usize {
            let worker = Worker {
                id: w as u32,
                rx: vec![(w as u16, MemRx(rx[w].clone()))],
                tx: vec![Some(MemTx(tx[0].clone())), Some(MemTx(tx[1].clone()))],
                inject: vec![inject[w].clone()],
                shared: shared[w].clone(),
                peers: shared.clone(),
                tables: handle.clone(),
                burst: 32,
                clock,
                clock_hz: 1_000_000_000,
                icmp_rate: 100,
                idle_sleep: Duration::from_micros(50),
                alloc: Box::new(|| Some(HeapPacket::with_room(&[], 128, 2048))),
            };
            th.push(std::thread::spawn(move || worker.run()));
        }
        Rig {
            ctl,
            rx,
            tx,
            shared,
            th,
        }
    }

    /// Run the control loop (at `now`) until `cond` holds (or fail after 20 s).
    fn until_at(&mut self, what: &str, now: Instant, mut cond: impl FnMut(&mut Rig) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            self.ctl.poll(now);
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn until(&mut self, what: &str, cond: impl FnMut(&mut Rig) -> bool) {
        self.until_at(what, Instant::now(), cond)
    }

    /// Every worker runs the newest tables and every removal went out.
    fn settle(&mut self) {
        self.until("workers on the newest tables", |r| {
            r.ctl.running_version() == r.ctl.published_version()
        });
        // Two more rounds: removals are sent by `poll` once the version is reached.
        self.ctl.poll(Instant::now());
        self.ctl.poll(Instant::now());
    }

    fn ok(&mut self, req: Request) -> Response {
        let r = self.ctl.handle(req.clone());
        assert!(r.ok, "{req:?}: {r:?}");
        r
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

    fn drops(&mut self) -> HashMap<String, u64> {
        let e = self.ctl.handle(Request::ShowErrors);
        e.data
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["reason"].as_str().unwrap().to_string(),
                    r["count"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    fn sas(&mut self) -> Vec<serde_json::Value> {
        self.ok(Request::ShowIpsecSa {
            name: None,
            spi: None,
            peer: None,
            selector: None,
            detail: true,
        })
        .data
        .as_array()
        .unwrap()
        .clone()
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for s in &self.shared {
            s.stop.store(true, Ordering::Relaxed);
        }
        for t in self.th.drain(..) {
            let _ = t.join();
        }
    }
}

fn gcm(spi: u32, key: &str, local: Ipv4Addr, remote: Ipv4Addr) -> Sa {
    let k: Vec<u8> = (0..key.len() / 2)
        .map(|i| u8::from_str_radix(&key[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let cfg = SaConfig::new(
        spi,
        Mode::Tunnel4 { local, remote },
        Suite::AesGcm(AesKeyLen::Aes128),
    );
    Sa::new(&cfg, &k, &[]).unwrap()
}

/// A UDP packet from host A to 10.9.1.1 carrying `seq`.
fn from_a(seq: u32) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(HOST_A, GW_A)
        .ipv4([10, 0, 0, 2], [10, 9, 1, 1], 64)
        .udp(4000, 5000)
        .write(&mut v, &seq.to_be_bytes())
        .unwrap();
    v
}

/// An ESP frame from the peer: 10.9.1.1 -> host A carrying `seq`, sealed with `sa`.
fn from_peer(sa: &mut Sa, seq: u32) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4([10, 9, 1, 1], [10, 0, 0, 2], 64)
        .udp(5000, 4000)
        .write(&mut v, &seq.to_be_bytes())
        .unwrap();
    let mut p = HeapPacket::from_frame(&v);
    esp::encap(sa, &mut p, &OuterPolicy::default()).unwrap();
    let mut f = GW_B.to_vec();
    f.extend_from_slice(&PEER);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&p.to_vec());
    f
}

/// The SPI, ESP sequence number and stream number of an ESP frame we sent, opened with the
/// peer's copy of the SA it names.
fn open(peer: &mut HashMap<u32, Sa>, f: &[u8]) -> (u32, u64, u32) {
    assert_eq!(&f[0..6], &PEER, "to the peer");
    assert_eq!(f[14 + 9], 50, "ESP");
    let spi = u32::from_be_bytes(f[34..38].try_into().unwrap());
    let sa = peer.get_mut(&spi).unwrap_or_else(|| panic!("SPI {spi:#x}"));
    let mut p = HeapPacket::from_frame(&f[14..]);
    let info = esp::decap(sa, &mut p).expect("the peer decrypts (no replay, no ICV error)");
    let d = p.data();
    (
        spi,
        info.seq,
        u32::from_be_bytes(d[28..32].try_into().unwrap()),
    )
}

fn sa_req(name: &str, spi: u64, inbound: bool, key: &str) -> RawSa {
    let (src, dst) = if inbound { (THEM, ME) } else { (ME, THEM) };
    RawSa {
        name: name.into(),
        spi,
        direction: if inbound { "in" } else { "out" }.into(),
        src: Some(src.to_string()),
        dst: Some(dst.to_string()),
        encryption: "aes-gcm-128".into(),
        key: key.into(),
        ..RawSa::default()
    }
}

#[test]
fn rekey_under_a_stream_loses_nothing_and_the_old_inbound_sa_lingers() {
    let mut r = Rig::new();
    let mut peer_open: HashMap<u32, Sa> = HashMap::new();
    peer_open.insert(0x1001, gcm(0x1001, KEY_OUT1, THEM, ME));
    peer_open.insert(0x1002, gcm(0x1002, KEY_OUT2, THEM, ME));
    let mut peer_in1 = gcm(0x2001, KEY_IN1, THEM, ME);
    let mut peer_in2 = gcm(0x2002, KEY_IN2, THEM, ME);

    // Outbound stream 0..3000; inbound stream 0..3000 in step with it.
    let n = 3000u32;
    let mut seen_out: Vec<(u32, u64, u32)> = Vec::new();
    let mut seen_in: Vec<u32> = Vec::new();
    let collect = |r: &mut Rig,
                   out: &mut Vec<(u32, u64, u32)>,
                   inb: &mut Vec<u32>,
                   po: &mut HashMap<u32, Sa>| {
        for f in r.take(1) {
            out.push(open(po, &f));
        }
        for f in r.take(0) {
            assert_eq!(&f[0..6], &HOST_A);
            inb.push(u32::from_be_bytes(f[42..46].try_into().unwrap()));
        }
    };
    let mut inbound_sa_switched = false;
    for seq in 0..n {
        r.send(0, from_a(seq));
        let s = if inbound_sa_switched {
            &mut peer_in2
        } else {
            &mut peer_in1
        };
        r.send(1, from_peer(s, seq));
        match seq {
            // Make: the new inbound SA first (admitted beside the old one), then the new
            // outbound SA, which takes over at once. in2 gets slot 2 (worker 0), out2 slot 3
            // (worker 1): from now on packets cross the hand-off rings both ways.
            1000 => {
                r.ok(Request::SaAdd {
                    sa: sa_req("in2", 0x2002, true, KEY_IN2),
                    policy: Some("p".into()),
                    vti: None,
                });
                r.ok(Request::SaAdd {
                    sa: sa_req("out2", 0x1002, false, KEY_OUT2),
                    policy: Some("p".into()),
                    vti: None,
                });
            }
            // Break: the old SAs go while traffic flows; the peer still uses in1 for a
            // while (the grace period covers it).
            1500 => {
                r.ok(Request::SaDel {
                    name: "out1".into(),
                });
                r.ok(Request::SaDel { name: "in1".into() });
            }
            2000 => inbound_sa_switched = true,
            // Clear the inbound SA in use: reinstalled in a new slot and the old one removed
            // in one step, while packets for it sit in the owner's hand-off ring.
            2500 => {
                let c = r.ok(Request::ClearIpsecSa {
                    spi: Some(0x2002),
                    peer: None,
                    policy: None,
                    all: false,
                });
                assert_eq!(c.data["cleared"], serde_json::json!(["in2"]));
            }
            _ => {}
        }
        // Keep the stream flowing: a few dozen packets in flight, never thousands queued
        // (so the commands above really land in the middle of it).
        if seq % 32 == 0 {
            r.until("workers keep up", |r| {
                r.rx.iter().all(|q| q.lock().unwrap().len() < 48)
            });
            collect(&mut r, &mut seen_out, &mut seen_in, &mut peer_open);
        }
    }
    r.until("both streams through", |r| {
        collect(r, &mut seen_out, &mut seen_in, &mut peer_open);
        seen_out.len() >= n as usize && seen_in.len() >= n as usize
    });
    r.settle();
    let drops = r.drops();
    assert!(drops.is_empty(), "drops: {drops:?}");

    // Every packet exactly once, each SA's sequence numbers 1..=k without a gap (no packet
    // sealed twice, none skipped), the switch happened.
    let mut stream: Vec<u32> = seen_out.iter().map(|x| x.2).collect();
    stream.sort_unstable();
    assert_eq!(stream, (0..n).collect::<Vec<_>>());
    for spi in [0x1001u32, 0x1002] {
        let mut seqs: Vec<u64> = seen_out
            .iter()
            .filter(|x| x.0 == spi)
            .map(|x| x.1)
            .collect();
        seqs.sort_unstable();
        assert!(!seqs.is_empty(), "SPI {spi:#x} used");
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "SPI {spi:#x}"
        );
    }
    seen_in.sort_unstable();
    assert_eq!(seen_in, (0..n).collect::<Vec<_>>());

    // in1 still installed (grace), out1 gone; in1 decrypted packets after its deletion.
    let sas = r.sas();
    let by = |n: &str| sas.iter().find(|s| s["name"] == n).cloned();
    let mut names: Vec<&str> = sas.iter().map(|s| s["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["in1", "in2", "out2"], "{sas:?}");
    let in1 = by("in1").unwrap();
    assert!(in1["state"].as_str().unwrap().starts_with("grace"), "{in1}");
    assert_eq!(in1["packets"].as_u64(), Some(2001), "seq 0..=2000 used in1");
    assert_eq!(in1["used_by"], serde_json::json!(["p"]));
    assert_eq!(by("out2").unwrap()["worker"].as_u64(), Some(1));
    // Cleared around 2500 (in2 carried 2001..=2999): its counters started again.
    let in2 = by("in2").unwrap()["packets"].as_u64().unwrap();
    assert!(in2 > 0 && in2 < 999, "{in2}");

    // The grace period ends (30 s later, as far as the controller knows): in1 is removed and
    // its SPI is unknown again.
    let later = Instant::now() + Duration::from_secs(31);
    let v = r.ctl.published_version();
    r.until_at("grace over", later, |r| r.ctl.running_version() > v);
    r.ctl.poll(later);
    let mut names: Vec<String> = r
        .sas()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["in2", "out2"]);
    r.send(1, from_peer(&mut peer_in1, 9999));
    r.until("old SPI refused", |r| {
        r.drops().get("esp-no-sa") == Some(&1)
    });

    // Policy counters: everything protected both ways.
    let stats = r.ok(Request::ShowIpsecStats).data;
    let p = &stats[0];
    assert_eq!(
        (p["kind"].as_str(), p["name"].as_str()),
        (Some("policy"), Some("p"))
    );
    assert_eq!(p["packets_out"].as_u64(), Some(n as u64));
    assert_eq!(p["packets_in"].as_u64(), Some(n as u64));
    assert_eq!(p["discarded"].as_u64(), Some(0));
}

fn show(r: &mut Rig, f: impl FnOnce(&mut Request)) -> Vec<serde_json::Value> {
    let mut req = Request::ShowIpsecSa {
        name: None,
        spi: None,
        peer: None,
        selector: None,
        detail: false,
    };
    f(&mut req);
    r.ok(req).data.as_array().unwrap().clone()
}

fn names(rows: &[serde_json::Value]) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn lifetimes_clear_filters_vti_and_refusals() {
    let mut r = Rig::new();
    let mut peer_open: HashMap<u32, Sa> = HashMap::new();
    peer_open.insert(0x1001, gcm(0x1001, KEY_OUT1, THEM, ME));

    // A refused change names the field and changes nothing.
    let v = r.ctl.published_version();
    let mut bad = sa_req("out2", 0x1002, false, &KEY_OUT2[..38]);
    let e = r.ctl.handle(Request::SaAdd {
        sa: bad.clone(),
        policy: Some("p".into()),
        vti: None,
    });
    assert!(
        e.error
            .as_deref()
            .unwrap()
            .contains("ipsec.sa[2].key: 19 bytes given"),
        "{e:?}"
    );
    bad.key = KEY_OUT2.into();
    bad.spi = 200;
    let e = r.ctl.handle(Request::SaAdd {
        sa: bad.clone(),
        policy: None,
        vti: None,
    });
    assert!(
        e.error.as_deref().unwrap().contains("ipsec.sa[2].spi: 200"),
        "{e:?}"
    );
    bad.spi = 0x1002;
    let e = r.ctl.handle(Request::SaAdd {
        sa: bad.clone(),
        policy: Some("nope".into()),
        vti: None,
    });
    assert_eq!(e.error.as_deref(), Some("policy: no policy named 'nope'"));
    let e = r.ctl.handle(Request::SaDel {
        name: "out1".into(),
    });
    assert!(e
        .error
        .as_deref()
        .unwrap()
        .contains("only outbound SA of policy 'p'"));
    assert_eq!(r.ctl.published_version(), v);
    assert_eq!(names(&show(&mut r, |_| {})), ["in1", "out1"]);

    // Filters: SPI, peer, selector by policy name and by an address it covers.
    assert_eq!(
        names(&show(&mut r, |q| {
            if let Request::ShowIpsecSa { spi, .. } = q {
                *spi = Some(0x2001)
            }
        })),
        ["in1"]
    );
    assert_eq!(
        names(&show(&mut r, |q| {
            if let Request::ShowIpsecSa { peer, .. } = q {
                *peer = Some("192.0.2.2".into())
            }
        }))
        .len(),
        2
    );
    assert!(
        show(&mut r, |q| if let Request::ShowIpsecSa { peer, .. } = q {
            *peer = Some("192.0.2.9".into())
        })
        .is_empty()
    );
    for sel in ["p", "10.9.3.4", "10.0.0.0/16"] {
        assert_eq!(
            names(&show(&mut r, |q| {
                if let Request::ShowIpsecSa { selector, .. } = q {
                    *selector = Some(sel.into())
                }
            }))
            .len(),
            2,
            "{sel}"
        );
    }
    assert!(show(&mut r, |q| {
        if let Request::ShowIpsecSa { selector, .. } = q {
            *selector = Some("172.20.0.0/16".into())
        }
    })
    .is_empty());

    // Traffic, then clear by policy: the outbound SA starts again at sequence number 1.
    let send_and_open = |r: &mut Rig, peer_open: &mut HashMap<u32, Sa>, seq: u32| {
        r.send(0, from_a(seq));
        let mut got = Vec::new();
        r.until("sealed", |r| {
            got.extend(r.take(1));
            !got.is_empty()
        });
        open(peer_open, &got[0])
    };
    assert_eq!(send_and_open(&mut r, &mut peer_open, 1).1, 1);
    assert_eq!(send_and_open(&mut r, &mut peer_open, 2).1, 2);
    for bad in [
        Request::ClearIpsecSa {
            spi: None,
            peer: None,
            policy: None,
            all: false,
        },
        Request::ClearIpsecSa {
            spi: Some(1),
            peer: None,
            policy: None,
            all: true,
        },
    ] {
        let e = r.ctl.handle(bad);
        assert!(
            e.error.as_deref().unwrap().contains("exactly one of"),
            "{e:?}"
        );
    }
    let e = r.ctl.handle(Request::ClearIpsecSa {
        spi: Some(0x9999),
        peer: None,
        policy: None,
        all: false,
    });
    assert_eq!(
        e.error.as_deref(),
        Some("clear ipsec sa: no installed SA matches")
    );
    let c = r.ok(Request::ClearIpsecSa {
        spi: None,
        peer: None,
        policy: Some("p".into()),
        all: false,
    });
    assert_eq!(c.data["cleared"], serde_json::json!(["out1", "in1"]));
    r.settle();
    // The peer clears its end too (fresh replay window), as with any manual SA.
    peer_open.insert(0x1001, gcm(0x1001, KEY_OUT1, THEM, ME));
    assert_eq!(send_and_open(&mut r, &mut peer_open, 3).1, 1);

    // Lifetimes in seconds: a new outbound SA with soft 2 s / hard 5 s takes over.
    let mut timed = sa_req("out2", 0x1002, false, KEY_OUT2);
    timed.lifetime.soft_seconds = 2;
    timed.lifetime.hard_seconds = 5;
    r.ok(Request::SaAdd {
        sa: timed,
        policy: Some("p".into()),
        vti: None,
    });
    r.settle();
    peer_open.insert(0x1002, gcm(0x1002, KEY_OUT2, THEM, ME));
    assert_eq!(send_and_open(&mut r, &mut peer_open, 4).0, 0x1002);
    let state = |r: &mut Rig| {
        show(r, |q| {
            if let Request::ShowIpsecSa { name, detail, .. } = q {
                *name = Some("out2".into());
                *detail = true;
            }
        })[0]
            .clone()
    };
    let s = state(&mut r);
    assert_eq!(s["state"], "mature");
    assert_eq!(
        s["lifetime_hard"],
        "5 seconds; unlimited bytes; unlimited packets"
    );
    assert_eq!(s["spi"], "0x00001002");
    assert_eq!(s["spi_dec"], 4098);
    r.ctl.poll(Instant::now() + Duration::from_secs(3));
    assert_eq!(state(&mut r)["state"], "rekey-needed");
    r.ctl.poll(Instant::now() + Duration::from_secs(6));
    assert_eq!(state(&mut r)["state"], "expired");
    r.send(0, from_a(5));
    r.until("expired SA refuses", |r| {
        r.drops().get("esp-sa-expired") == Some(&1)
    });
    assert!(r.take(1).is_empty());

    // A VTI beside the policy: route 10.8.0.0/16 into it; its SAs are its own.
    r.ok(Request::SaAdd {
        sa: sa_req("vout", 0x3001, false, KEY_OUT1),
        policy: None,
        vti: None,
    });
    r.ok(Request::SaAdd {
        sa: sa_req("vin", 0x3002, true, KEY_IN1),
        policy: None,
        vti: None,
    });
    let e = r.ctl.handle(Request::VtiAdd {
        vti: control::config::RawVti {
            name: "vti0".into(),
            sa_out: "out2".into(),
            sa_in: vec![],
            addresses: vec![],
            mtu: None,
        },
    });
    assert_eq!(
        e.error.as_deref(),
        Some("ipsec.vti[0].sa_out: SA 'out2' is already used by policy 'p'")
    );
    r.ok(Request::VtiAdd {
        vti: control::config::RawVti {
            name: "vti0".into(),
            sa_out: "vout".into(),
            sa_in: vec!["vin".into()],
            addresses: vec!["172.16.0.5/30".into()],
            mtu: None,
        },
    });
    r.ok(Request::RouteAdd {
        route: control::config::RawRoute {
            prefix: "10.8.0.0/16".into(),
            interface: Some("vti0".into()),
            ..Default::default()
        },
    });
    let ifs = r.ok(Request::ShowInterfaces).data;
    let vti = ifs
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "vti0")
        .unwrap();
    assert_eq!(vti["port"], "vti");
    assert_eq!(vti["mtu"], 1446);
    assert_eq!(vti["sa"], "out vout in vin");
    let routes = r.ok(Request::ShowRoutes).data;
    assert!(routes
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["prefix"] == "10.8.0.0/16" && x["interface"] == "vti0"));
    let e = r.ctl.handle(Request::VtiDel {
        name: "vti0".into(),
    });
    assert!(e
        .error
        .as_deref()
        .unwrap()
        .contains("used by route 10.8.0.0/16"));
    let stats = r.ok(Request::ShowIpsecStats).data;
    let kinds: Vec<&str> = stats
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["policy", "default", "vti", "mode", "mode"]);
}
