//! `ferrobench tunnel`: overlay-tunnel encapsulation and decapsulation through the real
//! daemon (issue 3's measurement), next to `dpdk-testpmd` mac forwarding on the same captures.
//!
//! One worker on lcore 1 fed from memory (`net_pcap,infinite_rx=1`) into `net_null`, the rate
//! read from the output port's counters (see `run`). Per tunnel type:
//!
//! * `encap`: plain Ethernet/IPv4/UDP frames (Ethernet/IPv6/UDP for `ip6ip6`) in, tunnel
//!   packets to the peer out. L3 types (gre, ipip, ip6ip6, vxlan-gpe-ip, geneve-ip) are
//!   routed into the tunnel (`[[routes]] interface = "t0"`); for L2 types (gre-teb, nvgre,
//!   vxlan, vxlan6, vxlan-gpe, geneve, etherip) the input port is cross-connected, whole, to
//!   the tunnel. The outer next hop is a static neighbor (no ARP).
//! * `decap`: tunnel packets from the peer in — made by the dataplane's own
//!   `dataplane::tunnel::encap` for the peer's side, and checked by Scapy before they count —
//!   inner packets out: routed to a static next hop (L3), or out of the cross-connected port
//!   (L2).
//!
//! Sizes are the plain (inner) frame, as in `esp`: a decap input is that frame plus the
//! encapsulation. testpmd forwards the very capture ferrogate reads, so its frames are the
//! input frames of the row. Every capture holds `flows` frames that differ in the inner UDP
//! source port, so the outer UDP source port (VXLAN, Geneve, VXLAN-GPE), the NVGRE FlowID
//! and the IPv6 flow label vary as they would with real traffic.
//!
//! Correctness: each measured type × direction × size is run once more, one pass over the
//! capture into a `tx_pcap`, and checked by `reference/tunnel_check.py` (Scapy): the outer
//! headers of what encap sends, the inner frames of what decap sends. ferrogate's `show
//! errors` after every measurement must be empty.

use crate::frames::{self, Size, DUT_MAC, HOST_A, HOST_B};
use crate::report::{self, rate_cells, RATE_HEADER};
use crate::run::{self, cpu_hz, measure, settle, wait_count, Dut, Ferrogate, Rate, Testpmd};
use dataplane::packet::{HeapPacket, Packet};
use dataplane::tunnel::{self, Endpoints, Payload, TunnelEncap, TunnelKind};
use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Our tunnel end (IPv4 underlay).
pub const LOCAL4: Ipv4Addr = Ipv4Addr::new(172, 16, 1, 1);
/// The peer's tunnel end (IPv4 underlay).
pub const PEER4: Ipv4Addr = Ipv4Addr::new(172, 16, 1, 2);
/// Our tunnel end (IPv6 underlay).
pub const LOCAL6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x16, 0, 0, 0, 0, 0, 1);
/// The peer's tunnel end (IPv6 underlay).
pub const PEER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x16, 0, 0, 0, 0, 0, 2);
/// The local host of the IPv6 inner traffic (source of encap input).
pub const HOST6_A: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xa, 0, 0, 0, 0, 0, 1);
/// The remote host of the IPv6 inner traffic.
pub const HOST6_B: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xb, 0, 0, 0, 0, 0, 1);
/// The peer's MAC (static neighbor; source of the decap input).
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x22];
/// The next hop's MAC for decapsulated, routed packets.
pub const NEXTHOP_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x09];
/// The Scapy checker of a one-pass capture (see its docstring).
pub const TUNNEL_CHECK: &str = include_str!("../reference/tunnel_check.py");

fn mac(m: [u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}

/// Direction of the measured path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Plain frames in, tunnel packets out.
    Encap,
    /// Tunnel packets in, inner frames out.
    Decap,
}

impl std::str::FromStr for Dir {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "encap" => Ok(Dir::Encap),
            "decap" => Ok(Dir::Decap),
            o => Err(format!("'{o}': encap or decap")),
        }
    }
}

impl Dir {
    pub fn name(self) -> &'static str {
        match self {
            Dir::Encap => "encap",
            Dir::Decap => "decap",
        }
    }
}

/// One measured tunnel type: a configuration profile with the settings the benchmark uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Type {
    /// Name on the command line and in the table.
    pub name: &'static str,
    /// The configuration's `profile`.
    pub profile: &'static str,
    pub kind: TunnelKind,
    /// The configuration's `payload`, when not the profile's default.
    pub payload: Option<&'static str>,
    /// GRE key, VNI or VSID.
    pub key: Option<u32>,
    /// IPv6 underlay (else IPv4).
    pub outer_v6: bool,
    /// IPv6 inner packets (else IPv4).
    pub inner_v6: bool,
}

const fn ty(name: &'static str, profile: &'static str, kind: TunnelKind, key: Option<u32>) -> Type {
    Type {
        name,
        profile,
        kind,
        payload: None,
        key,
        outer_v6: false,
        inner_v6: false,
    }
}

/// Every type `--types` knows. The first eight are issue 3's list (the default).
pub const TYPES: [Type; 12] = [
    ty("gre", "gre", TunnelKind::Gre, Some(7)),
    ty("gre-teb", "gre-teb", TunnelKind::GreTeb, Some(7)),
    ty("nvgre", "nvgre", TunnelKind::Nvgre, Some(5000)),
    ty("vxlan", "vxlan", TunnelKind::Vxlan, Some(100)),
    ty("vxlan-gpe", "vxlan-gpe", TunnelKind::VxlanGpe, Some(100)),
    ty("geneve", "geneve", TunnelKind::Geneve, Some(100)),
    ty("ipip", "ipip", TunnelKind::Ipip, None),
    ty("etherip", "etherip", TunnelKind::Etherip, None),
    // IPv6 in IPv6 (inner and underlay IPv6; the underlay UDP-less).
    Type {
        outer_v6: true,
        inner_v6: true,
        ..ty("ip6ip6", "ip6ip6", TunnelKind::Ipip, None)
    },
    // VXLAN over an IPv6 underlay (the outer UDP checksum is computed, RFC 8200).
    Type {
        outer_v6: true,
        ..ty("vxlan6", "vxlan", TunnelKind::Vxlan, Some(100))
    },
    // VXLAN-GPE and Geneve carrying IP: routed L3 tunnels.
    Type {
        payload: Some("ip"),
        ..ty("vxlan-gpe-ip", "vxlan-gpe", TunnelKind::VxlanGpe, Some(100))
    },
    Type {
        payload: Some("ip"),
        ..ty("geneve-ip", "geneve", TunnelKind::Geneve, Some(100))
    },
];

/// `--types`' default: issue 3's eight types.
pub const DEFAULT_TYPES: &str = "gre,gre-teb,nvgre,vxlan,vxlan-gpe,geneve,ipip,etherip";

impl std::str::FromStr for Type {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TYPES.iter().find(|t| t.name == s).copied().ok_or_else(|| {
            let names: Vec<&str> = TYPES.iter().map(|t| t.name).collect();
            format!("'{s}': one of {}", names.join(", "))
        })
    }
}

impl Type {
    /// Carries Ethernet frames (cross-connected) rather than IP packets (routed).
    pub fn l2(&self) -> bool {
        self.payload.is_none()
            && matches!(
                self.kind,
                TunnelKind::GreTeb
                    | TunnelKind::Nvgre
                    | TunnelKind::Vxlan
                    | TunnelKind::VxlanGpe
                    | TunnelKind::Geneve
                    | TunnelKind::Etherip
            )
    }

    fn local(&self) -> String {
        if self.outer_v6 {
            LOCAL6.to_string()
        } else {
            LOCAL4.to_string()
        }
    }

    fn peer(&self) -> String {
        if self.outer_v6 {
            PEER6.to_string()
        } else {
            PEER4.to_string()
        }
    }

    /// The tunnel as the dataplane sees it from the side sending from `local` to `remote`
    /// (ours for the overhead, the peer's for the decap input).
    pub fn encap(&self, peer_side: bool) -> Result<TunnelEncap, String> {
        let endpoints = match (self.outer_v6, peer_side) {
            (false, false) => Endpoints::V4 {
                local: LOCAL4,
                remote: PEER4,
            },
            (false, true) => Endpoints::V4 {
                local: PEER4,
                remote: LOCAL4,
            },
            (true, false) => Endpoints::V6 {
                local: LOCAL6,
                remote: PEER6,
            },
            (true, true) => Endpoints::V6 {
                local: PEER6,
                remote: LOCAL6,
            },
        };
        let mut t = TunnelEncap::new(self.kind, endpoints);
        t.key = self.key;
        t.payload = match (self.payload, self.inner_v6) {
            (Some(_), _) => Payload::Ip,
            (None, true) if !self.l2() => Payload::Ipv6,
            (None, false) if self.kind == TunnelKind::Ipip => Payload::Ipv4,
            _ => self.kind.default_payload(),
        };
        t.validate().map_err(|e| format!("{}: {e}", self.name))?;
        Ok(t)
    }

    /// Length of the tunnel packet (Ethernet frame) carrying a plain frame of `plain` bytes.
    pub fn tunnel_frame_len(&self, plain: usize) -> usize {
        let overhead = self.encap(false).map(|t| t.overhead()).unwrap_or(0);
        // L3: the plain frame's Ethernet header is replaced by the outer one; L2: kept inside.
        plain + overhead + if self.l2() { 14 } else { 0 }
    }

    /// The plain frames of `lengths`: encap input (host A → B), or decap's inner frames
    /// (B → A).
    pub fn plain_frames(&self, lengths: &[usize], dir: Dir) -> Vec<Vec<u8>> {
        let (a, b) = match dir {
            Dir::Encap => (0, 1),
            Dir::Decap => (1, 0),
        };
        if self.inner_v6 {
            let h = [HOST6_A.octets(), HOST6_B.octets()];
            lengths
                .iter()
                .enumerate()
                .map(|(i, &l)| frames::udp6_between(l, i as u16, h[a], h[b]))
                .collect()
        } else {
            let h = [HOST_A, HOST_B];
            frames::udp4_sized(lengths, h[a], h[b])
        }
    }

    /// Decap input: each inner frame (L2) or its IP packet (L3) encapsulated by the peer with
    /// the dataplane's own code (outer IPv4 ID = the frame's index), in an Ethernet frame
    /// from the peer to us.
    pub fn decap_frames(&self, inner: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, String> {
        let t = self.encap(true)?;
        let l2 = self.l2();
        inner
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut p = HeapPacket::from_frame(if l2 { f } else { &f[14..] });
                let hash = tunnel::inner_flow_hash(p.data(), l2);
                tunnel::encap(&mut p, &t, hash, None, i as u16)
                    .map_err(|r| format!("{}: peer encap: {r:?}", self.name))?;
                let mut out = Vec::with_capacity(14 + p.len());
                out.extend_from_slice(&DUT_MAC);
                out.extend_from_slice(&PEER_MAC);
                out.extend_from_slice(if self.outer_v6 {
                    &[0x86, 0xdd]
                } else {
                    &[0x08, 0x00]
                });
                out.extend_from_slice(p.data());
                Ok(out)
            })
            .collect()
    }

    /// ferrogate's configuration for measuring `dir`: port "in" (`rx_devargs`) receives,
    /// port "out" (`tx_devargs`) transmits, one worker on lcore 1, the tunnel is "t0".
    pub fn ferrogate_config(
        &self,
        dir: Dir,
        socket: &str,
        prefix: &str,
        rx_devargs: &str,
        tx_devargs: &str,
    ) -> String {
        let under = if self.outer_v6 {
            format!("{LOCAL6}/64")
        } else {
            format!("{LOCAL4}/24")
        };
        let mut tunnel = format!(
            "[[tunnels]]\nname = \"t0\"\nprofile = \"{}\"\nlocal = \"{}\"\nremote = \"{}\"\n",
            self.profile,
            self.local(),
            self.peer()
        );
        if let Some(k) = self.key {
            tunnel += &format!("key = {k}\n");
        }
        if let Some(p) = self.payload {
            tunnel += &format!("payload = \"{p}\"\n");
        }
        let peer_neighbor = |iface: &str| {
            format!(
                "[[neighbors]]\nip = \"{}\"\nmac = \"{}\"\ninterface = \"{iface}\"\n",
                self.peer(),
                mac(PEER_MAC)
            )
        };
        let iface = |name: &str, addr: &str| {
            format!(
                "[[interfaces]]\nname = \"{name}\"\nport = \"{name}\"\naddresses = [\"{addr}\"]\n"
            )
        };
        let xconnect = |port: &str| {
            format!("[[xconnects]]\nname = \"x0\"\nport = \"{port}\"\ntunnel = \"t0\"\n")
        };
        let net = match (dir, self.l2()) {
            // Frames arriving on "in" go, whole, into the tunnel.
            (Dir::Encap, true) => {
                iface("out", &under) + &peer_neighbor("out") + &tunnel + &xconnect("in")
            }
            // Host A's packets to host B's network are routed into the tunnel.
            (Dir::Encap, false) => {
                let (inside, remote_net) = if self.inner_v6 {
                    ("fd00:a::fe/64", "fd00:b::/64")
                } else {
                    ("10.0.0.254/16", "10.1.0.0/16")
                };
                iface("in", inside)
                    + &iface("out", &under)
                    + &peer_neighbor("out")
                    + &tunnel
                    + &format!("[[routes]]\nprefix = \"{remote_net}\"\ninterface = \"t0\"\n")
            }
            // What the tunnel delivers leaves by the cross-connected port "out".
            (Dir::Decap, true) => {
                iface("in", &under) + &peer_neighbor("in") + &tunnel + &xconnect("out")
            }
            // The inner packets (host B → A) are routed to a static next hop.
            (Dir::Decap, false) => {
                let (out_addr, nh, local_net) = if self.inner_v6 {
                    ("fd00:9::1/64", "fd00:9::2", "fd00:a::/64")
                } else {
                    ("10.9.0.1/24", "10.9.0.2", "10.0.0.0/16")
                };
                iface("in", &under)
                    + &peer_neighbor("in")
                    + &iface("out", out_addr)
                    + &format!(
                        "[[neighbors]]\nip = \"{nh}\"\nmac = \"{}\"\ninterface = \"out\"\n",
                        mac(NEXTHOP_MAC)
                    )
                    + &tunnel
                    + &format!("[[routes]]\nprefix = \"{local_net}\"\nvia = \"{nh}\"\n")
            }
        };
        let system = run::system_toml(socket, prefix);
        // MTU 1600 on both ports (as in `esp`): IMIX's 1514-byte frames fit once encapsulated.
        format!(
            r#"{system}[[ports]]
name = "in"
devargs = "{rx_devargs}"
mac = "{dut}"
mtu = 1600
[[ports]]
name = "out"
devargs = "{tx_devargs}"
mtu = 1600

[[workers]]
lcore = 1
rx = ["in:0", "out:0"]

{net}"#,
            dut = mac(DUT_MAC),
        )
    }

    /// What `tunnel_check.py` needs to know about the path.
    pub fn check_json(&self, dir: Dir) -> serde_json::Value {
        serde_json::json!({
            "dir": dir.name(), "type": self.name, "profile": if self.kind == TunnelKind::Ipip {
                "ipip"
            } else {
                self.profile
            },
            "l2": self.l2(), "key": self.key, "dport": null,
            "local": self.local(), "remote": self.peer(),
            "peer_mac": mac(PEER_MAC), "nexthop_mac": mac(NEXTHOP_MAC),
        })
    }
}

/// Everything `ferrobench tunnel` is asked to do.
pub struct Opts {
    pub types: Vec<Type>,
    pub dirs: Vec<Dir>,
    pub sizes: Vec<Size>,
    pub flows: u16,
    pub warmup: f64,
    pub seconds: f64,
    /// testpmd forwarding mode to compare with (`mac`, `io`), or none.
    pub testpmd: Option<&'static str>,
    pub verify: bool,
    pub quiet_wait: Duration,
    /// Scratch directory (captures, configs, logs).
    pub dir: PathBuf,
}

/// One row of the table.
struct Fig {
    prog: String,
    ty: &'static str,
    dir: Dir,
    size: Size,
    in_len: f64,
    out_len: f64,
    rate: Rate,
    /// The testpmd rate on the same capture (ferrogate rows).
    reference: Option<Rate>,
}

const HEADER_LEFT: &str = "program       type          dir    bytes  in_B out_B";

fn print_fig(f: &Fig, hz: Option<f64>, note: &str) {
    println!(
        "{:<13} {:<13} {:<5} {:>6} {:>5.0} {:>5.0} {}  {note}",
        f.prog,
        f.ty,
        f.dir.name(),
        f.size.to_string(),
        f.in_len,
        f.out_len,
        rate_cells(&f.rate, f.in_len, hz)
    );
}

/// Issue 3's goal for the ratio to testpmd mac-fwd at a size, if it sets one.
fn goal(size: Size) -> Option<f64> {
    match size {
        Size::Bytes(64) => Some(0.8),
        Size::Bytes(1420) => Some(0.95),
        _ => None,
    }
}

/// Run the benchmark; the table goes to stdout. Fails if a check failed or ferrogate
/// dropped packets (after printing everything).
pub fn run(o: &Opts) -> Result<(), String> {
    if !(o.warmup >= 0.0 && o.seconds > 0.0) {
        return Err("--warmup must be ≥ 0 and --seconds > 0".into());
    }
    if o.flows == 0 {
        return Err("--flows must be > 0".into());
    }
    let work = o.dir.join("tunnel");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let hz = cpu_hz();
    let (w, s) = (
        Duration::from_secs_f64(o.warmup),
        Duration::from_secs_f64(o.seconds),
    );
    println!(
        "# ferrobench tunnel: one worker core (lcore 1) fed from memory (net_pcap infinite_rx) into net_null; warm-up {} s, window {} s; {} flows (inner UDP source ports); core clock {}",
        o.warmup,
        o.seconds,
        o.flows,
        report::clock(hz)
    );
    println!(
        "# load average at start: {} (1/5/15 min); {}",
        run::loadavg(),
        report::LOAD_NOTE
    );
    println!("# bytes = plain (inner) frame without FCS; in_B / out_B = frames the program reads / sends (testpmd: the same capture, forwarded as is); Gbps counts input frame bytes");
    println!("# gre and gre-teb with key 7, nvgre VSID 5000, VXLAN / VXLAN-GPE / Geneve VNI 100; outer IPv4 172.16.1.1 <-> 172.16.1.2 (IPv6 types fd00:16::1 <-> ::2); encap: L3 types routed into the tunnel, L2 types from a whole-port cross-connect; decap: inner routed to a static next hop (L3) or out of the cross-connected port (L2)");
    if o.testpmd.is_some() {
        println!("# each ferrogate row follows its own testpmd run on the same capture (the machine's speed drifts over minutes); ratios are on Mpps/core");
    }
    println!("{HEADER_LEFT} {RATE_HEADER}  note");
    let mut figs: Vec<Fig> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut written: HashSet<PathBuf> = HashSet::new();
    for t in &o.types {
        for &dir in &o.dirs {
            for &size in &o.sizes {
                let tag = format!("{} {} {size}", t.name, dir.name());
                let lengths = size.lengths(o.flows);
                let plain = t.plain_frames(&lengths, dir);
                let fam = if t.inner_v6 { 6 } else { 4 };
                let input = match dir {
                    Dir::Encap => work.join(format!("plain{fam}_{size}_{}.pcap", o.flows)),
                    Dir::Decap => work.join(format!("decap_{}_{size}_{}.pcap", t.name, o.flows)),
                };
                if written.insert(input.clone()) {
                    let frames = match dir {
                        Dir::Encap => plain.clone(),
                        Dir::Decap => t.decap_frames(&plain)?,
                    };
                    crate::pcap::try_write(&input, &frames)
                        .map_err(|e| format!("{}: {e}", input.display()))?;
                }
                let plain_mean = frames::mean_len(&plain);
                let tunnel_mean = lengths
                    .iter()
                    .map(|&l| t.tunnel_frame_len(l))
                    .sum::<usize>() as f64
                    / lengths.len().max(1) as f64;
                let (in_len, out_len) = match dir {
                    Dir::Encap => (plain_mean, tunnel_mean),
                    Dir::Decap => (tunnel_mean, plain_mean),
                };
                // The reference on the same capture, right before (the machine drifts).
                let reference = match o.testpmd {
                    None => None,
                    Some(mode) => {
                        settle(o.quiet_wait);
                        let mut tp = Box::new(Testpmd::start(&input, mode)?);
                        let r = measure(tp.as_mut(), w, s);
                        tp.stop()?;
                        let f = Fig {
                            prog: format!("testpmd-{mode}"),
                            ty: t.name,
                            dir,
                            size,
                            in_len,
                            out_len: in_len,
                            rate: r?,
                            reference: None,
                        };
                        print_fig(&f, hz, "");
                        Some(f.rate)
                    }
                };
                // The measurement.
                settle(o.quiet_wait);
                let mut fg = Box::new(Ferrogate::launch(&o.dir, |sock, prefix| {
                    t.ferrogate_config(
                        dir,
                        sock,
                        prefix,
                        &format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display()),
                        "net_null0,no-rx=1",
                    )
                })?);
                let rate = measure(fg.as_mut(), w, s);
                let drops = fg.drops();
                let drops_line = fg.drops_line();
                let worker_cpp = fg
                    .stats()
                    .ok()
                    .and_then(|v| v.get(0).map(|r| r["cycles_per_packet"].clone()));
                fg.stop()?;
                let rate = rate?;
                let f = Fig {
                    prog: "ferrogate".into(),
                    ty: t.name,
                    dir,
                    size,
                    in_len,
                    out_len,
                    rate,
                    reference,
                };
                let mut note = String::new();
                if let Some(r) = &f.reference {
                    let x = report::ratio(&rate, r);
                    note += &format!("/testpmd {x:.2}");
                    if goal(size).is_some_and(|g| x < g) {
                        note += " (below goal)";
                    }
                    note += "; ";
                }
                if let Some(c) = worker_cpp {
                    note += &format!("worker-busy c/p {c}");
                }
                print_fig(&f, hz, &note);
                println!("{:<13} {tag}: {drops_line}", "errors");
                match drops {
                    Ok(d) if d.is_empty() => {}
                    _ => failures.push(format!("drops {tag}")),
                }
                if rate.packets == 0 {
                    failures.push(format!("no packets {tag}"));
                }
                if o.verify {
                    match verify(o, &work, t, dir, size, &input) {
                        Ok(v) => println!("{:<13} {tag}: {v}", "verify"),
                        Err(e) => {
                            println!("{:<13} {tag}: {e}", "verify");
                            failures.push(format!("verify {tag}"));
                        }
                    }
                }
                figs.push(f);
            }
        }
    }
    summary(&figs, o);
    println!("# load average at end: {}", run::loadavg());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("failed: {}", failures.join(", ")))
    }
}

/// The figures again, one line per type and direction: ferrogate's Mpps/core per size and
/// its ratio to testpmd.
fn summary(figs: &[Fig], o: &Opts) {
    println!(
        "# summary: ferrogate Mpps/core by size (ratio to testpmd-{} on the same capture, per-core rates; issue 3's goal: ≥ 0.80 at 64 B, ≥ 0.95 at 1420 B, '!' = below it)",
        o.testpmd.unwrap_or("-")
    );
    let sizes: Vec<String> = o
        .sizes
        .iter()
        .map(|s| format!("{:>16}", s.to_string()))
        .collect();
    println!("{:<13} {:<5} {}", "type", "dir", sizes.join(""));
    for t in &o.types {
        for &dir in &o.dirs {
            let cells: Vec<String> = o
                .sizes
                .iter()
                .map(|&s| {
                    let Some(f) = figs
                        .iter()
                        .find(|f| f.ty == t.name && f.dir == dir && f.size == s)
                    else {
                        return format!("{:>16}", "-");
                    };
                    let r = match &f.reference {
                        Some(b) => {
                            let x = report::ratio(&f.rate, b);
                            let miss = if goal(s).is_some_and(|g| x < g) {
                                "!"
                            } else {
                                " "
                            };
                            format!(" ({x:.2}{miss})")
                        }
                        None => String::new(),
                    };
                    format!("{:>16}", format!("{:.2}{r}", f.rate.mpps_per_core()))
                })
                .collect();
            println!("{:<13} {:<5} {}", t.name, dir.name(), cells.join(""));
        }
    }
}

/// One pass of the capture through ferrogate into a tx_pcap, then the Scapy check.
fn verify(
    o: &Opts,
    work: &Path,
    t: &Type,
    dir: Dir,
    size: Size,
    input: &Path,
) -> Result<String, String> {
    let n = crate::pcap::read(input).len() as u64;
    let out = work.join(format!("check_{}_{}_{size}.pcap", t.name, dir.name()));
    let _ = std::fs::remove_file(&out);
    let fg = Box::new(Ferrogate::launch(&o.dir, |sock, prefix| {
        t.ferrogate_config(
            dir,
            sock,
            prefix,
            &format!("net_pcap0,rx_pcap={}", input.display()),
            &format!("net_pcap1,tx_pcap={}", out.display()),
        )
    })?);
    let sent = wait_count(|| fg.port_counter("out", "opackets"), n);
    let drops = fg.drops();
    let drops_line = fg.drops_line();
    fg.stop()?;
    let sent = sent?;
    let v = check(work, t, dir, input, &out)?;
    let line = format!("{v}; {sent}/{n} sent; errors: {drops_line}");
    match drops {
        Ok(d) if d.is_empty() => Ok(line),
        _ => Err(format!("FAILED (drops) {line}")),
    }
}

/// Run `tunnel_check.py` on a one-pass capture; its one-line verdict.
fn check(work: &Path, t: &Type, dir: Dir, input: &Path, output: &Path) -> Result<String, String> {
    let v = run::scapy_check(
        work,
        ("tunnel_check.py", TUNNEL_CHECK),
        (
            &format!("check_{}_{}.json", t.name, dir.name()),
            &t.check_json(dir),
        ),
        &[],
        input,
        output,
    )?;
    let (ok, n) = v.passed_counts()?;
    let what = match dir {
        Dir::Encap => {
            "Scapy checked the outer headers of every tunnel packet sent; inner = the input"
        }
        Dir::Decap => "Scapy unwrapped the input; every frame sent is one of its inner frames",
    };
    let entropy: Vec<String> = v.report["entropy"]
        .as_object()
        .map(|m| m.iter().map(|(k, n)| format!("{n} {k}s")).collect())
        .unwrap_or_default();
    let entropy = if entropy.is_empty() {
        "no entropy field".to_string()
    } else {
        format!("distinct outer {}", entropy.join(", "))
    };
    Ok(format!(
        "ok {ok}/{n} ({what}; {entropy}; {} other frames)",
        v.report["other"]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_validates_and_decap_input_has_the_computed_length() {
        for t in TYPES {
            assert_eq!(t.name.parse::<Type>().unwrap(), t);
            for len in [64, 512, 1420] {
                let inner = t.plain_frames(&[len, len], Dir::Decap);
                let outer = t.decap_frames(&inner).unwrap();
                assert_eq!(outer[0].len(), t.tunnel_frame_len(len), "{}", t.name);
                // What the peer sends parses as a packet for our end of the tunnel.
                let info = tunnel::decap_parse(&outer[0][14..], &Default::default()).unwrap();
                let wire = match t.kind {
                    TunnelKind::Nvgre => TunnelKind::GreTeb,
                    k => k,
                };
                assert_eq!(info.kind, wire, "{}", t.name);
            }
        }
        assert!("gre6".parse::<Type>().is_err());
        for name in DEFAULT_TYPES.split(',') {
            assert!(name.parse::<Type>().is_ok());
        }
    }

    #[test]
    fn configs_are_accepted_by_the_daemons_validation() {
        use control::config::RawConfig;
        use control::state::State;
        for t in TYPES {
            for dir in [Dir::Encap, Dir::Decap] {
                let c = t.ferrogate_config(dir, "/tmp/s", "p", "net_pcap0,rx_pcap=x", "net_null0");
                RawConfig::parse(&c)
                    .and_then(|r| State::from_config(&r))
                    .unwrap_or_else(|e| panic!("{} {}: {e}\n{c}", t.name, dir.name()));
            }
        }
    }
}
