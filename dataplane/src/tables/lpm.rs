//! Longest-prefix match for IPv4 and IPv6: a multibit trie with a 16-bit first stride and
//! 8-bit strides after it (DIR-16-8-8 for IPv4, 16-8-…-8 for IPv6), built by controlled prefix
//! expansion.
//!
//! Why this shape: a lookup is one indexed load per level and no comparisons — at most 3 loads
//! for IPv4 and, in practice, 2–4 for IPv6 routes up to /48 — and the tables are rebuilt whole
//! on every publish (the control thread builds a new version, workers switch at a burst
//! boundary), so there is no in-place update to make lock-free. DIR-24-8 would save one load
//! for IPv4 prefixes longer than /16 but costs 64 MiB per version; the 256 KiB root here keeps
//! two live versions cheap.
//!
//! Building inserts prefixes shortest first, so a longer prefix simply overwrites what it
//! covers and expanding a leaf into a group copies the shorter route into all of its slots.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Slot encoding: 0 = no route; `LEAF | value`; `GROUP | group index`.
const LEAF: u32 = 1 << 31;
const GROUP: u32 = 1 << 30;
const PAYLOAD: u32 = GROUP - 1;
const ROOT_BITS: u32 = 16;
const STRIDE: u32 = 8;

/// The trie over keys left-aligned in a u128 (IPv4 addresses occupy the top 32 bits).
#[derive(Debug, Clone)]
struct Trie {
    root: Vec<u32>,
    /// Groups of 256 slots, back to back.
    groups: Vec<u32>,
    n: usize,
}

impl Trie {
    fn build(mut routes: Vec<(u128, u8, u32)>) -> Result<Trie, String> {
        let mut t = Trie {
            root: vec![0; 1 << ROOT_BITS],
            groups: Vec::new(),
            n: 0,
        };
        // Shortest first; duplicates become adjacent.
        routes.sort_by_key(|&(k, l, _)| (l, k));
        for w in routes.windows(2) {
            if w[0].0 == w[1].0 && w[0].1 == w[1].1 {
                return Err(format!("duplicate prefix (length {})", w[0].1));
            }
        }
        for &(k, l, v) in &routes {
            if v > PAYLOAD {
                return Err(format!("next-hop index {v} beyond {PAYLOAD}"));
            }
            t.insert(k, l as u32, v);
        }
        t.n = routes.len();
        Ok(t)
    }

    /// Index of `key` at `level` (0 = root).
    #[inline(always)]
    fn index(key: u128, level: u32) -> usize {
        if level == 0 {
            (key >> (128 - ROOT_BITS)) as usize
        } else {
            ((key >> (128 - ROOT_BITS - STRIDE * level)) & 0xff) as usize
        }
    }

    fn new_group(&mut self, fill: u32) -> u32 {
        let g = (self.groups.len() >> STRIDE) as u32;
        self.groups.resize(self.groups.len() + 256, fill);
        g
    }

    fn slot_mut(&mut self, level: u32, group: u32, idx: usize) -> &mut u32 {
        if level == 0 {
            &mut self.root[idx]
        } else {
            &mut self.groups[((group as usize) << STRIDE) + idx]
        }
    }

    /// Overwrite every leaf under `slot` (it and, for a group, everything below) with `leaf`.
    fn fill(&mut self, slot: u32, leaf: u32) -> u32 {
        if slot & GROUP != 0 {
            let g = (slot & PAYLOAD) as usize;
            for i in 0..256 {
                let s = self.groups[(g << STRIDE) + i];
                let n = self.fill(s, leaf);
                self.groups[(g << STRIDE) + i] = n;
            }
            slot
        } else {
            leaf
        }
    }

    fn insert(&mut self, key: u128, len: u32, value: u32) {
        let leaf = LEAF | value;
        let mut level = 0;
        let mut group = 0;
        let mut level_end = ROOT_BITS;
        // Walk down to the level where the prefix ends, expanding leaves into groups.
        while len > level_end {
            let idx = Self::index(key, level);
            let cur = *self.slot_mut(level, group, idx);
            let g = if cur & GROUP != 0 {
                cur & PAYLOAD
            } else {
                let g = self.new_group(cur);
                *self.slot_mut(level, group, idx) = GROUP | g;
                g
            };
            group = g;
            level += 1;
            level_end += STRIDE;
        }
        // The prefix covers 2^(level_end - len) consecutive slots at this level.
        let first = Self::index(key, level) & !((1usize << (level_end - len)) - 1);
        for idx in first..first + (1usize << (level_end - len)) {
            let cur = *self.slot_mut(level, group, idx);
            let n = self.fill(cur, leaf);
            *self.slot_mut(level, group, idx) = n;
        }
    }

    #[inline(always)]
    fn lookup(&self, key: u128) -> Option<u32> {
        let mut e = self.root[Self::index(key, 0)];
        let mut level = 1;
        while e & GROUP != 0 {
            let g = (e & PAYLOAD) as usize;
            e = self.groups[(g << STRIDE) | Self::index(key, level)];
            level += 1;
        }
        (e & LEAF != 0).then_some(e & PAYLOAD)
    }

    fn memory_bytes(&self) -> usize {
        (self.root.len() + self.groups.len()) * 4
    }
}

fn masked(key: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        key & (u128::MAX << (128 - len as u32))
    }
}

/// IPv4 longest-prefix match: prefix → next-hop index.
#[derive(Debug, Clone)]
pub struct Lpm4(Trie);

/// IPv6 longest-prefix match: prefix → next-hop index.
#[derive(Debug, Clone)]
pub struct Lpm6(Trie);

impl Lpm4 {
    /// Build from (network, length, value); host bits are ignored; duplicates are refused.
    pub fn build(routes: &[(Ipv4Addr, u8, u32)]) -> Result<Lpm4, String> {
        let mut v = Vec::with_capacity(routes.len());
        for &(a, l, x) in routes {
            if l > 32 {
                return Err(format!("{a}/{l}: prefix length beyond 32"));
            }
            v.push((masked((u32::from(a) as u128) << 96, l), l, x));
        }
        Trie::build(v).map(Lpm4)
    }

    #[inline]
    pub fn lookup(&self, a: u32) -> Option<u32> {
        self.0.lookup((a as u128) << 96)
    }

    pub fn len(&self) -> usize {
        self.0.n
    }

    pub fn is_empty(&self) -> bool {
        self.0.n == 0
    }

    /// Bytes of trie (for `show` and sizing).
    pub fn memory_bytes(&self) -> usize {
        self.0.memory_bytes()
    }
}

impl Lpm6 {
    /// Build from (network, length, value); host bits are ignored; duplicates are refused.
    pub fn build(routes: &[(Ipv6Addr, u8, u32)]) -> Result<Lpm6, String> {
        let mut v = Vec::with_capacity(routes.len());
        for &(a, l, x) in routes {
            if l > 128 {
                return Err(format!("{a}/{l}: prefix length beyond 128"));
            }
            v.push((masked(u128::from(a), l), l, x));
        }
        Trie::build(v).map(Lpm6)
    }

    #[inline]
    pub fn lookup(&self, a: u128) -> Option<u32> {
        self.0.lookup(a)
    }

    pub fn len(&self) -> usize {
        self.0.n
    }

    pub fn is_empty(&self) -> bool {
        self.0.n == 0
    }

    pub fn memory_bytes(&self) -> usize {
        self.0.memory_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obviously correct reference: scan for the longest covering prefix.
    fn reference(routes: &[(u128, u8, u32)], key: u128) -> Option<u32> {
        routes
            .iter()
            .filter(|&&(k, l, _)| masked(key, l) == masked(k, l))
            .max_by_key(|&&(_, l, _)| l)
            .map(|&(_, _, v)| v)
    }

    #[test]
    fn basic_v4() {
        let r = [
            (Ipv4Addr::new(0, 0, 0, 0), 0, 1),
            (Ipv4Addr::new(10, 0, 0, 0), 8, 2),
            (Ipv4Addr::new(10, 1, 0, 0), 16, 3),
            (Ipv4Addr::new(10, 1, 2, 0), 24, 4),
            (Ipv4Addr::new(10, 1, 2, 3), 32, 5),
            (Ipv4Addr::new(10, 1, 2, 128), 25, 6),
        ];
        let t = Lpm4::build(&r).unwrap();
        let l = |a: [u8; 4]| t.lookup(u32::from(Ipv4Addr::from(a)));
        assert_eq!(l([1, 2, 3, 4]), Some(1));
        assert_eq!(l([10, 9, 9, 9]), Some(2));
        assert_eq!(l([10, 1, 9, 9]), Some(3));
        assert_eq!(l([10, 1, 2, 9]), Some(4));
        assert_eq!(l([10, 1, 2, 3]), Some(5));
        assert_eq!(l([10, 1, 2, 200]), Some(6));
        assert!(Lpm4::build(&[
            (Ipv4Addr::new(10, 0, 0, 1), 8, 1),
            (Ipv4Addr::new(10, 0, 0, 0), 8, 2)
        ])
        .is_err());
        assert!(Lpm4::build(&[(Ipv4Addr::new(10, 0, 0, 1), 33, 1)]).is_err());
        assert_eq!(Lpm4::build(&[]).unwrap().lookup(0), None);
    }

    #[test]
    fn basic_v6() {
        let p = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let r = [
            (p("::"), 0, 1),
            (p("fd00::"), 8, 2),
            (p("fd00:1::"), 64, 3),
            (p("fd00:1::7"), 128, 4),
        ];
        let t = Lpm6::build(&r).unwrap();
        let l = |s: &str| t.lookup(u128::from(p(s)));
        assert_eq!(l("2001::1"), Some(1));
        assert_eq!(l("fd99::1"), Some(2));
        assert_eq!(l("fd00:1::8"), Some(3));
        assert_eq!(l("fd00:1::7"), Some(4));
    }

    fn prefix(bits: u32) -> impl Strategy<Value = (u128, u8)> {
        // Lengths cluster around the interesting boundaries (0, 16, 24, 32, 48, 64, 128).
        (any::<u128>(), 0..=bits).prop_map(move |(k, l)| {
            let k = if bits == 32 { k << 96 } else { k };
            (masked(k, l as u8), l as u8)
        })
    }

    proptest! {
        #[test]
        fn v4_matches_reference(
            routes in proptest::collection::vec(prefix(32), 0..80),
            probes in proptest::collection::vec(any::<u32>(), 64),
        ) {
            let mut seen = std::collections::HashSet::new();
            let routes: Vec<(u128, u8, u32)> = routes
                .into_iter()
                .filter(|&(k, l)| seen.insert((k, l)))
                .enumerate()
                .map(|(i, (k, l))| (k, l, i as u32))
                .collect();
            let input: Vec<(Ipv4Addr, u8, u32)> =
                routes.iter().map(|&(k, l, v)| (Ipv4Addr::from((k >> 96) as u32), l, v)).collect();
            let t = Lpm4::build(&input).unwrap();
            // Probe random keys and keys inside and just outside every prefix.
            let mut keys: Vec<u32> = probes;
            for &(k, l, _) in &routes {
                let base = (k >> 96) as u32;
                keys.push(base);
                let span = if l == 0 { u32::MAX } else { (1u64 << (32 - l as u32)).saturating_sub(1) as u32 };
                keys.push(base.wrapping_add(span));
                keys.push(base.wrapping_add(span).wrapping_add(1));
                keys.push(base.wrapping_sub(1));
            }
            for a in keys {
                prop_assert_eq!(t.lookup(a), reference(&routes, (a as u128) << 96), "key {}", Ipv4Addr::from(a));
            }
        }

        #[test]
        fn v6_matches_reference(
            routes in proptest::collection::vec(prefix(128), 0..60),
            probes in proptest::collection::vec(any::<u128>(), 32),
        ) {
            let mut seen = std::collections::HashSet::new();
            let routes: Vec<(u128, u8, u32)> = routes
                .into_iter()
                .filter(|&(k, l)| seen.insert((k, l)))
                .enumerate()
                .map(|(i, (k, l))| (k, l, i as u32))
                .collect();
            let input: Vec<(Ipv6Addr, u8, u32)> = routes.iter().map(|&(k, l, v)| (Ipv6Addr::from(k), l, v)).collect();
            let t = Lpm6::build(&input).unwrap();
            let mut keys = probes;
            for &(k, l, _) in &routes {
                keys.push(k);
                let span = if l == 0 { u128::MAX } else { u128::MAX.checked_shr(l as u32).unwrap_or(0) };
                keys.push(k.wrapping_add(span));
                keys.push(k.wrapping_add(span).wrapping_add(1));
                keys.push(k.wrapping_sub(1));
                // Share a prefix with the route but differ further down.
                keys.push(k ^ (1u128 << (127 - (l as u32).min(127))));
            }
            for a in keys {
                prop_assert_eq!(t.lookup(a), reference(&routes, a), "key {}", Ipv6Addr::from(a));
            }
        }
    }
}
