//! The packet buffer pool.

use crate::{Error, Mbuf, Result};
use dpdk_sys::rte_mempool;
use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

struct Inner {
    mp: NonNull<rte_mempool>,
    size: u32,
}

// SAFETY: an rte_mempool is designed for concurrent use from any thread (lockless ring plus
// per-lcore caches; non-EAL threads bypass the cache).
unsafe impl Send for Inner {}
// SAFETY: as above; all operations we expose are thread-safe in DPDK.
unsafe impl Sync for Inner {}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: the last handle is gone. Mbufs still out would point into freed memory, so
        // the rule is: drop the pool only after every port is closed and every mbuf freed
        // (the daemon does so at shutdown).
        unsafe { dpdk_sys::rte_mempool_free(self.mp.as_ptr()) }
    }
}

/// A pktmbuf pool; cheap to clone (shared handle).
#[derive(Clone)]
pub struct Mempool {
    inner: Arc<Inner>,
}

impl Mempool {
    /// Create a pool of `n` mbufs with `data_room` bytes each (headroom included).
    pub fn new(name: &str, n: u32, cache: u32, data_room: u16, socket: i32) -> Result<Mempool> {
        let cname = CString::new(name).map_err(|_| Error::msg("pool name contains NUL"))?;
        // SAFETY: valid C string; DPDK copies the name.
        let mp = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket)
        };
        let mp = NonNull::new(mp)
            .ok_or_else(|| Error::last(&format!("rte_pktmbuf_pool_create({name}, {n})")))?;
        Ok(Mempool {
            inner: Arc::new(Inner { mp, size: n }),
        })
    }

    /// The raw pool (for port queue setup).
    pub(crate) fn as_ptr(&self) -> *mut rte_mempool {
        self.inner.mp.as_ptr()
    }

    /// Mbufs in the pool.
    pub fn size(&self) -> u32 {
        self.inner.size
    }

    /// Free mbufs (ring plus per-lcore caches).
    pub fn avail_count(&self) -> u32 {
        // SAFETY: the pool is alive while self exists.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.as_ptr()) }
    }

    /// Mbufs handed out (in queues, in flight, or leaked).
    pub fn in_use_count(&self) -> u32 {
        // SAFETY: as above.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.as_ptr()) }
    }

    /// One mbuf, reset (empty data, default headroom).
    #[inline]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is alive; a non-null result is an mbuf we now own.
        let m = unsafe { dpdk_sys::fg_pktmbuf_alloc(self.as_ptr()) };
        NonNull::new(m).map(Mbuf::from_nonnull)
    }

    /// `n` mbufs appended to `out`, all or none.
    pub fn alloc_bulk(&self, out: &mut Vec<Mbuf>, n: usize) -> bool {
        out.reserve(n);
        let len = out.len();
        // SAFETY: `out` has room for n more entries; Mbuf is a transparent non-null pointer,
        // and on success DPDK writes n valid mbuf pointers which we then own.
        unsafe {
            let p = out.as_mut_ptr().add(len) as *mut *mut dpdk_sys::rte_mbuf;
            if dpdk_sys::fg_pktmbuf_alloc_bulk(self.as_ptr(), p, n as u32) != 0 {
                return false;
            }
            out.set_len(len + n);
        }
        true
    }
}
