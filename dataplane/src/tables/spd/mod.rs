//! The SPD classifier: which security policy, first in (priority, id) order, matches a packet.
//! Built once per table version by the control thread, read per packet by the workers with no
//! allocation, lock, log or panic. [`super::ipsec::IpsecTables::classify`] is its only caller;
//! its result is exactly that of the linear scan `Policy::matches` over the sorted policies
//! (kept as `IpsecTables::classify_scan`, the test oracle and the benchmark baseline).
//!
//! # Algorithm: two-level tuple-space search on the prefixes, then a port index per group
//!
//! Every policy gets a *rank* (its position in (priority, id) order); a lookup is "smallest
//! rank that matches". The policies are split by direction (a `both` policy is in both
//! indexes; the inbound key is mirrored before the lookup, as `Policy::matches` does) and by
//! the (source, destination) address families, IPv4 addresses kept as `u32`.
//!
//! 1. **Source prefix** (`addr.rs`): one hash probe per distinct source prefix length in the set
//!    (the address masked to that length). Lengths are tried best rank first and the loop stops
//!    as soon as no rule of a remaining length can beat the match already found.
//! 2. **Destination prefix**: every source prefix that exists has its own short list of
//!    destination lengths; one hash probe each, same pruning. A hit is a *group*: the rules
//!    with exactly that (source prefix, destination prefix), in rank order.
//! 3. **The rest** (`group.rs`): a group of up to [`SCAN_MAX`] rules is scanned (compact
//!    20-byte records, stopping at the first match or at the rank already beaten). A larger
//!    group — many rules on one subnet pair that differ only in protocol, interface or ports,
//!    the adversarial case for plain tuple-space search — is split by (protocol or any,
//!    interface or any), so a lookup visits at most 4 parts, and each part is a `ports.rs`
//!    index: one port dimension cut into aligned power-of-two blocks, the blocks containing a
//!    port forming a chain of ≤ 17, each block holding the precomputed best rank per
//!    elementary interval of the other port (binary searches, no rule list).
//!
//! The hash tables (`hash.rs`) are static: built once at 50 % load with linear probing and a
//! seeded hash, their longest probe distance measured and kept ≤ `hash::MAX_DIST` (24) by
//! reseeding or growing, so one probe reads at most that many + 1 slots whatever the address.
//! An index (direction × family pair) whose probe bound times [`PROBE_COST`] is not below its
//! rule count — a handful of rules, or prefixes nested at every length — is kept as a compact
//! rank-ordered scan instead, which is then the cheaper of the two.
//!
//! Why this and not a decision tree (HiCuts/HyperCuts) or RFC: SPDs are dominated by distinct
//! subnet pairs, which tuple space search turns into a few hash probes whatever the number of
//! rules, and it builds in O(n log n) with memory linear in n — decision trees and RFC tables
//! replicate rules (memory can grow quadratically for overlapping wildcards) and their build
//! time is hard to bound, which matters because the control thread rebuilds the whole table on
//! every change. Splitting the source and destination probes (instead of one probe per
//! (source length, destination length) tuple) makes a miss cost one probe per source length,
//! not one per tuple. The weakness of tuple space search, many rules in one tuple that only
//! the ports tell apart, is what the per-group port index removes.
//!
//! # Cost of one lookup, and the worst case
//!
//! With S distinct source lengths in an index, and D_i destination lengths under the source
//! prefix of the i-th length that contains the packet's source (at most one per length):
//!
//! * hash probes ≤ S + Σ D_i ≤ 33 + 33 × 33 = 1 122 (IPv4) and 129 + 129 × 129 = 16 770
//!   (IPv6), each ≤ `hash::MAX_DIST` (24) + 1 slot reads; [`SpdStats::max_probes`] gives the
//!   bound of a built set. Realistic sets have a handful of lengths and one or two prefixes
//!   containing a packet, so 2–8 probes at any size (`ferrobench spd`: ≤ 18 at 100 000
//!   rules);
//! * per group hit: ≤ [`SCAN_MAX`] record checks, or for a split group ≤ 4 parts × (one
//!   binary search over ≤ 65 536 port intervals + ≤ 17 over ≤ 2g + 1 intervals): about
//!   4 × 18 × 17 comparisons at g = 100 000 rules in one group, against 100 000 for a scan.
//!
//! So the work of a lookup is bounded by the probe bound of its set — at most that many
//! probes, each followed by ≤ [`SCAN_MAX`] record checks or the searches of one split group —
//! and, for a scanned index, by `PROBE_COST` × that bound; it does not grow with the number of
//! rules beyond the logarithms above. The bound is only approached by rules whose prefixes are
//! nested at every length in both dimensions and all contain the packet, so that every group
//! is a candidate and only the ports tell the rules apart (the `nested` set of `ferrobench
//! spd`: 16 641 groups at 100 000 rules, where a lookup takes about half the scan's time; up
//! to 4 × 16 770 such rules the index is a compact scan). That is a set built to defeat any
//! prefix-first decomposition, not one an operator writes. Many rules on one subnet pair (the
//! `ports` set) cost a few probes and one split group.
//!
//! # Build cost and memory
//!
//! O(n log n) sorting plus, per split group, O(b log b) for its b port blocks, and a few
//! rebuilds of a hash table in the unlikely case that its probe distance exceeds the bound.
//! Memory is linear: per rule and direction a 20-byte record and a share of two hash tables
//! at 50 % load (8–48 bytes per slot); a rule in a split group is cut into ≤ 30 port blocks
//! (the index cuts the port dimension that gives fewer), each a few intervals of 6 bytes.
//! [`Spd::memory_bytes`] reports it (`ferrobench spd`: ≈ 18 MB for 100 000 realistic rules,
//! both directions, against ≈ 10 MB for the policy vector itself).

mod addr;
mod group;
mod hash;
mod ports;
#[cfg(test)]
mod tests;

use super::ipsec::{Dir, FlowKey, Policy};
use crate::wire::ipproto;
use addr::{AddrIndex, Entry};
use group::Rule;
use std::net::IpAddr;

/// Groups with at most this many rules are scanned; larger ones get a port index.
pub const SCAN_MAX: usize = 8;

/// One hash probe costs about this many compact rule checks (measured with `ferrobench spd`:
/// a probe is a hash and one or two cache lines, a rule check a few compares in a
/// sequentially read array). An index whose probe bound times this is not below its rule
/// count is scanned instead.
pub const PROBE_COST: usize = 4;

/// Build parameters (the defaults are what the dataplane uses; tests vary them to reach
/// every structure with small rule sets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// Largest group that is scanned rather than given a port index.
    pub scan_max: usize,
    /// See [`PROBE_COST`]; 0 never replaces the probes with a scan.
    pub probe_cost: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            scan_max: SCAN_MAX,
            probe_cost: PROBE_COST,
        }
    }
}

/// Rank of "no match": worse than every real rank.
const NONE: u32 = u32::MAX;

/// The packet's selector fields, seen in the policy's orientation.
#[derive(Clone, Copy, Debug)]
struct Query {
    /// Source (policy side) address, left-aligned in 128 bits.
    a: u128,
    /// Destination (policy side) address, left-aligned in 128 bits.
    b: u128,
    proto: u8,
    ifx: u16,
    /// (source, destination) ports in the policy's orientation.
    ports: (u16, u16),
    /// ICMP (type, code) as the sender wrote them: never mirrored, only the low byte counts
    /// (`Policy::matches` compares `sport as u8` / `dport as u8` whatever the direction).
    icmp: (u16, u16),
}

/// Indexes by (source family, destination family). Mixed pairs are empty in practice, but a
/// policy with mixed families does match a key with the same mix.
#[derive(Debug, Default)]
struct ByFamily {
    v44: AddrIndex<u32, u32>,
    v46: AddrIndex<u32, u128>,
    v64: AddrIndex<u128, u32>,
    v66: AddrIndex<u128, u128>,
}

impl ByFamily {
    fn build(mut e: [Vec<Entry>; 4], t: Tuning) -> ByFamily {
        ByFamily {
            v44: AddrIndex::build(std::mem::take(&mut e[0]), t),
            v46: AddrIndex::build(std::mem::take(&mut e[1]), t),
            v64: AddrIndex::build(std::mem::take(&mut e[2]), t),
            v66: AddrIndex::build(std::mem::take(&mut e[3]), t),
        }
    }

    #[inline]
    fn lookup(&self, q: &Query, a6: bool, b6: bool) -> u32 {
        match (a6, b6) {
            (false, false) => self.v44.lookup(q, NONE),
            (false, true) => self.v46.lookup(q, NONE),
            (true, false) => self.v64.lookup(q, NONE),
            (true, true) => self.v66.lookup(q, NONE),
        }
    }

    fn memory_bytes(&self) -> usize {
        self.v44.memory_bytes()
            + self.v46.memory_bytes()
            + self.v64.memory_bytes()
            + self.v66.memory_bytes()
    }

    fn add_stats(&self, s: &mut SpdStats) {
        self.v44.add_stats(s);
        self.v46.add_stats(s);
        self.v64.add_stats(s);
        self.v66.add_stats(s);
    }
}

/// The classifier for one table version.
#[derive(Debug, Default)]
pub struct Spd {
    out: ByFamily,
    inb: ByFamily,
}

/// An address left-aligned in 128 bits, and whether it is IPv6.
fn align(a: IpAddr) -> (u128, bool) {
    match a {
        IpAddr::V4(a) => ((u32::from(a) as u128) << 96, false),
        IpAddr::V6(a) => (u128::from(a), true),
    }
}

fn family(a_v6: bool, b_v6: bool) -> usize {
    (a_v6 as usize) << 1 | b_v6 as usize
}

/// Summary of a built classifier, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpdStats {
    /// Rules indexed (a `both` policy counts twice, a never-matching one not at all).
    pub rules: usize,
    /// Distinct source prefixes over all indexes.
    pub src_prefixes: usize,
    /// Groups (distinct (source prefix, destination prefix) pairs).
    pub groups: usize,
    /// Groups too large to scan, with a port index.
    pub indexed_groups: usize,
    /// Most rules in one group.
    pub largest_group: usize,
    /// Upper bound of hash probes for one lookup in this set (see the module doc).
    pub max_probes: usize,
    /// Most slots one probe reads (the hash tables' longest probe distance + 1).
    pub max_slot_reads: usize,
    /// Indexes (per direction and family pair) kept as a compact scan.
    pub scanned_indexes: usize,
}

impl Spd {
    /// Build from policies already sorted by (priority, id): a policy's rank is its index.
    pub fn build(policies: &[Policy]) -> Spd {
        Self::build_with(policies, Tuning::default())
    }

    /// [`Spd::build`] with other parameters.
    pub fn build_with(policies: &[Policy], tuning: Tuning) -> Spd {
        // Group lengths are stored in 32 bits.
        let tuning = Tuning {
            scan_max: tuning.scan_max.min(1 << 20),
            ..tuning
        };
        let mut out: [Vec<Entry>; 4] = Default::default();
        let mut inb: [Vec<Entry>; 4] = Default::default();
        for (i, p) in policies.iter().enumerate() {
            // Ranks must stay below NONE; 4 billion policies do not fit in memory anyway.
            let Ok(rank) = u32::try_from(i) else { break };
            if rank == NONE {
                break;
            }
            let Some((e, fam)) = entry(rank, p) else {
                continue;
            };
            if p.out {
                out[fam].push(e);
            }
            if p.inb {
                inb[fam].push(e);
            }
        }
        Spd {
            out: ByFamily::build(out, tuning),
            inb: ByFamily::build(inb, tuning),
        }
    }

    /// Rank (index in the sorted policies) of the first policy matching `k` travelling in
    /// `dir` on interface `ifx`.
    #[inline]
    pub fn lookup(&self, dir: Dir, ifx: u16, k: &FlowKey) -> Option<usize> {
        let (src, dst, ports, idx) = match dir {
            Dir::Out => (k.src, k.dst, (k.sport, k.dport), &self.out),
            Dir::In => (k.dst, k.src, (k.dport, k.sport), &self.inb),
        };
        let (a, a6) = align(src);
        let (b, b6) = align(dst);
        let q = Query {
            a,
            b,
            proto: k.proto,
            ifx,
            ports,
            icmp: (k.sport & 0xff, k.dport & 0xff),
        };
        let r = idx.lookup(&q, a6, b6);
        (r != NONE).then_some(r as usize)
    }

    /// Heap bytes held by the classifier (hash tables, records, port indexes).
    pub fn memory_bytes(&self) -> usize {
        self.out.memory_bytes() + self.inb.memory_bytes()
    }

    pub fn stats(&self) -> SpdStats {
        let mut s = SpdStats::default();
        self.out.add_stats(&mut s);
        self.inb.add_stats(&mut s);
        s
    }
}

/// A policy as an index entry, with its family pair; None if it can never match.
fn entry(rank: u32, p: &Policy) -> Option<(Entry, usize)> {
    let (sa, s6) = align(p.src.0);
    let (da, d6) = align(p.dst.0);
    let max = |v6: bool| if v6 { 128 } else { 32 };
    let icmp = matches!(p.proto, Some(ipproto::ICMP) | Some(ipproto::ICMPV6));
    let rule = if icmp {
        // Ports are not looked at; type and code are exact or any.
        let one = |v: Option<u8>| v.map_or((0, u16::MAX), |t| (t as u16, t as u16));
        Rule {
            rank,
            proto: p.proto,
            scope: p.scope,
            icmp: true,
            x: one(p.icmp_type),
            y: one(p.icmp_code),
        }
    } else {
        if p.sport.0 > p.sport.1 || p.dport.0 > p.dport.1 {
            return None; // an empty port range matches nothing
        }
        Rule {
            rank,
            proto: p.proto,
            scope: p.scope,
            icmp: false,
            x: p.sport,
            y: p.dport,
        }
    };
    let e = Entry {
        src: (sa, p.src.1.min(max(s6))),
        dst: (da, p.dst.1.min(max(d6))),
        rule,
    };
    Some((e, family(s6, d6)))
}
