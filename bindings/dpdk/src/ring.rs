//! `rte_ring` of mbufs: a bounded lock-free queue between lcores.

use crate::{Error, Mbuf, Result};
use dpdk_sys::rte_ring;
use std::ffi::CString;
use std::os::raw::c_void;
use std::ptr::NonNull;

/// A ring carrying owned mbufs; what is left in it is freed on drop.
pub struct Ring {
    r: NonNull<rte_ring>,
}

// SAFETY: rte_ring is a multi-producer/multi-consumer lock-free queue unless created with the
// single-producer/consumer flags, in which case `enqueue`/`dequeue` take &mut self... we keep
// it simple: the SP/SC variants require exclusive access, enforced by &mut below.
unsafe impl Send for Ring {}
// SAFETY: shared access only reads counts; enqueue/dequeue need &mut self.
unsafe impl Sync for Ring {}

impl Ring {
    /// A ring of `count` slots (power of two; one is reserved by DPDK).
    pub fn new(
        name: &str,
        count: u32,
        single_producer: bool,
        single_consumer: bool,
    ) -> Result<Ring> {
        let c = CString::new(name).map_err(|_| Error::msg("ring name contains NUL"))?;
        let mut flags = 0;
        if single_producer {
            flags |= dpdk_sys::RING_F_SP_ENQ;
        }
        if single_consumer {
            flags |= dpdk_sys::RING_F_SC_DEQ;
        }
        // SAFETY: valid name; DPDK allocates the ring.
        let r = unsafe { dpdk_sys::rte_ring_create(c.as_ptr(), count, -1, flags) };
        let r = NonNull::new(r)
            .ok_or_else(|| Error::last(&format!("rte_ring_create({name}, {count})")))?;
        Ok(Ring { r })
    }

    /// Move mbufs from the front of `v` into the ring; returns how many moved.
    pub fn enqueue_burst(&mut self, v: &mut Vec<Mbuf>) -> usize {
        let len = v.len();
        // SAFETY: mbuf pointers are handed to the ring, which owns them from now on; the
        // moved ones are removed from `v` without being dropped.
        unsafe {
            let n = dpdk_sys::fg_ring_enqueue_burst(
                self.r.as_ptr(),
                v.as_ptr() as *const *mut c_void,
                len as u32,
            ) as usize;
            std::ptr::copy(v.as_ptr().add(n), v.as_mut_ptr(), len - n);
            v.set_len(len - n);
            n
        }
    }

    /// Move mbufs from the ring into the free capacity of `v`.
    pub fn dequeue_burst(&mut self, v: &mut Vec<Mbuf>) -> usize {
        let len = v.len();
        let room = v.capacity() - len;
        // SAFETY: the ring only ever holds mbufs we enqueued; `room` slots are free in `v`.
        unsafe {
            let n = dpdk_sys::fg_ring_dequeue_burst(
                self.r.as_ptr(),
                v.as_mut_ptr().add(len) as *mut *mut c_void,
                room as u32,
            ) as usize;
            v.set_len(len + n);
            n
        }
    }

    pub fn count(&self) -> u32 {
        // SAFETY: read-only query.
        unsafe { dpdk_sys::fg_ring_count(self.r.as_ptr()) }
    }

    pub fn free_count(&self) -> u32 {
        // SAFETY: read-only query.
        unsafe { dpdk_sys::fg_ring_free_count(self.r.as_ptr()) }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let mut v = Vec::with_capacity(64);
        while self.dequeue_burst(&mut v) > 0 {
            v.clear();
        }
        // SAFETY: the ring is empty and no longer used.
        unsafe { dpdk_sys::rte_ring_free(self.r.as_ptr()) }
    }
}
