//! ferroctl: the management CLI of ferrogate. Talks JSON to the daemon's Unix socket; prints
//! aligned tables, or the raw JSON with `--json`.

use clap::{Args, Parser, Subcommand};
use control::api::client;
use control::api::proto::Request;
use control::config::{RawLifetime, RawPolicy, RawRoute, RawSa, RawVti};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "ferroctl", version, about = "Manage a running ferrogate")]
struct Cli {
    /// Management socket of the daemon.
    #[arg(
        long,
        global = true,
        env = "FERROGATE_SOCKET",
        default_value = "/run/ferrogate/ferrogate.sock"
    )]
    socket: String,
    /// Print the daemon's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show state and counters.
    Show {
        #[command(subcommand)]
        what: Show,
    },
    /// Add or delete static routes.
    Route {
        #[command(subcommand)]
        op: RouteOp,
    },
    /// Add or delete manually keyed SAs.
    Sa {
        #[command(subcommand)]
        op: SaOp,
    },
    /// Add or delete security policies.
    Policy {
        #[command(subcommand)]
        op: PolicyOp,
    },
    /// Add or delete route-based IPsec interfaces (VTIs).
    Vti {
        #[command(subcommand)]
        op: VtiOp,
    },
    /// Reset state.
    Clear {
        #[command(subcommand)]
        what: Clear,
    },
    /// Add, delete or show overlay tunnels.
    Tunnel {
        #[command(subcommand)]
        op: control::cli::TunnelOp,
    },
    /// Cross-connect a port or VLAN to an L2 tunnel.
    Xconnect {
        #[command(subcommand)]
        op: control::cli::XconnectOp,
    },
    /// Check that the daemon answers.
    Ping,
}

#[derive(Subcommand)]
enum SaOp {
    /// Add an SA (keys as hex of the exact length; AEAD keys include the 4-byte salt).
    /// With --policy or --vti it is attached in the same step: a rekey is `sa add NEW
    /// --policy P` on both ends (inbound first), then `sa del OLD` (an old inbound SA stays
    /// for ipsec.rekey_grace_secs).
    Add(Box<SaAdd>),
    /// Delete an SA and detach it from its policy or VTI (refused for the only outbound SA of
    /// a policy or a VTI's outbound SA: attach the successor first).
    Del { name: String },
}

#[derive(Subcommand)]
enum VtiOp {
    /// Add a VTI: `vti add vti0 --sa-out OUT --sa-in IN [--address 172.16.0.5/30] [--mtu N]`;
    /// then `route add PREFIX dev vti0` sends traffic through it.
    Add(VtiAdd),
    /// Delete a VTI (refused while a route points into it).
    Del { name: String },
}

#[derive(Args)]
struct VtiAdd {
    name: String,
    #[arg(long)]
    sa_out: String,
    /// Inbound SAs (repeat).
    #[arg(long)]
    sa_in: Vec<String>,
    /// Interface address (repeat).
    #[arg(long)]
    address: Vec<String>,
    #[arg(long)]
    mtu: Option<u16>,
}

#[derive(Subcommand)]
enum Clear {
    /// IPsec state.
    Ipsec {
        #[command(subcommand)]
        what: ClearIpsec,
    },
}

#[derive(Subcommand)]
enum ClearIpsec {
    /// Reinstall SAs from their configuration (sequence numbers, replay window, counters and
    /// lifetimes start again); give exactly one selector. Clear both ends of a manual SA.
    Sa {
        #[arg(long, value_parser = parse_spi32)]
        spi: Option<u32>,
        #[arg(long)]
        peer: Option<String>,
        /// A policy or VTI: the SAs it uses.
        #[arg(long)]
        policy: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Args)]
struct SaAdd {
    name: String,
    #[arg(long, value_parser = parse_spi)]
    spi: u64,
    /// in | out
    #[arg(long)]
    direction: String,
    /// tunnel (default) | transport
    #[arg(long)]
    mode: Option<String>,
    /// Tunnel source (for out: ours; for in: the peer's).
    #[arg(long)]
    src: Option<String>,
    /// Tunnel destination.
    #[arg(long)]
    dst: Option<String>,
    /// aes-gcm-128|192|256, aes-gmac-…, chacha20-poly1305, aes-cbc-128|256, null
    #[arg(long)]
    encryption: String,
    /// hmac-sha1-96 | hmac-sha256-128 | hmac-sha384-192 | hmac-sha512-256 (CBC and NULL only)
    #[arg(long)]
    integrity: Option<String>,
    #[arg(long)]
    key: String,
    #[arg(long)]
    integrity_key: Option<String>,
    #[arg(long)]
    replay_window: Option<u32>,
    #[arg(long)]
    esn: bool,
    /// UDP-encapsulate (NAT-T, port 4500).
    #[arg(long)]
    natt: bool,
    /// Attach to this protect policy (outbound: becomes the SA in use; inbound: admitted).
    #[arg(long)]
    policy: Option<String>,
    /// Attach to this VTI (outbound: replaces its outbound SA; inbound: admitted).
    #[arg(long)]
    vti: Option<String>,
    /// Lifetimes (0 or absent: unlimited).
    #[arg(long, default_value_t = 0)]
    soft_seconds: u64,
    #[arg(long, default_value_t = 0)]
    hard_seconds: u64,
    #[arg(long, default_value_t = 0)]
    soft_bytes: u64,
    #[arg(long, default_value_t = 0)]
    hard_bytes: u64,
    #[arg(long, default_value_t = 0)]
    soft_packets: u64,
    #[arg(long, default_value_t = 0)]
    hard_packets: u64,
}

#[derive(Subcommand)]
enum PolicyOp {
    Add(Box<PolicyAdd>),
    Del { name: String },
}

#[derive(Args)]
struct PolicyAdd {
    name: String,
    /// Lowest wins.
    #[arg(long)]
    priority: u32,
    /// out | in | both
    #[arg(long, default_value = "both")]
    direction: String,
    #[arg(long)]
    src: Option<String>,
    #[arg(long)]
    dst: Option<String>,
    #[arg(long)]
    protocol: Option<String>,
    #[arg(long)]
    src_ports: Option<String>,
    #[arg(long)]
    dst_ports: Option<String>,
    /// protect | bypass | discard
    #[arg(long)]
    action: String,
    /// Outbound SA (repeat for a rekey: the newest installed is used).
    #[arg(long)]
    sa: Vec<String>,
    /// Inbound SAs admitted.
    #[arg(long)]
    sa_in: Vec<String>,
    #[arg(long)]
    interface: Option<String>,
}

/// SPIs in decimal or 0x-hex (the daemon checks the range of an SA's SPI and names it).
fn parse_spi(s: &str) -> Result<u64, String> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).map_err(|e| format!("'{s}': {e}")),
        None => s.parse().map_err(|e| format!("'{s}': {e}")),
    }
}

/// An SPI to look for: must fit 32 bits.
fn parse_spi32(s: &str) -> Result<u32, String> {
    let v = parse_spi(s)?;
    u32::try_from(v).map_err(|_| format!("'{s}': an SPI is at most 4294967295 (0xffffffff)"))
}

#[derive(Subcommand)]
enum IpsecShow {
    /// SAs: SPI (hex and decimal), direction, mode, peer, algorithm, state, counters,
    /// owning worker; --detail adds times, lifetimes, replay window, NAT-T, users.
    Sa {
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_parser = parse_spi32)]
        spi: Option<u32>,
        #[arg(long)]
        peer: Option<String>,
        /// A policy or VTI name, or an address / prefix the SA's selectors cover.
        #[arg(long)]
        selector: Option<String>,
        #[arg(long)]
        detail: bool,
    },
    /// Security policies in priority order.
    Policies,
    /// Packets and bytes per policy (protected in/out, bypassed, discarded), per VTI, for the
    /// default action, and per mode.
    Stats,
}

#[derive(Subcommand)]
enum Show {
    /// DPDK ports: link, queues and NIC counters.
    Ports,
    /// L3 interfaces and their addresses.
    Interfaces,
    /// The routing table.
    Routes,
    /// Resolved and pending neighbors (ARP / ND).
    Neighbors,
    /// Per-worker packets, drops, bursts and cycles per packet.
    Stats,
    /// Drop counters by reason.
    Errors,
    /// The packet buffer pool (size, available, in use).
    Pool,
    /// IPsec SAs and policies.
    Ipsec {
        #[command(subcommand)]
        what: IpsecShow,
    },
    /// Tunnels and their counters (one in detail, with drops by reason, when named).
    Tunnels { name: Option<String> },
    /// L2 cross-connects.
    Xconnects,
}

#[derive(Subcommand)]
enum RouteOp {
    /// Add a route: `route add 10.0.0.0/8 via 192.0.2.1 [dev IFACE]`, `... dev IFACE`, `... blackhole`.
    Add(RouteAdd),
    /// Delete the route for exactly this prefix.
    Del { prefix: String },
}

#[derive(Args)]
struct RouteAdd {
    prefix: String,
    /// Gateway address.
    #[arg(long, alias = "gw")]
    via: Option<String>,
    /// Egress interface.
    #[arg(long, alias = "interface")]
    dev: Option<String>,
    /// Drop traffic to the prefix.
    #[arg(long)]
    blackhole: bool,
}

/// Accept the router-style positional form (`via X dev Y blackhole`) as well as flags.
fn normalise(args: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let in_route_add = args.windows(2).any(|w| w[0] == "route" && w[1] == "add");
    for a in args {
        if in_route_add && matches!(a.as_str(), "via" | "gw" | "dev" | "interface" | "blackhole") {
            out.push(format!("--{a}"));
        } else {
            out.push(a);
        }
    }
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(normalise(std::env::args().collect()));
    let req = match cli.cmd {
        Cmd::Ping => Request::Ping,
        Cmd::Show { what } => match what {
            Show::Ports => Request::ShowPorts,
            Show::Interfaces => Request::ShowInterfaces,
            Show::Routes => Request::ShowRoutes,
            Show::Neighbors => Request::ShowNeighbors,
            Show::Stats => Request::ShowStats,
            Show::Errors => Request::ShowErrors,
            Show::Pool => Request::ShowPool,
            Show::Tunnels { name } => Request::ShowTunnels { name },
            Show::Xconnects => Request::ShowXconnects,
            Show::Ipsec {
                what:
                    IpsecShow::Sa {
                        name,
                        spi,
                        peer,
                        selector,
                        detail,
                    },
            } => Request::ShowIpsecSa {
                name,
                spi,
                peer,
                selector,
                detail,
            },
            Show::Ipsec {
                what: IpsecShow::Stats,
            } => Request::ShowIpsecStats,
            Show::Ipsec {
                what: IpsecShow::Policies,
            } => Request::ShowIpsecPolicies,
        },
        Cmd::Tunnel { op } => op.request(),
        Cmd::Xconnect { op } => op.request(),
        Cmd::Route { op } => match op {
            RouteOp::Add(a) => Request::RouteAdd {
                route: RawRoute {
                    prefix: a.prefix,
                    via: a.via,
                    interface: a.dev,
                    blackhole: a.blackhole,
                },
            },
            RouteOp::Del { prefix } => Request::RouteDel { prefix },
        },
        Cmd::Sa {
            op: SaOp::Del { name },
        } => Request::SaDel { name },
        Cmd::Sa { op: SaOp::Add(a) } => {
            let a = *a;
            Request::SaAdd {
                sa: RawSa {
                    name: a.name,
                    spi: a.spi,
                    direction: a.direction,
                    mode: a.mode,
                    src: a.src,
                    dst: a.dst,
                    encryption: a.encryption,
                    integrity: a.integrity,
                    key: a.key,
                    integrity_key: a.integrity_key,
                    replay_window: a.replay_window,
                    esn: a.esn,
                    natt: a.natt,
                    lifetime: RawLifetime {
                        soft_seconds: a.soft_seconds,
                        hard_seconds: a.hard_seconds,
                        soft_bytes: a.soft_bytes,
                        hard_bytes: a.hard_bytes,
                        soft_packets: a.soft_packets,
                        hard_packets: a.hard_packets,
                    },
                    ..RawSa::default()
                },
                policy: a.policy,
                vti: a.vti,
            }
        }
        Cmd::Vti { op: VtiOp::Add(v) } => Request::VtiAdd {
            vti: RawVti {
                name: v.name,
                sa_out: v.sa_out,
                sa_in: v.sa_in,
                addresses: v.address,
                mtu: v.mtu,
            },
        },
        Cmd::Vti {
            op: VtiOp::Del { name },
        } => Request::VtiDel { name },
        Cmd::Clear {
            what:
                Clear::Ipsec {
                    what:
                        ClearIpsec::Sa {
                            spi,
                            peer,
                            policy,
                            all,
                        },
                },
        } => Request::ClearIpsecSa {
            spi,
            peer,
            policy,
            all,
        },
        Cmd::Policy {
            op: PolicyOp::Del { name },
        } => Request::PolicyDel { name },
        Cmd::Policy {
            op: PolicyOp::Add(a),
        } => Request::PolicyAdd {
            policy: RawPolicy {
                name: a.name,
                priority: a.priority,
                direction: a.direction,
                src: a.src,
                dst: a.dst,
                protocol: a.protocol,
                src_ports: a.src_ports,
                dst_ports: a.dst_ports,
                action: a.action,
                sa: a.sa,
                sa_in: a.sa_in,
                interface: a.interface,
                ..RawPolicy::default()
            },
        },
    };
    match client::call(&cli.socket, &req) {
        Err(e) => {
            eprintln!("ferroctl: {e}");
            ExitCode::from(2)
        }
        Ok(r) if !r.ok => {
            eprintln!(
                "ferroctl: {}",
                r.error.unwrap_or_else(|| "request refused".into())
            );
            ExitCode::from(1)
        }
        Ok(r) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&r.data).unwrap_or_default()
                );
            } else {
                print!("{}", control::render::render(&r.data));
            }
            ExitCode::SUCCESS
        }
    }
}
