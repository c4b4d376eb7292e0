//! Reading and writing classic pcap files (the format DPDK's net_pcap reads and writes), so
//! tests can build input captures and compare outputs frame by frame.

use std::io::Write;
use std::path::Path;

/// Write `frames` as a pcap (Ethernet link type, microsecond timestamps); panics on I/O
/// errors (for tests).
pub fn write(path: &Path, frames: &[Vec<u8>]) {
    try_write(path, frames).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Write `frames` as a pcap.
pub fn try_write(path: &Path, frames: &[Vec<u8>]) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut hdr = Vec::with_capacity(24);
    hdr.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    hdr.extend_from_slice(&2u16.to_le_bytes());
    hdr.extend_from_slice(&4u16.to_le_bytes());
    hdr.extend_from_slice(&0i32.to_le_bytes());
    hdr.extend_from_slice(&0u32.to_le_bytes());
    hdr.extend_from_slice(&65535u32.to_le_bytes());
    hdr.extend_from_slice(&1u32.to_le_bytes());
    f.write_all(&hdr)?;
    for (i, fr) in frames.iter().enumerate() {
        f.write_all(&(i as u32).to_le_bytes())?;
        f.write_all(&0u32.to_le_bytes())?;
        f.write_all(&(fr.len() as u32).to_le_bytes())?;
        f.write_all(&(fr.len() as u32).to_le_bytes())?;
        f.write_all(fr)?;
    }
    f.flush()
}

/// Read every frame of a pcap (either byte order, micro- or nanosecond magic).
pub fn read(path: &Path) -> Vec<Vec<u8>> {
    let d = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(d.len() >= 24, "{} is not a pcap", path.display());
    let magic = u32::from_le_bytes(d[0..4].try_into().unwrap());
    let le = matches!(magic, 0xa1b2c3d4 | 0xa1b23c4d);
    let u32at = |o: usize| {
        let b: [u8; 4] = d[o..o + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= d.len() {
        let incl = u32at(off + 8) as usize;
        off += 16;
        if off + incl > d.len() {
            break;
        }
        out.push(d[off..off + incl].to_vec());
        off += incl;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let p = std::env::temp_dir().join(format!("pcap-rt-{}.pcap", std::process::id()));
        let frames = vec![vec![1u8; 60], vec![2u8; 1514], vec![]];
        super::write(&p, &frames);
        assert_eq!(super::read(&p), frames);
        let _ = std::fs::remove_file(p);
    }
}
