//! `ferrobench spd`: the cost of one SPD lookup (`IpsecTables::classify`, the classifier) next
//! to the linear scan it replaced (`IpsecTables::classify_scan`), at several rule counts and
//! for three kinds of rule set, plus the build time and memory of the classifier.
//!
//! Rule sets (deterministic for a seed):
//! * `realistic` — site-to-site policies: distinct source/destination subnet pairs (/16 to
//!   /32, 80 % IPv4, 20 % IPv6), half protocol-any, the rest TCP/UDP services, ICMP echo, a few
//!   source-port ranges and interface scopes, mostly `both` directions, plus the two IKE bypass
//!   rules every gateway has at the top.
//! * `ports` — adversarial for tuple-space search: every rule on the same subnet pair,
//!   differing only in protocol and source/destination port ranges.
//! * `nested` — adversarial for the prefix probes: IPv6 prefixes nested at every length in
//!   both dimensions around one address pair, which every key sits in, with single-port rules
//!   the keys mostly miss (the classifier's probe worst case; see the classifier's module doc).
//!
//! Keys are precomputed (aimed inside a random rule, or random, per `--aimed`), in both
//! directions (an inbound key is the mirror image), and replayed round-robin; each timing runs
//! after a warm-up pass, with `black_box` on the table and the key and the results summed, and
//! the two answers are checked to agree on every key the scan sees. The scan at large sizes
//! runs fewer lookups (its cost is linear, so a few thousand suffice). Timing is wall-clock
//! (`Instant`) on a possibly shared machine: compare ratios within a run.

use dataplane::tables::ipsec::{Action, Dir, FlowKey, IpsecTables, Policy};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

/// Deterministic generator (SplitMix64): reproducible sets without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.u64() % n.max(1)
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
    /// True with probability `pct` %.
    fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

/// The rule-set kinds `ferrobench spd --sets` accepts.
pub const SETS: [&str; 3] = ["realistic", "ports", "nested"];

const ANY: (u16, u16) = (0, u16::MAX);

fn mask4(a: u32, len: u8) -> Ipv4Addr {
    let m = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ipv4Addr::from(a & m)
}

fn mask6(a: u128, len: u8) -> Ipv6Addr {
    let m = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    Ipv6Addr::from(a & m)
}

fn policy(id: u32, priority: u32, src: (IpAddr, u8), dst: (IpAddr, u8)) -> Policy {
    Policy {
        id,
        priority,
        out: true,
        inb: true,
        src,
        dst,
        proto: None,
        sport: ANY,
        dport: ANY,
        icmp_type: None,
        icmp_code: None,
        scope: None,
        action: Action::Bypass,
    }
}

fn action(r: &mut Rng) -> Action {
    match r.below(100) {
        0..70 => Action::Protect {
            out: None,
            inbound: vec![],
        },
        70..85 => Action::Bypass,
        _ => Action::Discard,
    }
}

/// `n` site-to-site policies (see the module doc).
pub fn realistic(n: usize, r: &mut Rng) -> Vec<Policy> {
    let mut v = Vec::with_capacity(n);
    // IKE bypass (UDP 500 and 4500, any to any), as every gateway has first.
    for (i, port) in [500u16, 4500]
        .into_iter()
        .enumerate()
        .take(n.saturating_sub(1))
    {
        let any4 = (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
        let mut p = policy(i as u32, 0, any4, any4);
        p.proto = Some(17);
        p.dport = (port, port);
        v.push(p);
    }
    while v.len() < n {
        let id = v.len() as u32;
        let (src, dst) = if r.pct(80) {
            let sl = r.pick(&[24u8, 24, 24, 24, 28, 28, 32, 16]);
            let dl = r.pick(&[24u8, 24, 24, 24, 16, 32, 32, 20]);
            let s = 0x0a00_0000 | (r.u64() as u32 & 0x00ff_ffff); // 10/8
            let d = 0xac10_0000 | (r.u64() as u32 & 0x000f_ffff); // 172.16/12
            (
                (IpAddr::V4(mask4(s, sl)), sl),
                (IpAddr::V4(mask4(d, dl)), dl),
            )
        } else {
            let sl = r.pick(&[48u8, 56, 64, 64, 128]);
            let dl = r.pick(&[48u8, 64, 64, 128]);
            let s = 0x2001_0db8u128 << 96 | (r.u64() as u128) << 40;
            let d = 0xfd00u128 << 112 | (r.u64() as u128) << 48 | r.u64() as u128;
            (
                (IpAddr::V6(mask6(s, sl)), sl),
                (IpAddr::V6(mask6(d, dl)), dl),
            )
        };
        let mut p = policy(id, 10 + r.below(10_000) as u32, src, dst);
        match r.below(100) {
            0..50 => {}
            50..75 => {
                p.proto = Some(6);
                p.dport = r.pick(&[(22, 22), (80, 80), (443, 443), (3389, 3389), (8080, 8090)]);
            }
            75..90 => {
                p.proto = Some(17);
                p.dport = r.pick(&[(53, 53), (123, 123), (1194, 1194), (5000, 6000)]);
            }
            _ => {
                p.proto = Some(if src.0.is_ipv6() { 58 } else { 1 });
                p.icmp_type = r.pct(70).then_some(if src.0.is_ipv6() { 128 } else { 8 });
            }
        }
        if p.proto.is_some_and(|x| x == 6 || x == 17) && r.pct(10) {
            p.sport = (1024, u16::MAX);
        }
        match r.below(100) {
            0..80 => {}
            80..90 => p.inb = false,
            _ => p.out = false,
        }
        if r.pct(10) {
            p.scope = Some(r.below(4) as u16);
        }
        p.action = action(r);
        v.push(p);
    }
    v
}

/// A random non-empty port range: single ports, short and long ranges.
fn port_range(r: &mut Rng) -> (u16, u16) {
    let lo = r.u64() as u16;
    let span = match r.below(4) {
        0 => 0,
        1 => r.below(16) as u16,
        2 => r.below(1024) as u16,
        _ => r.u64() as u16,
    };
    (lo, lo.saturating_add(span))
}

/// `n` rules on one subnet pair, told apart by protocol and port ranges only.
pub fn ports(n: usize, r: &mut Rng) -> Vec<Policy> {
    let src = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)), 8);
    let dst = (IpAddr::V4(Ipv4Addr::new(172, 16, 0, 0)), 12);
    (0..n)
        .map(|i| {
            let mut p = policy(i as u32, r.below(1_000_000) as u32, src, dst);
            p.proto = Some(if r.pct(60) { 6 } else { 17 });
            p.sport = if r.pct(50) { ANY } else { port_range(r) };
            p.dport = port_range(r);
            p.action = action(r);
            p
        })
        .collect()
}

/// The address pair every `nested` prefix contains.
const NEST_SRC: u128 = 0x2001_0db8_1234_5678_9abc_def0_1357_9bdf;
const NEST_DST: u128 = 0xfd00_aaaa_bbbb_cccc_dddd_eeee_ffff_0001;

/// `n` rules with IPv6 prefixes nested at every (source, destination) length pair around one
/// address pair, TCP single destination ports below 1024.
pub fn nested(n: usize, r: &mut Rng) -> Vec<Policy> {
    (0..n)
        .map(|i| {
            // Walk the 129 × 129 length pairs so every source length appears early.
            let c = i % (129 * 129);
            let (sl, dl) = ((c % 129) as u8, (c / 129) as u8);
            let src = (IpAddr::V6(mask6(NEST_SRC, sl)), sl);
            let dst = (IpAddr::V6(mask6(NEST_DST, dl)), dl);
            let mut p = policy(i as u32, r.below(1_000_000) as u32, src, dst);
            p.proto = Some(6);
            let port = r.below(1024) as u16;
            p.dport = (port, port);
            p.action = action(r);
            p
        })
        .collect()
}

pub fn rule_set(kind: &str, n: usize, r: &mut Rng) -> Result<Vec<Policy>, String> {
    match kind {
        "realistic" => Ok(realistic(n, r)),
        "ports" => Ok(ports(n, r)),
        "nested" => Ok(nested(n, r)),
        o => Err(format!("--sets: unknown set '{o}' ({})", SETS.join(", "))),
    }
}

/// A lookup to replay: direction, interface, key.
pub type Probe = (Dir, u16, FlowKey);

/// A random address inside `p` (`rnd` supplies the host bits).
fn inside(p: (IpAddr, u8), rnd: u128) -> IpAddr {
    match p.0 {
        IpAddr::V4(a) => {
            let m = if p.1 == 0 { 0 } else { u32::MAX << (32 - p.1) };
            IpAddr::V4(Ipv4Addr::from((u32::from(a) & m) | (rnd as u32 & !m)))
        }
        IpAddr::V6(a) => {
            let m = if p.1 == 0 {
                0
            } else {
                u128::MAX << (128 - p.1)
            };
            IpAddr::V6(Ipv6Addr::from((u128::from(a) & m) | (rnd & !m)))
        }
    }
}

fn in_range(r: &mut Rng, x: (u16, u16)) -> u16 {
    x.0 + r.below(x.1 as u64 - x.0 as u64 + 1) as u16
}

/// `count` probes: `aimed` % inside a random rule of `pols` (which may still be shadowed by a
/// better one, or miss on the other fields), the rest random addresses of the set's families.
pub fn probes(pols: &[Policy], count: usize, aimed: u64, r: &mut Rng) -> Vec<Probe> {
    (0..count)
        .map(|_| {
            let ifx = r.below(4) as u16;
            let Some(p) = (!pols.is_empty() && r.pct(aimed)).then(|| r.pick_ref(pols)) else {
                // Random: a family of the set, any address, mostly TCP/UDP.
                let v6 = pols
                    .get(r.below(pols.len() as u64) as usize)
                    .is_some_and(|p| p.src.0.is_ipv6());
                let (src, dst) = if v6 {
                    let s = (r.u64() as u128) << 64 | r.u64() as u128;
                    let d = (r.u64() as u128) << 64 | r.u64() as u128;
                    // Half of them inside the nested pair's /32s, to meet the nest.
                    if r.pct(50) {
                        (
                            inside((IpAddr::V6(mask6(NEST_SRC, 32)), 32), s),
                            inside((IpAddr::V6(mask6(NEST_DST, 32)), 32), d),
                        )
                    } else {
                        (IpAddr::V6(Ipv6Addr::from(s)), IpAddr::V6(Ipv6Addr::from(d)))
                    }
                } else {
                    let s = 0x0a00_0000 | (r.u64() as u32 & 0x00ff_ffff);
                    let d = if r.pct(50) {
                        0xac10_0000 | (r.u64() as u32 & 0x000f_ffff)
                    } else {
                        r.u64() as u32
                    };
                    (IpAddr::V4(s.into()), IpAddr::V4(d.into()))
                };
                let k = FlowKey {
                    src,
                    dst,
                    proto: r.pick(&[6u8, 6, 17, 17, 1, 50]),
                    sport: r.u64() as u16,
                    dport: r.pick(&[22u16, 53, 80, 443, 500, 4500, 8080]),
                };
                let dir = if r.pct(50) { Dir::Out } else { Dir::In };
                return (dir, ifx, k);
            };
            let out = p.out && (!p.inb || r.pct(50));
            let a = inside(p.src, (r.u64() as u128) << 64 | r.u64() as u128);
            let b = inside(p.dst, (r.u64() as u128) << 64 | r.u64() as u128);
            let proto = p.proto.unwrap_or_else(|| r.pick(&[6u8, 17, 1]));
            let icmp = matches!(p.proto, Some(1) | Some(58));
            let (sp, dp) = if icmp {
                (
                    p.icmp_type.unwrap_or(0) as u16,
                    p.icmp_code.unwrap_or(0) as u16,
                )
            } else {
                (in_range(r, p.sport), in_range(r, p.dport))
            };
            let ifx = p.scope.unwrap_or(ifx);
            let k = match (out, icmp) {
                (true, _) => FlowKey {
                    src: a,
                    dst: b,
                    proto,
                    sport: sp,
                    dport: dp,
                },
                (false, true) => FlowKey {
                    src: b,
                    dst: a,
                    proto,
                    sport: sp,
                    dport: dp,
                },
                (false, false) => FlowKey {
                    src: b,
                    dst: a,
                    proto,
                    sport: dp,
                    dport: sp,
                },
            };
            (if out { Dir::Out } else { Dir::In }, ifx, k)
        })
        .collect()
}

impl Rng {
    fn pick_ref<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len() as u64) as usize]
    }
}

/// Nanoseconds per lookup of `f`, cycling through `keys`: a warm-up pass, then `n` lookups in
/// 5 timed rounds, keeping the fastest round (the others most likely lost the core to another
/// process on a shared machine).
fn time<F: Fn(&IpsecTables, Dir, u16, &FlowKey) -> u64>(
    t: &IpsecTables,
    keys: &[Probe],
    n: usize,
    f: F,
) -> f64 {
    const ROUNDS: usize = 5;
    if keys.is_empty() || n == 0 {
        return f64::NAN;
    }
    let mut acc = 0u64;
    for (d, i, k) in keys.iter().take(n) {
        acc = acc.wrapping_add(f(black_box(t), *d, *i, black_box(k)));
    }
    let per = n.div_ceil(ROUNDS);
    let mut best = f64::INFINITY;
    let mut it = keys.iter().cycle();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for (d, i, k) in it.by_ref().take(per) {
            acc = acc.wrapping_add(f(black_box(t), *d, *i, black_box(k)));
        }
        best = best.min(start.elapsed().as_nanos() as f64 / per as f64);
    }
    black_box(acc);
    best
}

/// One measured (set, size).
#[derive(Debug, Clone)]
pub struct Row {
    pub set: String,
    pub rules: usize,
    pub build_ms: f64,
    pub spd_bytes: usize,
    pub policy_bytes: usize,
    /// Upper bound of hash probes per lookup in this set.
    pub max_probes: usize,
    /// Share of the keys that match a policy.
    pub hit: f64,
    pub spd_ns: f64,
    pub scan_ns: f64,
    pub scan_lookups: usize,
}

/// Measure one set of `n` rules: `lookups` classifier lookups, `scan_lookups` scan lookups
/// (None: as many as make up about 2·10⁸ rule checks, at most `lookups`).
pub fn measure(
    kind: &str,
    n: usize,
    keys: usize,
    aimed: u64,
    lookups: usize,
    scan_lookups: Option<usize>,
    seed: u64,
) -> Result<Row, String> {
    let mut r = Rng::new(seed ^ n as u64);
    let pols = rule_set(kind, n, &mut r)?;
    let policy_bytes = pols.len() * std::mem::size_of::<Policy>();
    let start = Instant::now();
    let t = IpsecTables::new(pols, false, Default::default(), 1);
    let build_ms = start.elapsed().as_secs_f64() * 1e3;
    let keys = probes(t.policies(), keys.max(1), aimed, &mut r);
    let scan_lookups =
        scan_lookups.unwrap_or_else(|| (200_000_000 / n.max(1)).clamp(100, lookups.max(100)));
    // The classifier must say what the scan says, on every key the scan is timed on.
    let mut hits = 0;
    for (d, i, k) in keys.iter().take(scan_lookups.max(1)) {
        let got = t.classify(*d, *i, k).map(|p| p.id);
        let want = t.classify_scan(*d, *i, k).map(|p| p.id);
        if got != want {
            return Err(format!(
                "{kind}/{n}: classifier says {got:?}, scan {want:?} for {d:?} if {i} {k:?}"
            ));
        }
        hits += want.is_some() as usize;
    }
    let checked = keys.len().min(scan_lookups.max(1));
    let id = |p: Option<&Policy>| p.map_or(0, |p| p.id as u64 + 1);
    let spd_ns = time(&t, &keys, lookups, |t, d, i, k| id(t.classify(d, i, k)));
    let scan_ns = time(&t, &keys, scan_lookups, |t, d, i, k| {
        id(t.classify_scan(d, i, k))
    });
    Ok(Row {
        set: kind.to_string(),
        rules: n,
        build_ms,
        spd_bytes: t.spd().memory_bytes(),
        policy_bytes,
        max_probes: t.spd().stats().max_probes,
        hit: hits as f64 / checked as f64,
        spd_ns,
        scan_ns,
        scan_lookups,
    })
}

pub fn header() -> String {
    format!(
        "{:<10} {:>7} {:>9} {:>9} {:>9} {:>6} {:>5} {:>9} {:>9} {:>10} {:>9} {:>8}",
        "set",
        "rules",
        "build_ms",
        "spd_KiB",
        "pol_KiB",
        "probes",
        "hit%",
        "spd_ns",
        "spd_Mlps",
        "scan_ns",
        "scan_Mlps",
        "speedup"
    )
}

impl Row {
    pub fn line(&self) -> String {
        format!(
            "{:<10} {:>7} {:>9.2} {:>9.1} {:>9.1} {:>6} {:>5.1} {:>9.1} {:>9.2} {:>10.1} {:>9.3} {:>8.1}",
            self.set,
            self.rules,
            self.build_ms,
            self.spd_bytes as f64 / 1024.0,
            self.policy_bytes as f64 / 1024.0,
            self.max_probes,
            self.hit * 100.0,
            self.spd_ns,
            1e3 / self.spd_ns,
            self.scan_ns,
            1e3 / self.scan_ns,
            self.scan_ns / self.spd_ns
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_have_the_asked_size_and_keys_agree() {
        for kind in SETS {
            for n in [0, 1, 3, 300] {
                let row = measure(kind, n, 50, 70, 200, Some(50), 7).unwrap();
                assert_eq!(row.rules, n);
                assert!(row.line().starts_with(kind));
            }
        }
    }

    #[test]
    fn aimed_keys_mostly_hit_realistic_rules() {
        let row = measure("realistic", 1000, 2000, 100, 10, Some(2000), 1).unwrap();
        assert!(row.hit > 0.5, "{}", row.line());
    }
}
