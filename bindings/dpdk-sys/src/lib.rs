//! Raw bindings to the system DPDK (generated at build time by bindgen) and the `fg_*` shim
//! functions that re-export DPDK's static inline fast path. Nothing else lives here: the safe
//! API is the `dpdk` crate.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code
)]
#![allow(clippy::all)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// Directory of DPDK's PMD plugins, found by pkg-config at build time (empty if unknown).
pub const PMD_DIR: &str = env!("DPDK_PMD_DIR");
/// DPDK version the bindings were generated for.
pub const DPDK_VERSION: &str = env!("DPDK_VERSION");
