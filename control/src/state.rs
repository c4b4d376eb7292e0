//! The authoritative object model: every object the operator configured, validated. It is
//! built from the config file (`State::from_config`) and changed by management requests, each
//! change made on a copy that must validate and build into tables before it replaces the
//! running state — so a refused change leaves the running one untouched.
//!
//! Errors name the field the way the operator wrote it: `ports[1].devargs`, `routes[0].via`,
//! `interface 'lan'.addresses[2]`.

use crate::config::{RawConfig, RawRoute, RawSystem};
use crate::parse::{self, IfAddr, Prefix};
use dataplane::wire::Mac;
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

/// A configured DPDK port.
#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    pub name: String,
    pub devargs: String,
    pub mtu: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub rss: bool,
    pub promiscuous: bool,
    pub mac: Option<Mac>,
    /// RX (= TX) queues: one per worker polling it, derived from the workers.
    pub queues: u16,
}

/// A worker lcore and its RX queues (port index, queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    pub lcore: u32,
    pub rx: Vec<(usize, u16)>,
}

/// An L3 interface on a port (or a VLAN of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub port: usize,
    pub vlan: u16,
    pub addrs: Vec<IfAddr>,
    pub mtu: Option<u16>,
}

/// Where a route sends packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTarget {
    /// Through a gateway, on an interface found from the gateway's connected subnet unless
    /// given.
    Via {
        gateway: IpAddr,
        iface: Option<usize>,
    },
    /// Directly out of an interface (the destination is the neighbor).
    Iface(usize),
    /// Into a route-based IPsec interface, by name (VTIs come and go at runtime).
    Vti(String),
    /// Into an L3 tunnel (by name: indices move when tunnels are deleted).
    Tunnel(String),
    Blackhole,
}

/// A static route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub prefix: Prefix,
    pub target: RouteTarget,
}

/// A static neighbor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbor {
    pub ip: IpAddr,
    pub mac: Mac,
    pub iface: usize,
}

/// Everything configured.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    pub system: RawSystem,
    pub ports: Vec<Port>,
    pub workers: Vec<Worker>,
    pub ifaces: Vec<Iface>,
    pub routes: Vec<Route>,
    pub neighbors: Vec<Neighbor>,
    pub tunnels: Vec<Tunnel>,
    pub xconnects: Vec<Xconnect>,
    pub ipsec: IpsecState,
}

/// Maximum addresses per interface (the host stack's per-interface limit).
pub const MAX_IF_ADDRS: usize = 8;

pub(crate) fn valid_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what}: '{name}' is not a valid name (1-32 of A-Z a-z 0-9 - _ .)"
        ))
    }
}

impl State {
    /// Validate a whole config. Nothing is started here; this only reads the machine's CPU
    /// list to check lcores.
    pub fn from_config(raw: &RawConfig) -> Result<State, String> {
        let s = &raw.system;
        if s.burst == 0 || s.burst as usize > dataplane::pipeline::MAX_BURST {
            return Err(format!(
                "system.burst: {} is outside 1..={}",
                s.burst,
                dataplane::pipeline::MAX_BURST
            ));
        }
        if s.mempool_mbufs < 1024 {
            return Err(format!(
                "system.mempool_mbufs: {} is below 1024",
                s.mempool_mbufs
            ));
        }
        if s.mbuf_data_room < 1024 + 128 {
            return Err(format!(
                "system.mbuf_data_room: {} is below 1152",
                s.mbuf_data_room
            ));
        }
        if s.socket.is_empty() {
            return Err("system.socket: must not be empty".into());
        }
        valid_name("system.file_prefix", &s.file_prefix)?;
        let cpus = online_cpus();
        let mut placed: BTreeMap<u32, u32> = BTreeMap::new();
        for (k, &cpu) in &s.lcore_cpus {
            let l: u32 =
                k.parse().ok().filter(|&l| l < 128).ok_or_else(|| {
                    format!("system.lcore_cpus: '{k}' is not an lcore number 0..128")
                })?;
            if !cpus.contains(&cpu) {
                return Err(format!(
                    "system.lcore_cpus.{k}: CPU {cpu} does not exist on this machine (online: {})",
                    fmt_cpus(&cpus)
                ));
            }
            placed.insert(l, cpu);
        }
        let lcore_exists = |l: u32| placed.contains_key(&l) || cpus.contains(&l);
        if !lcore_exists(s.main_lcore) {
            return Err(format!(
                "system.main_lcore: lcore {} does not exist on this machine (online: {})",
                s.main_lcore,
                fmt_cpus(&cpus)
            ));
        }

        let mut ports: Vec<Port> = Vec::new();
        for (i, p) in raw.ports.iter().enumerate() {
            let f = |field: &str| format!("ports[{i}].{field}");
            valid_name(&f("name"), &p.name)?;
            if ports.iter().any(|q| q.name == p.name) {
                return Err(format!("{}: duplicate port name '{}'", f("name"), p.name));
            }
            if p.devargs.trim().is_empty() {
                return Err(format!("{}: must not be empty", f("devargs")));
            }
            if ports.iter().any(|q| q.devargs == p.devargs) {
                return Err(format!(
                    "{}: '{}' is used by another port",
                    f("devargs"),
                    p.devargs
                ));
            }
            if !(576..=9600).contains(&p.mtu) {
                return Err(format!("{}: {} is outside 576..=9600", f("mtu"), p.mtu));
            }
            if p.mtu as u32 + 18 > s.mbuf_data_room as u32 - 128 {
                return Err(format!(
                    "{}: {} does not fit system.mbuf_data_room {} (minus 128 headroom)",
                    f("mtu"),
                    p.mtu,
                    s.mbuf_data_room
                ));
            }
            for (n, d) in [("rx_desc", p.rx_desc), ("tx_desc", p.tx_desc)] {
                if !(64..=4096).contains(&d) || !d.is_power_of_two() {
                    return Err(format!("{}: {d} must be a power of two in 64..=4096", f(n)));
                }
            }
            let mac = match &p.mac {
                None => None,
                Some(m) => Some(m.parse::<Mac>().map_err(|e| format!("{}: {e}", f("mac")))?),
            };
            if mac.is_some_and(|m| m.is_multicast() || m == Mac::ZERO) {
                return Err(format!("{}: must be a unicast address", f("mac")));
            }
            ports.push(Port {
                name: p.name.clone(),
                devargs: p.devargs.clone(),
                mtu: p.mtu,
                rx_desc: p.rx_desc,
                tx_desc: p.tx_desc,
                rss: p.rss,
                promiscuous: p.promiscuous,
                mac,
                queues: 0,
            });
        }
        if ports.is_empty() {
            return Err("ports: at least one port is required".into());
        }

        let mut workers: Vec<Worker> = Vec::new();
        let mut polled: BTreeMap<(usize, u16), usize> = BTreeMap::new();
        for (i, w) in raw.workers.iter().enumerate() {
            if !lcore_exists(w.lcore) {
                return Err(format!(
                    "workers[{i}].lcore: lcore {} does not exist on this machine (online: {})",
                    w.lcore,
                    fmt_cpus(&cpus)
                ));
            }
            if w.lcore == s.main_lcore {
                return Err(format!(
                    "workers[{i}].lcore: lcore {} is system.main_lcore (the control thread)",
                    w.lcore
                ));
            }
            if workers.iter().any(|x| x.lcore == w.lcore) {
                return Err(format!(
                    "workers[{i}].lcore: lcore {} has two workers",
                    w.lcore
                ));
            }
            if w.rx.is_empty() {
                return Err(format!(
                    "workers[{i}].rx: a worker must poll at least one queue"
                ));
            }
            let mut rx = Vec::new();
            for (k, spec) in w.rx.iter().enumerate() {
                let (pn, q) =
                    parse::port_queue(spec).map_err(|e| format!("workers[{i}].rx[{k}]: {e}"))?;
                let pi = ports
                    .iter()
                    .position(|p| p.name == pn)
                    .ok_or_else(|| format!("workers[{i}].rx[{k}]: no port named '{pn}'"))?;
                if let Some(other) = polled.insert((pi, q), i) {
                    return Err(format!(
                        "workers[{i}].rx[{k}]: {pn}:{q} is already polled by workers[{other}]"
                    ));
                }
                rx.push((pi, q));
            }
            workers.push(Worker { lcore: w.lcore, rx });
        }
        if workers.is_empty() {
            return Err("workers: at least one worker is required".into());
        }
        for (pi, p) in ports.iter_mut().enumerate() {
            let qs: Vec<u16> = polled
                .keys()
                .filter(|(x, _)| *x == pi)
                .map(|&(_, q)| q)
                .collect();
            if qs.is_empty() {
                return Err(format!(
                    "port '{}': no worker polls it (add it to a workers[].rx)",
                    p.name
                ));
            }
            for (want, &q) in qs.iter().enumerate() {
                if want as u16 != q {
                    return Err(format!(
                        "port '{}': queue {want} is polled by no worker (queues must be 0..N)",
                        p.name
                    ));
                }
            }
            p.queues = qs.len() as u16;
        }

        let mut st = State {
            system: s.clone(),
            ports,
            workers,
            ifaces: Vec::new(),
            routes: Vec::new(),
            neighbors: Vec::new(),
            tunnels: Vec::new(),
            xconnects: Vec::new(),
            ipsec: IpsecState::default(),
        };
        for (i, r) in raw.interfaces.iter().enumerate() {
            let f = |field: &str| format!("interfaces[{i}].{field}");
            valid_name(&f("name"), &r.name)?;
            if st.ifaces.iter().any(|x| x.name == r.name) {
                return Err(format!(
                    "{}: duplicate interface name '{}'",
                    f("name"),
                    r.name
                ));
            }
            let port = st
                .port_index(&r.port)
                .ok_or_else(|| format!("{}: no port named '{}'", f("port"), r.port))?;
            let vlan = r.vlan.unwrap_or(0);
            if r.vlan.is_some() && !(1..=4094).contains(&vlan) {
                return Err(format!("{}: {vlan} is outside 1..=4094", f("vlan")));
            }
            if st.ifaces.iter().any(|x| x.port == port && x.vlan == vlan) {
                return Err(format!(
                    "{}: port '{}' vlan {vlan} already has an interface",
                    f("vlan"),
                    r.port
                ));
            }
            if r.addresses.len() > MAX_IF_ADDRS {
                return Err(format!(
                    "{}: at most {MAX_IF_ADDRS} addresses",
                    f("addresses")
                ));
            }
            let mut addrs = Vec::new();
            for (k, a) in r.addresses.iter().enumerate() {
                let ia = IfAddr::parse(a).map_err(|e| format!("{}[{k}]: {e}", f("addresses")))?;
                addrs.push(ia);
            }
            let port_mtu = st.ports[port].mtu;
            if let Some(m) = r.mtu {
                if m < 576 || m > port_mtu {
                    return Err(format!(
                        "{}: {m} is outside 576..={port_mtu} (the port MTU)",
                        f("mtu")
                    ));
                }
            }
            st.ifaces.push(Iface {
                name: r.name.clone(),
                port,
                vlan,
                addrs,
                mtu: r.mtu,
            });
        }
        st.check_addresses()?;
        for (i, t) in raw.tunnels.iter().enumerate() {
            st.add_tunnel(&format!("tunnels[{i}]"), t)?;
        }
        for (i, x) in raw.xconnects.iter().enumerate() {
            st.add_xconnect(&format!("xconnects[{i}]"), x)?;
        }
        for (i, n) in raw.neighbors.iter().enumerate() {
            let f = |field: &str| format!("neighbors[{i}].{field}");
            let ip = parse::ip(&n.ip).map_err(|e| format!("{}: {e}", f("ip")))?;
            let mac: Mac = n.mac.parse().map_err(|e| format!("{}: {e}", f("mac")))?;
            if mac.is_multicast() {
                return Err(format!("{}: must be a unicast MAC", f("mac")));
            }
            let iface = st.iface_index(&n.interface).ok_or_else(|| {
                format!("{}: no interface named '{}'", f("interface"), n.interface)
            })?;
            if !st.ifaces[iface]
                .addrs
                .iter()
                .any(|a| a.subnet().contains(ip))
            {
                return Err(format!(
                    "{}: {ip} is not on a subnet of interface '{}'",
                    f("ip"),
                    n.interface
                ));
            }
            if st.neighbors.iter().any(|x| x.ip == ip && x.iface == iface) {
                return Err(format!("{}: duplicate neighbor {ip}", f("ip")));
            }
            st.neighbors.push(Neighbor { ip, mac, iface });
        }
        // IPsec before routes: a route may point into a VTI.
        let ipsec = IpsecState::from_config(&raw.ipsec, &|n| st.iface_index(n))?;
        st.ipsec = ipsec;
        st.check_vti_addresses()?;
        for (i, r) in raw.routes.iter().enumerate() {
            let route = st.parse_route(r).map_err(|e| format!("routes[{i}].{e}"))?;
            st.add_route(route)
                .map_err(|e| format!("routes[{i}].prefix: {e}"))?;
        }
        Ok(st)
    }

    /// No address is configured twice, and no two interfaces (tunnels included) share a
    /// subnet.
    fn check_addresses(&self) -> Result<(), String> {
        let mut seen: HashSet<IpAddr> = HashSet::new();
        let mut subnets: Vec<(Prefix, &str)> = Vec::new();
        let all = self
            .ifaces
            .iter()
            .map(|f| (f.name.as_str(), &f.addrs))
            .chain(self.tunnels.iter().map(|t| (t.name.as_str(), &t.addrs)));
        for (name, addrs) in all {
            for a in addrs {
                if !seen.insert(a.addr) {
                    return Err(format!(
                        "interface '{name}'.addresses: {} is configured twice",
                        a.addr
                    ));
                }
                let sn = a.subnet();
                if let Some((_, other)) = subnets.iter().find(|(p, n)| *p == sn && *n != name) {
                    return Err(format!(
                        "interface '{name}'.addresses: subnet {sn} is already on interface \
                         '{other}'"
                    ));
                }
                subnets.push((sn, name));
            }
        }
        Ok(())
    }

    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }

    pub fn iface_index(&self, name: &str) -> Option<usize> {
        self.ifaces.iter().position(|p| p.name == name)
    }

    /// Interpret a route as written (config entry or `route add`). Errors start with the field.
    pub fn parse_route(&self, r: &RawRoute) -> Result<Route, String> {
        let prefix = Prefix::parse(&r.prefix).map_err(|e| format!("prefix: {e}"))?;
        if let Some(n) = &r.interface {
            if let Some(k) = self.tunnel_index(n) {
                let t = &self.tunnels[k];
                if r.blackhole {
                    return Err("blackhole: a blackhole route takes no via or interface".into());
                }
                if !t.is_l3() {
                    return Err(format!(
                        "interface: tunnel '{n}' is an L2 tunnel (profile {}); routes go into \
                         tunnels that carry IP",
                        t.raw.profile
                    ));
                }
                let fam = if prefix.is_v6() {
                    dataplane::tunnel::PayloadType::Ipv6
                } else {
                    dataplane::tunnel::PayloadType::Ipv4
                };
                if !t.encap.carries().accepts(fam) {
                    return Err(format!(
                        "interface: tunnel '{n}' does not carry IPv{}",
                        if prefix.is_v6() { 6 } else { 4 }
                    ));
                }
                return Ok(Route {
                    prefix,
                    target: RouteTarget::Tunnel(n.clone()),
                });
            }
            if self.iface_index(n).is_none() && self.ipsec.vti(n).is_some() {
                return self.parse_vti_route(prefix, n, r);
            }
        }
        let iface = match &r.interface {
            None => None,
            Some(n) => Some(
                self.iface_index(n)
                    .ok_or_else(|| format!("interface: no interface or tunnel named '{n}'"))?,
            ),
        };
        let target = match (&r.via, iface, r.blackhole) {
            (Some(_), _, true) | (None, Some(_), true) => {
                return Err("blackhole: a blackhole route takes no via or interface".into())
            }
            (None, None, true) => RouteTarget::Blackhole,
            (None, None, false) => {
                return Err("via: a route needs a gateway (via), an interface, or blackhole".into())
            }
            (None, Some(i), false) => RouteTarget::Iface(i),
            (Some(v), iface, false) => {
                let gateway = parse::ip(v).map_err(|e| format!("via: {e}"))?;
                if gateway.is_ipv6() != prefix.is_v6() {
                    return Err(format!(
                        "via: gateway {gateway} is not of the prefix's family"
                    ));
                }
                let on_link = |i: usize| {
                    self.ifaces[i]
                        .addrs
                        .iter()
                        .any(|a| a.subnet().contains(gateway))
                };
                if iface.is_none() {
                    if let Some(k) = self.connected_tunnel(gateway) {
                        if self.tunnels[k].addrs.iter().any(|a| a.addr == gateway) {
                            return Err(format!("via: {gateway} is one of our own addresses"));
                        }
                        return Ok(Route {
                            prefix,
                            target: RouteTarget::Tunnel(self.tunnels[k].name.clone()),
                        });
                    }
                }
                match iface {
                    Some(i) if !on_link(i) && !gateway.is_ipv6() => {
                        return Err(format!(
                            "via: {gateway} is not on a subnet of interface '{}'",
                            self.ifaces[i].name
                        ))
                    }
                    None if !(0..self.ifaces.len()).any(on_link) => {
                        return Err(format!("via: {gateway} is not on any connected subnet"))
                    }
                    _ => {}
                }
                if self
                    .ifaces
                    .iter()
                    .any(|f| f.addrs.iter().any(|a| a.addr == gateway))
                {
                    return Err(format!("via: {gateway} is one of our own addresses"));
                }
                RouteTarget::Via { gateway, iface }
            }
        };
        Ok(Route { prefix, target })
    }

    /// Add a route; refuses a prefix that already has one.
    pub fn add_route(&mut self, r: Route) -> Result<(), String> {
        if self.routes.iter().any(|x| x.prefix == r.prefix) {
            return Err(format!(
                "{} already has a route (delete it first)",
                r.prefix
            ));
        }
        self.routes.push(r);
        Ok(())
    }

    /// Delete the route for exactly `prefix`.
    pub fn del_route(&mut self, prefix: Prefix) -> Result<Route, String> {
        let i = self
            .routes
            .iter()
            .position(|x| x.prefix == prefix)
            .ok_or_else(|| format!("no route for {prefix}"))?;
        Ok(self.routes.remove(i))
    }

    /// The interface whose connected subnet holds `ip`.
    pub fn connected_iface(&self, ip: IpAddr) -> Option<usize> {
        self.ifaces
            .iter()
            .position(|f| f.addrs.iter().any(|a| a.subnet().contains(ip)))
    }
}

/// CPUs this process may run on (what EAL accepts as lcores by default).
pub fn online_cpus() -> Vec<u32> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    let mut v = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    v.extend(a..=b);
                }
            }
            None => {
                if let Ok(a) = part.parse() {
                    v.push(a);
                }
            }
        }
    }
    if v.is_empty() {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        v.extend(0..n as u32);
    }
    v
}

fn fmt_cpus(v: &[u32]) -> String {
    v.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl State {
    /// The CPU lcore `l` runs on.
    pub fn lcore_cpu(&self, l: u32) -> u32 {
        self.system
            .lcore_cpus
            .get(&l.to_string())
            .copied()
            .unwrap_or(l)
    }
}

pub mod ipsec;
pub mod tunnels;

pub use ipsec::IpsecState;
pub use tunnels::{Tunnel, Xconnect};

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tunnel_tests;
