//! IPsec tables a worker reads: the security policies (SPD) per direction, the inbound SA
//! index by SPI, and where each SA lives.
//!
//! SA state (sequence counter, replay window, lifetime) changes per packet, so it cannot sit in
//! these immutable, RCU-published tables: every SA is owned by one worker (VPP's SA-worker
//! affinity) and lives in that worker's [`crate::esp::store::SaStore`]. The tables only say
//! which slot and which owner; a packet that meets an SA owned elsewhere is handed off to the
//! owner through a bounded ring. That keeps one writer per SA — no sequence number or IV is
//! ever used twice, the replay window is never raced — with no lock and no atomic RMW.

use super::spd::Spd;
use crate::stats::PolicyCounters;
use crate::wire::ipproto;
use hashbrown::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Where an SA lives: its slot in the owner worker's store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SaRef {
    pub slot: u32,
    pub owner: u16,
}

/// Traffic direction a policy applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    Out,
    In,
}

/// What a matching policy does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Encrypt with `out` (None: no SA installed yet → drop and ask for one); admit
    /// decrypted traffic only from the SAs in `inbound`.
    Protect {
        out: Option<SaRef>,
        inbound: Vec<u32>,
    },
    Bypass,
    Discard,
}

/// One security policy (selectors as seen in the policy's own direction).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Index in the control plane's policy list (for counters and events).
    pub id: u32,
    pub priority: u32,
    pub out: bool,
    pub inb: bool,
    pub src: (IpAddr, u8),
    pub dst: (IpAddr, u8),
    pub proto: Option<u8>,
    pub sport: (u16, u16),
    pub dport: (u16, u16),
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    /// Interface scope; `None` = every interface.
    pub scope: Option<u16>,
    pub action: Action,
}

/// The selector fields of one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    /// Ports for TCP/UDP/SCTP; ICMP type and code (RFC 4301 §4.4.1.1 carries them in the
    /// port selectors); 0 otherwise.
    pub sport: u16,
    pub dport: u16,
}

impl FlowKey {
    /// A key matching nothing in particular, to [`read`](Self::read) into.
    pub const UNSPECIFIED: FlowKey = FlowKey {
        src: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        dst: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        proto: 0,
        sport: 0,
        dport: 0,
    };

    /// The key of the IP packet at the start of `d` (header already validated by IP input).
    #[inline(always)]
    pub fn of(d: &[u8], v6: bool) -> Option<FlowKey> {
        let mut k = Self::UNSPECIFIED;
        k.read(d, v6).then_some(k)
    }

    /// [`of`](Self::of) into `self`, field by field; false (and `self` unspecified) for a
    /// header too short to hold the selectors. The per-packet paths use this: a key returned
    /// by value was copied on the stack with loads spanning the byte-wide stores that built
    /// its address enums, a store-forwarding stall per packet. Inlined for IPv4.
    #[inline(always)]
    pub fn read(&mut self, d: &[u8], v6: bool) -> bool {
        if v6 {
            return self.read6(d);
        }
        let Ok(ip) = crate::wire::Ipv4Packet::new_checked(d) else {
            return false;
        };
        // Non-first fragments carry no ports: they match port-wildcard policies only.
        let l4 = if ip.frag_word() & 0x1fff != 0 {
            usize::MAX
        } else {
            ip.header_len()
        };
        self.src = IpAddr::from(ip.src());
        self.dst = IpAddr::from(ip.dst());
        self.proto = ip.protocol();
        (self.sport, self.dport) = Self::ports(d, self.proto, l4);
        true
    }

    fn read6(&mut self, d: &[u8]) -> bool {
        let Ok(ip) = crate::wire::Ipv6Packet::new_checked(d) else {
            return false;
        };
        let Ok(ul) = ip.upper_layer() else {
            return false;
        };
        let l4 = if ul.non_first_fragment {
            usize::MAX
        } else {
            ul.offset
        };
        self.src = IpAddr::from(ip.src());
        self.dst = IpAddr::from(ip.dst());
        self.proto = ul.protocol;
        (self.sport, self.dport) = Self::ports(d, ul.protocol, l4);
        true
    }

    /// The port selectors of the upper-layer header at `l4` (`usize::MAX`: none, a non-first
    /// fragment).
    #[inline(always)]
    fn ports(d: &[u8], proto: u8, l4: usize) -> (u16, u16) {
        match proto {
            ipproto::TCP | ipproto::UDP | ipproto::SCTP => match d.get(l4..l4.saturating_add(4)) {
                Some(p) => (
                    u16::from_be_bytes([p[0], p[1]]),
                    u16::from_be_bytes([p[2], p[3]]),
                ),
                None => (0, 0),
            },
            ipproto::ICMP | ipproto::ICMPV6 => match d.get(l4..l4.saturating_add(2)) {
                Some(p) => (p[0] as u16, p[1] as u16),
                None => (0, 0),
            },
            _ => (0, 0),
        }
    }
}

fn prefix_match(a: IpAddr, p: (IpAddr, u8)) -> bool {
    match (a, p.0) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            // A length beyond the family's width (refused by the control plane) counts as
            // the full width rather than overflowing the shift.
            let m = if p.1 == 0 {
                0
            } else {
                u32::MAX << (32 - p.1.min(32) as u32)
            };
            u32::from(a) & m == u32::from(n) & m
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let m = if p.1 == 0 {
                0
            } else {
                u128::MAX << (128 - p.1.min(128) as u32)
            };
            u128::from(a) & m == u128::from(n) & m
        }
        _ => false,
    }
}

impl Policy {
    /// Does `k`, travelling in `dir` on interface `ifx`, match? Inbound traffic of an outbound
    /// (`both`) policy is matched mirrored: its source is the policy's destination.
    pub fn matches(&self, dir: Dir, ifx: u16, k: &FlowKey) -> bool {
        if self.scope.is_some_and(|s| s != ifx) {
            return false;
        }
        let (src, dst, sp, dp) = match dir {
            Dir::Out if self.out => (k.src, k.dst, k.sport, k.dport),
            Dir::In if self.inb => (k.dst, k.src, k.dport, k.sport),
            _ => return false,
        };
        if !prefix_match(src, self.src) || !prefix_match(dst, self.dst) {
            return false;
        }
        if let Some(p) = self.proto {
            if p != k.proto {
                return false;
            }
            if p == ipproto::ICMP || p == ipproto::ICMPV6 {
                // ICMP type/code as seen by the sender of the packet.
                let (t, c) = (k.sport as u8, k.dport as u8);
                return self.icmp_type.is_none_or(|x| x == t)
                    && self.icmp_code.is_none_or(|x| x == c);
            }
        }
        (self.sport.0..=self.sport.1).contains(&sp) && (self.dport.0..=self.dport.1).contains(&dp)
    }
}

/// All IPsec lookups of one table version.
#[derive(Debug, Default)]
pub struct IpsecTables {
    /// Policies sorted by (priority, id).
    policies: Vec<Policy>,
    /// The classifier over `policies` (ranks are indexes into it).
    spd: Spd,
    /// Traffic matching no policy is discarded (else bypassed).
    pub default_discard: bool,
    /// Inbound SAs by SPI.
    pub sa_in: HashMap<u32, SaRef>,
    /// Workers in the pool (SA owners are < this).
    pub workers: u16,
    /// Route-based IPsec interfaces, by the index in `NextHop::Vti`.
    pub vtis: Vec<VtiEntry>,
    /// Inbound SA slot -> VTI index: what such an SA decrypts arrives on that VTI and needs
    /// no policy (the VTI's selectors are 0.0.0.0/0 and ::/0).
    pub vti_in: HashMap<u32, u32>,
    /// Counters by policy id; one more entry after the last policy counts the traffic no
    /// policy matched (the default action). Empty in tables built without counters.
    pub counters: Vec<Arc<PolicyCounters>>,
}

/// A route-based IPsec interface (VTI) as a worker sees it: packets routed into it are sealed
/// with its outbound SA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VtiEntry {
    /// Its L3 interface (decrypted traffic arrives on it).
    pub ifindex: u16,
    /// Outbound SA (None: not installed → drop as no outbound SA).
    pub out: Option<SaRef>,
    /// IP MTU of the VTI: larger inner packets get "too big" / are not sealed.
    pub mtu: u16,
}

impl IpsecTables {
    pub fn new(
        mut policies: Vec<Policy>,
        default_discard: bool,
        sa_in: HashMap<u32, SaRef>,
        workers: u16,
    ) -> Self {
        policies.sort_by_key(|p| (p.priority, p.id));
        let spd = Spd::build(&policies);
        IpsecTables {
            policies,
            spd,
            default_discard,
            sa_in,
            workers,
            ..Default::default()
        }
    }

    /// No policy and bypass by default: the dataplane can skip every IPsec check.
    #[inline]
    pub fn is_inactive(&self) -> bool {
        self.policies.is_empty() && !self.default_discard
    }

    /// The first policy (lowest priority) matching `k` in `dir` on `ifx`.
    #[inline]
    pub fn classify(&self, dir: Dir, ifx: u16, k: &FlowKey) -> Option<&Policy> {
        self.spd
            .lookup(dir, ifx, k)
            .and_then(|i| self.policies.get(i))
    }

    /// Count `n` under `what` for policy `id` (`policies().len()`: the default action) on
    /// `worker`'s row.
    #[inline]
    pub fn count(&self, id: usize, worker: u32, what: crate::stats::PolicyStat, n: u64) {
        if let Some(c) = self.counters.get(id) {
            c.add(worker, what, n);
        }
    }

    /// What [`IpsecTables::classify`] answers, by a linear scan: the definition the
    /// classifier is tested against and the baseline `ferrobench spd` measures it with.
    pub fn classify_scan(&self, dir: Dir, ifx: u16, k: &FlowKey) -> Option<&Policy> {
        self.policies.iter().find(|p| p.matches(dir, ifx, k))
    }

    /// The classifier (for its size and shape in reports).
    pub fn spd(&self) -> &Spd {
        &self.spd
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pol(id: u32, prio: u32, src: &str, dst: &str, action: Action) -> Policy {
        let p = |s: &str| {
            let (a, l) = s.split_once('/').unwrap();
            (a.parse().unwrap(), l.parse().unwrap())
        };
        Policy {
            id,
            priority: prio,
            out: true,
            inb: true,
            src: p(src),
            dst: p(dst),
            proto: None,
            sport: (0, 65535),
            dport: (0, 65535),
            icmp_type: None,
            icmp_code: None,
            scope: None,
            action,
        }
    }

    #[test]
    fn priority_direction_and_mirroring() {
        let t = IpsecTables::new(
            vec![
                pol(
                    0,
                    10,
                    "10.0.1.0/24",
                    "10.0.2.0/24",
                    Action::Protect {
                        out: None,
                        inbound: vec![],
                    },
                ),
                pol(1, 5, "10.0.1.7/32", "10.0.2.0/24", Action::Bypass),
            ],
            false,
            HashMap::new(),
            1,
        );
        let k = |s: &str, d: &str| FlowKey {
            src: s.parse().unwrap(),
            dst: d.parse().unwrap(),
            proto: 17,
            sport: 1,
            dport: 2,
        };
        assert_eq!(
            t.classify(Dir::Out, 0, &k("10.0.1.1", "10.0.2.2"))
                .map(|p| p.id),
            Some(0)
        );
        assert_eq!(
            t.classify(Dir::Out, 0, &k("10.0.1.7", "10.0.2.2"))
                .map(|p| p.id),
            Some(1)
        );
        // Inbound: the mirror image matches.
        assert_eq!(
            t.classify(Dir::In, 0, &k("10.0.2.2", "10.0.1.1"))
                .map(|p| p.id),
            Some(0)
        );
        assert_eq!(t.classify(Dir::In, 0, &k("10.0.1.1", "10.0.2.2")), None);
    }

    #[test]
    fn flow_key_reads_ports_and_icmp() {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv4([1, 2, 3, 4], [5, 6, 7, 8], 9)
            .udp(1000, 2000)
            .write(&mut v, &[0; 4])
            .unwrap();
        let k = FlowKey::of(&v, false).unwrap();
        assert_eq!((k.proto, k.sport, k.dport), (17, 1000, 2000));
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv4([1, 2, 3, 4], [5, 6, 7, 8], 9)
            .icmpv4_echo_request(1, 2)
            .write(&mut v, &[0; 4])
            .unwrap();
        let k = FlowKey::of(&v, false).unwrap();
        assert_eq!((k.proto, k.sport, k.dport), (1, 8, 0));
    }
}
