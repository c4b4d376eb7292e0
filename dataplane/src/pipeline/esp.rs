//! The IPsec nodes: inbound ESP (SPI → SA, decrypt, re-classify the inner packet), the policy
//! check on forwarded traffic (inbound: cleartext that should have been protected, decrypted
//! traffic outside its SA's selectors; outbound: protect / bypass / discard), and outbound ESP.
//!
//! An SA is only touched by the worker that owns it; a packet meeting an SA owned elsewhere is
//! handed to the owner with its metadata and continues there in the same node.

use super::{Ctx, Env, Handoff, Node, Pipeline};
use crate::esp;
use crate::events::{Event, PuntKind, Punted};
use crate::icmp_error::IcmpError;
use crate::packet::Packet;
use crate::stats::{reject_detail, DropReason, PolicyStat};
use crate::tables::fib::NextHop;
use crate::tables::ipsec::{Action, Dir, FlowKey, SaRef};
use crate::tables::Tables;
use crate::wire::{ipproto, Ipv4Packet};

/// IKE's ports.
const IKE_PORT: u16 = 500;
const NATT_PORT: u16 = 4500;

/// What a packet to one of our addresses is, as far as IPsec cares.
enum LocalKind {
    /// ESP; the SPI is at this offset from the IP header.
    Esp(usize),
    Ike,
    Keepalive,
    Other,
}

fn local_kind(d: &[u8], v6: bool) -> LocalKind {
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
                _ => LocalKind::Other,
            }
        }
        _ => LocalKind::Other,
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

    /// A packet to one of our addresses while SAs are installed: ESP and NAT-T go to ESP
    /// input, IKE to the control thread, NAT keepalives are absorbed, the rest is local.
    pub(super) fn local_ipsec<E: Env<P>>(&mut self, ctx: &Ctx, env: &mut E, i: usize) {
        let Some(p) = self.slots[i].as_ref() else {
            return;
        };
        let m = self.meta[i];
        match local_kind(p.data(), m.v6) {
            LocalKind::Esp(_) => self.sched.push(Node::EspIn, i),
            LocalKind::Ike => {
                let Some(pkt) = self.slots[i].take() else {
                    return;
                };
                match env.punt(Punted {
                    pkt,
                    kind: PuntKind::Ike { ifindex: m.in_if },
                }) {
                    Ok(()) => ctx.counters.punted.inc(),
                    Err(_) => ctx.counters.drop(DropReason::PuntQueueFull),
                }
            }
            LocalKind::Keepalive => self.drop(ctx, i, DropReason::NattKeepalive),
            LocalKind::Other => self.sched.push(Node::Local, i),
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
        let LocalKind::Esp(off) = local_kind(p.data(), self.meta[i].v6) else {
            return self.drop(ctx, i, DropReason::EspMalformed);
        };
        let Some(spi) = p
            .data()
            .get(off..off + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
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
                if r == DropReason::EspSaExpired && owned.sa.take_hard_report() {
                    let _ = env.event(Event::SaHardExpired { sa: sa_ref.slot });
                }
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
            if df || m.local_origin {
                let mtu = e.mtu as u32;
                return self.icmp_error(
                    t,
                    ctx,
                    i,
                    IcmpError::TooBig { mtu },
                    DropReason::MtuExceeded,
                );
            }
            return self.drop(ctx, i, DropReason::FragmentNeeded);
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
    /// output). `out_if` is the egress interface (policy scope on output). Each verdict is
    /// counted on the policy that gave it (the default action on the extra last entry).
    pub(super) fn policy_check<E: Env<P>>(
        &mut self,
        t: &Tables,
        ctx: &Ctx,
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
        let Some(k) = FlowKey::of(p.data(), m.v6) else {
            self.drop(ctx, i, DropReason::EspPolicyMismatch);
            return false;
        };
        let default_id = t.ipsec.policies().len();
        let count = |id: usize, what: PolicyStat, n: u64| {
            if let Some(c) = t.ipsec.counters.get(id) {
                c.add(ctx.worker, what, n);
            }
        };
        // Decrypted by a VTI's SA: arrived on the VTI, whose selectors are 0/0.
        let from_vti = m.sa_in != 0
            && !t.ipsec.vti_in.is_empty()
            && t.ipsec.vti_in.contains_key(&(m.sa_in - 1));
        // Inbound: everything that came from outside (decrypted or not).
        if (!m.local_origin || m.sa_in != 0) && !from_vti {
            let pol = t.ipsec.classify(Dir::In, m.in_if, &k);
            let id = pol.map_or(default_id, |p| p.id as usize);
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
            if let Some(r) = verdict {
                count(id, PolicyStat::Discarded, 1);
                let spi = match m.sa_in {
                    0 => 0,
                    s => self.sas.get_mut(s - 1).map_or(0, |o| o.sa.spi()),
                };
                self.drop_noted(ctx, i, r, reject_detail(spi, src));
                return false;
            }
            if m.sa_in != 0 {
                count(id, PolicyStat::InProtected, 1);
                count(id, PolicyStat::InProtectedBytes, len);
            }
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
                        let _ = env.event(Event::Acquire { policy: pol.id });
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
    pub(super) fn esp_out<E: Env<P>>(&mut self, _t: &Tables, ctx: &mut Ctx, env: &mut E, i: usize) {
        let slot = self.meta[i].sa_out;
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
                let m = &mut self.meta[i];
                m.v6 = p.data().first().is_some_and(|b| b >> 4 == 6);
                m.esp_out = true;
                m.local_origin = true;
                m.l2_len = 0;
                self.reenter(ctx, i, Node::IpIn);
            }
            Err(r) => {
                if matches!(r, DropReason::EspSaExpired | DropReason::EspSeqExhausted)
                    && owned.sa.take_hard_report()
                {
                    let _ = env.event(Event::SaHardExpired { sa: slot });
                }
                let detail = reject_detail(owned.sa.spi(), remote_v4(owned.sa.mode()));
                self.drop_noted(ctx, i, r, detail)
            }
        }
    }
}
