//! The tunnel table a worker reads: every configured overlay tunnel (its encapsulation, what
//! it is attached to, its MTU) and the decapsulation demultiplexer — (local address, remote
//! address or any, outer protocol or UDP port, key / VNI / VSID) → tunnel.
//!
//! Like every table it is immutable once published. What changes per packet lives in
//! [`TunnelShared`], which the control thread keeps per tunnel across republishes: per-worker
//! counters (each worker writes only its own cache-line-aligned block, so no locked
//! instruction), each worker's RFC 2890 receive-sequence state, and the send-side GRE
//! sequence counter (the one atomic read-modify-write, paid only by tunnels that send
//! sequence numbers).

use crate::stats::{Counter, DropReason};
use crate::tables::fib::{Fib, NextHop};
use crate::tables::iface::{Adjacency, IfIndex};
use crate::tunnel::{
    DecapConfig, DecapInfo, EncapTemplate, Endpoints, GreSeqState, Payload, TunnelEncap, TunnelKind,
};
use crate::wire::ipproto;
use hashbrown::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// What a tunnel's inner side is connected to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// Nothing yet (an L2 tunnel without a cross-connect): decapsulated frames are dropped.
    Unattached,
    /// A routed interface: decapsulated packets arrive on `ifindex`, routes into it encap.
    L3 { ifindex: IfIndex },
    /// A point-to-point L2 cross-connect: decapsulated frames leave on `port`, tagged with
    /// `vlan` unless it is 0; frames from there (with that tag, removed) are encapsulated.
    Xconnect { port: u16, vlan: u16 },
}

/// One worker's counters for one tunnel (single writer: that worker).
#[repr(C, align(128))]
#[derive(Debug)]
pub struct TunnelCounters {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    /// Outer IPv4 identification for DF-clear packets (this worker's sequence).
    ip_id: Counter,
    /// RFC 2890 receive state as seen by this worker: bit 32 set once a number was accepted,
    /// the low 32 bits the last one.
    rx_seq: AtomicU64,
    pub drops: [Counter; DropReason::COUNT],
}

impl Default for TunnelCounters {
    fn default() -> Self {
        TunnelCounters {
            rx_packets: Counter::default(),
            rx_bytes: Counter::default(),
            tx_packets: Counter::default(),
            tx_bytes: Counter::default(),
            ip_id: Counter::default(),
            rx_seq: AtomicU64::new(0),
            drops: std::array::from_fn(|_| Counter::default()),
        }
    }
}

impl TunnelCounters {
    /// This worker's receive-sequence state.
    #[inline]
    pub fn seq_state(&self) -> GreSeqState {
        let v = self.rx_seq.load(Ordering::Relaxed);
        GreSeqState::from_parts(v >> 32 != 0, v as u32)
    }

    /// Store the receive-sequence state back (owning worker only).
    #[inline]
    pub fn set_seq_state(&self, s: GreSeqState) {
        let v = match s.last() {
            Some(l) => (1u64 << 32) | l as u64,
            None => 0,
        };
        self.rx_seq.store(v, Ordering::Relaxed);
    }
}

/// Per-tunnel state that outlives table versions (the control thread keeps it by tunnel).
#[derive(Debug)]
pub struct TunnelShared {
    /// One block per worker.
    pub workers: Box<[TunnelCounters]>,
    /// Next GRE sequence number to send.
    tx_seq: AtomicU32,
}

impl TunnelShared {
    pub fn new(workers: usize) -> TunnelShared {
        TunnelShared {
            workers: (0..workers.max(1))
                .map(|_| TunnelCounters::default())
                .collect(),
            tx_seq: AtomicU32::new(0),
        }
    }

    /// The counters of worker `w` (`None` for a worker the block was not sized for).
    #[inline]
    pub fn worker(&self, w: u32) -> Option<&TunnelCounters> {
        self.workers.get(w as usize)
    }

    /// The GRE sequence number for the next packet (RFC 2890 §2.2: from 0, wrapping).
    #[inline]
    pub fn next_tx_seq(&self) -> u32 {
        self.tx_seq.fetch_add(1, Ordering::Relaxed)
    }

    /// The outer IPv4 identification for worker `w`'s next DF-clear packet: the worker's own
    /// counter interleaved with the other workers' (id = n · workers + w), so two workers
    /// never send the same identification in the same wrap.
    #[inline]
    pub fn next_ip_id(&self, w: u32) -> u16 {
        let n = self.workers.len() as u64;
        match self.worker(w) {
            Some(c) => {
                let k = c.ip_id.get();
                c.ip_id.inc();
                (k.wrapping_mul(n).wrapping_add(w as u64)) as u16
            }
            None => 0,
        }
    }

    /// Sum of one counter over the workers.
    pub fn total(&self, f: impl Fn(&TunnelCounters) -> &Counter) -> u64 {
        self.workers.iter().map(|c| f(c).get()).sum()
    }

    /// Drops by reason summed over the workers (reasons with a zero count left out).
    pub fn drops(&self) -> Vec<(DropReason, u64)> {
        DropReason::ALL
            .iter()
            .map(|&r| (r, self.total(|c| &c.drops[r as usize])))
            .filter(|&(_, n)| n > 0)
            .collect()
    }
}

/// One tunnel as the workers see it.
#[derive(Clone, Debug)]
pub struct TunnelEntry {
    pub encap: TunnelEncap,
    /// Receive only: never chosen for encapsulation (also every tunnel with remote `any`).
    pub inbound_only: bool,
    pub attach: Attach,
    /// Largest inner packet sent without fragmentation or an ICMP error: an IP packet for
    /// L3 tunnels, an Ethernet frame (without FCS) for L2 ones.
    pub mtu: u16,
    pub shared: Arc<TunnelShared>,
}

/// How a tunnel's traffic is told apart on receive: the outer protocol, refined by the
/// payload where two kinds share a protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DemuxClass {
    /// GRE carrying IPv4/IPv6.
    GreIp,
    /// GRE carrying Ethernet (GRE-TEB).
    GreEth,
    /// NVGRE (the id is the VSID).
    Nvgre,
    /// IP protocol 4 (IPv4 inside).
    Ipip4,
    /// IP protocol 41 (IPv6 inside).
    Ipip6,
    Etherip,
    Vxlan,
    VxlanGpe,
    Geneve,
}

/// A demultiplexer key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TunnelKey {
    pub local: IpAddr,
    /// `None`: any remote (GRE and IPIP only).
    pub remote: Option<IpAddr>,
    pub class: DemuxClass,
    /// UDP destination port (0 when not UDP).
    pub port: u16,
    /// Key, VNI or VSID.
    pub id: Option<u32>,
}

/// The last answer of [`TunnelTable::lookup_memo`] (one table's: start a new memo with each
/// table version).
#[derive(Clone, Copy, Debug, Default)]
pub struct DemuxMemo {
    last: Option<(Packed, Option<u32>)>,
}

/// The demultiplexer's own form of a key: addresses as numbers (IPv4 as v4-mapped IPv6),
/// everything else in one word; compared and hashed as plain integers. The derived forms
/// walked enum tags and octet slices and were half of the lookup, which runs for every
/// tunnel packet received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Packed {
    local: u128,
    remote: u128,
    /// class << 56 | remote given << 50 | id given << 49 | port << 32 | id.
    rest: u64,
}

#[inline(always)]
fn addr_bits(a: &IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => (0xffff << 32) | u32::from(*a) as u128,
        IpAddr::V6(a) => u128::from(*a),
    }
}

impl Packed {
    #[inline(always)]
    fn new(
        local: &IpAddr,
        remote: Option<&IpAddr>,
        class: DemuxClass,
        port: u16,
        id: Option<u32>,
    ) -> Packed {
        Packed {
            local: addr_bits(local),
            remote: remote.map_or(0, addr_bits),
            rest: ((class as u64) << 56)
                | ((remote.is_some() as u64) << 50)
                | ((id.is_some() as u64) << 49)
                | ((port as u64) << 32)
                | id.unwrap_or(0) as u64,
        }
    }

    fn of(k: &TunnelKey) -> Packed {
        Packed::new(&k.local, k.remote.as_ref(), k.class, k.port, k.id)
    }
}

/// One word into the hasher.
impl std::hash::Hash for Packed {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let w = (self.local as u64)
            ^ ((self.local >> 64) as u64).rotate_left(29)
            ^ (self.remote as u64).rotate_left(32)
            ^ ((self.remote >> 64) as u64).rotate_left(7)
            ^ self.rest.rotate_left(13);
        state.write_u64(w);
    }
}

/// The keys a tunnel is found under.
pub fn keys_of(t: &TunnelEncap, remote_any: bool) -> Vec<TunnelKey> {
    let (local, remote) = match t.endpoints {
        crate::tunnel::Endpoints::V4 { local, remote } => (IpAddr::V4(local), IpAddr::V4(remote)),
        crate::tunnel::Endpoints::V6 { local, remote } => (IpAddr::V6(local), IpAddr::V6(remote)),
    };
    let remote = (!remote_any).then_some(remote);
    let k = |class, port, id| TunnelKey {
        local,
        remote,
        class,
        port,
        id,
    };
    match t.kind {
        TunnelKind::Gre => vec![k(DemuxClass::GreIp, 0, t.key)],
        TunnelKind::GreTeb => vec![k(DemuxClass::GreEth, 0, t.key)],
        TunnelKind::Nvgre => vec![k(DemuxClass::Nvgre, 0, t.key)],
        TunnelKind::Etherip => vec![k(DemuxClass::Etherip, 0, None)],
        TunnelKind::Ipip => {
            let p = t.carries();
            let mut v = Vec::new();
            if p.accepts(crate::tunnel::PayloadType::Ipv4) {
                v.push(k(DemuxClass::Ipip4, 0, None));
            }
            if p.accepts(crate::tunnel::PayloadType::Ipv6) {
                v.push(k(DemuxClass::Ipip6, 0, None));
            }
            v
        }
        TunnelKind::Vxlan => vec![k(DemuxClass::Vxlan, t.dst_port, t.key)],
        TunnelKind::VxlanGpe => vec![k(DemuxClass::VxlanGpe, t.dst_port, t.key)],
        TunnelKind::Geneve => vec![k(DemuxClass::Geneve, t.dst_port, t.key)],
    }
}

/// What [`TunnelTable::build`] takes per tunnel.
#[derive(Clone, Debug)]
pub struct TunnelSpec {
    pub entry: TunnelEntry,
    /// Receives from any remote (GRE, IPIP).
    pub remote_any: bool,
    /// Geneve options (class, type) understood.
    pub geneve_known: Vec<(u16, u8)>,
}

/// Every tunnel of one table version and how to find them.
#[derive(Debug, Default)]
pub struct TunnelTable {
    entries: Vec<TunnelEntry>,
    demux: HashMap<Packed, u32>,
    /// UDP ports that carry tunnels, with their kind.
    udp_ports: Vec<(u16, TunnelKind)>,
    /// Geneve options understood (the union over the Geneve tunnels).
    geneve_known: Vec<(u16, u8)>,
    /// Some tunnel accepts a zero UDP checksum over IPv6.
    udp6_zero: bool,
    /// Outer protocols some tunnel uses (GRE, IPIP 4/41, EtherIP).
    gre: bool,
    ipip: bool,
    etherip: bool,
    /// Per tunnel, the FIB's next-hop index for its far end ([`NO_ROUTE`] when there is
    /// none), looked up once by [`route_outer`](Self::route_outer) in the FIB published
    /// with this table; empty until then (every packet then looks it up).
    outer_nh: Vec<u32>,
    /// Tunnel local IPv4 addresses the same FIB delivers locally (at most
    /// [`LOCAL4_MAX`]), filled by [`route_outer`](Self::route_outer): a packet to one of
    /// them skips the route lookup on the decap fast path.
    local4: Vec<[u8; 4]>,
    /// The same for IPv6 endpoints.
    local6: Vec<[u8; 16]>,
    /// Per tunnel, its prebuilt outer headers (every tunnel but those sending GRE sequence
    /// numbers), made with the entry: entries never change once built.
    templates: Vec<Option<EncapTemplate>>,
    /// Per tunnel, what the encapsulation fast path needs, decided with `outer_nh` by
    /// [`route_outer`](Self::route_outer) (`None`: the fast path never takes the tunnel).
    fast_encap: Vec<Option<FastEncap>>,
}

/// A tunnel the encapsulation fast path may take, and where its packets go: everything that
/// does not depend on the packet, decided once per table version instead of per packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastEncap {
    /// The resolved, untagged adjacency towards the far end.
    pub adj: Adjacency,
    /// The largest inner packet (an L2 tunnel's frame) taken: the tunnel MTU, and no more
    /// than the adjacency's MTU leaves after the outer headers.
    pub max_inner: u16,
    /// Headroom needed: the outer headers and the adjacency's Ethernet header.
    pub room: u16,
    /// What the tunnel carries ([`TunnelEncap::carries`]).
    pub carries: Payload,
}

impl FastEncap {
    /// The plan for tunnel entry `e` with template `tpl` whose far end's next hop is `nh`:
    /// only tunnels that send (not inbound-only), keep no GRE sequence (a shared counter the
    /// general path owns), have a template, a unicast far end, and a resolved untagged
    /// adjacency the outer headers fit.
    fn plan(e: &TunnelEntry, tpl: Option<&EncapTemplate>, nh: Option<&NextHop>) -> Option<Self> {
        if e.inbound_only || e.encap.gre_sequence {
            return None;
        }
        let overhead = tpl?.overhead();
        match nh? {
            NextHop::Forward(adj) if e.encap.endpoints.remote_is_unicast() && adj.vlan == 0 => {
                let fits = (adj.mtu as usize).checked_sub(overhead)?;
                Some(FastEncap {
                    adj: *adj,
                    max_inner: fits.min(e.mtu as usize) as u16,
                    room: (overhead + crate::wire::ethernet::HEADER_LEN) as u16,
                    carries: e.encap.carries(),
                })
            }
            _ => None,
        }
    }
}

/// How many local tunnel addresses of a family [`TunnelTable::is_local4`] and
/// [`TunnelTable::is_local6`] scan (more are looked up).
const LOCAL4_MAX: usize = 8;

/// `outer_nh` of a tunnel whose far end has no route.
const NO_ROUTE: u32 = u32::MAX;

impl TunnelTable {
    /// Look up every tunnel's far end in `fib`, the FIB of the same table version (the
    /// control thread builds both together; a route change is a new version of both), so
    /// encapsulation does not walk the trie per packet.
    pub fn route_outer(&mut self, fib: &Fib) {
        self.outer_nh = self
            .entries
            .iter()
            .map(|e| {
                let r = match e.encap.endpoints {
                    Endpoints::V4 { remote, .. } => fib.lookup4_idx(remote.octets()),
                    Endpoints::V6 { remote, .. } => fib.lookup6_idx(remote.octets()),
                };
                r.map_or(NO_ROUTE, |(i, _)| i)
            })
            .collect();
        self.fast_encap = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let nh = fib.nexthops().get(self.outer_nh[i] as usize);
                FastEncap::plan(e, self.templates[i].as_ref(), nh)
            })
            .collect();
        self.local4.clear();
        self.local6.clear();
        for e in &self.entries {
            match e.encap.endpoints {
                Endpoints::V4 { local, .. } => {
                    let a = local.octets();
                    let is_local = matches!(fib.lookup4_idx(a), Ok((_, NextHop::Local { .. })));
                    if is_local && !self.local4.contains(&a) && self.local4.len() < LOCAL4_MAX {
                        self.local4.push(a);
                    }
                }
                Endpoints::V6 { local, .. } => {
                    let a = local.octets();
                    let is_local = matches!(fib.lookup6_idx(a), Ok((_, NextHop::Local { .. })));
                    if is_local && !self.local6.contains(&a) && self.local6.len() < LOCAL4_MAX {
                        self.local6.push(a);
                    }
                }
            }
        }
    }

    /// [`is_local4`](Self::is_local4) for IPv6 endpoints.
    #[inline(always)]
    pub fn is_local6(&self, dst: [u8; 16]) -> bool {
        self.local6.contains(&dst)
    }

    /// `dst` is a tunnel endpoint address of ours that the table version's FIB delivers
    /// locally (false also when it was not among the first few, or before `route_outer`).
    #[inline(always)]
    pub fn is_local4(&self, dst: [u8; 4]) -> bool {
        self.local4.contains(&dst)
    }

    /// The next-hop index of tunnel `i`'s far end in `fib` (the table version's FIB), or
    /// `None` without a route.
    #[inline]
    pub fn outer_route(&self, i: u32, fib: &Fib) -> Option<u32> {
        if let Some(&nh) = self.outer_nh.get(i as usize) {
            return (nh != NO_ROUTE).then_some(nh);
        }
        let e = self.entries.get(i as usize)?;
        let r = match e.encap.endpoints {
            Endpoints::V4 { remote, .. } => fib.lookup4_idx(remote.octets()),
            Endpoints::V6 { remote, .. } => fib.lookup6_idx(remote.octets()),
        };
        r.ok().map(|(i, _)| i)
    }

    /// Build from the tunnels in order. Errors name the tunnel index of a key clash or a UDP
    /// port used by two kinds (the control plane validates first, so this is a second line).
    pub fn build(list: Vec<TunnelSpec>) -> Result<TunnelTable, String> {
        let mut t = TunnelTable::default();
        for (i, spec) in list.into_iter().enumerate() {
            let TunnelSpec {
                entry: e,
                remote_any: any,
                geneve_known: known,
            } = spec;
            for k in keys_of(&e.encap, any) {
                if let Some(j) = t.demux.insert(Packed::of(&k), i as u32) {
                    return Err(format!(
                        "tunnels {j} and {i} share local, remote, protocol/port and key"
                    ));
                }
            }
            let kind = e.encap.kind;
            if kind.is_udp() {
                let p = e.encap.dst_port;
                match t.udp_ports.iter().find(|(q, _)| *q == p) {
                    Some(&(_, k)) if k != kind => {
                        return Err(format!(
                            "UDP port {p} carries both {} and {}",
                            k.name(),
                            kind.name()
                        ))
                    }
                    Some(_) => {}
                    None => t.udp_ports.push((p, kind)),
                }
            }
            t.gre |= kind.is_gre();
            t.ipip |= kind == TunnelKind::Ipip;
            t.etherip |= kind == TunnelKind::Etherip;
            t.udp6_zero |= e.encap.udp6_zero_checksum;
            for o in known {
                if !t.geneve_known.contains(&o) {
                    t.geneve_known.push(o);
                }
            }
            t.templates.push(EncapTemplate::new(&e.encap));
            t.entries.push(e);
        }
        Ok(t)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[inline]
    pub fn get(&self, i: u32) -> Option<&TunnelEntry> {
        self.entries.get(i as usize)
    }

    /// Tunnel `i`'s outer-header template, when it has one.
    #[inline]
    pub fn template(&self, i: u32) -> Option<&EncapTemplate> {
        self.templates.get(i as usize)?.as_ref()
    }

    /// Tunnel `i`'s fast-path encapsulation plan (`None` before
    /// [`route_outer`](Self::route_outer), or when the fast path must not take it).
    #[inline(always)]
    pub fn fast_encap(&self, i: u32) -> Option<&FastEncap> {
        self.fast_encap.get(i as usize)?.as_ref()
    }

    pub fn entries(&self) -> &[TunnelEntry] {
        &self.entries
    }

    /// Receive settings for [`crate::tunnel::decap_parse`]: only configured ports are tunnel
    /// ports (a VXLAN packet to us with no VXLAN tunnel is ordinary local UDP).
    #[inline]
    pub fn decap_config(&self) -> DecapConfig<'_> {
        DecapConfig {
            vxlan_port: 0,
            vxlan_gpe_port: 0,
            geneve_port: 0,
            udp6_zero_checksum: self.udp6_zero,
            geneve_known_options: &self.geneve_known,
            other_udp_ports: &self.udp_ports,
        }
    }

    /// Could a packet to one of our addresses with this protocol (and UDP destination port)
    /// be for a tunnel? A cheap pre-check before parsing.
    #[inline]
    pub fn wants(&self, proto: u8, udp_dport: Option<u16>) -> bool {
        match proto {
            ipproto::GRE => self.gre,
            ipproto::IPIP | ipproto::IPV6 => self.ipip,
            ipproto::ETHERIP => self.etherip,
            ipproto::UDP => udp_dport.is_some_and(|p| self.udp_ports.iter().any(|&(q, _)| q == p)),
            _ => false,
        }
    }

    /// The tunnel a parsed packet belongs to: the exact remote first, then a remote-`any`
    /// tunnel; for GRE, a tunnel without a key is the last resort for a keyed packet (so the
    /// key mismatch is counted against that tunnel), and a keyed GRE-Ethernet packet that is
    /// no GRE-TEB tunnel's is tried as NVGRE (VSID = key >> 8).
    #[inline(always)]
    pub fn lookup(&self, info: &DecapInfo) -> Option<u32> {
        let k = &info.key;
        let find = |class: DemuxClass, id: Option<u32>| {
            let key = Packed::new(&k.local, Some(&k.remote), class, k.port, id);
            self.demux.get(&key).copied().or_else(|| {
                let any = Packed::new(&k.local, None, class, k.port, id);
                self.demux.get(&any).copied()
            })
        };
        match info.kind {
            TunnelKind::Gre => find(DemuxClass::GreIp, k.id)
                .or_else(|| k.id.and_then(|_| find(DemuxClass::GreIp, None))),
            TunnelKind::GreTeb | TunnelKind::Nvgre => find(DemuxClass::GreEth, k.id)
                .or_else(|| {
                    k.nvgre_vsid()
                        .and_then(|v| find(DemuxClass::Nvgre, Some(v)))
                })
                .or_else(|| k.id.and_then(|_| find(DemuxClass::GreEth, None))),
            TunnelKind::Ipip => match k.proto {
                ipproto::IPV6 => find(DemuxClass::Ipip6, None),
                _ => find(DemuxClass::Ipip4, None),
            },
            TunnelKind::Etherip => find(DemuxClass::Etherip, None),
            TunnelKind::Vxlan => find(DemuxClass::Vxlan, k.id),
            TunnelKind::VxlanGpe => find(DemuxClass::VxlanGpe, k.id),
            TunnelKind::Geneve => find(DemuxClass::Geneve, k.id),
        }
    }

    /// [`lookup`](Self::lookup) through `memo`, which remembers the last answer: a burst of
    /// one tunnel's packets hashes once. Valid for one table (the fast path keeps one per
    /// burst); the answer depends only on the first key `lookup` tries.
    #[inline(always)]
    pub fn lookup_memo(&self, info: &DecapInfo, memo: &mut DemuxMemo) -> Option<u32> {
        let k = &info.key;
        let class = match info.kind {
            TunnelKind::Gre => DemuxClass::GreIp,
            TunnelKind::GreTeb | TunnelKind::Nvgre => DemuxClass::GreEth,
            TunnelKind::Ipip if k.proto == ipproto::IPV6 => DemuxClass::Ipip6,
            TunnelKind::Ipip => DemuxClass::Ipip4,
            TunnelKind::Etherip => DemuxClass::Etherip,
            TunnelKind::Vxlan => DemuxClass::Vxlan,
            TunnelKind::VxlanGpe => DemuxClass::VxlanGpe,
            TunnelKind::Geneve => DemuxClass::Geneve,
        };
        let key = Packed::new(&k.local, Some(&k.remote), class, k.port, k.id);
        match memo.last {
            Some((m, r)) if m == key => r,
            _ => {
                let r = self.lookup(info);
                memo.last = Some((key, r));
                r
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{HeapPacket, Packet};
    use crate::tunnel::{decap_parse, encap, Endpoints, TunnelEncap};

    fn ep(l: &str, r: &str) -> Endpoints {
        Endpoints::V4 {
            local: l.parse().unwrap(),
            remote: r.parse().unwrap(),
        }
    }

    fn entry(t: TunnelEncap) -> TunnelEntry {
        TunnelEntry {
            encap: t,
            inbound_only: false,
            attach: Attach::Unattached,
            mtu: 1400,
            shared: Arc::new(TunnelShared::new(2)),
        }
    }

    fn spec(entry: TunnelEntry, remote_any: bool) -> TunnelSpec {
        TunnelSpec {
            entry,
            remote_any,
            geneve_known: vec![],
        }
    }

    fn tun(kind: TunnelKind, key: Option<u32>) -> TunnelEncap {
        let mut t = TunnelEncap::new(kind, ep("10.0.0.1", "10.0.0.2"));
        t.key = key;
        t
    }

    /// What the table finds for a packet the peer (the mirror of `t`) sends.
    fn found(table: &TunnelTable, t: &TunnelEncap, inner: &[u8]) -> Option<u32> {
        table.lookup(&parsed(table, t, inner))
    }

    /// A packet the peer (the mirror of `t`) sends, parsed.
    fn parsed(table: &TunnelTable, t: &TunnelEncap, inner: &[u8]) -> DecapInfo {
        let mut m = *t;
        m.endpoints = match t.endpoints {
            Endpoints::V4 { local, remote } => Endpoints::V4 {
                local: remote,
                remote: local,
            },
            e => e,
        };
        let mut p = HeapPacket::with_room(inner, 256, 64);
        encap(&mut p, &m, 7, Some(0), 1).unwrap();
        decap_parse(p.data(), &table.decap_config()).unwrap()
    }

    fn eth() -> Vec<u8> {
        let mut v = vec![0u8; 60];
        v[0] = 2;
        v[6] = 2;
        v[12] = 0x08;
        v[13] = 0x06;
        v
    }

    fn ip4() -> Vec<u8> {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9)
            .udp(1, 2)
            .write(&mut v, &[0; 8])
            .unwrap();
        v
    }

    /// VXLAN VNI 10 and 11, GRE key 5, keyless GRE, NVGRE VSID 0x1234 and IPIP from any
    /// remote (its index is the tunnel's), and their table.
    fn six() -> ([TunnelEncap; 6], TunnelTable) {
        let mut any = TunnelEncap::new(TunnelKind::Ipip, ep("10.0.0.1", "10.9.9.9"));
        any.payload = crate::tunnel::Payload::Ipv4;
        let all = [
            tun(TunnelKind::Vxlan, Some(10)),
            tun(TunnelKind::Vxlan, Some(11)),
            tun(TunnelKind::Gre, Some(5)),
            tun(TunnelKind::Gre, None),
            tun(TunnelKind::Nvgre, Some(0x1234)),
            any,
        ];
        let specs = all
            .iter()
            .enumerate()
            .map(|(i, t)| spec(entry(*t), i == 5))
            .collect();
        (all, TunnelTable::build(specs).unwrap())
    }

    #[test]
    fn keys_keep_tunnels_apart_and_any_is_second_choice() {
        let ([a, b, g, g0, nv, _], t) = six();
        assert_eq!(found(&t, &a, &eth()), Some(0));
        assert_eq!(found(&t, &b, &eth()), Some(1));
        assert_eq!(found(&t, &g, &ip4()), Some(2));
        assert_eq!(found(&t, &g0, &ip4()), Some(3));
        // A key nobody has falls to the keyless tunnel (which then refuses it by key).
        assert_eq!(found(&t, &tun(TunnelKind::Gre, Some(6)), &ip4()), Some(3));
        assert_eq!(found(&t, &nv, &eth()), Some(4));
        // IPIP from any remote.
        let from_elsewhere = TunnelEncap::new(TunnelKind::Ipip, ep("10.0.0.1", "10.7.7.7"));
        assert_eq!(found(&t, &from_elsewhere, &ip4()), Some(5));
        // VNI 12: nobody's.
        assert_eq!(found(&t, &tun(TunnelKind::Vxlan, Some(12)), &eth()), None);
        assert!(t.wants(ipproto::UDP, Some(4789)));
        assert!(!t.wants(ipproto::UDP, Some(4790)));
        assert!(!t.wants(ipproto::ETHERIP, None));
    }

    #[test]
    fn the_memo_answers_what_the_table_does_whatever_the_order() {
        let ([a, b, _, g0, nv, any], t) = six();
        let elsewhere = TunnelEncap::new(TunnelKind::Ipip, ep("10.0.0.1", "10.7.7.7"));
        let infos = [
            parsed(&t, &a, &eth()),
            parsed(&t, &b, &eth()),
            parsed(&t, &tun(TunnelKind::Vxlan, Some(12)), &eth()),
            parsed(&t, &g0, &ip4()),
            parsed(&t, &tun(TunnelKind::Gre, Some(6)), &ip4()),
            parsed(&t, &nv, &eth()),
            parsed(&t, &elsewhere, &ip4()),
            parsed(&t, &any, &ip4()),
        ];
        let mut memo = DemuxMemo::default();
        // Runs of one packet, alternations, and misses between hits.
        let order = [0, 0, 1, 0, 2, 2, 0, 3, 4, 3, 5, 5, 6, 7, 6, 2, 1, 1, 4, 0];
        for i in order {
            assert_eq!(
                t.lookup_memo(&infos[i], &mut memo),
                t.lookup(&infos[i]),
                "packet {i}"
            );
        }
    }

    #[test]
    fn clashes_are_refused() {
        let a = tun(TunnelKind::Vxlan, Some(10));
        assert!(TunnelTable::build(vec![spec(entry(a), false), spec(entry(a), false)]).is_err());
        let mut g = tun(TunnelKind::Geneve, Some(1));
        g.dst_port = 4789;
        assert!(
            TunnelTable::build(vec![spec(entry(a), false), spec(entry(g), false)])
                .unwrap_err()
                .contains("4789")
        );
    }

    #[test]
    fn ip_ids_interleave_between_workers_and_seq_state_round_trips() {
        let s = TunnelShared::new(2);
        assert_eq!(
            [s.next_ip_id(0), s.next_ip_id(0), s.next_ip_id(1)],
            [0, 2, 1]
        );
        assert_eq!([s.next_tx_seq(), s.next_tx_seq()], [0, 1]);
        let c = s.worker(1).unwrap();
        let mut st = c.seq_state();
        assert_eq!(st.last(), None);
        st.accept(u32::MAX).unwrap();
        c.set_seq_state(st);
        assert_eq!(c.seq_state().last(), Some(u32::MAX));
        assert!(s.worker(2).is_none());
    }

    #[test]
    fn far_ends_are_routed_once_per_table() {
        use crate::tables::fib::FibRoute;
        let route = |a: &str, len, nexthop| FibRoute {
            addr: a.parse().unwrap(),
            len,
            nexthop,
        };
        let routes = [route("10.0.0.0", 24, 1), route("10.0.0.1", 32, 2)];
        let nhs = vec![
            NextHop::Blackhole,
            NextHop::Blackhole,
            NextHop::Local { ifindex: 0 },
        ];
        let fib = Fib::build(&routes, nhs).unwrap();
        let mut other = tun(TunnelKind::Gre, Some(2));
        other.endpoints = ep("10.0.0.1", "192.0.2.9");
        let mut t = TunnelTable::build(vec![
            spec(entry(tun(TunnelKind::Gre, Some(1))), false),
            spec(entry(other), false),
        ])
        .unwrap();
        // Before: looked up on demand; after: the same answers from the table.
        let before: Vec<_> = (0..3).map(|i| t.outer_route(i, &fib)).collect();
        t.route_outer(&fib);
        let after: Vec<_> = (0..3).map(|i| t.outer_route(i, &fib)).collect();
        assert_eq!(before, vec![Some(1), None, None]);
        assert_eq!(after, before);
        // Both tunnels start at 10.0.0.1, which this FIB delivers locally: listed once.
        assert!(t.is_local4([10, 0, 0, 1]));
        assert!(!t.is_local4([10, 0, 0, 2]));
        assert_eq!(t.local4.len(), 1);
    }

    #[test]
    fn the_fast_encap_plan_takes_only_sending_tunnels_to_an_untagged_adjacency() {
        use crate::tables::fib::FibRoute;
        use crate::wire::ethernet::Mac;
        let adj = |vlan, mtu| Adjacency {
            ifindex: 1,
            port: 1,
            vlan,
            dst: Mac([2, 0, 0, 0, 0, 9]),
            src: Mac([2, 0, 0, 0, 0, 1]),
            mtu,
        };
        // 10.0.0.2 via an adjacency of MTU 1500, 10.0.1.2 tagged, 10.0.2.2 of MTU 1200,
        // 10.0.3.2 unresolved, 10.0.4.2 (MTU 30) too small for any outer header.
        let routes: Vec<FibRoute> = (0..5)
            .map(|i| FibRoute {
                addr: format!("10.0.{i}.2").parse().unwrap(),
                len: 32,
                nexthop: i,
            })
            .collect();
        let nhs = vec![
            NextHop::Forward(adj(0, 1500)),
            NextHop::Forward(adj(7, 1500)),
            NextHop::Forward(adj(0, 1200)),
            NextHop::Blackhole,
            NextHop::Forward(adj(0, 30)),
        ];
        let fib = Fib::build(&routes, nhs).unwrap();
        let to = |remote: &str, key: u32| {
            let mut t = TunnelEncap::new(TunnelKind::Vxlan, ep("10.0.9.1", remote));
            t.key = Some(key);
            t
        };
        let mut inbound = entry(to("10.0.0.2", 2));
        inbound.inbound_only = true;
        let mut seq = entry(tun(TunnelKind::Gre, Some(3)));
        seq.encap.endpoints = ep("10.0.9.1", "10.0.0.2");
        seq.encap.gre_sequence = true;
        let list = vec![
            entry(to("10.0.0.2", 1)),
            inbound,
            seq,
            entry(to("10.0.1.2", 4)),
            entry(to("10.0.2.2", 5)),
            entry(to("10.0.3.2", 6)),
            entry(to("10.0.4.2", 7)),
            entry(to("192.0.2.1", 8)),
            entry(to("224.0.0.5", 9)),
        ];
        let n = list.len() as u32;
        let mut t = TunnelTable::build(list.into_iter().map(|e| spec(e, false)).collect()).unwrap();
        assert!(
            (0..n).all(|i| t.fast_encap(i).is_none()),
            "none before route_outer"
        );
        t.route_outer(&fib);
        let plans: Vec<_> = (0..n).map(|i| t.fast_encap(i).copied()).collect();
        // VXLAN over IPv4: 36 octets of outer IP/UDP/VXLAN, 50 of headroom with Ethernet.
        let plan = |mtu, max_inner| {
            Some(FastEncap {
                adj: adj(0, mtu),
                max_inner,
                room: 50,
                carries: Payload::Ethernet,
            })
        };
        assert_eq!(
            plans[0],
            plan(1500, 1400),
            "the tunnel MTU (1400) is the smaller"
        );
        assert_eq!(plans[4], plan(1200, 1164), "the adjacency leaves 1200 - 36");
        for (i, why) in [
            (1, "inbound-only"),
            (2, "GRE sequence numbers"),
            (3, "tagged adjacency"),
            (5, "unresolved next hop"),
            (6, "outer headers beyond the adjacency MTU"),
            (7, "no route"),
            (8, "multicast far end"),
        ] {
            assert_eq!(plans[i], None, "{why}");
        }
    }
}
