//! Benchmark input frames: Ethernet/IPv4/UDP (and Ethernet/IPv6/UDP) of an exact frame length
//! (no FCS), one UDP source port per flow so RSS and flow caches see `flows` distinct flows,
//! and the frame-size argument (`64`, `1420`, `imix`) the subcommands share.

/// Destination MAC of the input frames (the forwarding port's address in every config).
pub const DUT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// Source MAC of the input frames.
pub const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

fn csum(b: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in b.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// The protected network's host (source of the plain frames).
pub const HOST_A: [u8; 4] = [10, 0, 0, 1];
/// The remote network's host (their destination; source of the inbound inner packets).
pub const HOST_B: [u8; 4] = [10, 1, 0, 1];

/// One frame of exactly `len` bytes (len ≥ 42): 10.0.0.1 → 10.1.0.1, UDP sport 1024+flow,
/// dport 5000, TTL 64, payload 0xab.
pub fn udp4(len: usize, flow: u16) -> Vec<u8> {
    udp4_between(len, flow, HOST_A, HOST_B)
}

/// [`udp4`] between the given addresses.
pub fn udp4_between(len: usize, flow: u16, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    assert!(len >= 42, "frame length {len} below Ethernet+IPv4+UDP");
    let mut f = vec![0xabu8; len];
    f[0..6].copy_from_slice(&DUT_MAC);
    f[6..12].copy_from_slice(&SRC_MAC);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - 14) as u16;
    let ip = &mut f[14..34];
    ip[..12].copy_from_slice(&[0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0]);
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    let c = csum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&(1024u16.wrapping_add(flow)).to_be_bytes());
    udp[2..4].copy_from_slice(&5000u16.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    udp[6..8].fill(0); // no UDP checksum: valid for IPv4, and what the reference pcaps carry
    f
}

/// One Ethernet/IPv6/UDP frame of exactly `len` bytes (len ≥ 62) from `src` to `dst`: UDP
/// sport 1024+flow, dport 5000, hop limit 64, payload 0xab, UDP checksum computed (IPv6
/// requires one).
pub fn udp6_between(len: usize, flow: u16, src: [u8; 16], dst: [u8; 16]) -> Vec<u8> {
    assert!(len >= 62, "frame length {len} below Ethernet+IPv6+UDP");
    let mut f = vec![0xabu8; len];
    f[0..6].copy_from_slice(&DUT_MAC);
    f[6..12].copy_from_slice(&SRC_MAC);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    let udp_len = (len - 54) as u16;
    let ip = &mut f[14..54];
    ip[..8].copy_from_slice(&[0x60, 0, 0, 0, 0, 0, 17, 64]);
    ip[4..6].copy_from_slice(&udp_len.to_be_bytes());
    ip[8..24].copy_from_slice(&src);
    ip[24..40].copy_from_slice(&dst);
    let udp = &mut f[54..62];
    udp[0..2].copy_from_slice(&(1024u16.wrapping_add(flow)).to_be_bytes());
    udp[2..4].copy_from_slice(&5000u16.to_be_bytes());
    udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
    udp[6..8].fill(0);
    // Pseudo-header (addresses, upper-layer length, next header) + the datagram.
    let mut sum = Vec::with_capacity(40 + udp_len as usize);
    sum.extend_from_slice(&src);
    sum.extend_from_slice(&dst);
    sum.extend_from_slice(&u32::from(udp_len).to_be_bytes());
    sum.extend_from_slice(&[0, 0, 0, 17]);
    sum.extend_from_slice(&f[54..]);
    let c = match csum(&sum) {
        0 => 0xffff, // RFC 8200 §8.1: a computed 0 is sent as all ones
        c => c,
    };
    f[60..62].copy_from_slice(&c.to_be_bytes());
    f
}

/// `flows` frames of `len` bytes, one per flow.
pub fn udp4_flows(len: usize, flows: u16) -> Vec<Vec<u8>> {
    (0..flows).map(|i| udp4(len, i)).collect()
}

/// One cycle of the simple IMIX, 7:4:1 by count, as frame lengths without FCS: 60/590/1514 B
/// are the classic 64/594/1518-byte frames on the wire (IP packets of 46/576/1500 bytes), so
/// the largest still fits a 1500-byte MTU as plain IP. Interleaved, so every burst sees the mix.
pub const IMIX_CYCLE: [usize; 12] = [60, 590, 60, 60, 590, 60, 1514, 60, 590, 60, 590, 60];

/// A frame-size argument: one length, or the IMIX.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    Bytes(usize),
    Imix,
}

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(Size::Imix);
        }
        match s.parse::<usize>() {
            Ok(n) if (60..=9000).contains(&n) => Ok(Size::Bytes(n)),
            _ => Err(format!("'{s}': a frame length in 60..=9000 or 'imix'")),
        }
    }
}

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Size::Bytes(n) => write!(f, "{n}"),
            Size::Imix => f.write_str("imix"),
        }
    }
}

impl Size {
    /// Frame lengths of `flows` frames (IMIX: rounded up to whole cycles).
    pub fn lengths(&self, flows: u16) -> Vec<usize> {
        match *self {
            Size::Bytes(n) => vec![n; flows as usize],
            Size::Imix => {
                let n = (flows as usize).div_ceil(IMIX_CYCLE.len()) * IMIX_CYCLE.len();
                IMIX_CYCLE.iter().copied().cycle().take(n).collect()
            }
        }
    }
}

/// Frames of the given lengths, one flow each, between `src` and `dst`.
pub fn udp4_sized(lengths: &[usize], src: [u8; 4], dst: [u8; 4]) -> Vec<Vec<u8>> {
    lengths
        .iter()
        .enumerate()
        .map(|(i, &l)| udp4_between(l, i as u16, src, dst))
        .collect()
}

/// Mean length of `frames`.
pub fn mean_len(frames: &[Vec<u8>]) -> f64 {
    frames.iter().map(|f| f.len()).sum::<usize>() as f64 / frames.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn exact_length_and_valid_checksum() {
        for len in [64, 512, 1420] {
            let f = super::udp4(len, 3);
            assert_eq!(f.len(), len);
            assert_eq!(super::csum(&f[14..34]), 0, "header checksum verifies");
            assert_eq!(u16::from_be_bytes([f[16], f[17]]) as usize, len - 14);
        }
    }

    #[test]
    fn ipv6_exact_length_and_valid_checksum() {
        let (a, b) = (
            [0xfd, 0, 0, 0xa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0xfdu8; 16],
        );
        for len in [64, 512, 1420] {
            let f = super::udp6_between(len, 7, a, b);
            assert_eq!(f.len(), len);
            assert_eq!(u16::from_be_bytes([f[18], f[19]]) as usize, len - 54);
            let mut ph = a.to_vec();
            ph.extend_from_slice(&b);
            ph.extend_from_slice(&((len - 54) as u32).to_be_bytes());
            ph.extend_from_slice(&[0, 0, 0, 17]);
            ph.extend_from_slice(&f[54..]);
            assert_eq!(super::csum(&ph), 0, "UDP checksum verifies");
        }
    }

    #[test]
    fn imix_is_seven_four_one() {
        use super::Size;
        let l = "imix".parse::<Size>().unwrap().lengths(1024);
        assert_eq!(l.len(), 1032);
        let count = |n| l.iter().filter(|&&x| x == n).count();
        assert_eq!((count(60), count(590), count(1514)), (602, 344, 86));
        assert_eq!("64".parse::<Size>(), Ok(Size::Bytes(64)));
        assert!("59".parse::<Size>().is_err());
    }
}
