//! Safe wrappers over DPDK.
