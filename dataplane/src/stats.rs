//! Per-worker counters and the reason every dropped packet is counted under.
//!
//! Each worker owns one [`WorkerCounters`] block (cache-line aligned, so two workers never share
//! a line). Only the owning worker writes it; the control thread reads it. Writes are a relaxed
//! load + store rather than `fetch_add`: with a single writer there is no lost update, and it
//! avoids a locked instruction per packet.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! drop_reasons {
    ($( $(#[$doc:meta])* $name:ident = $id:literal, $text:literal; )*) => {
        /// Why a packet was dropped. Every drop in the dataplane is counted under one of these.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum DropReason {
            $( $(#[$doc])* $name, )*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[ $( DropReason::$name, )* ];
            /// Number of reasons (size of a counter array).
            pub const COUNT: usize = Self::ALL.len();

            /// Stable machine name (used in `show errors --json` and in tests).
            pub const fn name(self) -> &'static str {
                match self { $( DropReason::$name => $id, )* }
            }

            /// Operator-facing description (the reference products' wording where they have one).
            pub const fn text(self) -> &'static str {
                match self { $( DropReason::$name => $text, )* }
            }

            /// Parse a machine name.
            pub fn from_name(s: &str) -> Option<Self> {
                match s { $( $id => Some(DropReason::$name), )* _ => None }
            }
        }
    };
}

drop_reasons! {
    // --- L2 / input -------------------------------------------------------------------------
    EthTruncated = "eth-truncated", "Ethernet header truncated";
    VlanTruncated = "vlan-truncated", "802.1Q/QinQ tag truncated";
    NotForUs = "l2-not-for-us", "Destination MAC is not ours, broadcast or multicast";
    UnknownEthertype = "unknown-ethertype", "Unsupported EtherType";
    UnknownVlan = "unknown-vlan", "VLAN not configured on the port";
    MultiSegment = "multi-segment", "Multi-segment frame (not supported)";
    // --- IPv4 / IPv6 --------------------------------------------------------------------------
    Ipv4Truncated = "ipv4-truncated", "IPv4 header truncated";
    Ipv4BadVersion = "ipv4-bad-version", "IPv4 version field is not 4";
    Ipv4BadIhl = "ipv4-bad-ihl", "IPv4 IHL below 5 or beyond the frame";
    Ipv4BadTotalLength = "ipv4-bad-total-length", "IPv4 total length beyond the frame or below the header";
    Ipv4BadChecksum = "ipv4-bad-checksum", "IPv4 header checksum mismatch";
    Ipv4BadSource = "ipv4-bad-source", "IPv4 source is multicast, broadcast or unspecified";
    Ipv6Truncated = "ipv6-truncated", "IPv6 header truncated";
    Ipv6BadVersion = "ipv6-bad-version", "IPv6 version field is not 6";
    Ipv6BadPayloadLength = "ipv6-bad-payload-length", "IPv6 payload length beyond the frame";
    Ipv6BadExtHeader = "ipv6-bad-ext-header", "IPv6 extension header truncated or malformed";
    TtlExpired = "ttl-expired", "IPv4 TTL expired in transit";
    HopLimitExpired = "hop-limit-expired", "IPv6 hop limit expired in transit";
    NoRoute = "no-route", "No route to destination";
    NoNeighbor = "no-neighbor", "Next hop MAC not resolved";
    RouteBlackhole = "route-blackhole", "Route is a blackhole";
    MtuExceeded = "mtu-exceeded", "Packet larger than egress MTU with DF set";
    FragmentNeeded = "fragment-failed", "Fragmentation failed (no buffer or not allowed)";
    Ipv4Fragment = "ipv4-fragment-to-us", "Fragmented packet addressed to us (reassembly unsupported)";
    IcmpRateLimited = "icmp-rate-limited", "ICMP error suppressed by rate limit";
    UdpTruncated = "udp-truncated", "UDP header truncated";
    UdpBadLength = "udp-bad-length", "UDP length field beyond the packet";
    UdpBadChecksum = "udp-bad-checksum", "UDP checksum mismatch";
    NoHeadroom = "no-headroom", "Not enough headroom to prepend headers";
    NoTailroom = "no-tailroom", "Not enough tailroom to append trailer";
    EcnCeOnNotEct = "ecn-ce-on-not-ect", "Outer CE mark over a Not-ECT inner packet (RFC 6040)";
    LocalNoListener = "local-unhandled", "Packet to a local address not handled by any service";
    // --- threads and queues -------------------------------------------------------------------
    PuntQueueFull = "punt-queue-full", "Punt ring to the control thread full";
    HandoffQueueFull = "handoff-queue-full", "Worker hand-off ring full";
    TxQueueFull = "tx-queue-full", "Transmit queue did not accept the packet";
    LoopDetected = "reclassify-limit", "Packet re-entered classification too many times";
    NoBuffer = "no-buffer", "Buffer allocation failed";
    // --- tunnels ------------------------------------------------------------------------------
    TunnelNoMatch = "tunnel-no-match", "No tunnel matches (local, protocol/port, key)";
    TunnelDown = "tunnel-down", "Tunnel is administratively down";
    TunnelInboundOnly = "tunnel-inbound-only", "Encapsulation into an inbound-only tunnel";
    GreTruncated = "gre-truncated", "GRE header truncated";
    GreBadVersion = "gre-bad-version", "GRE version is not 0";
    GreRoutingBit = "gre-routing-bit", "GRE routing bit set (RFC 2784)";
    GreReservedBits = "gre-reserved-bits", "GRE reserved bits set";
    GreBadChecksum = "gre-bad-checksum", "GRE checksum mismatch";
    GreKeyMismatch = "gre-key-mismatch", "GRE key presence differs from the tunnel";
    GreSequence = "gre-sequence", "GRE sequence number out of order";
    GreBadProtocol = "gre-bad-protocol", "GRE protocol type not carried by the tunnel";
    NvgreBadHeader = "nvgre-bad-header", "NVGRE header flags or protocol invalid";
    VxlanTruncated = "vxlan-truncated", "VXLAN header truncated";
    VxlanIFlagClear = "vxlan-i-flag-clear", "VXLAN I flag clear";
    VxlanGpeBadNextProtocol = "vxlan-gpe-bad-next-protocol", "VXLAN-GPE next protocol unsupported";
    VxlanGpeBadVersion = "vxlan-gpe-bad-version", "VXLAN-GPE version is not 0";
    VxlanGpeOam = "vxlan-gpe-oam", "VXLAN-GPE OAM packet (O bit) not for the dataplane";
    GeneveTruncated = "geneve-truncated", "Geneve header truncated";
    GeneveBadVersion = "geneve-bad-version", "Geneve version is not 0";
    GeneveOptionsBeyond = "geneve-options-beyond", "Geneve options length beyond the packet";
    GeneveBadOption = "geneve-bad-option", "Geneve option TLV malformed";
    GeneveCriticalOption = "geneve-critical-option", "Geneve unknown option with the critical bit";
    GeneveBadProtocol = "geneve-bad-protocol", "Geneve protocol type unsupported";
    GeneveOam = "geneve-oam", "Geneve OAM frame (O bit) not for the dataplane";
    EtheripTruncated = "etherip-truncated", "EtherIP header truncated";
    EtheripBadVersion = "etherip-bad-version", "EtherIP version is not 3";
    IpipBadInner = "ipip-bad-inner", "IP-in-IP inner family differs from the tunnel";
    InnerTruncated = "inner-truncated", "Inner frame truncated";
    XconnectNoPeer = "xconnect-no-peer", "L2 cross-connect has no peer";
    // --- IPsec ------------------------------------------------------------------------------
    EspNoSa = "esp-no-sa", "No Inbound SA Found.";
    EspAuthFailed = "esp-auth-failed", "Authentication failure. Possibly mis-matching keys.";
    EspReplayLate = "esp-replay-late", "Late Packet falling out of window.";
    EspReplayDuplicate = "esp-replay-duplicate", "Repeated/duplicate packet.";
    EspModeMismatch = "esp-mode-mismatch", "Encapsulation mode differs. Received in Transport mode, where expected in Tunnel mode.";
    EspSaExpired = "esp-sa-expired", "SA expired (hard lifetime reached).";
    EspPolicyMismatch = "esp-policy-mismatch", "Inbound packet does not match the SA's traffic selectors.";
    EspBadPadding = "esp-bad-padding", "ESP padding invalid.";
    EspMalformed = "esp-malformed", "Malformed ESP packet.";
    EspSeqExhausted = "esp-seq-exhausted", "Outbound sequence number space exhausted; rekey required.";
    EspNoOutboundSa = "esp-no-outbound-sa", "Policy requires protection but no outbound SA is installed.";
    EspBadNextHeader = "esp-bad-next-header", "ESP next header not valid for the SA's mode.";
    SpdDiscard = "spd-discard", "Discarded by security policy.";
    SpdUnprotected = "spd-unprotected", "Cleartext packet matched a policy requiring protection.";
    NattBadHeader = "natt-bad-header", "Malformed UDP-encapsulated ESP.";
    NattKeepalive = "natt-keepalive", "NAT-T keepalive absorbed.";
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A counter written by exactly one thread and read by others.
#[derive(Default, Debug)]
#[repr(transparent)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Add `n`. Only the owning thread may call this.
    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }
    /// Add one.
    #[inline(always)]
    pub fn inc(&self) {
        self.add(1)
    }
    /// Current value (from any thread).
    #[inline]
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    /// Overwrite (only the owning thread), for values that are not counts.
    #[inline(always)]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed)
    }
}

/// One worker's counters. Aligned to two cache lines so adjacent prefetch never pulls in a
/// neighbour's block.
#[repr(C, align(128))]
#[derive(Debug)]
pub struct WorkerCounters {
    /// Frames received from NIC queues.
    pub rx_packets: Counter,
    /// Bytes received from NIC queues.
    pub rx_bytes: Counter,
    /// Frames handed to NIC queues and accepted.
    pub tx_packets: Counter,
    /// Bytes handed to NIC queues and accepted.
    pub tx_bytes: Counter,
    /// Non-empty RX bursts processed.
    pub bursts: Counter,
    /// TSC cycles spent on non-empty bursts (rx through tx).
    pub busy_cycles: Counter,
    /// Polls of all queues that returned nothing.
    pub idle_polls: Counter,
    /// Frames punted to the control thread.
    pub punted: Counter,
    /// Frames injected by the control thread and sent.
    pub injected: Counter,
    /// Table version this worker is running.
    pub table_version: Counter,
    /// Drops by reason, indexed by `DropReason as usize`.
    pub drops: [Counter; DropReason::COUNT],
    /// What the last IPsec drop of each reason was about, for the control thread's
    /// rate-limited log: see [`reject_detail`]. Written on the drop path only.
    pub last_detail: [Counter; DropReason::COUNT],
}

impl Default for WorkerCounters {
    fn default() -> Self {
        WorkerCounters {
            rx_packets: Counter::default(),
            rx_bytes: Counter::default(),
            tx_packets: Counter::default(),
            tx_bytes: Counter::default(),
            bursts: Counter::default(),
            busy_cycles: Counter::default(),
            idle_polls: Counter::default(),
            punted: Counter::default(),
            injected: Counter::default(),
            table_version: Counter::default(),
            drops: std::array::from_fn(|_| Counter::default()),
            last_detail: std::array::from_fn(|_| Counter::default()),
        }
    }
}

impl WorkerCounters {
    /// Count one drop.
    #[inline(always)]
    pub fn drop(&self, reason: DropReason) {
        self.drops[reason as usize].inc();
    }
    /// Packets dropped, over all reasons. `icmp-rate-limited` is left out: it counts ICMP
    /// errors not sent, and the packet that caused one is already counted under its own
    /// reason (TTL expired, MTU exceeded), so adding it would count that packet twice.
    pub fn total_drops(&self) -> u64 {
        self.drops
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != DropReason::IcmpRateLimited as usize)
            .map(|(_, c)| c.get())
            .sum()
    }
    /// Count one drop and remember what it was about (an SPI and peer, see
    /// [`reject_detail`]); two relaxed stores, only on the drop path.
    #[inline]
    pub fn drop_noted(&self, reason: DropReason, detail: u64) {
        self.drops[reason as usize].inc();
        self.last_detail[reason as usize].set(detail);
    }
}

/// Pack an SPI and an IPv4 peer (0 when IPv6 or unknown) into one word, so a reader never sees
/// an SPI with another packet's peer. A zero word means "nothing noted".
#[inline]
pub const fn reject_detail(spi: u32, peer_v4: u32) -> u64 {
    ((spi as u64) << 32) | peer_v4 as u64
}

/// The (SPI, IPv4 peer) of a [`reject_detail`] word; `None` for "nothing noted".
pub fn split_reject_detail(d: u64) -> Option<(u32, Option<std::net::Ipv4Addr>)> {
    if d == 0 {
        return None;
    }
    let peer = d as u32;
    Some((
        (d >> 32) as u32,
        (peer != 0).then(|| std::net::Ipv4Addr::from(peer)),
    ))
}

/// What a policy did, counted per policy (`show ipsec stats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum PolicyStat {
    /// Outbound packets sent to ESP output, and their bytes before encryption.
    OutProtected,
    OutProtectedBytes,
    /// Decrypted inbound packets admitted by the policy, and their bytes.
    InProtected,
    InProtectedBytes,
    /// Forwarded packets let through in clear (counted once, at the outbound decision).
    Bypassed,
    /// Packets dropped by the policy: discard, cleartext that needed protection, decrypted
    /// traffic from an SA the policy does not admit, protect without an outbound SA.
    Discarded,
}

const POLICY_STATS: usize = 6;

/// One worker's counters of one policy, on a cache line of its own.
#[repr(C, align(64))]
#[derive(Debug, Default)]
struct PolicySlot([Counter; POLICY_STATS]);

/// Counters of one security policy, one cache line per worker (each written only by its
/// worker). The control thread keeps the `Arc` with the policy, so the counts survive every
/// table republish; the tables only hold clones.
#[derive(Debug)]
pub struct PolicyCounters {
    per_worker: Box<[PolicySlot]>,
}

impl PolicyCounters {
    pub fn new(workers: usize) -> Self {
        PolicyCounters {
            per_worker: (0..workers.max(1)).map(|_| PolicySlot::default()).collect(),
        }
    }
    /// Add `n` to `what` for `worker` (only that worker may call this).
    #[inline(always)]
    pub fn add(&self, worker: u32, what: PolicyStat, n: u64) {
        if let Some(s) = self.per_worker.get(worker as usize) {
            s.0[what as usize].add(n);
        }
    }
    /// Total of `what` over workers.
    pub fn get(&self, what: PolicyStat) -> u64 {
        self.per_worker
            .iter()
            .map(|s| s.0[what as usize].get())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_names_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for r in DropReason::ALL {
            assert!(seen.insert(r.name()), "duplicate name {}", r.name());
            assert_eq!(DropReason::from_name(r.name()), Some(*r));
        }
        assert_eq!(DropReason::ALL.len(), DropReason::COUNT);
        assert_eq!(
            DropReason::ALL[DropReason::EspNoSa as usize],
            DropReason::EspNoSa
        );
    }

    #[test]
    fn reject_detail_round_trips_and_policy_counters_sum_workers() {
        let d = reject_detail(0x1234, u32::from(std::net::Ipv4Addr::new(192, 0, 2, 7)));
        assert_eq!(
            split_reject_detail(d),
            Some((0x1234, Some(std::net::Ipv4Addr::new(192, 0, 2, 7))))
        );
        assert_eq!(split_reject_detail(reject_detail(9, 0)), Some((9, None)));
        assert_eq!(split_reject_detail(0), None);
        let c = WorkerCounters::default();
        c.drop_noted(DropReason::EspNoSa, d);
        assert_eq!(c.drops[DropReason::EspNoSa as usize].get(), 1);
        assert_eq!(c.last_detail[DropReason::EspNoSa as usize].get(), d);

        let p = PolicyCounters::new(2);
        p.add(0, PolicyStat::Bypassed, 1);
        p.add(1, PolicyStat::Bypassed, 2);
        p.add(7, PolicyStat::Bypassed, 100); // no such worker: ignored, never a panic
        assert_eq!(p.get(PolicyStat::Bypassed), 3);
        assert_eq!(p.get(PolicyStat::Discarded), 0);
        assert_eq!(std::mem::align_of::<PolicySlot>(), 64);
    }

    #[test]
    fn counters_are_aligned_and_count() {
        let c = WorkerCounters::default();
        assert_eq!(std::mem::align_of::<WorkerCounters>(), 128);
        c.drop(DropReason::TtlExpired);
        c.drop(DropReason::TtlExpired);
        assert_eq!(c.drops[DropReason::TtlExpired as usize].get(), 2);
        assert_eq!(c.total_drops(), 2);
    }
}
