//! Anti-replay and Extended Sequence Numbers through the real daemon, with Scapy as the peer
//! (net_pcap, so the order of arrival is exactly the order written):
//!
//! - a stream with replays, late packets, window-edge cases and a forgery: exactly the fresh
//!   packets are delivered, in order, and every other one is counted under its reason
//!   (`esp-replay-duplicate`, `esp-replay-late`, `esp-auth-failed`); the forgery does not move
//!   the window; an SA with `replay_window = 0` (anti-replay off) delivers repeats;
//! - ESN SAs that start 4 below 2^32 (`initial_seq`) in both directions carry 8 packets each
//!   way across 2^32, for AEAD (GCM, ChaCha20-Poly1305), GMAC and CBC/NULL+HMAC suites in
//!   tunnel and transport mode: ferrogate infers the high half on receive (every packet opens)
//!   and puts it in its ICVs on send (the peer, given the 64-bit numbers, opens every packet).

use tests::esp::{alg, pcap_config, python, sa_counters, spec, tool, Case};
use tests::{pcap, require_env, wait_until, Daemon, Scratch};

#[test]
fn the_replay_window_delivers_fresh_packets_once_and_counts_the_rest_exactly() {
    require_env();
    let mut c = Case::new(0, alg("aes-gcm-128", None), "4in4");
    c.replay_window = Some(64);
    let mut off = Case::new(1, alg("aes-cbc-128", Some("hmac-sha1-96")), "4in4");
    off.replay_window = Some(0);
    let dir = Scratch::new("replay");
    let spec_path = dir.file("spec.json");
    let cases = [c, off];
    std::fs::write(&spec_path, spec(&cases, 0).to_string()).unwrap();
    let run = |a: std::ops::RangeInclusive<u64>| a.map(|s| s.to_string()).collect::<Vec<_>>();
    let mut seqs = run(1..=40); // fresh
    seqs.extend(run(1..=40)); // duplicates (window 64, top 40)
    seqs.push("200".into()); // fresh: the window is now 137..=200
    seqs.extend(run(1..=40)); // late
                              // The window's lower edge, an older one, and repeats.
    seqs.extend(["137", "136", "137", "200", "150", "150"].map(String::from));
    // A forgery far ahead must not move the window: 141 is still fresh afterwards.
    seqs.extend(["!10000", "141"].map(String::from));
    // Without anti-replay, repeats and old numbers are delivered.
    seqs.extend(["1/7", "1/7", "1/3", "1/7"].map(String::from));
    python(&[
        &tool("esp_interop.py"),
        "stream",
        &spec_path.display().to_string(),
        &dir.path.display().to_string(),
        &seqs.join(","),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let fresh: Vec<(u8, u64)> = (1..=40)
        .chain([200, 137, 150, 141])
        .map(|s| (0, s))
        .chain([7, 7, 3, 7].map(|s| (1, s)))
        .collect();
    let (dups, late, forged) = (40 + 3, 40 + 1, 1);

    let d = Daemon::start("replay", "", &pcap_config(&dir, &cases));
    wait_until("every frame received", 30, || {
        d.stat("rx_packets") == seqs.len() as u64
    });
    wait_until("every frame handled", 30, || {
        d.stat("tx_packets") + d.errors().values().sum::<u64>() == seqs.len() as u64
    });
    let errors = d.errors();
    let sas = sa_counters(&d);
    let st = d.stop();
    assert_eq!(st.code, Some(0), "{}", st.log);
    assert_eq!(
        errors,
        [
            ("esp-replay-duplicate", dups),
            ("esp-replay-late", late),
            ("esp-auth-failed", forged)
        ]
        .map(|(k, v)| (k.to_string(), v))
        .into()
    );
    assert_eq!(sas["i0"], [44, forged, dups + late, 0], "{sas:?}");
    assert_eq!(sas["i1"], [4, 0, 0, 0], "{sas:?}");
    // Exactly the fresh packets came out, once each, in arrival order: (case, sequence number)
    // from the source address 10.2.k.2 and the UDP source port 2000 + sequence number.
    let out: Vec<(u8, u64)> = pcap::read(&dir.file("in_tx.pcap"))
        .iter()
        .map(|f| {
            let p = etherparse::SlicedPacket::from_ethernet(f).expect("frame");
            let k = match p.net {
                Some(etherparse::NetSlice::Ipv4(ip)) => ip.header().source()[2],
                other => panic!("not IPv4: {other:?}"),
            };
            match p.transport {
                Some(etherparse::TransportSlice::Udp(u)) => (k, u.source_port() as u64 - 2000),
                other => panic!("not UDP: {other:?}"),
            }
        })
        .collect();
    assert_eq!(out, fresh);
}

#[test]
fn esn_sas_cross_2_pow_32_in_both_directions() {
    require_env();
    let n = 8u64;
    let list = [
        ("aes-gcm-128", None, "4in4"),
        ("aes-gmac-256", None, "6in6"),
        ("aes-cbc-256", Some("hmac-sha256-128"), "4in6"),
        ("chacha20-poly1305", None, "tr4"),
        ("null", Some("hmac-sha512-256"), "tr6"),
        ("aes-gmac-128", None, "tr4"),
        ("aes-cbc-128", Some("hmac-sha384-192"), "6in4"),
    ];
    let cases: Vec<Case> = list
        .iter()
        .enumerate()
        .map(|(k, (e, i, m))| {
            let mut c = Case::new(k, alg(e, *i), m);
            c.esn = true;
            c.initial_seq = (1 << 32) - 4;
            c
        })
        .collect();
    let dir = Scratch::new("esn");
    let spec_path = dir.file("spec.json");
    std::fs::write(&spec_path, spec(&cases, n).to_string()).unwrap();
    let (spec_s, dir_s) = (
        spec_path.display().to_string(),
        dir.path.display().to_string(),
    );
    let py = tool("esp_interop.py");
    python(&[&py, "gen", &spec_s, &dir_s]).unwrap_or_else(|e| panic!("{e}"));

    let d = Daemon::start("esn", "", &pcap_config(&dir, &cases));
    let tunnels = cases.iter().filter(|c| c.tunnel()).count() as u64;
    let tx = 2 * n * tunnels + n * (cases.len() as u64 - tunnels);
    wait_until("every frame sent", 30, || {
        d.stat("tx_packets") >= tx || !d.errors().is_empty()
    });
    let errors = d.errors();
    let sas = sa_counters(&d);
    let detail = d.json(&["show", "ipsec", "sa", "--detail"]);
    let st = d.stop();
    assert_eq!(st.code, Some(0), "{}", st.log);
    assert!(errors.is_empty(), "drops: {errors:?}");
    for c in &cases {
        for name in [format!("o{}", c.k), format!("i{}", c.k)] {
            assert_eq!(sas[&name], [n, 0, 0, 0], "SA {name} ({})", c.label());
        }
    }
    assert!(
        detail
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["esn"] == serde_json::json!(true)),
        "{detail}"
    );
    let out = python(&[&py, "verify", &spec_s, &dir_s]).unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_str(&out).expect("verify json");
    assert_eq!(v["n_errors"], 0, "{out}");
    assert_eq!(v["unexpected"], 0, "{out}");
    for c in &cases {
        let r = &v["per_case"][c.k.to_string()];
        assert_eq!(
            (r["encrypted_ok"].as_u64(), r["decrypted_ok"].as_u64()),
            (Some(n), Some(n)),
            "{}: {r}",
            c.label()
        );
    }
}
