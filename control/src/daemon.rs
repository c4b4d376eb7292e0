//! The daemon around the controller: EAL, the mbuf pool, ports and queues, worker lcores,
//! the management socket, signals, and an orderly shutdown that stops the workers, the ports,
//! and gives every mbuf back to the pool.
//!
//! Start-up order makes "nothing half-starts" hold: the whole config is validated before
//! EAL is initialised; EAL runs `--in-memory`, so a failure after it leaves no files; ports are
//! attached and configured one by one, and any failure drops what was built so far (RAII) and
//! exits non-zero before a single worker runs.

use crate::api::proto::Response;
use crate::api::server;
use crate::build::Runtime;
use crate::controller::{Controller, Platform};
use crate::state::State;
use crossbeam::queue::ArrayQueue;
use dataplane::events::Injected;
use dataplane::wire::Mac;
use dataplane::worker::{RxQueue, TxQueue, Worker, WorkerShared, INJECT_QUEUE};
use dpdk::{Eal, Mbuf, Mempool, Port, PortConfig};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// RX queue adapter: the worker loop's trait over a DPDK queue.
struct DpdkRx(dpdk::RxQueue);
struct DpdkTx(dpdk::TxQueue);

impl RxQueue<Mbuf> for DpdkRx {
    #[inline]
    fn rx_burst(&mut self, out: &mut Vec<Mbuf>) -> usize {
        self.0.rx_burst(out)
    }
}

impl TxQueue<Mbuf> for DpdkTx {
    #[inline]
    fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        self.0.tx_burst(pkts)
    }
}

/// `show ports` and `show pool` from DPDK.
struct DpdkPlatform {
    ports: Vec<Port>,
    pool: Mempool,
}

impl Platform for DpdkPlatform {
    fn port_rows(&self, st: &State) -> Vec<serde_json::Value> {
        self.ports
            .iter()
            .zip(&st.ports)
            .map(|(p, c)| {
                let s = p.stats();
                let l = p.link();
                json!({
                    "name": c.name,
                    "id": p.id(),
                    "driver": p.info().driver,
                    "mac": Mac(p.mac()).to_string(),
                    "link": if l.up { format!("up {}M", l.speed_mbps) } else { "down".to_string() },
                    "rxq": c.queues,
                    "ipackets": s.ipackets,
                    "opackets": s.opackets,
                    "imissed": s.imissed,
                    "ierrors": s.ierrors,
                    "rx_nombuf": s.rx_nombuf,
                    "oerrors": s.oerrors,
                    "devargs": c.devargs,
                })
            })
            .collect()
    }

    fn pool(&self) -> serde_json::Value {
        json!({
            "size": self.pool.size(),
            "available": self.pool.avail_count(),
            "in_use": self.pool.in_use_count(),
        })
    }
}

/// EAL arguments for a validated state.
pub fn eal_args(st: &State) -> Vec<String> {
    let s = &st.system;
    let mut lcores: Vec<u32> = std::iter::once(s.main_lcore)
        .chain(st.workers.iter().map(|w| w.lcore))
        .collect();
    lcores.sort_unstable();
    let mut a: Vec<String> = vec!["ferrogate".into()];
    if s.lcore_cpus.is_empty() {
        a.push("-l".into());
        a.push(
            lcores
                .iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(","),
        );
    } else {
        a.push("--lcores".into());
        a.push(
            lcores
                .iter()
                .map(|&l| format!("{l}@{}", st.lcore_cpu(l)))
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    a.extend([
        "--main-lcore".into(),
        s.main_lcore.to_string(),
        "--file-prefix".into(),
        s.file_prefix.clone(),
    ]);
    // The telemetry socket would outlive EAL cleanup (it is unlinked at process exit) and keep
    // the runtime directory from being removed; operators read counters through ferroctl.
    // `eal_args = ["--telemetry"]` turns it back on.
    if !s.eal_args.iter().any(|a| a == "--telemetry") {
        a.push("--no-telemetry".into());
    }
    if s.in_memory {
        a.push("--in-memory".into());
    }
    // Virtual devices only: do not probe (or claim) the machine's PCI NICs.
    if st
        .ports
        .iter()
        .all(|p| p.devargs.starts_with("net_") || p.devargs.starts_with("eth_"))
    {
        a.push("--no-pci".into());
    }
    a.extend(dpdk::plugin_args());
    a.extend(s.eal_args.iter().cloned());
    a
}

/// Run the daemon until SIGINT/SIGTERM. Returns the process exit code.
pub fn run(st: State) -> Result<(), String> {
    let eal = Eal::init(&eal_args(&st)).map_err(|e| format!("EAL initialisation failed: {e}"))?;
    let socket_id = 0;
    let pool = Mempool::new(
        "ferro_pool",
        st.system.mempool_mbufs,
        st.system.mempool_cache,
        st.system.mbuf_data_room,
        socket_id,
    )
    .map_err(|e| {
        format!(
            "system.mempool_mbufs: cannot create a pool of {} mbufs: {e}",
            st.system.mempool_mbufs
        )
    })?;
    let n_workers = st.workers.len() as u16;

    // Ports: attach, configure, start. Any failure returns (dropping what was built).
    let mut ports: Vec<Port> = Vec::new();
    let mut macs: Vec<Mac> = Vec::new();
    for (i, p) in st.ports.iter().enumerate() {
        let port = Port::attach(&p.devargs).map_err(|e| {
            format!(
                "ports[{i}].devargs: port '{}': '{}' failed: {e}",
                p.name, p.devargs
            )
        })?;
        let cfg = PortConfig {
            rx_queues: p.queues,
            tx_queues: n_workers,
            rx_desc: p.rx_desc,
            tx_desc: p.tx_desc,
            rss: p.rss && p.queues > 1,
            mtu: Some(p.mtu),
        };
        port.configure(&cfg, &pool)
            .map_err(|e| format!("ports[{i}]: port '{}': configure failed: {e}", p.name))?;
        let mut promiscuous = p.promiscuous;
        let mut mac = Mac(port.mac());
        if let Some(m) = p.mac {
            match port.set_mac(m.0) {
                Ok(()) => mac = m,
                // Virtual devices such as net_pcap have no MAC filter to program: the worker's
                // own L2 check does the filtering, so receive everything and use the
                // configured address in software.
                Err(e) if e.is_unsupported() => {
                    tracing::info!(port = %p.name, "driver cannot set a MAC; using {m} in software (promiscuous)");
                    mac = m;
                    promiscuous = true;
                }
                Err(e) => return Err(format!("ports[{i}].mac: port '{}': {e}", p.name)),
            }
        }
        port.start()
            .map_err(|e| format!("ports[{i}]: port '{}': start failed: {e}", p.name))?;
        if promiscuous {
            port.set_promiscuous(true);
        }
        macs.push(mac);
        ports.push(port);
    }
    let rt = Runtime {
        port_ids: ports.iter().map(|p| p.id()).collect(),
        port_macs: macs,
    };

    let shared: Vec<Arc<WorkerShared<Mbuf>>> = st
        .workers
        .iter()
        .map(|_| Arc::new(WorkerShared::default()))
        .collect();
    let inject: Vec<Arc<ArrayQueue<Injected<Mbuf>>>> = st
        .ports
        .iter()
        .map(|_| Arc::new(ArrayQueue::new(INJECT_QUEUE)))
        .collect();
    let mk_pool = pool.clone();
    let make = Box::new(move |b: &[u8]| {
        let mut m = mk_pool.alloc()?;
        if !m.append(b.len()) {
            return None;
        }
        m.data_mut().copy_from_slice(b);
        Some(m)
    });
    let platform = Box::new(DpdkPlatform {
        ports: ports.to_vec(),
        pool: pool.clone(),
    });
    let lcores: Vec<u32> = st.workers.iter().map(|w| w.lcore).collect();
    let (mut ctl, handle) = Controller::new(
        st.clone(),
        rt.clone(),
        shared.clone(),
        lcores,
        inject.clone(),
        make,
        platform,
    )?;
    let api = server::start(&st.system.socket)?;

    // Queues: worker w polls its configured RX queues and sends on TX queue w of every port;
    // each port's inject queue is drained by the first worker that polls the port.
    let mut rxqs: Vec<Vec<Option<dpdk::RxQueue>>> = ports
        .iter()
        .zip(&st.ports)
        .map(|(p, c)| (0..c.queues).map(|q| p.rx_queue(q).ok()).collect())
        .collect();
    let mut drained = vec![false; ports.len()];
    let hz = dpdk::tsc_hz();
    for (wi, w) in st.workers.iter().enumerate() {
        let mut rx = Vec::new();
        let mut inj = Vec::new();
        for &(pi, q) in &w.rx {
            let rq = rxqs[pi][q as usize]
                .take()
                .ok_or_else(|| format!("port '{}' queue {q} taken twice", st.ports[pi].name))?;
            rx.push((rt.port_ids[pi], DpdkRx(rq)));
            if !drained[pi] {
                drained[pi] = true;
                inj.push(inject[pi].clone());
            }
        }
        let max_id = rt.port_ids.iter().copied().max().unwrap_or(0) as usize;
        let mut tx: Vec<Option<DpdkTx>> = (0..=max_id).map(|_| None).collect();
        for (pi, p) in ports.iter().enumerate() {
            let tq = p
                .tx_queue(wi as u16)
                .map_err(|e| format!("port '{}' tx queue {wi}: {e}", st.ports[pi].name))?;
            tx[rt.port_ids[pi] as usize] = Some(DpdkTx(tq));
        }
        let worker = Worker {
            id: wi as u32,
            rx,
            tx,
            inject: inj,
            shared: shared[wi].clone(),
            peers: shared.clone(),
            tables: handle.clone(),
            burst: st.system.burst as usize,
            clock: dpdk::tsc,
            clock_hz: hz,
            icmp_rate: st.system.icmp_rate,
            idle_sleep: Duration::from_micros(st.system.worker_idle_sleep_us as u64),
            alloc: {
                let pool = pool.clone();
                Box::new(move || pool.alloc())
            },
        };
        dpdk::lcore::launch(w.lcore, move || worker.run()).map_err(|e| {
            format!(
                "workers[{wi}].lcore: cannot launch on lcore {}: {e}",
                w.lcore
            )
        })?;
    }
    tracing::info!(
        ports = ports.len(),
        workers = st.workers.len(),
        socket = %st.system.socket,
        aes_gcm = %dataplane::esp::crypto::gcm_backend(),
        "ferrogate running"
    );

    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone())
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    ctl.resolve_gateways(Instant::now());
    while !term.load(Ordering::Relaxed) {
        let mut busy = false;
        while let Ok(p) = api.try_recv() {
            busy = true;
            let resp: Response = ctl.handle(p.req);
            let _ = p.reply.send(resp);
        }
        busy |= ctl.poll(Instant::now());
        if !busy {
            std::thread::sleep(Duration::from_micros(500));
        }
    }

    tracing::info!("stopping");
    for s in &shared {
        s.stop.store(true, Ordering::Relaxed);
    }
    for w in &st.workers {
        dpdk::lcore::wait(w.lcore);
    }
    for p in &ports {
        p.stop();
    }
    // Give back what is still queued between threads.
    for s in &shared {
        while s.punt.pop().is_some() {}
    }
    for q in &inject {
        while q.pop().is_some() {}
    }
    drop(ctl);
    let _ = std::fs::remove_file(&st.system.socket);
    let in_use = pool.in_use_count();
    for p in ports {
        p.close();
    }
    // Tests read this line to prove no mbuf leaked.
    tracing::info!("mbufs in use at exit: {in_use}");
    drop(eal);
    Ok(())
}
