//! Interim longest-prefix match (hash per prefix length, longest first) until the trie-based
//! implementation lands; same API.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

#[derive(Debug)]
pub struct Lpm4 {
    by_len: Vec<(u8, HashMap<u32, u32>)>,
    n: usize,
}

#[derive(Debug)]
pub struct Lpm6 {
    by_len: Vec<(u8, HashMap<u128, u32>)>,
    n: usize,
}

fn m4(a: u32, l: u8) -> u32 {
    if l == 0 {
        0
    } else {
        a & (u32::MAX << (32 - l as u32))
    }
}
fn m6(a: u128, l: u8) -> u128 {
    if l == 0 {
        0
    } else {
        a & (u128::MAX << (128 - l as u32))
    }
}

impl Lpm4 {
    pub fn build(routes: &[(Ipv4Addr, u8, u32)]) -> Result<Lpm4, String> {
        let mut by: Vec<(u8, HashMap<u32, u32>)> = Vec::new();
        for &(a, l, v) in routes {
            if l > 32 {
                return Err(format!("{a}/{l}: prefix length beyond 32"));
            }
            let k = m4(u32::from(a), l);
            let e = match by.iter_mut().find(|(x, _)| *x == l) {
                Some(e) => e,
                None => {
                    by.push((l, HashMap::new()));
                    by.last_mut().unwrap_or_else(|| unreachable!())
                }
            };
            if e.1.insert(k, v).is_some() {
                return Err(format!("duplicate prefix {}/{l}", Ipv4Addr::from(k)));
            }
        }
        by.sort_by_key(|e| std::cmp::Reverse(e.0));
        Ok(Lpm4 {
            by_len: by,
            n: routes.len(),
        })
    }
    #[inline]
    pub fn lookup(&self, a: u32) -> Option<u32> {
        self.by_len
            .iter()
            .find_map(|(l, m)| m.get(&m4(a, *l)).copied())
    }
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

impl Lpm6 {
    pub fn build(routes: &[(Ipv6Addr, u8, u32)]) -> Result<Lpm6, String> {
        let mut by: Vec<(u8, HashMap<u128, u32>)> = Vec::new();
        for &(a, l, v) in routes {
            if l > 128 {
                return Err(format!("{a}/{l}: prefix length beyond 128"));
            }
            let k = m6(u128::from(a), l);
            let e = match by.iter_mut().find(|(x, _)| *x == l) {
                Some(e) => e,
                None => {
                    by.push((l, HashMap::new()));
                    by.last_mut().unwrap_or_else(|| unreachable!())
                }
            };
            if e.1.insert(k, v).is_some() {
                return Err(format!("duplicate prefix {}/{l}", Ipv6Addr::from(k)));
            }
        }
        by.sort_by_key(|e| std::cmp::Reverse(e.0));
        Ok(Lpm6 {
            by_len: by,
            n: routes.len(),
        })
    }
    #[inline]
    pub fn lookup(&self, a: u128) -> Option<u32> {
        self.by_len
            .iter()
            .find_map(|(l, m)| m.get(&m6(a, *l)).copied())
    }
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}
