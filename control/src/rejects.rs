//! Rate-limited log of rejected IPsec packets, in the reference products' words ("No Inbound SA
//! Found.", "Authentication failure. Possibly mis-matching keys.", ...).
//!
//! Workers never log: they count each drop under its reason and note the SPI and peer of the
//! last one (`WorkerCounters::last_detail`). Once a second the control thread compares the
//! counters with what it saw before and writes at most one line per reason, with the number of
//! packets since the previous line for that reason and the last SPI/peer. While a reason keeps
//! firing, its interval doubles up to a minute, so a flood costs a line a minute, not a line a
//! packet; after a quiet interval it starts again at a second.

use dataplane::stats::{split_reject_detail, DropReason, WorkerCounters};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// The reasons logged: every IPsec reject (SmartEdge's Table 7 and ours), not the ones that
/// are normal operation (NAT-T keepalives) or configured on purpose (discard policies).
pub const LOGGED: &[DropReason] = &[
    DropReason::EspNoSa,
    DropReason::EspAuthFailed,
    DropReason::EspReplayLate,
    DropReason::EspReplayDuplicate,
    DropReason::EspModeMismatch,
    DropReason::EspBadNextHeader,
    DropReason::EspSaExpired,
    DropReason::EspPolicyMismatch,
    DropReason::EspBadPadding,
    DropReason::EspMalformed,
    DropReason::EspSeqExhausted,
    DropReason::EspNoOutboundSa,
    DropReason::SpdUnprotected,
    DropReason::NattBadHeader,
];

const FIRST_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(60);

/// One line to log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectLine {
    pub reason: DropReason,
    /// Packets since the previous line for this reason.
    pub count: u64,
    /// SPI and IPv4 peer of the most recent one, when noted.
    pub spi: Option<u32>,
    pub peer: Option<Ipv4Addr>,
}

impl RejectLine {
    /// Information level for what the reference calls information logs (no SA, replay);
    /// warnings for the rest (keys, modes, selectors, lifetimes).
    pub fn is_info(&self) -> bool {
        matches!(
            self.reason,
            DropReason::EspNoSa | DropReason::EspReplayLate | DropReason::EspReplayDuplicate
        )
    }

    /// The log message; `sa_name` names the SA an SPI belongs to, if any.
    pub fn message(&self, sa_name: impl Fn(u32) -> Option<String>) -> String {
        let mut m = format!(
            "ESP packet rejected: {} count={}",
            self.reason.text(),
            self.count
        );
        if let Some(spi) = self.spi.filter(|&s| s != 0) {
            m.push_str(&format!(" spi=0x{spi:08x}({spi})"));
            if let Some(n) = sa_name(spi) {
                m.push_str(&format!(" sa={n}"));
            }
        }
        if let Some(p) = self.peer {
            m.push_str(&format!(" peer={p}"));
        }
        m.push_str(&format!(" reason={}", self.reason.name()));
        m
    }
}

#[derive(Clone, Copy, Debug)]
struct PerReason {
    /// Total (over workers) at the last tick.
    seen: u64,
    /// Counted since the last line.
    pending: u64,
    next_ok: Option<Instant>,
    interval: Duration,
}

/// The control thread's reject-log state.
#[derive(Debug)]
pub struct RejectLog {
    per: Vec<PerReason>,
}

impl Default for RejectLog {
    fn default() -> Self {
        RejectLog {
            per: vec![
                PerReason {
                    seen: 0,
                    pending: 0,
                    next_ok: None,
                    interval: FIRST_INTERVAL,
                };
                LOGGED.len()
            ],
        }
    }
}

impl RejectLog {
    /// Compare the workers' counters with the last tick; the lines due now.
    pub fn tick<'a>(
        &mut self,
        now: Instant,
        workers: impl Iterator<Item = &'a WorkerCounters> + Clone,
    ) -> Vec<RejectLine> {
        let mut out = Vec::new();
        for (k, &r) in LOGGED.iter().enumerate() {
            let total: u64 = workers.clone().map(|w| w.drops[r as usize].get()).sum();
            let st = &mut self.per[k];
            let delta = total.wrapping_sub(st.seen);
            st.seen = total;
            if delta == 0 {
                // Quiet for a whole interval: the next burst is reported at once again.
                if st.pending == 0 && !matches!(st.next_ok, Some(t) if now < t) {
                    st.interval = FIRST_INTERVAL;
                    st.next_ok = None;
                }
                if st.pending == 0 {
                    continue;
                }
            }
            st.pending += delta;
            if st.next_ok.is_some_and(|t| now < t) {
                continue;
            }
            // The most recent detail: any worker's (they are all recent enough for a hint).
            let detail = workers
                .clone()
                .map(|w| w.last_detail[r as usize].get())
                .find(|&d| d != 0)
                .and_then(split_reject_detail);
            out.push(RejectLine {
                reason: r,
                count: st.pending,
                spi: detail.map(|d| d.0),
                peer: detail.and_then(|d| d.1),
            });
            st.pending = 0;
            st.next_ok = Some(now + st.interval);
            st.interval = (st.interval * 2).min(MAX_INTERVAL);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataplane::stats::reject_detail;

    #[test]
    fn one_line_per_reason_with_counts_and_backoff() {
        let w = WorkerCounters::default();
        let mut log = RejectLog::default();
        let t0 = Instant::now();
        let s = |n: u64| Duration::from_secs(n);
        assert!(log.tick(t0, std::iter::once(&w)).is_empty());

        for _ in 0..5 {
            w.drop_noted(
                DropReason::EspNoSa,
                reject_detail(0x2001, u32::from(Ipv4Addr::new(192, 0, 2, 1))),
            );
        }
        w.drop(DropReason::EspAuthFailed);
        let lines = log.tick(t0 + s(1), std::iter::once(&w));
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0].reason, DropReason::EspNoSa);
        assert_eq!(lines[0].count, 5);
        assert_eq!(lines[0].spi, Some(0x2001));
        assert_eq!(lines[0].peer, Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert!(lines[0].is_info());
        let m = lines[0].message(|spi| (spi == 0x2001).then(|| "in-a".to_string()));
        assert_eq!(
            m,
            "ESP packet rejected: No Inbound SA Found. count=5 spi=0x00002001(8193) sa=in-a peer=192.0.2.1 reason=esp-no-sa"
        );
        assert_eq!(lines[1].count, 1);
        assert!(lines[1]
            .message(|_| None)
            .contains("Authentication failure. Possibly mis-matching keys."));

        // Still firing: held back for the interval (1 s after the first line), then reported
        // with everything counted meanwhile; the interval doubles.
        w.drop(DropReason::EspNoSa);
        assert!(log
            .tick(t0 + s(1) + Duration::from_millis(500), std::iter::once(&w))
            .is_empty());
        w.drop(DropReason::EspNoSa);
        let l = log.tick(t0 + s(2), std::iter::once(&w));
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].count, 2);
        w.drop(DropReason::EspNoSa);
        assert!(
            log.tick(t0 + s(3), std::iter::once(&w)).is_empty(),
            "2 s interval now"
        );
        let l = log.tick(t0 + s(4), std::iter::once(&w));
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].count, 1);

        // Quiet past the interval: the next drop is reported at the next tick.
        assert!(log.tick(t0 + s(20), std::iter::once(&w)).is_empty());
        w.drop(DropReason::EspNoSa);
        assert_eq!(log.tick(t0 + s(21), std::iter::once(&w)).len(), 1);

        // Reasons that are not rejects are never logged.
        w.drop(DropReason::NattKeepalive);
        w.drop(DropReason::TtlExpired);
        assert!(log.tick(t0 + s(100), std::iter::once(&w)).is_empty());
    }
}
