//! Tunnel MTU (RFC 4459 inner fragmentation): a GRE tunnel with MTU 1280 and a VXLAN
//! cross-connect with MTU 1280. Oversized IPv4 with DF and oversized IPv6 routed into the GRE
//! tunnel get ICMP "fragmentation needed" / ICMPv6 "packet too big" back to the host carrying
//! the tunnel MTU — rate-limited: with `icmp_rate = 2` only the first of each family in the
//! burst is answered, the others counted as icmp-rate-limited — and every one is counted as
//! mtu-exceeded in `show errors` and in the tunnel's drop_reasons. Packets of exactly the MTU
//! pass whole; oversized IPv4 without DF is fragmented before encapsulation and Scapy
//! reassembles the fragments it finds inside the tunnel into the routed original. An
//! oversized bridged frame is dropped (no IP context to answer), one of exactly the MTU passes.

mod tunnel_common;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use tests::{require_env, wait_until};
use tunnel_common::{tshark_expert_clean, Rig, Tun, T};

#[rustfmt::skip]
const TUNNELS: &[Tun] = &[
    Tun { name: "grem", profile: "gre", mtu: Some(1280), ..T },
    Tun { name: "vxm", profile: "vxlan", key: Some(9), mtu: Some(1280), ..T },
];

#[test]
fn oversized_packets_get_icmp_with_df_and_are_fragmented_inside_without() {
    require_env();
    let rig = Rig::new(
        "tunmtu",
        TUNNELS,
        1,
        json!({"mtu_case": {"l3": "grem", "l2": "vxm"}}),
    );
    let (ok, gen, out) = rig.tool("mtu");
    assert!(ok, "{out}");
    assert_eq!(
        (gen["lan"].as_u64(), gen["l2"].as_u64()),
        (Some(10), Some(2))
    );

    // The ICMP limiter is a token bucket of `icmp_rate` per second with a burst of as many;
    // the ten packets from "lan" come in one RX burst (net_pcap reads them from the file at
    // once), which the worker handles at one timestamp: exactly two tokens, no refill.
    let daemon = rig.start("icmp_rate = 2");
    // Out: 2 ICMP errors, 2 whole packets + 2 × 2 fragments, 1 bridged frame. Dropped: 6
    // oversized (DF or IPv6), 4 of whose ICMP errors were suppressed (counted, but not as
    // packet drops: those packets are already counted), 1 oversized frame.
    wait_until("every frame sent or dropped", 30, || {
        daemon.stat("tx_packets") + daemon.stat("drops") >= 9 + 7
    });
    let errors: BTreeMap<String, u64> = daemon.errors().into_iter().collect();
    let (rx, tx) = (daemon.stat("rx_packets"), daemon.stat("tx_packets"));
    let shown: Vec<Value> = TUNNELS
        .iter()
        .map(|t| daemon.json(&["show", "tunnels", t.name]))
        .collect();
    let st = daemon.stop();
    assert_eq!(st.code, Some(0), "{}", st.log);
    assert!(st.log.contains("mbufs in use at exit: 0"), "{}", st.log);

    assert_eq!((rx, tx), (12, 9));
    assert_eq!(
        errors,
        [
            ("mtu-exceeded".to_string(), 7),
            ("icmp-rate-limited".to_string(), 4)
        ]
        .into(),
        "show errors"
    );
    let (grem, vxm) = (&shown[0], &shown[1]);
    assert_eq!(grem["mtu"], 1280, "{grem}");
    assert_eq!(grem["drop_reasons"], json!({"mtu-exceeded": 6}), "{grem}");
    assert_eq!(
        grem["tx_packets"],
        2 + 4,
        "whole packets and fragments: {grem}"
    );
    assert_eq!(vxm["mtu"], 1280, "{vxm}");
    assert_eq!(vxm["drop_reasons"], json!({"mtu-exceeded": 1}), "{vxm}");
    assert_eq!(vxm["tx_packets"], 1, "{vxm}");

    let (ok, r, out) = rig.tool("mtu-verify");
    assert_eq!(r["errors"], json!([]), "{out}");
    assert!(ok, "{out}");
    // One ICMP error per family — for the first oversized packet of each, with the tunnel
    // MTU, quoting the packet as forwarded — the rest rate-limited.
    assert_eq!(
        r["icmp4"],
        json!([{"mtu": 1280, "quotes": ["v4-df-1281"], "quoted": 548}]),
        "{out}"
    );
    assert_eq!(
        r["icmp6"],
        json!([{"mtu": 1280, "quotes": ["v6-1281"], "quoted": 1232}]),
        "{out}"
    );
    assert_eq!(r["whole"], json!(["v4-df-1280", "v6-1280"]), "{out}");
    assert_eq!(r["fragments"], 4, "{out}");
    assert_eq!(r["reassembled"], json!(["v4-1400", "v4-1500"]), "{out}");
    assert_eq!(r["l2"], json!(["l2-1280"]), "{out}");
    for f in ["lan_tx.pcap", "under_tx.pcap"] {
        tshark_expert_clean(&rig.file(f));
    }
}
