//! Malformed tunnel input is counted per reason, never emitted, never panics, never leaks:
//! Scapy builds each tunnel type's proper packet and `tunnel_scapy.py malformed` breaks it one
//! way per case (truncated outer and tunnel headers, wrong IPv4/IPv6/GRE/VXLAN-GPE/Geneve/
//! EtherIP versions, GRE routing and reserved bits, VXLAN I flag clear, Geneve options beyond
//! the packet, unknown critical or overrunning options, a VNI/key nobody has, payloads the
//! tunnel does not carry, ...). `show errors` must hold exactly the expected count per reason
//! and nothing else; drops after the tunnel is identified are also in that tunnel's
//! `drop_reasons`, exactly. A good packet per tunnel sent after all of them still comes out
//! exactly, and the daemon exits cleanly with every mbuf returned.

mod tunnel_common;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use tests::{require_env, wait_until};
use tunnel_common::{Rig, Tun, T};

#[rustfmt::skip]
const TUNNELS: &[Tun] = &[
    Tun { name: "gre0", profile: "gre", ..T },
    Tun { name: "gres", profile: "gre", v6: true, key: Some(5), gre_sequence: true, ..T },
    Tun { name: "gre4o", profile: "gre", key: Some(44), payload: Some("ipv4"), ..T },
    Tun { name: "nv", profile: "nvgre", key: Some(7777), ..T },
    Tun { name: "vx", profile: "vxlan", key: Some(10), ..T },
    Tun { name: "vxd", profile: "vxlan", key: Some(12), detached: true, ..T },
    Tun { name: "vx6", profile: "vxlan", v6: true, key: Some(10), ..T },
    Tun { name: "vx6z", profile: "vxlan", v6: true, key: Some(11), udp6_zero_checksum: true, ..T },
    Tun { name: "gpe", profile: "vxlan-gpe", key: Some(20), payload: Some("ip"), ..T },
    Tun { name: "gen", profile: "geneve", key: Some(30), geneve_known: Some("0x0102:0x80"), ..T },
    Tun { name: "geni", profile: "geneve", key: Some(31), payload: Some("ip"), ..T },
    Tun { name: "eip", profile: "etherip", v6: true, ..T },
    Tun { name: "ip4", profile: "ipip", ..T },
];

/// (case in tunnel_scapy.py, tunnel whose proper packet it breaks, reason, counted against
/// the tunnel too).
#[rustfmt::skip]
const CASES: &[(&str, &str, &str, bool)] = &[
    // Outer IP and UDP.
    ("ipv4-truncated", "vx", "ipv4-truncated", false),
    ("ipv6-truncated", "vx6", "ipv6-truncated", false),
    ("ipv4-bad-version", "vx", "ipv4-bad-version", false),
    ("ipv6-bad-version", "vx6", "ipv6-bad-version", false),
    ("ipv4-bad-checksum", "vx", "ipv4-bad-checksum", false),
    ("ipv4-fragment", "vx", "ipv4-fragment-to-us", false),
    ("udp-truncated", "vx", "udp-truncated", false),
    ("udp-bad-length", "vx", "udp-bad-length", false),
    ("udp-bad-checksum", "vx", "udp-bad-checksum", false),
    // Another tunnel accepts zero UDP checksums over IPv6; this one does not.
    ("udp6-zero-checksum", "vx6", "udp-bad-checksum", true),
    // GRE (RFC 2784 / 2890).
    ("gre-truncated", "gre0", "gre-truncated", false),
    ("gre-key-truncated", "gre0", "gre-truncated", false),
    ("gre-routing-bit", "gre0", "gre-routing-bit", false),
    ("gre-strict-route-bit", "gre0", "gre-reserved-bits", false),
    ("gre-recursion-bit", "gre0", "gre-reserved-bits", false),
    ("gre-version-1", "gre0", "gre-bad-version", false),
    ("gre-bad-checksum", "gre0", "gre-bad-checksum", false),
    ("gre-arp-protocol", "gre0", "gre-bad-protocol", false),
    ("gre-inner-bad-version", "gre0", "ipv4-bad-version", false),
    ("gre-inner-truncated", "gre0", "inner-truncated", false),
    // A key nobody has: falls to the keyless tunnel between the same endpoints, which
    // refuses it; over IPv6 there is none.
    ("gre-unknown-key", "gre0", "gre-key-mismatch", true),
    ("gre-unknown-key", "gres", "tunnel-no-match", false),
    ("gre-no-sequence", "gres", "gre-sequence", true),
    ("gre-ipv6-into-ipv4-only", "gre4o", "gre-bad-protocol", true),
    ("nvgre-checksum-bit", "nv", "nvgre-bad-header", true),
    // VXLAN.
    ("vxlan-truncated", "vx", "vxlan-truncated", false),
    ("vxlan-i-flag-clear", "vx", "vxlan-i-flag-clear", false),
    ("vxlan-unknown-vni", "vx", "tunnel-no-match", false),
    ("vxlan-unknown-vni", "vx6", "tunnel-no-match", false),
    ("vxlan-no-xconnect", "vxd", "xconnect-no-peer", true),
    ("vxlan-ce-over-not-ect", "vx", "ecn-ce-on-not-ect", true),
    ("vxlan-inner-truncated", "vx", "inner-truncated", false),
    // VXLAN-GPE.
    ("gpe-version-1", "gpe", "vxlan-gpe-bad-version", false),
    ("gpe-oam", "gpe", "vxlan-gpe-oam", false),
    ("gpe-nsh", "gpe", "vxlan-gpe-bad-next-protocol", false),
    ("gpe-i-flag-clear", "gpe", "vxlan-i-flag-clear", false),
    ("gpe-ethernet-into-ip", "gpe", "vxlan-gpe-bad-next-protocol", true),
    // Geneve (RFC 8926).
    ("geneve-truncated", "gen", "geneve-truncated", false),
    ("geneve-version-1", "gen", "geneve-bad-version", false),
    ("geneve-options-beyond", "gen", "geneve-options-beyond", false),
    ("geneve-unknown-critical", "gen", "geneve-critical-option", false),
    ("geneve-option-overrun", "gen", "geneve-bad-option", false),
    ("geneve-oam", "gen", "geneve-oam", false),
    ("geneve-arp-protocol", "gen", "geneve-bad-protocol", false),
    ("geneve-ethernet-into-ip", "geni", "geneve-bad-protocol", true),
    // EtherIP (RFC 3378) and IP-in-IP.
    ("etherip-version-2", "eip", "etherip-bad-version", false),
    ("etherip-reserved-bits", "eip", "etherip-bad-version", false),
    ("etherip-truncated", "eip", "etherip-truncated", false),
    ("ipip-ipv6-in-protocol-4", "ip4", "ipip-bad-inner", false),
    ("ipip-ipv4-in-protocol-41", "ip4", "ipip-bad-inner", false),
];

#[test]
fn malformed_tunnel_input_is_counted_per_reason_and_never_emitted() {
    require_env();
    let cases: Vec<Value> = CASES
        .iter()
        .map(|(c, t, _, _)| json!({"case": c, "tunnel": t}))
        .collect();
    // A good packet from every tunnel's peer, after the bad ones.
    let good: Vec<&str> = TUNNELS
        .iter()
        .filter(|t| !t.detached)
        .map(|t| t.name)
        .collect();
    let rig = Rig::new("tunbad", TUNNELS, 1, json!({"cases": cases, "good": good}));
    let (ok, gen, out) = rig.tool("malformed");
    assert!(ok, "{out}");
    let frames = (CASES.len() + good.len()) as u64;
    assert_eq!(gen["frames"], frames);

    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    let mut want_tun: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
    for (_, t, reason, counted) in CASES {
        *want.entry(reason.to_string()).or_default() += 1;
        if *counted {
            *want_tun
                .entry(t)
                .or_default()
                .entry(reason.to_string())
                .or_default() += 1;
        }
    }

    let daemon = rig.start("");
    wait_until("every frame sent or dropped", 30, || {
        daemon.stat("tx_packets") + daemon.stat("drops") >= frames
    });
    let errors: BTreeMap<String, u64> = daemon.errors().into_iter().collect();
    let (rx, tx, punted) = (
        daemon.stat("rx_packets"),
        daemon.stat("tx_packets"),
        daemon.stat("punted"),
    );
    let shown: Vec<Value> = TUNNELS
        .iter()
        .map(|t| daemon.json(&["show", "tunnels", t.name]))
        .collect();
    let st = daemon.stop();
    assert_eq!(st.code, Some(0), "no worker may die: {}", st.log);
    assert!(st.log.contains("mbufs in use at exit: 0"), "{}", st.log);

    assert_eq!(errors, want, "show errors");
    assert_eq!(rx, frames);
    assert_eq!(tx, good.len() as u64, "only the good packets come out");
    assert_eq!(punted, 0, "nothing left for the host stack to misread");
    for (t, s) in TUNNELS.iter().zip(&shown) {
        let reasons: BTreeMap<String, u64> = s["drop_reasons"]
            .as_object()
            .unwrap_or_else(|| panic!("{s}"))
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect();
        let w = want_tun.get(t.name).cloned().unwrap_or_default();
        assert_eq!(reasons, w, "{} drop_reasons: {s}", t.name);
        assert_eq!(s["drops"], w.values().sum::<u64>(), "{s}");
        // Received: the good packet, delivered; the frame that decapsulated but had nowhere
        // to go (a detached tunnel) is its drop instead.
        let received = if t.detached { 0 } else { 1 };
        assert_eq!(s["rx_packets"], received, "{s}");
        assert_eq!(s["tx_packets"], 0, "{s}");
    }

    // What came out is exactly the good packets, decapsulated.
    let (ok, report, out) = rig.tool("verify");
    assert_eq!(report["errors"], json!([]), "{out}");
    assert!(ok, "{out}");
    for t in TUNNELS {
        let want = if t.detached { 0 } else { 1 };
        assert_eq!(
            report["tunnels"][t.name]["decap_ok"], want,
            "{}: {out}",
            t.name
        );
    }
}
