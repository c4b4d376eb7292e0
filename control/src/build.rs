//! Turning the object model into the tables the workers read. Interfaces keep their index
//! (`State::ifaces[i]` is dataplane `IfIndex` i). Addresses become local host routes,
//! connected subnets glean routes, resolved neighbors host routes with a full L2 rewrite
//! (adjacency), and static routes point at their gateway's adjacency when it is resolved.
//! Tunnels are interfaces after the port ones; their addresses and connected subnets route
//! into them, and L2 tunnels are tied to their cross-connected port or VLAN.

use crate::parse::{IfAddr, Prefix};
use crate::state::ipsec::esp_overhead_mtu;
use crate::state::{RouteTarget, State};
use dataplane::esp::Mode;
use dataplane::tables::fib::{Fib, FibRoute, NextHop};
use dataplane::tables::iface::{Adjacency, IfKind, Interface, PortEntry, XCONNECT_PORT};
use dataplane::tables::tunnels::{Attach, TunnelEntry, TunnelShared, TunnelSpec, TunnelTable};
use dataplane::tables::Tables;
use dataplane::wire::Mac;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// What only exists once ports are up.
#[derive(Debug, Clone, Default)]
pub struct Runtime {
    /// DPDK port id of each configured port (same order as `State::ports`).
    pub port_ids: Vec<u16>,
    /// MAC of each configured port.
    pub port_macs: Vec<Mac>,
}

impl Runtime {
    /// A runtime for tests: port i is DPDK port i with MAC 02:00:00:00:00:(i+1).
    pub fn fake(n: usize) -> Runtime {
        Runtime {
            port_ids: (0..n as u16).collect(),
            port_macs: (0..n).map(|i| Mac([2, 0, 0, 0, 0, i as u8 + 1])).collect(),
        }
    }
}

/// A resolved neighbor: (interface index, address) -> MAC.
pub type Neighbors = HashMap<(usize, IpAddr), Mac>;

struct NhSet {
    list: Vec<NextHop>,
    index: HashMap<NextHop, u32>,
}

impl NhSet {
    fn id(&mut self, nh: NextHop) -> u32 {
        if let Some(&i) = self.index.get(&nh) {
            return i;
        }
        let i = self.list.len() as u32;
        self.list.push(nh);
        self.index.insert(nh, i);
        i
    }
}

/// Per-tunnel state that outlives table versions (counters, sequence numbers), by tunnel
/// name; `build_tables` adds what is missing, the controller prunes what was deleted.
pub type TunnelStates = HashMap<String, Arc<TunnelShared>>;

/// The source of ICMP errors an interface sends: its first IPv4 address.
fn icmp_source_v4(addrs: &[IfAddr]) -> Option<[u8; 4]> {
    addrs.iter().find_map(|a| match a.addr {
        IpAddr::V4(v) => Some(v.octets()),
        IpAddr::V6(_) => None,
    })
}

/// The source of ICMPv6 errors an interface sends: its first IPv6 address.
fn icmp_source_v6(addrs: &[IfAddr]) -> Option<[u8; 16]> {
    addrs.iter().find_map(|a| match a.addr {
        IpAddr::V6(v) => Some(v.octets()),
        IpAddr::V4(_) => None,
    })
}

/// Build tables from `state`, with the dynamic neighbors merged over the static ones.
pub fn build_tables(
    st: &State,
    rt: &Runtime,
    dynamic: &Neighbors,
    version: u64,
    sas: &crate::state::ipsec::SaPlacement,
    tunnel_states: &mut TunnelStates,
) -> Result<Tables, String> {
    let mut interfaces = Vec::new();
    let max_port = rt.port_ids.iter().copied().max().unwrap_or(0) as usize;
    let mut ports = vec![PortEntry::default(); max_port + 1];
    for (pi, &pid) in rt.port_ids.iter().enumerate() {
        ports[pid as usize].mac = rt.port_macs.get(pi).copied().unwrap_or_default();
    }
    for (i, f) in st.ifaces.iter().enumerate() {
        let pid = *rt
            .port_ids
            .get(f.port)
            .ok_or("runtime has fewer ports than the config")?;
        let mac = rt.port_macs[f.port];
        interfaces.push(Interface {
            kind: IfKind::Port {
                port: pid,
                vlan: f.vlan,
            },
            mac,
            mtu: f.mtu.unwrap_or(st.ports[f.port].mtu),
            icmp_src_v4: icmp_source_v4(&f.addrs),
            icmp_src_v6: icmp_source_v6(&f.addrs),
        });
        let pe = &mut ports[pid as usize];
        if f.vlan == 0 {
            pe.untagged = Some(i as u16);
        } else {
            pe.vlans.push((f.vlan, i as u16));
        }
    }

    // Tunnel interfaces follow the port ones: tunnel k is interface `st.tunnel_ifindex(k)`.
    for (k, t) in st.tunnels.iter().enumerate() {
        interfaces.push(Interface {
            kind: IfKind::Tunnel { tunnel: k as u32 },
            mac: Mac::ZERO,
            mtu: st.tunnel_mtu(k),
            icmp_src_v4: icmp_source_v4(&t.addrs),
            icmp_src_v6: icmp_source_v6(&t.addrs),
        });
    }
    // VTIs after the tunnels.
    let vti_ifs = vti_interfaces(st, &mut interfaces);

    let mut neigh: Neighbors = st
        .neighbors
        .iter()
        .map(|n| ((n.iface, n.ip), n.mac))
        .collect();
    for (k, v) in dynamic {
        neigh.entry(*k).or_insert(*v);
    }
    let adjacency = |iface: usize, mac: Mac| {
        let f = &interfaces[iface];
        let IfKind::Port { port, vlan } = f.kind else {
            unreachable!("port interfaces only")
        };
        NextHop::Forward(Adjacency {
            ifindex: iface as u16,
            port,
            vlan,
            dst: mac,
            src: f.mac,
            mtu: f.mtu,
        })
    };

    let mut nhs = NhSet {
        list: Vec::new(),
        index: HashMap::new(),
    };
    // Prefix -> next hop; later inserts of the same prefix lose (static routes and our own
    // addresses win over neighbor host routes).
    let mut routes: HashMap<Prefix, u32> = HashMap::new();
    for (i, f) in st.ifaces.iter().enumerate() {
        for a in &f.addrs {
            let host = Prefix {
                addr: a.addr,
                len: if a.addr.is_ipv6() { 128 } else { 32 },
            };
            routes.insert(host, nhs.id(NextHop::Local { ifindex: i as u16 }));
        }
    }
    for (k, t) in st.tunnels.iter().enumerate() {
        let ifindex = st.tunnel_ifindex(k) as u16;
        for a in &t.addrs {
            let host = Prefix {
                addr: a.addr,
                len: if a.addr.is_ipv6() { 128 } else { 32 },
            };
            routes.insert(host, nhs.id(NextHop::Local { ifindex }));
        }
    }
    for (v, &(ifindex, _)) in st.ipsec.vtis.iter().zip(&vti_ifs) {
        for a in &v.addrs {
            let host = Prefix {
                addr: a.addr,
                len: if a.addr.is_ipv6() { 128 } else { 32 },
            };
            routes.insert(host, nhs.id(NextHop::Local { ifindex }));
        }
    }
    for r in &st.routes {
        let nh = match &r.target {
            RouteTarget::Blackhole => NextHop::Blackhole,
            RouteTarget::Iface(i) => NextHop::Glean { ifindex: *i as u16 },
            RouteTarget::Vti(n) => match st.ipsec.vti(n) {
                Some(k) => NextHop::Vti { vti: k as u32 },
                None => return Err(format!("route {}: no VTI named '{n}'", r.prefix)),
            },
            RouteTarget::Tunnel(name) => {
                let k = st
                    .tunnel_index(name)
                    .ok_or_else(|| format!("route {}: no tunnel named '{name}'", r.prefix))?;
                NextHop::Tunnel { tunnel: k as u32 }
            }
            &RouteTarget::Via { gateway, iface } => {
                let Some(i) = iface.or_else(|| st.connected_iface(gateway)) else {
                    return Err(format!(
                        "route {}: gateway {gateway} is not on a connected subnet",
                        r.prefix
                    ));
                };
                match neigh.get(&(i, gateway)) {
                    Some(&mac) => adjacency(i, mac),
                    None => NextHop::Unresolved {
                        ifindex: i as u16,
                        gateway,
                    },
                }
            }
        };
        let id = nhs.id(nh);
        routes.entry(r.prefix).or_insert(id);
    }
    for (i, f) in st.ifaces.iter().enumerate() {
        for a in &f.addrs {
            let id = nhs.id(NextHop::Glean { ifindex: i as u16 });
            routes.entry(a.subnet()).or_insert(id);
        }
    }
    // A tunnel's connected subnet is reached through the tunnel (point to point: no ARP).
    for (k, t) in st.tunnels.iter().enumerate() {
        for a in &t.addrs {
            let id = nhs.id(NextHop::Tunnel { tunnel: k as u32 });
            routes.entry(a.subnet()).or_insert(id);
        }
    }
    // A VTI's subnets are on the other side of it (point-to-point).
    for (k, v) in st.ipsec.vtis.iter().enumerate() {
        for a in &v.addrs {
            let id = nhs.id(NextHop::Vti { vti: k as u32 });
            routes.entry(a.subnet()).or_insert(id);
        }
    }
    let mut nkeys: Vec<_> = neigh.iter().collect();
    nkeys.sort_by_key(|((i, ip), _)| (*i, *ip));
    for (&(i, ip), &mac) in nkeys {
        if i >= st.ifaces.len() {
            continue;
        }
        let host = Prefix {
            addr: ip,
            len: if ip.is_ipv6() { 128 } else { 32 },
        };
        let id = nhs.id(adjacency(i, mac));
        routes.entry(host).or_insert(id);
    }
    let list: Vec<FibRoute> = routes
        .iter()
        .map(|(p, &nexthop)| FibRoute {
            addr: p.addr,
            len: p.len,
            nexthop,
        })
        .collect();
    let fib = Fib::build(&list, nhs.list)?;
    let mut tunnels = build_tunnels(st, rt, &mut ports, tunnel_states)?;
    tunnels.route_outer(&fib);
    Ok(Tables {
        version,
        ports,
        interfaces,
        fib,
        ipsec: st.ipsec.tables(sas, st.workers.len() as u16, &vti_ifs),
        tunnels,
    })
}

/// The tunnel table, and the cross-connects into the port entries.
fn build_tunnels(
    st: &State,
    rt: &Runtime,
    ports: &mut [PortEntry],
    states: &mut TunnelStates,
) -> Result<TunnelTable, String> {
    let workers = st.workers.len();
    let mut list = Vec::with_capacity(st.tunnels.len());
    for (k, t) in st.tunnels.iter().enumerate() {
        let attach = if t.is_l3() {
            Attach::L3 {
                ifindex: st.tunnel_ifindex(k) as u16,
            }
        } else {
            match st.xconnects.iter().find(|x| x.tunnel == t.name) {
                Some(x) => {
                    let port = *rt
                        .port_ids
                        .get(x.port)
                        .ok_or("runtime has fewer ports than the config")?;
                    let vlan = x.vlan.unwrap_or(XCONNECT_PORT);
                    if let Some(pe) = ports.get_mut(port as usize) {
                        pe.xconnects.push((vlan, k as u32));
                    }
                    Attach::Xconnect {
                        port,
                        vlan: x.vlan.unwrap_or(0),
                    }
                }
                None => Attach::Unattached,
            }
        };
        let shared = states
            .entry(t.name.clone())
            .or_insert_with(|| Arc::new(TunnelShared::new(workers)))
            .clone();
        list.push(TunnelSpec {
            entry: TunnelEntry {
                encap: t.encap,
                inbound_only: t.inbound_only,
                attach,
                mtu: st.tunnel_mtu(k),
                shared,
            },
            remote_any: t.remote_any,
            geneve_known: t.geneve_known.clone(),
        });
    }
    TunnelTable::build(list)
}

/// The IP MTU of a VTI. Without a configured one, the largest inner packet that still fits
/// the MTU of the interface towards the outbound SA's peer (as the routes say) once sealed
/// with that SA, so sealing never makes a packet the underlay must drop. Without an outbound
/// SA in tunnel mode there is no peer to route to: the smallest port MTU then.
pub fn vti_mtu(st: &State, v: &crate::state::ipsec::VtiSpec) -> u16 {
    v.mtu.unwrap_or_else(|| {
        let smallest = || st.ports.iter().map(|p| p.mtu).min().unwrap_or(1500);
        match st.ipsec.sas.iter().find(|s| s.name == v.sa_out) {
            Some(s) => {
                let underlay = match s.cfg.mode {
                    Mode::Tunnel4 { remote, .. } => st.underlay_mtu(IpAddr::V4(remote)),
                    Mode::Tunnel6 { remote, .. } => st.underlay_mtu(IpAddr::V6(remote)),
                    Mode::Transport => smallest(),
                };
                esp_overhead_mtu(&s.cfg, underlay)
            }
            None => smallest(),
        }
    })
}

/// Append one L3 interface per VTI (after the port interfaces); returns each VTI's
/// (interface index, IP MTU).
fn vti_interfaces(st: &State, interfaces: &mut Vec<Interface>) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for (k, v) in st.ipsec.vtis.iter().enumerate() {
        let mtu = vti_mtu(st, v);
        let ifindex = interfaces.len() as u16;
        interfaces.push(Interface {
            kind: IfKind::Vti { vti: k as u32 },
            mac: Mac::ZERO,
            mtu,
            icmp_src_v4: icmp_source_v4(&v.addrs),
            icmp_src_v6: icmp_source_v6(&v.addrs),
        });
        out.push((ifindex, mtu));
    }
    out
}
