//! `ferrobench esp --compare ipsec-secgw` really runs ferrogate and ipsec-secgw through ESP in
//! both directions: a short window at 64 bytes for AES-GCM-128, every row present with a
//! non-zero rate, and the Scapy check of each program's output passed. (Speed itself is never
//! asserted.) The ipsec-secgw build is cached in /var/tmp across runs.

use tests::{ferrobench, require_env, Scratch};

#[test]
fn ferrobench_esp_seals_and_opens_and_scapy_agrees() {
    require_env();
    let dir = Scratch::new("benchesp");
    let text = ferrobench(
        &[
            "esp",
            "--algs",
            "aes-gcm-128",
            "--dirs",
            "out,in",
            "--sizes",
            "64",
            "--warmup",
            "0.5",
            "--seconds",
            "1",
            "--raw-seconds",
            "0.2",
            "--compare",
            "ipsec-secgw",
            "--secgw-modes",
            "cpu",
            "--secgw-cache",
            "/var/tmp/ferrobench-secgw-cache",
        ],
        &dir.file("work"),
    );
    // program alg dir bytes Mpps ...
    let mpps = |prog: &str, dir: &str| -> f64 {
        let l = text
            .lines()
            .find(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.len() > 4 && w[0] == prog && w[1] == "aes-gcm-128" && w[2] == dir && w[3] == "64"
            })
            .unwrap_or_else(|| panic!("no {prog} {dir} row in:\n{text}"));
        l.split_whitespace()
            .nth(4)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("row '{l}'"))
    };
    for (dir, raw) in [("out", "raw-seal"), ("in", "raw-open")] {
        for prog in ["ferrogate", raw, "secgw-cpu"] {
            assert!(mpps(prog, dir) > 0.0, "{prog} {dir}: {text}");
        }
        for prog in ["ferrogate", "secgw-cpu"] {
            let v = format!("verify           aes-gcm-128 {dir} 64 {prog}: ok 1024/1024");
            assert!(text.contains(&v), "no '{v}' in:\n{text}");
        }
        let drops = format!("drops            aes-gcm-128 {dir} 64: none");
        assert!(text.contains(&drops), "ferrogate dropped packets:\n{text}");
    }
    assert!(text.contains("replay_window = 0"), "{text}");
    assert!(text.contains("ferrogate/best-secgw"), "{text}");
}
