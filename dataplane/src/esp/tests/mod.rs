//! ESP tests across the module, with the helpers they share: suites, keys, SA pairs and
//! IPv4/IPv6 packet builders.
//!
//! - `vectors`: the published vectors (draft-mcgrew-gcm-test-01, RFC 7634) decrypted and
//!   re-encrypted byte for byte.
//! - `round_trip`: property tests over every suite, both modes, IPv4/IPv6, NAT-T and ESN,
//!   with tampering, truncation and random input.
//! - `errors`: directed cases: ESN boundary, replay, padding, next header, SPI, ECN, DF,
//!   sequence exhaustion, lifetimes, room, NAT-T non-ESP, transport-mode headers.

mod errors;
mod round_trip;
mod vectors;

use super::*;
use crate::wire::ipproto;
use crate::wire::ipv4::Ipv4Repr;
use crate::wire::ipv6::Ipv6Repr;
use std::net::{Ipv4Addr, Ipv6Addr};

pub(super) fn all_suites() -> Vec<Suite> {
    use AesKeyLen::*;
    use Integ::*;
    let mut v = vec![];
    for k in [Aes128, Aes192, Aes256] {
        v.push(Suite::AesGcm(k));
        v.push(Suite::AesGmac(k));
        for i in [HmacSha1_96, HmacSha256_128, HmacSha384_192, HmacSha512_256] {
            v.push(Suite::AesCbc(k, i));
        }
    }
    v.push(Suite::ChaCha20Poly1305);
    for i in [HmacSha1_96, HmacSha256_128, HmacSha384_192, HmacSha512_256] {
        v.push(Suite::Null(i));
    }
    v
}

pub(super) fn keys(s: Suite, seed: u8) -> (Vec<u8>, Vec<u8>) {
    let e = (0..s.enc_key_len())
        .map(|i| seed ^ (i as u8).wrapping_mul(7))
        .collect();
    let a = (0..s.auth_key_len())
        .map(|i| seed.wrapping_add((i as u8).wrapping_mul(13)))
        .collect();
    (e, a)
}

/// An outbound and an inbound SA with the same configuration and keys.
pub(super) fn pair(cfg: &SaConfig) -> (Sa, Sa) {
    let (e, a) = keys(cfg.suite, 0x5a);
    (Sa::new(cfg, &e, &a).unwrap(), Sa::new(cfg, &e, &a).unwrap())
}

pub(super) const V4_A: [u8; 4] = [192, 0, 2, 1];
pub(super) const V4_B: [u8; 4] = [198, 51, 100, 7];
pub(super) const V6_A: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub(super) const V6_B: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2];

pub(super) fn ipv4(proto: u8, tos: u8, df: bool, payload: &[u8]) -> Vec<u8> {
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

pub(super) fn ipv6(nh: u8, tc: u8, hbh: bool, payload: &[u8]) -> Vec<u8> {
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

pub(super) fn mode(tunnel: u8) -> Mode {
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
pub(super) fn gcm_cfg(m: Mode) -> SaConfig {
    SaConfig::new(0x0102_0304, m, Suite::AesGcm(AesKeyLen::Aes128))
}
