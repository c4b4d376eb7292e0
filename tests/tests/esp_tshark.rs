//! tshark (Wireshark's ESP dissector with its own crypto, given ferrogate's keys) decrypts the
//! ESP ferrogate sends and shows the inner packet: for every algorithm tshark 4.0 can decrypt
//! (AES-GCM-128/192/256, AES-CBC-128/256 and NULL with HMAC-SHA1-96, -SHA-256-128,
//! -SHA-384-192, -SHA-512-256; it has no ChaCha20-Poly1305 or GMAC, which `esp_scapy.rs`
//! covers) in tunnel 4in4/6in4/4in6/6in6 and transport v4/v6, tshark must verify the ICV,
//! show the inner addresses, TTL/hop limit, ports or ICMP sequence and the exact payload, in
//! sequence-number order, with no expert info and no malformed packet.

use tests::esp::{all_cases, pcap_config, python, sa_counters, spec, tool};
use tests::{require_env, wait_until, Daemon, Scratch};

#[test]
fn tshark_decrypts_our_esp_and_shows_the_inner_packets() {
    require_env();
    let n = 6u64;
    let cases: Vec<_> = all_cases()
        .into_iter()
        .filter(|c| c.alg.tshark.is_some())
        .collect();
    assert_eq!(cases.len(), 15 * 6);
    let tunnels = cases.iter().filter(|c| c.tunnel()).count() as u64;
    let transports = cases.len() as u64 - tunnels;

    let dir = Scratch::new("espts");
    let spec_path = dir.file("spec.json");
    std::fs::write(&spec_path, spec(&cases, n).to_string()).unwrap();
    let (spec_s, dir_s) = (
        spec_path.display().to_string(),
        dir.path.display().to_string(),
    );
    let py = tool("esp_interop.py");
    python(&[&py, "gen", &spec_s, &dir_s]).unwrap_or_else(|e| panic!("{e}"));

    let d = Daemon::start("espts", "", &pcap_config(&dir, &cases));
    let tx = 2 * n * tunnels + n * transports;
    wait_until("every frame sent", 60, || {
        d.stat("tx_packets") >= tx || !d.errors().is_empty()
    });
    let errors = d.errors();
    let sas = sa_counters(&d);
    let st = d.stop();
    assert_eq!(st.code, Some(0), "{}", st.log);
    assert!(errors.is_empty(), "drops: {errors:?}");
    assert!(sas.values().all(|c| *c == [n, 0, 0, 0]), "{sas:?}");

    let out = python(&[&py, "tshark", &spec_s, &dir_s]).unwrap_or_else(|e| panic!("{e}"));
    let v: serde_json::Value = serde_json::from_str(&out).expect("tshark json");
    assert_eq!(v["n_errors"], 0, "{out}");
    assert_eq!(
        v["decrypted"].as_u64(),
        Some(n * cases.len() as u64),
        "{out}"
    );
}
