//! `ferrobench spd` runs end to end with tiny counts (no root, no DPDK): one row per set and
//! size, every figure parsed and positive, and the classifier/scan agreement check it does on
//! every key passed (it exits non-zero otherwise). Speed itself is never asserted.

use std::process::Command;

#[test]
fn ferrobench_spd_reports_every_set_and_size() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrobench"))
        .args([
            "spd",
            "--sizes",
            "1,300",
            "--lookups",
            "2000",
            "--scan-lookups",
            "200",
            "--keys",
            "200",
        ])
        .output()
        .expect("run ferrobench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for set in ["realistic", "ports", "nested"] {
        for size in ["1", "300"] {
            let row = text
                .lines()
                .find(|l| {
                    let mut w = l.split_whitespace();
                    w.next() == Some(set) && w.next() == Some(size)
                })
                .unwrap_or_else(|| panic!("no {set}/{size} row in:\n{text}"));
            // set rules build_ms spd_KiB pol_KiB probes hit% spd_ns spd_Mlps scan_ns
            // scan_Mlps speedup
            let f: Vec<f64> = row
                .split_whitespace()
                .skip(2)
                .take(10)
                .map(|v| v.parse().unwrap_or_else(|_| panic!("row '{row}'")))
                .collect();
            assert_eq!(f.len(), 10, "row '{row}'");
            for i in [1, 2, 5, 6, 7, 8, 9] {
                assert!(f[i] > 0.0, "column {i} of '{row}'");
            }
        }
    }
}

#[test]
fn ferrobench_spd_refuses_an_unknown_set() {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrobench"))
        .args(["spd", "--sets", "nope"])
        .output()
        .expect("run ferrobench");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown set 'nope'"));
}
