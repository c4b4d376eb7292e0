//! ferrobench support code: input captures, the processes under test (ferrogate and the DPDK
//! reference apps) and how their rates are sampled.
//!
//! Method (the same as `../shared/bench-reference`): one forwarding core fed from memory by
//! `net_pcap,rx_pcap=FILE,infinite_rx=1`, output to `net_null,no-rx=1`, the rate read from the
//! output port's ethdev counters over a window after a warm-up. Both programs are measured the
//! same way in the same invocation, so their ratio is fair even on a machine whose speed drifts.
//!
//! `tunnel` measures each overlay tunnel's encap and decap that way next to testpmd; `spd`
//! measures the SPD classifier against the linear scan in-process (no DPDK).

pub mod encap;
pub mod esp;
pub mod frames;
pub mod pcap;
pub mod report;
pub mod run;
pub mod secgw;
pub mod spd;
pub mod telemetry;
pub mod tunnel;
