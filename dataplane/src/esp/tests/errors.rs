//! Directed cases: ESN across 2^32 for every suite, late and duplicate packets, padding and
//! next-header checks after authentication, wrong SPI, ECN (RFC 6040), outer DF and ident,
//! sequence exhaustion, lifetimes, headroom/tailroom, NAT-T keepalive/IKE, transport-mode
//! headers with IPv4 options and IPv6 extension headers.

use super::*;
use crate::outer::{ecn, OuterPolicy};
use crate::packet::{HeapPacket, Packet};
use crate::stats::DropReason;
use crate::wire::{Ipv4Packet, Ipv6Packet};

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
    let at = b.len();
    b.resize(at + s.iv_len(), 0);
    sa.crypto().write_iv(seq as u64, &mut b[at..]);
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
