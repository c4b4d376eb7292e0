//! One Security Association: SPI, mode, crypto state, sequence numbers (outbound counter and
//! inbound replay window), optional NAT-T UDP encapsulation, lifetime limits and counters.
//!
//! An SA is owned by one worker (SA-worker affinity): every method that changes it takes
//! `&mut self`, and nothing is locked. Its counters live in an `Arc<SaCounters>` of
//! single-writer [`Counter`]s so the control thread can read them while the worker owns the SA.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::crypto::{KeyError, SaCrypto, Suite};
use super::replay::{BadWindowSize, ReplayWindow, DEFAULT_WINDOW};
use crate::outer_template::OuterTemplate;
use crate::stats::{Counter, DropReason};
use crate::wire::ipproto;

/// Default NAT-T port (RFC 3948).
pub const NATT_PORT: u16 = 4500;

/// ESP mode with, for tunnel mode, the outer addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Transport mode: ESP sits between the IP header and its payload.
    Transport,
    /// Tunnel mode over IPv4: outer source `local`, destination `remote` on output.
    Tunnel4 { local: Ipv4Addr, remote: Ipv4Addr },
    /// Tunnel mode over IPv6.
    Tunnel6 { local: Ipv6Addr, remote: Ipv6Addr },
}

impl Mode {
    /// True for either tunnel mode.
    #[inline]
    pub fn is_tunnel(&self) -> bool {
        !matches!(self, Mode::Transport)
    }
}

/// UDP encapsulation of ESP for NAT traversal (RFC 3948).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatT {
    /// Source port we send from.
    pub sport: u16,
    /// Destination port we send to (the peer's, possibly remapped by a NAT).
    pub dport: u16,
}

impl Default for NatT {
    fn default() -> Self {
        NatT {
            sport: NATT_PORT,
            dport: NATT_PORT,
        }
    }
}

/// Soft and hard lifetime limits in protected payload bytes and packets. `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lifetime {
    pub soft_bytes: Option<u64>,
    pub hard_bytes: Option<u64>,
    pub soft_packets: Option<u64>,
    pub hard_packets: Option<u64>,
}

/// Everything about an SA except its keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaConfig {
    pub spi: u32,
    pub mode: Mode,
    pub suite: Suite,
    /// Extended (64-bit) Sequence Numbers (RFC 4303 §2.2.1).
    pub esn: bool,
    /// Anti-replay window in bits (64..=4096, multiple of 64; 0 turns anti-replay off).
    pub replay_window: u32,
    /// UDP encapsulation (sent always when set; accepted on input either way).
    pub natt: Option<NatT>,
    pub lifetime: Lifetime,
    /// Sequence number of the first packet: sent first (outbound), or the lowest one the
    /// replay window expects (inbound: the window starts with `initial_seq - 1` as its top,
    /// nothing marked). 1 for every normal SA; higher only to continue a sequence another
    /// party started (a peer that resumed, interop and ESN tests). 1..=2^32-1 without ESN.
    pub initial_seq: u64,
}

impl SaConfig {
    /// A configuration with the defaults: no ESN, default window, no NAT-T, no lifetime.
    pub fn new(spi: u32, mode: Mode, suite: Suite) -> Self {
        SaConfig {
            spi,
            mode,
            suite,
            esn: false,
            replay_window: DEFAULT_WINDOW,
            natt: None,
            lifetime: Lifetime::default(),
            initial_seq: 1,
        }
    }
}

/// Why an SA could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaError {
    Key(KeyError),
    Window(BadWindowSize),
    /// `initial_seq` is 0, or above 2^32-1 without ESN.
    InitialSeq {
        seq: u64,
        esn: bool,
    },
}

impl std::fmt::Display for SaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SaError::Key(e) => e.fmt(f),
            SaError::Window(e) => e.fmt(f),
            SaError::InitialSeq { seq, esn: false } => write!(
                f,
                "initial sequence number {seq} is outside 1..=4294967295 (2^32-1; higher needs ESN)"
            ),
            SaError::InitialSeq { seq, esn: true } => {
                write!(f, "initial sequence number {seq} is outside 1..=2^64-1")
            }
        }
    }
}

impl std::error::Error for SaError {}

impl From<KeyError> for SaError {
    fn from(e: KeyError) -> Self {
        SaError::Key(e)
    }
}

impl From<BadWindowSize> for SaError {
    fn from(e: BadWindowSize) -> Self {
        SaError::Window(e)
    }
}

/// Per-SA counters: written by the owning worker only, readable from anywhere.
#[derive(Debug, Default)]
pub struct SaCounters {
    /// Packets decapsulated successfully.
    pub in_packets: Counter,
    /// Protected payload bytes decapsulated (inner packet or transport payload).
    pub in_bytes: Counter,
    /// Packets encapsulated.
    pub out_packets: Counter,
    /// Protected payload bytes encapsulated.
    pub out_bytes: Counter,
    /// Inbound ICV check failures.
    pub auth_failures: Counter,
    /// Inbound packets refused by the replay window (late or duplicate).
    pub replay_drops: Counter,
    /// Other drops on this SA (malformed, padding, mode, lifetime, sequence exhausted...).
    pub errors: Counter,
}

/// One Security Association.
#[derive(Debug)]
pub struct Sa {
    spi: u32,
    mode: Mode,
    esn: bool,
    natt: Option<NatT>,
    crypto: SaCrypto,
    replay: ReplayWindow,
    /// Last outbound sequence number used (0: none yet; the first packet carries 1).
    seq_out: u64,
    /// Identification of the next outer IPv4 header.
    ident: u16,
    /// The outer header's constant part (tunnel mode), built once here.
    outer: Option<OuterTemplate>,
    /// The owning worker's memo of the route to `remote` (tunnel mode): (table version,
    /// next-hop index). Refreshed when the worker runs a new table version.
    outer_nh: Option<(u64, u32)>,
    lifetime: Lifetime,
    used_bytes: u64,
    used_packets: u64,
    soft_fired: bool,
    /// Stopped by the control thread (hard lifetime in seconds): every packet is refused.
    expired: bool,
    /// The hard expiry was reported to the control thread (once per SA, not per packet).
    hard_reported: bool,
    counters: Arc<SaCounters>,
}

impl Sa {
    /// Create an SA: builds the key schedules and the replay window (the only allocations).
    pub fn new(cfg: &SaConfig, enc_key: &[u8], auth_key: &[u8]) -> Result<Self, SaError> {
        let limit = if cfg.esn { u64::MAX } else { u32::MAX as u64 };
        if cfg.initial_seq == 0 || cfg.initial_seq > limit {
            return Err(SaError::InitialSeq {
                seq: cfg.initial_seq,
                esn: cfg.esn,
            });
        }
        let mut replay = ReplayWindow::new(cfg.replay_window, cfg.esn)?;
        if cfg.initial_seq > 1 {
            replay.reset_to(cfg.initial_seq - 1);
        }
        let proto = if cfg.natt.is_some() {
            ipproto::UDP
        } else {
            ipproto::ESP
        };
        let outer = match cfg.mode {
            Mode::Tunnel4 { local, remote } => Some(OuterTemplate::v4(local, remote, proto)),
            Mode::Tunnel6 { local, remote } => Some(OuterTemplate::v6(local, remote, proto)),
            Mode::Transport => None,
        };
        Ok(Sa {
            spi: cfg.spi,
            mode: cfg.mode,
            esn: cfg.esn,
            natt: cfg.natt,
            crypto: SaCrypto::new(cfg.suite, enc_key, auth_key)?,
            replay,
            seq_out: cfg.initial_seq - 1,
            ident: (cfg.spi as u16) ^ ((cfg.spi >> 16) as u16),
            outer,
            outer_nh: None,
            lifetime: cfg.lifetime,
            used_bytes: 0,
            used_packets: 0,
            soft_fired: false,
            expired: false,
            hard_reported: false,
            counters: Arc::default(),
        })
    }

    #[inline]
    pub fn spi(&self) -> u32 {
        self.spi
    }
    #[inline]
    pub fn mode(&self) -> Mode {
        self.mode
    }
    #[inline]
    pub fn suite(&self) -> Suite {
        self.crypto.suite()
    }
    #[inline]
    pub fn esn(&self) -> bool {
        self.esn
    }
    #[inline]
    pub fn natt(&self) -> Option<NatT> {
        self.natt
    }
    #[inline]
    pub fn crypto(&self) -> &SaCrypto {
        &self.crypto
    }
    /// The inbound replay window.
    #[inline]
    pub fn replay(&self) -> &ReplayWindow {
        &self.replay
    }
    #[inline]
    pub(crate) fn replay_mut(&mut self) -> &mut ReplayWindow {
        &mut self.replay
    }
    /// The counters, shareable with the control thread.
    #[inline]
    pub fn counters(&self) -> &Arc<SaCounters> {
        &self.counters
    }
    /// Last outbound sequence number used (0 before the first packet).
    #[inline]
    pub fn last_seq_out(&self) -> u64 {
        self.seq_out
    }
    /// Protected payload bytes and packets charged against the lifetime so far.
    #[inline]
    pub fn lifetime_used(&self) -> (u64, u64) {
        (self.used_bytes, self.used_packets)
    }
    /// True once the hard lifetime is reached: every further packet is dropped.
    #[inline]
    pub fn hard_expired(&self) -> bool {
        self.expired
            || self
                .lifetime
                .hard_packets
                .is_some_and(|l| self.used_packets >= l)
            || self
                .lifetime
                .hard_bytes
                .is_some_and(|l| self.used_bytes >= l)
    }
    /// True once the soft lifetime has been crossed (rekey should be under way).
    #[inline]
    pub fn soft_expired(&self) -> bool {
        self.soft_fired
    }

    /// Stop the SA: the control thread enforces lifetimes in seconds (the dataplane has no
    /// wall clock per packet), and this is how its hard limit takes effect. The SA stays
    /// installed so later packets are counted as expired rather than as unknown.
    pub fn expire(&mut self) {
        self.expired = true;
    }

    /// True the first time it is called after the SA stopped (hard lifetime, sequence space
    /// exhausted): the worker tells the control thread once, not once per refused packet.
    #[inline]
    pub(crate) fn take_hard_report(&mut self) -> bool {
        let first = !self.hard_reported;
        self.hard_reported = true;
        first
    }

    /// Make `next` the sequence number of the next outbound packet (tests, and SAs that
    /// continue a known sequence).
    pub fn set_next_seq_out(&mut self, next: u64) {
        self.seq_out = next.saturating_sub(1);
    }

    /// Set the Identification of the next outer IPv4 header.
    pub fn set_next_ident(&mut self, ident: u16) {
        self.ident = ident;
    }

    /// The largest sequence number this SA may send: 2^32 - 1, or 2^64 - 1 with ESN.
    #[inline]
    fn seq_limit(&self) -> u64 {
        if self.esn {
            u64::MAX
        } else {
            u32::MAX as u64
        }
    }

    /// Fail when the next outbound packet would need a sequence number past the limit.
    #[inline]
    pub(crate) fn peek_seq_out(&self) -> Result<u64, DropReason> {
        if self.seq_out >= self.seq_limit() {
            return Err(DropReason::EspSeqExhausted);
        }
        Ok(self.seq_out + 1)
    }

    /// Take the next outbound sequence number (after `peek_seq_out` succeeded).
    #[inline]
    pub(crate) fn take_seq_out(&mut self) -> Result<u64, DropReason> {
        let s = self.peek_seq_out()?;
        self.seq_out = s;
        Ok(s)
    }

    /// The high half of `seq` when ESN is in use.
    #[inline]
    pub(crate) fn esn_high(&self, seq: u64) -> Option<u32> {
        self.esn.then_some((seq >> 32) as u32)
    }

    /// Identification for the next outer IPv4 header.
    #[inline]
    pub(crate) fn take_ident(&mut self) -> u16 {
        let i = self.ident;
        self.ident = i.wrapping_add(1);
        i
    }

    /// The outer header template (tunnel mode only).
    #[inline]
    pub(crate) fn outer_template(&self) -> Option<&OuterTemplate> {
        self.outer.as_ref()
    }

    /// The remembered next-hop index towards the tunnel peer, if it was looked up in table
    /// version `version` (a worker adopts a new table only with a new version number).
    #[inline]
    pub(crate) fn outer_nh(&self, version: u64) -> Option<u32> {
        match self.outer_nh {
            Some((v, nh)) if v == version => Some(nh),
            _ => None,
        }
    }

    /// Remember the next-hop index towards the tunnel peer in table version `version`.
    #[inline]
    pub(crate) fn set_outer_nh(&mut self, version: u64, nh: u32) {
        self.outer_nh = Some((version, nh));
    }

    /// Drop with `EspSaExpired` once the hard lifetime is reached.
    #[inline]
    pub(crate) fn check_hard(&self) -> Result<(), DropReason> {
        if self.hard_expired() {
            Err(DropReason::EspSaExpired)
        } else {
            Ok(())
        }
    }

    /// Charge one packet of `bytes` against the lifetime. True the first time the soft limit
    /// is crossed.
    #[inline]
    pub(crate) fn charge(&mut self, bytes: u64) -> bool {
        self.used_bytes = self.used_bytes.saturating_add(bytes);
        self.used_packets = self.used_packets.saturating_add(1);
        if self.soft_fired {
            return false;
        }
        let l = &self.lifetime;
        if l.soft_packets.is_some_and(|s| self.used_packets >= s)
            || l.soft_bytes.is_some_and(|s| self.used_bytes >= s)
        {
            self.soft_fired = true;
            return true;
        }
        false
    }

    /// Count a drop on this SA under its per-SA counter.
    #[inline]
    pub(crate) fn count_drop(&self, r: DropReason) -> DropReason {
        match r {
            DropReason::EspAuthFailed => self.counters.auth_failures.inc(),
            DropReason::EspReplayLate | DropReason::EspReplayDuplicate => {
                self.counters.replay_drops.inc()
            }
            _ => self.counters.errors.inc(),
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esp::crypto::AesKeyLen;

    fn sa(esn: bool, lifetime: Lifetime) -> Sa {
        let cfg = SaConfig {
            esn,
            lifetime,
            ..SaConfig::new(7, Mode::Transport, Suite::AesGcm(AesKeyLen::Aes128))
        };
        Sa::new(&cfg, &[1; 20], &[]).unwrap()
    }

    #[test]
    fn sequence_space_is_exhausted_exactly_at_the_limit() {
        let mut s = sa(false, Lifetime::default());
        assert_eq!(s.take_seq_out(), Ok(1));
        s.set_next_seq_out(u32::MAX as u64);
        assert_eq!(s.take_seq_out(), Ok(u32::MAX as u64));
        assert_eq!(s.take_seq_out(), Err(DropReason::EspSeqExhausted));
        assert_eq!(s.last_seq_out(), u32::MAX as u64);

        let mut s = sa(true, Lifetime::default());
        s.set_next_seq_out(u32::MAX as u64);
        assert_eq!(s.take_seq_out(), Ok(u32::MAX as u64));
        assert_eq!(s.take_seq_out(), Ok(1 << 32));
        s.set_next_seq_out(u64::MAX);
        assert_eq!(s.take_seq_out(), Ok(u64::MAX));
        assert_eq!(s.peek_seq_out(), Err(DropReason::EspSeqExhausted));
    }

    #[test]
    fn lifetime_soft_fires_once_and_hard_drops() {
        let mut s = sa(
            false,
            Lifetime {
                soft_packets: Some(2),
                hard_packets: Some(3),
                soft_bytes: None,
                hard_bytes: Some(1000),
            },
        );
        assert!(s.check_hard().is_ok());
        assert!(!s.charge(10));
        assert!(s.charge(10));
        assert!(s.soft_expired());
        assert!(s.check_hard().is_ok());
        assert!(!s.charge(10));
        assert_eq!(s.check_hard(), Err(DropReason::EspSaExpired));

        let mut s = sa(
            false,
            Lifetime {
                hard_bytes: Some(100),
                soft_bytes: Some(50),
                ..Lifetime::default()
            },
        );
        assert!(s.charge(60));
        assert!(s.check_hard().is_ok());
        assert!(!s.charge(60));
        assert_eq!(s.check_hard(), Err(DropReason::EspSaExpired));
    }

    #[test]
    fn initial_seq_starts_both_directions_and_is_bounded() {
        let cfg = |esn, initial_seq| SaConfig {
            esn,
            initial_seq,
            ..SaConfig::new(7, Mode::Transport, Suite::AesGcm(AesKeyLen::Aes128))
        };
        let mut s = Sa::new(&cfg(false, u32::MAX as u64), &[1; 20], &[]).unwrap();
        assert_eq!(s.replay().top(), u32::MAX as u64 - 1);
        assert_eq!(s.take_seq_out(), Ok(u32::MAX as u64));
        assert_eq!(s.take_seq_out(), Err(DropReason::EspSeqExhausted));
        let mut s = Sa::new(&cfg(true, (1 << 32) - 3), &[1; 20], &[]).unwrap();
        assert_eq!(s.replay().top(), (1 << 32) - 4);
        assert_eq!(s.take_seq_out(), Ok((1 << 32) - 3));
        // The default leaves a fresh SA exactly as before.
        let s = Sa::new(&cfg(false, 1), &[1; 20], &[]).unwrap();
        assert_eq!((s.replay().top(), s.last_seq_out()), (0, 0));
        for (esn, seq) in [(false, 0), (true, 0), (false, 1 << 32)] {
            assert_eq!(
                Sa::new(&cfg(esn, seq), &[1; 20], &[]).unwrap_err(),
                SaError::InitialSeq { seq, esn }
            );
        }
    }

    #[test]
    fn bad_keys_and_windows_are_refused() {
        let cfg = SaConfig::new(7, Mode::Transport, Suite::AesGcm(AesKeyLen::Aes256));
        assert_eq!(
            Sa::new(&cfg, &[0; 32], &[]).unwrap_err(),
            SaError::Key(KeyError::EncKeyLength {
                expected: 36,
                got: 32
            })
        );
        let cfg = SaConfig {
            replay_window: 100,
            ..cfg
        };
        assert_eq!(
            Sa::new(&cfg, &[0; 36], &[]).unwrap_err(),
            SaError::Window(BadWindowSize(100))
        );
    }
}
