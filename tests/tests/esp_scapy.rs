//! ESP interop with Scapy as the peer gateway, both directions, for every algorithm of issue 4
//! in every mode: tunnel 4in4, 6in4, 4in6, 6in6 and transport over IPv4 and IPv6. All 114 SA
//! pairs go through one daemon run on net_pcap (see `tests::esp` and `tools/esp_interop.py`):
//!
//! - tunnel mode: the hosts' cleartext is encrypted by ferrogate and decrypted by Scapy, byte
//!   for byte what the host sent (TTL 63); Scapy's ESP is decrypted by ferrogate and routed to
//!   the hosts, byte for byte what the remote host sent (TTL 63);
//! - transport mode (ferrogate as the host end): Scapy's ESP-protected echo requests to the
//!   gateway are decrypted and answered by its host stack, and the ESP-protected replies are
//!   decrypted by Scapy.
//!
//! Scapy 2.5 has no AES-GMAC: for it the tool's `GmacSA` computes RFC 4543 with the Python
//! `cryptography` library's AES-GCM (an implementation we did not write), and the published
//! GMAC vector is reproduced in `dataplane/src/esp/tests/vectors.rs`.

use tests::esp::{all_cases, pcap_config, python, sa_counters, spec, tool};
use tests::{require_env, wait_until, Daemon, Scratch};

#[test]
fn scapy_and_ferrogate_decrypt_each_other_for_every_algorithm_and_mode() {
    require_env();
    let n = 8u64;
    let cases = all_cases();
    assert_eq!(cases.len(), 19 * 6);
    let tunnels = cases.iter().filter(|c| c.tunnel()).count() as u64;
    let transports = cases.len() as u64 - tunnels;

    let dir = Scratch::new("espx");
    let spec_path = dir.file("spec.json");
    std::fs::write(&spec_path, spec(&cases, n).to_string()).unwrap();
    let (spec_s, dir_s) = (
        spec_path.display().to_string(),
        dir.path.display().to_string(),
    );
    let py = tool("esp_interop.py");
    python(&[&py, "gen", &spec_s, &dir_s]).unwrap_or_else(|e| panic!("{e}"));

    let d = Daemon::start("espx", "", &pcap_config(&dir, &cases));
    // In: the hosts' cleartext (tunnel cases) and the peer's ESP (every case).
    let rx = n * tunnels + n * cases.len() as u64;
    // Out: ESP to the peer and cleartext to the hosts (tunnel), ESP echo replies (transport).
    let tx = 2 * n * tunnels + n * transports;
    wait_until("every frame received", 60, || d.stat("rx_packets") >= rx);
    wait_until("every frame sent", 60, || {
        d.stat("tx_packets") >= tx || !d.errors().is_empty()
    });
    let errors = d.errors();
    let sas = sa_counters(&d);
    let (rx_got, tx_got) = (d.stat("rx_packets"), d.stat("tx_packets"));
    let st = d.stop();
    assert_eq!(st.code, Some(0), "{}", st.log);
    assert!(st.log.contains("mbufs in use at exit: 0"), "{}", st.log);
    assert!(errors.is_empty(), "drops: {errors:?}");
    assert_eq!((rx_got, tx_got), (rx, tx));
    assert_eq!(sas.len(), 2 * cases.len());
    for c in &cases {
        for name in [format!("o{}", c.k), format!("i{}", c.k)] {
            assert_eq!(sas[&name], [n, 0, 0, 0], "SA {name} ({})", c.label());
        }
    }

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
