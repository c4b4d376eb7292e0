//! An owned mbuf. The data accessors and resizing are the arithmetic of DPDK's
//! `rte_pktmbuf_*` inlines, done in Rust on the struct (no call per packet); they refuse
//! multi-segment chains rather than corrupt them.

use dpdk_sys::rte_mbuf;
use std::ptr::NonNull;

/// One packet buffer, freed on drop.
#[repr(transparent)]
pub struct Mbuf(NonNull<rte_mbuf>);

// SAFETY: an mbuf is a buffer owned by exactly one Mbuf value; moving it to another thread
// moves ownership (DPDK frees to the pool from any thread).
unsafe impl Send for Mbuf {}

impl Mbuf {
    #[inline]
    pub(crate) fn from_nonnull(p: NonNull<rte_mbuf>) -> Mbuf {
        Mbuf(p)
    }

    /// Take ownership of a raw mbuf.
    ///
    /// # Safety
    /// `p` must be a valid mbuf that nothing else owns or frees.
    pub unsafe fn from_raw(p: *mut rte_mbuf) -> Option<Mbuf> {
        NonNull::new(p).map(Mbuf)
    }

    /// Give up ownership.
    pub fn into_raw(self) -> *mut rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    #[inline(always)]
    fn m(&self) -> &rte_mbuf {
        // SAFETY: we own a valid mbuf for our whole lifetime.
        unsafe { self.0.as_ref() }
    }

    #[inline(always)]
    fn m_mut(&mut self) -> &mut rte_mbuf {
        // SAFETY: as above, and &mut self makes the access exclusive.
        unsafe { self.0.as_mut() }
    }

    /// Bytes of the first segment.
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        let m = self.m();
        // SAFETY: buf_addr + data_off .. + data_len lies within the mbuf's buffer, which we own.
        unsafe {
            std::slice::from_raw_parts(
                (m.buf_addr as *const u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    /// Mutable bytes of the first segment.
    #[inline(always)]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.m_mut();
        // SAFETY: as in `data`, and we hold the only reference.
        unsafe {
            std::slice::from_raw_parts_mut(
                (m.buf_addr as *mut u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    #[inline(always)]
    pub fn len(&self) -> usize {
        self.m().data_len as usize
    }

    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline(always)]
    pub fn headroom(&self) -> usize {
        self.m().data_off as usize
    }

    #[inline(always)]
    pub fn tailroom(&self) -> usize {
        let m = self.m();
        m.buf_len as usize - m.data_off as usize - m.data_len as usize
    }

    #[inline(always)]
    pub fn nb_segs(&self) -> u16 {
        self.m().nb_segs
    }

    /// Grow at the front by `n` bytes.
    #[inline(always)]
    pub fn prepend(&mut self, n: usize) -> bool {
        let m = self.m_mut();
        if m.nb_segs != 1 || n > m.data_off as usize {
            return false;
        }
        m.data_off -= n as u16;
        m.data_len += n as u16;
        m.pkt_len += n as u32;
        true
    }

    /// Remove `n` bytes from the front.
    #[inline(always)]
    pub fn adj(&mut self, n: usize) -> bool {
        let m = self.m_mut();
        if m.nb_segs != 1 || n > m.data_len as usize {
            return false;
        }
        m.data_off += n as u16;
        m.data_len -= n as u16;
        m.pkt_len -= n as u32;
        true
    }

    /// Grow at the end by `n` bytes.
    #[inline(always)]
    pub fn append(&mut self, n: usize) -> bool {
        if n > self.tailroom() || self.nb_segs() != 1 {
            return false;
        }
        let m = self.m_mut();
        m.data_len += n as u16;
        m.pkt_len += n as u32;
        true
    }

    /// Remove `n` bytes from the end.
    #[inline(always)]
    pub fn trim(&mut self, n: usize) -> bool {
        let m = self.m_mut();
        if m.nb_segs != 1 || n > m.data_len as usize {
            return false;
        }
        m.data_len -= n as u16;
        m.pkt_len -= n as u32;
        true
    }

    /// Port the mbuf arrived on.
    #[inline]
    pub fn port(&self) -> u16 {
        self.m().port
    }

    #[inline]
    pub fn set_port(&mut self, p: u16) {
        self.m_mut().port = p;
    }

    /// The NIC's RSS hash, if it reported one.
    #[inline]
    pub fn rss_hash(&self) -> Option<u32> {
        let m = self.m();
        if m.ol_flags & dpdk_sys::RTE_MBUF_F_RX_RSS_HASH as u64 != 0 {
            // SAFETY: with the RSS flag set the union holds the RSS hash.
            Some(unsafe { m.__bindgen_anon_2.hash.rss })
        } else {
            None
        }
    }

    /// Free many mbufs with one call.
    pub fn free_bulk(v: &mut Vec<Mbuf>) {
        let n = v.len();
        if n == 0 {
            return;
        }
        // SAFETY: Mbuf is a transparent pointer; we hand all n to DPDK and forget them.
        unsafe {
            v.set_len(0);
            dpdk_sys::rte_pktmbuf_free_bulk(v.as_mut_ptr() as *mut *mut rte_mbuf, n as u32);
        }
    }

    /// DPDK's own static-inline resize, for tests that check our arithmetic against it.
    #[doc(hidden)]
    pub fn reference_op(&mut self, op: u8, n: u16) -> bool {
        let p = self.0.as_ptr();
        // SAFETY: we own the mbuf; these are DPDK's functions for exactly this structure.
        unsafe {
            match op {
                0 => !dpdk_sys::fg_pktmbuf_prepend(p, n).is_null(),
                1 => !dpdk_sys::fg_pktmbuf_adj(p, n).is_null(),
                2 => !dpdk_sys::fg_pktmbuf_append(p, n).is_null(),
                _ => dpdk_sys::fg_pktmbuf_trim(p, n) == 0,
            }
        }
    }

    /// (data_off, data_len, pkt_len), for tests.
    #[doc(hidden)]
    pub fn raw_lengths(&self) -> (u16, u16, u32) {
        let m = self.m();
        (m.data_off, m.data_len, m.pkt_len)
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the mbuf and give it back exactly once.
        unsafe { dpdk_sys::fg_pktmbuf_free(self.0.as_ptr()) }
    }
}
