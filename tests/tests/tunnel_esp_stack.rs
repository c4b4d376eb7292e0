//! Stacked encapsulation through the real daemon: the output of GRE (a routed tunnel), VXLAN
//! and EtherIP (cross-connected VLANs) re-enters classification and is protected by ESP under
//! policies on protocol 47, UDP and protocol 97 between the tunnel endpoints; the peer
//! (Scapy) decrypts it and finds the tunnel packets, and its own ESP-protected tunnel traffic
//! is decrypted, decapsulated and delivered — a ping to the gateway's address on the GRE
//! interface included. A GRE packet in clear is refused by the policy.

use tests::{require_env, wait_until, Daemon, Scratch};

const KEY: &str = "00112233445566778899aabbccddeeff01020304";
const N: u64 = 8;

fn python(args: &[&str]) -> String {
    tests::esp::python(args).unwrap_or_else(|e| panic!("{e}"))
}

fn config(dir: &Scratch) -> String {
    let f = |n: &str| dir.file(n).display().to_string();
    format!(
        r#"
[[ports]]
name = "lan"
devargs = "net_pcap0,rx_pcap={lan},tx_pcap={lan_tx}"
mac = "02:00:00:00:01:01"
[[ports]]
name = "l2"
devargs = "net_pcap1,rx_pcap={l2},tx_pcap={l2_tx}"
mac = "02:00:00:00:02:01"
[[ports]]
name = "wan"
devargs = "net_pcap2,rx_pcap={wan},tx_pcap={wan_tx}"
mac = "02:00:00:00:03:01"
[[workers]]
lcore = 1
rx = ["lan:0", "l2:0", "wan:0"]
[[interfaces]]
name = "lan"
port = "lan"
addresses = ["10.1.0.1/24"]
[[interfaces]]
name = "wan"
port = "wan"
addresses = ["172.16.0.1/24"]
[[neighbors]]
ip = "10.1.0.2"
mac = "02:00:00:00:01:02"
interface = "lan"
[[neighbors]]
ip = "172.16.0.2"
mac = "02:00:00:00:03:02"
interface = "wan"
[[tunnels]]
name = "gre1"
profile = "gre"
local = "172.16.0.1"
remote = "172.16.0.2"
key = 5
addresses = ["192.168.255.1/30"]
[[tunnels]]
name = "vx77"
profile = "vxlan"
local = "172.16.0.1"
remote = "172.16.0.2"
key = 77
[[tunnels]]
name = "eip"
profile = "etherip"
local = "172.16.0.1"
remote = "172.16.0.2"
[[xconnects]]
name = "v10"
port = "l2"
vlan = 10
tunnel = "vx77"
[[xconnects]]
name = "v20"
port = "l2"
vlan = 20
tunnel = "eip"
[[routes]]
prefix = "10.2.0.0/24"
interface = "gre1"

[ipsec]
[[ipsec.sa]]
name = "to-peer"
spi = 4097
direction = "out"
src = "172.16.0.1"
dst = "172.16.0.2"
encryption = "aes-gcm-128"
key = "{KEY}"
[[ipsec.sa]]
name = "from-peer"
spi = 8193
direction = "in"
src = "172.16.0.2"
dst = "172.16.0.1"
encryption = "aes-gcm-128"
key = "{KEY}"
[[ipsec.policy]]
name = "gre"
priority = 10
direction = "both"
src = "172.16.0.1/32"
dst = "172.16.0.2/32"
protocol = "gre"
action = "protect"
sa = ["to-peer"]
sa_in = ["from-peer"]
[[ipsec.policy]]
name = "vxlan"
priority = 11
direction = "both"
src = "172.16.0.1/32"
dst = "172.16.0.2/32"
protocol = "udp"
action = "protect"
sa = ["to-peer"]
sa_in = ["from-peer"]
[[ipsec.policy]]
name = "etherip"
priority = 12
direction = "both"
src = "172.16.0.1/32"
dst = "172.16.0.2/32"
protocol = "97"
action = "protect"
sa = ["to-peer"]
sa_in = ["from-peer"]
"#,
        lan = f("lan.pcap"),
        lan_tx = f("lan_tx.pcap"),
        l2 = f("l2.pcap"),
        l2_tx = f("l2_tx.pcap"),
        wan = f("wan.pcap"),
        wan_tx = f("wan_tx.pcap"),
    )
}

#[test]
fn gre_vxlan_and_etherip_protected_by_esp_both_ways() {
    require_env();
    let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/stack_interop.py");
    let dir = Scratch::new("stack");
    let cfg = serde_json::json!({
        "key": KEY, "spi_out": 4097, "spi_in": 8193, "count": N,
        "mac": {"lan": "02:00:00:00:01:01", "l2": "02:00:00:00:02:01", "wan": "02:00:00:00:03:01"},
    });
    let cfg_path = dir.file("cfg.json").display().to_string();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let d = dir.path.display().to_string();
    python(&[tool, "gen", &cfg_path, &d]);
    let daemon = Daemon::start("stack", "", &config(&dir));
    // In: N routed + 2N L2 frames + 3N + 1 ESP (one a ping) + 1 clear GRE.
    let total_in = 6 * N + 2;
    wait_until("all frames received", 30, || {
        daemon.stat("rx_packets") >= total_in
    });
    // Out: 3N + 1 ESP (the echo reply) + N routed + 2N L2, and the clear GRE dropped.
    wait_until("all frames handled", 10, || {
        daemon.stat("tx_packets") + daemon.stat("drops") >= total_in
    });
    let errs = daemon.errors();
    let tunnels = daemon.json(&["show", "tunnels"]);
    let st = daemon.stop();
    assert!(st.log.contains("mbufs in use at exit: 0"), "{}", st.log);
    assert_eq!(
        errs.get("spd-unprotected"),
        Some(&1),
        "the clear GRE packet: {errs:?}"
    );
    assert_eq!(errs.len(), 1, "no other drop: {errs:?}");
    for t in tunnels.as_array().unwrap() {
        // gre1 also carried the ping and its reply.
        let n = if t["name"] == "gre1" { N + 1 } else { N };
        assert_eq!(t["tx_packets"].as_u64(), Some(n), "{t}");
        assert_eq!(t["rx_packets"].as_u64(), Some(n), "{t}");
    }
    let out = python(&[tool, "verify", &cfg_path, &d]);
    assert!(out.contains("\"errors\": []"), "{out}");
}
