//! The address levels of the SPD classifier for one (direction, address-family pair): hash
//! probes on the source prefix, then on the destination prefix under it, each over the
//! distinct prefix lengths present, best rank first, stopping when no remaining length can
//! beat the match found (see the parent module for why and for the bounds).
//!
//! Addresses are left-aligned in a u128 (an IPv4 address in the top 32 bits), so one masking
//! rule serves both families.

use super::group::{scan, Group, Rule, Split};
use super::{Query, SpdStats, NONE};
use hashbrown::HashMap;

/// One rule with its prefixes (address left-aligned, length ≤ the family's width).
#[derive(Clone, Copy, Debug)]
pub(super) struct Entry {
    pub src: (u128, u8),
    pub dst: (u128, u8),
    pub rule: Rule,
}

#[inline]
fn mask(a: u128, len: u8) -> u128 {
    match len {
        0 => 0,
        l => a & (u128::MAX << (128 - l.min(128) as u32)),
    }
}

#[derive(Debug, Default)]
pub(super) struct AddrIndex {
    /// Distinct source lengths with the best rank among their rules, best first.
    src_lens: Vec<(u8, u32)>,
    /// (length, masked source) → source node.
    src: HashMap<(u8, u128), u32>,
    /// Per source node: its slice of `dst_lens` (start, count).
    nodes: Vec<(u32, u32)>,
    /// Per source node, its distinct destination lengths with their best rank, best first.
    dst_lens: Vec<(u8, u32)>,
    /// (source node, length, masked destination) → group.
    dst: HashMap<(u32, u8, u128), Group>,
    /// Records of the scanned groups, back to back.
    rules: Vec<Rule>,
    /// Large groups.
    splits: Vec<Split>,
    /// For [`AddrIndex::add_stats`]: rules, indexed groups' sizes, largest group.
    n_rules: usize,
    largest: usize,
}

impl AddrIndex {
    pub fn build(mut entries: Vec<Entry>, scan_max: usize) -> AddrIndex {
        let mut ix = AddrIndex {
            n_rules: entries.len(),
            ..AddrIndex::default()
        };
        for e in &mut entries {
            e.src.0 = mask(e.src.0, e.src.1);
            e.dst.0 = mask(e.dst.0, e.dst.1);
        }
        // Source prefix, then destination length, then destination, then rank: each source
        // node, each of its lengths and each group become a contiguous run.
        entries.sort_unstable_by_key(|e| (e.src.1, e.src.0, e.dst.1, e.dst.0, e.rule.rank));
        let mut src_best: Vec<(u8, u32)> = Vec::new();
        let mut group: Vec<Rule> = Vec::new();
        for node in entries.chunk_by(|a, b| a.src == b.src) {
            let id = ix.nodes.len() as u32;
            let (slen, saddr) = (node[0].src.1, node[0].src.0);
            ix.src.insert((slen, saddr), id);
            let first = ix.dst_lens.len();
            for lens in node.chunk_by(|a, b| a.dst.1 == b.dst.1) {
                let dlen = lens[0].dst.1;
                let mut best = NONE;
                for g in lens.chunk_by(|a, b| a.dst.0 == b.dst.0) {
                    group.clear();
                    group.extend(g.iter().map(|e| e.rule));
                    best = best.min(group[0].rank);
                    ix.largest = ix.largest.max(group.len());
                    let grp = if group.len() <= scan_max {
                        let start = ix.rules.len() as u32;
                        ix.rules.extend_from_slice(&group);
                        Group::Scan {
                            start,
                            len: group.len() as u32,
                        }
                    } else {
                        ix.splits.push(Split::build(&group));
                        Group::Split(ix.splits.len() as u32 - 1)
                    };
                    ix.dst.insert((id, dlen, g[0].dst.0), grp);
                }
                ix.dst_lens.push((dlen, best));
            }
            ix.dst_lens[first..].sort_by_key(|&(_, r)| r);
            let node_best = ix.dst_lens[first].1;
            ix.nodes
                .push((first as u32, (ix.dst_lens.len() - first) as u32));
            match src_best.last_mut() {
                Some(l) if l.0 == slen => l.1 = l.1.min(node_best),
                _ => src_best.push((slen, node_best)),
            }
        }
        src_best.sort_by_key(|&(_, r)| r);
        ix.src_lens = src_best;
        ix.shrink();
        ix
    }

    fn shrink(&mut self) {
        self.src_lens.shrink_to_fit();
        self.src.shrink_to_fit();
        self.nodes.shrink_to_fit();
        self.dst_lens.shrink_to_fit();
        self.dst.shrink_to_fit();
        self.rules.shrink_to_fit();
        self.splits.shrink_to_fit();
    }

    /// Smallest rank below `best` matching `q`, else `best`.
    #[inline]
    pub fn lookup(&self, q: &Query, mut best: u32) -> u32 {
        for &(slen, smin) in &self.src_lens {
            if smin >= best {
                break; // sorted by best rank: no later length can win
            }
            let Some(&node) = self.src.get(&(slen, mask(q.a, slen))) else {
                continue;
            };
            let Some(&(first, count)) = self.nodes.get(node as usize) else {
                continue;
            };
            let first = first as usize;
            let Some(lens) = self.dst_lens.get(first..first + count as usize) else {
                continue;
            };
            for &(dlen, dmin) in lens {
                if dmin >= best {
                    break;
                }
                if let Some(g) = self.dst.get(&(node, dlen, mask(q.b, dlen))) {
                    best = self.group(*g, q, best);
                }
            }
        }
        best
    }

    #[inline]
    fn group(&self, g: Group, q: &Query, best: u32) -> u32 {
        match g {
            Group::Scan { start, len } => {
                let s = start as usize;
                match self.rules.get(s..s + len as usize) {
                    Some(r) => scan(r, q, best),
                    None => best,
                }
            }
            Group::Split(i) => match self.splits.get(i as usize) {
                Some(s) => s.lookup(q, best),
                None => best,
            },
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.src_lens.capacity() * std::mem::size_of::<(u8, u32)>()
            + self.src.allocation_size()
            + self.nodes.capacity() * std::mem::size_of::<(u32, u32)>()
            + self.dst_lens.capacity() * std::mem::size_of::<(u8, u32)>()
            + self.dst.allocation_size()
            + self.rules.capacity() * std::mem::size_of::<Rule>()
            + self.splits.capacity() * std::mem::size_of::<Split>()
            + self.splits.iter().map(Split::memory_bytes).sum::<usize>()
    }

    pub fn add_stats(&self, s: &mut SpdStats) {
        s.rules += self.n_rules;
        s.src_prefixes += self.nodes.len();
        s.groups += self.dst.len();
        s.indexed_groups += self.splits.len();
        s.largest_group = s.largest_group.max(self.largest);
        // One probe per source length, plus the destination lengths of every source prefix
        // that can contain one address: at most one node per source length, so the worst case
        // takes the node with the most destination lengths at each length.
        let mut worst_per_len: HashMap<u8, usize> = HashMap::new();
        for (&(slen, _), &node) in &self.src {
            let d = self.nodes.get(node as usize).map_or(0, |n| n.1 as usize);
            let w = worst_per_len.entry(slen).or_default();
            *w = (*w).max(d);
        }
        let probes = self.src_lens.len() + worst_per_len.values().sum::<usize>();
        s.max_probes = s.max_probes.max(probes);
    }
}
