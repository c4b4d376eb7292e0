//! `HeapPacket`: a `Packet` backed by a boxed byte buffer, for unit tests, property tests and
//! micro-benchmarks that run the pipeline without an EAL.

use super::Packet;

/// Default headroom, the same as DPDK's `RTE_PKTMBUF_HEADROOM`.
pub const DEFAULT_HEADROOM: usize = 128;
/// Default tailroom: enough for an ESP trailer and the largest ICV.
pub const DEFAULT_TAILROOM: usize = 128;

/// A frame in a heap buffer with room on both sides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeapPacket {
    buf: Box<[u8]>,
    off: usize,
    len: usize,
    rss: Option<u32>,
}

impl HeapPacket {
    /// A copy of `frame` with the default headroom and tailroom.
    pub fn from_frame(frame: &[u8]) -> Self {
        Self::with_room(frame, DEFAULT_HEADROOM, DEFAULT_TAILROOM)
    }

    /// A copy of `frame` with exactly `headroom` bytes before it and `tailroom` after it.
    pub fn with_room(frame: &[u8], headroom: usize, tailroom: usize) -> Self {
        let mut buf = vec![0u8; headroom + frame.len() + tailroom].into_boxed_slice();
        buf[headroom..headroom + frame.len()].copy_from_slice(frame);
        HeapPacket {
            buf,
            off: headroom,
            len: frame.len(),
            rss: None,
        }
    }

    /// Set the hash a NIC would have reported.
    pub fn set_rss_hash(&mut self, hash: Option<u32>) {
        self.rss = hash;
    }

    /// The frame as an owned vector.
    pub fn to_vec(&self) -> Vec<u8> {
        self.data().to_vec()
    }
}

impl Packet for HeapPacket {
    #[inline]
    fn data(&self) -> &[u8] {
        &self.buf[self.off..self.off + self.len]
    }
    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.off..self.off + self.len]
    }
    #[inline]
    fn headroom(&self) -> usize {
        self.off
    }
    #[inline]
    fn tailroom(&self) -> usize {
        self.buf.len() - self.off - self.len
    }
    #[inline]
    fn prepend(&mut self, n: usize) -> bool {
        if n > self.off {
            return false;
        }
        self.off -= n;
        self.len += n;
        true
    }
    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.off += n;
        self.len -= n;
        true
    }
    #[inline]
    fn append(&mut self, n: usize) -> bool {
        if n > self.tailroom() {
            return false;
        }
        self.len += n;
        true
    }
    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.len -= n;
        true
    }
    #[inline]
    fn rss_hash(&self) -> Option<u32> {
        self.rss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_within_room_and_refuse_beyond() {
        let mut p = HeapPacket::with_room(&[1, 2, 3], 4, 2);
        assert!(p.prepend(4));
        assert!(!p.prepend(1));
        assert_eq!(p.len(), 7);
        assert!(p.adj(4));
        assert_eq!(p.data(), &[1, 2, 3]);
        assert!(p.append(2));
        assert!(!p.append(1));
        assert!(p.trim(2));
        assert!(!p.trim(4));
        assert!(!p.adj(4));
        assert_eq!(p.data(), &[1, 2, 3]);
    }
}
