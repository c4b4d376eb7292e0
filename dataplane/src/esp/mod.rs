//! ESP (RFC 4303) dataplane core: anti-replay, cipher suites, SA state, and in-place
//! encapsulation/decapsulation of packets that start at their IP header.

pub mod crypto;
pub mod replay;
