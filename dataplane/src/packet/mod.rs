//! The `Packet` trait: one contiguous frame with headroom and tailroom around it.
//!
//! Encapsulation prepends into headroom and appends into tailroom; decapsulation adjusts. Every
//! resize returns `false` (and leaves the packet untouched) when the room is not there, so a
//! short buffer becomes a counted drop instead of a panic. Multi-segment frames are refused at
//! the adapter, so the data is always one slice.

mod heap;
mod mbuf;

pub use heap::HeapPacket;

/// A single-segment frame that can grow and shrink at both ends in place.
pub trait Packet {
    /// The frame bytes, starting at the first byte of the outermost header.
    fn data(&self) -> &[u8];
    /// Mutable view of the frame bytes.
    fn data_mut(&mut self) -> &mut [u8];
    /// Free bytes in front of the data.
    fn headroom(&self) -> usize;
    /// Free bytes after the data.
    fn tailroom(&self) -> usize;
    /// Grow the frame at the front by `n` bytes (contents of the new bytes unspecified).
    #[must_use]
    fn prepend(&mut self, n: usize) -> bool;
    /// Remove `n` bytes from the front.
    #[must_use]
    fn adj(&mut self, n: usize) -> bool;
    /// Grow the frame at the end by `n` bytes (contents of the new bytes unspecified).
    #[must_use]
    fn append(&mut self, n: usize) -> bool;
    /// Remove `n` bytes from the end.
    #[must_use]
    fn trim(&mut self, n: usize) -> bool;

    /// Frame length in bytes.
    #[inline]
    fn len(&self) -> usize {
        self.data().len()
    }
    /// True when the frame holds no bytes.
    #[inline]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// True when the frame spans several buffers (the pipeline refuses those).
    #[inline]
    fn is_multi_segment(&self) -> bool {
        false
    }
    /// The NIC's RSS hash of the frame, when the NIC computed one.
    #[inline]
    fn rss_hash(&self) -> Option<u32> {
        None
    }
}
