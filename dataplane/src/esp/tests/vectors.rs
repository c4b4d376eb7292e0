//! The published ESP vectors (draft-mcgrew-gcm-test-01 AES-GCM/GMAC, RFC 7634 ChaCha20-
//! Poly1305): each opens to its published plaintext, is reproduced byte for byte from it with
//! the published sequence number and IV, and refuses any flipped bit.

use super::super::crypto::MAX_IV_LEN;
use super::super::encap::{encap_esp_with_iv, encap_with_iv};
use super::super::*;
use crate::outer::OuterPolicy;
use crate::packet::{HeapPacket, Packet};
use crate::stats::DropReason;
use serde_json::Value;
use std::net::Ipv4Addr;

const VECTORS: &str = include_str!("../../../tests/data/esp_vectors.json");

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

#[test]
fn published_vector_fields_agree_with_each_other() {
    let all = vectors();
    let count = |f: &dyn Fn(&Vector) -> bool| all.iter().filter(|t| f(t)).count();
    assert_eq!(count(&|t| t.v["source"] == "draft-mcgrew-gcm-test-01"), 17);
    assert_eq!(count(&|t| t.v["source"] == "RFC 7634"), 1);
    assert_eq!(count(&|t| t.esn), 11, "ESN cases");
    assert_eq!(count(&|t| matches!(t.suite, Suite::AesGmac(_))), 1);
    for k in [AesKeyLen::Aes128, AesKeyLen::Aes192, AesKeyLen::Aes256] {
        assert!(count(&|t| t.suite == Suite::AesGcm(k)) > 0, "{k:?}");
    }
    for t in &all {
        assert_eq!(t.v["verified"], true, "{}", t.name);
        let mut nonce = field(&t.v, "salt");
        nonce.extend(field(&t.v, "iv"));
        assert_eq!(field(&t.v, "nonce"), nonce, "{}", t.name);
        let (spi, seq, iv) = (field(&t.v, "spi"), field(&t.v, "seq"), field(&t.v, "iv"));
        let mut aad = spi.clone();
        if t.esn {
            aad.extend(field(&t.v, "esn_high"));
        }
        aad.extend(&seq);
        if matches!(t.suite, Suite::AesGmac(_)) {
            aad.extend(&iv);
            aad.extend(&t.clear);
            assert!(field(&t.v, "ciphertext").is_empty(), "{}", t.name);
        } else {
            assert_eq!(field(&t.v, "plaintext"), t.clear, "{}", t.name);
        }
        assert_eq!(field(&t.v, "aad"), aad, "{}", t.name);
        // SPI || seq || IV || ciphertext || tag (GMAC: the payload travels in the clear).
        let mut esp = [spi, seq, iv].concat();
        if matches!(t.suite, Suite::AesGmac(_)) {
            esp.extend(&t.clear);
        } else {
            esp.extend(field(&t.v, "ciphertext"));
        }
        esp.extend(field(&t.v, "tag"));
        let esp_at = if t.v["source"] == "RFC 7634" { 20 } else { 0 };
        assert_eq!(t.esp_packet[esp_at..], esp[..], "{}", t.name);
    }
}
