//! A static hash map for the SPD classifier's prefix probes: built once, read-only after.
//!
//! Why not `hashbrown`: a probe here is the unit of lookup cost, and a table built once can
//! do better than a general map. Keys are one to three machine words hashed with a seeded
//! folded multiply; slots are `(key, value)` pairs in one array at 50 % load with linear
//! probing, so a probe is usually one cache line. The build measures the longest probe
//! distance of any stored key and rebuilds with another seed (and, every other try, twice the
//! slots) until it is at most [`MAX_DIST`]; a lookup then stops after `max_dist + 1` slots
//! even for absent keys, so no key — whatever address a packet carries — costs more than that.
//! The policies that fill the table come from the operator, not from packets; the random seed
//! additionally keeps the layout unpredictable.

use std::hash::BuildHasher;

/// Longest probe distance a build accepts before retrying (the last try is kept whatever it
/// is, and reported by [`StaticMap::max_dist`]).
pub const MAX_DIST: usize = 24;
const TRIES: u32 = 8;

const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xbf58_476d_1ce4_e5b9;

#[inline(always)]
fn fold(a: u64, b: u64) -> u64 {
    let p = (a as u128) * (b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

/// A key made of up to three words.
pub(super) trait Key: Copy + Eq + Default + std::fmt::Debug {
    fn words(&self) -> [u64; 3];
}

impl Key for u32 {
    #[inline(always)]
    fn words(&self) -> [u64; 3] {
        [*self as u64, 0, 0]
    }
}

impl Key for u128 {
    #[inline(always)]
    fn words(&self) -> [u64; 3] {
        [*self as u64, (*self >> 64) as u64, 0]
    }
}

impl Key for (u32, u32) {
    #[inline(always)]
    fn words(&self) -> [u64; 3] {
        [(self.0 as u64) << 32 | self.1 as u64, 0, 0]
    }
}

impl Key for (u32, u128) {
    #[inline(always)]
    fn words(&self) -> [u64; 3] {
        [self.1 as u64, (self.1 >> 64) as u64, self.0 as u64]
    }
}

/// A value type with a reserved "empty slot" value that is never stored.
pub(super) trait Value: Copy + Eq + std::fmt::Debug {
    const EMPTY: Self;
}

impl Value for u32 {
    const EMPTY: u32 = u32::MAX;
}

impl Value for u64 {
    const EMPTY: u64 = u64::MAX;
}

#[derive(Debug, Clone)]
pub(super) struct StaticMap<K, V> {
    /// Twice as many slots as keys — not a power of two: the home slot is the hash scaled to
    /// the length, so memory follows the key count.
    slots: Vec<(K, V)>,
    seeds: [u64; 3],
    max_dist: usize,
}

impl<K, V> Default for StaticMap<K, V> {
    fn default() -> Self {
        StaticMap {
            slots: Vec::new(),
            seeds: [0; 3],
            max_dist: 0,
        }
    }
}

impl<K: Key, V: Value> StaticMap<K, V> {
    #[inline(always)]
    fn home(&self, k: &K) -> usize {
        let w = k.words();
        let h = fold(w[0] ^ self.seeds[0], w[1] ^ self.seeds[1]);
        let h = fold(h ^ w[2], self.seeds[2]);
        ((h as u128 * self.slots.len() as u128) >> 64) as usize
    }

    /// Build from distinct keys (a repeated key keeps its first value); values must not be
    /// `V::EMPTY`.
    pub fn build(items: &[(K, V)]) -> StaticMap<K, V> {
        if items.is_empty() {
            return StaticMap::default();
        }
        let mut n = items.len() * 2;
        let state = std::collections::hash_map::RandomState::new();
        let mut try_no = 0;
        loop {
            let seed = |i: u64| state.hash_one((try_no, i)) | 1;
            let mut m = StaticMap {
                slots: vec![(K::default(), V::EMPTY); n],
                seeds: [seed(0), seed(1) ^ K1, seed(2) ^ K2],
                max_dist: 0,
            };
            for &(k, v) in items {
                let mut i = m.home(&k);
                let mut d = 0;
                loop {
                    let s = &mut m.slots[i];
                    if s.1 == V::EMPTY {
                        *s = (k, v);
                        break;
                    }
                    if s.0 == k {
                        break;
                    }
                    i = if i + 1 == n { 0 } else { i + 1 };
                    d += 1;
                }
                m.max_dist = m.max_dist.max(d);
            }
            try_no += 1;
            if m.max_dist <= MAX_DIST || try_no >= TRIES {
                return m;
            }
            if try_no % 2 == 0 {
                n *= 2;
            }
        }
    }

    /// The value of `k`: at most `max_dist + 1` slot reads.
    #[inline]
    pub fn get(&self, k: K) -> Option<V> {
        let n = self.slots.len();
        let mut i = self.home(&k);
        for _ in 0..=self.max_dist {
            let s = self.slots.get(i)?;
            if s.1 == V::EMPTY {
                return None;
            }
            if s.0 == k {
                return Some(s.1);
            }
            i = if i + 1 == n { 0 } else { i + 1 };
        }
        None
    }

    pub fn max_dist(&self) -> usize {
        self.max_dist
    }

    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<(K, V)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_key_and_no_other() {
        for n in [0usize, 1, 2, 7, 1000, 50_000] {
            let items: Vec<(u32, u32)> = (0..n as u32)
                .map(|i| (i.wrapping_mul(2654435761), i))
                .collect();
            let m = StaticMap::build(&items);
            assert!(m.max_dist() <= MAX_DIST, "n {n}: {}", m.max_dist());
            assert!(n == 0 || m.slots.len() >= 2 * n);
            for &(k, v) in &items {
                assert_eq!(m.get(k), Some(v));
            }
            for i in 0..1000u32 {
                let k = i.wrapping_mul(2654435761).wrapping_add(1);
                assert_eq!(m.get(k), items.iter().find(|e| e.0 == k).map(|e| e.1));
            }
        }
    }

    #[test]
    fn wide_keys() {
        // Keys that differ only in high bits, only in the node, or only in the low bits.
        let mut items: Vec<((u32, u128), u64)> = Vec::new();
        for i in 0..300u128 {
            items.push(((0, i << 100), i as u64));
            items.push(((i as u32 + 1000, 0), 1000 + i as u64));
            items.push(((7, i), 2000 + i as u64));
        }
        let m = StaticMap::build(&items);
        for &(k, v) in &items {
            assert_eq!(m.get(k), Some(v));
        }
        assert_eq!(m.get((0, 1)), None);
        assert_eq!(m.get((9999, 0)), None);
    }
}
