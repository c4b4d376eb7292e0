//! The IPsec nodes: inbound ESP (SPI → SA, decrypt, re-classify the inner packet), the policy
//! check on forwarded traffic (inbound: cleartext that should have been protected, decrypted
//! traffic outside its SA's selectors; outbound: protect / bypass / discard), and outbound ESP.
//!
//! An SA is only touched by the worker that owns it; a packet meeting an SA owned elsewhere is
//! handed to the owner with its metadata and continues there in the same node.

use super::{Ctx, Env, Handoff, Meta, Node, Pipeline};
use crate::esp;
use crate::events::{Event, PuntKind, Punted};
use crate::packet::Packet;
use crate::stats::DropReason;
use crate::tables::ipsec::{Action, Dir, FlowKey, SaRef};
use crate::tables::Tables;
use crate::wire::ipproto;

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
    if m.local_origin && m.sa_in == 0 {
        return None;
    }
    match t.ipsec.classify(Dir::In, m.in_if, k).map(|p| &p.action) {
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
    }
}

impl<P: Packet> Pipeline<P> {
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
        let m = self.meta[i];
        match local_kind(t, p.data(), m.v6) {
            LocalKind::Esp(_) => self.sched.push(Node::EspIn, i),
            LocalKind::Tunnel => {
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
        let LocalKind::Esp(off) = local_kind(t, p.data(), self.meta[i].v6) else {
            return self.drop(ctx, i, DropReason::EspMalformed);
        };
        let Some(spi) = p
            .data()
            .get(off..off + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            return self.drop(ctx, i, DropReason::EspMalformed);
        };
        let Some(&sa_ref) = t.ipsec.sa_in.get(&spi) else {
            return self.drop(ctx, i, DropReason::EspNoSa);
        };
        if self.maybe_handoff(ctx, env, i, sa_ref, Node::EspIn) {
            return;
        }
        let Some(p) = self.slots[i].as_mut() else {
            return;
        };
        let Some(owned) = self.sas.get_mut(sa_ref.slot) else {
            return self.drop(ctx, i, DropReason::EspNoSa);
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
                self.reenter(ctx, i, Node::IpIn);
            }
            Err(r) => {
                if r == DropReason::EspSaExpired {
                    let _ = env.event(Event::SaHardExpired { sa: sa_ref.slot });
                }
                self.drop(ctx, i, r)
            }
        }
    }

    /// Policy check of a forwarded packet; false if it was consumed (dropped or sent to ESP
    /// output). `out_if` is the egress interface (policy scope on output).
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
        let Some(k) = FlowKey::of(p.data(), m.v6) else {
            self.drop(ctx, i, DropReason::EspPolicyMismatch);
            return false;
        };
        // Inbound: everything that came from outside (decrypted or not).
        if let Some(r) = inbound_verdict(t, &m, &k) {
            self.drop(ctx, i, r);
            return false;
        }
        match t.ipsec.classify(Dir::Out, out_if, &k) {
            Some(pol) => match &pol.action {
                Action::Protect { out: Some(sa), .. } => {
                    self.meta[i].sa_out = sa.slot;
                    let sa = *sa;
                    if !self.maybe_handoff(ctx, env, i, sa, Node::EspOut) {
                        self.sched.push(Node::EspOut, i);
                    }
                    false
                }
                Action::Protect { out: None, .. } => {
                    let _ = env.event(Event::Acquire { policy: pol.id });
                    self.drop(ctx, i, DropReason::EspNoOutboundSa);
                    false
                }
                Action::Discard => {
                    self.drop(ctx, i, DropReason::SpdDiscard);
                    false
                }
                Action::Bypass => true,
            },
            None if t.ipsec.default_discard => {
                self.drop(ctx, i, DropReason::SpdDiscard);
                false
            }
            None => true,
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
                if matches!(r, DropReason::EspSaExpired | DropReason::EspSeqExhausted) {
                    let _ = env.event(Event::SaHardExpired { sa: slot });
                }
                self.drop(ctx, i, r)
            }
        }
    }
}
