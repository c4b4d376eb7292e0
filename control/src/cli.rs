//! `ferroctl` arguments for tunnels and cross-connects, and their requests (kept here so the
//! CLI binary only routes subcommands).

use crate::api::proto::Request;
use crate::config::{RawTunnel, RawXconnect};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum TunnelOp {
    /// Add a tunnel: `tunnel add NAME --profile vxlan --local A --remote B --key 100 ...`.
    Add(Box<TunnelAdd>),
    /// Delete a tunnel (refused while a route or cross-connect uses it).
    Del { name: String },
    /// Show one tunnel in detail, or all.
    Show { name: Option<String> },
}

#[derive(Args)]
pub struct TunnelAdd {
    pub name: String,
    /// gre | gre-teb | nvgre | vxlan | vxlan-gpe | geneve | etherip | ipip | ip4ip4 | ip4ip6 |
    /// ip6ip4 | ip6ip6
    #[arg(long)]
    pub profile: String,
    /// Our endpoint address (one of our interface addresses).
    #[arg(long)]
    pub local: String,
    /// The peer's address, or `any` (gre and IP-in-IP, inbound only).
    #[arg(long)]
    pub remote: String,
    /// GRE key, VNI or VSID.
    #[arg(long)]
    pub key: Option<u32>,
    /// UDP destination port (vxlan 4789, vxlan-gpe 4790, geneve 6081 by default).
    #[arg(long)]
    pub port: Option<u16>,
    #[arg(long)]
    pub ttl: Option<u8>,
    /// `preserve` or 0..=255.
    #[arg(long)]
    pub tos: Option<String>,
    /// propagate | set | clear
    #[arg(long)]
    pub df: Option<String>,
    /// Inner IP MTU; 0 = auto.
    #[arg(long)]
    pub mtu: Option<u16>,
    /// bidirectional | inbound
    #[arg(long)]
    pub mode: Option<String>,
    /// ethernet | ip | ipv4 | ipv6 (vxlan-gpe and geneve: L2 or L3; gre: one IP family).
    #[arg(long)]
    pub payload: Option<String>,
    /// Address of the tunnel interface (repeatable; tunnels that carry IP).
    #[arg(long = "address")]
    pub addresses: Vec<String>,
    #[arg(long)]
    pub gre_checksum: bool,
    #[arg(long)]
    pub gre_sequence: bool,
    /// Geneve options to send (hex of whole TLVs).
    #[arg(long)]
    pub geneve_options: Option<String>,
    /// Geneve option understood on receive, `class:type` (repeatable).
    #[arg(long = "geneve-known-option")]
    pub geneve_known_options: Vec<String>,
    /// Zero UDP checksum over IPv6 (RFC 6935), both directions.
    #[arg(long)]
    pub udp6_zero_checksum: bool,
}

#[derive(Subcommand)]
pub enum XconnectOp {
    /// Cross-connect a port, or one VLAN of it, to an L2 tunnel.
    Add {
        name: String,
        #[arg(long)]
        port: String,
        /// Only frames with this tag (removed into the tunnel, restored out of it); without
        /// it, every frame of the port.
        #[arg(long)]
        vlan: Option<u16>,
        #[arg(long)]
        tunnel: String,
    },
    Del {
        name: String,
    },
}

impl TunnelOp {
    pub fn request(self) -> Request {
        match self {
            TunnelOp::Del { name } => Request::TunnelDel { name },
            TunnelOp::Show { name } => Request::ShowTunnels { name },
            TunnelOp::Add(a) => {
                let a = *a;
                let tos = a.tos.map(|t| match t.parse::<i64>() {
                    Ok(n) => toml::Value::Integer(n),
                    Err(_) => toml::Value::String(t),
                });
                Request::TunnelAdd {
                    tunnel: RawTunnel {
                        name: a.name,
                        profile: a.profile,
                        local: a.local,
                        remote: a.remote,
                        key: a.key,
                        port: a.port,
                        ttl: a.ttl,
                        tos,
                        df: a.df,
                        mtu: a.mtu,
                        mode: a.mode,
                        addresses: a.addresses,
                        gre_checksum: a.gre_checksum,
                        gre_sequence: a.gre_sequence,
                        payload: a.payload,
                        geneve_options: a.geneve_options,
                        geneve_known_options: a.geneve_known_options,
                        udp6_zero_checksum: a.udp6_zero_checksum,
                    },
                }
            }
        }
    }
}

impl XconnectOp {
    pub fn request(self) -> Request {
        match self {
            XconnectOp::Del { name } => Request::XconnectDel { name },
            XconnectOp::Add {
                name,
                port,
                vlan,
                tunnel,
            } => Request::XconnectAdd {
                xconnect: RawXconnect {
                    name,
                    port,
                    vlan,
                    tunnel,
                },
            },
        }
    }
}
