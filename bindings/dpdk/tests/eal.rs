//! The safe wrappers against the real DPDK: EAL with the plugins loaded, the pool's accounting,
//! our mbuf arithmetic against DPDK's own inlines, net_ring loopback RX/TX, port configuration
//! with RSS, refusal of bad devargs, queue handles taken once, lcore launch and join.
//!
//! One #[test]: EAL can be initialised once per process. Needs root and hugepages
//! (scripts/setup.sh).

use dpdk::{Eal, Mbuf, Mempool, Port, PortConfig, Ring};

fn eal() -> Eal {
    assert!(
        std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
            .map(|s| s.trim() != "0")
            .unwrap_or(false),
        "no hugepages reserved: run scripts/setup.sh as root"
    );
    let mut args: Vec<String> = [
        "dpdk-test",
        "-l",
        "0,1",
        "--in-memory",
        "--no-pci",
        "--no-telemetry",
        "--file-prefix",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(format!("dpdktest{}", std::process::id()));
    args.extend(dpdk::plugin_args());
    Eal::init(&args).expect("EAL init")
}

/// A tiny deterministic generator (no dev-dependency needed).
fn next(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

#[test]
fn dpdk_wrappers_against_the_real_eal() {
    let plugins = dpdk::plugin_args();
    for want in [
        "librte_net_pcap.so",
        "librte_net_af_packet.so",
        "librte_net_ring.so",
        "librte_net_null.so",
    ] {
        assert!(
            plugins.iter().any(|p| p.ends_with(want)),
            "plugin {want} not found in {plugins:?}"
        );
    }
    let eal = eal();
    assert!(
        Eal::init(&["again".to_string()]).is_err(),
        "second EAL init must be refused"
    );
    assert_eq!(dpdk::lcore::count(), 2);
    assert!(dpdk::tsc_hz() > 0);

    // Pool accounting.
    let pool = Mempool::new("t_pool", 1023, 0, 2176, 0).expect("pool");
    assert_eq!(pool.size(), 1023);
    assert_eq!(pool.in_use_count(), 0);
    let mut v = Vec::new();
    assert!(pool.alloc_bulk(&mut v, 100));
    assert_eq!(pool.in_use_count(), 100);
    assert!(
        !pool.alloc_bulk(&mut v, 2000),
        "bulk alloc beyond the pool is all-or-none"
    );
    assert_eq!(v.len(), 100);
    Mbuf::free_bulk(&mut v);
    assert_eq!(pool.in_use_count(), 0);
    {
        let m = pool.alloc().expect("mbuf");
        assert_eq!(m.len(), 0);
        assert_eq!(m.headroom(), 128);
        assert_eq!(pool.in_use_count(), 1);
    }
    assert_eq!(pool.in_use_count(), 0, "drop frees");

    // Our resize arithmetic equals DPDK's static inlines, including refusals.
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut ours = pool.alloc().unwrap();
    let mut theirs = pool.alloc().unwrap();
    for _ in 0..20_000 {
        let op = (next(&mut seed) % 4) as u8;
        let n = (next(&mut seed) % 300) as u16;
        let a = match op {
            0 => ours.prepend(n as usize),
            1 => ours.adj(n as usize),
            2 => ours.append(n as usize),
            _ => ours.trim(n as usize),
        };
        let b = theirs.reference_op(op, n);
        assert_eq!(a, b, "op {op} n {n}");
        assert_eq!(ours.raw_lengths(), theirs.raw_lengths(), "op {op} n {n}");
        assert_eq!(ours.tailroom(), theirs.tailroom());
    }
    drop((ours, theirs));

    // net_ring: by default its TX ring is its RX ring, a loopback.
    let ring_port = Port::attach("net_ring0").expect("net_ring0");
    let cfg = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        rx_desc: 256,
        tx_desc: 256,
        rss: false,
        mtu: None,
    };
    ring_port
        .configure(&cfg, &pool)
        .expect("configure ring port");
    ring_port.start().expect("start");
    let mut rxq = ring_port.rx_queue(0).unwrap();
    let mut txq = ring_port.tx_queue(0).unwrap();
    assert!(ring_port.rx_queue(0).is_err(), "a queue is handed out once");
    assert!(ring_port.tx_queue(1).is_err(), "no such queue");
    let mut out = Vec::with_capacity(64);
    for i in 0..32u8 {
        let mut m = pool.alloc().unwrap();
        assert!(m.append(60));
        m.data_mut().fill(i);
        out.push(m);
    }
    assert_eq!(txq.tx_burst(&mut out), 32);
    assert!(out.is_empty());
    let mut got = Vec::with_capacity(64);
    assert_eq!(rxq.rx_burst(&mut got), 32);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.len(), 60);
        assert!(m.data().iter().all(|&b| b == i as u8), "frame {i} content");
    }
    Mbuf::free_bulk(&mut got);
    let st = ring_port.stats();
    assert_eq!((st.ipackets, st.opackets), (32, 32));
    let xs = ring_port.xstats();
    assert!(
        xs.iter().any(|(n, v)| n == "rx_good_packets" && *v == 32),
        "{xs:?}"
    );
    assert_eq!(pool.in_use_count(), 0);
    ring_port.stop();
    ring_port.close();

    // Bad devargs are refused with an error, and nothing is left attached.
    let e = match Port::attach("net_pcap7,rx_pcap=/nonexistent/x.pcap") {
        Err(e) => e,
        Ok(_) => panic!("bad devargs accepted"),
    };
    assert!(e.to_string().contains("probe failed"), "{e}");
    assert!(Port::by_name("net_pcap7").is_err());

    // RSS over two queues on net_null (which reports RSS capability).
    let null = Port::attach("net_null0").expect("net_null0");
    assert!(
        null.info().rss_offloads != 0,
        "net_null reports RSS offloads"
    );
    let cfg = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        rx_desc: 256,
        tx_desc: 256,
        rss: true,
        mtu: Some(1500),
    };
    null.configure(&cfg, &pool)
        .expect("configure null with RSS");
    let too_many = PortConfig {
        rx_queues: 4096,
        ..cfg.clone()
    };
    assert!(null.configure(&too_many, &pool).is_err());
    null.configure(&cfg, &pool)
        .expect("reconfigure after a refused one");
    null.start().unwrap();
    assert!(null.link().up);
    null.stop();
    null.close();

    // A ring between threads; what is left inside is freed on drop.
    let mut r = Ring::new("t_ring", 64, false, false).unwrap();
    let mut v = Vec::new();
    assert!(pool.alloc_bulk(&mut v, 10));
    assert_eq!(r.enqueue_burst(&mut v), 10);
    assert_eq!(r.count(), 10);
    let mut back = Vec::with_capacity(4);
    assert_eq!(r.dequeue_burst(&mut back), 4);
    drop(back);
    drop(r);
    assert_eq!(pool.in_use_count(), 0, "ring drop frees what it held");

    // Launch on the worker lcore and join.
    let p2 = pool.clone();
    dpdk::lcore::launch(1, move || {
        let m = p2.alloc();
        (dpdk::lcore::current() as i32) * 10 + m.is_some() as i32
    })
    .expect("launch");
    assert_eq!(dpdk::lcore::wait(1), 11);
    assert!(
        dpdk::lcore::launch(7, || 0).is_err(),
        "lcore 7 is not enabled"
    );
    assert_eq!(pool.in_use_count(), 0);
    drop(pool);
    drop(eal);
}
