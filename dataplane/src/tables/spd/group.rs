//! One group of the SPD classifier: the rules sharing one (source prefix, destination prefix),
//! told apart by protocol, interface scope and port ranges (or ICMP type/code).
//!
//! A small group is a rank-ordered slice of [`Rule`] records, scanned. A large one is split by
//! (protocol or any, interface or any) — a packet can only meet the 4 parts (its protocol or
//! any) × (its interface or any) — and each part is a [`PortIndex`], because a linear scan of a
//! group is exactly what an adversarial rule set (one subnet pair, thousands of port ranges)
//! would turn into a scan of the whole table.

use super::ports::PortIndex;
use super::Query;

/// One policy as the classifier checks it once the addresses matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Rule {
    pub rank: u32,
    pub proto: Option<u8>,
    pub scope: Option<u16>,
    /// ICMP/ICMPv6 policy: `x`/`y` are type/code ranges checked against [`Query::icmp`];
    /// otherwise they are source/destination port ranges checked against [`Query::ports`].
    pub icmp: bool,
    pub x: (u16, u16),
    pub y: (u16, u16),
}

impl Rule {
    #[inline]
    pub fn matches(&self, q: &Query) -> bool {
        let (x, y) = if self.icmp { q.icmp } else { q.ports };
        self.proto.is_none_or(|p| p == q.proto)
            && self.scope.is_none_or(|s| s == q.ifx)
            && self.x.0 <= x
            && x <= self.x.1
            && self.y.0 <= y
            && y <= self.y.1
    }
}

/// A large group, split by (protocol, scope).
#[derive(Debug)]
pub(super) struct Split {
    /// Sorted by `key`.
    parts: Vec<Part>,
}

#[derive(Debug)]
struct Part {
    key: u64,
    /// ICMP part: look at the (type, code) point instead of the ports.
    icmp: bool,
    index: PortIndex,
}

/// Sort key of a (protocol, scope) part; `None` (any) sorts after every value.
fn part_key(proto: Option<u8>, scope: Option<u16>) -> u64 {
    let p = proto.map_or(256, u64::from);
    let s = scope.map_or(1 << 16, u64::from);
    p << 32 | s
}

impl Split {
    /// `rules` in rank order.
    pub fn build(rules: &[Rule]) -> Split {
        let mut sorted: Vec<(u64, Rule)> = rules
            .iter()
            .map(|r| (part_key(r.proto, r.scope), *r))
            .collect();
        // Stable: each part keeps rank order.
        sorted.sort_by_key(|&(k, _)| k);
        let parts = sorted
            .chunk_by(|a, b| a.0 == b.0)
            .map(|c| {
                let rules: Vec<Rule> = c.iter().map(|&(_, r)| r).collect();
                Part {
                    key: c[0].0,
                    // A part has one protocol, so all its rules are ICMP or none is.
                    icmp: c[0].1.icmp,
                    index: PortIndex::build(&rules),
                }
            })
            .collect();
        Split { parts }
    }

    /// Smallest rank below `best` matching `q`, else `best`.
    #[inline]
    pub fn lookup(&self, q: &Query, mut best: u32) -> u32 {
        let keys = [
            part_key(Some(q.proto), Some(q.ifx)),
            part_key(Some(q.proto), None),
            part_key(None, Some(q.ifx)),
            part_key(None, None),
        ];
        for k in keys {
            let Ok(i) = self.parts.binary_search_by_key(&k, |p| p.key) else {
                continue;
            };
            let Some(p) = self.parts.get(i) else { continue };
            let pt = if p.icmp { q.icmp } else { q.ports };
            best = p.index.lookup(pt, best);
        }
        best
    }

    pub fn memory_bytes(&self) -> usize {
        self.parts.capacity() * std::mem::size_of::<Part>()
            + self
                .parts
                .iter()
                .map(|p| p.index.memory_bytes())
                .sum::<usize>()
    }
}

/// Scan `rules` (rank order) for the first match ranked below `best`.
#[inline]
pub(super) fn scan(rules: &[Rule], q: &Query, best: u32) -> u32 {
    for r in rules {
        if r.rank >= best {
            break;
        }
        if r.matches(q) {
            return r.rank;
        }
    }
    best
}
