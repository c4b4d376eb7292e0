//! The classifier against its definition: the linear scan of `Policy::matches` over the sorted
//! policies. Edge cases by hand, then random rule sets (mixed families, nested prefixes, port
//! ranges, protocols, ICMP, directions, scopes, tied priorities) with keys aimed at the rules,
//! under every group shape (scan threshold 0 forces the port indexes everywhere).

use super::*;
use crate::tables::ipsec::{Action, IpsecTables};
use hashbrown::HashMap;
use proptest::prelude::*;

const ANY: (u16, u16) = (0, u16::MAX);

fn pfx(s: &str) -> (IpAddr, u8) {
    let (a, l) = s.split_once('/').unwrap();
    (a.parse().unwrap(), l.parse().unwrap())
}

fn pol(id: u32, prio: u32, src: &str, dst: &str) -> Policy {
    Policy {
        id,
        priority: prio,
        out: true,
        inb: true,
        src: pfx(src),
        dst: pfx(dst),
        proto: None,
        sport: ANY,
        dport: ANY,
        icmp_type: None,
        icmp_code: None,
        scope: None,
        action: Action::Bypass,
    }
}

fn key(src: &str, dst: &str, proto: u8, sport: u16, dport: u16) -> FlowKey {
    FlowKey {
        src: src.parse().unwrap(),
        dst: dst.parse().unwrap(),
        proto,
        sport,
        dport,
    }
}

/// Every structure: port indexes for every group, a few scanned groups, probes however few
/// the rules, and the defaults (small sets become compact scans).
const TUNINGS: [Tuning; 4] = [
    Tuning {
        scan_max: 0,
        probe_cost: 0,
    },
    Tuning {
        scan_max: 1,
        probe_cost: 0,
    },
    Tuning {
        scan_max: 3,
        probe_cost: 0,
    },
    Tuning {
        scan_max: SCAN_MAX,
        probe_cost: PROBE_COST,
    },
];

/// Id of the classifier's answer, after checking it against the scan for every scan
/// threshold.
fn check(t: &IpsecTables, dir: Dir, ifx: u16, k: &FlowKey) -> Option<u32> {
    let want = t.classify_scan(dir, ifx, k).map(|p| p.id);
    assert_eq!(
        t.classify(dir, ifx, k).map(|p| p.id),
        want,
        "{dir:?} {ifx} {k:?}"
    );
    for tu in TUNINGS {
        let s = Spd::build_with(t.policies(), tu);
        let got = s.lookup(dir, ifx, k).map(|i| t.policies()[i].id);
        assert_eq!(got, want, "{tu:?}: {dir:?} {ifx} {k:?}");
    }
    want
}

fn tables(p: Vec<Policy>) -> IpsecTables {
    IpsecTables::new(p, false, HashMap::new(), 1)
}

#[test]
fn empty_table_matches_nothing() {
    let t = tables(vec![]);
    for dir in [Dir::Out, Dir::In] {
        assert_eq!(check(&t, dir, 0, &key("1.2.3.4", "5.6.7.8", 6, 1, 2)), None);
        assert_eq!(check(&t, dir, 0, &key("::1", "::2", 17, 1, 2)), None);
    }
    assert_eq!(t.spd().stats(), SpdStats::default());
}

#[test]
fn default_tables_and_default_action() {
    // Before the first publish.
    let t = IpsecTables::default();
    assert!(t.is_inactive());
    assert_eq!(
        t.classify(Dir::Out, 0, &key("1.2.3.4", "5.6.7.8", 6, 1, 2)),
        None
    );
    // Discard by default: no policy matches, the caller applies the default.
    let t = IpsecTables::new(
        vec![pol(0, 1, "10.0.0.0/8", "10.0.0.0/8")],
        true,
        HashMap::new(),
        1,
    );
    assert!(!t.is_inactive());
    assert_eq!(
        check(&t, Dir::Out, 0, &key("11.0.0.1", "10.0.0.2", 6, 1, 2)),
        None
    );
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.0.0.1", "10.0.0.2", 6, 1, 2)),
        Some(0)
    );
}

#[test]
fn default_route_prefixes_match_their_family_only() {
    let t = tables(vec![pol(0, 1, "0.0.0.0/0", "0.0.0.0/0")]);
    assert_eq!(
        check(&t, Dir::Out, 0, &key("1.2.3.4", "5.6.7.8", 6, 1, 2)),
        Some(0)
    );
    assert_eq!(
        check(&t, Dir::In, 9, &key("255.255.255.255", "0.0.0.0", 0, 0, 0)),
        Some(0)
    );
    assert_eq!(check(&t, Dir::Out, 0, &key("::1", "::2", 6, 1, 2)), None);
    assert_eq!(
        check(&t, Dir::Out, 0, &key("1.2.3.4", "::2", 6, 1, 2)),
        None
    );
    let t = tables(vec![pol(0, 1, "::/0", "::/0")]);
    assert_eq!(
        check(&t, Dir::Out, 0, &key("::1", "ffff::2", 6, 1, 2)),
        Some(0)
    );
    assert_eq!(
        check(&t, Dir::Out, 0, &key("1.2.3.4", "5.6.7.8", 6, 1, 2)),
        None
    );
}

#[test]
fn host_prefixes_match_exactly() {
    let t = tables(vec![
        pol(0, 1, "10.0.0.1/32", "10.0.0.2/32"),
        pol(1, 1, "2001:db8::1/128", "2001:db8::2/128"),
        pol(2, 2, "10.0.0.0/31", "10.0.0.2/32"),
    ]);
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.0.0.1", "10.0.0.2", 6, 1, 2)),
        Some(0)
    );
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.0.0.0", "10.0.0.2", 6, 1, 2)),
        Some(2)
    );
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.0.0.2", "10.0.0.2", 6, 1, 2)),
        None
    );
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.0.0.1", "10.0.0.3", 6, 1, 2)),
        None
    );
    let k = key("2001:db8::1", "2001:db8::2", 17, 1, 2);
    assert_eq!(check(&t, Dir::Out, 0, &k), Some(1));
    assert_eq!(
        check(
            &t,
            Dir::Out,
            0,
            &key("2001:db8::1", "2001:db8::3", 17, 1, 2)
        ),
        None
    );
    // Mirrored inbound.
    assert_eq!(
        check(&t, Dir::In, 0, &key("2001:db8::2", "2001:db8::1", 17, 1, 2)),
        Some(1)
    );
    assert_eq!(check(&t, Dir::In, 0, &k), None);
}

#[test]
fn host_bits_in_policy_addresses_are_ignored() {
    let t = tables(vec![pol(0, 1, "10.1.2.3/16", "2001:db8::ff/32")]);
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.1.99.99", "2001:db8:1::", 6, 1, 2)),
        Some(0)
    );
}

#[test]
fn full_and_single_port_ranges() {
    let mut web = pol(0, 1, "10.0.0.0/8", "10.0.0.0/8");
    web.proto = Some(6);
    web.dport = (443, 443);
    let mut hi = pol(1, 2, "10.0.0.0/8", "10.0.0.0/8");
    hi.sport = (u16::MAX, u16::MAX);
    let mut all = pol(2, 3, "10.0.0.0/8", "10.0.0.0/8");
    all.proto = Some(6);
    let t = tables(vec![web, hi, all]);
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.0.0.1", "10.0.0.2", 6, 1000, 443)),
        Some(0)
    );
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.0.0.1", "10.0.0.2", 17, 1000, 443)),
        None
    );
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.0.0.1", "10.0.0.2", 6, 1000, 444)),
        Some(2)
    );
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.0.0.1", "10.0.0.2", 17, 65535, 0)),
        Some(1)
    );
    // Inbound: the ports are mirrored with the addresses.
    assert_eq!(
        check(&t, Dir::In, 0, &key("10.0.0.1", "10.0.0.2", 6, 443, 1000)),
        Some(0)
    );
    assert_eq!(
        check(&t, Dir::In, 0, &key("10.0.0.1", "10.0.0.2", 6, 1000, 443)),
        Some(2)
    );
    assert_eq!(
        check(&t, Dir::In, 0, &key("10.0.0.1", "10.0.0.2", 17, 0, 65535)),
        Some(1)
    );
}

#[test]
fn non_first_fragments_only_match_port_wildcards() {
    // FlowKey::of gives ports 0 to a non-first fragment.
    let mut web = pol(0, 1, "10.0.0.0/8", "10.0.0.0/8");
    web.proto = Some(6);
    web.dport = (1, u16::MAX);
    let mut tcp = pol(1, 2, "10.0.0.0/8", "10.0.0.0/8");
    tcp.proto = Some(6);
    let t = tables(vec![web, tcp]);
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.0.0.1", "10.0.0.2", 6, 0, 0)),
        Some(1)
    );
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.0.0.1", "10.0.0.2", 6, 0, 1)),
        Some(0)
    );
}

#[test]
fn icmp_type_code_are_not_mirrored_and_use_the_low_byte() {
    let mut echo = pol(0, 1, "10.0.0.0/8", "192.168.0.0/16");
    echo.proto = Some(1);
    echo.icmp_type = Some(8);
    echo.icmp_code = Some(0);
    // Ignored for an ICMP policy.
    echo.sport = (5, 5);
    echo.dport = (7, 3);
    let mut unreach = pol(1, 2, "10.0.0.0/8", "192.168.0.0/16");
    unreach.proto = Some(1);
    unreach.icmp_type = Some(3);
    let mut v6 = pol(2, 3, "2001:db8::/32", "::/0");
    v6.proto = Some(58);
    v6.icmp_code = Some(4);
    // A protocol-any policy sees ICMP type/code as ports.
    let mut any = pol(3, 4, "10.0.0.0/8", "192.168.0.0/16");
    any.sport = (8, 8);
    let t = tables(vec![echo, unreach, v6, any]);
    let out = |t8, c| key("10.1.1.1", "192.168.1.1", 1, t8, c);
    assert_eq!(check(&t, Dir::Out, 0, &out(8, 0)), Some(0));
    assert_eq!(check(&t, Dir::Out, 0, &out(8 + 256, 256)), Some(0));
    assert_eq!(check(&t, Dir::Out, 0, &out(3, 13)), Some(1));
    assert_eq!(check(&t, Dir::Out, 0, &out(8, 1)), Some(3));
    assert_eq!(check(&t, Dir::Out, 0, &out(0, 0)), None);
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.1.1.1", "192.168.1.1", 6, 8, 0)),
        Some(3)
    );
    // Inbound: addresses mirrored, ICMP type/code as sent.
    let inb = |t8, c| key("192.168.1.1", "10.1.1.1", 1, t8, c);
    assert_eq!(check(&t, Dir::In, 0, &inb(8, 0)), Some(0));
    assert_eq!(check(&t, Dir::In, 0, &inb(0, 8)), Some(3));
    assert_eq!(check(&t, Dir::In, 0, &inb(3, 1)), Some(1));
    let k6 = key("2001:db8::1", "2001:db9::1", 58, 1, 4);
    assert_eq!(check(&t, Dir::Out, 0, &k6), Some(2));
    assert_eq!(
        check(
            &t,
            Dir::Out,
            0,
            &key("2001:db8::1", "2001:db9::1", 58, 1, 5)
        ),
        None
    );
    assert_eq!(
        check(&t, Dir::Out, 0, &key("2001:db8::1", "2001:db9::1", 1, 1, 4)),
        None
    );
}

#[test]
fn direction_scope_and_priority_ties() {
    let mut out_only = pol(5, 1, "10.0.0.0/8", "10.0.0.0/8");
    out_only.inb = false;
    let mut in_only = pol(4, 1, "10.0.0.0/8", "10.0.0.0/8");
    in_only.out = false;
    let mut eth1 = pol(3, 0, "10.0.0.0/8", "10.0.0.0/8");
    eth1.scope = Some(1);
    let mut neither = pol(0, 0, "0.0.0.0/0", "0.0.0.0/0");
    neither.out = false;
    neither.inb = false;
    // Same priority as `out_only`/`in_only`, lower id: wins on ties where it matches.
    let mut tie = pol(2, 1, "10.0.0.0/8", "10.0.0.0/8");
    tie.proto = Some(17);
    let t = tables(vec![out_only, in_only, eth1, neither, tie]);
    let k = key("10.0.0.1", "10.0.0.2", 6, 1, 2);
    assert_eq!(check(&t, Dir::Out, 0, &k), Some(5));
    assert_eq!(check(&t, Dir::In, 0, &k), Some(4));
    assert_eq!(check(&t, Dir::Out, 1, &k), Some(3));
    assert_eq!(check(&t, Dir::In, 1, &k), Some(3));
    let u = key("10.0.0.1", "10.0.0.2", 17, 1, 2);
    assert_eq!(check(&t, Dir::Out, 0, &u), Some(2));
    assert_eq!(check(&t, Dir::In, 2, &u), Some(2));
    assert_eq!(
        check(&t, Dir::Out, 0, &key("11.0.0.1", "10.0.0.2", 17, 1, 2)),
        None
    );
}

#[test]
fn mixed_family_policies_match_mixed_keys_only() {
    let t = tables(vec![pol(0, 1, "10.0.0.0/8", "2001:db8::/32")]);
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.0.0.1", "2001:db8::1", 6, 1, 2)),
        Some(0)
    );
    assert_eq!(
        check(&t, Dir::In, 0, &key("2001:db8::1", "10.0.0.1", 6, 1, 2)),
        Some(0)
    );
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.0.0.1", "10.0.0.1", 6, 1, 2)),
        None
    );
}

#[test]
fn empty_ranges_and_overlong_lengths() {
    let mut empty = pol(0, 1, "10.0.0.0/8", "10.0.0.0/8");
    empty.dport = (10, 9);
    // An ICMP policy ignores its port ranges, even empty ones.
    let mut icmp = pol(1, 2, "10.0.0.0/8", "10.0.0.0/8");
    icmp.proto = Some(1);
    icmp.sport = (10, 9);
    // Lengths beyond the width count as the full width.
    let long = pol(2, 3, "10.0.0.1/40", "2001:db8::1/200");
    let t = tables(vec![empty, icmp, long]);
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.0.0.1", "10.0.0.2", 6, 1, 9)),
        None
    );
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.0.0.1", "10.0.0.2", 1, 1, 9)),
        Some(1)
    );
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.0.0.1", "2001:db8::1", 1, 1, 9)),
        Some(2)
    );
    assert_eq!(
        check(&t, Dir::Out, 0, &key("10.0.0.2", "2001:db8::1", 1, 1, 9)),
        None
    );
}

/// The adversarial shape: one subnet pair, many port ranges; the group gets a port index.
#[test]
fn large_group_uses_a_port_index() {
    let mut p = Vec::new();
    for i in 0..200u32 {
        let mut r = pol(i, 1000 - i, "10.0.0.0/8", "0.0.0.0/0");
        r.proto = Some(if i % 3 == 0 { 17 } else { 6 });
        r.sport = (i as u16 * 7, i as u16 * 7 + 100);
        r.dport = (i as u16 * 300, i as u16 * 300 + (i % 5) as u16);
        r.scope = (i % 4 == 0).then_some((i % 3) as u16);
        p.push(r);
    }
    let t = tables(p);
    let s = t.spd().stats();
    assert_eq!(s.indexed_groups, 2, "{s:?}");
    assert_eq!(s.largest_group, 200);
    assert!(s.max_probes <= 2, "{s:?}");
    for i in 0..200u16 {
        for (sp, dp) in [
            (i * 7, i * 300),
            (i * 7 + 50, i * 300 + 2),
            (i * 7 + 101, 3),
        ] {
            for proto in [6, 17] {
                for ifx in 0..3 {
                    let k = key("10.9.9.9", "1.2.3.4", proto, sp, dp);
                    check(&t, Dir::Out, ifx, &k);
                    check(&t, Dir::In, ifx, &key("1.2.3.4", "10.9.9.9", proto, dp, sp));
                }
            }
        }
    }
}

#[test]
fn memory_and_stats_are_reported() {
    let t = tables(vec![
        pol(0, 1, "10.0.0.0/8", "10.0.0.0/8"),
        pol(1, 1, "10.0.0.0/8", "10.1.0.0/16"),
    ]);
    let s = t.spd().stats();
    // Both policies in both directions.
    assert_eq!((s.rules, s.src_prefixes, s.groups), (4, 2, 4));
    // Two rules per index: scanning beats probing.
    assert_eq!(s.scanned_indexes, 2);
    assert!(t.spd().memory_bytes() > 0);
}

// ---- random rule sets against the scan ----

const V4: [u32; 4] = [0x0a00_0000, 0x0a01_0203, 0xc0a8_014d, 0xac10_0504];
const V6: [u128; 3] = [
    0x2001_0db8_0000_0000_0000_0000_0000_0001,
    0x2001_0db8_0001_0000_0000_0000_0000_0005,
    0xfe80_0000_0000_0000_0000_0000_0000_1234,
];
const PORTS: [u16; 9] = [0, 1, 53, 80, 443, 1023, 1024, 4500, 65535];

/// An address near an anchor: the anchor with at most one bit flipped.
fn addr(v6: bool, anchor: usize, flip: Option<u8>) -> IpAddr {
    if v6 {
        let a = V6[anchor % V6.len()] ^ flip.map_or(0, |b| 1u128 << (b % 128));
        IpAddr::V6(a.into())
    } else {
        let a = V4[anchor % V4.len()] ^ flip.map_or(0, |b| 1u32 << (b % 32));
        IpAddr::V4(a.into())
    }
}

fn prefix() -> impl Strategy<Value = (bool, usize, Option<u8>, u8)> {
    let len = prop_oneof![
        Just(0u8),
        Just(255u8), // the family's full width
        prop::sample::select(vec![8u8, 16, 24, 31, 48, 64]),
        any::<u8>(),
    ];
    (
        any::<bool>(),
        0usize..4,
        prop::option::weighted(0.3, any::<u8>()),
        len,
    )
}

fn make_prefix((v6, anchor, flip, len): (bool, usize, Option<u8>, u8), fam: bool) -> (IpAddr, u8) {
    let v6 = v6 ^ fam;
    let max = if v6 { 128 } else { 32 };
    (
        addr(v6, anchor, flip),
        if len == 255 { max } else { len % (max + 1) },
    )
}

fn range() -> impl Strategy<Value = (u16, u16)> {
    let p = prop::sample::select(PORTS.to_vec());
    prop_oneof![
        3 => Just(ANY),
        2 => p.clone().prop_map(|v| (v, v)),
        2 => (p.clone(), p).prop_map(|(a, b)| (a.min(b), a.max(b))),
        1 => (any::<u16>(), any::<u16>()), // sometimes empty
    ]
}

fn proto() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![
        3 => Just(None),
        2 => Just(Some(6)),
        2 => Just(Some(17)),
        2 => Just(Some(1)),
        1 => Just(Some(58)),
        1 => any::<u8>().prop_map(Some),
    ]
}

fn small_opt(max: u8) -> impl Strategy<Value = Option<u8>> {
    prop::option::of(prop::sample::select(vec![0u8, 3, 8, 128, 129, max]))
}

prop_compose! {
    fn policy()(
        dirs in prop_oneof![4 => Just((true, true)), 2 => Just((true, false)),
                            2 => Just((false, true)), 1 => Just((false, false))],
        src in prefix(), dst in prefix(),
        mixed in prop::bool::weighted(0.1),
        proto in proto(), sport in range(), dport in range(),
        icmp_type in small_opt(255), icmp_code in small_opt(1),
        scope in prop::option::of(0u16..3),
        priority in 0u32..6, id in 0u32..40,
    ) -> Policy {
        let src = make_prefix(src, false);
        // Mostly the source's family; sometimes the other one.
        let dst = make_prefix(dst, src.0.is_ipv6() ^ dst.0 ^ mixed);
        Policy {
            id, priority, out: dirs.0, inb: dirs.1, src, dst, proto, sport, dport,
            icmp_type, icmp_code, scope, action: Action::Discard,
        }
    }
}

/// How to build one key: aimed at a rule (`rule` modulo the set) or random.
#[derive(Debug, Clone)]
struct KeySeed {
    rule: Option<usize>,
    out: bool,
    host: (u128, u128),
    flip: (Option<u8>, Option<u8>),
    proto: Option<u8>,
    ports: (u8, u8, u16, u16),
    ifx: u16,
}

prop_compose! {
    fn key_seed()(
        rule in prop::option::weighted(0.85, any::<usize>()),
        out in any::<bool>(),
        host in any::<(u128, u128)>(),
        flip in (prop::option::weighted(0.15, any::<u8>()), prop::option::weighted(0.15, any::<u8>())),
        proto in prop::option::weighted(0.3, prop::sample::select(vec![0u8, 1, 6, 17, 50, 58])),
        ports in (0u8..8, 0u8..8, any::<u16>(), any::<u16>()),
        ifx in 0u16..4,
    ) -> KeySeed {
        KeySeed { rule, out, host, flip, proto, ports, ifx }
    }
}

/// A value in or next to `r`, chosen by `c`.
fn port_near(r: (u16, u16), c: u8, rnd: u16) -> u16 {
    match c {
        0 => r.0,
        1 => r.1,
        2 => r.0.wrapping_sub(1),
        3 => r.1.wrapping_add(1),
        4 if r.0 <= r.1 => r.0 + rnd % (r.1 - r.0).saturating_add(1).max(1),
        5 => PORTS[rnd as usize % PORTS.len()],
        _ => rnd,
    }
}

/// An address inside `p` (random host bits), or just outside if `flip` hits a prefix bit.
fn inside(p: (IpAddr, u8), host: u128, flip: Option<u8>) -> IpAddr {
    match p.0 {
        IpAddr::V4(a) => {
            let l = p.1.min(32) as u32;
            let m = if l == 0 { 0 } else { u32::MAX << (32 - l) };
            let mut v = (u32::from(a) & m) | (host as u32 & !m);
            if let Some(b) = flip.filter(|_| l > 0) {
                v ^= 1 << (31 - (b as u32 % l));
            }
            IpAddr::V4(v.into())
        }
        IpAddr::V6(a) => {
            let l = p.1.min(128) as u32;
            let m = if l == 0 { 0 } else { u128::MAX << (128 - l) };
            let mut v = (u128::from(a) & m) | (host & !m);
            if let Some(b) = flip.filter(|_| l > 0) {
                v ^= 1 << (127 - (b as u32 % l));
            }
            IpAddr::V6(v.into())
        }
    }
}

fn make_key(s: &KeySeed, pols: &[Policy]) -> (Dir, u16, FlowKey) {
    let dir = if s.out { Dir::Out } else { Dir::In };
    let Some(p) = s
        .rule
        .filter(|_| !pols.is_empty())
        .map(|i| &pols[i % pols.len()])
    else {
        let a = addr(s.host.0 & 1 == 1, s.host.0 as usize >> 1, s.flip.0);
        let b = addr(s.host.1 & 1 == 1, s.host.1 as usize >> 1, s.flip.1);
        let k = FlowKey {
            src: a,
            dst: b,
            proto: s.proto.unwrap_or(6),
            sport: s.ports.2,
            dport: s.ports.3,
        };
        return (dir, s.ifx, k);
    };
    let a = inside(p.src, s.host.0, s.flip.0);
    let b = inside(p.dst, s.host.1, s.flip.1);
    let proto = s.proto.or(p.proto).unwrap_or(17);
    let (sp, dp) = if matches!(p.proto, Some(1) | Some(58)) {
        let one = |v: Option<u8>, c: u8, r: u16| match (v, c) {
            (Some(t), 0..=3) => t as u16,
            (Some(t), 4) => t as u16 + 256, // only the low byte is compared
            _ => r % 300,
        };
        (
            one(p.icmp_type, s.ports.0, s.ports.2),
            one(p.icmp_code, s.ports.1, s.ports.3),
        )
    } else {
        (
            port_near(p.sport, s.ports.0, s.ports.2),
            port_near(p.dport, s.ports.1, s.ports.3),
        )
    };
    let ifx = p.scope.filter(|_| s.ifx != 3).unwrap_or(s.ifx);
    // Inbound keys are the mirror image of the policy's selectors (ICMP type/code are not).
    let k = match (dir, matches!(p.proto, Some(1) | Some(58))) {
        (Dir::Out, _) => FlowKey {
            src: a,
            dst: b,
            proto,
            sport: sp,
            dport: dp,
        },
        (Dir::In, true) => FlowKey {
            src: b,
            dst: a,
            proto,
            sport: sp,
            dport: dp,
        },
        (Dir::In, false) => FlowKey {
            src: b,
            dst: a,
            proto,
            sport: dp,
            dport: sp,
        },
    };
    (dir, ifx, k)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn classifier_equals_linear_scan(
        pols in prop::collection::vec(policy(), 0..40),
        // Extra rules on one subnet pair, to make large groups.
        crowd in prop::collection::vec((proto(), range(), range(), 0u32..6,
                                        prop::option::of(0u16..3)), 0..30),
        seeds in prop::collection::vec(key_seed(), 64),
    ) {
        let mut pols = pols;
        if let Some(base) = pols.first().cloned() {
            for (i, (proto, sport, dport, priority, scope)) in crowd.into_iter().enumerate() {
                pols.push(Policy {
                    id: 100 + i as u32, priority, proto, sport, dport, scope,
                    ..base.clone()
                });
            }
        }
        let t = tables(pols);
        let spds: Vec<Spd> = TUNINGS.iter().map(|&tu| Spd::build_with(t.policies(), tu)).collect();
        for s in &seeds {
            let (dir, ifx, k) = make_key(s, t.policies());
            let want = t.policies().iter().position(|p| p.matches(dir, ifx, &k));
            prop_assert_eq!(t.classify(dir, ifx, &k).map(|p| p.id),
                            t.classify_scan(dir, ifx, &k).map(|p| p.id));
            for (spd, tu) in spds.iter().zip(TUNINGS) {
                prop_assert_eq!(spd.lookup(dir, ifx, &k), want,
                                "{:?} {:?} ifx {} {:?}", tu, dir, ifx, k);
            }
        }
    }
}
