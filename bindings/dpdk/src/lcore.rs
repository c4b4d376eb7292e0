//! Lcores: which exist, launching a closure on one, waiting for it; the TSC clock.

use crate::{Error, Result};
use std::os::raw::{c_int, c_void};

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `launch`, handed over exactly once.
    let job: Box<Job> = unsafe { Box::from_raw(arg as *mut Job) };
    // A panic must not unwind into C.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or(-1)
}

/// Run `f` on worker lcore `lcore` (not the main lcore). The closure is boxed once here.
pub fn launch<F: FnOnce() -> i32 + Send + 'static>(lcore: u32, f: F) -> Result<()> {
    let job: Box<Job> = Box::new(Box::new(f));
    let arg = Box::into_raw(job) as *mut c_void;
    // SAFETY: trampoline has the lcore_function_t signature and takes ownership of `arg`.
    let r = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
    if r != 0 {
        // SAFETY: the launch failed, so the job was not handed over; reclaim it.
        drop(unsafe { Box::from_raw(arg as *mut Job) });
        return Err(Error::from_errno(&format!("launch on lcore {lcore}"), r));
    }
    Ok(())
}

/// Wait for the job on `lcore` to finish; its return value.
pub fn wait(lcore: u32) -> i32 {
    // SAFETY: waiting on any lcore id is allowed; a non-running lcore returns at once.
    unsafe { dpdk_sys::rte_eal_wait_lcore(lcore) }
}

/// Lcore id of the calling thread (u32::MAX for non-EAL threads).
pub fn current() -> u32 {
    // SAFETY: reads a thread-local; no preconditions.
    unsafe { dpdk_sys::fg_lcore_id() }
}

/// The main lcore.
pub fn main_lcore() -> u32 {
    // SAFETY: valid after EAL init; returns a plain integer before it.
    unsafe { dpdk_sys::rte_get_main_lcore() }
}

/// Enabled lcores.
pub fn count() -> u32 {
    // SAFETY: reads EAL configuration.
    unsafe { dpdk_sys::rte_lcore_count() }
}

/// True if `lcore` is enabled in this EAL.
pub fn is_enabled(lcore: u32) -> bool {
    // SAFETY: bounds-checked by DPDK.
    unsafe { dpdk_sys::rte_lcore_is_enabled(lcore) != 0 }
}

/// The time-stamp counter.
#[inline(always)]
pub fn tsc() -> u64 {
    // SAFETY: rdtsc has no memory effects; every x86_64 CPU DPDK runs on has it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// TSC ticks per second (as measured by EAL).
pub fn tsc_hz() -> u64 {
    // SAFETY: valid after EAL init.
    unsafe { dpdk_sys::fg_get_tsc_hz() }
}
