//! Dynamic neighbors (ARP for IPv4, Neighbor Discovery for IPv6): resolution on request from
//! the workers, learning from what hosts send us, aging and re-resolution. Only resolved
//! entries reach the dataplane (as adjacency host routes); a change of that set is what makes
//! the control loop republish the tables.
//!
//! States follow RFC 4861's shape, simplified: `Incomplete` (asking by broadcast/multicast,
//! up to `MAX_PROBES` times a second apart, then `Failed` for a hold time so a flood of
//! packets to a dead address does not become a flood of requests), `Reachable` (confirmed
//! within the reachable time), `Probe` (reachable time passed: asking the known MAC by
//! unicast while still using it; no answer after `MAX_PROBES` → removed).
//! Frames are built and parsed with smoltcp's `wire` representations.

use crate::build::Neighbors;
use crate::parse::IfAddr;
use dataplane::wire::Mac;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, Icmpv6Packet, Icmpv6Repr, IpProtocol,
    Ipv6Packet, Ipv6Repr, NdiscRepr, RawHardwareAddress,
};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

const MAX_PROBES: u8 = 3;
const RETRANS: Duration = Duration::from_secs(1);
const FAILED_HOLD: Duration = Duration::from_secs(5);

/// What the neighbor code needs to know about an L3 interface.
#[derive(Clone, Debug)]
pub struct IfInfo {
    pub port: u16,
    pub vlan: u16,
    pub mac: Mac,
    pub addrs: Vec<IfAddr>,
}

impl IfInfo {
    fn on_link(&self, ip: IpAddr) -> bool {
        self.addrs.iter().any(|a| a.subnet().contains(ip))
    }
    fn is_ours(&self, ip: IpAddr) -> bool {
        self.addrs.iter().any(|a| a.addr == ip)
    }
    fn src_v4(&self, toward: Ipv4Addr) -> Option<Ipv4Addr> {
        self.addrs.iter().find_map(|a| match a.addr {
            IpAddr::V4(v) if a.subnet().contains(IpAddr::V4(toward)) => Some(v),
            _ => None,
        })
    }
    fn src_v6(&self, toward: Ipv6Addr) -> Option<Ipv6Addr> {
        let v6 = || {
            self.addrs.iter().filter_map(|a| match a.addr {
                IpAddr::V6(v) => Some((v, a)),
                _ => None,
            })
        };
        v6().find(|(_, a)| a.subnet().contains(IpAddr::V6(toward)))
            .or_else(|| v6().next())
            .map(|(v, _)| v)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NState {
    Incomplete,
    Reachable,
    Probe,
    Failed,
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub mac: Option<Mac>,
    pub state: NState,
    /// When the state last changed (confirmation time for Reachable).
    pub since: Instant,
    probes: u8,
    next_tx: Instant,
}

/// A frame to transmit as is on a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct L2Frame {
    pub port: u16,
    pub bytes: Vec<u8>,
}

/// The dynamic neighbor table.
pub struct NeighborTable {
    ifs: Vec<IfInfo>,
    entries: HashMap<(usize, IpAddr), Entry>,
    reachable: Duration,
}

impl NeighborTable {
    pub fn new(ifs: Vec<IfInfo>, reachable: Duration) -> Self {
        NeighborTable {
            ifs,
            entries: HashMap::new(),
            reachable,
        }
    }

    /// Interfaces changed (addresses added/removed): entries off-link are dropped.
    pub fn set_interfaces(&mut self, ifs: Vec<IfInfo>) {
        self.ifs = ifs;
        let ifs = &self.ifs;
        self.entries
            .retain(|(i, ip), _| ifs.get(*i).is_some_and(|f| f.on_link(*ip)));
    }

    /// Resolved entries, for the table builder.
    pub fn resolved(&self) -> Neighbors {
        self.entries
            .iter()
            .filter_map(|(k, e)| match (e.state, e.mac) {
                (NState::Reachable | NState::Probe, Some(m)) => Some((*k, m)),
                _ => None,
            })
            .collect()
    }

    /// Every entry, for `show neighbors`.
    pub fn entries(&self) -> impl Iterator<Item = (&(usize, IpAddr), &Entry)> {
        self.entries.iter()
    }

    /// A worker asked for `ip` on `iface`: start resolving unless already in progress.
    pub fn request(&mut self, iface: usize, ip: IpAddr, now: Instant) -> Option<L2Frame> {
        let f = self.ifs.get(iface)?;
        if !f.on_link(ip) || f.is_ours(ip) {
            return None;
        }
        if self.entries.contains_key(&(iface, ip)) {
            return None;
        }
        self.entries.insert(
            (iface, ip),
            Entry {
                mac: None,
                state: NState::Incomplete,
                since: now,
                probes: 1,
                next_tx: now + RETRANS,
            },
        );
        self.solicit(iface, ip, None)
    }

    /// Timers: retransmit, age, expire. Returns frames to send and whether the resolved set
    /// changed.
    pub fn tick(&mut self, now: Instant) -> (Vec<L2Frame>, bool) {
        let mut out = Vec::new();
        let mut changed = false;
        let mut remove = Vec::new();
        let mut ask = Vec::new();
        for (&k, e) in self.entries.iter_mut() {
            match e.state {
                NState::Reachable if now.duration_since(e.since) >= self.reachable => {
                    e.state = NState::Probe;
                    e.since = now;
                    e.probes = 1;
                    e.next_tx = now + RETRANS;
                    ask.push((k, e.mac));
                }
                NState::Incomplete | NState::Probe if now >= e.next_tx => {
                    if e.probes >= MAX_PROBES {
                        if e.state == NState::Probe {
                            changed = true;
                            remove.push(k);
                        } else {
                            e.state = NState::Failed;
                            e.since = now;
                        }
                    } else {
                        e.probes += 1;
                        e.next_tx = now + RETRANS;
                        ask.push((
                            k,
                            if e.state == NState::Probe {
                                e.mac
                            } else {
                                None
                            },
                        ));
                    }
                }
                NState::Failed if now.duration_since(e.since) >= FAILED_HOLD => remove.push(k),
                _ => {}
            }
        }
        for k in remove {
            self.entries.remove(&k);
        }
        for ((i, ip), mac) in ask {
            out.extend(self.solicit(i, ip, mac));
        }
        (out, changed)
    }

    /// Learn from (and maybe answer nothing to: smoltcp answers) an ARP frame received on
    /// `iface`. Returns true when the resolved set changed.
    pub fn on_arp(&mut self, iface: usize, frame: &[u8], now: Instant) -> bool {
        let Some(payload) = l2_payload(frame) else {
            return false;
        };
        let Ok(pkt) = ArpPacket::new_checked(payload) else {
            return false;
        };
        let Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) = ArpRepr::parse(&pkt)
        else {
            return false;
        };
        let mac = Mac(source_hardware_addr.0);
        if mac.is_multicast() || mac == Mac::ZERO {
            return false;
        }
        let src = IpAddr::V4(source_protocol_addr);
        let to_us = self
            .ifs
            .get(iface)
            .is_some_and(|f| f.is_ours(IpAddr::V4(target_protocol_addr)));
        // RFC 826 merge: update an entry we have; create one only when the sender talks to us.
        let create = to_us || operation == ArpOperation::Reply;
        self.learn(iface, src, mac, create, now)
    }

    /// Learn from an ICMPv6 Neighbor Advertisement / Solicitation (IPv6 packet, no L2).
    pub fn on_ndisc(&mut self, iface: usize, pkt: &[u8], now: Instant) -> bool {
        let Ok(ip) = Ipv6Packet::new_checked(pkt) else {
            return false;
        };
        let Ok(ipr) = Ipv6Repr::parse(&ip) else {
            return false;
        };
        if ipr.next_header != IpProtocol::Icmpv6 || ipr.hop_limit != 255 {
            return false; // RFC 4861 §7.1.1: ND must come from the link itself
        }
        let Ok(icmp) = Icmpv6Packet::new_checked(ip.payload()) else {
            return false;
        };
        let caps = ChecksumCapabilities::default();
        let Ok(Icmpv6Repr::Ndisc(nd)) =
            Icmpv6Repr::parse(&ipr.src_addr, &ipr.dst_addr, &icmp, &caps)
        else {
            return false;
        };
        match nd {
            NdiscRepr::NeighborAdvert {
                target_addr,
                lladdr: Some(ll),
                ..
            } => {
                let Some(mac) = raw_mac(ll) else { return false };
                self.learn(iface, IpAddr::V6(target_addr), mac, true, now)
            }
            NdiscRepr::NeighborSolicit {
                lladdr: Some(ll), ..
            } if !ipr.src_addr.is_unspecified() => {
                let Some(mac) = raw_mac(ll) else { return false };
                self.learn(iface, IpAddr::V6(ipr.src_addr), mac, true, now)
            }
            _ => false,
        }
    }

    fn learn(&mut self, iface: usize, ip: IpAddr, mac: Mac, create: bool, now: Instant) -> bool {
        let Some(f) = self.ifs.get(iface) else {
            return false;
        };
        if !f.on_link(ip) || f.is_ours(ip) {
            return false;
        }
        match self.entries.get_mut(&(iface, ip)) {
            Some(e) => {
                let was = (e.state, e.mac);
                e.mac = Some(mac);
                e.state = NState::Reachable;
                e.since = now;
                e.probes = 0;
                !matches!(was, (NState::Reachable | NState::Probe, Some(m)) if m == mac)
            }
            None if create => {
                self.entries.insert(
                    (iface, ip),
                    Entry {
                        mac: Some(mac),
                        state: NState::Reachable,
                        since: now,
                        probes: 0,
                        next_tx: now,
                    },
                );
                true
            }
            None => false,
        }
    }

    /// An ARP request / Neighbor Solicitation for `ip` on `iface`, broadcast (multicast) or
    /// unicast to `known` when re-confirming.
    fn solicit(&self, iface: usize, ip: IpAddr, known: Option<Mac>) -> Option<L2Frame> {
        let f = self.ifs.get(iface)?;
        let mut bytes = Vec::with_capacity(90);
        match ip {
            IpAddr::V4(t) => {
                let src = f.src_v4(t)?;
                let arp = ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Request,
                    source_hardware_addr: EthernetAddress(f.mac.0),
                    source_protocol_addr: src,
                    target_hardware_addr: EthernetAddress([0; 6]),
                    target_protocol_addr: t,
                };
                eth_header(&mut bytes, known.unwrap_or(Mac::BROADCAST), f, 0x0806);
                let at = bytes.len();
                bytes.resize(at + arp.buffer_len(), 0);
                arp.emit(&mut ArpPacket::new_unchecked(&mut bytes[at..]));
            }
            IpAddr::V6(t) => {
                let src = f.src_v6(t)?;
                let dst = match known {
                    Some(_) => t,
                    None => solicited_node(t),
                };
                let dst_mac = known.unwrap_or_else(|| {
                    let o = dst.octets();
                    Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
                });
                let nd = Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit {
                    target_addr: t,
                    lladdr: Some(RawHardwareAddress::from(EthernetAddress(f.mac.0))),
                });
                let ipr = Ipv6Repr {
                    src_addr: src,
                    dst_addr: dst,
                    next_header: IpProtocol::Icmpv6,
                    payload_len: nd.buffer_len(),
                    hop_limit: 255,
                };
                eth_header(&mut bytes, dst_mac, f, 0x86dd);
                let at = bytes.len();
                bytes.resize(at + 40 + nd.buffer_len(), 0);
                let mut ip = Ipv6Packet::new_unchecked(&mut bytes[at..]);
                ipr.emit(&mut ip);
                let mut icmp = Icmpv6Packet::new_unchecked(ip.payload_mut());
                nd.emit(&src, &dst, &mut icmp, &ChecksumCapabilities::default());
            }
        }
        Some(L2Frame {
            port: f.port,
            bytes,
        })
    }
}

fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        u16::from_be_bytes([o[14], o[15]]),
    )
}

fn raw_mac(ll: RawHardwareAddress) -> Option<Mac> {
    let b = ll.as_bytes();
    let m = Mac(b.try_into().ok()?);
    (!m.is_multicast() && m != Mac::ZERO).then_some(m)
}

/// Ethernet header (with an 802.1Q tag for VLAN interfaces).
pub fn eth_header(out: &mut Vec<u8>, dst: Mac, f: &IfInfo, ethertype: u16) {
    out.extend_from_slice(&dst.0);
    out.extend_from_slice(&f.mac.0);
    if f.vlan != 0 {
        out.extend_from_slice(&[0x81, 0x00]);
        out.extend_from_slice(&f.vlan.to_be_bytes());
    }
    out.extend_from_slice(&ethertype.to_be_bytes());
}

/// The payload after the Ethernet header and any VLAN tags.
pub fn l2_payload(frame: &[u8]) -> Option<&[u8]> {
    let h = dataplane::wire::L2Header::parse(frame).ok()?;
    frame.get(h.l3_offset..)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ifs() -> Vec<IfInfo> {
        vec![
            IfInfo {
                port: 0,
                vlan: 0,
                mac: Mac([2, 0, 0, 0, 0, 1]),
                addrs: vec![
                    IfAddr::parse("10.0.0.1/24").unwrap(),
                    IfAddr::parse("2001:db8::1/64").unwrap(),
                ],
            },
            IfInfo {
                port: 1,
                vlan: 7,
                mac: Mac([2, 0, 0, 0, 0, 2]),
                addrs: vec![IfAddr::parse("10.7.0.1/24").unwrap()],
            },
        ]
    }

    fn arp_reply(from_ip: [u8; 4], from_mac: [u8; 6], to_ip: [u8; 4]) -> Vec<u8> {
        let r = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress(from_mac),
            source_protocol_addr: from_ip.into(),
            target_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            target_protocol_addr: to_ip.into(),
        };
        let mut v = vec![2, 0, 0, 0, 0, 1];
        v.extend_from_slice(&from_mac);
        v.extend_from_slice(&[0x08, 0x06]);
        let at = v.len();
        v.resize(at + 28, 0);
        r.emit(&mut ArpPacket::new_unchecked(&mut v[at..]));
        v
    }

    #[test]
    fn resolves_learns_ages_and_forgets() {
        let t0 = Instant::now();
        let mut n = NeighborTable::new(ifs(), Duration::from_secs(30));
        let ip: IpAddr = "10.0.0.5".parse().unwrap();
        let req = n.request(0, ip, t0).expect("an ARP request");
        assert_eq!(&req.bytes[0..6], &[0xff; 6]);
        assert_eq!(&req.bytes[12..14], &[0x08, 0x06]);
        let parsed = ArpRepr::parse(&ArpPacket::new_checked(&req.bytes[14..]).unwrap()).unwrap();
        assert!(
            matches!(parsed, ArpRepr::EthernetIpv4 { operation: ArpOperation::Request, target_protocol_addr, source_protocol_addr, .. }
            if target_protocol_addr == Ipv4Addr::new(10, 0, 0, 5) && source_protocol_addr == Ipv4Addr::new(10, 0, 0, 1))
        );
        assert!(n.request(0, ip, t0).is_none(), "already in progress");
        assert!(
            n.request(0, "192.168.9.9".parse().unwrap(), t0).is_none(),
            "off-link"
        );
        assert!(n.resolved().is_empty());

        // Retransmit after a second.
        let (f, ch) = n.tick(t0 + Duration::from_millis(1100));
        assert_eq!((f.len(), ch), (1, false));

        // Reply arrives: resolved.
        assert!(n.on_arp(
            0,
            &arp_reply([10, 0, 0, 5], [2, 0, 0, 0, 0, 5], [10, 0, 0, 1]),
            t0
        ));
        assert_eq!(n.resolved().get(&(0, ip)), Some(&Mac([2, 0, 0, 0, 0, 5])));
        assert!(
            !n.on_arp(
                0,
                &arp_reply([10, 0, 0, 5], [2, 0, 0, 0, 0, 5], [10, 0, 0, 1]),
                t0
            ),
            "no change"
        );

        // Reachable time passes: unicast probes, still usable; no answer → removed.
        let t1 = t0 + Duration::from_secs(31);
        let (f, ch) = n.tick(t1);
        assert_eq!(&f[0].bytes[0..6], &[2, 0, 0, 0, 0, 5], "unicast probe");
        assert!(!ch && n.resolved().contains_key(&(0, ip)));
        let (_, ch) = n.tick(t1 + Duration::from_secs(1));
        assert!(!ch);
        let (_, ch) = n.tick(t1 + Duration::from_secs(2));
        assert!(!ch);
        let (_, ch) = n.tick(t1 + Duration::from_secs(3));
        assert!(ch, "removed after unanswered probes");
        assert!(n.resolved().is_empty());
    }

    #[test]
    fn unanswered_request_fails_then_is_forgotten() {
        let t0 = Instant::now();
        let mut n = NeighborTable::new(ifs(), Duration::from_secs(30));
        let ip: IpAddr = "10.7.0.9".parse().unwrap();
        let req = n.request(1, ip, t0).unwrap();
        assert_eq!(req.port, 1);
        assert_eq!(
            &req.bytes[12..16],
            &[0x81, 0x00, 0x00, 0x07],
            "tagged for the VLAN interface"
        );
        for s in 1..=3 {
            n.tick(t0 + Duration::from_secs(s) + Duration::from_millis(10));
        }
        assert_eq!(n.entries.get(&(1, ip)).unwrap().state, NState::Failed);
        assert!(
            n.request(1, ip, t0 + Duration::from_secs(4)).is_none(),
            "held as failed"
        );
        n.tick(t0 + Duration::from_secs(10));
        assert!(
            n.request(1, ip, t0 + Duration::from_secs(10)).is_some(),
            "asked again after the hold"
        );
    }

    #[test]
    fn neighbor_solicitation_and_advert_round_trip() {
        let t0 = Instant::now();
        let mut n = NeighborTable::new(ifs(), Duration::from_secs(30));
        let ip: IpAddr = "2001:db8::77".parse().unwrap();
        let ns = n.request(0, ip, t0).unwrap();
        assert_eq!(&ns.bytes[0..6], &[0x33, 0x33, 0xff, 0, 0, 0x77]);
        let pkt = &ns.bytes[14..];
        let ipp = Ipv6Packet::new_checked(pkt).unwrap();
        assert_eq!(
            ipp.dst_addr(),
            "ff02::1:ff00:77".parse::<Ipv6Addr>().unwrap()
        );
        // Build the advert the host would send back.
        let na = Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
            flags: smoltcp::wire::NdiscNeighborFlags::SOLICITED,
            target_addr: "2001:db8::77".parse().unwrap(),
            lladdr: Some(RawHardwareAddress::from(EthernetAddress([
                2, 0, 0, 0, 0, 0x77,
            ]))),
        });
        let (s, d): (Ipv6Addr, Ipv6Addr) = (
            "2001:db8::77".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        );
        let ipr = Ipv6Repr {
            src_addr: s,
            dst_addr: d,
            next_header: IpProtocol::Icmpv6,
            payload_len: na.buffer_len(),
            hop_limit: 255,
        };
        let mut buf = vec![0u8; 40 + na.buffer_len()];
        let mut p = Ipv6Packet::new_unchecked(&mut buf[..]);
        ipr.emit(&mut p);
        na.emit(
            &s,
            &d,
            &mut Icmpv6Packet::new_unchecked(p.payload_mut()),
            &ChecksumCapabilities::default(),
        );
        assert!(n.on_ndisc(0, &buf, t0));
        assert_eq!(
            n.resolved().get(&(0, ip)),
            Some(&Mac([2, 0, 0, 0, 0, 0x77]))
        );
        // Hop limit other than 255 is ignored (off-link spoofing).
        buf[7] = 64;
        assert!(!n.on_ndisc(0, &buf, t0));
    }
}
