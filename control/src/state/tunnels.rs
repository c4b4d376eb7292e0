//! Overlay tunnels and L2 cross-connects in the object model: validation of `[[tunnels]]` and
//! `[[xconnects]]` (and of `ferroctl tunnel add` / `xconnect add`, which send the same raw
//! objects), every refusal naming the field and the bad value.
//!
//! Profiles follow F5's names: `gre`, `gre-teb`, `nvgre`, `vxlan`, `vxlan-gpe`, `geneve`,
//! `etherip` and the IP-in-IP family `ipXipY` = IPvX inside IPvY (`ipip` is `ip4ip4`, as on
//! F5). Tunnels that carry IP are routed interfaces (addresses, routes into them); tunnels
//! that carry Ethernet are L2 ports, connected (until bridging exists) to a port or a VLAN by
//! a cross-connect.

use crate::config::{RawTunnel, RawXconnect};
use crate::parse::{self, IfAddr};
use dataplane::outer::{OuterPolicy, TosPolicy};
use dataplane::tables::ipsec::{Action, Dir, FlowKey, Policy};
use dataplane::tunnel::{Endpoints, Payload, TunnelEncap, TunnelKind};
use dataplane::wire::geneve::GeneveOptionBuf;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Largest tunnel MTU (F5: 0–65515; our buffers hold 9600-byte frames).
pub const MAX_TUNNEL_MTU: u16 = 9600;

/// One validated tunnel.
#[derive(Clone, Debug, PartialEq)]
pub struct Tunnel {
    pub name: String,
    pub encap: TunnelEncap,
    /// Receives from any remote (GRE and IPIP); then `encap.endpoints`' remote is a
    /// placeholder (the local address) and the tunnel is inbound-only.
    pub remote_any: bool,
    pub inbound_only: bool,
    /// Inner IP MTU; 0 = auto (underlay MTU minus overhead).
    pub mtu: u16,
    /// Addresses of the tunnel interface (tunnels that carry IP).
    pub addrs: Vec<IfAddr>,
    /// Geneve options understood on receive.
    pub geneve_known: Vec<(u16, u8)>,
    /// As written (for `show tunnels` and the running config).
    pub raw: RawTunnel,
}

impl Tunnel {
    /// Carries IP packets: a routed interface (else an L2 port).
    pub fn is_l3(&self) -> bool {
        self.encap.carries() != Payload::Ethernet
    }
}

/// One validated cross-connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Xconnect {
    pub name: String,
    pub port: usize,
    /// `None`: the whole port.
    pub vlan: Option<u16>,
    pub tunnel: String,
}

fn parse_ip(what: &str, s: &str) -> Result<IpAddr, String> {
    parse::ip(s).map_err(|e| format!("{what}: {e}"))
}

/// (kind, payload, outer family: Some(v6) when the profile fixes it).
fn profile(s: &str) -> Option<(TunnelKind, Payload, Option<bool>)> {
    Some(match s {
        "gre" => (TunnelKind::Gre, Payload::Ip, None),
        "gre-teb" => (TunnelKind::GreTeb, Payload::Ethernet, None),
        "nvgre" => (TunnelKind::Nvgre, Payload::Ethernet, None),
        "vxlan" => (TunnelKind::Vxlan, Payload::Ethernet, None),
        "vxlan-gpe" => (TunnelKind::VxlanGpe, Payload::Ethernet, None),
        "geneve" => (TunnelKind::Geneve, Payload::Ethernet, None),
        "etherip" => (TunnelKind::Etherip, Payload::Ethernet, None),
        "ipip" | "ip4ip4" => (TunnelKind::Ipip, Payload::Ipv4, Some(false)),
        "ip4ip6" => (TunnelKind::Ipip, Payload::Ipv4, Some(true)),
        "ip6ip4" => (TunnelKind::Ipip, Payload::Ipv6, Some(false)),
        "ip6ip6" => (TunnelKind::Ipip, Payload::Ipv6, Some(true)),
        _ => return None,
    })
}

/// The profiles, for messages.
pub const PROFILES: &str =
    "gre, gre-teb, nvgre, vxlan, vxlan-gpe, geneve, etherip, ipip, ip4ip4, ip4ip6, ip6ip4, ip6ip6";

/// Parse a Geneve option id `"0x0102:0x80"` (class:type).
fn geneve_id(s: &str) -> Result<(u16, u8), String> {
    let num = |t: &str| {
        let t = t.trim();
        match t.strip_prefix("0x") {
            Some(h) => u32::from_str_radix(h, 16).ok(),
            None => t.parse().ok(),
        }
    };
    let (c, t) = s
        .split_once(':')
        .ok_or_else(|| format!("'{s}': expected class:type, e.g. 0x0102:0x80"))?;
    match (num(c), num(t)) {
        (Some(c), Some(t)) if c <= 0xffff && t <= 0xff => Ok((c as u16, t as u8)),
        _ => Err(format!("'{s}': class must be 0..=0xffff and type 0..=0xff")),
    }
}

/// Validate a raw tunnel. `at` names it in messages (`tunnels[2]` or `tunnel 'gre1'`).
pub fn tunnel_from_raw(at: &str, r: &RawTunnel) -> Result<Tunnel, String> {
    let f = |field: &str| format!("{at}.{field}");
    super::valid_name(&f("name"), &r.name)?;
    let (kind, mut payload, family) = profile(&r.profile).ok_or_else(|| {
        format!(
            "{}: '{}': must be one of {PROFILES}",
            f("profile"),
            r.profile
        )
    })?;
    let local = parse_ip(&f("local"), &r.local)?;
    let remote_any = r.remote.trim() == "any";
    let remote = if remote_any {
        if !matches!(kind, TunnelKind::Gre | TunnelKind::Ipip) {
            return Err(format!(
                "{}: 'any' is only for gre and the IP-in-IP profiles ({} needs the peer's address)",
                f("remote"),
                r.profile
            ));
        }
        local
    } else {
        parse_ip(&f("remote"), &r.remote)?
    };
    if local.is_ipv6() != remote.is_ipv6() {
        return Err(format!(
            "{}: {remote} is not of the family of local {local}",
            f("remote")
        ));
    }
    if let Some(v6) = family {
        if local.is_ipv6() != v6 {
            return Err(format!(
                "{}: {local}: profile {} runs over IPv{}",
                f("local"),
                r.profile,
                if v6 { 6 } else { 4 }
            ));
        }
    }
    if let Some(p) = &r.payload {
        let want = match p.as_str() {
            "ethernet" => Payload::Ethernet,
            "ip" => Payload::Ip,
            "ipv4" => Payload::Ipv4,
            "ipv6" => Payload::Ipv6,
            _ => {
                return Err(format!(
                    "{}: '{p}': must be ethernet, ip, ipv4 or ipv6",
                    f("payload")
                ))
            }
        };
        match kind {
            TunnelKind::VxlanGpe | TunnelKind::Geneve => payload = want,
            TunnelKind::Gre if want != Payload::Ethernet => payload = want,
            _ if want == payload => {}
            _ => {
                return Err(format!(
                    "{}: '{p}': profile {} carries {} only",
                    f("payload"),
                    r.profile,
                    match payload {
                        Payload::Ethernet => "ethernet",
                        Payload::Ipv4 => "ipv4",
                        Payload::Ipv6 => "ipv6",
                        Payload::Ip => "ip",
                    }
                ))
            }
        }
    }
    let endpoints = match (local, remote) {
        (IpAddr::V4(l), IpAddr::V4(r)) => Endpoints::V4 {
            local: l,
            remote: r,
        },
        (IpAddr::V6(l), IpAddr::V6(r)) => Endpoints::V6 {
            local: l,
            remote: r,
        },
        _ => unreachable!("families checked above"),
    };
    let mut t = TunnelEncap::new(kind, endpoints);
    t.payload = payload;
    t.key = r.key;
    if let Some(p) = r.port {
        if !kind.is_udp() {
            return Err(format!(
                "{}: {} is not carried in UDP",
                f("port"),
                r.profile
            ));
        }
        if p == 0 {
            return Err(format!("{}: 0 is not a UDP port", f("port")));
        }
        t.dst_port = p;
    }
    let mut outer = OuterPolicy::default();
    if let Some(ttl) = r.ttl {
        if ttl == 0 {
            return Err(format!("{}: 0: must be 1..=255", f("ttl")));
        }
        outer.ttl = ttl;
    }
    outer.tos = match &r.tos {
        None => TosPolicy::Preserve,
        Some(toml::Value::String(s)) if s == "preserve" => TosPolicy::Preserve,
        Some(toml::Value::Integer(n)) if (0..=255).contains(n) => TosPolicy::Fixed(*n as u8),
        Some(v) => {
            return Err(format!(
                "{}: {v}: must be \"preserve\" or 0..=255",
                f("tos")
            ))
        }
    };
    outer.df = parse::df_policy(r.df.as_deref()).map_err(|e| format!("{}: {e}", f("df")))?;
    t.outer = outer;
    t.gre_checksum = r.gre_checksum;
    t.gre_sequence = r.gre_sequence;
    t.udp6_zero_checksum = r.udp6_zero_checksum;
    if r.udp6_zero_checksum && !(kind.is_udp() && local.is_ipv6()) {
        return Err(format!(
            "{}: only for UDP tunnels over IPv6",
            f("udp6_zero_checksum")
        ));
    }
    if let Some(h) = &r.geneve_options {
        if kind != TunnelKind::Geneve {
            return Err(format!("{}: only for geneve", f("geneve_options")));
        }
        let b = parse::hex(h).map_err(|e| format!("{}: {e}", f("geneve_options")))?;
        t.geneve_options = GeneveOptionBuf::new(&b).map_err(|_| {
            format!(
                "{}: not a list of whole option TLVs (4-byte header, length in 4-byte words, \
                 at most 252 bytes)",
                f("geneve_options")
            )
        })?;
    }
    let mut geneve_known = Vec::new();
    for (k, s) in r.geneve_known_options.iter().enumerate() {
        if kind != TunnelKind::Geneve {
            return Err(format!("{}: only for geneve", f("geneve_known_options")));
        }
        geneve_known
            .push(geneve_id(s).map_err(|e| format!("{}[{k}]: {e}", f("geneve_known_options")))?);
    }
    // Key, ports, addresses and combinations, by the dataplane's own rules.
    let check = if remote_any {
        // The placeholder remote is our own address: check as if it were a peer's.
        let mut c = t;
        c.endpoints = match endpoints {
            Endpoints::V4 { local, .. } => Endpoints::V4 {
                local,
                remote: Ipv4Addr::new(192, 0, 2, 1),
            },
            Endpoints::V6 { local, .. } => Endpoints::V6 {
                local,
                remote: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            },
        };
        c
    } else {
        t
    };
    check
        .validate_field()
        .map_err(|(field, e)| format!("{}: {e}", f(field)))?;
    if !remote_any && (remote.is_multicast() || local == remote) {
        return Err(format!(
            "{}: {remote}: needs a unicast peer address other than local (multicast \
             flooding arrives with bridging)",
            f("remote")
        ));
    }
    let inbound_only = match r.mode.as_deref().unwrap_or("bidirectional") {
        "bidirectional" if remote_any => {
            return Err(format!(
                "{}: a tunnel with remote any cannot send: use mode = \"inbound\"",
                f("mode")
            ))
        }
        "bidirectional" => false,
        "inbound" => true,
        m => {
            return Err(format!(
                "{}: '{m}': must be bidirectional or inbound",
                f("mode")
            ))
        }
    };
    let mtu = r.mtu.unwrap_or(0);
    let min = if t.carries().accepts(dataplane::tunnel::PayloadType::Ipv6) {
        1280
    } else {
        576
    };
    if mtu != 0 && !(min..=MAX_TUNNEL_MTU).contains(&mtu) {
        return Err(format!(
            "{}: {mtu} is outside {min}..={MAX_TUNNEL_MTU} (0 = auto)",
            f("mtu")
        ));
    }
    let mut addrs = Vec::new();
    for (k, a) in r.addresses.iter().enumerate() {
        if t.carries() == Payload::Ethernet {
            return Err(format!(
                "{}: profile {} is an L2 tunnel (connect it with an xconnect); addresses are \
                 for tunnels that carry IP",
                f("addresses"),
                r.profile
            ));
        }
        let ia = IfAddr::parse(a).map_err(|e| format!("{}[{k}]: {e}", f("addresses")))?;
        if !t.carries().accepts(if ia.addr.is_ipv6() {
            dataplane::tunnel::PayloadType::Ipv6
        } else {
            dataplane::tunnel::PayloadType::Ipv4
        }) {
            return Err(format!(
                "{}[{k}]: {a}: the tunnel does not carry IPv{}",
                f("addresses"),
                if ia.addr.is_ipv6() { 6 } else { 4 }
            ));
        }
        addrs.push(ia);
    }
    if addrs.len() > super::MAX_IF_ADDRS {
        return Err(format!(
            "{}: at most {} addresses",
            f("addresses"),
            super::MAX_IF_ADDRS
        ));
    }
    Ok(Tunnel {
        name: r.name.clone(),
        encap: t,
        remote_any,
        inbound_only,
        mtu,
        addrs,
        geneve_known,
        raw: r.clone(),
    })
}

/// Validate a raw cross-connect against the ports and tunnels it names (the checks against
/// interfaces and other cross-connects are `State::check_tunnels`').
pub fn xconnect_from_raw(
    at: &str,
    r: &RawXconnect,
    port_index: &dyn Fn(&str) -> Option<usize>,
) -> Result<Xconnect, String> {
    let f = |field: &str| format!("{at}.{field}");
    super::valid_name(&f("name"), &r.name)?;
    let port =
        port_index(&r.port).ok_or_else(|| format!("{}: no port named '{}'", f("port"), r.port))?;
    if let Some(v) = r.vlan {
        if !(1..=4094).contains(&v) {
            return Err(format!("{}: {v} is outside 1..=4094", f("vlan")));
        }
    }
    Ok(Xconnect {
        name: r.name.clone(),
        port,
        vlan: r.vlan,
        tunnel: r.tunnel.clone(),
    })
}

/// The raw form of a cross-connect (for `show`).
pub fn xconnect_raw(x: &Xconnect, port_name: &str) -> RawXconnect {
    RawXconnect {
        name: x.name.clone(),
        port: port_name.to_string(),
        vlan: x.vlan,
        tunnel: x.tunnel.clone(),
    }
}

impl super::State {
    pub fn tunnel_index(&self, name: &str) -> Option<usize> {
        self.tunnels.iter().position(|t| t.name == name)
    }

    /// Dataplane interface index of tunnel `k` (tunnel interfaces follow the port ones).
    pub fn tunnel_ifindex(&self, k: usize) -> usize {
        self.ifaces.len() + k
    }

    /// Add a tunnel (validated, then checked against everything else).
    pub fn add_tunnel(&mut self, at: &str, r: &RawTunnel) -> Result<(), String> {
        let t = tunnel_from_raw(at, r)?;
        if self.tunnel_index(&t.name).is_some()
            || self.iface_index(&t.name).is_some()
            || self.ipsec.vtis.iter().any(|v| v.name == t.name)
        {
            return Err(format!(
                "{at}.name: '{}' is already an interface, tunnel or VTI",
                t.name
            ));
        }
        let local = match t.encap.endpoints {
            Endpoints::V4 { local, .. } => IpAddr::V4(local),
            Endpoints::V6 { local, .. } => IpAddr::V6(local),
        };
        if !self
            .ifaces
            .iter()
            .any(|f| f.addrs.iter().any(|a| a.addr == local))
        {
            return Err(format!(
                "{at}.local: {local} is not an address of any interface (the tunnel endpoint \
                 must be one of ours)"
            ));
        }
        let keys = dataplane::tables::tunnels::keys_of(&t.encap, t.remote_any);
        for o in &self.tunnels {
            if dataplane::tables::tunnels::keys_of(&o.encap, o.remote_any)
                .iter()
                .any(|k| keys.contains(k))
            {
                return Err(format!(
                    "{at}: tunnel '{}' already has the same local, remote, profile{} and key",
                    o.name,
                    if t.encap.kind.is_udp() { ", port" } else { "" }
                ));
            }
            if t.encap.kind.is_udp()
                && o.encap.kind.is_udp()
                && o.encap.dst_port == t.encap.dst_port
                && o.encap.kind != t.encap.kind
            {
                return Err(format!(
                    "{at}.port: UDP {} already carries {} (tunnel '{}')",
                    t.encap.dst_port,
                    o.encap.kind.name(),
                    o.name
                ));
            }
        }
        self.tunnels.push(t);
        self.check_addresses()
    }

    /// Delete a tunnel nothing refers to.
    pub fn del_tunnel(&mut self, name: &str) -> Result<(), String> {
        let k = self
            .tunnel_index(name)
            .ok_or_else(|| format!("name: no tunnel named '{name}'"))?;
        if let Some(r) = self
            .routes
            .iter()
            .find(|r| matches!(&r.target, super::RouteTarget::Tunnel(n) if n == name))
        {
            return Err(format!(
                "tunnel '{name}' is the egress of route {} (delete the route first)",
                r.prefix
            ));
        }
        if let Some(x) = self.xconnects.iter().find(|x| x.tunnel == name) {
            return Err(format!(
                "tunnel '{name}' is used by xconnect '{}' (delete it first)",
                x.name
            ));
        }
        self.tunnels.remove(k);
        Ok(())
    }

    /// Add a cross-connect.
    pub fn add_xconnect(&mut self, at: &str, r: &RawXconnect) -> Result<(), String> {
        let x = xconnect_from_raw(at, r, &|n| self.port_index(n))?;
        if self.xconnects.iter().any(|o| o.name == x.name) {
            return Err(format!("{at}.name: duplicate xconnect name '{}'", x.name));
        }
        let k = self
            .tunnel_index(&x.tunnel)
            .ok_or_else(|| format!("{at}.tunnel: no tunnel named '{}'", x.tunnel))?;
        let t = &self.tunnels[k];
        if t.is_l3() {
            return Err(format!(
                "{at}.tunnel: '{}' carries IP (profile {}): route into it instead; \
                 cross-connects take L2 tunnels",
                t.name, t.raw.profile
            ));
        }
        if t.inbound_only {
            return Err(format!(
                "{at}.tunnel: '{}' is inbound-only and cannot carry the port's frames",
                t.name
            ));
        }
        if let Some(o) = self.xconnects.iter().find(|o| o.tunnel == x.tunnel) {
            return Err(format!(
                "{at}.tunnel: '{}' is already cross-connected by '{}'",
                x.tunnel, o.name
            ));
        }
        let port = &self.ports[x.port].name;
        match x.vlan {
            None => {
                if let Some(f) = self.ifaces.iter().find(|f| f.port == x.port) {
                    return Err(format!(
                        "{at}.vlan: a whole-port cross-connect needs port '{port}' to itself, \
                         but interface '{}' is on it (give a vlan)",
                        f.name
                    ));
                }
                if let Some(o) = self.xconnects.iter().find(|o| o.port == x.port) {
                    return Err(format!(
                        "{at}.vlan: port '{port}' already has cross-connect '{}'",
                        o.name
                    ));
                }
            }
            Some(v) => {
                if let Some(f) = self.ifaces.iter().find(|f| f.port == x.port && f.vlan == v) {
                    return Err(format!(
                        "{at}.vlan: port '{port}' vlan {v} is interface '{}'",
                        f.name
                    ));
                }
                if let Some(o) = self
                    .xconnects
                    .iter()
                    .find(|o| o.port == x.port && (o.vlan.is_none() || o.vlan == Some(v)))
                {
                    return Err(format!(
                        "{at}.vlan: port '{port}'{} is already cross-connected by '{}'",
                        o.vlan.map(|v| format!(" vlan {v}")).unwrap_or_default(),
                        o.name
                    ));
                }
            }
        }
        self.xconnects.push(x);
        Ok(())
    }

    pub fn del_xconnect(&mut self, name: &str) -> Result<(), String> {
        let i = self
            .xconnects
            .iter()
            .position(|x| x.name == name)
            .ok_or_else(|| format!("name: no xconnect named '{name}'"))?;
        self.xconnects.remove(i);
        Ok(())
    }

    /// The tunnel whose connected subnet holds `ip`.
    pub fn connected_tunnel(&self, ip: IpAddr) -> Option<usize> {
        self.tunnels
            .iter()
            .position(|t| t.addrs.iter().any(|a| a.subnet().contains(ip)))
    }

    /// The IP MTU towards `dst` in the underlay, from the configured routes (longest prefix)
    /// and connected subnets; 1500 when nothing says.
    pub fn underlay_mtu(&self, dst: IpAddr) -> u16 {
        let if_mtu = |i: usize| {
            let f = &self.ifaces[i];
            f.mtu.unwrap_or(self.ports[f.port].mtu)
        };
        if let Some(i) = self.connected_iface(dst) {
            return if_mtu(i);
        }
        let best = self
            .routes
            .iter()
            .filter(|r| r.prefix.contains(dst))
            .max_by_key(|r| r.prefix.len);
        match best.map(|r| &r.target) {
            Some(super::RouteTarget::Iface(i)) => if_mtu(*i),
            Some(super::RouteTarget::Via { gateway, iface }) => iface
                .or_else(|| self.connected_iface(*gateway))
                .map(if_mtu)
                .unwrap_or(1500),
            _ => 1500,
        }
    }

    /// `underlay` less the ESP overhead when the first outbound IPsec policy (by priority,
    /// then order) matching this tunnel's outer packets protects them — the largest overhead
    /// of its outbound SAs — so that GRE, EtherIP or VXLAN protected by ESP still fits the
    /// underlay once sealed. Outer packets are (local → remote, the tunnel's IP protocol,
    /// for UDP tunnels the lowest source port and the destination port; 0 and 0 otherwise).
    fn esp_protected_mtu(&self, e: &TunnelEncap, remote: IpAddr, underlay: u16) -> u16 {
        let local = match e.endpoints {
            Endpoints::V4 { local, .. } => IpAddr::V4(local),
            Endpoints::V6 { local, .. } => IpAddr::V6(local),
        };
        let protos: &[u8] = match e.kind {
            TunnelKind::Gre | TunnelKind::GreTeb | TunnelKind::Nvgre => &[47],
            TunnelKind::Etherip => &[97],
            TunnelKind::Ipip => &[4, 41],
            TunnelKind::Vxlan | TunnelKind::VxlanGpe | TunnelKind::Geneve => &[17],
        };
        let (sport, dport) = if e.kind.is_udp() {
            (e.sport_min.min(e.sport_max), e.dst_port)
        } else {
            (0, 0)
        };
        // The dataplane's own matching; an interface scope is taken as met (the tunnel's
        // egress interface is the routes' business): a smaller MTU at worst.
        let mut order: Vec<Policy> = self
            .ipsec
            .policies
            .iter()
            .enumerate()
            .map(|(id, p)| p.selector(id as u32, Action::Bypass))
            .collect();
        order.sort_by_key(|p| p.priority);
        let mut mtu = underlay;
        for &proto in protos {
            let key = FlowKey {
                src: local,
                dst: remote,
                proto,
                sport,
                dport,
            };
            let first = order
                .iter()
                .find(|p| p.matches(Dir::Out, p.scope.unwrap_or(0), &key))
                .map(|p| &self.ipsec.policies[p.id as usize]);
            if let Some(super::ipsec::PolicyAction::Protect { sa_out, .. }) =
                first.map(|p| &p.action)
            {
                for name in sa_out {
                    if let Some(sa) = self.ipsec.sas.iter().find(|s| &s.name == name) {
                        mtu = mtu.min(super::ipsec::esp_overhead_mtu(&sa.cfg, underlay));
                    }
                }
            }
        }
        mtu
    }

    /// Tunnel `k`'s effective MTU as the dataplane applies it: the largest inner IP packet
    /// (L3 tunnels) or inner Ethernet frame (L2 tunnels) sent whole. Automatic: the
    /// underlay MTU towards the far end, less ESP's overhead when a policy protects the
    /// tunnel's packets, less the encapsulation's.
    pub fn tunnel_mtu(&self, k: usize) -> u16 {
        let t = &self.tunnels[k];
        let l2 = if t.is_l3() { 0 } else { 14 };
        if t.mtu != 0 {
            return t.mtu + l2;
        }
        let remote = match t.encap.endpoints {
            Endpoints::V4 { local, remote } => {
                IpAddr::V4(if t.remote_any { local } else { remote })
            }
            Endpoints::V6 { local, remote } => {
                IpAddr::V6(if t.remote_any { local } else { remote })
            }
        };
        let under = self.underlay_mtu(remote);
        let under = self.esp_protected_mtu(&t.encap, remote, under) as usize;
        under.saturating_sub(t.encap.overhead()).max(68) as u16
    }
}
