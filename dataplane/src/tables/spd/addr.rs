//! The address levels of the SPD classifier for one direction and one (source family,
//! destination family): a hash probe per distinct source prefix length, then, under each
//! source prefix that contains the packet's source, a probe per destination length present
//! under it; each list best rank first, stopping when nothing left can beat the match found
//! (see the parent module for why and for the bounds).
//!
//! An index whose probes could cost more than scanning its rules — a handful of rules, or
//! prefixes nested so deep that the probe bound approaches the rule count — is a compact
//! rank-ordered scan instead, so no index is ever slower than a scan of its own rules by
//! more than the constant [`Tuning::probe_cost`] estimates.
//!
//! Addresses are `u32` for IPv4 and `u128` for IPv6, so IPv4 tables are small.

use super::group::{scan, Rule, Split};
use super::hash::{Key, StaticMap};
use super::{Query, SpdStats, Tuning, NONE};

/// An IPv4 (`u32`) or IPv6 (`u128`) address.
pub(super) trait Addr: Key + Ord {
    const BITS: u8;
    /// From an address left-aligned in 128 bits.
    fn from_aligned(a: u128) -> Self;
    /// The first `len` bits (`len` ≤ `BITS`), the rest cleared.
    fn mask(self, len: u8) -> Self;
}

impl Addr for u32 {
    const BITS: u8 = 32;
    #[inline(always)]
    fn from_aligned(a: u128) -> u32 {
        (a >> 96) as u32
    }
    #[inline(always)]
    fn mask(self, len: u8) -> u32 {
        match len {
            0 => 0,
            l => self & (u32::MAX << (32 - l.min(32) as u32)),
        }
    }
}

impl Addr for u128 {
    const BITS: u8 = 128;
    #[inline(always)]
    fn from_aligned(a: u128) -> u128 {
        a
    }
    #[inline(always)]
    fn mask(self, len: u8) -> u128 {
        match len {
            0 => 0,
            l => self & (u128::MAX << (128 - l.min(128) as u32)),
        }
    }
}

/// One rule with its prefixes (address left-aligned in 128 bits, length ≤ the family width).
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub src: (u128, u8),
    pub dst: (u128, u8),
    pub rule: Rule,
}

/// A rule of a scanned index: prefixes already masked.
#[derive(Clone, Copy, Debug)]
struct Flat<A, B> {
    src: A,
    dst: B,
    src_len: u8,
    dst_len: u8,
    rule: Rule,
}

/// The probe table of one source length.
#[derive(Debug)]
struct SrcLen<A> {
    len: u8,
    /// Best rank of the rules with a source prefix of this length.
    min: u32,
    /// Masked source → node: the index of the node's header in `dst_lens`.
    map: StaticMap<A, u32>,
}

/// The source prefixes of one length while building.
struct SrcBuild<A> {
    len: u8,
    min: u32,
    /// (masked source, node)
    nodes: Vec<(A, u32)>,
}

/// A group as a hash value: `start | len << 32` of a scanned slice of `rules`, or
/// `i | SPLIT` for `splits[i]`.
const SPLIT: u64 = 1 << 63;

#[derive(Debug)]
pub(super) struct AddrIndex<A, B> {
    /// Non-empty: this index is a scan of these rules (rank order) and the rest is empty.
    flat: Vec<Flat<A, B>>,
    /// Source lengths, best rank first.
    src: Vec<SrcLen<A>>,
    /// Per node: a header `(number of destination lengths, best rank)`, then its destination
    /// lengths `(length, best rank)`, best first.
    dst_lens: Vec<(u8, u32)>,
    /// By destination length: (node, masked destination) → group.
    dst: Vec<StaticMap<(u32, B), u64>>,
    /// Records of the scanned groups, back to back.
    rules: Vec<Rule>,
    /// Large groups.
    splits: Vec<Split>,
    /// Statistics: rules, source prefixes, groups, largest group, probe bound.
    stats: SpdStats,
}

impl<A, B> Default for AddrIndex<A, B> {
    fn default() -> Self {
        AddrIndex {
            flat: Vec::new(),
            src: Vec::new(),
            dst_lens: Vec::new(),
            dst: Vec::new(),
            rules: Vec::new(),
            splits: Vec::new(),
            stats: SpdStats::default(),
        }
    }
}

impl<A: Addr, B: Addr> AddrIndex<A, B>
where
    (u32, B): Key,
{
    pub fn build(entries: Vec<Entry>, tuning: Tuning) -> AddrIndex<A, B> {
        let mut ix = AddrIndex::default();
        let mut flat: Vec<Flat<A, B>> = entries
            .iter()
            .map(|e| Flat {
                src: A::from_aligned(e.src.0).mask(e.src.1),
                dst: B::from_aligned(e.dst.0).mask(e.dst.1),
                src_len: e.src.1.min(A::BITS),
                dst_len: e.dst.1.min(B::BITS),
                rule: e.rule,
            })
            .collect();
        ix.stats.rules = flat.len();
        if flat.is_empty() {
            return ix;
        }
        // Source prefix, then destination length, then destination, then rank: each source
        // node, each of its destination lengths and each group become a contiguous run.
        flat.sort_unstable_by_key(|f| (f.src_len, f.src, f.dst_len, f.dst, f.rule.rank));
        let mut src: Vec<SrcBuild<A>> = Vec::new();
        let mut dst: Vec<Vec<((u32, B), u64)>> = vec![Vec::new(); B::BITS as usize + 1];
        let mut group: Vec<Rule> = Vec::new();
        for node in flat.chunk_by(|a, b| (a.src_len, a.src) == (b.src_len, b.src)) {
            let id = ix.dst_lens.len() as u32;
            ix.dst_lens.push((0, NONE)); // header, filled below
            for lens in node.chunk_by(|a, b| a.dst_len == b.dst_len) {
                let dlen = lens[0].dst_len;
                let mut best = NONE;
                for g in lens.chunk_by(|a, b| a.dst == b.dst) {
                    group.clear();
                    group.extend(g.iter().map(|f| f.rule));
                    best = best.min(group[0].rank);
                    ix.stats.groups += 1;
                    ix.stats.largest_group = ix.stats.largest_group.max(group.len());
                    let v = if group.len() <= tuning.scan_max {
                        let start = ix.rules.len() as u64;
                        ix.rules.extend_from_slice(&group);
                        start | (group.len() as u64) << 32
                    } else {
                        ix.splits.push(Split::build(&group));
                        (ix.splits.len() as u64 - 1) | SPLIT
                    };
                    dst[dlen as usize].push(((id, g[0].dst), v));
                }
                ix.dst_lens.push((dlen, best));
            }
            let first = id as usize + 1;
            ix.dst_lens[first..].sort_by_key(|&(_, r)| r);
            let node_best = ix.dst_lens[first].1;
            ix.dst_lens[id as usize] = ((ix.dst_lens.len() - first) as u8, node_best);
            let (slen, saddr) = (node[0].src_len, node[0].src);
            match src.last_mut() {
                Some(l) if l.len == slen => {
                    l.min = l.min.min(node_best);
                    l.nodes.push((saddr, id));
                }
                _ => src.push(SrcBuild {
                    len: slen,
                    min: node_best,
                    nodes: vec![(saddr, id)],
                }),
            }
        }
        ix.stats.src_prefixes = src.iter().map(|s| s.nodes.len()).sum();
        ix.stats.indexed_groups = ix.splits.len();
        ix.stats.max_probes = probe_bound(&src, &ix.dst_lens);
        if flat.len() <= tuning.probe_cost.saturating_mul(ix.stats.max_probes) {
            // Scanning these rules is cheaper than probing for them.
            flat.sort_unstable_by_key(|f| f.rule.rank);
            let stats = ix.stats;
            return AddrIndex {
                flat,
                stats,
                ..AddrIndex::default()
            };
        }
        src.sort_by_key(|s| s.min);
        ix.src = src
            .into_iter()
            .map(|s| SrcLen {
                len: s.len,
                min: s.min,
                map: StaticMap::build(&s.nodes),
            })
            .collect();
        ix.dst = dst.iter().map(|v| StaticMap::build(v)).collect();
        ix.dst_lens.shrink_to_fit();
        ix.rules.shrink_to_fit();
        ix.splits.shrink_to_fit();
        ix
    }

    /// Smallest rank below `best` matching `q`, else `best`.
    #[inline]
    pub fn lookup(&self, q: &Query, mut best: u32) -> u32 {
        let a = A::from_aligned(q.a);
        let b = B::from_aligned(q.b);
        if !self.flat.is_empty() {
            return self.scan_flat(a, b, q, best);
        }
        for s in &self.src {
            if s.min >= best {
                break; // sorted by best rank: no later length can win
            }
            let Some(node) = s.map.get(a.mask(s.len)) else {
                continue;
            };
            let first = node as usize + 1;
            let Some(&(count, _)) = self.dst_lens.get(node as usize) else {
                continue;
            };
            let Some(lens) = self.dst_lens.get(first..first + count as usize) else {
                continue;
            };
            for &(dlen, dmin) in lens {
                if dmin >= best {
                    break;
                }
                let g = self
                    .dst
                    .get(dlen as usize)
                    .and_then(|m| m.get((node, b.mask(dlen))));
                if let Some(g) = g {
                    best = self.group(g, q, best);
                }
            }
        }
        best
    }

    #[inline]
    fn scan_flat(&self, a: A, b: B, q: &Query, best: u32) -> u32 {
        for f in &self.flat {
            if f.rule.rank >= best {
                break;
            }
            if a.mask(f.src_len) == f.src && b.mask(f.dst_len) == f.dst && f.rule.matches(q) {
                return f.rule.rank;
            }
        }
        best
    }

    #[inline]
    fn group(&self, g: u64, q: &Query, best: u32) -> u32 {
        if g & SPLIT != 0 {
            return match self.splits.get((g & !SPLIT) as usize) {
                Some(s) => s.lookup(q, best),
                None => best,
            };
        }
        let start = g as u32 as usize;
        match self.rules.get(start..start + (g >> 32) as usize) {
            Some(r) => scan(r, q, best),
            None => best,
        }
    }

    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        self.flat.capacity() * size_of::<Flat<A, B>>()
            + self.src.capacity() * size_of::<SrcLen<A>>()
            + self.src.iter().map(|s| s.map.memory_bytes()).sum::<usize>()
            + self.dst_lens.capacity() * size_of::<(u8, u32)>()
            + self.dst.capacity() * size_of::<StaticMap<(u32, B), u64>>()
            + self.dst.iter().map(|m| m.memory_bytes()).sum::<usize>()
            + self.rules.capacity() * size_of::<Rule>()
            + self.splits.capacity() * size_of::<Split>()
            + self.splits.iter().map(Split::memory_bytes).sum::<usize>()
    }

    pub fn add_stats(&self, s: &mut SpdStats) {
        let m = &self.stats;
        s.rules += m.rules;
        s.src_prefixes += m.src_prefixes;
        s.groups += m.groups;
        s.indexed_groups += m.indexed_groups;
        s.largest_group = s.largest_group.max(m.largest_group);
        s.max_probes = s.max_probes.max(m.max_probes);
        s.scanned_indexes += !self.flat.is_empty() as usize;
        s.max_slot_reads = s
            .max_slot_reads
            .max(
                self.src
                    .iter()
                    .map(|x| x.map.max_dist() + 1)
                    .max()
                    .unwrap_or(0),
            )
            .max(self.dst.iter().map(|x| x.max_dist() + 1).max().unwrap_or(0));
    }
}

/// Upper bound of hash probes of one lookup: one per source length, plus the destination
/// lengths of every source prefix that can contain one address — at most one per source
/// length, so the node with the most destination lengths at each length.
fn probe_bound<A>(src: &[SrcBuild<A>], dst_lens: &[(u8, u32)]) -> usize {
    let worst = |s: &SrcBuild<A>| {
        s.nodes
            .iter()
            .map(|&(_, node)| dst_lens.get(node as usize).map_or(0, |h| h.0 as usize))
            .max()
            .unwrap_or(0)
    };
    src.len() + src.iter().map(worst).sum::<usize>()
}
