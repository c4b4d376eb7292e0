//! `ferrobench tunnel` really runs ferrogate and testpmd through a tunnel both ways: VXLAN
//! encap and decap at 64 bytes for a short window, every row present with a non-zero rate,
//! ferrogate's `show errors` empty and the Scapy check of each path passed. (Speed itself is
//! never asserted.)

use tests::{ferrobench, require_env, Scratch};

#[test]
fn ferrobench_tunnel_encaps_and_decaps_and_scapy_agrees() {
    require_env();
    let dir = Scratch::new("benchtunnel");
    let text = ferrobench(
        &[
            "tunnel",
            "--types",
            "vxlan",
            "--dirs",
            "encap,decap",
            "--sizes",
            "64",
            "--warmup",
            "0.5",
            "--seconds",
            "1",
        ],
        &dir.file("work"),
    );
    // program type dir bytes in_B out_B Mpps ...
    let row = |prog: &str, dir: &str| -> Vec<String> {
        text.lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .find(|w| w.len() > 6 && w[0] == prog && w[1] == "vxlan" && w[2] == dir && w[3] == "64")
            .unwrap_or_else(|| panic!("no {prog} {dir} row in:\n{text}"))
    };
    for dir in ["encap", "decap"] {
        for prog in ["ferrogate", "testpmd-mac"] {
            let w = row(prog, dir);
            let mpps: f64 = w[6].parse().unwrap_or_else(|_| panic!("row {w:?}"));
            assert!(mpps > 0.0, "{prog} {dir}: {text}");
        }
        // VXLAN over IPv4 adds 50 bytes (outer Ethernet, IPv4, UDP, VXLAN) to the frame.
        let w = row("ferrogate", dir);
        let (i, o) = if dir == "encap" {
            ("64", "114")
        } else {
            ("114", "64")
        };
        assert_eq!((w[4].as_str(), w[5].as_str()), (i, o), "{text}");
        assert!(w.join(" ").contains("/testpmd "), "no ratio: {text}");
        let v = format!("verify        vxlan {dir} 64: ok 1024/1024");
        assert!(text.contains(&v), "no '{v}' in:\n{text}");
        let e = format!("errors        vxlan {dir} 64: none");
        assert!(text.contains(&e), "ferrogate dropped packets:\n{text}");
    }
    assert!(
        text.contains("udp_sports"),
        "outer UDP source ports not reported: {text}"
    );
}
