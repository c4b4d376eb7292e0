//! The worker loop: one per lcore, poll mode, run to completion. It polls its (port, queue)
//! pairs, runs each non-empty burst through the pipeline, transmits, and frees and counts what
//! TX did not take. It picks up a new table version only between bursts, and never waits for
//! the control thread: everything it exchanges with it goes through bounded lock-free queues
//! that drop and count when full.
//!
//! The loop is generic over its queues (`RxQueue`/`TxQueue`), so the daemon runs it on DPDK
//! queues and the tests on in-memory ones.

use crate::esp::store::{OwnedSa, SaCmd, SA_COMMANDS};
use crate::events::{Event, InjectKind, Injected, Punted};
use crate::packet::Packet;
use crate::pipeline::{Ctx, Env, Handoff, Pipeline, RateLimiter, ResolveFilter, MAX_BURST};
use crate::stats::{DropReason, WorkerCounters};
use crate::tables::{Tables, TablesHandle};
use crossbeam::queue::ArrayQueue;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A receive queue.
pub trait RxQueue<P> {
    /// Append up to `out.capacity() - out.len()` packets to `out`; returns how many.
    fn rx_burst(&mut self, out: &mut Vec<P>) -> usize;
}

/// A transmit queue.
pub trait TxQueue<P> {
    /// Send from the front of `pkts`, removing what was sent; returns how many.
    fn tx_burst(&mut self, pkts: &mut Vec<P>) -> usize;
}

/// Queue capacities between a worker and the control thread.
pub const PUNT_QUEUE: usize = 1024;
pub const EVENT_QUEUE: usize = 1024;
pub const INJECT_QUEUE: usize = 1024;
/// Packets other workers may have waiting for this one's SAs.
pub const HANDOFF_QUEUE: usize = 2048;

/// What a worker shares with the control thread.
pub struct WorkerShared<P> {
    pub counters: WorkerCounters,
    pub punt: ArrayQueue<Punted<P>>,
    pub events: ArrayQueue<Event>,
    pub stop: AtomicBool,
    /// SA installs and removals for this worker (from the control thread).
    pub sa_cmds: ArrayQueue<SaCmd>,
    /// SAs this worker no longer holds, for the control thread to free.
    pub sa_retired: ArrayQueue<Box<OwnedSa>>,
    /// Packets from other workers that need an SA this worker owns.
    pub handoff: ArrayQueue<Handoff<P>>,
}

impl<P> Default for WorkerShared<P> {
    fn default() -> Self {
        WorkerShared {
            counters: WorkerCounters::default(),
            punt: ArrayQueue::new(PUNT_QUEUE),
            events: ArrayQueue::new(EVENT_QUEUE),
            stop: AtomicBool::new(false),
            sa_cmds: ArrayQueue::new(SA_COMMANDS),
            sa_retired: ArrayQueue::new(SA_COMMANDS),
            handoff: ArrayQueue::new(HANDOFF_QUEUE),
        }
    }
}

/// Everything one worker owns.
pub struct Worker<P, R, T> {
    pub id: u32,
    /// (port, queue) pairs polled, in order.
    pub rx: Vec<(u16, R)>,
    /// TX queue per port id (`None` for ports this worker never sends on).
    pub tx: Vec<Option<T>>,
    /// Inject queues (per port) this worker drains.
    pub inject: Vec<Arc<ArrayQueue<Injected<P>>>>,
    pub shared: Arc<WorkerShared<P>>,
    /// Every worker's shared block, by worker id (hand-off targets).
    pub peers: Vec<Arc<WorkerShared<P>>>,
    pub tables: Arc<TablesHandle>,
    /// Packets per RX burst (1..=MAX_BURST).
    pub burst: usize,
    /// Cycle counter and its frequency.
    pub clock: fn() -> u64,
    pub clock_hz: u64,
    /// ICMP errors per second this worker may send.
    pub icmp_rate: u32,
    /// Sleep this long after `IDLE_POLLS_BEFORE_SLEEP` empty polls in a row (zero: never).
    pub idle_sleep: std::time::Duration,
    /// New buffers (for fragments).
    pub alloc: Alloc<P>,
}

/// Empty polls in a row before an idle worker may sleep.
const IDLE_POLLS_BEFORE_SLEEP: u32 = 64;

/// Where a worker takes new buffers from (its mempool in the daemon).
pub type Alloc<P> = Box<dyn FnMut() -> Option<P> + Send>;

struct QueueEnv<'a, P> {
    shared: &'a WorkerShared<P>,
    peers: &'a [Arc<WorkerShared<P>>],
    alloc: &'a mut Alloc<P>,
}

impl<P> Env<P> for QueueEnv<'_, P> {
    #[inline]
    fn punt(&mut self, p: Punted<P>) -> Result<(), Punted<P>> {
        self.shared.punt.push(p)
    }
    #[inline]
    fn event(&mut self, e: Event) -> bool {
        self.shared.events.push(e).is_ok()
    }
    #[inline]
    fn handoff(&mut self, owner: u16, h: Handoff<P>) -> Result<(), Handoff<P>> {
        match self.peers.get(owner as usize) {
            Some(w) => w.handoff.push(h),
            None => Err(h),
        }
    }
    #[inline]
    fn alloc(&mut self) -> Option<P> {
        (self.alloc)()
    }
}

impl<P: Packet, R: RxQueue<P>, T: TxQueue<P>> Worker<P, R, T> {
    /// Poll until asked to stop. Returns 0 (the lcore exit status).
    pub fn run(mut self) -> i32 {
        let n_ports = self.tx.len();
        let mut pipeline: Pipeline<P> = Pipeline::new(n_ports);
        let burst = self.burst.clamp(1, MAX_BURST);
        let mut rxv: Vec<P> = Vec::with_capacity(burst);
        let mut local: Vec<P> = Vec::with_capacity(MAX_BURST);
        let mut tables: Arc<Tables> = self.tables.load();
        let shared = Arc::clone(&self.shared);
        let c = &shared.counters;
        c.table_version
            .add(tables.version.wrapping_sub(c.table_version.get()));
        // One context for the worker's life, only its clock moved per burst: the rate
        // limiters in it are a kilobyte, and moving them in and out of a fresh context per
        // burst cost as much as a tunnel lookup per packet.
        let mut ctx = Ctx {
            worker: self.id,
            counters: c,
            now: 0,
            icmp: RateLimiter::new(self.icmp_rate, self.icmp_rate.max(1), self.clock_hz),
            resolve: ResolveFilter::new(self.clock_hz / 10),
        };
        let peers = std::mem::take(&mut self.peers);
        let mut alloc: Alloc<P> = std::mem::replace(&mut self.alloc, Box::new(|| None));
        let mut env = QueueEnv {
            shared: &shared,
            peers: &peers,
            alloc: &mut alloc,
        };
        let mut handed: Vec<Handoff<P>> = Vec::with_capacity(MAX_BURST);
        let mut idle_streak = 0u32;

        while !shared.stop.load(Ordering::Relaxed) {
            // Burst boundary: adopt the newest tables if the version moved. The previous
            // version is still referenced by the control thread's retire list, so dropping our
            // reference here never frees memory on the worker.
            let v = self.tables.version();
            if v != tables.version {
                tables = self.tables.load();
                // Everything this worker did with the older tables (hand-offs pushed to other
                // workers included) happens-before the control thread seeing the new version:
                // it frees SA slots on that basis.
                std::sync::atomic::fence(Ordering::Release);
                c.table_version
                    .add(tables.version.wrapping_sub(c.table_version.get()));
            }
            // SA commands after the tables: an SA is sent before the tables that name it are
            // published, so whoever sees those tables finds it installed.
            if !shared.sa_cmds.is_empty() {
                pipeline.sas.apply(&shared.sa_cmds, &shared.sa_retired);
            }
            let mut busy = false;
            // Normally one burst of hand-offs per round. With SA removals pending, everything
            // the ring holds now is drained first: those packets may have been classified by
            // another worker with tables that still named the slots (make-before-break).
            let mut left = shared.handoff.len();
            if !pipeline.sas.removals_pending() {
                left = left.min(MAX_BURST);
            }
            while left > 0 {
                while handed.len() < left.min(MAX_BURST) {
                    let Some(h) = shared.handoff.pop() else { break };
                    handed.push(h);
                }
                if handed.is_empty() {
                    break;
                }
                left -= handed.len();
                busy = true;
                let start = (self.clock)();
                ctx.now = start;
                pipeline.run_handoff(&tables, &mut ctx, &mut env, &mut handed);
                flush(&mut pipeline, &mut self.tx, c);
                c.busy_cycles.add((self.clock)().wrapping_sub(start));
            }
            if pipeline.sas.removals_pending() {
                pipeline.sas.finish_removals(&shared.sa_retired);
            }
            for q in 0..self.rx.len() {
                let (port, rxq) = &mut self.rx[q];
                let port = *port;
                let n = rxq.rx_burst(&mut rxv);
                if n == 0 {
                    continue;
                }
                busy = true;
                let start = (self.clock)();
                c.rx_packets.add(n as u64);
                c.rx_bytes.add(rxv.iter().map(|p| p.len() as u64).sum());
                ctx.now = start;
                pipeline.run_rx(&tables, &mut ctx, &mut env, &mut rxv, port);
                flush(&mut pipeline, &mut self.tx, c);
                c.bursts.inc();
                c.busy_cycles.add((self.clock)().wrapping_sub(start));
            }
            // Frames from the control thread.
            for iq in &self.inject {
                while local.len() < MAX_BURST {
                    let Some(inj) = iq.pop() else { break };
                    busy = true;
                    c.injected.inc();
                    match inj.kind {
                        InjectKind::L3 => local.push(inj.pkt),
                        InjectKind::L2 { port } => match pipeline.tx.get_mut(port as usize) {
                            Some(q) if q.len() < q.capacity() => q.push(inj.pkt),
                            _ => c.drop(DropReason::TxQueueFull),
                        },
                    }
                }
            }
            if !local.is_empty() {
                let now = (self.clock)();
                ctx.now = now;
                pipeline.run_local(&tables, &mut ctx, &mut env, &mut local);
            }
            flush(&mut pipeline, &mut self.tx, c);
            if busy {
                idle_streak = 0;
            } else {
                c.idle_polls.inc();
                idle_streak += 1;
                // Only reached with nothing to do: the sleep never delays a packet that was
                // already received.
                if !self.idle_sleep.is_zero() && idle_streak >= IDLE_POLLS_BEFORE_SLEEP {
                    std::thread::sleep(self.idle_sleep);
                }
            }
        }
        // Leave nothing behind: queued output is freed (dropped) with the pipeline.
        0
    }
}

/// Transmit everything the pipeline queued, retrying once; free and count the rest.
#[inline]
fn flush<P: Packet, T: TxQueue<P>>(
    pl: &mut Pipeline<P>,
    txqs: &mut [Option<T>],
    c: &WorkerCounters,
) {
    for (port, out) in pl.tx.iter_mut().enumerate() {
        if out.is_empty() {
            continue;
        }
        let bytes: u64 = out.iter().map(|p| p.len() as u64).sum();
        let total = out.len();
        let Some(Some(txq)) = txqs.get_mut(port) else {
            c.drops[DropReason::TxQueueFull as usize].add(total as u64);
            out.clear();
            continue;
        };
        let mut sent = txq.tx_burst(out);
        if !out.is_empty() {
            sent += txq.tx_burst(out);
        }
        let unsent_bytes: u64 = out.iter().map(|p| p.len() as u64).sum();
        c.tx_packets.add(sent as u64);
        c.tx_bytes.add(bytes - unsent_bytes);
        if !out.is_empty() {
            c.drops[DropReason::TxQueueFull as usize].add(out.len() as u64);
            out.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::HeapPacket;
    use crate::tables::fib::{Fib, FibRoute, NextHop};
    use crate::tables::iface::{Adjacency, IfKind, Interface, PortEntry};
    use crate::wire::Mac;
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    struct MemRx(Arc<Mutex<Vec<HeapPacket>>>);
    impl RxQueue<HeapPacket> for MemRx {
        fn rx_burst(&mut self, out: &mut Vec<HeapPacket>) -> usize {
            let mut q = self.0.lock().unwrap();
            let n = q.len().min(out.capacity() - out.len());
            out.extend(q.drain(..n));
            n
        }
    }
    struct MemTx(Arc<Mutex<Vec<HeapPacket>>>, usize);
    impl TxQueue<HeapPacket> for MemTx {
        fn tx_burst(&mut self, pkts: &mut Vec<HeapPacket>) -> usize {
            let n = pkts.len().min(self.1);
            self.0.lock().unwrap().extend(pkts.drain(..n));
            n
        }
    }

    fn clock() -> u64 {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        START.get_or_init(Instant::now).elapsed().as_nanos() as u64
    }

    fn tables(version: u64, dst: Mac) -> Tables {
        let mac = Mac([2, 0, 0, 0, 0, 1]);
        let ifc = Interface {
            kind: IfKind::Port { port: 0, vlan: 0 },
            mac,
            mtu: 1500,
            icmp_src_v4: Some([10, 0, 0, 1]),
            icmp_src_v6: None,
        };
        let adj = Adjacency {
            ifindex: 0,
            port: 0,
            vlan: 0,
            dst,
            src: mac,
            mtu: 1500,
        };
        let fib = Fib::build(
            &[FibRoute {
                addr: "0.0.0.0".parse().unwrap(),
                len: 0,
                nexthop: 0,
            }],
            vec![NextHop::Forward(adj)],
        )
        .unwrap();
        let port = PortEntry {
            mac,
            untagged: Some(0),
            vlans: vec![],
            xconnects: vec![],
        };
        Tables {
            version,
            ports: vec![port],
            interfaces: vec![ifc],
            fib,
            ipsec: Default::default(),
            tunnels: Default::default(),
        }
    }

    fn frame() -> Vec<u8> {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 9], [2, 0, 0, 0, 0, 1])
            .ipv4([10, 0, 0, 2], [10, 9, 9, 9], 64)
            .udp(1, 2)
            .write(&mut v, &[0; 18])
            .unwrap();
        v
    }

    fn wait_for(cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn forwards_switches_tables_at_burst_boundary_and_counts_unsent() {
        let input = Arc::new(Mutex::new(Vec::new()));
        let output = Arc::new(Mutex::new(Vec::new()));
        let handle = Arc::new(TablesHandle::new(tables(1, Mac([2, 0, 0, 0, 0, 0xa]))));
        let shared: Arc<WorkerShared<HeapPacket>> = Arc::new(WorkerShared::default());
        let inject = Arc::new(ArrayQueue::new(16));
        let w = Worker {
            peers: vec![shared.clone()],
            id: 0,
            rx: vec![(0, MemRx(input.clone()))],
            tx: vec![Some(MemTx(output.clone(), 3))],
            inject: vec![inject.clone()],
            shared: shared.clone(),
            tables: handle.clone(),
            burst: 32,
            clock,
            clock_hz: 1_000_000_000,
            icmp_rate: 10,
            idle_sleep: std::time::Duration::from_micros(100),
            alloc: Box::new(|| Some(HeapPacket::with_room(&[], 128, 2048))),
        };
        let th = std::thread::spawn(move || w.run());
        input
            .lock()
            .unwrap()
            .extend((0..5).map(|_| HeapPacket::from_frame(&frame())));
        // TX takes 3 per call and the worker retries once: all 5 go out.
        wait_for(|| shared.counters.tx_packets.get() == 5);
        assert!(output.lock().unwrap().iter().all(|p| p.data()[5] == 0xa));

        let old = handle.publish(Arc::new(tables(2, Mac([2, 0, 0, 0, 0, 0xb]))));
        wait_for(|| shared.counters.table_version.get() == 2);
        drop(old);
        output.lock().unwrap().clear();
        input
            .lock()
            .unwrap()
            .extend((0..8).map(|_| HeapPacket::from_frame(&frame())));
        wait_for(|| shared.counters.rx_packets.get() == 13);
        wait_for(|| shared.counters.tx_packets.get() + shared.counters.total_drops() == 13);
        let out = output.lock().unwrap();
        assert!(out.iter().all(|p| p.data()[5] == 0xb), "new tables used");
        // 8 in one burst, TX took 3 + 3: 2 counted as unsent.
        assert_eq!(
            shared.counters.drops[DropReason::TxQueueFull as usize].get(),
            2
        );
        drop(out);

        // An injected L2 frame goes out as is.
        let raw = HeapPacket::from_frame(&[0x55; 60]);
        assert!(inject
            .push(Injected {
                pkt: raw,
                kind: InjectKind::L2 { port: 0 }
            })
            .is_ok());
        wait_for(|| {
            output
                .lock()
                .unwrap()
                .iter()
                .any(|p| p.data() == [0x55; 60])
        });
        assert_eq!(shared.counters.injected.get(), 1);

        shared.stop.store(true, Ordering::Relaxed);
        assert_eq!(th.join().unwrap(), 0);
        assert!(shared.counters.bursts.get() >= 2);
    }
}
