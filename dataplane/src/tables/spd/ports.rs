//! Port index of a large SPD group: the best-ranked rule whose two 16-bit ranges (source and
//! destination port, or ICMP type and code) both contain a point.
//!
//! One dimension ("x") is cut into aligned power-of-two blocks — the prefixes of the 16-bit
//! space, so a range is ≤ 30 blocks, and the blocks containing a point form a chain of at
//! most 17 (one per length), each inside the next shorter one. Each block keeps, for the rules
//! cut into it, the other dimension ("y") as elementary intervals with the best rank covering
//! each one, precomputed. A lookup is one binary search for the innermost block containing x,
//! then, up the chain, one binary search per block for y: O(log n + 17 × log n) whatever the
//! overlap of the ranges, with no rule list scanned. Of the two dimensions the one that cuts
//! into fewer blocks is x (typically the source port, usually "any", or a single destination
//! port).

use super::group::Rule;
use super::NONE;

/// Blocks containing one point: one per length 0..=16.
const CHAIN: usize = 17;

/// A 2-D stabbing index over the rules' `(rank, x range, y range)`.
#[derive(Debug)]
pub(super) struct PortIndex {
    /// x is the second coordinate of the point (the destination port) instead of the first.
    swap: bool,
    min_rank: u32,
    /// Elementary x intervals: first value of each...
    xs: Vec<u16>,
    /// ...and the innermost block containing it (NONE: none).
    inner: Vec<u32>,
    nodes: Vec<Node>,
    /// Elementary y intervals of every block, back to back: first value of each interval...
    starts: Vec<u16>,
    /// ...and the best rank covering it (NONE: none).
    best: Vec<u32>,
}

/// A block of x.
#[derive(Clone, Copy, Debug)]
struct Node {
    /// Its y intervals: `starts[start..start + count]`.
    start: u32,
    count: u32,
    /// Best rank of its rules.
    min: u32,
    /// The innermost block strictly containing it (NONE: none).
    parent: u32,
}

/// The aligned blocks `(length, block number)` exactly covering `lo..=hi` (lo ≤ hi), largest
/// first where alignment allows: at most 30.
pub(super) fn blocks(lo: u16, hi: u16) -> impl Iterator<Item = (u8, u16)> {
    let hi = hi as u32;
    let mut cur = lo as u32;
    std::iter::from_fn(move || {
        if cur > hi {
            return None;
        }
        // Largest block aligned at `cur` that stays within `hi`.
        let mut k = cur.trailing_zeros().min(16);
        while cur + (1 << k) - 1 > hi {
            k -= 1;
        }
        let b = (16 - k as u8, (cur >> k) as u16);
        cur += 1 << k;
        Some(b)
    })
}

/// Next unpainted interval at or after `i` (union-find with path halving).
fn next_free(next: &mut [u32], mut i: usize) -> usize {
    while let Some(&p) = next.get(i) {
        let p = p as usize;
        if p == i {
            break;
        }
        let pp = next.get(p).copied().unwrap_or(p as u32);
        next[i] = pp;
        i = p;
    }
    i
}

/// Append the elementary intervals of `items` (rank order, lo ≤ hi) with the best rank of each,
/// merging neighbours with the same rank. Returns (start, count) in `starts`/`best`.
fn stab(items: &[(u32, u16, u16)], starts: &mut Vec<u16>, best: &mut Vec<u32>) -> (u32, u32) {
    let mut b: Vec<u32> = Vec::with_capacity(items.len() * 2 + 1);
    b.push(0);
    for &(_, lo, hi) in items {
        b.push(lo as u32);
        if hi < u16::MAX {
            b.push(hi as u32 + 1);
        }
    }
    b.sort_unstable();
    b.dedup();
    let n = b.len();
    let mut val = vec![NONE; n];
    let mut next: Vec<u32> = (0..=n as u32).collect();
    // Paint in rank order, each interval once: the first paint is the best rank.
    for &(rank, lo, hi) in items {
        let i0 = b.partition_point(|&s| s < lo as u32);
        let i1 = b.partition_point(|&s| s <= hi as u32);
        let mut i = next_free(&mut next, i0);
        while i < i1 {
            val[i] = rank;
            next[i] = i as u32 + 1;
            i = next_free(&mut next, i + 1);
        }
    }
    let start = starts.len();
    for (i, (&s, &v)) in b.iter().zip(&val).enumerate() {
        if i > 0 && best.last() == Some(&v) {
            continue;
        }
        starts.push(s as u16);
        best.push(v);
    }
    (start as u32, (starts.len() - start) as u32)
}

impl PortIndex {
    /// `rules` in rank order, every range non-empty (only rank, x and y are used).
    pub fn build(rules: &[Rule]) -> PortIndex {
        let cost = |f: fn(&Rule) -> (u16, u16)| -> usize {
            rules
                .iter()
                .map(|r| {
                    let (lo, hi) = f(r);
                    blocks(lo, hi).count()
                })
                .sum()
        };
        let swap = cost(|r| r.y) < cost(|r| r.x);
        // (block length, block, rank, y lo, y hi)
        let mut cut: Vec<(u8, u16, u32, u16, u16)> = Vec::new();
        for r in rules {
            let (x, y) = if swap { (r.y, r.x) } else { (r.x, r.y) };
            for (len, blk) in blocks(x.0, x.1) {
                cut.push((len, blk, r.rank, y.0, y.1));
            }
        }
        // A rule's blocks are disjoint, so (length, block, rank) is unique. Shortest first:
        // a block's parent comes before it.
        cut.sort_unstable_by_key(|c| (c.0, c.1, c.2));
        let (mut starts, mut best, mut nodes) = (Vec::new(), Vec::new(), Vec::new());
        // (first x, last x) of every node.
        let mut span: Vec<(u32, u32)> = Vec::new();
        let mut ys: Vec<(u32, u16, u16)> = Vec::new();
        for blk in cut.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            ys.clear();
            ys.extend(blk.iter().map(|c| (c.2, c.3, c.4)));
            let (start, count) = stab(&ys, &mut starts, &mut best);
            nodes.push(Node {
                start,
                count,
                min: blk[0].2,
                parent: NONE,
            });
            let k = 16 - blk[0].0 as u32;
            let lo = (blk[0].1 as u32) << k;
            span.push((lo, lo + (1 << k) - 1));
        }
        // Elementary x intervals; paint each node over its intervals, shortest first, so the
        // innermost block wins and what it paints over is its parent.
        let mut xs: Vec<u32> = vec![0];
        for &(lo, hi) in &span {
            xs.push(lo);
            xs.push(hi + 1);
        }
        xs.sort_unstable();
        xs.dedup();
        xs.retain(|&x| x <= u16::MAX as u32);
        let mut inner = vec![NONE; xs.len()];
        for (id, &(lo, hi)) in span.iter().enumerate() {
            let i0 = xs.partition_point(|&s| s < lo);
            let i1 = xs.partition_point(|&s| s <= hi);
            nodes[id].parent = inner[i0];
            inner[i0..i1].fill(id as u32);
        }
        // Merge neighbours with the same innermost block.
        let (mut mx, mut mi) = (Vec::new(), Vec::new());
        for (&x, &n) in xs.iter().zip(&inner) {
            if mi.last() != Some(&n) || mx.is_empty() {
                mx.push(x as u16);
                mi.push(n);
            }
        }
        PortIndex {
            swap,
            min_rank: nodes.iter().map(|n| n.min).min().unwrap_or(NONE),
            xs: mx,
            inner: mi,
            nodes,
            starts,
            best,
        }
    }

    /// Smallest rank below `best` whose ranges contain `pt`, else `best`.
    #[inline]
    pub fn lookup(&self, pt: (u16, u16), mut best: u32) -> u32 {
        if self.min_rank >= best {
            return best;
        }
        let (x, y) = if self.swap { (pt.1, pt.0) } else { pt };
        // xs[0] is 0, so the point's interval always exists.
        let j = self.xs.partition_point(|&v| v <= x);
        let mut n = j
            .checked_sub(1)
            .and_then(|j| self.inner.get(j))
            .copied()
            .unwrap_or(NONE);
        for _ in 0..CHAIN {
            let Some(node) = self.nodes.get(n as usize) else {
                break; // NONE: the outermost block is done
            };
            n = node.parent;
            if node.min >= best {
                continue;
            }
            let r = node.start as usize..node.start as usize + node.count as usize;
            let (Some(s), Some(b)) = (self.starts.get(r.clone()), self.best.get(r)) else {
                continue;
            };
            // starts[0] is 0, so the point's interval always exists.
            let i = s.partition_point(|&v| v <= y);
            if let Some(&rank) = i.checked_sub(1).and_then(|i| b.get(i)) {
                best = best.min(rank);
            }
        }
        best
    }

    pub fn memory_bytes(&self) -> usize {
        self.xs.capacity() * 2
            + self.inner.capacity() * 4
            + self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.starts.capacity() * 2
            + self.best.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Ranges = (u16, u16);

    fn rules(r: &[(u32, Ranges, Ranges)]) -> Vec<Rule> {
        r.iter()
            .map(|&(rank, x, y)| Rule {
                rank,
                proto: None,
                scope: None,
                icmp: false,
                x,
                y,
            })
            .collect()
    }

    #[test]
    fn blocks_cover_exactly() {
        assert_eq!(blocks(0, u16::MAX).collect::<Vec<_>>(), [(0, 0)]);
        assert_eq!(blocks(80, 80).collect::<Vec<_>>(), [(16, 80)]);
        assert_eq!(
            blocks(u16::MAX, u16::MAX).collect::<Vec<_>>(),
            [(16, u16::MAX)]
        );
        // 1024-65535: 1024-2047, 2048-4095, ..., 32768-65535.
        assert_eq!(
            blocks(1024, u16::MAX).collect::<Vec<_>>(),
            [(6, 1), (5, 1), (4, 1), (3, 1), (2, 1), (1, 1)]
        );
        assert_eq!(blocks(1, u16::MAX - 1).count(), 30);
        for (lo, hi) in [
            (0u16, 0u16),
            (3, 17),
            (1, 65534),
            (100, 40000),
            (65000, 65535),
        ] {
            let mut covered = 0u32;
            let mut next = lo as u32;
            for (len, b) in blocks(lo, hi) {
                let k = 16 - len as u32;
                let first = (b as u32) << k;
                assert_eq!(first, next, "contiguous");
                next = first + (1 << k);
                covered += 1 << k;
            }
            assert_eq!(covered, hi as u32 - lo as u32 + 1);
        }
    }

    fn range() -> impl Strategy<Value = (u16, u16)> {
        let v = prop_oneof![Just(0u16), Just(u16::MAX), 0u16..64, any::<u16>(),];
        (v.clone(), v).prop_map(|(a, b)| (a.min(b), a.max(b)))
    }

    proptest! {
        /// Against brute force: the best rank whose two ranges contain the point.
        #[test]
        fn equals_brute_force(
            rs in prop::collection::vec((range(), range()), 0..60),
            pts in prop::collection::vec((prop_oneof![0u16..70, any::<u16>()],
                                          prop_oneof![0u16..70, any::<u16>()]), 50),
            cap in 0u32..50,
        ) {
            let r: Vec<(u32, Ranges, Ranges)> =
                rs.into_iter().enumerate().map(|(i, (x, y))| (i as u32 * 2, x, y)).collect();
            let ix = PortIndex::build(&rules(&r));
            for (x, y) in pts {
                let inside = |v: u16, (lo, hi): Ranges| lo <= v && v <= hi;
                let want = r.iter().find(|e| inside(x, e.1) && inside(y, e.2)).map_or(NONE, |e| e.0);
                prop_assert_eq!(ix.lookup((x, y), NONE), want);
                prop_assert_eq!(ix.lookup((x, y), cap), want.min(cap));
            }
        }
    }

    #[test]
    fn stabbing_finds_the_best_rank() {
        let ix = PortIndex::build(&rules(&[
            (3, (0, u16::MAX), (1000, 2000)),
            (5, (0, u16::MAX), (0, u16::MAX)),
            (7, (80, 80), (1500, 1500)),
            (9, (1024, u16::MAX), (10, 10)),
        ]));
        assert_eq!(ix.lookup((1, 1500), NONE), 3);
        assert_eq!(ix.lookup((80, 1500), NONE), 3);
        assert_eq!(ix.lookup((80, 2001), NONE), 5);
        assert_eq!(ix.lookup((80, 2001), 5), 5);
        assert_eq!(ix.lookup((80, 2001), 4), 4);
        let ix = PortIndex::build(&rules(&[
            (7, (80, 80), (1500, 1500)),
            (9, (1024, 2000), (10, 10)),
        ]));
        assert_eq!(ix.lookup((80, 1500), NONE), 7);
        assert_eq!(ix.lookup((1500, 10), NONE), 9);
        assert_eq!(ix.lookup((1500, 11), NONE), NONE);
        assert_eq!(ix.lookup((u16::MAX, u16::MAX), NONE), NONE);
    }
}
