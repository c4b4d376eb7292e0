//! Inbound anti-replay window of one SA (RFC 4303 §3.4.3 and Appendix A2).
//!
//! The window is a ring bitmap of `size` bits (64..=4096, a multiple of 64) over the sequence
//! numbers `[top - size + 1, top]`, where `top` is the highest sequence number that has passed
//! integrity verification. Processing an inbound packet is two steps:
//!
//! 1. [`ReplayWindow::check`] before the ICV is verified: rejects late and duplicate packets
//!    cheaply and, with Extended Sequence Numbers, infers the 64-bit sequence number from the
//!    32 bits on the wire (Appendix A2.2). The inferred number goes into the ICV computation.
//! 2. [`ReplayWindow::update`] only after the ICV verified, so a forged packet can never move
//!    the window.
//!
//! Sequence number 0 is never sent (the first packet of an SA carries 1), so it is refused as
//! late. Without ESN the window works on the 32-bit number alone.
//!
//! Size 0 turns anti-replay off (RFC 4303 §3.4.3: no inbound checks on the sequence number);
//! only the highest number is tracked, so that ESN can still infer the high half: the one that
//! puts the number nearest the highest seen (a notional window of 2^31).

use crate::stats::DropReason;

/// Smallest window size in bits.
pub const MIN_WINDOW: u32 = 64;
/// Largest window size in bits.
pub const MAX_WINDOW: u32 = 4096;
/// Window size used when the configuration does not say: 64, RFC 4303's recommended minimum
/// and the reference products' default. A high-rate receiver that reorders more (several RX
/// queues feeding one SA through the hand-off ring) should configure a larger one.
pub const DEFAULT_WINDOW: u32 = 64;

/// The notional window ESN inference uses when anti-replay is off.
const OFF_INFERENCE_WINDOW: u32 = 1 << 31;

/// Anti-replay state of one inbound SA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Ring bitmap: the bit of sequence number `s` is bit `s % size`.
    bits: Box<[u64]>,
    /// Window size in bits (0: anti-replay off).
    size: u32,
    /// Highest authenticated sequence number (0: nothing received yet).
    top: u64,
    /// Extended Sequence Numbers in use.
    esn: bool,
}

/// A window size other than 0 (off) or a multiple of 64 in 64..=4096.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadWindowSize(pub u32);

impl std::fmt::Display for BadWindowSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "replay window size {} is neither 0 (off) nor a multiple of 64 in {MIN_WINDOW}..={MAX_WINDOW}",
            self.0
        )
    }
}

impl std::error::Error for BadWindowSize {}

impl ReplayWindow {
    /// A fresh window of `size` bits (allocated here, once per SA); 0 turns anti-replay off.
    pub fn new(size: u32, esn: bool) -> Result<Self, BadWindowSize> {
        if size != 0 && (!(MIN_WINDOW..=MAX_WINDOW).contains(&size) || size & 63 != 0) {
            return Err(BadWindowSize(size));
        }
        Ok(ReplayWindow {
            bits: vec![0u64; (size / 64) as usize].into_boxed_slice(),
            size,
            top: 0,
            esn,
        })
    }

    /// Window size in bits (0: anti-replay off).
    #[inline]
    pub fn size(&self) -> u32 {
        self.size
    }

    /// True when Extended Sequence Numbers are in use.
    #[inline]
    pub fn esn(&self) -> bool {
        self.esn
    }

    /// Highest authenticated sequence number so far (0 before the first packet).
    #[inline]
    pub fn top(&self) -> u64 {
        self.top
    }

    /// Check the sequence number of an arriving packet before its ICV is verified. Returns the
    /// full sequence number (with ESN, the inferred high 32 bits joined to `seq_low`).
    #[inline]
    pub fn check(&self, seq_low: u32) -> Result<u64, DropReason> {
        let seq = if self.esn {
            self.infer(seq_low)?
        } else {
            seq_low as u64
        };
        if self.size == 0 {
            return Ok(seq);
        }
        self.check_full(seq)?;
        Ok(seq)
    }

    /// RFC 4303 Appendix A2.2: choose the high-order 32 bits that place `seq_low` in or
    /// nearest above the window. Fails (as late) when the answer would fall outside 0..2^64.
    #[inline]
    fn infer(&self, seq_low: u32) -> Result<u64, DropReason> {
        let w = match self.size {
            0 => OFF_INFERENCE_WINDOW,
            w => w, // window size W (<= 4096 < 2^32)
        };
        let tl = self.top as u32;
        let th = (self.top >> 32) as u32;
        let bottom = tl.wrapping_sub(w - 1); // Tl - W + 1 (mod 2^32)
        let seqh = if tl >= w - 1 {
            // Case A: the window lies within one epoch of 2^32 numbers.
            if seq_low >= bottom {
                Some(th)
            } else {
                th.checked_add(1)
            }
        } else {
            // Case B: the window spans the boundary into the previous epoch.
            if seq_low >= bottom {
                th.checked_sub(1)
            } else {
                Some(th)
            }
        };
        match seqh {
            Some(h) => Ok(((h as u64) << 32) | seq_low as u64),
            // Without anti-replay nothing is late: stay in the current epoch.
            None if self.size == 0 => Ok(((th as u64) << 32) | seq_low as u64),
            None => Err(DropReason::EspReplayLate),
        }
    }

    /// The window test on a full sequence number.
    #[inline]
    fn check_full(&self, seq: u64) -> Result<(), DropReason> {
        if seq == 0 {
            return Err(DropReason::EspReplayLate);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= self.size as u64 {
            return Err(DropReason::EspReplayLate);
        }
        if self.bit(seq) {
            return Err(DropReason::EspReplayDuplicate);
        }
        Ok(())
    }

    /// Record `seq` as received. Call only after the packet's ICV verified (and with the
    /// number [`check`](Self::check) returned). A number that has meanwhile left the window is
    /// ignored.
    #[inline]
    pub fn update(&mut self, seq: u64) {
        if self.size == 0 {
            self.top = self.top.max(seq);
            return;
        }
        if seq > self.top {
            let advance = seq - self.top;
            if advance >= self.size as u64 {
                self.bits.fill(0);
            } else {
                // Clear the bits of top+1 ..= seq, which still hold numbers a window ago.
                self.clear_range(self.top.wrapping_add(1), advance as u32);
            }
            self.top = seq;
            self.set_bit(seq);
        } else if self.top - seq < self.size as u64 {
            self.set_bit(seq);
        }
    }

    /// Forget everything and take `top` as the highest number received (its bit is not set).
    /// For tests and for installing an SA that continues a known sequence.
    pub fn reset_to(&mut self, top: u64) {
        self.bits.fill(0);
        self.top = top;
    }

    #[inline]
    fn pos(&self, seq: u64) -> (usize, u32) {
        let p = (seq % self.size as u64) as u32;
        ((p / 64) as usize, p % 64)
    }

    #[inline]
    fn bit(&self, seq: u64) -> bool {
        let (w, b) = self.pos(seq);
        self.bits.get(w).is_some_and(|x| x & (1u64 << b) != 0)
    }

    #[inline]
    fn set_bit(&mut self, seq: u64) {
        let (w, b) = self.pos(seq);
        if let Some(x) = self.bits.get_mut(w) {
            *x |= 1u64 << b;
        }
    }

    /// Clear the bits of the `n` (< size) consecutive numbers starting at `from`, a word at a
    /// time.
    fn clear_range(&mut self, from: u64, mut n: u32) {
        let mut p = (from % self.size as u64) as u32;
        while n > 0 {
            let (w, b) = ((p / 64) as usize, p % 64);
            let take = n.min(64 - b);
            let mask = if take == 64 {
                u64::MAX
            } else {
                ((1u64 << take) - 1) << b
            };
            if let Some(x) = self.bits.get_mut(w) {
                *x &= !mask;
            }
            n -= take;
            p += take;
            if p >= self.size {
                p -= self.size;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// The reference: every accepted number, and the highest.
    struct Model {
        seen: BTreeSet<u64>,
        top: u64,
        size: u64,
    }

    impl Model {
        fn new(size: u32) -> Self {
            Model {
                seen: BTreeSet::new(),
                top: 0,
                size: size as u64,
            }
        }
        fn check(&self, seq: u64) -> Result<(), DropReason> {
            if seq == 0 || (seq <= self.top && self.top - seq >= self.size) {
                Err(DropReason::EspReplayLate)
            } else if self.seen.contains(&seq) {
                Err(DropReason::EspReplayDuplicate)
            } else {
                Ok(())
            }
        }
        fn update(&mut self, seq: u64) {
            self.seen.insert(seq);
            self.top = self.top.max(seq);
        }
    }

    #[test]
    fn sizes_are_validated() {
        for bad in [32, 63, 65, 100, 4160, 8192] {
            assert_eq!(ReplayWindow::new(bad, false), Err(BadWindowSize(bad)));
        }
        for good in [64, 128, 192, 1024, 4096] {
            assert_eq!(ReplayWindow::new(good, true).unwrap().size(), good);
        }
    }

    #[test]
    fn size_0_turns_anti_replay_off_and_esn_still_infers() {
        let mut w = ReplayWindow::new(0, false).unwrap();
        assert_eq!(w.size(), 0);
        for s in [5, 5, 1, 0, 4000, 3, 4000] {
            assert_eq!(w.check(s), Ok(s as u64));
            w.update(s as u64);
        }
        assert_eq!(w.top(), 4000);
        let mut w = ReplayWindow::new(0, true).unwrap();
        w.reset_to(0xffff_fff0);
        for s in 0xffff_fff1u64..=0x1_0000_0010 {
            assert_eq!(w.check(s as u32), Ok(s));
            w.update(s);
        }
        // Old and repeated numbers pass; the high half is the nearest epoch's.
        assert_eq!(w.check(0xffff_fffa), Ok(0xffff_fffa));
        assert_eq!(w.check(0x5), Ok(0x1_0000_0005));
        assert_eq!(w.check(0x8000_0000), Ok(0x1_8000_0000));
        w.reset_to(10);
        assert_eq!(w.check(0xffff_fff0), Ok(0xffff_fff0));
    }

    #[test]
    fn basic_window() {
        let mut w = ReplayWindow::new(64, false).unwrap();
        assert_eq!(w.check(0), Err(DropReason::EspReplayLate));
        assert_eq!(w.check(1), Ok(1));
        w.update(1);
        assert_eq!(w.check(1), Err(DropReason::EspReplayDuplicate));
        assert_eq!(w.check(100), Ok(100));
        w.update(100);
        assert_eq!(w.check(36), Err(DropReason::EspReplayLate));
        assert_eq!(w.check(37), Ok(37));
        w.update(37);
        assert_eq!(w.check(37), Err(DropReason::EspReplayDuplicate));
        assert_eq!(w.check(u32::MAX), Ok(u32::MAX as u64));
        w.update(u32::MAX as u64);
        // Without ESN there is nothing after 2^32 - 1: small numbers are late.
        assert_eq!(w.check(5), Err(DropReason::EspReplayLate));
    }

    #[test]
    fn check_does_not_modify_and_update_without_check_is_safe() {
        let mut w = ReplayWindow::new(128, false).unwrap();
        for _ in 0..3 {
            assert_eq!(w.check(7), Ok(7));
        }
        w.update(7);
        w.update(7);
        w.update(1); // in window
        w.update(2000);
        w.update(3); // out of the window now: ignored
        assert_eq!(w.top(), 2000);
        assert_eq!(w.check(1999), Ok(1999));
        assert_eq!(w.check(2000), Err(DropReason::EspReplayDuplicate));
    }

    #[test]
    fn esn_inference_rfc4303_a2() {
        let mut w = ReplayWindow::new(64, true).unwrap();
        // Case A, well inside an epoch.
        w.reset_to((5u64 << 32) | 1000);
        assert_eq!(w.check(1001), Ok((5 << 32) | 1001));
        assert_eq!(w.check(937), Ok((5 << 32) | 937));
        // Below the window: taken as the next epoch (and will fail the ICV if it was not).
        assert_eq!(w.check(936), Ok((6 << 32) | 936));
        // Case A at the top of an epoch: small numbers belong to the next one.
        w.reset_to((5u64 << 32) | 0xffff_fff0);
        assert_eq!(w.check(3), Ok((6 << 32) | 3));
        assert_eq!(w.check(0xffff_ffb1), Ok((5 << 32) | 0xffff_ffb1));
        // Case B: the window reaches back into the previous epoch.
        w.reset_to((6u64 << 32) | 10);
        assert_eq!(w.check(0xffff_fff0), Ok((5 << 32) | 0xffff_fff0));
        assert_eq!(w.check(11), Ok((6 << 32) | 11));
        assert_eq!(w.check(0), Ok(6 << 32));
        // Case B in epoch 0: there is no previous epoch.
        w.reset_to(10);
        assert_eq!(w.check(0xffff_fff0), Err(DropReason::EspReplayLate));
        assert_eq!(w.check(0), Err(DropReason::EspReplayLate));
        // Case A in the last epoch: there is no next one.
        w.reset_to(u64::MAX - 10);
        assert_eq!(w.check(1), Err(DropReason::EspReplayLate));
        assert_eq!(w.check(u32::MAX), Ok(u64::MAX));
    }

    #[test]
    fn esn_wrap_keeps_duplicates_across_the_boundary() {
        let mut w = ReplayWindow::new(64, true).unwrap();
        w.reset_to(0xffff_fff0);
        for s in 0xffff_fff1u64..=0x1_0000_0010 {
            let got = w.check(s as u32).unwrap();
            assert_eq!(got, s);
            w.update(got);
        }
        assert_eq!(w.check(0xffff_fffa), Err(DropReason::EspReplayDuplicate));
        assert_eq!(w.check(0x5), Err(DropReason::EspReplayDuplicate));
        assert_eq!(w.check(0x11), Ok(0x1_0000_0011));
    }

    fn sizes() -> impl Strategy<Value = u32> {
        (1u32..=64).prop_map(|k| k * 64)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Without ESN the window agrees with the set model on every packet.
        #[test]
        fn matches_model(
            size in sizes(),
            start in prop_oneof![Just(0u64), 0u64..(u32::MAX as u64 - 20_000)],
            ops in proptest::collection::vec((-5000i64..5000, any::<bool>()), 1..400),
        ) {
            let mut w = ReplayWindow::new(size, false).unwrap();
            let mut m = Model::new(size);
            if start > 0 {
                w.update(start);
                m.update(start);
            }
            for (delta, authentic) in ops {
                let seq = (m.top as i64 + delta).clamp(0, u32::MAX as i64) as u64;
                let want = m.check(seq);
                let got = w.check(seq as u32);
                prop_assert_eq!(got.map(|_| ()), want, "seq {} top {}", seq, m.top);
                if want.is_ok() {
                    prop_assert_eq!(got, Ok(seq));
                    if authentic {
                        w.update(seq);
                        m.update(seq);
                    }
                }
                prop_assert_eq!(w.top(), m.top);
            }
        }

        /// With ESN, only the low 32 bits travel; the window accepts exactly what the model
        /// accepts (a mis-inferred number counts as an ICV failure, which never updates).
        #[test]
        fn esn_matches_model_across_the_boundary(
            size in sizes(),
            start in prop_oneof![
                (1u64 << 32) - 3000..(1u64 << 32) + 10,
                (7u64 << 32) - 3000..(7u64 << 32) + 10,
                1u64..5000,
            ],
            ops in proptest::collection::vec(-9000i64..6000, 1..400),
        ) {
            let mut w = ReplayWindow::new(size, true).unwrap();
            let mut m = Model::new(size);
            w.update(start);
            m.update(start);
            for delta in ops {
                let seq = (m.top as i64 + delta).max(0) as u64;
                let want = m.check(seq);
                let got = w.check(seq as u32);
                match want {
                    Ok(()) => {
                        prop_assert_eq!(got, Ok(seq), "seq {:#x} top {:#x}", seq, m.top);
                        w.update(seq);
                        m.update(seq);
                    }
                    Err(DropReason::EspReplayDuplicate) => {
                        prop_assert_eq!(got, Err(DropReason::EspReplayDuplicate));
                    }
                    Err(_) => {
                        // Late: refused, or inferred into another epoch (the ICV then fails).
                        prop_assert!(got != Ok(seq), "late {:#x} accepted", seq);
                    }
                }
                prop_assert_eq!(w.top(), m.top);
            }
        }
    }
}
