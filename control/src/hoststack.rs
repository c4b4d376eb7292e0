//! The gateway's own host stack, smoltcp. Each L3 interface gets two smoltcp interfaces:
//! an Ethernet one that answers ARP and IPv6 Neighbor Solicitations for the interface's
//! addresses (frames as they arrived, replies as frames for that port), and an IP one that
//! answers ICMP/ICMPv6 echo and sends ICMP port unreachable for UDP nobody listens to. The
//! IP one's output is injected into the dataplane as locally originated packets, which are
//! routed like any other — so a ping to an address behind a tunnel is answered through it.

use crate::neighbor::IfInfo;
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant as SInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Instant;

/// Frames queued for smoltcp and frames it produced.
struct FrameDevice {
    medium: Medium,
    mtu: usize,
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut Vec<Vec<u8>>);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.0.push(buf);
        r
    }
}

impl Device for FrameDevice {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _t: SInstant) -> Option<(Rx, Tx<'_>)> {
        let f = self.rx.pop_front()?;
        Some((Rx(f), Tx(&mut self.tx)))
    }
    fn transmit(&mut self, _t: SInstant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx))
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = self.medium;
        c.max_transmission_unit = self.mtu;
        c
    }
}

/// Host-stack state of one L3 interface.
struct HostIf {
    info: IfInfo,
    eth: Interface,
    eth_dev: FrameDevice,
    ip: Interface,
    ip_dev: FrameDevice,
    sockets: SocketSet<'static>,
}

/// What the host stack wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOut {
    /// A finished frame for a port.
    L2 { port: u16, frame: Vec<u8> },
    /// An IP packet to route, from interface `iface`'s stack.
    L3 { iface: usize, packet: Vec<u8> },
}

/// All interfaces' host stacks.
pub struct HostStack {
    ifs: Vec<HostIf>,
    epoch: Instant,
}

fn cidrs(info: &IfInfo) -> Vec<IpCidr> {
    info.addrs
        .iter()
        .map(|a| IpCidr::new(IpAddress::from(a.addr), a.len))
        .collect()
}

impl HostStack {
    /// One host stack per interface; `mtus[i]` is interface i's IP MTU.
    pub fn new(ifs: &[IfInfo], mtus: &[u16]) -> HostStack {
        let epoch = Instant::now();
        let seed = epoch.elapsed().as_nanos() as u64 ^ std::process::id() as u64;
        let ifs = ifs
            .iter()
            .zip(mtus)
            .map(|(info, &mtu)| {
                let now = SInstant::from_millis(0);
                let mut eth_dev = FrameDevice {
                    medium: Medium::Ethernet,
                    mtu: mtu as usize + 14,
                    rx: VecDeque::new(),
                    tx: Vec::new(),
                };
                let mut cfg = Config::new(HardwareAddress::Ethernet(EthernetAddress(info.mac.0)));
                cfg.random_seed = seed;
                let mut eth = Interface::new(cfg, &mut eth_dev, now);
                let mut ip_dev = FrameDevice {
                    medium: Medium::Ip,
                    mtu: mtu as usize,
                    rx: VecDeque::new(),
                    tx: Vec::new(),
                };
                let mut cfg = Config::new(HardwareAddress::Ip);
                cfg.random_seed = seed;
                let mut ip = Interface::new(cfg, &mut ip_dev, now);
                let c = cidrs(info);
                eth.update_ip_addrs(|a| a.extend(c.iter().copied()));
                ip.update_ip_addrs(|a| a.extend(c.iter().copied()));
                // Replies go to any source: the dataplane routes them, smoltcp only needs a
                // route to exist. Its own address serves as the nominal gateway.
                for a in &info.addrs {
                    match a.addr {
                        IpAddr::V4(v) => {
                            let _ = ip.routes_mut().add_default_ipv4_route(v);
                        }
                        IpAddr::V6(v) => {
                            let _ = ip.routes_mut().add_default_ipv6_route(v);
                        }
                    }
                }
                HostIf {
                    info: info.clone(),
                    eth,
                    eth_dev,
                    ip,
                    ip_dev,
                    sockets: SocketSet::new(Vec::new()),
                }
            })
            .collect();
        HostStack { ifs, epoch }
    }

    /// A frame for the Ethernet side (ARP, or an ND message with its original L2 header).
    /// VLAN tags are removed: smoltcp speaks untagged Ethernet.
    pub fn input_l2(&mut self, iface: usize, frame: &[u8]) {
        let Some(h) = self.ifs.get_mut(iface) else {
            return;
        };
        let Ok(l2) = dataplane::wire::L2Header::parse(frame) else {
            return;
        };
        let mut f = Vec::with_capacity(frame.len());
        f.extend_from_slice(&frame[..12]);
        f.extend_from_slice(&l2.ethertype.to_be_bytes());
        f.extend_from_slice(&frame[l2.l3_offset..]);
        h.eth_dev.rx.push_back(f);
    }

    /// An IP packet addressed to us (echo, UDP, ...).
    pub fn input_l3(&mut self, iface: usize, packet: &[u8]) {
        if let Some(h) = self.ifs.get_mut(iface) {
            h.ip_dev.rx.push_back(packet.to_vec());
        }
    }

    /// Run every stack; return what they want sent.
    pub fn poll(&mut self, now: Instant) -> Vec<HostOut> {
        let t = SInstant::from_micros(now.saturating_duration_since(self.epoch).as_micros() as i64);
        let mut out = Vec::new();
        for (iface, h) in self.ifs.iter_mut().enumerate() {
            if !h.eth_dev.rx.is_empty() {
                h.eth.poll(t, &mut h.eth_dev, &mut h.sockets);
            }
            if !h.ip_dev.rx.is_empty() {
                h.ip.poll(t, &mut h.ip_dev, &mut h.sockets);
            }
            for f in h.eth_dev.tx.drain(..) {
                if f.len() < 14 {
                    continue;
                }
                let frame = if h.info.vlan == 0 {
                    f
                } else {
                    let mut t = Vec::with_capacity(f.len() + 4);
                    t.extend_from_slice(&f[..12]);
                    t.extend_from_slice(&[0x81, 0x00]);
                    t.extend_from_slice(&h.info.vlan.to_be_bytes());
                    t.extend_from_slice(&f[12..]);
                    t
                };
                out.push(HostOut::L2 {
                    port: h.info.port,
                    frame,
                });
            }
            out.extend(
                h.ip_dev
                    .tx
                    .drain(..)
                    .map(|packet| HostOut::L3 { iface, packet }),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::IfAddr;
    use dataplane::wire::Mac;
    use etherparse::{PacketBuilder, SlicedPacket};

    fn stack() -> HostStack {
        let ifs = vec![IfInfo {
            port: 3,
            vlan: 9,
            mac: Mac([2, 0, 0, 0, 0, 1]),
            addrs: vec![
                IfAddr::parse("10.0.0.1/24").unwrap(),
                IfAddr::parse("2001:db8::1/64").unwrap(),
            ],
        }];
        HostStack::new(&ifs, &[1500])
    }

    #[test]
    fn answers_arp_for_its_address_on_the_vlan() {
        let mut h = stack();
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 9, 0x81, 0x00, 0x00, 0x09, 0x08, 0x06]);
        f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 9, 10, 0, 0, 9]);
        f.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, 1]);
        h.input_l2(0, &f);
        let out = h.poll(Instant::now());
        assert_eq!(out.len(), 1, "{out:?}");
        let HostOut::L2 { port, frame } = &out[0] else {
            panic!()
        };
        assert_eq!(*port, 3);
        assert_eq!(&frame[0..6], &[2, 0, 0, 0, 0, 9]);
        assert_eq!(&frame[12..18], &[0x81, 0x00, 0x00, 0x09, 0x08, 0x06]);
        assert_eq!(&frame[18 + 6..18 + 8], &[0, 2], "ARP reply");
        assert_eq!(&frame[18 + 8..18 + 14], &[2, 0, 0, 0, 0, 1], "our MAC");
    }

    #[test]
    fn answers_ping_v4_and_v6_as_routable_packets() {
        let mut h = stack();
        let mut p4 = Vec::new();
        PacketBuilder::ipv4([10, 9, 9, 9], [10, 0, 0, 1], 64)
            .icmpv4_echo_request(7, 1)
            .write(&mut p4, b"ping!")
            .unwrap();
        let mut p6 = Vec::new();
        let s6: std::net::Ipv6Addr = "2001:db8:ffff::5".parse().unwrap();
        let d6: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
        PacketBuilder::ipv6(s6.octets(), d6.octets(), 64)
            .icmpv6_echo_request(8, 2)
            .write(&mut p6, b"ping6")
            .unwrap();
        h.input_l3(0, &p4);
        h.input_l3(0, &p6);
        let out = h.poll(Instant::now());
        assert_eq!(out.len(), 2, "{out:?}");
        for o in out {
            let HostOut::L3 { iface: 0, packet } = o else {
                panic!("L3 from interface 0 expected")
            };
            let s = SlicedPacket::from_ip(&packet).unwrap();
            match s.transport.unwrap() {
                etherparse::TransportSlice::Icmpv4(i) => {
                    assert!(
                        matches!(i.icmp_type(), etherparse::Icmpv4Type::EchoReply(e) if e.id == 7)
                    );
                    assert_eq!(&packet[16..20], &[10, 9, 9, 9]);
                }
                etherparse::TransportSlice::Icmpv6(i) => {
                    assert!(
                        matches!(i.icmp_type(), etherparse::Icmpv6Type::EchoReply(e) if e.id == 8)
                    );
                }
                _ => panic!("not icmp"),
            }
        }
    }
}
