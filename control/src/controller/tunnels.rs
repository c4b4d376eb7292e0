//! The controller's tunnel duties: host-stack interfaces for tunnel addresses (a ping to a
//! tunnel address is answered through the tunnel), per-tunnel state kept across table
//! versions, and `show tunnels` / `show xconnects` / tunnel rows of `show interfaces`.

use super::Controller;
use crate::build::Runtime;
use crate::hoststack::HostStack;
use crate::neighbor::IfInfo;
use crate::state::State;
use dataplane::outer::{DfPolicy, TosPolicy};
use dataplane::packet::Packet;
use dataplane::stats::Counter;
use dataplane::tables::tunnels::TunnelCounters;
use dataplane::tunnel::Endpoints;
use dataplane::wire::Mac;
use serde_json::{json, Value};

/// Port for the host-stack entry of a tunnel interface (it has no port and never sees
/// frames: only IP packets, punted at L3).
const NO_PORT: u16 = u16::MAX;

/// Host-stack interfaces and their MTUs, in dataplane interface order: the port interfaces,
/// then one per tunnel.
pub(super) fn host_ifs(st: &State, rt: &Runtime) -> (Vec<IfInfo>, Vec<u16>) {
    let mut infos: Vec<IfInfo> = st
        .ifaces
        .iter()
        .map(|f| IfInfo {
            port: rt.port_ids[f.port],
            vlan: f.vlan,
            mac: rt.port_macs[f.port],
            addrs: f.addrs.clone(),
        })
        .collect();
    let mut mtus: Vec<u16> = st
        .ifaces
        .iter()
        .map(|f| f.mtu.unwrap_or(st.ports[f.port].mtu))
        .collect();
    for (k, t) in st.tunnels.iter().enumerate() {
        infos.push(IfInfo {
            port: NO_PORT,
            vlan: 0,
            mac: Mac::ZERO,
            addrs: t.addrs.clone(),
        });
        mtus.push(st.tunnel_mtu(k));
    }
    // Then the VTIs (the dataplane's interface order), so their addresses answer too.
    for v in &st.ipsec.vtis {
        infos.push(IfInfo {
            port: NO_PORT,
            vlan: 0,
            mac: Mac::ZERO,
            addrs: v.addrs.clone(),
        });
        mtus.push(crate::build::vti_mtu(st, v));
    }
    (infos, mtus)
}

fn endpoints(e: &Endpoints, any: bool) -> (String, String) {
    let (l, r) = match e {
        Endpoints::V4 { local, remote } => (local.to_string(), remote.to_string()),
        Endpoints::V6 { local, remote } => (local.to_string(), remote.to_string()),
    };
    (l, if any { "any".into() } else { r })
}

impl<P: Packet + Send> Controller<P> {
    /// After a change to `new` was published: forget the state of deleted tunnels, and give
    /// the host stack the new set of tunnel interfaces when it changed.
    pub(super) fn tunnels_changed(&mut self, new: &State) {
        self.tunnel_states
            .retain(|name, _| new.tunnels.iter().any(|t| &t.name == name));
        let sig = |s: &State| -> Vec<(String, Vec<String>, u16)> {
            s.tunnels
                .iter()
                .enumerate()
                .map(|(k, t)| {
                    (
                        t.name.clone(),
                        t.addrs.iter().map(|a| a.to_string()).collect(),
                        s.tunnel_mtu(k),
                    )
                })
                .chain(s.ipsec.vtis.iter().map(|v| {
                    (
                        v.name.clone(),
                        v.addrs.iter().map(|a| a.to_string()).collect(),
                        crate::build::vti_mtu(s, v),
                    )
                }))
                .collect()
        };
        if sig(&self.state) != sig(new) {
            let (infos, mtus) = host_ifs(new, &self.rt);
            self.host = HostStack::new(&infos, &mtus);
        }
    }

    fn tunnel_totals(&self, name: &str) -> Option<(u64, u64, u64, u64, u64)> {
        let s = self.tunnel_states.get(name)?;
        let sum = |f: &dyn Fn(&TunnelCounters) -> &Counter| s.total(f);
        let drops = s.drops().iter().map(|(_, n)| n).sum();
        Some((
            sum(&|c| &c.rx_packets),
            sum(&|c| &c.rx_bytes),
            sum(&|c| &c.tx_packets),
            sum(&|c| &c.tx_bytes),
            drops,
        ))
    }

    /// `show tunnels [NAME]`: one row per tunnel; with a name, one object with that tunnel's
    /// settings and its drops by reason.
    pub(super) fn show_tunnels(&self, name: Option<&str>) -> Result<Value, String> {
        let st = &self.state;
        if let Some(n) = name {
            if st.tunnel_index(n).is_none() {
                return Err(format!("name: no tunnel named '{n}'"));
            }
        }
        let mut rows = Vec::new();
        for (k, t) in st.tunnels.iter().enumerate() {
            if name.is_some_and(|n| n != t.name) {
                continue;
            }
            let (local, remote) = endpoints(&t.encap.endpoints, t.remote_any);
            let mtu = st.tunnel_mtu(k) - if t.is_l3() { 0 } else { 14 };
            let attached = if t.is_l3() {
                json!(t.name)
            } else {
                st.xconnects
                    .iter()
                    .find(|x| x.tunnel == t.name)
                    .map(|x| json!(format!("xconnect {}", x.name)))
                    .unwrap_or(Value::Null)
            };
            let (rxp, rxb, txp, txb, drops) = self.tunnel_totals(&t.name).unwrap_or_default();
            let mut row = json!({
                "name": t.name,
                "profile": t.raw.profile,
                "local": local,
                "remote": remote,
                "key": t.encap.key,
                "port": t.encap.kind.is_udp().then_some(t.encap.dst_port),
                "mode": if t.inbound_only { "inbound" } else { "bidirectional" },
                "mtu": mtu,
                "attached": attached,
                "rx_packets": rxp,
                "rx_bytes": rxb,
                "tx_packets": txp,
                "tx_bytes": txb,
                "drops": drops,
            });
            if name.is_some() {
                let o = t.encap.outer;
                let extra = json!({
                    "mtu_configured": t.mtu,
                    "ttl": o.ttl,
                    "tos": match o.tos {
                        TosPolicy::Preserve => json!("preserve"),
                        TosPolicy::Fixed(v) => json!(v),
                    },
                    "df": match o.df {
                        DfPolicy::Propagate => "propagate",
                        DfPolicy::Set => "set",
                        DfPolicy::Clear => "clear",
                    },
                    "gre_checksum": t.encap.gre_checksum,
                    "gre_sequence": t.encap.gre_sequence,
                    "addresses": t.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "drop_reasons": self
                        .tunnel_states
                        .get(&t.name)
                        .map(|s| {
                            s.drops()
                                .into_iter()
                                .map(|(r, n)| (r.name().to_string(), json!(n)))
                                .collect::<serde_json::Map<_, _>>()
                        })
                        .unwrap_or_default(),
                });
                if let (Some(r), Some(e)) = (row.as_object_mut(), extra.as_object()) {
                    r.extend(e.clone());
                }
            }
            if name.is_some() {
                return Ok(row);
            }
            rows.push(row);
        }
        Ok(Value::Array(rows))
    }

    pub(super) fn show_xconnects(&self) -> Value {
        let st = &self.state;
        Value::Array(
            st.xconnects
                .iter()
                .map(|x| {
                    json!({
                        "name": x.name,
                        "port": st.ports[x.port].name,
                        "vlan": x.vlan,
                        "tunnel": x.tunnel,
                    })
                })
                .collect(),
        )
    }

    /// Rows of `show interfaces` for the tunnel interfaces.
    pub(super) fn tunnel_interface_rows(&self) -> Vec<Value> {
        let st = &self.state;
        st.tunnels
            .iter()
            .enumerate()
            .filter(|(_, t)| t.is_l3())
            .map(|(k, t)| {
                json!({
                    "name": t.name,
                    "port": format!("tunnel ({})", t.raw.profile),
                    "vlan": Value::Null,
                    "mac": Value::Null,
                    "mtu": st.tunnel_mtu(k),
                    "addresses": t.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                })
            })
            .collect()
    }
}
