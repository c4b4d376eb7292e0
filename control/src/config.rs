//! The daemon's TOML configuration as written by the operator (`RawConfig`), before any
//! meaning is given to it. Unknown keys are refused by serde (`deny_unknown_fields`), so a typo
//! is an error naming the key rather than a silently ignored setting. Everything semantic
//! (addresses, references between objects, lcores, algorithms) is checked when the raw config
//! is turned into the object model in `state.rs`, which names the offending field as
//! `section[index].field` or `section 'name'.field`.

use serde::{Deserialize, Serialize};

/// The whole file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub system: RawSystem,
    #[serde(default)]
    pub ports: Vec<RawPort>,
    #[serde(default)]
    pub workers: Vec<RawWorker>,
    #[serde(default)]
    pub interfaces: Vec<RawInterface>,
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    #[serde(default)]
    pub neighbors: Vec<RawNeighbor>,
    #[serde(default)]
    pub tunnels: Vec<RawTunnel>,
    #[serde(default)]
    pub xconnects: Vec<RawXconnect>,
    #[serde(default)]
    pub ipsec: RawIpsec,
}

/// Process-wide settings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RawSystem {
    /// Management socket path (created 0600, root only).
    pub socket: String,
    /// EAL `--file-prefix`: unique per daemon on one machine.
    pub file_prefix: String,
    /// The lcore the control thread runs on (EAL main lcore).
    pub main_lcore: u32,
    /// Mbufs in the packet pool.
    pub mempool_mbufs: u32,
    /// Per-lcore mempool cache.
    pub mempool_cache: u32,
    /// Data room per mbuf (headroom included).
    pub mbuf_data_room: u16,
    /// RX burst size (1..=256).
    pub burst: u16,
    /// Extra EAL arguments, appended verbatim.
    pub eal_args: Vec<String>,
    /// `--in-memory` (no hugepage files left behind).
    pub in_memory: bool,
    /// Log filter (tracing env-filter syntax).
    pub log: String,
    /// Seconds a resolved neighbor stays valid before it is refreshed.
    pub neighbor_reachable_secs: u32,
    /// ICMP errors a worker may send per second.
    pub icmp_rate: u32,
    /// Microseconds a worker sleeps after a run of empty polls (0 = pure polling, the
    /// production setting; tests on shared CPUs use a small value).
    pub worker_idle_sleep_us: u32,
    /// Lcore -> CPU placement for lcores that are not simply "lcore N on CPU N" (EAL
    /// `--lcores`), e.g. two workers sharing CPU 1: `{ "1" = 1, "2" = 1 }`.
    pub lcore_cpus: std::collections::BTreeMap<String, u32>,
}

impl Default for RawSystem {
    fn default() -> Self {
        RawSystem {
            socket: "/run/ferrogate/ferrogate.sock".into(),
            file_prefix: "ferrogate".into(),
            main_lcore: 0,
            mempool_mbufs: 16383,
            mempool_cache: 256,
            mbuf_data_room: 2048 + 128,
            burst: 32,
            eal_args: Vec::new(),
            in_memory: true,
            log: "info".into(),
            neighbor_reachable_secs: 30,
            icmp_rate: 100,
            worker_idle_sleep_us: 0,
            lcore_cpus: Default::default(),
        }
    }
}

/// A DPDK port.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawPort {
    pub name: String,
    /// DPDK device arguments, e.g. `net_af_packet0,iface=veth0` or a PCI address.
    pub devargs: String,
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    #[serde(default = "default_desc")]
    pub rx_desc: u16,
    #[serde(default = "default_desc")]
    pub tx_desc: u16,
    #[serde(default = "default_true")]
    pub rss: bool,
    #[serde(default)]
    pub promiscuous: bool,
    /// Override the port's MAC (required for devices that have none, e.g. net_ring).
    #[serde(default)]
    pub mac: Option<String>,
}

/// A worker lcore and the RX queues it polls.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawWorker {
    pub lcore: u32,
    /// `"port:queue"` pairs, e.g. `["wan:0", "lan:0"]`.
    pub rx: Vec<String>,
}

/// An L3 interface: a port, or a VLAN on a port.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawInterface {
    pub name: String,
    pub port: String,
    #[serde(default)]
    pub vlan: Option<u16>,
    /// `addr/len` entries, IPv4 or IPv6.
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub mtu: Option<u16>,
}

/// A static route.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub prefix: String,
    /// Gateway address.
    #[serde(default)]
    pub via: Option<String>,
    /// Egress interface, tunnel or VTI name.
    #[serde(default)]
    pub interface: Option<String>,
    #[serde(default)]
    pub blackhole: bool,
}

/// A static neighbor (ARP / ND entry).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawNeighbor {
    pub ip: String,
    pub mac: String,
    pub interface: String,
}

/// An overlay tunnel.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawTunnel {
    pub name: String,
    /// gre | gre-teb | nvgre | vxlan | vxlan-gpe | geneve | ipip | ip4ip4 | ip4ip6 | ip6ip4 |
    /// ip6ip6 | etherip
    pub profile: String,
    pub local: String,
    /// Remote endpoint address or `any`.
    pub remote: String,
    /// GRE key, VXLAN / VXLAN-GPE / Geneve VNI, NVGRE VSID.
    #[serde(default)]
    pub key: Option<u32>,
    /// UDP destination port (VXLAN 4789, VXLAN-GPE 4790, Geneve 6081 by default).
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub ttl: Option<u8>,
    /// `preserve` or a number 0..=255.
    #[serde(default)]
    pub tos: Option<toml::Value>,
    /// propagate | set | clear
    #[serde(default)]
    pub df: Option<String>,
    /// 0 = auto (underlay MTU minus overhead).
    #[serde(default)]
    pub mtu: Option<u16>,
    /// bidirectional | inbound
    #[serde(default)]
    pub mode: Option<String>,
    /// Addresses on the tunnel interface (L3 tunnels).
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub gre_checksum: bool,
    #[serde(default)]
    pub gre_sequence: bool,
    /// What the tunnel carries: ethernet | ip | ipv4 | ipv6. Chooses between L2 (ethernet,
    /// the default) and L3 for vxlan-gpe and geneve; narrows gre to one IP family.
    #[serde(default)]
    pub payload: Option<String>,
    /// Geneve options to send, as hex of whole TLVs.
    #[serde(default)]
    pub geneve_options: Option<String>,
    /// Geneve (class, type) pairs we understand, `"0x0102:0x80"`.
    #[serde(default)]
    pub geneve_known_options: Vec<String>,
    /// Zero UDP checksum over IPv6 (RFC 6935), both directions.
    #[serde(default)]
    pub udp6_zero_checksum: bool,
}

/// A point-to-point L2 cross-connect: a port (or VLAN on it) <-> one L2 tunnel.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawXconnect {
    pub name: String,
    pub port: String,
    #[serde(default)]
    pub vlan: Option<u16>,
    pub tunnel: String,
}

/// IPsec settings, SAs, policies and VTIs.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawIpsec {
    /// Action for traffic matching no policy: bypass (default) | discard.
    #[serde(default)]
    pub default_action: Option<String>,
    /// Seconds an inbound SA replaced by a rekey stays installed.
    #[serde(default)]
    pub rekey_grace_secs: Option<u32>,
    #[serde(default)]
    pub sa: Vec<RawSa>,
    #[serde(default)]
    pub policy: Vec<RawPolicy>,
    #[serde(default)]
    pub vti: Vec<RawVti>,
}

/// A manually keyed SA.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawSa {
    pub name: String,
    pub spi: u64,
    /// in | out
    pub direction: String,
    /// tunnel | transport
    #[serde(default)]
    pub mode: Option<String>,
    /// esp (default). `ah` is refused.
    #[serde(default)]
    pub protocol: Option<String>,
    /// Tunnel source address (for `out`: ours; for `in`: the peer's).
    #[serde(default)]
    pub src: Option<String>,
    /// Tunnel destination address (for `out`: the peer's; for `in`: ours).
    #[serde(default)]
    pub dst: Option<String>,
    pub encryption: String,
    #[serde(default)]
    pub integrity: Option<String>,
    /// Encryption key (AEAD: key || 4-byte salt) as hex of the exact length.
    pub key: String,
    /// Integrity key as hex (CBC + HMAC only).
    #[serde(default)]
    pub integrity_key: Option<String>,
    #[serde(default)]
    pub replay_window: Option<u32>,
    #[serde(default)]
    pub esn: bool,
    /// Testing and interop only: the sequence number of the first packet sent (`out`) or the
    /// lowest one expected (`in`), for an SA that continues a sequence started elsewhere (a
    /// peer that resumed; ESN tests that must cross 2^32). Absent = 1, the only value a
    /// normal SA uses. Without `esn` at most 4294967295 (2^32-1).
    #[serde(default)]
    pub initial_seq: Option<u64>,
    #[serde(default)]
    pub lifetime: RawLifetime,
    /// UDP encapsulation (NAT-T).
    #[serde(default)]
    pub natt: bool,
    #[serde(default)]
    pub natt_sport: Option<u16>,
    #[serde(default)]
    pub natt_dport: Option<u16>,
    #[serde(default)]
    pub ttl: Option<u8>,
    /// propagate | set | clear
    #[serde(default)]
    pub df: Option<String>,
    /// `copy` or a DSCP number 0..=63.
    #[serde(default)]
    pub dscp: Option<toml::Value>,
    /// IPComp: refused.
    #[serde(default)]
    pub ipcomp: Option<String>,
}

/// SA lifetimes; 0 / absent = unlimited.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawLifetime {
    #[serde(default)]
    pub soft_seconds: u64,
    #[serde(default)]
    pub hard_seconds: u64,
    #[serde(default)]
    pub soft_bytes: u64,
    #[serde(default)]
    pub hard_bytes: u64,
    #[serde(default)]
    pub soft_packets: u64,
    #[serde(default)]
    pub hard_packets: u64,
}

/// An SPD rule.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub name: String,
    /// Lowest wins.
    pub priority: u32,
    /// out | in | both (`both` also matches the mirrored inbound traffic)
    pub direction: String,
    #[serde(default)]
    pub src: Option<String>,
    #[serde(default)]
    pub dst: Option<String>,
    /// Name (tcp, udp, icmp, gre, ...) or number; absent = any.
    #[serde(default)]
    pub protocol: Option<String>,
    /// `N` or `N-M`.
    #[serde(default)]
    pub src_ports: Option<String>,
    #[serde(default)]
    pub dst_ports: Option<String>,
    #[serde(default)]
    pub icmp_type: Option<u8>,
    #[serde(default)]
    pub icmp_code: Option<u8>,
    /// protect | bypass | discard
    pub action: String,
    /// Outbound SAs (newest last; the newest installed one is used).
    #[serde(default)]
    pub sa: Vec<String>,
    /// Inbound SAs this policy admits (their traffic selectors are this policy's, mirrored).
    #[serde(default)]
    pub sa_in: Vec<String>,
    /// Interface scope (absent = all).
    #[serde(default)]
    pub interface: Option<String>,
}

/// A route-based IPsec interface.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawVti {
    pub name: String,
    pub sa_out: String,
    pub sa_in: Vec<String>,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub mtu: Option<u16>,
}

fn default_mtu() -> u16 {
    1500
}
fn default_desc() -> u16 {
    1024
}
fn default_true() -> bool {
    true
}

impl RawConfig {
    /// Parse TOML text. Errors carry toml's line/column and the key.
    pub fn parse(text: &str) -> Result<RawConfig, String> {
        toml::from_str(text).map_err(|e| format!("config: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_refused_by_name() {
        let e = RawConfig::parse("[system]\nsockett = \"/x\"\n").unwrap_err();
        assert!(e.contains("sockett"), "{e}");
        let e = RawConfig::parse("[[ports]]\nname='a'\ndevargs='x'\nspeed=1\n").unwrap_err();
        assert!(e.contains("speed"), "{e}");
    }

    #[test]
    fn minimal_parses_with_defaults() {
        let c = RawConfig::parse(
            "[[ports]]\nname='wan'\ndevargs='net_null0'\n[[workers]]\nlcore=1\nrx=['wan:0']\n",
        )
        .unwrap();
        assert_eq!(c.ports[0].mtu, 1500);
        assert_eq!(c.system.burst, 32);
        assert!(c.ports[0].rss);
    }
}
