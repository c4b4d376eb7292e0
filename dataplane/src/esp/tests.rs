//! ESP tests across the module: the published vectors (draft-mcgrew-gcm-test-01, RFC 7634)
//! decrypted and re-encrypted byte for byte, round trips of every suite in both modes over
//! IPv4/IPv6 with and without NAT-T and ESN, tampering, replay, padding and next-header
//! errors, ECN, lifetimes, and truncated or random input that must never panic.

use super::crypto::MAX_IV_LEN;
use super::encap::{encap_esp_with_iv, encap_with_iv};
use super::*;
use crate::outer::{ecn, OuterPolicy};
use crate::packet::{HeapPacket, Packet};
use crate::stats::DropReason;
use crate::wire::ipv4::Ipv4Repr;
use crate::wire::ipv6::Ipv6Repr;
use crate::wire::{ipproto, Ipv4Packet, Ipv6Packet, UdpPacket};
use proptest::prelude::*;
use serde_json::Value;
use std::net::{Ipv4Addr, Ipv6Addr};

const VECTORS: &str = include_str!("../../tests/data/esp_vectors.json");

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len() & 1 == 0, "odd hex {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn field(v: &Value, k: &str) -> Vec<u8> {
    hex(v[k].as_str().unwrap_or_else(|| panic!("missing {k}")))
}

fn u32_field(v: &Value, k: &str) -> u32 {
    u32::from_be_bytes(field(v, k).try_into().unwrap())
}

fn vector_suite(alg: &str) -> Suite {
    match alg {
        "aes-gcm-128" => Suite::AesGcm(AesKeyLen::Aes128),
        "aes-gcm-192" => Suite::AesGcm(AesKeyLen::Aes192),
        "aes-gcm-256" => Suite::AesGcm(AesKeyLen::Aes256),
        "aes-gmac-128" => Suite::AesGmac(AesKeyLen::Aes128),
        "chacha20-poly1305" => Suite::ChaCha20Poly1305,
        other => panic!("unknown alg {other}"),
    }
}

struct Vector {
    name: String,
    suite: Suite,
    keymat: Vec<u8>,
    spi: u32,
    seq: u64,
    esn: bool,
    iv: [u8; MAX_IV_LEN],
    /// The ESP payload in the clear: GCM plaintext, or for GMAC the payload part of the AAD.
    clear: Vec<u8>,
    esp_packet: Vec<u8>,
    v: Value,
}

fn vectors() -> Vec<Vector> {
    let all: Vec<Value> = serde_json::from_str(VECTORS).unwrap();
    assert_eq!(all.len(), 18);
    all.into_iter()
        .map(|v| {
            let suite = vector_suite(v["alg"].as_str().unwrap());
            let mut keymat = field(&v, "key");
            keymat.extend(field(&v, "salt"));
            let esn = !v["esn_high"].is_null();
            let high = if esn { u32_field(&v, "esn_high") } else { 0 };
            let seq = ((high as u64) << 32) | u32_field(&v, "seq") as u64;
            let mut iv = [0u8; MAX_IV_LEN];
            iv[..8].copy_from_slice(&field(&v, "iv"));
            let clear = if matches!(suite, Suite::AesGmac(_)) {
                field(&v, "aad")[16..].to_vec()
            } else {
                field(&v, "plaintext")
            };
            Vector {
                name: v["case"].as_str().unwrap().to_string(),
                suite,
                keymat,
                spi: u32_field(&v, "spi"),
                seq,
                esn,
                iv,
                clear,
                esp_packet: field(&v, "esp_packet"),
                v,
            }
        })
        .collect()
}

fn vector_sa(t: &Vector, mode: Mode) -> Sa {
    let cfg = SaConfig {
        esn: t.esn,
        replay_window: 64,
        ..SaConfig::new(t.spi, mode, t.suite)
    };
    let mut sa = Sa::new(&cfg, &t.keymat, &[]).unwrap();
    sa.replay_mut().reset_to(t.seq.saturating_sub(1));
    sa.set_next_seq_out(t.seq);
    sa
}

fn chacha_mode() -> Mode {
    Mode::Tunnel4 {
        local: Ipv4Addr::new(203, 0, 113, 153),
        remote: Ipv4Addr::new(203, 0, 113, 5),
    }
}

#[test]
fn published_vectors_open_to_the_published_plaintext() {
    for t in vectors() {
        let is_rfc7634 = t.v["source"] == "RFC 7634";
        // Low level: verify and decrypt in place, trailer included.
        let sa = vector_sa(&t, Mode::Transport);
        let esp_at = if is_rfc7634 { 20 } else { 0 };
        let mut buf = vec![0u8; 4];
        buf.extend_from_slice(&t.esp_packet[esp_at..]);
        let esn_high = t.esn.then_some((t.seq >> 32) as u32);
        sa.crypto().open(&mut buf, 4, esn_high).unwrap();
        let start = 4 + 8 + 8;
        assert_eq!(&buf[start..buf.len() - 16], &t.clear[..], "{}", t.name);

        // Packet level.
        let nh = *t.clear.last().unwrap();
        let pad = t.clear[t.clear.len() - 2] as usize;
        let body = &t.clear[..t.clear.len() - 2 - pad];
        if is_rfc7634 {
            let mut sa = vector_sa(&t, chacha_mode());
            let mut p = HeapPacket::from_frame(&t.esp_packet);
            let info = decap(&mut sa, &mut p).unwrap();
            assert_eq!(p.data(), &field(&t.v, "source_packet")[..]);
            assert_eq!(p.data(), body);
            assert_eq!(
                (info.family, info.next_header, info.seq, info.payload_len),
                (Some(IpFamily::V4), 4, 5, body.len())
            );
        } else {
            // The draft's packets carry next header 1 after an IPv4 packet; as transport-mode
            // payloads they open to exactly the published bytes.
            let mut sa = vector_sa(&t, Mode::Transport);
            let mut p = HeapPacket::from_frame(&t.esp_packet);
            let info = decap_esp(&mut sa, &mut p).unwrap_or_else(|e| panic!("{}: {e}", t.name));
            assert_eq!(p.data(), body, "{}", t.name);
            assert_eq!((info.next_header, info.seq, info.family), (nh, t.seq, None));
            assert_eq!(sa.counters().in_packets.get(), 1);
        }
    }
}

#[test]
fn published_vectors_are_reproduced_byte_for_byte() {
    for t in vectors() {
        let nh = *t.clear.last().unwrap();
        let pad = t.clear[t.clear.len() - 2] as usize;
        let body = &t.clear[..t.clear.len() - 2 - pad];
        if t.v["source"] == "RFC 7634" {
            let mut sa = vector_sa(&t, chacha_mode());
            sa.set_next_ident(0x2345);
            let mut p = HeapPacket::from_frame(body);
            let info =
                encap_with_iv(&mut sa, &mut p, &OuterPolicy::default(), Some(&t.iv)).unwrap();
            assert_eq!(p.data(), &t.esp_packet[..], "{}", t.name);
            assert_eq!((info.seq, info.len), (5, t.esp_packet.len()));
        } else {
            let mut sa = vector_sa(&t, Mode::Transport);
            let mut p = HeapPacket::from_frame(body);
            let info = encap_esp_with_iv(&mut sa, &mut p, nh, Some(&t.iv))
                .unwrap_or_else(|e| panic!("{}: {e}", t.name));
            assert_eq!(p.data(), &t.esp_packet[..], "{}", t.name);
            assert_eq!(info.seq, t.seq);
        }
    }
}

#[test]
fn published_vectors_refuse_any_flipped_bit() {
    for t in vectors() {
        let esp_at = if t.v["source"] == "RFC 7634" { 20 } else { 0 };
        for i in esp_at + 8..t.esp_packet.len() {
            let mut bad = t.esp_packet.clone();
            bad[i] ^= 0x01;
            let mut sa = vector_sa(&t, Mode::Transport);
            let mut p = HeapPacket::from_frame(&bad[esp_at..]);
            assert_eq!(
                decap_esp(&mut sa, &mut p),
                Err(DropReason::EspAuthFailed),
                "{} octet {i}",
                t.name
            );
            assert_eq!(sa.counters().auth_failures.get(), 1);
            // A forged packet never moves the window.
            assert_eq!(sa.replay().top(), t.seq.saturating_sub(1));
        }
    }
}

// --- round trips ------------------------------------------------------------------------------

fn all_suites() -> Vec<Suite> {
    use AesKeyLen::*;
    use Integ::*;
    let mut v = vec![];
    for k in [Aes128, Aes192, Aes256] {
        v.push(Suite::AesGcm(k));
        v.push(Suite::AesGmac(k));
        for i in [HmacSha1_96, HmacSha256_128, HmacSha512_256] {
            v.push(Suite::AesCbc(k, i));
        }
    }
    v.push(Suite::ChaCha20Poly1305);
    for i in [HmacSha1_96, HmacSha256_128, HmacSha512_256] {
        v.push(Suite::Null(i));
    }
    v
}

fn keys(s: Suite, seed: u8) -> (Vec<u8>, Vec<u8>) {
    let e = (0..s.enc_key_len())
        .map(|i| seed ^ (i as u8).wrapping_mul(7))
        .collect();
    let a = (0..s.auth_key_len())
        .map(|i| seed.wrapping_add((i as u8).wrapping_mul(13)))
        .collect();
    (e, a)
}

/// An outbound and an inbound SA with the same configuration and keys.
fn pair(cfg: &SaConfig) -> (Sa, Sa) {
    let (e, a) = keys(cfg.suite, 0x5a);
    (Sa::new(cfg, &e, &a).unwrap(), Sa::new(cfg, &e, &a).unwrap())
}

const V4_A: [u8; 4] = [192, 0, 2, 1];
const V4_B: [u8; 4] = [198, 51, 100, 7];
const V6_A: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_B: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2];

fn ipv4(proto: u8, tos: u8, df: bool, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 20];
    Ipv4Repr {
        src: V4_A,
        dst: V4_B,
        protocol: proto,
        tos,
        ttl: 61,
        ident: 0x1234,
        dont_frag: df,
        payload_len: payload.len() as u16,
    }
    .emit(&mut b);
    b.extend_from_slice(payload);
    b
}

fn ipv6(nh: u8, tc: u8, hbh: bool, payload: &[u8]) -> Vec<u8> {
    let mut ext = vec![];
    if hbh {
        ext.extend_from_slice(&[nh, 0, 1, 4, 0, 0, 0, 0]); // PadN
    }
    let mut b = vec![0u8; 40];
    Ipv6Repr {
        src: V6_A,
        dst: V6_B,
        next_header: if hbh { ipproto::HOPOPT } else { nh },
        traffic_class: tc,
        flow_label: 0xbeef,
        hop_limit: 61,
        payload_len: (ext.len() + payload.len()) as u16,
    }
    .emit(&mut b);
    b.extend(ext);
    b.extend_from_slice(payload);
    b
}

fn mode(tunnel: u8) -> Mode {
    match tunnel {
        0 => Mode::Transport,
        1 => Mode::Tunnel4 {
            local: Ipv4Addr::from(V4_A),
            remote: Ipv4Addr::from(V4_B),
        },
        _ => Mode::Tunnel6 {
            local: Ipv6Addr::from(V6_A),
            remote: Ipv6Addr::from(V6_B),
        },
    }
}

/// Check the outer headers an encapsulation wrote and return the ESP offset.
fn check_outer(sa: &Sa, b: &[u8], policy: &OuterPolicy, inner_tos: u8) -> usize {
    let natt = sa.natt();
    let (l4, off) = match b[0] >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(b).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(ip.total_len() as usize, b.len());
            if sa.mode().is_tunnel() {
                assert_eq!(ip.ttl(), policy.ttl);
                assert_eq!(ip.tos(), policy.outer_tos(inner_tos));
                assert_eq!((ip.src(), ip.dst()), (V4_A, V4_B));
            }
            (ip.protocol(), ip.header_len())
        }
        6 => {
            let ip = Ipv6Packet::new_checked(b).unwrap();
            assert_eq!(ip.total_len(), b.len());
            if sa.mode().is_tunnel() {
                assert_eq!(ip.hop_limit(), policy.ttl);
                assert_eq!(ip.traffic_class(), policy.outer_tos(inner_tos));
            }
            let ul = ip.upper_layer().unwrap();
            (ul.protocol, ul.offset)
        }
        _ => panic!("bad outer"),
    };
    match natt {
        Some(n) => {
            assert_eq!(l4, ipproto::UDP);
            let u = UdpPacket::new_checked(&b[off..]).unwrap();
            assert_eq!((u.src_port(), u.dst_port()), (n.sport, n.dport));
            assert_eq!(u.len() as usize, b.len() - off);
            if b[0] >> 4 == 4 {
                assert_eq!(u.checksum(), 0);
            } else {
                let ip = Ipv6Packet::new_checked(b).unwrap();
                assert!(u.verify_v6(&ip.src(), &ip.dst(), false));
            }
            off + 8
        }
        None => {
            assert_eq!(l4, ipproto::ESP);
            off
        }
    }
}

#[derive(Clone, Debug)]
struct Case {
    suite: Suite,
    tunnel: u8,
    v6: bool,
    hbh: bool,
    natt: bool,
    esn: bool,
    start: u64,
    tos: u8,
    df: bool,
    payload: Vec<u8>,
    junk: Vec<u8>,
    policy: OuterPolicy,
}

fn case() -> impl Strategy<Value = Case> {
    let suites = all_suites();
    (
        (
            proptest::sample::select(suites),
            0u8..3,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop_oneof![
                Just(1u64),
                1u64..1000,
                (1u64 << 32) - 3..(1u64 << 32) + 3,
                (u32::MAX as u64 - 2)..=(u32::MAX as u64),
            ],
        ),
        (
            any::<u8>(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..300),
            proptest::collection::vec(any::<u8>(), 0..6),
            (1u8..=255, any::<bool>(), any::<u8>(), 0u8..3),
        ),
    )
        .prop_map(
            |(
                (suite, tunnel, v6, hbh, natt, esn, start),
                (tos, df, payload, junk, (ttl, fixed, dscp, dfp)),
            )| {
                use crate::outer::{DfPolicy, TosPolicy};
                Case {
                    suite,
                    tunnel,
                    v6,
                    hbh,
                    natt,
                    esn,
                    // Without ESN the sequence space ends at 2^32 - 1.
                    start: if esn {
                        start
                    } else {
                        start.min(u32::MAX as u64)
                    },
                    tos,
                    df,
                    payload,
                    junk,
                    policy: OuterPolicy {
                        ttl,
                        tos: if fixed {
                            TosPolicy::Fixed(dscp)
                        } else {
                            TosPolicy::Preserve
                        },
                        df: [DfPolicy::Propagate, DfPolicy::Set, DfPolicy::Clear][dfp as usize],
                    },
                }
            },
        )
}

fn inner_packet(c: &Case) -> Vec<u8> {
    if c.v6 {
        ipv6(ipproto::UDP, c.tos, c.hbh, &c.payload)
    } else {
        ipv4(ipproto::UDP, c.tos, c.df, &c.payload)
    }
}

fn case_cfg(c: &Case) -> SaConfig {
    SaConfig {
        esn: c.esn,
        natt: c.natt.then(NatT::default),
        replay_window: 128,
        ..SaConfig::new(0x1000_0001, mode(c.tunnel), c.suite)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Encapsulate, check the outer headers, decapsulate: the original packet comes back
    /// (link-layer junk after it excepted), and every truncation of the ESP packet is refused
    /// without a panic.
    #[test]
    fn round_trip(c in case()) {
        let (mut tx, mut rx) = pair(&case_cfg(&c));
        tx.set_next_seq_out(c.start);
        rx.replay_mut().reset_to(c.start - 1);
        let orig = inner_packet(&c);
        let mut framed = orig.clone();
        framed.extend_from_slice(&c.junk);
        let mut p = HeapPacket::from_frame(&framed);
        let info = encap(&mut tx, &mut p, &c.policy).unwrap();
        prop_assert_eq!(info.seq, c.start);
        prop_assert_eq!(info.len, p.len());
        let wire = p.to_vec();
        let esp = check_outer(&tx, &wire, &c.policy, c.tos);
        prop_assert_eq!(
            u32::from_be_bytes(wire[esp..esp + 4].try_into().unwrap()),
            0x1000_0001
        );
        prop_assert_eq!(
            u32::from_be_bytes(wire[esp + 4..esp + 8].try_into().unwrap()),
            c.start as u32
        );
        if !c.suite.encrypts() {
            // GMAC and NULL carry the payload in the clear right after the IV.
            let at = esp + 8 + c.suite.iv_len();
            let clear = if c.tunnel == 0 { &c.payload[..] } else { &orig[..] };
            prop_assert_eq!(&wire[at..at + clear.len()], clear);
        }

        for n in 0..wire.len() {
            let mut t = HeapPacket::from_frame(&wire[..n]);
            prop_assert!(decap(&mut rx, &mut t).is_err(), "truncated to {} accepted", n);
            if n >= esp {
                // Cut inside ESP with the IP and UDP lengths made to agree, so the ESP parser
                // itself meets the short packet.
                let mut t = HeapPacket::from_frame(&consistent_cut(&wire, esp, n));
                prop_assert!(decap(&mut rx, &mut t).is_err(), "cut to {} accepted", n);
                let mut t = HeapPacket::from_frame(&wire[esp..n]);
                prop_assert!(decap_esp(&mut rx, &mut t).is_err(), "esp cut to {}", n);
            }
        }
        prop_assert_eq!(rx.replay().top(), c.start - 1);

        let mut q = HeapPacket::from_frame(&wire);
        let d = decap(&mut rx, &mut q).unwrap();
        prop_assert_eq!(q.data(), &orig[..]);
        prop_assert_eq!(d.seq, c.start);
        prop_assert_eq!(d.family, Some(if c.v6 { IpFamily::V6 } else { IpFamily::V4 }));
        let nh = match (c.tunnel, c.v6) {
            (0, _) => ipproto::UDP,
            (_, false) => ipproto::IPIP,
            (_, true) => ipproto::IPV6,
        };
        prop_assert_eq!(d.next_header, nh);
        prop_assert_eq!(d.payload_len, info.payload_len);
        prop_assert_eq!(rx.counters().in_packets.get(), 1);

        // The same packet again is a duplicate.
        let mut again = HeapPacket::from_frame(&wire);
        prop_assert_eq!(decap(&mut rx, &mut again), Err(DropReason::EspReplayDuplicate));
        prop_assert_eq!(rx.counters().replay_drops.get(), 1);
    }

    /// Any single changed octet from the IV on is an ICV failure, whatever the suite.
    #[test]
    fn tamper_is_auth_failure(c in case(), pos in any::<prop::sample::Index>(), x in 1u8..=255) {
        let (mut tx, mut rx) = pair(&case_cfg(&c));
        tx.set_next_seq_out(c.start);
        rx.replay_mut().reset_to(c.start - 1);
        let mut p = HeapPacket::from_frame(&inner_packet(&c));
        encap(&mut tx, &mut p, &c.policy).unwrap();
        let mut wire = p.to_vec();
        let esp = check_outer(&tx, &wire, &c.policy, c.tos);
        let i = esp + 8 + pos.index(wire.len() - esp - 8);
        wire[i] ^= x;
        let mut q = HeapPacket::from_frame(&wire);
        prop_assert_eq!(decap(&mut rx, &mut q), Err(DropReason::EspAuthFailed));
        prop_assert_eq!(rx.replay().top(), c.start - 1);
        prop_assert_eq!(rx.counters().auth_failures.get(), 1);
    }

    /// Random bytes, and random bytes behind a plausible IPv4/IPv6/UDP header, never panic.
    #[test]
    fn garbage_never_panics(
        c in case(),
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        head in 0u8..4,
    ) {
        let (_, mut rx) = pair(&case_cfg(&c));
        let frame = match head {
            0 => bytes,
            1 => ipv4(ipproto::ESP, 0, false, &bytes),
            2 => ipv6(ipproto::ESP, 0, c.hbh, &bytes),
            _ => {
                let mut u = vec![0x11, 0x94, 0x11, 0x94, 0, 0, 0, 0];
                u[4..6].copy_from_slice(&((bytes.len() + 8) as u16).to_be_bytes());
                u.extend_from_slice(&bytes);
                ipv4(ipproto::UDP, 0, false, &u)
            }
        };
        for room in [0usize, 4, 128] {
            let mut p = HeapPacket::with_room(&frame, room, room);
            prop_assert!(decap(&mut rx, &mut p).is_err());
            let mut p = HeapPacket::with_room(&frame, room, room);
            prop_assert!(decap_esp(&mut rx, &mut p).is_err());
        }
        prop_assert_eq!(rx.counters().in_packets.get(), 0);
    }
}

/// `wire[..n]` with the outer IP (and UDP) length fields rewritten to match.
fn consistent_cut(wire: &[u8], esp: usize, n: usize) -> Vec<u8> {
    let mut w = wire[..n].to_vec();
    if w[0] >> 4 == 4 {
        let mut ip = Ipv4Packet::new_unchecked(&mut w[..]);
        ip.set_total_len(n as u16);
        let udp = ip.protocol() == ipproto::UDP;
        ip.fill_checksum();
        if udp {
            w[esp - 4..esp - 2].copy_from_slice(&((n - esp + 8) as u16).to_be_bytes());
        }
    } else {
        w[4..6].copy_from_slice(&((n - 40) as u16).to_be_bytes());
        if esp >= 48 && w[esp - 8..esp - 6] == [0x11, 0x94] {
            w[esp - 4..esp - 2].copy_from_slice(&((n - esp + 8) as u16).to_be_bytes());
        }
    }
    w
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `encap_esp` / `decap_esp` with the least headroom they need (GMAC with ESN borrows 4
    /// octets in front of the SPI on both sides).
    #[test]
    fn esp_only_round_trip(c in case(), nh in any::<u8>()) {
        let mut cfg = case_cfg(&c);
        cfg.mode = if c.tunnel == 0 { Mode::Transport } else { mode(1) };
        let nh = if c.tunnel == 0 { nh.max(1) } else { ipproto::IPIP };
        let nh = if nh == ipproto::IPV6_NONXT { 17 } else { nh };
        let (mut tx, mut rx) = pair(&cfg);
        tx.set_next_seq_out(c.start);
        rx.replay_mut().reset_to(c.start - 1);
        let body = if c.tunnel == 0 { c.payload.clone() } else { ipv4(17, c.tos, c.df, &c.payload) };
        let scratch = if c.esn && matches!(c.suite, Suite::AesGmac(_)) { 4 } else { 0 };
        let hdr = 8 + c.suite.iv_len();
        if hdr + scratch > 0 {
            let mut p = HeapPacket::with_room(&body, hdr + scratch - 1, 64);
            prop_assert_eq!(encap_esp(&mut tx, &mut p, nh), Err(DropReason::NoHeadroom));
        }
        let mut p = HeapPacket::with_room(&body, hdr + scratch, 64);
        let e = encap_esp(&mut tx, &mut p, nh).unwrap();
        prop_assert_eq!(e.seq, c.start);
        prop_assert_eq!(e.len, p.len());
        prop_assert_eq!(p.headroom(), scratch);
        let wire = p.to_vec();
        if scratch > 0 {
            let mut q = HeapPacket::with_room(&wire, 0, 0);
            prop_assert_eq!(decap_esp(&mut rx, &mut q), Err(DropReason::NoHeadroom));
        }
        let mut q = HeapPacket::with_room(&wire, scratch, 0);
        let d = decap_esp(&mut rx, &mut q).unwrap();
        prop_assert_eq!(q.data(), &body[..]);
        prop_assert_eq!((d.next_header, d.seq), (nh, c.start));
    }
}

// --- directed cases ---------------------------------------------------------------------------

fn gcm_cfg(m: Mode) -> SaConfig {
    SaConfig::new(0x0102_0304, m, Suite::AesGcm(AesKeyLen::Aes128))
}

#[test]
fn esn_across_the_2_32_boundary_every_suite() {
    for suite in all_suites() {
        for tunnel in 0..3 {
            let cfg = SaConfig {
                esn: true,
                ..SaConfig::new(9, mode(tunnel), suite)
            };
            let (mut tx, mut rx) = pair(&cfg);
            let start = (1u64 << 32) - 3;
            tx.set_next_seq_out(start);
            rx.replay_mut().reset_to(start - 1);
            let mut sent = vec![];
            for k in 0..6u64 {
                let mut p = HeapPacket::from_frame(&ipv4(17, 0, true, &[k as u8; 33]));
                let e = encap(&mut tx, &mut p, &OuterPolicy::default()).unwrap();
                assert_eq!(e.seq, start + k);
                sent.push(p.to_vec());
            }
            // Deliver out of order across the boundary.
            for &k in &[1usize, 0, 4, 2, 5, 3] {
                let mut q = HeapPacket::from_frame(&sent[k]);
                let d = decap(&mut rx, &mut q).unwrap_or_else(|e| panic!("{suite:?} {k}: {e}"));
                assert_eq!(d.seq, start + k as u64);
            }
            let mut q = HeapPacket::from_frame(&sent[2]);
            assert_eq!(decap(&mut rx, &mut q), Err(DropReason::EspReplayDuplicate));
            // The receiver must not accept a packet sealed with the wrong high half: the same
            // low 32 bits one epoch later fail the ICV.
            assert_eq!(rx.replay().top(), start + 5);
        }
    }
}

#[test]
fn esn_high_bits_are_authenticated_not_sent() {
    let cfg = SaConfig {
        esn: true,
        ..gcm_cfg(Mode::Transport)
    };
    let (mut tx, mut rx) = pair(&cfg);
    tx.set_next_seq_out((5 << 32) | 10);
    let mut p = HeapPacket::from_frame(&ipv4(17, 0, true, &[1; 20]));
    encap(&mut tx, &mut p, &OuterPolicy::default()).unwrap();
    let wire = p.to_vec();
    assert_eq!(&wire[24..28], &10u32.to_be_bytes());
    // A receiver in epoch 4 infers high bits 4 and fails the ICV.
    rx.replay_mut().reset_to((4 << 32) | 5);
    let mut q = HeapPacket::from_frame(&wire);
    assert_eq!(decap(&mut rx, &mut q), Err(DropReason::EspAuthFailed));
    rx.replay_mut().reset_to((5 << 32) | 5);
    let mut q = HeapPacket::from_frame(&wire);
    assert_eq!(decap(&mut rx, &mut q).unwrap().seq, (5 << 32) | 10);
}

#[test]
fn late_packets_are_late() {
    let cfg = SaConfig {
        replay_window: 64,
        ..gcm_cfg(Mode::Transport)
    };
    let (mut tx, mut rx) = pair(&cfg);
    let mut sent = vec![];
    for _ in 0..100 {
        let mut p = HeapPacket::from_frame(&ipv4(17, 0, true, &[2; 8]));
        encap(&mut tx, &mut p, &OuterPolicy::default()).unwrap();
        sent.push(p.to_vec());
    }
    let mut q = HeapPacket::from_frame(&sent[99]);
    decap(&mut rx, &mut q).unwrap();
    let mut q = HeapPacket::from_frame(&sent[35]); // seq 36: top 100 - 64 = 36 is out
    assert_eq!(decap(&mut rx, &mut q), Err(DropReason::EspReplayLate));
    let mut q = HeapPacket::from_frame(&sent[36]);
    assert!(decap(&mut rx, &mut q).is_ok());
}

/// Seal a hand-made payload and trailer, so the ICV is valid over a bad trailer.
fn sealed_raw(sa: &Sa, seq: u32, clear: &[u8]) -> Vec<u8> {
    let s = sa.suite();
    let mut b = vec![0u8; 4];
    b.extend_from_slice(&sa.spi().to_be_bytes());
    b.extend_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&sa.crypto().iv_for(seq as u64)[..s.iv_len()]);
    b.extend_from_slice(clear);
    b.resize(b.len() + s.icv_len(), 0);
    sa.crypto().seal(&mut b, 4, None).unwrap();
    b.split_off(4)
}

#[test]
fn padding_and_next_header_are_checked_after_authentication() {
    for suite in all_suites() {
        let align = suite.pad_align();
        let body = [0x45u8; 10];
        let pad_for = |body: usize| (align - (body + 2) % align) % align;
        let cases: Vec<(Vec<u8>, Result<u8, DropReason>, Mode)> = vec![
            // Good: pad 1, 2, ...
            (
                trailer(&body, pad_for(10), None, 17),
                Ok(17),
                Mode::Transport,
            ),
            // A pad octet out of sequence.
            (
                trailer(&body, pad_for(10) + align, Some(1), 17),
                Err(DropReason::EspBadPadding),
                Mode::Transport,
            ),
            // Pad length longer than the payload.
            (
                {
                    let mut t = trailer(&body, pad_for(10), None, 17);
                    let n = t.len();
                    t[n - 2] = 250;
                    t
                },
                Err(DropReason::EspBadPadding),
                Mode::Transport,
            ),
            // Dummy packet.
            (
                trailer(&body, pad_for(10), None, 59),
                Err(DropReason::EspBadNextHeader),
                Mode::Transport,
            ),
            // Transport payload on a tunnel SA.
            (
                trailer(&body, pad_for(10), None, 17),
                Err(DropReason::EspModeMismatch),
                mode(1),
            ),
            // Tunnel payload whose inner version disagrees with next header 41.
            (
                trailer(&body, pad_for(10), None, 41),
                Err(DropReason::IpipBadInner),
                mode(2),
            ),
        ];
        for (i, (clear, want, m)) in cases.into_iter().enumerate() {
            let (_, mut rx) = pair(&SaConfig::new(77, m, suite));
            let wire = sealed_raw(&rx, 1, &clear);
            let mut p = HeapPacket::from_frame(&wire);
            let got = decap_esp(&mut rx, &mut p).map(|d| d.next_header);
            assert_eq!(got, want, "{suite:?} case {i}");
            // Authentic packets move the window even when dropped afterwards.
            assert_eq!(rx.replay().top(), 1, "{suite:?} case {i}");
        }
    }
}

/// `body`, then `pad` padding octets 1, 2, ... (octet `bad` replaced by 0xee), pad length and
/// next header.
fn trailer(body: &[u8], pad: usize, bad: Option<usize>, nh: u8) -> Vec<u8> {
    let mut v = body.to_vec();
    for i in 0..pad {
        v.push(if Some(i) == bad { 0xee } else { (i + 1) as u8 });
    }
    v.push(pad as u8);
    v.push(nh);
    v
}

#[test]
fn wrong_spi_is_no_sa() {
    let (mut tx, _) = pair(&gcm_cfg(mode(1)));
    let mut other = Sa::new(
        &SaConfig::new(5, mode(1), Suite::AesGcm(AesKeyLen::Aes128)),
        &keys(Suite::AesGcm(AesKeyLen::Aes128), 0x5a).0,
        &[],
    )
    .unwrap();
    let mut p = HeapPacket::from_frame(&ipv4(17, 0, true, &[0; 8]));
    encap(&mut tx, &mut p, &OuterPolicy::default()).unwrap();
    assert_eq!(decap(&mut other, &mut p), Err(DropReason::EspNoSa));
}

#[test]
fn ecn_is_copied_out_and_folded_back_in() {
    for v6 in [false, true] {
        let (mut tx, mut rx) = pair(&gcm_cfg(mode(if v6 { 2 } else { 1 })));
        let send = |tx: &mut Sa, tos: u8| {
            let mut p = HeapPacket::from_frame(&ipv4(17, tos, true, &[3; 16]));
            encap(tx, &mut p, &OuterPolicy::default()).unwrap();
            p.to_vec()
        };
        let mark_ce = |w: &mut Vec<u8>| {
            if v6 {
                let mut ip = Ipv6Packet::new_unchecked(&mut w[..]);
                let tc = ip.traffic_class();
                ip.set_traffic_class(tc | ecn::CE);
            } else {
                let mut ip = Ipv4Packet::new_unchecked(&mut w[..]);
                let tos = ip.tos();
                ip.set_tos(tos | ecn::CE);
                ip.fill_checksum();
            }
        };
        // ECT(0) inside, CE set on the outer header in transit: the inner becomes CE.
        let mut w = send(&mut tx, 0xb8 | ecn::ECT0);
        let outer_tos = if v6 {
            Ipv6Packet::new_unchecked(&w[..]).traffic_class()
        } else {
            Ipv4Packet::new_unchecked(&w[..]).tos()
        };
        assert_eq!(outer_tos, 0xb8 | ecn::ECT0);
        mark_ce(&mut w);
        let mut q = HeapPacket::from_frame(&w);
        decap(&mut rx, &mut q).unwrap();
        let ip = Ipv4Packet::new_checked(q.data()).unwrap();
        assert_eq!(ip.tos(), 0xb8 | ecn::CE);
        assert!(ip.verify_checksum());
        // Not-ECT inside, CE outside: dropped.
        let mut w = send(&mut tx, 0xb8);
        mark_ce(&mut w);
        let mut q = HeapPacket::from_frame(&w);
        assert_eq!(decap(&mut rx, &mut q), Err(DropReason::EcnCeOnNotEct));
    }
}

#[test]
fn outer_df_and_ident_follow_policy() {
    use crate::outer::DfPolicy;
    let (mut tx, _) = pair(&gcm_cfg(mode(1)));
    tx.set_next_ident(0xfffe);
    for (inner_df, policy, want) in [
        (true, DfPolicy::Propagate, true),
        (false, DfPolicy::Propagate, false),
        (false, DfPolicy::Set, true),
        (true, DfPolicy::Clear, false),
    ] {
        let mut p = HeapPacket::from_frame(&ipv4(17, 0, inner_df, &[0; 4]));
        let pol = OuterPolicy {
            df: policy,
            ..OuterPolicy::default()
        };
        encap(&mut tx, &mut p, &pol).unwrap();
        assert_eq!(Ipv4Packet::new_checked(p.data()).unwrap().dont_frag(), want);
    }
    let mut p = HeapPacket::from_frame(&ipv4(17, 0, true, &[0; 4]));
    encap(&mut tx, &mut p, &OuterPolicy::default()).unwrap();
    assert_eq!(Ipv4Packet::new_checked(p.data()).unwrap().ident(), 2);
}

#[test]
fn sequence_exhaustion_refuses_and_leaves_the_packet() {
    let (mut tx, _) = pair(&gcm_cfg(mode(1)));
    tx.set_next_seq_out(u32::MAX as u64);
    let frame = ipv4(17, 0, true, &[0; 4]);
    let mut p = HeapPacket::from_frame(&frame);
    assert_eq!(
        encap(&mut tx, &mut p, &OuterPolicy::default()).unwrap().seq,
        u32::MAX as u64
    );
    let mut p = HeapPacket::from_frame(&frame);
    assert_eq!(
        encap(&mut tx, &mut p, &OuterPolicy::default()),
        Err(DropReason::EspSeqExhausted)
    );
    assert_eq!(p.data(), &frame[..]);
    assert_eq!(tx.counters().errors.get(), 1);
}

#[test]
fn lifetimes_soft_once_then_hard_drop() {
    let cfg = SaConfig {
        lifetime: Lifetime {
            soft_packets: Some(2),
            hard_packets: Some(3),
            ..Lifetime::default()
        },
        ..gcm_cfg(mode(1))
    };
    let (mut tx, mut rx) = pair(&cfg);
    let mut soft = vec![];
    let mut wires = vec![];
    for _ in 0..3 {
        let mut p = HeapPacket::from_frame(&ipv4(17, 0, true, &[0; 4]));
        soft.push(
            encap(&mut tx, &mut p, &OuterPolicy::default())
                .unwrap()
                .soft_expired,
        );
        wires.push(p.to_vec());
    }
    assert_eq!(soft, [false, true, false]);
    let mut p = HeapPacket::from_frame(&ipv4(17, 0, true, &[0; 4]));
    assert_eq!(
        encap(&mut tx, &mut p, &OuterPolicy::default()),
        Err(DropReason::EspSaExpired)
    );
    let got: Vec<_> = wires
        .iter()
        .map(|w| decap(&mut rx, &mut HeapPacket::from_frame(w)).map(|d| d.soft_expired))
        .collect();
    assert_eq!(got, [Ok(false), Ok(true), Ok(false)]);
    let (mut tx2, _) = pair(&gcm_cfg(mode(1)));
    tx2.set_next_seq_out(4);
    let mut p = HeapPacket::from_frame(&ipv4(17, 0, true, &[0; 4]));
    encap(&mut tx2, &mut p, &OuterPolicy::default()).unwrap();
    assert_eq!(decap(&mut rx, &mut p), Err(DropReason::EspSaExpired));
}

#[test]
fn room_is_checked_before_anything_changes() {
    for tunnel in 0..3 {
        let (mut tx, _) = pair(&SaConfig {
            natt: Some(NatT::default()),
            ..SaConfig::new(
                1,
                mode(tunnel),
                Suite::AesCbc(AesKeyLen::Aes256, Integ::HmacSha512_256),
            )
        });
        let frame = ipv6(17, 0, true, &[9; 40]);
        let mut p = HeapPacket::with_room(&frame, 20, 128);
        assert_eq!(
            encap(&mut tx, &mut p, &OuterPolicy::default()),
            Err(DropReason::NoHeadroom)
        );
        let mut p = HeapPacket::with_room(&frame, 128, 20);
        assert_eq!(
            encap(&mut tx, &mut p, &OuterPolicy::default()),
            Err(DropReason::NoTailroom)
        );
        assert_eq!(p.data(), &frame[..]);
        assert_eq!(tx.last_seq_out(), 0);
        let mut p = HeapPacket::with_room(&frame, 128, 128);
        assert_eq!(
            encap(&mut tx, &mut p, &OuterPolicy::default()).unwrap().seq,
            1
        );
    }
}

#[test]
fn natt_keepalive_and_ike_are_not_esp() {
    let (_, mut rx) = pair(&SaConfig {
        natt: Some(NatT::default()),
        ..gcm_cfg(mode(1))
    });
    let udp = |payload: &[u8]| {
        let mut u = vec![0x11, 0x94, 0x11, 0x94, 0, 0, 0, 0];
        u[4..6].copy_from_slice(&((payload.len() + 8) as u16).to_be_bytes());
        u.extend_from_slice(payload);
        ipv4(ipproto::UDP, 0, false, &u)
    };
    for payload in [
        &[0xffu8][..],
        &[0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8][..],
        &[],
    ] {
        let mut p = HeapPacket::from_frame(&udp(payload));
        assert_eq!(decap(&mut rx, &mut p), Err(DropReason::NattBadHeader));
    }
}

#[test]
fn transport_mode_v4_with_options_and_v6_with_extension_headers() {
    // IPv4 with a 4-octet option: the header moves intact.
    let mut v4 = ipv4(6, 0, true, &[7; 21]);
    v4[0] = 0x46;
    v4.splice(20..20, [1u8, 1, 1, 0]);
    let tl = v4.len() as u16;
    v4[2..4].copy_from_slice(&tl.to_be_bytes());
    Ipv4Packet::new_unchecked(&mut v4[..]).fill_checksum();
    let v6 = ipv6(6, 0, true, &[8; 21]);
    for (frame, esp_at) in [(v4, 24usize), (v6, 48)] {
        let (mut tx, mut rx) = pair(&gcm_cfg(Mode::Transport));
        let mut p = HeapPacket::from_frame(&frame);
        encap(&mut tx, &mut p, &OuterPolicy::default()).unwrap();
        assert_eq!(&p.data()[esp_at..esp_at + 4], &0x0102_0304u32.to_be_bytes());
        assert_eq!(
            &p.data()[..esp_at.min(20)],
            {
                let mut h = frame[..esp_at.min(20)].to_vec();
                if frame[0] >> 4 == 4 {
                    h[2..4].copy_from_slice(&(p.len() as u16).to_be_bytes());
                    h[9] = ipproto::ESP;
                    h[10..12].copy_from_slice(&p.data()[10..12]);
                } else {
                    h[4..6].copy_from_slice(&((p.len() - 40) as u16).to_be_bytes());
                }
                h
            }
            .as_slice()
        );
        let d = decap(&mut rx, &mut p).unwrap();
        assert_eq!(p.data(), &frame[..]);
        assert_eq!(d.next_header, 6);
    }
}
