//! Shared by the tunnel end-to-end tests (tunnel_scapy, tunnel_isolation, tunnel_malformed,
//! tunnel_mtu): one topology on net_pcap, the tunnels as data, the configuration and the JSON
//! spec that tests/tools/tunnel_scapy.py builds and checks frames from, and the runners.
//!
//! Topology: port "under" is the underlay (172.16.0.1/24 and fd00:16::1/64; the peer tunnel
//! endpoint is .2 / ::2 behind it, MAC `PEER_MAC`); port "lan" has the host 10.1.0.2 /
//! fd00:1::2 (`HOST_MAC`) that talks through the L3 tunnels; port "l2" carries one VLAN per
//! L2 tunnel (`101 + index`), cross-connected to it. L3 tunnel `k` (index in the list) is the
//! route to 10.2.`1+k`.0/24 and fd02:`1+k`::/64 (the families it carries). Every port reads
//! `<port>_in.pcap` and writes `<port>_tx.pcap` in the scratch directory.
#![allow(dead_code)]

use serde_json::{json, Value};
use tests::{Daemon, Scratch};

pub const GW_UNDER: &str = "02:00:00:00:16:01";
pub const GW_LAN: &str = "02:00:00:00:01:01";
pub const GW_L2: &str = "02:00:00:00:02:01";
pub const PEER_MAC: &str = "02:00:00:00:16:02";
pub const HOST_MAC: &str = "02:00:00:00:01:02";

/// One tunnel: its profile and the settings that differ from the defaults.
#[derive(Clone, Copy)]
pub struct Tun {
    pub name: &'static str,
    pub profile: &'static str,
    /// Outer IPv6 (else IPv4).
    pub v6: bool,
    pub key: Option<u32>,
    pub port: Option<u16>,
    pub ttl: Option<u8>,
    pub tos: Option<u8>,
    pub df: Option<&'static str>,
    pub mtu: Option<u16>,
    pub gre_checksum: bool,
    pub gre_sequence: bool,
    pub payload: Option<&'static str>,
    pub geneve_options: Option<&'static str>,
    pub geneve_known: Option<&'static str>,
    pub udp6_zero_checksum: bool,
    /// An L2 tunnel left without a cross-connect.
    pub detached: bool,
    /// Frames per inner type the Scapy tool sends each way (default: the spec's count).
    pub count: Option<u64>,
}

/// Every setting at its default (`Tun { name, profile, ..T }`).
pub const T: Tun = Tun {
    name: "",
    profile: "",
    v6: false,
    key: None,
    port: None,
    ttl: None,
    tos: None,
    df: None,
    mtu: None,
    gre_checksum: false,
    gre_sequence: false,
    payload: None,
    geneve_options: None,
    geneve_known: None,
    udp6_zero_checksum: false,
    detached: false,
    count: None,
};

impl Tun {
    /// Carries Ethernet (an L2 tunnel on a cross-connect) rather than IP (routed).
    pub fn l2(&self) -> bool {
        match self.profile {
            "gre-teb" | "nvgre" | "vxlan" | "etherip" => true,
            "vxlan-gpe" | "geneve" => matches!(self.payload, None | Some("ethernet")),
            _ => false,
        }
    }

    /// Inner IP versions of an L3 tunnel.
    pub fn families(&self) -> Vec<u8> {
        match (self.profile, self.payload) {
            ("ipip" | "ip4ip4" | "ip4ip6", _) | (_, Some("ipv4")) => vec![4],
            ("ip6ip4" | "ip6ip6", _) | (_, Some("ipv6")) => vec![6],
            _ if self.l2() => vec![],
            _ => vec![4, 6],
        }
    }

    /// Bytes the encapsulation adds in front of the inner packet or frame: outer IP, UDP,
    /// tunnel header (RFC 2784/2890, 7637, 7348, the VXLAN-GPE draft, 8926, 3378, 2003).
    pub fn overhead(&self) -> u16 {
        let ip = if self.v6 { 40 } else { 20 };
        let gre = |words: [bool; 3]| 4 + 4 * words.iter().filter(|w| **w).count() as u16;
        ip + match self.profile {
            "gre" | "gre-teb" => gre([self.key.is_some(), self.gre_checksum, self.gre_sequence]),
            "nvgre" => 8,
            "vxlan" | "vxlan-gpe" => 8 + 8,
            "geneve" => 8 + 8 + self.geneve_options.map_or(0, |h| h.len() as u16 / 2),
            "etherip" => 2,
            _ => 0,
        }
    }

    fn toml(&self, k: usize) -> String {
        let (local, remote) = if self.v6 {
            ("fd00:16::1", "fd00:16::2")
        } else {
            ("172.16.0.1", "172.16.0.2")
        };
        let mut s = format!(
            "[[tunnels]]\nname = \"{}\"\nprofile = \"{}\"\nlocal = \"{local}\"\nremote = \"{remote}\"\n",
            self.name, self.profile
        );
        let q = |v: &str| format!("\"{v}\"");
        let opts = [
            ("key", self.key.map(|v| v.to_string())),
            ("port", self.port.map(|v| v.to_string())),
            ("ttl", self.ttl.map(|v| v.to_string())),
            ("tos", self.tos.map(|v| v.to_string())),
            ("df", self.df.map(q)),
            ("mtu", self.mtu.map(|v| v.to_string())),
            ("payload", self.payload.map(q)),
            ("geneve_options", self.geneve_options.map(q)),
            (
                "geneve_known_options",
                self.geneve_known.map(|v| format!("[{}]", q(v))),
            ),
            ("gre_checksum", self.gre_checksum.then(|| "true".into())),
            ("gre_sequence", self.gre_sequence.then(|| "true".into())),
            (
                "udp6_zero_checksum",
                self.udp6_zero_checksum.then(|| "true".into()),
            ),
        ];
        for (key, v) in opts {
            if let Some(v) = v {
                s += &format!("{key} = {v}\n");
            }
        }
        if self.l2() {
            if !self.detached {
                s += &format!(
                    "[[xconnects]]\nname = \"x-{}\"\nport = \"l2\"\nvlan = {}\ntunnel = \"{}\"\n",
                    self.name,
                    vlan(k),
                    self.name
                );
            }
        } else {
            for fam in self.families() {
                let prefix = match fam {
                    4 => format!("10.2.{}.0/24", net(k)),
                    _ => format!("fd02:{:x}::/64", net(k)),
                };
                s += &format!(
                    "[[routes]]\nprefix = \"{prefix}\"\ninterface = \"{}\"\n",
                    self.name
                );
            }
        }
        s
    }

    fn spec(&self, k: usize) -> Value {
        json!({
            "name": self.name, "profile": self.profile, "v6": self.v6, "key": self.key,
            "port": self.port, "ttl": self.ttl.unwrap_or(64), "tos": self.tos,
            "df": self.df.unwrap_or("propagate"), "gre_checksum": self.gre_checksum,
            "gre_sequence": self.gre_sequence,
            "geneve_options": self.geneve_options.unwrap_or(""), "l2": self.l2(),
            "vlan": self.l2().then(|| vlan(k)), "net": (!self.l2()).then(|| net(k)),
            "families": self.families(), "count": self.count, "mtu": self.mtu,
        })
    }
}

/// Cross-connect VLAN of L2 tunnel `k`.
pub fn vlan(k: usize) -> u16 {
    101 + k as u16
}

/// Inner network number of L3 tunnel `k`.
pub fn net(k: usize) -> usize {
    1 + k
}

/// A test's scratch directory, configuration and spec.
pub struct Rig {
    pub dir: Scratch,
    pub tag: String,
    pub cfg: String,
    pub spec_path: String,
}

impl Rig {
    /// The topology with `tunnels`; `system` goes into `[system]`, `spec_extra` (an object)
    /// into the spec; `count` frames per inner type unless a tunnel says otherwise.
    pub fn new(tag: &str, tunnels: &[Tun], count: u64, spec_extra: Value) -> Rig {
        let dir = Scratch::new(tag);
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
        for (k, t) in tunnels.iter().enumerate() {
            cfg += &t.toml(k);
            specs.push(t.spec(k));
        }
        let mut spec = json!({
            "gw_under": GW_UNDER, "gw_lan": GW_LAN, "gw_l2": GW_L2,
            "peer_mac": PEER_MAC, "host_mac": HOST_MAC,
            "local4": "172.16.0.1", "remote4": "172.16.0.2",
            "local6": "fd00:16::1", "remote6": "fd00:16::2",
            "host4": "10.1.0.2", "host6": "fd00:1::2",
            "count": count, "tunnels": specs,
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), spec_extra.as_object()) {
            s.extend(e.clone());
        }
        let spec_path = f("spec.json");
        std::fs::write(&spec_path, spec.to_string()).expect("write spec");
        Rig {
            dir,
            tag: tag.to_string(),
            cfg,
            spec_path,
        }
    }

    /// Path of a file in the scratch directory.
    pub fn file(&self, name: &str) -> String {
        self.dir.file(name).display().to_string()
    }

    /// Run `tunnel_scapy.py MODE SPEC DIR`: whether it succeeded, its last JSON output line
    /// parsed (the whole output is in the panic message if there is none) and the output.
    pub fn tool(&self, mode: &str) -> (bool, Value, String) {
        let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/tunnel_scapy.py");
        let d = self.dir.path.display().to_string();
        let (ok, out) = run("/usr/bin/python3", &[tool, mode, &self.spec_path, &d]);
        let last = out.lines().rfind(|l| l.starts_with('{'));
        let v = serde_json::from_str(last.unwrap_or(""))
            .unwrap_or_else(|e| panic!("tunnel_scapy.py {mode}: {e}:\n{out}"));
        (ok, v, out)
    }

    /// Start ferrogate on the configuration (`system` lines go into `[system]`).
    pub fn start(&self, system: &str) -> Daemon {
        Daemon::start(&self.tag, system, &self.cfg)
    }
}

/// Run a command: (success, stdout + stderr).
pub fn run(cmd: &str, args: &[&str]) -> (bool, String) {
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

/// `tshark -z expert,warn -q` on a capture (IPv4 and UDP checksums checked, UDP 8472 read as
/// VXLAN): the summary must list no error or warning (a malformed packet is an error).
pub fn tshark_expert_clean(path: &str) {
    let opts = "-n -o ip.check_checksum:TRUE -o udp.check_checksum:TRUE -d udp.port==8472,vxlan";
    let mut args: Vec<&str> = opts.split(' ').collect();
    args.extend(["-r", path, "-z", "expert,warn", "-q"]);
    let (ok, out) = run("tshark", &args);
    assert!(ok, "tshark {path}: {out}");
    for bad in ["Errors (", "Warns (", "Malformed"] {
        assert!(!out.contains(bad), "tshark expert info on {path}:\n{out}");
    }
}

/// One tunnel's row of `show tunnels` (the list), by name.
pub fn row<'a>(rows: &'a Value, name: &str) -> &'a Value {
    rows.as_array()
        .and_then(|r| r.iter().find(|r| r["name"] == name))
        .unwrap_or_else(|| panic!("tunnel {name} not in {rows}"))
}
