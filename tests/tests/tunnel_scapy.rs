//! Every overlay tunnel type, both directions, with Scapy and tshark as the oracles: one
//! ferrogate on net_pcap carries 24 tunnels (gre plain and with key+checksum+sequence,
//! gre-teb, nvgre, vxlan, vxlan-gpe and geneve with Ethernet and with IP payload, ipip,
//! ip6ip4, etherip over IPv4; the same over IPv6 with ip4ip6 and ip6ip6).
//!
//! * Decap: Scapy-built tunnel packets arrive on the underlay port; the inner packets must come
//!   out exactly (L3: routed out of port "lan" with TTL - 1; L2: out of the cross-connect port
//!   with the tunnel's VLAN tag; RFC 6040 CE folded into ECN-capable inner packets).
//! * Encap: IP packets routed into the L3 tunnels and tagged frames on the cross-connects must
//!   leave the underlay port encapsulated as Scapy reads them (key/VNI/VSID, flags, protocol,
//!   UDP port and checksum, outer TTL/TOS/DF per tunnel, IPv4 and GRE checksums, GRE sequence
//!   0, 1, 2, ...), as tshark dissects them, with no malformed packet or expert warning.
//! * Counters: per tunnel exactly the packets and inner bytes sent each way, no drop at all,
//!   no mbuf left at exit; and the auto MTU shown is 1500 less the encapsulation overhead.
//!
//! Tunnel definitions are in `TUNNELS`; the topology is tunnel_common's; tests/tools/
//! tunnel_scapy.py builds and checks the frames.

mod tunnel_common;

use serde_json::json;
use tests::{require_env, wait_until};
use tunnel_common::{row, tshark_expert_clean, Rig, Tun, T};

#[rustfmt::skip]
const TUNNELS: &[Tun] = &[
    // --- IPv4 underlay ---
    Tun { name: "gre4", profile: "gre", ..T },
    Tun { name: "gre4k", profile: "gre", key: Some(1001), gre_checksum: true, gre_sequence: true,
          ttl: Some(100), tos: Some(0x20), df: Some("set"), ..T },
    Tun { name: "teb4", profile: "gre-teb", key: Some(2001), ..T },
    Tun { name: "nvgre4", profile: "nvgre", key: Some(5001), df: Some("clear"), ..T },
    Tun { name: "vxlan4", profile: "vxlan", key: Some(100), tos: Some(0x88), ..T },
    Tun { name: "gpe4e", profile: "vxlan-gpe", key: Some(200), ..T },
    Tun { name: "gpe4i", profile: "vxlan-gpe", key: Some(201), payload: Some("ip"), ttl: Some(17), ..T },
    // A critical option (class 0x0102, type 0x80, 4 bytes): sent with the C bit, and
    // understood on receive.
    Tun { name: "gen4e", profile: "geneve", key: Some(300), geneve_options: Some("0102800112345678"),
          geneve_known: Some("0x0102:0x80"), ..T },
    Tun { name: "gen4i", profile: "geneve", key: Some(301), payload: Some("ip"), df: Some("clear"), ..T },
    Tun { name: "ipip4", profile: "ipip", ttl: Some(255), ..T },
    Tun { name: "ip6ip4", profile: "ip6ip4", ..T },
    Tun { name: "eip4", profile: "etherip", ..T },
    // --- IPv6 underlay ---
    Tun { name: "gre6", profile: "gre", v6: true, ..T },
    Tun { name: "gre6k", profile: "gre", v6: true, key: Some(1002), gre_checksum: true,
          gre_sequence: true, ttl: Some(100), ..T },
    Tun { name: "teb6", profile: "gre-teb", v6: true, ..T },
    Tun { name: "nvgre6", profile: "nvgre", v6: true, key: Some(5002), ..T },
    Tun { name: "vxlan6", profile: "vxlan", v6: true, key: Some(100), port: Some(8472), ..T },
    Tun { name: "gpe6e", profile: "vxlan-gpe", v6: true, key: Some(200), ..T },
    Tun { name: "gpe6i", profile: "vxlan-gpe", v6: true, key: Some(201), payload: Some("ip"), ..T },
    // A non-critical option (class 0x0103, type 0x01, 8 bytes).
    Tun { name: "gen6e", profile: "geneve", v6: true, key: Some(300),
          geneve_options: Some("0103010211223344aabbccdd"), ..T },
    Tun { name: "gen6i", profile: "geneve", v6: true, key: Some(301), payload: Some("ip"), ..T },
    Tun { name: "ip4ip6", profile: "ip4ip6", v6: true, tos: Some(0x48), ..T },
    Tun { name: "ip6ip6", profile: "ip6ip6", v6: true, ..T },
    Tun { name: "eip6", profile: "etherip", v6: true, ..T },
];

/// Inner frames per inner type (L3: per IP version carried; L2: IPv4, IPv6, ARP in turn).
const COUNT: u64 = 3;

#[test]
fn every_tunnel_type_both_directions_with_scapy_and_tshark() {
    require_env();
    let rig = Rig::new("tunscapy", TUNNELS, COUNT, json!({}));
    let (ok, counts, out) = rig.tool("gen");
    assert!(ok, "gen: {out}");
    let total = |k: &str| -> u64 {
        TUNNELS
            .iter()
            .map(|t| counts[t.name][k].as_u64().unwrap())
            .sum()
    };
    let (n_decap, n_encap) = (total("decap"), total("encap"));
    assert_eq!(n_decap, n_encap);

    let daemon = rig.start("");
    // Nothing may be dropped: every frame received goes out once.
    wait_until("every frame sent", 30, || {
        daemon.stat("tx_packets") + daemon.stat("drops") >= n_decap + n_encap
    });
    let tunnels = daemon.json(&["show", "tunnels"]);
    let errors = daemon.errors();
    let (rx, tx) = (daemon.stat("rx_packets"), daemon.stat("tx_packets"));
    let st = daemon.stop();
    assert_eq!(st.code, Some(0), "{}", st.log);
    assert!(st.log.contains("mbufs in use at exit: 0"), "{}", st.log);
    assert!(errors.is_empty(), "drops: {errors:?}");
    assert_eq!((rx, tx), (n_decap + n_encap, n_decap + n_encap));

    // Per tunnel: exactly what was sent each way, in packets and inner bytes, no drops.
    assert_eq!(tunnels.as_array().map(Vec::len), Some(TUNNELS.len()));
    for t in TUNNELS {
        let (r, c) = (row(&tunnels, t.name), &counts[t.name]);
        assert_eq!(r["profile"], t.profile, "{r}");
        assert_eq!(r["rx_packets"], c["decap"], "{}: {r}", t.name);
        assert_eq!(r["rx_bytes"], c["decap_bytes"], "{}: {r}", t.name);
        assert_eq!(r["tx_packets"], c["encap"], "{}: {r}", t.name);
        assert_eq!(r["tx_bytes"], c["encap_bytes"], "{}: {r}", t.name);
        assert_eq!(r["drops"], 0, "{}: {r}", t.name);
        // Auto MTU: the 1500-byte underlay less the encapsulation (and, for L2 tunnels, the
        // inner Ethernet header: the figure is the inner IP MTU).
        let l2 = if t.l2() { 14 } else { 0 };
        assert_eq!(r["mtu"], 1500 - t.overhead() - l2, "{}: {r}", t.name);
    }

    // Scapy (and tshark's fields) on every output frame.
    let (ok, report, out) = rig.tool("verify");
    assert_eq!(report["errors"], json!([]), "{out}");
    assert!(ok, "{out}");
    for t in TUNNELS {
        let (r, c) = (&report["tunnels"][t.name], &counts[t.name]);
        assert_eq!(r["decap_ok"], c["decap"], "{}: {out}", t.name);
        assert_eq!(r["encap_ok"], c["encap"], "{}: {out}", t.name);
    }
    assert_eq!(report["tshark_ok"], n_encap, "{out}");

    // tshark's expert summary over everything ferrogate sent.
    for f in ["under_tx.pcap", "lan_tx.pcap", "l2_tx.pcap"] {
        tshark_expert_clean(&rig.file(f));
    }
}
