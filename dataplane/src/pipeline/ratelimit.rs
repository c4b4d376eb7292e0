//! Small per-worker limiters that keep the slow paths slow: ICMP errors (token bucket over
//! the TSC) and requests to the control thread — neighbor resolutions and SA acquires — asked
//! once per subject and interval, not once per packet.

use crate::tables::iface::IfIndex;
use std::net::IpAddr;

/// A token bucket clocked by TSC cycles, in its GCRA form: one "theoretical arrival time"
/// instead of a token count, so `allow` is a compare and an add.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    /// Cycles per token (`u64::MAX`: never allow).
    period: u64,
    /// How far ahead of `now` the arrival time may run: (burst - 1) periods.
    tolerance: u64,
    /// Theoretical arrival time of the next conforming event.
    tat: u64,
}

impl RateLimiter {
    /// `per_sec` tokens per second (0 = never allow), bursts of up to `burst`.
    pub fn new(per_sec: u32, burst: u32, tsc_hz: u64) -> Self {
        let period = if per_sec == 0 {
            u64::MAX
        } else {
            (tsc_hz / per_sec as u64).max(1)
        };
        let tolerance = period.saturating_mul(burst.max(1) as u64 - 1);
        RateLimiter {
            period,
            tolerance,
            tat: 0,
        }
    }

    /// Take one token at time `now`.
    #[inline]
    pub fn allow(&mut self, now: u64) -> bool {
        if self.period == u64::MAX {
            return false;
        }
        let tat = self.tat.max(now);
        if tat - now > self.tolerance {
            return false;
        }
        self.tat = tat.saturating_add(self.period);
        true
    }
}

const FILTER_SLOTS: usize = 32;

/// What a request to the control thread is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Subject {
    Empty,
    Neighbor(IfIndex, IpAddr),
    /// A protect policy without an outbound SA (an IKE acquire).
    Acquire(u32),
}

/// Remembers recent requests so a stream to an unresolved neighbor, or through a protect
/// policy that has no SA yet, produces one event per interval instead of one per packet.
#[derive(Clone, Debug)]
pub struct ResolveFilter {
    slots: [(Subject, u64); FILTER_SLOTS],
    interval: u64,
}

impl ResolveFilter {
    /// Ask again for the same neighbor after `interval_cycles`.
    pub fn new(interval_cycles: u64) -> Self {
        ResolveFilter {
            slots: [(Subject::Empty, 0); FILTER_SLOTS],
            interval: interval_cycles,
        }
    }

    /// True when a request for (`ifindex`, `addr`) should be sent now.
    #[inline]
    pub fn should_ask(&mut self, ifindex: IfIndex, addr: IpAddr, now: u64) -> bool {
        let h = match addr {
            IpAddr::V4(a) => u32::from(a) as u64,
            IpAddr::V6(a) => {
                let v = u128::from(a);
                (v as u64) ^ ((v >> 64) as u64)
            }
        };
        self.ask(h ^ ifindex as u64, Subject::Neighbor(ifindex, addr), now)
    }

    /// True when an acquire for protect policy `policy` should be sent now.
    #[inline]
    pub fn should_acquire(&mut self, policy: u32, now: u64) -> bool {
        self.ask(!(policy as u64), Subject::Acquire(policy), now)
    }

    #[inline]
    fn ask(&mut self, h: u64, subject: Subject, now: u64) -> bool {
        let h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let slot = &mut self.slots[(h >> 59) as usize % FILTER_SLOTS];
        if slot.0 == subject && now.wrapping_sub(slot.1) < self.interval {
            return false;
        }
        *slot = (subject, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let hz = 1_000_000;
        let mut r = RateLimiter::new(10, 3, hz); // a token every 100k cycles
        let t0 = 10_000_000;
        let first: Vec<bool> = (0..5).map(|_| r.allow(t0)).collect();
        assert_eq!(first.iter().filter(|&&a| a).count(), 3, "{first:?}");
        assert!(!r.allow(t0 + 50_000));
        assert!(r.allow(t0 + 100_000));
        assert!(!r.allow(t0 + 100_001));
        // Over one second at most rate + burst.
        let mut allowed = 0;
        for k in 0..10_000u64 {
            if r.allow(t0 + 200_000 + k * 100) {
                allowed += 1;
            }
        }
        assert!((9..=13).contains(&allowed), "{allowed}");
        let mut never = RateLimiter::new(0, 5, hz);
        assert!(!never.allow(t0));
    }

    #[test]
    fn resolve_filter_asks_once_per_interval() {
        let mut f = ResolveFilter::new(1000);
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        assert!(f.should_ask(1, a, 5000));
        assert!(!f.should_ask(1, a, 5500));
        assert!(
            f.should_ask(2, a, 5500),
            "another interface is another neighbor"
        );
        assert!(f.should_ask(1, a, 6001));
        assert!(f.should_acquire(3, 6001));
        assert!(
            !f.should_acquire(3, 6500),
            "one acquire per policy and interval"
        );
        assert!(f.should_acquire(4, 6500));
        assert!(f.should_acquire(3, 7002));
    }
}
