//! ICMPv4 (RFC 792) and ICMPv6 (RFC 4443) type codes and header writers. The dataplane only
//! emits error messages (time exceeded, fragmentation needed / packet too big); echo is
//! answered by the control thread's host stack.

use super::checksum;
use super::{be16, put16, put32};

/// Length of the ICMP error header (type, code, checksum, 4 bytes of rest-of-header).
pub const HEADER_LEN: usize = 8;

pub mod v4 {
    pub const ECHO_REPLY: u8 = 0;
    pub const DEST_UNREACHABLE: u8 = 3;
    pub const ECHO_REQUEST: u8 = 8;
    pub const TIME_EXCEEDED: u8 = 11;
    pub const PARAM_PROBLEM: u8 = 12;
    /// Destination unreachable code: fragmentation needed and DF set (RFC 1191).
    pub const CODE_FRAG_NEEDED: u8 = 4;
    /// Time exceeded code: TTL exceeded in transit.
    pub const CODE_TTL_EXCEEDED: u8 = 0;
    /// RFC 1812 §4.3.2.3: an ICMP error carries as much of the datagram as fits in 576 bytes.
    pub const MAX_ERROR_LEN: usize = 576;

    /// True for message types that are errors (never answered with another error).
    pub fn is_error(t: u8) -> bool {
        matches!(t, 3 | 4 | 5 | 11 | 12)
    }
}

pub mod v6 {
    pub const DEST_UNREACHABLE: u8 = 1;
    pub const PACKET_TOO_BIG: u8 = 2;
    pub const TIME_EXCEEDED: u8 = 3;
    pub const PARAM_PROBLEM: u8 = 4;
    pub const ECHO_REQUEST: u8 = 128;
    pub const ECHO_REPLY: u8 = 129;
    pub const ROUTER_SOLICIT: u8 = 133;
    pub const ROUTER_ADVERT: u8 = 134;
    pub const NEIGHBOR_SOLICIT: u8 = 135;
    pub const NEIGHBOR_ADVERT: u8 = 136;
    /// RFC 4443 §2.4(c): an error must not exceed the minimum IPv6 MTU.
    pub const MAX_ERROR_LEN: usize = 1280;

    /// Error messages have types below 128.
    pub fn is_error(t: u8) -> bool {
        t < 128
    }
}

/// Type and code of an ICMP message body (first two bytes).
#[inline]
pub fn type_code(b: &[u8]) -> Option<(u8, u8)> {
    (b.len() >= 2).then(|| (b[0], b[1]))
}

/// Write an ICMPv4 error header into `msg[..8]` and fill the checksum over all of `msg`.
/// `rest` is the 4-byte rest-of-header (e.g. next-hop MTU in its low 16 bits).
pub fn emit_v4(msg: &mut [u8], ty: u8, code: u8, rest: u32) {
    msg[0] = ty;
    msg[1] = code;
    put16(msg, 2, 0);
    put32(msg, 4, rest);
    let c = checksum::checksum(msg);
    put16(msg, 2, c);
}

/// Write an ICMPv6 error header into `msg[..8]` and fill the checksum over `msg` with the
/// IPv6 pseudo-header.
pub fn emit_v6(msg: &mut [u8], ty: u8, code: u8, rest: u32, src: &[u8; 16], dst: &[u8; 16]) {
    msg[0] = ty;
    msg[1] = code;
    put16(msg, 2, 0);
    put32(msg, 4, rest);
    let ps = checksum::pseudo_v6(src, dst, super::ipproto::ICMPV6, msg.len() as u32);
    let c = checksum::finish(checksum::sum(msg, ps));
    put16(msg, 2, c);
}

/// Verify an ICMPv4 message checksum.
pub fn verify_v4(msg: &[u8]) -> bool {
    msg.len() >= HEADER_LEN && checksum::checksum(msg) == 0
}

/// The checksum field of a message.
pub fn checksum_field(msg: &[u8]) -> u16 {
    be16(msg, 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_error_checksum_verifies() {
        let mut m = vec![0u8; 36];
        m[8..].fill(0xab);
        emit_v4(&mut m, v4::DEST_UNREACHABLE, v4::CODE_FRAG_NEEDED, 1400);
        assert!(verify_v4(&m));
        assert_eq!(be16(&m, 6), 1400);
    }

    #[test]
    fn v6_error_checksum_verifies() {
        let (s, d) = ([1u8; 16], [2u8; 16]);
        let mut m = vec![0u8; 48];
        emit_v6(&mut m, v6::PACKET_TOO_BIG, 0, 1280, &s, &d);
        let ps = checksum::pseudo_v6(&s, &d, 58, 48);
        assert_eq!(checksum::finish(checksum::sum(&m, ps)), 0);
    }
}
