//! The IPsec nodes: inbound ESP (SPI → SA, decrypt, re-classify the inner packet), the policy
//! check on forwarded traffic (inbound: cleartext that should have been protected, decrypted
//! traffic outside its SA's selectors; outbound: protect / bypass / discard), and outbound ESP.
//!
//! An SA is only touched by the worker that owns it; a packet meeting an SA owned elsewhere is
//! handed to the owner with its metadata and continues there in the same node.

use super::nodes::put_l2;
use super::{Ctx, Env, Handoff, Meta, Node, Pipeline};
use crate::esp;
use crate::events::{Event, PuntKind, Punted};
use crate::icmp_error::IcmpError;
use crate::packet::Packet;
use crate::stats::{reject_detail, DropReason, PolicyStat};
use crate::tables::fib::NextHop;
use crate::tables::ipsec::{Action, Dir, FlowKey, SaRef};
use crate::tables::Tables;
use crate::wire::ethernet::{self, EtherType};
use crate::wire::{ipproto, Ipv4Packet};

/// IKE's ports.
const IKE_PORT: u16 = 500;
const NATT_PORT: u16 = 4500;

/// What a packet to one of our addresses is, as far as IPsec and tunnels care.
enum LocalKind {
    /// ESP; the SPI is at this offset from the IP header.
    Esp(usize),
    Ike,
    Keepalive,
    /// Possibly a tunnel packet (protocol or UDP port some tunnel uses).
    Tunnel,
    Other,
}

fn local_kind(t: &Tables, d: &[u8], v6: bool) -> LocalKind {
    let (proto, l4) = if v6 {
        match crate::wire::Ipv6Packet::new_checked(d).and_then(|ip| ip.upper_layer()) {
            Ok(ul) if !ul.fragment => (ul.protocol, ul.offset),
            _ => return LocalKind::Other,
        }
    } else {
        match crate::wire::Ipv4Packet::new_checked(d) {
            Ok(ip) if ip.frag_word() & 0x3fff == 0 => (ip.protocol(), ip.header_len()),
            _ => return LocalKind::Other,
        }
    };
    match proto {
        ipproto::ESP => LocalKind::Esp(l4),
        ipproto::UDP => {
            let Some(u) = d.get(l4..l4 + 8) else {
                return LocalKind::Other;
            };
            let dport = u16::from_be_bytes([u[2], u[3]]);
            let payload = &d[(l4 + 8).min(d.len())..];
            match dport {
                IKE_PORT => LocalKind::Ike,
                NATT_PORT if payload == [0xff] => LocalKind::Keepalive,
                // RFC 3948 §2.2: a zero non-ESP marker means IKE.
                NATT_PORT if payload.len() >= 4 && payload[..4] == [0, 0, 0, 0] => LocalKind::Ike,
                NATT_PORT if payload.len() >= 8 => LocalKind::Esp(l4 + 8),
                NATT_PORT => LocalKind::Other,
                p if t.tunnels.wants(ipproto::UDP, Some(p)) => LocalKind::Tunnel,
                _ => LocalKind::Other,
            }
        }
        p if t.tunnels.wants(p, None) => LocalKind::Tunnel,
        _ => LocalKind::Other,
    }
}

/// The inbound SPD check of a packet that came from outside (decrypted or not); `None` to
/// let it pass. Packets we made ourselves are not checked.
fn inbound_verdict(t: &Tables, m: &Meta, k: &FlowKey) -> Option<DropReason> {
    inbound_check(t, m, k).0
}

/// The inbound check of a packet for the gateway itself. Decrypted, it must fall within its
/// SA's selectors like transit traffic; in clear, it is refused only by a policy that names
/// it (protect: it should have come protected; discard) — the default action does not apply
/// to the gateway's own control traffic (ARP, ND, IKE, ping), as on the reference products.
fn local_verdict(t: &Tables, m: &Meta, d: &[u8]) -> Option<DropReason> {
    let Some(k) = FlowKey::of(d, m.v6) else {
        return (m.sa_in != 0).then_some(DropReason::EspPolicyMismatch);
    };
    if m.sa_in != 0 {
        return inbound_verdict(t, m, &k);
    }
    // Neighbor Discovery must work whatever the policies say (RFC 4301 §4.4.1's ND bypass).
    if k.proto == ipproto::ICMPV6 && (133..=137).contains(&k.sport) {
        return None;
    }
    match t.ipsec.classify(Dir::In, m.in_if, &k).map(|p| &p.action) {
        Some(Action::Protect { .. }) => Some(DropReason::SpdUnprotected),
        Some(Action::Discard) => Some(DropReason::SpdDiscard),
        _ => None,
    }
}

/// [`inbound_verdict`] and the counters index of the policy that gave it (the default
/// action's after the last policy), `None` when no policy was consulted.
fn inbound_check(t: &Tables, m: &Meta, k: &FlowKey) -> (Option<DropReason>, Option<usize>) {
    if m.local_origin && m.sa_in == 0 {
        return (None, None);
    }
    // Decrypted by a VTI's SA: it arrived on the VTI, whose selectors are 0/0.
    if m.sa_in != 0 && !t.ipsec.vti_in.is_empty() && t.ipsec.vti_in.contains_key(&(m.sa_in - 1)) {
        return (None, None);
    }
    let pol = t.ipsec.classify(Dir::In, m.in_if, k);
    let id = pol.map_or(t.ipsec.policies().len(), |p| p.id as usize);
    let verdict = match pol.map(|p| &p.action) {
        Some(Action::Protect { inbound, .. }) => match m.sa_in {
            0 => Some(DropReason::SpdUnprotected),
            s if !inbound.contains(&(s - 1)) => Some(DropReason::EspPolicyMismatch),
            _ => None,
        },
        Some(Action::Discard) => Some(DropReason::SpdDiscard),
        // Decrypted traffic must fall within a policy naming its SA.
        Some(Action::Bypass) | None if m.sa_in != 0 => Some(DropReason::EspPolicyMismatch),
        Some(Action::Bypass) => None,
        None if t.ipsec.default_discard => Some(DropReason::SpdDiscard),
        None => None,
    };
    (verdict, Some(id))
}

/// The IP MTU towards the outer destination of a packet sealed in `mode` (the SA's peer in
/// tunnel mode, the packet's own destination in transport mode); `None` when the route does
/// not lead out (the later nodes count that).
fn path_mtu(t: &Tables, mode: esp::Mode, d: &[u8], v6: bool) -> Option<usize> {
    let dst = match mode {
        esp::Mode::Tunnel4 { remote, .. } => std::net::IpAddr::V4(remote),
        esp::Mode::Tunnel6 { remote, .. } => std::net::IpAddr::V6(remote),
        esp::Mode::Transport if v6 => {
            std::net::IpAddr::V6(crate::wire::Ipv6Packet::new_checked(d).ok()?.dst().into())
        }
        esp::Mode::Transport => std::net::IpAddr::V4(Ipv4Packet::new_checked(d).ok()?.dst().into()),
    };
    let mtu = match *t.fib.lookup(dst).ok()? {
        NextHop::Forward(a) => a.mtu,
        NextHop::Glean { ifindex } | NextHop::Unresolved { ifindex, .. } => {
            t.interfaces.get(ifindex as usize)?.mtu
        }
        NextHop::Tunnel { tunnel } => t.tunnels.get(tunnel)?.mtu,
        NextHop::Vti { vti } => t.ipsec.vtis.get(vti as usize)?.mtu,
        NextHop::Local { .. } | NextHop::Blackhole => return None,
    };
    Some(mtu as usize)
}

/// Where a packet just sealed in tunnel mode (`len` octets) can go without passing IP input
/// and forwarding again: the index of its next hop when that is a resolved adjacency it fits.
/// Those nodes would do nothing else for it — the outer header is ours and valid, no Ethernet
/// padding follows it, our own packets keep their TTL and ESP output is not policy-checked
/// again — so it goes straight to output. Everything else (no route, unresolved neighbor, a
/// tunnel or VTI next hop, local delivery, over the MTU, a multicast address IP input would
/// refuse or deliver locally, transport mode) returns `None` and takes the general path, which
/// handles and counts it. The route to the peer is looked up once per table version and
/// remembered on the SA (only its owner, this worker, touches it).
#[inline]
fn outer_adjacency(t: &Tables, sa: &mut esp::Sa, len: usize) -> Option<u32> {
    let idx = match sa.outer_nh(t.version) {
        Some(idx) => idx,
        None => {
            let (idx, _) = match sa.mode() {
                esp::Mode::Tunnel4 { local, remote } => {
                    if local.octets()[0] >= 224 || remote.octets()[0] >= 224 {
                        return None;
                    }
                    t.fib.lookup4_idx(remote.octets()).ok()?
                }
                esp::Mode::Tunnel6 { remote, .. } => {
                    if remote.octets()[0] == 0xff {
                        return None;
                    }
                    t.fib.lookup6_idx(remote.octets()).ok()?
                }
                esp::Mode::Transport => return None,
            };
            sa.set_outer_nh(t.version, idx);
            idx
        }
    };
    match t.fib.nexthops().get(idx as usize)? {
        NextHop::Forward(adj) if len <= adj.mtu as usize => Some(idx),
        _ => None,
    }
}

/// The SPI of an ESP (or NAT-T) packet to us at the start of `d`; `None` when it is not one
/// or too short to hold it.
#[inline(always)]
fn esp_spi(t: &Tables, d: &[u8], v6: bool) -> Option<u32> {
    let LocalKind::Esp(off) = local_kind(t, d, v6) else {
        return None;
    };
    d.get(off..off + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// After a failed seal or open: tell the control thread, once per SA, that SA `slot` has
/// reached a hard limit, if that is why.
#[inline]
fn report_hard<P, E: Env<P>>(env: &mut E, sa: &mut esp::Sa, slot: u32, r: DropReason) {
    if matches!(r, DropReason::EspSaExpired | DropReason::EspSeqExhausted) && sa.take_hard_report()
    {
        let _ = env.event(Event::SaHardExpired { sa: slot });
    }
}

/// The IPv4 source of the packet at the start of `d` as a number (0 for IPv6 or a short
/// header): the peer named in reject logs.
#[inline]
fn src_v4(d: &[u8]) -> u32 {
    match d.get(..20) {
        Some(h) if h[0] >> 4 == 4 => u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
        _ => 0,
    }
}

/// The IPv4 remote of a tunnel-mode SA (0 otherwise), for reject logs of outbound drops.
#[inline]
fn remote_v4(m: esp::Mode) -> u32 {
    match m {
        esp::Mode::Tunnel4 { remote, .. } => u32::from(remote),
        _ => 0,
    }
}

impl<P: Packet> Pipeline<P> {
    /// Drop packet `i` under `reason`, noting the SPI and peer for the control thread's log.
    #[inline]
    fn drop_noted(&mut self, ctx: &Ctx, i: usize, reason: DropReason, detail: u64) {
        self.slots[i] = None;
        ctx.counters.drop_noted(reason, detail);
    }

    /// A packet to one of our addresses while SAs or tunnels are installed: ESP and NAT-T go
    /// to ESP input, IKE to the control thread, NAT keepalives are absorbed, tunnel packets
    /// (that pass the inbound policy check) to decapsulation, the rest is local.
    pub(super) fn local_dispatch<E: Env<P>>(
        &mut self,
        t: &Tables,
        ctx: &Ctx,
        env: &mut E,
        i: usize,
    ) {
        let Some(p) = self.slots[i].as_ref() else {
            return;
        };
        // Fields, not a copy of the whole `Meta`: the fast entry wrote it just before this
        // call, and wide loads across those narrower stores stalled on store forwarding.
        match local_kind(t, p.data(), self.meta[i].v6) {
            LocalKind::Esp(_) => self.sched.push(Node::EspIn, i),
            LocalKind::Tunnel => {
                let m = self.meta[i];
                // Tunnel packets are transit traffic for the SPD: a policy may require GRE
                // or VXLAN between the endpoints to arrive protected.
                if !t.ipsec.is_inactive() {
                    if let Some(r) = FlowKey::of(p.data(), m.v6)
                        .map_or(Some(DropReason::EspPolicyMismatch), |k| {
                            inbound_verdict(t, &m, &k)
                        })
                    {
                        return self.drop(ctx, i, r);
                    }
                }
                self.sched.push(Node::Decap, i)
            }
            LocalKind::Ike => {
                let Some(pkt) = self.slots[i].take() else {
                    return;
                };
                let ifindex = self.meta[i].in_if;
                match env.punt(Punted {
                    pkt,
                    kind: PuntKind::Ike { ifindex },
                }) {
                    Ok(()) => ctx.counters.punted.inc(),
                    Err(_) => ctx.counters.drop(DropReason::PuntQueueFull),
                }
            }
            LocalKind::Keepalive => self.drop(ctx, i, DropReason::NattKeepalive),
            LocalKind::Other => {
                let m = self.meta[i];
                if m.sa_in != 0 || !t.ipsec.is_inactive() {
                    if let Some(r) = local_verdict(t, &m, p.data()) {
                        return self.drop(ctx, i, r);
                    }
                }
                self.sched.push(Node::Local, i)
            }
        }
    }

    /// Hand packet `i` to the SA's owner; true if it was (the packet is gone from here).
    fn maybe_handoff<E: Env<P>>(
        &mut self,
        ctx: &Ctx,
        env: &mut E,
        i: usize,
        sa: SaRef,
        node: Node,
    ) -> bool {
        if sa.owner as u32 == ctx.worker {
            return false;
        }
        let Some(pkt) = self.slots[i].take() else {
            return true;
        };
        if env
            .handoff(
                sa.owner,
                Handoff {
                    pkt,
                    meta: self.meta[i],
                    node,
                },
            )
            .is_err()
        {
            ctx.counters.drop(DropReason::HandoffQueueFull);
        }
        true
    }

    /// ESP input: find the SA by SPI, decrypt in place, re-classify the inner packet.
    pub(super) fn esp_in<E: Env<P>>(&mut self, t: &Tables, ctx: &mut Ctx, env: &mut E, i: usize) {
        let Some(p) = self.slots[i].as_ref() else {
            return;
        };
        let Some(spi) = esp_spi(t, p.data(), self.meta[i].v6) else {
            return self.drop(ctx, i, DropReason::EspMalformed);
        };
        let peer = src_v4(p.data());
        let Some(&sa_ref) = t.ipsec.sa_in.get(&spi) else {
            return self.drop_noted(ctx, i, DropReason::EspNoSa, reject_detail(spi, peer));
        };
        if self.maybe_handoff(ctx, env, i, sa_ref, Node::EspIn) {
            return;
        }
        let Some(p) = self.slots[i].as_mut() else {
            return;
        };
        let Some(owned) = self.sas.get_mut(sa_ref.slot) else {
            return self.drop_noted(ctx, i, DropReason::EspNoSa, reject_detail(spi, peer));
        };
        match esp::decap(&mut owned.sa, p) {
            Ok(info) => {
                if info.soft_expired {
                    let _ = env.event(Event::SaSoftExpired { sa: sa_ref.slot });
                }
                let m = &mut self.meta[i];
                m.v6 = p.data().first().is_some_and(|b| b >> 4 == 6);
                m.sa_in = sa_ref.slot + 1;
                m.l2_len = 0;
                // Route-based: what a VTI's SA decrypts arrives on the VTI.
                if !t.ipsec.vti_in.is_empty() {
                    if let Some(v) = t.ipsec.vti_in.get(&sa_ref.slot) {
                        if let Some(e) = t.ipsec.vtis.get(*v as usize) {
                            m.in_if = e.ifindex;
                        }
                    }
                }
                self.reenter(ctx, i, Node::IpIn);
            }
            Err(r) => {
                report_hard(env, &mut owned.sa, sa_ref.slot, r);
                self.drop_noted(ctx, i, r, reject_detail(spi, peer))
            }
        }
    }

    /// Into a route-based IPsec interface: the VTI's MTU, then ESP output with its outbound
    /// SA. No policy is consulted: the route chose the VTI, whose selectors are 0/0.
    pub(super) fn vti_out<E: Env<P>>(
        &mut self,
        t: &Tables,
        ctx: &mut Ctx,
        env: &mut E,
        i: usize,
        vti: u32,
    ) {
        let m = self.meta[i];
        if m.esp_out {
            // Our own ESP output routed into a VTI again: the route to the SA's peer points
            // into the VTI itself. Sealing again would recurse until the pass limit.
            return self.drop(ctx, i, DropReason::LoopDetected);
        }
        let Some(e) = t.ipsec.vtis.get(vti as usize) else {
            return self.drop(ctx, i, DropReason::NoRoute);
        };
        let Some(p) = self.slots[i].as_ref() else {
            return;
        };
        if p.len() > e.mtu as usize {
            let df = m.v6 || Ipv4Packet::new_unchecked(p.data()).dont_frag();
            if df {
                let mtu = e.mtu as u32;
                return self.icmp_error(
                    t,
                    ctx,
                    i,
                    IcmpError::TooBig { mtu },
                    DropReason::MtuExceeded,
                );
            }
            // Fragmented on the SA's owner, in ESP output, where fragments can be sealed.
            self.meta[i].frag_mtu = e.mtu;
        }
        let Some(sa) = e.out else {
            return self.drop(ctx, i, DropReason::EspNoOutboundSa);
        };
        self.meta[i].sa_out = sa.slot;
        if !self.maybe_handoff(ctx, env, i, sa, Node::EspOut) {
            self.sched.push(Node::EspOut, i);
        }
    }

    /// Policy check of a forwarded packet; false if it was consumed (dropped or sent to ESP
    /// output). `out_if` is the egress interface (policy scope on output).
    pub(super) fn policy_check<E: Env<P>>(
        &mut self,
        t: &Tables,
        ctx: &mut Ctx,
        env: &mut E,
        i: usize,
        out_if: u16,
    ) -> bool {
        let Some(p) = self.slots[i].as_ref() else {
            return false;
        };
        let m = self.meta[i];
        let len = p.len() as u64;
        let src = src_v4(p.data());
        let mut k = FlowKey::UNSPECIFIED;
        if !k.read(p.data(), m.v6) {
            self.drop(ctx, i, DropReason::EspPolicyMismatch);
            return false;
        }
        let default_id = t.ipsec.policies().len();
        let count = |id: usize, what: PolicyStat, n: u64| t.ipsec.count(id, ctx.worker, what, n);
        // Inbound: everything that came from outside (decrypted or not).
        match inbound_check(t, &m, &k) {
            (Some(r), id) => {
                if let Some(id) = id {
                    count(id, PolicyStat::Discarded, 1);
                }
                let spi = match m.sa_in {
                    0 => 0,
                    s => self.sas.get_mut(s - 1).map_or(0, |o| o.sa.spi()),
                };
                self.drop_noted(ctx, i, r, reject_detail(spi, src));
                return false;
            }
            (None, Some(id)) if m.sa_in != 0 => {
                count(id, PolicyStat::InProtected, 1);
                count(id, PolicyStat::InProtectedBytes, len);
            }
            _ => {}
        }
        // Routed into a VTI: the route is the outbound policy (see `vti_out`).
        if matches!(
            t.fib.nexthops().get(m.nh as usize),
            Some(NextHop::Vti { .. })
        ) {
            return true;
        }
        match t.ipsec.classify(Dir::Out, out_if, &k) {
            Some(pol) => {
                let id = pol.id as usize;
                match &pol.action {
                    Action::Protect { out: Some(sa), .. } => {
                        count(id, PolicyStat::OutProtected, 1);
                        count(id, PolicyStat::OutProtectedBytes, len);
                        self.meta[i].sa_out = sa.slot;
                        let sa = *sa;
                        if !self.maybe_handoff(ctx, env, i, sa, Node::EspOut) {
                            self.sched.push(Node::EspOut, i);
                        }
                        false
                    }
                    Action::Protect { out: None, .. } => {
                        count(id, PolicyStat::Discarded, 1);
                        if ctx.resolve.should_acquire(pol.id, ctx.now) {
                            let _ = env.event(Event::Acquire { policy: pol.id });
                        }
                        self.drop_noted(ctx, i, DropReason::EspNoOutboundSa, reject_detail(0, src));
                        false
                    }
                    Action::Discard => {
                        count(id, PolicyStat::Discarded, 1);
                        self.drop(ctx, i, DropReason::SpdDiscard);
                        false
                    }
                    Action::Bypass => {
                        count(id, PolicyStat::Bypassed, 1);
                        true
                    }
                }
            }
            None if t.ipsec.default_discard => {
                count(default_id, PolicyStat::Discarded, 1);
                self.drop(ctx, i, DropReason::SpdDiscard);
                false
            }
            None => {
                count(default_id, PolicyStat::Bypassed, 1);
                true
            }
        }
    }

    /// ESP output: encrypt with the chosen SA, then route the result (the outer header's
    /// destination in tunnel mode) as a packet of our own.
    pub(super) fn esp_out<E: Env<P>>(&mut self, t: &Tables, ctx: &mut Ctx, env: &mut E, i: usize) {
        let m = self.meta[i];
        let slot = m.sa_out;
        let Some(p) = self.slots[i].as_ref() else {
            return;
        };
        let Some(owned) = self.sas.get(slot) else {
            return self.drop(ctx, i, DropReason::EspNoOutboundSa);
        };
        // Path MTU before sealing, so an oversized packet never spends a sequence number:
        // with DF (or IPv6) the source hears the MTU left inside the SA (our own packets are
        // only counted); without, the inner packet — ours too, e.g. a GRE packet this SA
        // protects — is fragmented and each fragment sealed (RFC 4459 §3, as for tunnels).
        // A VTI may have asked for a smaller size already (`frag_mtu`).
        let mut inner_mtu = if m.frag_mtu != 0 {
            m.frag_mtu as usize
        } else {
            usize::MAX
        };
        let sealed = esp::sealed_len(&owned.sa, p.data());
        if sealed > t.fib.min_mtu() as usize {
            if let Some(mtu) = path_mtu(t, owned.sa.mode(), p.data(), m.v6) {
                if sealed > mtu {
                    inner_mtu = inner_mtu.min(esp::max_inner_len(&owned.sa, mtu));
                }
            }
        }
        if p.len() > inner_mtu {
            let tunnel = owned.sa.mode().is_tunnel();
            let df = m.v6 || !tunnel || Ipv4Packet::new_unchecked(p.data()).dont_frag();
            if df {
                let mtu = inner_mtu as u32;
                return self.icmp_error(
                    t,
                    ctx,
                    i,
                    IcmpError::TooBig { mtu },
                    DropReason::MtuExceeded,
                );
            }
            if let Err(r) = self.fragment_into(env, i, inner_mtu, Node::EspOut) {
                return self.drop(ctx, i, r);
            }
        }
        let Some(p) = self.slots[i].as_mut() else {
            return;
        };
        let Some(owned) = self.sas.get_mut(slot) else {
            return self.drop(ctx, i, DropReason::EspNoOutboundSa);
        };
        match esp::encap(&mut owned.sa, p, &owned.outer) {
            Ok(info) => {
                if info.soft_expired {
                    let _ = env.event(Event::SaSoftExpired { sa: slot });
                }
                let direct = outer_adjacency(t, &mut owned.sa, info.len);
                let m = &mut self.meta[i];
                m.v6 = p.data().first().is_some_and(|b| b >> 4 == 6);
                m.esp_out = true;
                m.local_origin = true;
                m.l2_len = 0;
                match direct {
                    Some(nh) => {
                        m.nh = nh;
                        // Still a re-entry for the loop bound, like the IP input pass it skips.
                        self.reenter(ctx, i, Node::Output);
                    }
                    None => self.reenter(ctx, i, Node::IpIn),
                }
            }
            Err(r) => {
                report_hard(env, &mut owned.sa, slot, r);
                let detail = reject_detail(owned.sa.spi(), remote_v4(owned.sa.mode()));
                self.drop_noted(ctx, i, r, detail)
            }
        }
    }
}

/// IP input, forwarding, the policy check and output for a decrypted IPv4 packet, when
/// they would only pass it on: an option-less valid header between unicast addresses,
/// TTL left, a resolved untagged adjacency it fits, admitted by the inbound policy,
/// bypassed outbound: `Some(Some(port))`, rewritten for `port`, or `Some(None)`, counted
/// as dropped. `None` (nothing changed) otherwise.
#[inline(always)]
fn forward_decrypted4<P: Packet>(
    t: &Tables,
    ctx: &Ctx,
    p: &mut P,
    m: &Meta,
) -> Option<Option<u16>> {
    let d = p.data();
    let ip = d.get(..20).and_then(|h| <&[u8; 20]>::try_from(h).ok())?;
    if super::fast::unicast4_total(ip, d.len()) != Some(d.len()) || ip[8] <= 1 {
        return None;
    }
    let dst = [ip[16], ip[17], ip[18], ip[19]];
    let Ok((_, NextHop::Forward(adj))) = t.fib.lookup4_idx(dst) else {
        return None;
    };
    if adj.vlan != 0 || d.len() > adj.mtu as usize || p.headroom() < ethernet::HEADER_LEN {
        return None;
    }
    let mut k = FlowKey::UNSPECIFIED;
    if !k.read(d, false) {
        return None;
    }
    let (verdict, in_id) = inbound_check(t, m, &k);
    if verdict.is_some() {
        return None;
    }
    let out_id = match t.ipsec.classify(Dir::Out, adj.ifindex, &k) {
        Some(pol) if matches!(pol.action, Action::Bypass) => pol.id as usize,
        None if !t.ipsec.default_discard => t.ipsec.policies().len(),
        _ => return None,
    };
    // Decided: counted and sent as the nodes would.
    let len = d.len() as u64;
    let count = |id: usize, what: PolicyStat, n: u64| t.ipsec.count(id, ctx.worker, what, n);
    if let Some(id) = in_id {
        count(id, PolicyStat::InProtected, 1);
        count(id, PolicyStat::InProtectedBytes, len);
    }
    count(out_id, PolicyStat::Bypassed, 1);
    Ipv4Packet::new_unchecked(p.data_mut()).decrement_ttl();
    if !put_l2(p, adj, EtherType::IPV4) {
        ctx.counters.drop(DropReason::NoHeadroom);
        return Some(None);
    }
    Some(Some(adj.port))
}

/// What [`Pipeline::esp_in_fast`] did with a frame.
pub(super) enum EspInFast<P> {
    /// Sent or counted as dropped.
    Done,
    /// Not ESP for an SA this worker owns (or a VTI's): untouched, for local dispatch.
    Back(P),
    /// Decrypted, but the inner packet needs the nodes: on from this node with this metadata.
    Node(P, Meta, Node),
}

impl<P: Packet> Pipeline<P> {
    /// ESP input in one pass for an IPv4 frame the fast entry found addressed to us: ESP (or
    /// NAT-T) for a policy-based SA this worker owns is opened here, as ESP input would; an
    /// inner IPv4 packet that the inbound policy admits, that the outbound policies let pass
    /// in the clear and whose route is a resolved untagged adjacency it fits goes out at
    /// once, counted as the policy check counts it. Any other inner packet continues at IP
    /// input exactly as after ESP input (`Node`); frames this does not decrypt come back
    /// untouched (`Back`).
    #[inline]
    pub(super) fn esp_in_fast<E: Env<P>>(
        &mut self,
        t: &Tables,
        ctx: &Ctx,
        env: &mut E,
        mut p: P,
        in_port: u16,
        in_if: u16,
    ) -> EspInFast<P> {
        let Some(spi) = esp_spi(t, p.data(), false) else {
            return EspInFast::Back(p);
        };
        let Some(&sa_ref) = t.ipsec.sa_in.get(&spi) else {
            return EspInFast::Back(p);
        };
        if sa_ref.owner as u32 != ctx.worker || t.ipsec.vti_in.contains_key(&sa_ref.slot) {
            return EspInFast::Back(p);
        }
        let Some(owned) = self.sas.get_mut(sa_ref.slot) else {
            return EspInFast::Back(p);
        };
        let peer = src_v4(p.data());
        match esp::decap(&mut owned.sa, &mut p) {
            Ok(info) => {
                if info.soft_expired {
                    let _ = env.event(Event::SaSoftExpired { sa: sa_ref.slot });
                }
            }
            Err(r) => {
                report_hard(env, &mut owned.sa, sa_ref.slot, r);
                ctx.counters.drop_noted(r, reject_detail(spi, peer));
                return EspInFast::Done;
            }
        }
        // The metadata ESP input leaves: the inner family, the SA, no L2, one pass made.
        let m = Meta {
            in_port,
            in_if,
            v6: p.data().first().is_some_and(|b| b >> 4 == 6),
            sa_in: sa_ref.slot + 1,
            passes: 1,
            ..Meta::default()
        };
        if m.v6 {
            return EspInFast::Node(p, m, Node::IpIn);
        }
        match forward_decrypted4(t, ctx, &mut p, &m) {
            None => return EspInFast::Node(p, m, Node::IpIn),
            Some(None) => {}
            Some(Some(port)) => self.send(ctx, port, p),
        }
        EspInFast::Done
    }

    /// ESP output in one pass, for the packet that dominates a VPN gateway's outbound load: an
    /// IPv4 packet the fast entry routed to a resolved adjacency (`nh`), whose outbound
    /// policy protects it with a tunnel-mode SA this worker owns, that sealed fits every
    /// MTU on the way and whose sealed form goes straight to a resolved untagged adjacency.
    /// Forwarding, the policy check, ESP output and output would do exactly this with it
    /// (TTL, per-policy counters, seal, soft-lifetime event, Ethernet header); here it is done
    /// without the four queue passes. Anything else — TTL about to expire, an inbound verdict,
    /// bypass, discard, no SA, another owner, a VTI, over an MTU, an unresolved or tagged
    /// next hop — is handed back untouched (`Some`) for the node pipeline to decide and count.
    /// A failed seal is the drop ESP output would count.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn esp_out_fast<E: Env<P>>(
        &mut self,
        t: &Tables,
        ctx: &Ctx,
        env: &mut E,
        mut p: P,
        in_port: u16,
        in_if: u16,
        nh: u32,
    ) -> Option<P> {
        let Some(NextHop::Forward(adj)) = t.fib.nexthops().get(nh as usize) else {
            return Some(p);
        };
        if p.data().get(8).is_none_or(|&ttl| ttl <= 1) {
            return Some(p);
        }
        let mut k = FlowKey::UNSPECIFIED;
        if !k.read(p.data(), false) {
            return Some(p);
        }
        let m = Meta {
            in_port,
            in_if,
            nh,
            ..Meta::default()
        };
        if inbound_check(t, &m, &k).0.is_some() {
            return Some(p);
        }
        let Some(pol) = t.ipsec.classify(Dir::Out, adj.ifindex, &k) else {
            return Some(p);
        };
        let Action::Protect { out: Some(sa), .. } = &pol.action else {
            return Some(p);
        };
        if sa.owner as u32 != ctx.worker {
            return Some(p);
        }
        let slot = sa.slot;
        let Some(owned) = self.sas.get_mut(slot) else {
            return Some(p);
        };
        if !matches!(owned.sa.mode(), esp::Mode::Tunnel4 { .. }) {
            return Some(p);
        }
        let sealed = esp::sealed_len(&owned.sa, p.data());
        if sealed > t.fib.min_mtu() as usize {
            return Some(p);
        }
        let Some(out_nh) = outer_adjacency(t, &mut owned.sa, sealed) else {
            return Some(p);
        };
        let Some(NextHop::Forward(out)) = t.fib.nexthops().get(out_nh as usize) else {
            return Some(p);
        };
        if out.vlan != 0 {
            return Some(p);
        }
        // Decided: from here on the packet is what forwarding, the policy check and ESP
        // output make of it, in their order of counting.
        Ipv4Packet::new_unchecked(p.data_mut()).decrement_ttl();
        let id = pol.id as usize;
        t.ipsec.count(id, ctx.worker, PolicyStat::OutProtected, 1);
        t.ipsec.count(
            id,
            ctx.worker,
            PolicyStat::OutProtectedBytes,
            p.len() as u64,
        );
        match esp::encap(&mut owned.sa, &mut p, &owned.outer) {
            Ok(info) => {
                if info.soft_expired {
                    let _ = env.event(Event::SaSoftExpired { sa: slot });
                }
            }
            Err(r) => {
                report_hard(env, &mut owned.sa, slot, r);
                let detail = reject_detail(owned.sa.spi(), remote_v4(owned.sa.mode()));
                ctx.counters.drop_noted(r, detail);
                return None;
            }
        }
        if !put_l2(&mut p, out, EtherType::IPV4) {
            ctx.counters.drop(DropReason::NoHeadroom);
            return None;
        }
        self.send(ctx, out.port, p);
        None
    }
}

#[cfg(test)]
mod tests {
    //! Route-based IPsec through the node pipeline: a VTI next hop seals with the VTI's SA,
    //! what its inbound SA decrypts arrives on the VTI and needs no policy, the VTI's MTU,
    //! recursion and missing SAs are counted drops; per-policy counters; reject details.

    use super::*;
    use crate::esp::store::{OwnedSa, SaCmd};
    use crate::esp::{AesKeyLen, Lifetime, Mode, Sa, SaConfig, Suite};
    use crate::outer::OuterPolicy;
    use crate::packet::HeapPacket;
    use crate::pipeline::{RateLimiter, ResolveFilter};
    use crate::stats::{split_reject_detail, PolicyCounters, WorkerCounters};
    use crate::tables::fib::Fib;
    use crate::tables::iface::{IfKind, Interface, PortEntry};
    use crate::tables::ipsec::{IpsecTables, Policy, VtiEntry};
    use crate::wire::Mac;
    use crossbeam::queue::ArrayQueue;
    use etherparse::PacketBuilder;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    const LAN: Mac = Mac([2, 0, 0, 0, 0, 0x10]);
    const WAN: Mac = Mac([2, 0, 0, 0, 0, 0x11]);
    const HOST: Mac = Mac([2, 0, 0, 0, 0, 0xa]);
    const PEER: Mac = Mac([2, 0, 0, 0, 0, 0xb]);
    const KEY_OUT: [u8; 20] = [1; 20];
    const KEY_IN: [u8; 20] = [2; 20];
    const ME: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const THEM: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    #[derive(Default)]
    struct Env0 {
        events: Vec<Event>,
        handed: Vec<(u16, Handoff<HeapPacket>)>,
    }
    impl Env<HeapPacket> for Env0 {
        fn punt(&mut self, p: Punted<HeapPacket>) -> Result<(), Punted<HeapPacket>> {
            Err(p)
        }
        fn event(&mut self, e: Event) -> bool {
            self.events.push(e);
            true
        }
        fn handoff(&mut self, o: u16, h: Handoff<HeapPacket>) -> Result<(), Handoff<HeapPacket>> {
            self.handed.push((o, h));
            Ok(())
        }
        fn alloc(&mut self) -> Option<HeapPacket> {
            Some(HeapPacket::with_room(&[], 128, 2048))
        }
    }

    fn sa(spi: u32, key: &[u8], local: Ipv4Addr, remote: Ipv4Addr) -> Sa {
        let cfg = SaConfig::new(
            spi,
            Mode::Tunnel4 { local, remote },
            Suite::AesGcm(AesKeyLen::Aes128),
        );
        Sa::new(&cfg, key, &[]).unwrap()
    }

    /// Port 0 lan 10.0.0.1/24 (host .2), port 1 wan 192.0.2.1/24 (peer .2), VTI 0 (ifindex
    /// 2, MTU `mtu`) with out SA slot 0 (owner `owner`) and in SA slot 1 (SPI 0x2001);
    /// 10.9.0.0/16 routed into the VTI.
    fn tables(mtu: u16, owner: u16, policies: Vec<Policy>, peer_into_vti: bool) -> Tables {
        let port = |p: u16, mac: Mac, v4: [u8; 4]| Interface {
            kind: IfKind::Port { port: p, vlan: 0 },
            mac,
            mtu: 1500,
            icmp_src_v4: Some(v4),
            icmp_src_v6: None,
        };
        let ifs = vec![
            port(0, LAN, [10, 0, 0, 1]),
            port(1, WAN, [192, 0, 2, 1]),
            Interface {
                kind: IfKind::Vti { vti: 0 },
                mac: Mac::ZERO,
                mtu,
                icmp_src_v4: Some([172, 16, 0, 5]),
                icmp_src_v6: None,
            },
        ];
        let adj = crate::pipeline::tests::adjacency;
        let nhs = vec![
            NextHop::Local { ifindex: 1 },
            adj(0, 0, HOST, LAN),
            adj(1, 1, PEER, WAN),
            NextHop::Vti { vti: 0 },
        ];
        let r = crate::pipeline::tests::route;
        let routes = vec![
            r("192.0.2.1", 32, 0),
            r("10.0.0.0", 24, 1),
            r("192.0.2.2", 32, if peer_into_vti { 3 } else { 2 }),
            r("10.9.0.0", 16, 3),
        ];
        let pe = |mac, i| PortEntry {
            mac,
            untagged: Some(i),
            vlans: vec![],
            xconnects: vec![],
        };
        let n = policies.len();
        let mut ipsec = IpsecTables::new(
            policies,
            false,
            [(0x2001, SaRef { slot: 1, owner: 0 })]
                .into_iter()
                .collect(),
            2,
        );
        ipsec.vtis.push(VtiEntry {
            ifindex: 2,
            out: Some(SaRef { slot: 0, owner }),
            mtu,
        });
        ipsec.vti_in.insert(1, 0);
        ipsec.counters = (0..=n).map(|_| Arc::new(PolicyCounters::new(2))).collect();
        Tables {
            version: 1,
            ports: vec![pe(LAN, 0), pe(WAN, 1)],
            interfaces: ifs,
            fib: Fib::build(&routes, nhs).unwrap(),
            ipsec,
            tunnels: Default::default(),
        }
    }

    struct Rig {
        t: Tables,
        p: Pipeline<HeapPacket>,
        env: Env0,
        c: Box<WorkerCounters>,
    }

    impl Rig {
        fn new(t: Tables) -> Rig {
            Rig::with_out_lifetime(t, Lifetime::default())
        }
        /// [`Rig::new`] with limits on the outbound SA (slot 0).
        fn with_out_lifetime(t: Tables, lifetime: Lifetime) -> Rig {
            let mut p = Pipeline::new(2);
            let cmds = ArrayQueue::new(4);
            let retired = ArrayQueue::new(4);
            let out = SaConfig {
                lifetime,
                ..SaConfig::new(
                    0x1001,
                    Mode::Tunnel4 {
                        local: ME,
                        remote: THEM,
                    },
                    Suite::AesGcm(AesKeyLen::Aes128),
                )
            };
            for (slot, s) in [
                (0, Sa::new(&out, &KEY_OUT, &[]).unwrap()),
                (1, sa(0x2001, &KEY_IN, ME, THEM)),
            ] {
                let sa = Box::new(OwnedSa {
                    sa: s,
                    outer: OuterPolicy::default(),
                });
                assert!(cmds.push(SaCmd::Install { slot, sa }).is_ok());
            }
            p.sas.apply(&cmds, &retired);
            Rig {
                t,
                p,
                env: Env0::default(),
                c: Box::default(),
            }
        }
        fn rx(&mut self, port: u16, f: Vec<u8>) {
            self.rx_burst(port, vec![f]);
        }
        /// A fresh context for worker 0 at time 1.
        fn ctx(c: &WorkerCounters) -> Ctx<'_> {
            Ctx {
                worker: 0,
                counters: c,
                now: 1,
                icmp: RateLimiter::new(1000, 1000, 1_000_000_000),
                resolve: ResolveFilter::new(1),
            }
        }
        fn rx_burst(&mut self, port: u16, frames: Vec<Vec<u8>>) {
            let mut ctx = Rig::ctx(&self.c);
            let mut v: Vec<_> = frames.iter().map(|f| HeapPacket::from_frame(f)).collect();
            self.p
                .run_rx(&self.t, &mut ctx, &mut self.env, &mut v, port);
        }
        /// A packet of our own (data at the IP header), as the control thread injects.
        fn local(&mut self, ip: &[u8]) {
            let mut ctx = Rig::ctx(&self.c);
            let mut v = vec![HeapPacket::from_frame(ip)];
            self.p.run_local(&self.t, &mut ctx, &mut self.env, &mut v);
        }
        fn tx(&mut self, port: usize) -> Vec<Vec<u8>> {
            self.p.tx[port].drain(..).map(|p| p.to_vec()).collect()
        }
        fn drops(&self, r: DropReason) -> u64 {
            self.c.drops[r as usize].get()
        }
    }

    fn udp(dst_mac: Mac, src: [u8; 4], dst: [u8; 4], len: usize, df: bool) -> Vec<u8> {
        let mut v = Vec::new();
        // etherparse sets DF; cleared afterwards when not wanted.
        PacketBuilder::ethernet2(HOST.0, dst_mac.0)
            .ipv4(src, dst, 64)
            .udp(1, 2)
            .write(&mut v, &vec![0x5a; len])
            .unwrap();
        if !df {
            v[14 + 6] &= !0x40;
            let mut ip = crate::wire::Ipv4Packet::new_unchecked(&mut v[14..]);
            ip.fill_checksum();
        }
        v
    }

    /// What the peer does with our ESP frame: strip L2, decrypt with its copy of our SA.
    fn peer_open(frame: &[u8]) -> Vec<u8> {
        let mut p = HeapPacket::from_frame(&frame[14..]);
        let mut s = sa(0x1001, &KEY_OUT, THEM, ME);
        esp::decap(&mut s, &mut p).expect("peer decrypts");
        p.to_vec()
    }

    /// An ESP frame from the peer carrying `inner`, sealed with its copy of our inbound SA.
    fn peer_seal(inner: &[u8], spi: u32) -> Vec<u8> {
        peer_seal_seq(inner, spi, 1)
    }

    /// [`peer_seal`] with sequence number `seq`.
    fn peer_seal_seq(inner: &[u8], spi: u32, seq: u64) -> Vec<u8> {
        let mut p = HeapPacket::from_frame(&inner[14..]);
        let mut s = sa(spi, &KEY_IN, THEM, ME);
        s.set_next_seq_out(seq);
        esp::encap(&mut s, &mut p, &OuterPolicy::default()).unwrap();
        let mut f = Vec::new();
        f.extend_from_slice(&WAN.0);
        f.extend_from_slice(&PEER.0);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&p.to_vec());
        f
    }

    /// Policy 0 (priority 1), any protocol and port, protecting `src` → `dst` with no
    /// outbound SA and the inbound SA slots `inbound`.
    fn protect_without_sa(
        out: bool,
        inb: bool,
        src: (&str, u8),
        dst: (&str, u8),
        inbound: Vec<u32>,
    ) -> Policy {
        Policy {
            id: 0,
            priority: 1,
            out,
            inb,
            src: (src.0.parse().unwrap(), src.1),
            dst: (dst.0.parse().unwrap(), dst.1),
            proto: None,
            sport: (0, 65535),
            dport: (0, 65535),
            icmp_type: None,
            icmp_code: None,
            scope: None,
            action: Action::Protect { out: None, inbound },
        }
    }

    #[test]
    fn routed_into_the_vti_is_sealed_and_its_sa_decrypts_without_a_policy() {
        // An inbound-only protect policy for lan <-> 10.9/16 that admits no SA: decrypted
        // traffic would be a policy mismatch and cleartext unprotected, were it not the VTI.
        let pol = protect_without_sa(false, true, ("10.0.0.0", 24), ("10.9.0.0", 16), vec![]);
        let mut r = Rig::new(tables(1446, 0, vec![pol], false));
        r.rx(0, udp(LAN, [10, 0, 0, 2], [10, 9, 1, 1], 100, true));
        let out = r.tx(1);
        assert_eq!(
            out.len(),
            1,
            "{:?}",
            r.c.drops.iter().map(|c| c.get()).collect::<Vec<_>>()
        );
        assert_eq!(&out[0][0..6], &PEER.0);
        assert_eq!(out[0][14 + 9], ipproto::ESP);
        assert_eq!(&out[0][14 + 12..14 + 20], &[192, 0, 2, 1, 192, 0, 2, 2]);
        assert_eq!(&out[0][34..38], &0x1001u32.to_be_bytes());
        let inner = peer_open(&out[0]);
        assert_eq!(&inner[16..20], &[10, 9, 1, 1]);
        assert_eq!(inner[8], 63, "inner TTL decremented once");

        // The reverse: decrypted, arrives on the VTI, forwarded to the host.
        let back = udp(WAN, [10, 9, 1, 1], [10, 0, 0, 2], 60, true);
        r.rx(1, peer_seal(&back, 0x2001));
        let got = r.tx(0);
        assert_eq!(
            got.len(),
            1,
            "{:?}",
            r.c.drops.iter().map(|c| c.get()).collect::<Vec<_>>()
        );
        assert_eq!(&got[0][14 + 12..14 + 16], &[10, 9, 1, 1]);
        assert_eq!(got[0][14 + 8], 63);
        assert_eq!(r.c.total_drops(), 0);

        // The same flow in clear on the wan is refused by that policy (and counted on it).
        r.rx(1, back.clone());
        assert_eq!(r.drops(DropReason::SpdUnprotected), 1);
        assert_eq!(r.t.ipsec.counters[0].get(PolicyStat::Discarded), 1);
        // Unknown SPI: counted, with the SPI and peer noted for the log.
        r.rx(1, peer_seal(&back, 0x7777));
        assert_eq!(r.drops(DropReason::EspNoSa), 1);
        assert_eq!(
            split_reject_detail(r.c.last_detail[DropReason::EspNoSa as usize].get()),
            Some((0x7777, Some(THEM)))
        );
    }

    #[test]
    fn path_mtu_is_checked_before_sealing() {
        // The VTI allows 1500, the path after sealing does not: a DF packet of 1480 gets the
        // MTU left inside the SA (1500 - 20 outer - 16 ESP header and IV - 16 ICV, aligned,
        // - 2 = 1446) and spends no sequence number; without DF it is fragmented to that.
        let mut r = Rig::new(tables(1500, 0, vec![], false));
        r.rx(0, udp(LAN, [10, 0, 0, 2], [10, 9, 1, 1], 1480 - 28, true));
        assert_eq!(r.drops(DropReason::MtuExceeded), 1);
        assert!(r.tx(1).is_empty());
        let icmp = r.tx(0);
        assert_eq!(icmp.len(), 1);
        assert_eq!((icmp[0][14 + 20], icmp[0][14 + 21]), (3, 4));
        assert_eq!(
            u16::from_be_bytes([icmp[0][14 + 26], icmp[0][14 + 27]]),
            1446
        );
        r.rx(0, udp(LAN, [10, 0, 0, 2], [10, 9, 1, 1], 1480 - 28, false));
        let out = r.tx(1);
        assert_eq!(out.len(), 2);
        let mut s = sa(0x1001, &KEY_OUT, THEM, ME);
        for (k, f) in out.iter().enumerate() {
            assert!(f.len() - 14 <= 1500, "sealed fragment fits the path");
            let mut p = HeapPacket::from_frame(&f[14..]);
            let info = esp::decap(&mut s, &mut p).expect("peer decrypts");
            // The DF packet used no sequence number: these are 1 and 2.
            assert_eq!(info.seq, k as u64 + 1);
        }
        // Our own packets likewise (a GRE packet this SA protects, say): fragmented and
        // sealed without DF; with DF only counted (there is nobody to tell).
        let ours = |df| udp(LAN, [192, 0, 2, 1], [10, 9, 1, 1], 1480 - 28, df)[14..].to_vec();
        r.local(&ours(false));
        let out = r.tx(1);
        assert_eq!(out.len(), 2, "drops {:?}", r.c.total_drops());
        let mut inner = Vec::new();
        for (k, f) in out.iter().enumerate() {
            let mut p = HeapPacket::from_frame(&f[14..]);
            let info = esp::decap(&mut s, &mut p).expect("peer decrypts");
            assert_eq!(info.seq, k as u64 + 3);
            let ip = Ipv4Packet::new_checked(p.data()).unwrap();
            assert_eq!(ip.frag_offset(), inner.len());
            inner.extend_from_slice(ip.payload());
        }
        assert_eq!(&inner[..], &ours(false)[20..]);
        r.local(&ours(true));
        assert!(r.tx(1).is_empty() && r.tx(0).is_empty());
        assert_eq!(r.drops(DropReason::MtuExceeded), 2);
    }

    #[test]
    fn decrypted_traffic_to_the_gateway_must_match_its_sa() {
        // A policy admitting the inbound SA for 10.9/16 <-> 10.0/24 only: decrypted traffic
        // from 10.9.1.1 to the gateway's own 192.0.2.1 is outside it.
        let pol = protect_without_sa(true, true, ("10.0.0.0", 24), ("10.9.0.0", 16), vec![1]);
        let mut t = tables(1446, 0, vec![pol], false);
        // Not a VTI SA here: the policy decides.
        t.ipsec.vti_in.clear();
        let mut r = Rig::new(t);
        let to_us = udp(WAN, [10, 9, 1, 1], [192, 0, 2, 1], 20, true);
        r.rx(1, peer_seal(&to_us, 0x2001));
        assert_eq!(r.drops(DropReason::EspPolicyMismatch), 1);
        assert_eq!(r.p.tx.iter().map(|q| q.len()).sum::<usize>(), 0);
    }

    #[test]
    fn a_protect_policy_without_sa_asks_for_one_once_not_per_packet() {
        let pol = protect_without_sa(true, false, ("10.0.0.0", 24), ("192.0.2.2", 32), vec![]);
        let mut r = Rig::new(tables(1446, 0, vec![pol], false));
        let burst = (0..5)
            .map(|_| udp(LAN, [10, 0, 0, 2], [192, 0, 2, 2], 20, true))
            .collect();
        r.rx_burst(0, burst);
        assert_eq!(r.drops(DropReason::EspNoOutboundSa), 5);
        let acquires = r
            .env
            .events
            .iter()
            .filter(|e| matches!(e, Event::Acquire { policy: 0 }))
            .count();
        assert_eq!(acquires, 1, "{:?}", r.env.events);
    }

    #[test]
    fn sealed_packets_follow_the_route_to_the_peer_across_table_versions() {
        // Version 1: the peer is behind the wan adjacency; the sealed packet goes straight
        // to output there (the remembered next hop), counted as one re-entry.
        let mut r = Rig::new(tables(1446, 0, vec![], false));
        r.rx(0, udp(LAN, [10, 0, 0, 2], [10, 9, 1, 1], 100, true));
        let out = r.tx(1);
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0][0..6], &PEER.0);
        assert_eq!(peer_open(&out[0])[16..20], [10, 9, 1, 1]);
        let memo = r.p.sas.get(0).and_then(|o| o.sa.outer_nh(1));
        assert_eq!(memo, Some(2), "route to the peer remembered for version 1");
        // Version 2 routes the peer into the VTI itself: the memo of version 1 must not be
        // used; the general path sees the recursion and counts it.
        let mut t = tables(1446, 0, vec![], true);
        t.version = 2;
        r.t = t;
        r.rx(0, udp(LAN, [10, 0, 0, 2], [10, 9, 1, 1], 100, true));
        assert!(r.tx(1).is_empty());
        assert_eq!(r.drops(DropReason::LoopDetected), 1);
        // Version 3 restores the route: out of the wan again, decryptable, in sequence.
        let mut t = tables(1446, 0, vec![], false);
        t.version = 3;
        r.t = t;
        r.rx(0, udp(LAN, [10, 0, 0, 2], [10, 9, 1, 1], 100, true));
        let out = r.tx(1);
        assert_eq!(out.len(), 1);
        let mut s = sa(0x1001, &KEY_OUT, THEM, ME);
        let mut p = HeapPacket::from_frame(&out[0][14..]);
        assert_eq!(esp::decap(&mut s, &mut p).map(|i| i.seq), Ok(3));
        assert_eq!(r.c.total_drops(), 1);
    }

    #[test]
    fn vti_mtu_recursion_missing_sa_and_handoff() {
        // Larger than the VTI MTU with DF: "too big" back to the host, nothing sealed.
        let mut r = Rig::new(tables(500, 0, vec![], false));
        r.rx(0, udp(LAN, [10, 0, 0, 2], [10, 9, 1, 1], 600, true));
        assert_eq!(r.drops(DropReason::MtuExceeded), 1);
        assert!(r.tx(1).is_empty());
        let icmp = r.tx(0);
        assert_eq!(icmp.len(), 1);
        assert_eq!(icmp[0][14 + 20], 3, "destination unreachable");
        assert_eq!(icmp[0][14 + 21], 4, "fragmentation needed");
        assert_eq!(
            u16::from_be_bytes([icmp[0][14 + 26], icmp[0][14 + 27]]),
            500
        );
        // Without DF: fragmented to the VTI MTU (on the SA's owner), each fragment sealed.
        r.rx(0, udp(LAN, [10, 0, 0, 2], [10, 9, 1, 1], 600, false));
        let frags: Vec<Vec<u8>> = r.tx(1).iter().map(|f| peer_open(f)).collect();
        assert_eq!(frags.len(), 2);
        let mut payload = Vec::new();
        for f in &frags {
            let ip = Ipv4Packet::new_checked(&f[..]).unwrap();
            assert!(ip.total_len() <= 500 && ip.verify_checksum());
            assert_eq!(ip.frag_offset(), payload.len());
            payload.extend_from_slice(ip.payload());
        }
        assert_eq!(payload.len(), 8 + 600, "UDP header and payload, whole");

        // The SA's peer routed into the VTI itself: sealed once, then a counted loop drop.
        let mut r = Rig::new(tables(1446, 0, vec![], true));
        r.rx(0, udp(LAN, [10, 0, 0, 2], [10, 9, 1, 1], 100, true));
        assert_eq!(r.drops(DropReason::LoopDetected), 1);
        assert!(r.tx(1).is_empty());

        // No outbound SA installed: counted.
        let mut t = tables(1446, 0, vec![], false);
        t.ipsec.vtis[0].out = None;
        let mut r = Rig::new(t);
        r.rx(0, udp(LAN, [10, 0, 0, 2], [10, 9, 1, 1], 100, true));
        assert_eq!(r.drops(DropReason::EspNoOutboundSa), 1);

        // The VTI's SA owned by worker 1: handed over for ESP output there, unsealed.
        let mut r = Rig::new(tables(1446, 1, vec![], false));
        r.rx(0, udp(LAN, [10, 0, 0, 2], [10, 9, 1, 1], 100, true));
        assert_eq!(r.env.handed.len(), 1);
        let (owner, h) = &r.env.handed[0];
        assert_eq!((*owner, h.node, h.meta.sa_out), (1, Node::EspOut, 0));
        assert_eq!(h.pkt.data()[9], ipproto::UDP);
    }

    /// Frames out per port, drops, per-policy counters, events.
    type IpsecSeen = (Vec<Vec<Vec<u8>>>, Vec<u64>, Vec<u64>, usize);

    /// Everything observable after one burst per port through tables with a protect policy
    /// (lan -> 192.0.2.0/24 sealed with SA slot 0, slot 1 admitted back) and the VTI, with
    /// the fast path (its entry past L2 and IP input) on or off. ESP output is opened with
    /// the peer's copy of the SA (the two paths may seal in different orders) and each
    /// port's frames compared as a multiset.
    fn observe_ipsec(fast: bool, frames: &[(u16, Vec<u8>)]) -> IpsecSeen {
        observe_ipsec_with(fast, frames, Lifetime::default(), false)
    }

    /// [`observe_ipsec`] with limits on the outbound SA and, with `policy_in`, the inbound SA
    /// not bound to the VTI: what it decrypts is checked against the protect policy.
    fn observe_ipsec_with(
        fast: bool,
        frames: &[(u16, Vec<u8>)],
        lifetime: Lifetime,
        policy_in: bool,
    ) -> IpsecSeen {
        let mut pol = protect_without_sa(true, true, ("10.0.0.0", 24), ("192.0.2.0", 24), vec![1]);
        pol.action = Action::Protect {
            out: Some(SaRef { slot: 0, owner: 0 }),
            inbound: vec![1],
        };
        let mut r = Rig::with_out_lifetime(tables(1446, 0, vec![pol], false), lifetime);
        if policy_in {
            r.t.ipsec.vti_in.clear();
        }
        r.p.fast_path = fast;
        for port in 0..2u16 {
            let burst: Vec<Vec<u8>> = frames
                .iter()
                .filter(|(p, _)| *p == port)
                .map(|(_, f)| f.clone())
                .collect();
            if !burst.is_empty() {
                r.rx_burst(port, burst);
            }
        }
        let tx = (0..2)
            .map(|port| {
                let mut q: Vec<Vec<u8>> = r
                    .tx(port)
                    .into_iter()
                    .map(|f| {
                        if f.len() > 34 && f[23] == 50 {
                            peer_open(&f)
                        } else {
                            f
                        }
                    })
                    .collect();
                q.sort();
                q
            })
            .collect();
        let drops = DropReason::ALL.iter().map(|&d| r.drops(d)).collect();
        let stats = [
            PolicyStat::InProtected,
            PolicyStat::InProtectedBytes,
            PolicyStat::OutProtected,
            PolicyStat::OutProtectedBytes,
            PolicyStat::Bypassed,
            PolicyStat::Discarded,
        ];
        let policy =
            r.t.ipsec
                .counters
                .iter()
                .flat_map(|c| stats.iter().map(|&w| c.get(w)).collect::<Vec<_>>())
                .collect();
        (tx, drops, policy, r.env.events.len())
    }

    /// A test frame of kind `k`: (ingress port, frame); the peer's ESP carries sequence
    /// number `seq` (a real peer never repeats one: with repeats, which copy the replay
    /// window keeps would depend on the order frames of different paths reach ESP input).
    fn ipsec_frame(k: u8, len: usize, ttl: u8, df: bool, seq: u64) -> (u16, Vec<u8>) {
        let lan = |dst: [u8; 4]| {
            let mut f = udp(LAN, [10, 0, 0, 2], dst, len, df);
            f[14 + 8] = ttl;
            Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
            f
        };
        match k % 7 {
            0 => (0, lan([192, 0, 2, 2])),
            1 => (0, lan([10, 9, 1, 1])),
            2 => (0, lan([192, 0, 2, 1])),
            3 => (0, lan([10, 0, 0, 5])),
            4 => (
                1,
                peer_seal_seq(
                    &udp(LAN, [10, 9, 1, 1], [10, 0, 0, 2], len, df),
                    0x2001,
                    seq,
                ),
            ),
            6 => (
                1,
                peer_seal_seq(
                    &udp(LAN, [192, 0, 2, 77], [10, 0, 0, 2], len, df),
                    0x2001,
                    seq,
                ),
            ),
            _ => {
                let mut f = udp(WAN, [192, 0, 2, 2], [192, 0, 2, 1], len, df);
                f[34..36].copy_from_slice(&500u16.to_be_bytes());
                f[36..38].copy_from_slice(&500u16.to_be_bytes());
                (1, f)
            }
        }
    }

    proptest::proptest! {
        /// With IPsec configured, frames that enter the node pipeline past L2 and IP input
        /// (the fast path's entry) end exactly as those that walk every node: the same
        /// frames out (ESP opened), drops, per-policy counters and events.
        #[test]
        fn the_fast_entry_decides_as_the_node_pipeline(
            specs in proptest::collection::vec(
                (0u8..7, 0usize..1500, 1u8..=3, proptest::prelude::any::<bool>(),
                 proptest::option::of((0usize..60, proptest::prelude::any::<u8>())), 0usize..3),
                1..24,
            ),
            policy_in in proptest::prelude::any::<bool>(),
        ) {
            let frames: Vec<(u16, Vec<u8>)> = specs
                .iter()
                .enumerate()
                .map(|(n, &(k, len, ttl, df, flip, cut))| {
                    let (port, mut f) = ipsec_frame(k, len, ttl * 30 - 29, df, n as u64 + 1);
                    if let Some((at, x)) = flip {
                        if at < f.len() {
                            f[at] ^= x;
                        }
                    }
                    let keep = f.len().saturating_sub(cut * 9);
                    f.truncate(keep);
                    (port, f)
                })
                .collect();
            let seen = |fast| observe_ipsec_with(fast, &frames, Lifetime::default(), policy_in);
            proptest::prop_assert_eq!(seen(true), seen(false));
        }
    }

    #[test]
    fn each_ipsec_frame_kind_alone_goes_where_it_should_either_way() {
        // (frames out of lan, out of wan) per kind: sealed by policy, sealed by the VTI,
        // to us (punt refused here: dropped), forwarded in clear, decrypted from the VTI's
        // peer, IKE (punt refused here: dropped), decrypted from the policy's peer. With the
        // inbound SA policy-based instead of the VTI's, what it decrypts from 10.9.0.0/16 is
        // outside the policy (dropped).
        let vti_in = [(0, 1), (0, 1), (0, 0), (1, 0), (1, 0), (0, 0), (1, 0)];
        let policy_in = [(0, 1), (0, 1), (0, 0), (1, 0), (0, 0), (0, 0), (1, 0)];
        for (pin, want) in [(false, vti_in), (true, policy_in)] {
            for (k, w) in want.into_iter().enumerate() {
                let frames = [ipsec_frame(k as u8, 100, 64, true, 1)];
                let seen = |fast| observe_ipsec_with(fast, &frames, Lifetime::default(), pin);
                let fast = seen(true);
                assert_eq!(fast, seen(false), "kind {k} policy-based in {pin}");
                assert_eq!(
                    (fast.0[0].len(), fast.0[1].len()),
                    w,
                    "kind {k} policy-based in {pin}: {:?}",
                    fast.1
                );
            }
        }
        // Sealed in one pass or by ESP output, an SA ends its life the same way: one soft
        // event, one hard event, later packets counted as expired.
        let frames: Vec<_> = (0..7)
            .map(|n| ipsec_frame(0, 100 + n, 64, true, 1))
            .collect();
        let limits = Lifetime {
            soft_packets: Some(2),
            hard_packets: Some(4),
            ..Lifetime::default()
        };
        let fast = observe_ipsec_with(true, &frames, limits, false);
        assert_eq!(fast, observe_ipsec_with(false, &frames, limits, false));
        assert_eq!(fast.0[1].len(), 4);
        assert_eq!(fast.1[DropReason::EspSaExpired as usize], 3);
        assert_eq!(fast.3, 2);
        // Padding cut before the policy counts bytes: a short frame padded to 60 octets.
        let (_, mut f) = ipsec_frame(0, 4, 64, true, 1);
        f.resize(60, 0);
        let fast = observe_ipsec(true, &[(0, f.clone())]);
        assert_eq!(fast, observe_ipsec(false, &[(0, f)]));
        assert_eq!(fast.0[1].len(), 1);
    }
}
