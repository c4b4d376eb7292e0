//! Benchmark input frames: Ethernet/IPv4/UDP of an exact frame length (no FCS), one UDP
//! source port per flow so RSS and flow caches see `flows` distinct flows.

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

/// One frame of exactly `len` bytes (len ≥ 42): 10.0.0.1 → 10.1.0.1, UDP sport 1024+flow,
/// dport 5000, TTL 64, payload 0xab.
pub fn udp4(len: usize, flow: u16) -> Vec<u8> {
    assert!(len >= 42, "frame length {len} below Ethernet+IPv4+UDP");
    let mut f = vec![0xabu8; len];
    f[0..6].copy_from_slice(&DUT_MAC);
    f[6..12].copy_from_slice(&SRC_MAC);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = (len - 14) as u16;
    let ip = &mut f[14..34];
    ip.copy_from_slice(&[
        0x45, 0, 0, 0, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 1, 0, 1,
    ]);
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

/// `flows` frames of `len` bytes, one per flow.
pub fn udp4_flows(len: usize, flows: u16) -> Vec<Vec<u8>> {
    (0..flows).map(|i| udp4(len, i)).collect()
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
}
