//! Tunnels between the same endpoints that differ only by VNI, key or VSID never deliver
//! frames into each other: pairs of VXLAN (IPv4), GRE (IPv4, keys 7 and 8), Geneve and NVGRE
//! (IPv6), each tunnel of a pair sent a different number of frames each way, plus frames with
//! a VNI / key / VSID nobody has. What comes out where is counted exactly — decapsulated frames
//! by cross-connect VLAN or inner network, encapsulated ones by the VNI / key / VSID on the
//! wire — and Scapy checks every frame against the one sent; the strangers are counted under
//! tunnel-no-match and nothing of them comes out.

mod tunnel_common;

use serde_json::json;
use std::collections::BTreeMap;
use tests::{pcap, require_env, wait_until};
use tunnel_common::{net, row, vlan, Rig, Tun, T};

#[rustfmt::skip]
const TUNNELS: &[Tun] = &[
    Tun { name: "vxA", profile: "vxlan", key: Some(1000), count: Some(3), ..T },
    Tun { name: "vxB", profile: "vxlan", key: Some(1001), count: Some(5), ..T },
    Tun { name: "greA", profile: "gre", key: Some(7), count: Some(2), ..T },
    Tun { name: "greB", profile: "gre", key: Some(8), count: Some(3), ..T },
    Tun { name: "gnA", profile: "geneve", v6: true, key: Some(2000), count: Some(2), ..T },
    Tun { name: "gnB", profile: "geneve", v6: true, key: Some(2001), count: Some(4), ..T },
    Tun { name: "nvA", profile: "nvgre", v6: true, key: Some(4096), count: Some(3), ..T },
    Tun { name: "nvB", profile: "nvgre", v6: true, key: Some(4097), count: Some(1), ..T },
];

/// What an encapsulated frame carries on the wire: ("vxlan" | "gre" | "geneve" | "nvgre", id).
fn wire_id(f: &[u8]) -> (&'static str, u32) {
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let (proto, l4) = match u16::from_be_bytes([f[12], f[13]]) {
        0x0800 => (f[14 + 9], &f[14 + 20..]),
        0x86dd => (f[14 + 6], &f[14 + 40..]),
        t => panic!("ethertype {t:#x}: {f:02x?}"),
    };
    match (proto, u16::from_be_bytes([l4[2], l4[3]])) {
        (17, 4789) => ("vxlan", be32(&l4[12..]) >> 8),
        (17, 6081) => ("geneve", be32(&l4[12..]) >> 8),
        // GRE: the key follows the checksum word when C is set.
        (47, proto) => {
            let at = if l4[0] & 0x80 != 0 { 8 } else { 4 };
            match proto {
                0x6558 => ("nvgre", be32(&l4[at..]) >> 8),
                _ => ("gre", be32(&l4[at..])),
            }
        }
        (p, port) => panic!("unexpected outer protocol {p} port {port}"),
    }
}

#[test]
fn tunnels_differing_only_by_vni_key_or_vsid_never_leak() {
    require_env();
    let strangers = json!([
        {"name": "vx1002", "like": "vxA", "key": 1002, "count": 2},
        {"name": "gre9", "like": "greA", "key": 9, "count": 2},
        {"name": "gn2002", "like": "gnA", "key": 2002, "count": 3},
        {"name": "nv4098", "like": "nvA", "key": 4098, "count": 2},
    ]);
    let rig = Rig::new("tuniso", TUNNELS, 1, json!({ "strangers": strangers }));
    let (ok, counts, out) = rig.tool("gen");
    assert!(ok, "gen: {out}");
    let n = |t: &str, k: &str| counts[t][k].as_u64().unwrap_or(0);
    let sent: u64 = TUNNELS
        .iter()
        .map(|t| n(t.name, "decap") + n(t.name, "encap"))
        .sum();
    let stray: u64 = ["vx1002", "gre9", "gn2002", "nv4098"]
        .iter()
        .map(|s| n(s, "stranger"))
        .sum();
    // gre9 carries both families: 2 + 2.
    assert_eq!(stray, 2 + 4 + 3 + 2);

    let daemon = rig.start("");
    wait_until("every frame sent or dropped", 30, || {
        daemon.stat("tx_packets") + daemon.stat("drops") >= sent + stray
    });
    let tunnels = daemon.json(&["show", "tunnels"]);
    let errors = daemon.errors();
    let tx = daemon.stat("tx_packets");
    let st = daemon.stop();
    assert_eq!(st.code, Some(0), "{}", st.log);
    assert!(st.log.contains("mbufs in use at exit: 0"), "{}", st.log);
    assert_eq!(tx, sent);
    assert_eq!(
        errors,
        [("tunnel-no-match".to_string(), stray)].into(),
        "only the strangers are dropped"
    );
    for t in TUNNELS {
        let r = row(&tunnels, t.name);
        assert_eq!(r["rx_packets"], n(t.name, "decap"), "{}: {r}", t.name);
        assert_eq!(r["tx_packets"], n(t.name, "encap"), "{}: {r}", t.name);
        assert_eq!(r["drops"], 0, "{}: {r}", t.name);
    }

    // What came out where, counted from the captures.
    let mut by_vlan: BTreeMap<u16, u64> = BTreeMap::new();
    for f in pcap::read(&rig.dir.file("l2_tx.pcap")) {
        assert_eq!(&f[12..14], &[0x81, 0x00], "untagged frame out of l2");
        *by_vlan
            .entry(u16::from_be_bytes([f[14], f[15]]) & 0xfff)
            .or_default() += 1;
    }
    let mut by_net: BTreeMap<usize, u64> = BTreeMap::new();
    for f in pcap::read(&rig.dir.file("lan_tx.pcap")) {
        // The inner source is 10.2.<net>.2 or fd02:<net>::2.
        let net = match u16::from_be_bytes([f[12], f[13]]) {
            0x0800 => f[14 + 12 + 2] as usize,
            _ => u16::from_be_bytes([f[14 + 8 + 2], f[14 + 8 + 3]]) as usize,
        };
        *by_net.entry(net).or_default() += 1;
    }
    let mut by_id: BTreeMap<(&str, u32), u64> = BTreeMap::new();
    for f in pcap::read(&rig.dir.file("under_tx.pcap")) {
        *by_id.entry(wire_id(&f)).or_default() += 1;
    }
    let (mut want_vlan, mut want_net, mut want_id) =
        (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for (k, t) in TUNNELS.iter().enumerate() {
        if t.l2() {
            want_vlan.insert(vlan(k), n(t.name, "decap"));
        } else {
            want_net.insert(net(k), n(t.name, "decap"));
        }
        want_id.insert((t.profile, t.key.unwrap()), n(t.name, "encap"));
    }
    assert_eq!(
        by_vlan, want_vlan,
        "decapsulated frames per cross-connect VLAN"
    );
    assert_eq!(by_net, want_net, "decapsulated packets per inner network");
    assert_eq!(by_id, want_id, "encapsulated frames per VNI / key / VSID");

    // And each of them is exactly the frame sent into that tunnel.
    let (ok, report, out) = rig.tool("verify");
    assert_eq!(report["errors"], json!([]), "{out}");
    assert!(ok, "{out}");
    for t in TUNNELS {
        let r = &report["tunnels"][t.name];
        assert_eq!(r["decap_ok"], n(t.name, "decap"), "{}: {out}", t.name);
        assert_eq!(r["encap_ok"], n(t.name, "encap"), "{}: {out}", t.name);
    }
}
