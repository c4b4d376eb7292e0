//! The ferrogate dataplane: everything a worker core does to a packet.
//!
//! Packet logic is written against the [`packet::Packet`] trait, never against DPDK types, so
//! the same pipeline runs over DPDK mbufs in the daemon and over heap buffers in unit tests and
//! micro-benchmarks.

pub mod esp;
pub mod events;
pub mod fragment;
pub mod icmp_error;
pub mod outer;
pub(crate) mod outer_template;
pub mod packet;
pub mod pipeline;
pub mod stats;
pub mod tables;
pub mod tunnel;
pub mod wire;
pub mod worker;
