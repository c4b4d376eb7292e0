//! ferroctl: the management CLI of ferrogate. Talks JSON to the daemon's Unix socket; prints
//! aligned tables, or the raw JSON with `--json`.

use clap::{Args, Parser, Subcommand};
use control::api::client;
use control::api::proto::Request;
use control::config::RawRoute;
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
    /// Check that the daemon answers.
    Ping,
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
        },
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
