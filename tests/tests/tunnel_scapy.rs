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
//!   no mbuf left at exit.
//!
//! Tunnel definitions are in `TUNNELS`; tests/tools/tunnel_scapy.py builds and checks frames.

use serde_json::{json, Value};
use tests::{require_env, wait_until, Daemon, Scratch};

/// One tunnel of the test: profile and the settings that differ from the defaults.
#[derive(Clone, Copy)]
struct Tun {
    name: &'static str,
    profile: &'static str,
    /// Outer IPv6 (else IPv4).
    v6: bool,
    key: Option<u32>,
    port: Option<u16>,
    ttl: Option<u8>,
    tos: Option<u8>,
    df: Option<&'static str>,
    gre_checksum: bool,
    gre_sequence: bool,
    payload: Option<&'static str>,
    geneve_options: Option<&'static str>,
    geneve_known: Option<&'static str>,
}

const T: Tun = Tun {
    name: "",
    profile: "",
    v6: false,
    key: None,
    port: None,
    ttl: None,
    tos: None,
    df: None,
    gre_checksum: false,
    gre_sequence: false,
    payload: None,
    geneve_options: None,
    geneve_known: None,
};

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

const GW_UNDER: &str = "02:00:00:00:16:01";
const GW_LAN: &str = "02:00:00:00:01:01";
const GW_L2: &str = "02:00:00:00:02:01";
const PEER_MAC: &str = "02:00:00:00:16:02";
const HOST_MAC: &str = "02:00:00:00:01:02";

impl Tun {
    /// Carries Ethernet (an L2 tunnel on a cross-connect) rather than IP (routed).
    fn l2(&self) -> bool {
        match self.profile {
            "gre-teb" | "nvgre" | "vxlan" | "etherip" => true,
            "vxlan-gpe" | "geneve" => self.payload.map_or(true, |p| p == "ethernet"),
            _ => false,
        }
    }
    /// Inner IP versions of an L3 tunnel.
    fn families(&self) -> Vec<u8> {
        match self.profile {
            "ipip" | "ip4ip4" | "ip4ip6" => vec![4],
            "ip6ip4" | "ip6ip6" => vec![6],
            _ if self.l2() => vec![],
            _ => vec![4, 6],
        }
    }
}

/// The daemon's configuration and the spec handed to the Scapy tool.
fn config(dir: &Scratch) -> (String, Value) {
    let f = |n: &str| dir.file(n).display().to_string();
    let mut cfg = format!(
        r#"
[[ports]]
name = "under"
devargs = "net_pcap0,rx_pcap={},tx_pcap={}"
mac = "{GW_UNDER}"
[[ports]]
name = "lan"
devargs = "net_pcap1,rx_pcap={},tx_pcap={}"
mac = "{GW_LAN}"
[[ports]]
name = "l2"
devargs = "net_pcap2,rx_pcap={},tx_pcap={}"
mac = "{GW_L2}"
[[workers]]
lcore = 1
rx = ["under:0", "lan:0", "l2:0"]
[[interfaces]]
name = "under"
port = "under"
addresses = ["172.16.0.1/24", "fd00:16::1/64"]
[[interfaces]]
name = "lan"
port = "lan"
addresses = ["10.1.0.1/24", "fd00:1::1/64"]
[[neighbors]]
ip = "172.16.0.2"
mac = "{PEER_MAC}"
interface = "under"
[[neighbors]]
ip = "fd00:16::2"
mac = "{PEER_MAC}"
interface = "under"
[[neighbors]]
ip = "10.1.0.2"
mac = "{HOST_MAC}"
interface = "lan"
[[neighbors]]
ip = "fd00:1::2"
mac = "{HOST_MAC}"
interface = "lan"
"#,
        f("under_in.pcap"),
        f("under_tx.pcap"),
        f("lan_in.pcap"),
        f("lan_tx.pcap"),
        f("l2_in.pcap"),
        f("l2_tx.pcap"),
    );
    let mut specs = Vec::new();
    for (k, t) in TUNNELS.iter().enumerate() {
        let (local, remote) = if t.v6 {
            ("fd00:16::1", "fd00:16::2")
        } else {
            ("172.16.0.1", "172.16.0.2")
        };
        cfg += &format!(
            "[[tunnels]]\nname = \"{}\"\nprofile = \"{}\"\nlocal = \"{local}\"\nremote = \"{remote}\"\n",
            t.name, t.profile
        );
        let mut opt = |key: &str, v: Option<String>| {
            if let Some(v) = v {
                cfg += &format!("{key} = {v}\n");
            }
        };
        opt("key", t.key.map(|v| v.to_string()));
        opt("port", t.port.map(|v| v.to_string()));
        opt("ttl", t.ttl.map(|v| v.to_string()));
        opt("tos", t.tos.map(|v| v.to_string()));
        opt("df", t.df.map(|v| format!("\"{v}\"")));
        opt("payload", t.payload.map(|v| format!("\"{v}\"")));
        opt(
            "geneve_options",
            t.geneve_options.map(|v| format!("\"{v}\"")),
        );
        opt(
            "geneve_known_options",
            t.geneve_known.map(|v| format!("[\"{v}\"]")),
        );
        opt("gre_checksum", t.gre_checksum.then(|| "true".into()));
        opt("gre_sequence", t.gre_sequence.then(|| "true".into()));
        let (vlan, net) = (101 + k as u16, 1 + k);
        if t.l2() {
            cfg += &format!(
                "[[xconnects]]\nname = \"x-{}\"\nport = \"l2\"\nvlan = {vlan}\ntunnel = \"{}\"\n",
                t.name, t.name
            );
        } else {
            for fam in t.families() {
                let prefix = if fam == 4 {
                    format!("10.2.{net}.0/24")
                } else {
                    format!("fd02:{net:x}::/64")
                };
                cfg += &format!(
                    "[[routes]]\nprefix = \"{prefix}\"\ninterface = \"{}\"\n",
                    t.name
                );
            }
        }
        specs.push(json!({
            "name": t.name, "profile": t.profile, "v6": t.v6, "key": t.key, "port": t.port,
            "ttl": t.ttl.unwrap_or(64), "tos": t.tos, "df": t.df.unwrap_or("propagate"),
            "gre_checksum": t.gre_checksum, "gre_sequence": t.gre_sequence,
            "geneve_options": t.geneve_options.unwrap_or(""),
            "l2": t.l2(), "vlan": t.l2().then_some(vlan), "net": (!t.l2()).then_some(net),
            "families": t.families(),
        }));
    }
    let spec = json!({
        "gw_under": GW_UNDER, "gw_lan": GW_LAN, "gw_l2": GW_L2,
        "peer_mac": PEER_MAC, "host_mac": HOST_MAC,
        "local4": "172.16.0.1", "remote4": "172.16.0.2",
        "local6": "fd00:16::1", "remote6": "fd00:16::2",
        "host4": "10.1.0.2", "host6": "fd00:1::2",
        "count": COUNT, "tunnels": specs,
    });
    (cfg, spec)
}

fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `tshark -z expert -q` on a capture: the expert summary must list no error or warning (a
/// malformed packet is an error), and tshark must not fail.
fn tshark_expert_clean(path: &str) {
    let opts = "-n -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE -d udp.port==8472,vxlan";
    let mut args: Vec<&str> = opts.split(' ').collect();
    args.extend(["-r", path, "-z", "expert,warn", "-q"]);
    let (ok, out) = run("tshark", &args);
    assert!(ok, "tshark {path}: {out}");
    for bad in ["Errors (", "Warns (", "Malformed"] {
        assert!(!out.contains(bad), "tshark expert info on {path}:\n{out}");
    }
}

#[test]
fn every_tunnel_type_both_directions_with_scapy_and_tshark() {
    require_env();
    let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/tunnel_scapy.py");
    let dir = Scratch::new("tunscapy");
    let (cfg, spec) = config(&dir);
    let spec_path = dir.file("spec.json").display().to_string();
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let d = dir.path.display().to_string();
    let (ok, out) = run("/usr/bin/python3", &[tool, "gen", &spec_path, &d]);
    assert!(ok, "gen: {out}");
    let counts: Value = serde_json::from_str(out.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("gen output {e}: {out}"));
    let total = |k: &str| -> u64 {
        TUNNELS
            .iter()
            .map(|t| counts[t.name][k].as_u64().unwrap())
            .sum()
    };
    let (n_decap, n_encap) = (total("decap"), total("encap"));
    assert_eq!(n_decap, n_encap);

    let daemon = Daemon::start("tunscapy", "", &cfg);
    wait_until("all frames received", 30, || {
        daemon.stat("rx_packets") >= n_decap + n_encap
    });
    wait_until("all frames sent", 10, || {
        daemon.stat("tx_packets") + daemon.stat("drops") >= n_decap + n_encap
    });
    let tunnels = daemon.json(&["show", "tunnels"]);
    let errors = daemon.errors();
    let tx = daemon.stat("tx_packets");
    let st = daemon.stop();
    assert_eq!(st.code, Some(0), "{}", st.log);
    assert!(st.log.contains("mbufs in use at exit: 0"), "{}", st.log);
    assert!(errors.is_empty(), "drops: {errors:?}");
    assert_eq!(tx, n_decap + n_encap);

    // Per tunnel: exactly what was sent each way, in packets and inner bytes, no drops.
    let rows = tunnels.as_array().expect("tunnel rows");
    assert_eq!(rows.len(), TUNNELS.len());
    for t in TUNNELS {
        let r = rows
            .iter()
            .find(|r| r["name"] == t.name)
            .unwrap_or_else(|| panic!("{} missing: {tunnels}", t.name));
        let c = &counts[t.name];
        assert_eq!(r["profile"], t.profile, "{r}");
        assert_eq!(r["rx_packets"], c["decap"], "{}: {r}", t.name);
        assert_eq!(r["rx_bytes"], c["decap_bytes"], "{}: {r}", t.name);
        assert_eq!(r["tx_packets"], c["encap"], "{}: {r}", t.name);
        assert_eq!(r["tx_bytes"], c["encap_bytes"], "{}: {r}", t.name);
        assert_eq!(r["drops"], 0, "{}: {r}", t.name);
    }

    // Scapy (and tshark's fields) on every output frame.
    let (ok, out) = run("/usr/bin/python3", &[tool, "verify", &spec_path, &d]);
    let report: Value = serde_json::from_str(out.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("verify output {e}: {out}"));
    assert_eq!(report["errors"], json!([]), "{out}");
    assert!(ok, "{out}");
    for t in TUNNELS {
        let c = &counts[t.name];
        let r = &report["tunnels"][t.name];
        assert_eq!(r["decap_ok"], c["decap"], "{}: {out}", t.name);
        assert_eq!(r["encap_ok"], c["encap"], "{}: {out}", t.name);
    }
    assert_eq!(report["tshark_ok"], n_encap, "{out}");

    // tshark's expert summary over everything ferrogate sent.
    for f in ["under_tx.pcap", "lan_tx.pcap", "l2_tx.pcap"] {
        tshark_expert_clean(&dir.file(f).display().to_string());
    }
}
