//! The control loop's logic, apart from DPDK: it owns the object model, publishes tables to
//! the workers (and reclaims old versions only once every worker has moved past them),
//! serves management requests, feeds punted packets to the neighbor code and the host
//! stack, and injects what those want sent. Generic over the packet type so tests run it
//! with heap packets and worker threads on in-memory queues.

mod ipsec;

use crate::api::proto::{Request, Response};
use crate::build::{build_tables, Runtime, TunnelStates};
use crate::config::RawRoute;
use crate::hoststack::{HostOut, HostStack};
use crate::neighbor::{IfInfo, NState, NeighborTable};
use crate::parse::Prefix;
use crate::state::ipsec::PolicyAction;
use crate::state::{RouteTarget, State};
use crossbeam::queue::ArrayQueue;
use dataplane::events::{Event, InjectKind, Injected, PuntKind};
use dataplane::packet::Packet;
use dataplane::stats::DropReason;
use dataplane::tables::{Tables, TablesHandle};
use dataplane::worker::WorkerShared;
use ipsec::{IpsecRt, SaFilter};
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Punted packets handled per worker per poll (keeps the loop responsive under a flood).
const PUNT_BUDGET: usize = 256;

/// Makes a packet from bytes (an mbuf from the pool in the daemon).
pub type PacketMaker<P> = Box<dyn FnMut(&[u8]) -> Option<P> + Send>;

/// What only the platform (DPDK) can report: `show ports` rows and the packet pool.
pub trait Platform: Send {
    /// One row per configured port.
    fn port_rows(&self, st: &State) -> Vec<Value>;
    /// Pool size, available and in-use mbufs.
    fn pool(&self) -> Value;
}

/// A platform with no NICs (tests).
pub struct NoPlatform;

impl Platform for NoPlatform {
    fn port_rows(&self, _: &State) -> Vec<Value> {
        Vec::new()
    }
    fn pool(&self) -> Value {
        Value::Null
    }
}

/// The control thread's state.
pub struct Controller<P> {
    pub state: State,
    rt: Runtime,
    version: u64,
    handle: Arc<TablesHandle>,
    /// Published versions not yet known to be unused by every worker.
    retired: Vec<Arc<Tables>>,
    pub workers: Vec<Arc<WorkerShared<P>>>,
    /// Lcore of each worker (for `show stats`).
    lcores: Vec<u32>,
    /// Inject queue per configured port (same order as `State::ports`).
    inject: Vec<Arc<ArrayQueue<Injected<P>>>>,
    neigh: NeighborTable,
    host: HostStack,
    make: PacketMaker<P>,
    platform: Box<dyn Platform>,
    /// Packets the control thread could not inject (pool empty or queue full).
    pub inject_failed: u64,
    /// Installed SAs, lifetimes, the reject log.
    ipsec: IpsecRt,
    /// Per-tunnel counters and sequence state, by tunnel name.
    tunnel_states: TunnelStates,
}

mod tunnels;

fn if_infos(st: &State, rt: &Runtime) -> Vec<IfInfo> {
    st.ifaces
        .iter()
        .map(|f| IfInfo {
            port: rt.port_ids[f.port],
            vlan: f.vlan,
            mac: rt.port_macs[f.port],
            addrs: f.addrs.clone(),
        })
        .collect()
}

impl<P: Packet + Send> Controller<P> {
    /// Build the first tables from `state`; fails (changing nothing) if they do not build.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        state: State,
        rt: Runtime,
        workers: Vec<Arc<WorkerShared<P>>>,
        lcores: Vec<u32>,
        inject: Vec<Arc<ArrayQueue<Injected<P>>>>,
        make: PacketMaker<P>,
        platform: Box<dyn Platform>,
    ) -> Result<(Controller<P>, Arc<TablesHandle>), String> {
        let neigh = NeighborTable::new(
            if_infos(&state, &rt),
            Duration::from_secs(state.system.neighbor_reachable_secs.max(1) as u64),
        );
        let mut ipsec = IpsecRt::default();
        let plan = ipsec.prepare(&state, &state, &workers, Instant::now(), &[])?;
        let mut tunnel_states = TunnelStates::new();
        let built = build_tables(
            &state,
            &rt,
            &neigh.resolved(),
            1,
            plan.placement(),
            &mut tunnel_states,
        );
        let t = match built {
            Ok(t) => t,
            Err(e) => {
                ipsec.abort(plan, &workers);
                return Err(e);
            }
        };
        ipsec.commit(plan, 1, &state.ipsec.vtis);
        let handle = Arc::new(TablesHandle::new(t));
        let (infos, mtus) = tunnels::host_ifs(&state, &rt);
        let host = HostStack::new(&infos, &mtus);
        let c = Controller {
            state,
            rt,
            version: 1,
            handle: handle.clone(),
            retired: Vec::new(),
            workers,
            lcores,
            inject,
            neigh,
            host,
            make,
            platform,
            inject_failed: 0,
            ipsec,
            tunnel_states,
        };
        Ok((c, handle))
    }

    /// Ask for every route gateway up front, so the first packets find it resolved.
    pub fn resolve_gateways(&mut self, now: Instant) {
        let gws: Vec<(usize, IpAddr)> = self
            .state
            .routes
            .iter()
            .filter_map(|r| match r.target {
                RouteTarget::Via { gateway, iface } => iface
                    .or_else(|| self.state.connected_iface(gateway))
                    .map(|i| (i, gateway)),
                _ => None,
            })
            // A static neighbor is authoritative: never ARP for it.
            .filter(|&(i, gw)| {
                !self
                    .state
                    .neighbors
                    .iter()
                    .any(|n| n.iface == i && n.ip == gw)
            })
            .collect();
        for (i, gw) in gws {
            if let Some(f) = self.neigh.request(i, gw, now) {
                self.inject_l2(f.port, &f.bytes);
            }
        }
    }

    /// Build and publish tables for `st`. On error nothing changes.
    fn publish(&mut self, st: &State) -> Result<(), String> {
        self.publish_with(st, Instant::now(), &[])
    }

    /// Publish `st` as of `now`, reinstalling the SAs in slots `clear`. New SAs go to their
    /// workers before the tables that name it (see the worker loop); SAs the new tables no
    /// longer name leave their workers only once every worker runs them (`reclaim`).
    fn publish_with(&mut self, st: &State, now: Instant, clear: &[u32]) -> Result<(), String> {
        let plan = self
            .ipsec
            .prepare(&self.state, st, &self.workers, now, clear)?;
        let built = build_tables(
            st,
            &self.rt,
            &self.neigh.resolved(),
            self.version + 1,
            plan.placement(),
            &mut self.tunnel_states,
        );
        let t = match built {
            Ok(t) => t,
            Err(e) => {
                self.ipsec.abort(plan, &self.workers);
                return Err(e);
            }
        };
        self.version += 1;
        let old = self.handle.publish(Arc::new(t));
        self.retired.push(old);
        self.ipsec.commit(plan, self.version, &st.ipsec.vtis);
        Ok(())
    }

    /// Drop retired tables every worker has moved past (their quiescent state: a worker
    /// reports the version it runs once it adopted it at a burst boundary).
    fn reclaim(&mut self) {
        let min = self
            .workers
            .iter()
            .map(|w| w.counters.table_version.get())
            .min()
            .unwrap_or(u64::MAX);
        self.retired.retain(|t| t.version >= min);
        self.ipsec.release(min, &self.workers);
    }

    /// The table version the workers currently run (the minimum over workers).
    pub fn running_version(&self) -> u64 {
        self.workers
            .iter()
            .map(|w| w.counters.table_version.get())
            .min()
            .unwrap_or(0)
    }

    pub fn published_version(&self) -> u64 {
        self.version
    }

    fn inject_l2(&mut self, port_id: u16, bytes: &[u8]) {
        let Some(pi) = self.rt.port_ids.iter().position(|&p| p == port_id) else {
            return;
        };
        self.inject(pi, InjectKind::L2 { port: port_id }, bytes);
    }

    fn inject(&mut self, port_index: usize, kind: InjectKind, bytes: &[u8]) {
        let ok = match ((self.make)(bytes), self.inject.get(port_index)) {
            (Some(pkt), Some(q)) => q.push(Injected { pkt, kind }).is_ok(),
            _ => false,
        };
        if !ok {
            self.inject_failed += 1;
        }
    }

    /// One round of control work. Returns true when anything happened.
    pub fn poll(&mut self, now: Instant) -> bool {
        let mut busy = false;
        let mut neigh_changed = false;
        for w in 0..self.workers.len() {
            let shared = self.workers[w].clone();
            for _ in 0..PUNT_BUDGET {
                let Some(mut p) = shared.punt.pop() else {
                    break;
                };
                busy = true;
                match p.kind {
                    PuntKind::L2 { port } => {
                        let d = p.pkt.data();
                        if let Some(iface) = self.iface_of_frame(port, d) {
                            neigh_changed |= self.neigh.on_arp(iface, d, now);
                            self.host.input_l2(iface, d);
                        }
                    }
                    PuntKind::L3 { ifindex, l2_len } => {
                        let iface = ifindex as usize;
                        if is_ndisc(p.pkt.data()) {
                            neigh_changed |= self.neigh.on_ndisc(iface, p.pkt.data(), now);
                            if l2_len > 0 && p.pkt.prepend(l2_len as usize) {
                                self.host.input_l2(iface, p.pkt.data());
                            }
                        } else {
                            self.host.input_l3(iface, p.pkt.data());
                        }
                    }
                    PuntKind::Ike { .. } => {}
                }
            }
            while let Some(e) = shared.events.pop() {
                busy = true;
                match e {
                    Event::Resolve { ifindex, addr } => {
                        if let Some(f) = self.neigh.request(ifindex as usize, addr, now) {
                            self.inject_l2(f.port, &f.bytes);
                        }
                    }
                    Event::SaSoftExpired { .. } | Event::SaHardExpired { .. } => {
                        self.ipsec.on_event(e)
                    }
                    // Counted as esp-no-outbound-sa and logged by the reject log (no IKE yet).
                    Event::Acquire { .. } => {}
                }
            }
        }
        for o in self.host.poll(now) {
            busy = true;
            match o {
                HostOut::L2 { port, frame } => self.inject_l2(port, &frame),
                HostOut::L3 { iface, packet } => {
                    let pi = self.state.ifaces.get(iface).map(|f| f.port).unwrap_or(0);
                    self.inject(pi, InjectKind::L3, &packet);
                }
            }
        }
        let (frames, changed) = self.neigh.tick(now);
        for f in frames {
            busy = true;
            self.inject_l2(f.port, &f.bytes);
        }
        let grace_over = self.ipsec.tick(now, &self.workers);
        if changed || neigh_changed || grace_over {
            let st = self.state.clone();
            // Cannot fail for a neighbor change of a state that already built.
            let _ = self.publish_with(&st, now, &[]);
            busy = true;
        }
        self.reclaim();
        busy
    }

    fn iface_of_frame(&self, port_id: u16, frame: &[u8]) -> Option<usize> {
        let pi = self.rt.port_ids.iter().position(|&p| p == port_id)?;
        let l2 = dataplane::wire::L2Header::parse(frame).ok()?;
        self.state
            .ifaces
            .iter()
            .position(|f| f.port == pi && f.vlan == l2.outer_vlan)
    }

    /// Apply a change to a copy of the state; commit and publish only if it validates and
    /// builds.
    fn change(&mut self, f: impl FnOnce(&mut State) -> Result<(), String>) -> Response {
        let mut st = self.state.clone();
        if let Err(e) = f(&mut st) {
            return Response::err(e);
        }
        match self.publish(&st) {
            Ok(()) => {
                self.tunnels_changed(&st);
                self.state = st;
                Response::done()
            }
            Err(e) => Response::err(e),
        }
    }

    /// Serve one management request.
    pub fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::Ping => Response::ok(json!({"version": self.version})),
            Request::ShowPorts => Response::ok(Value::Array(self.platform.port_rows(&self.state))),
            Request::ShowPool => Response::ok(self.platform.pool()),
            Request::ShowInterfaces => Response::ok(self.show_interfaces()),
            Request::ShowRoutes => Response::ok(self.show_routes()),
            Request::ShowNeighbors => Response::ok(self.show_neighbors()),
            Request::ShowStats => Response::ok(self.show_stats()),
            Request::ShowErrors => Response::ok(self.show_errors()),
            Request::RouteAdd { route } => self.route_add(route),
            Request::ShowIpsecSa {
                name,
                spi,
                peer,
                selector,
                detail,
            } => self.show_ipsec_sa(
                &SaFilter {
                    name: name.as_deref(),
                    spi,
                    peer: peer.as_deref(),
                    selector: selector.as_deref(),
                },
                detail,
            ),
            Request::ShowIpsecPolicies => Response::ok(self.show_ipsec_policies()),
            Request::ShowIpsecStats => self.show_ipsec_stats(),
            Request::ClearIpsecSa {
                spi,
                peer,
                policy,
                all,
            } => self.clear_ipsec_sa(spi, peer.as_deref(), policy.as_deref(), all),
            Request::SaAdd { sa, policy, vti } => self.change(|st| {
                st.ipsec.add_sa(&sa)?;
                match (policy, vti) {
                    (Some(_), Some(_)) => Err("give --policy or --vti, not both".into()),
                    (Some(p), None) if st.ipsec.policies.iter().any(|x| x.name == p) => {
                        st.ipsec.attach_sa(&sa.name, &p)
                    }
                    (Some(p), None) => Err(format!("policy: no policy named '{p}'")),
                    (None, Some(v)) if st.ipsec.vti(&v).is_some() => {
                        st.ipsec.attach_sa(&sa.name, &v)
                    }
                    (None, Some(v)) => Err(format!("vti: no VTI named '{v}'")),
                    (None, None) => Ok(()),
                }
            }),
            Request::VtiAdd { vti } => self.change(|st| st.add_vti(&vti)),
            Request::VtiDel { name } => self.change(|st| st.del_vti(&name)),
            Request::SaDel { name } => self.change(|st| st.ipsec.del_sa(&name)),
            Request::PolicyAdd { policy } => self.change(|st| {
                let ifs: Vec<String> = st.ifaces.iter().map(|f| f.name.clone()).collect();
                st.ipsec
                    .add_policy(&policy, &|n| ifs.iter().position(|x| x == n))
            }),
            Request::PolicyDel { name } => self.change(|st| st.ipsec.del_policy(&name)),
            Request::TunnelAdd { tunnel } => self.change(|st| {
                let at = format!("tunnel '{}'", tunnel.name);
                st.add_tunnel(&at, &tunnel)
            }),
            Request::TunnelDel { name } => self.change(|st| st.del_tunnel(&name)),
            Request::XconnectAdd { xconnect } => self.change(|st| {
                let at = format!("xconnect '{}'", xconnect.name);
                st.add_xconnect(&at, &xconnect)
            }),
            Request::XconnectDel { name } => self.change(|st| st.del_xconnect(&name)),
            Request::ShowTunnels { name } => match self.show_tunnels(name.as_deref()) {
                Ok(v) => Response::ok(v),
                Err(e) => Response::err(e),
            },
            Request::ShowXconnects => Response::ok(self.show_xconnects()),
            Request::RouteDel { prefix } => match Prefix::parse(&prefix) {
                Err(e) => Response::err(format!("prefix: {e}")),
                Ok(p) => self.change(|st| st.del_route(p).map(|_| ())),
            },
        }
    }

    fn route_add(&mut self, r: RawRoute) -> Response {
        self.change(|st| {
            let route = st.parse_route(&r)?;
            st.add_route(route)
        })
    }

    fn show_ipsec_policies(&self) -> Value {
        let rows = self
            .state
            .ipsec
            .policies
            .iter()
            .map(|p| {
                let dir = match (p.out, p.inb) {
                    (true, true) => "both",
                    (true, false) => "out",
                    _ => "in",
                };
                let (action, sas) = match &p.action {
                    PolicyAction::Protect { sa_out, sa_in } => (
                        "protect",
                        sa_out
                            .iter()
                            .chain(sa_in)
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                    PolicyAction::Bypass => ("bypass", String::new()),
                    PolicyAction::Discard => ("discard", String::new()),
                };
                json!({
                    "name": p.name,
                    "priority": p.priority,
                    "dir": dir,
                    "src": p.src.to_string(),
                    "dst": p.dst.to_string(),
                    "proto": crate::parse::protocol_name(p.proto),
                    "sport": p.sport.to_string(),
                    "dport": p.dport.to_string(),
                    "action": action,
                    "sas": sas,
                })
            })
            .collect();
        Value::Array(rows)
    }

    fn show_interfaces(&self) -> Value {
        let rows: Vec<Value> = self
            .state
            .ifaces
            .iter()
            .map(|f| {
                json!({
                    "name": f.name,
                    "port": self.state.ports[f.port].name,
                    "vlan": if f.vlan == 0 { Value::Null } else { json!(f.vlan) },
                    "mac": self.rt.port_macs[f.port].to_string(),
                    "mtu": f.mtu.unwrap_or(self.state.ports[f.port].mtu),
                    "addresses": f.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                })
            })
            .chain(self.tunnel_interface_rows())
            .chain(self.vti_rows())
            .collect();
        Value::Array(rows)
    }

    fn show_routes(&self) -> Value {
        let st = &self.state;
        let resolved = self.neigh.resolved();
        let mut rows = Vec::new();
        let named = st
            .ifaces
            .iter()
            .map(|f| (&f.name, &f.addrs))
            .chain(st.tunnels.iter().map(|t| (&t.name, &t.addrs)));
        for (name, addrs) in named {
            for a in addrs {
                let host = if a.addr.is_ipv6() { 128 } else { 32 };
                rows.push(json!({"prefix": format!("{}/{host}", a.addr), "nexthop": "local", "interface": name, "source": "local", "state": "up"}));
                rows.push(json!({"prefix": a.subnet().to_string(), "nexthop": "connected", "interface": name, "source": "connected", "state": "up"}));
            }
        }
        rows.extend(self.vti_route_rows());
        for r in &st.routes {
            let (nh, ifn, state) = match r.target {
                RouteTarget::Vti(ref n) => ("vti".to_string(), json!(n), "up"),
                RouteTarget::Blackhole => ("blackhole".to_string(), Value::Null, "up"),
                RouteTarget::Iface(i) => ("connected".to_string(), json!(st.ifaces[i].name), "up"),
                RouteTarget::Tunnel(ref n) => ("tunnel".to_string(), json!(n), "up"),
                RouteTarget::Via { gateway, iface } => {
                    let i = iface.or_else(|| st.connected_iface(gateway));
                    let up = i.is_some_and(|i| {
                        resolved.contains_key(&(i, gateway))
                            || st.neighbors.iter().any(|n| n.iface == i && n.ip == gateway)
                    });
                    (
                        format!("via {gateway}"),
                        i.map(|i| json!(st.ifaces[i].name)).unwrap_or(Value::Null),
                        if up { "up" } else { "unresolved" },
                    )
                }
            };
            rows.push(json!({"prefix": r.prefix.to_string(), "nexthop": nh, "interface": ifn, "source": "static", "state": state}));
        }
        Value::Array(rows)
    }

    fn show_neighbors(&self) -> Value {
        let st = &self.state;
        let now = Instant::now();
        let mut rows: Vec<(usize, IpAddr, Value)> = st
            .neighbors
            .iter()
            .map(|n| {
                (n.iface, n.ip, json!({"interface": st.ifaces[n.iface].name, "ip": n.ip.to_string(), "mac": n.mac.to_string(), "state": "static", "age_s": Value::Null}))
            })
            .collect();
        for (&(i, ip), e) in self.neigh.entries() {
            let state = match e.state {
                NState::Incomplete => "incomplete",
                NState::Reachable => "reachable",
                NState::Probe => "probe",
                NState::Failed => "failed",
            };
            rows.push((
                i,
                ip,
                json!({
                    "interface": st.ifaces.get(i).map(|f| f.name.clone()),
                    "ip": ip.to_string(),
                    "mac": e.mac.map(|m| m.to_string()),
                    "state": state,
                    "age_s": now.saturating_duration_since(e.since).as_secs(),
                }),
            ));
        }
        rows.sort_by_key(|(i, ip, _)| (*i, *ip));
        Value::Array(rows.into_iter().map(|(_, _, v)| v).collect())
    }

    fn show_stats(&self) -> Value {
        let mut rows = Vec::new();
        for (i, w) in self.workers.iter().enumerate() {
            let c = &w.counters;
            let rx = c.rx_packets.get();
            let bursts = c.bursts.get();
            let cpp = if rx == 0 {
                0.0
            } else {
                c.busy_cycles.get() as f64 / rx as f64
            };
            let ppb = if bursts == 0 {
                0.0
            } else {
                rx as f64 / bursts as f64
            };
            rows.push(json!({
                "worker": i,
                "lcore": self.lcores.get(i),
                "rx_packets": rx,
                "rx_bytes": c.rx_bytes.get(),
                "tx_packets": c.tx_packets.get(),
                "tx_bytes": c.tx_bytes.get(),
                "drops": c.total_drops(),
                "punted": c.punted.get(),
                "injected": c.injected.get(),
                "bursts": bursts,
                "pkts_per_burst": (ppb * 10.0).round() / 10.0,
                "cycles_per_packet": cpp.round() as u64,
                "idle_polls": c.idle_polls.get(),
                "tables": c.table_version.get(),
            }));
        }
        Value::Array(rows)
    }

    fn show_errors(&self) -> Value {
        let mut rows = Vec::new();
        for r in DropReason::ALL {
            let per: Vec<u64> = self
                .workers
                .iter()
                .map(|w| w.counters.drops[*r as usize].get())
                .collect();
            let total: u64 = per.iter().sum();
            if total > 0 {
                rows.push(json!({"reason": r.name(), "count": total, "per_worker": per, "description": r.text()}));
            }
        }
        if self.inject_failed > 0 {
            rows.push(json!({"reason": "control-inject-failed", "count": self.inject_failed, "per_worker": Value::Null, "description": "Control thread could not inject a frame (pool empty or queue full)"}));
        }
        Value::Array(rows)
    }
}

/// True for an ICMPv6 Neighbor Discovery message (types 133..=137) in an IPv6 packet.
fn is_ndisc(p: &[u8]) -> bool {
    let Ok(ip) = dataplane::wire::Ipv6Packet::new_checked(p) else {
        return false;
    };
    match ip.upper_layer() {
        Ok(ul) if ul.protocol == 58 => p.get(ul.offset).is_some_and(|t| (133..=137).contains(t)),
        _ => false,
    }
}
