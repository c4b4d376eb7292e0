//! ESP (RFC 4303) dataplane core: anti-replay, cipher suites, SA state, and in-place
//! encapsulation/decapsulation of packets that start at their IP header.
//!
//! - [`replay`]: the inbound anti-replay window with ESN inference.
//! - [`suite`]: the cipher suites and their sizes.
//! - [`crypto`]: per-SA key schedules; `seal` / `open` of one ESP packet.
//! - [`sa`]: the Security Association (owned by one worker, `&mut` access, no locks).
//! - [`mod@encap`] / [`mod@decap`]: tunnel and transport mode, optional NAT-T, on any [`Packet`].
//!
//! The per-packet path allocates nothing, takes no lock, makes no syscall and logs nothing;
//! every malformed input ends as a [`DropReason`].
//!
//! [`Packet`]: crate::packet::Packet
//! [`DropReason`]: crate::stats::DropReason

pub mod crypto;
pub mod decap;
pub mod encap;
mod layout;
pub mod replay;
pub mod sa;
pub mod store;
pub mod suite;

#[cfg(test)]
mod tests;

pub use crypto::{AesKeyLen, Backend, Integ, KeyError, SaCrypto, Suite};
pub use decap::{decap, decap_esp, DecapInfo, IpFamily};
pub use encap::{encap, encap_esp, max_inner_len, sealed_len, EncapInfo};
pub use replay::ReplayWindow;
pub use sa::{Lifetime, Mode, NatT, Sa, SaConfig, SaCounters, SaError, NATT_PORT};
