//! Ethernet ports: attach by devargs, configure queues (with RSS where the device has it),
//! start/stop, MAC, link, counters, and queue handles that can each be taken once, so one
//! queue is only ever polled by one thread.

use crate::{Error, Mbuf, Mempool, Result};
use dpdk_sys::{rte_eth_conf, rte_eth_dev_info, rte_mbuf};
use std::ffi::{CStr, CString};
use std::sync::{Arc, Mutex};

/// Queue and offload settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Spread flows over RX queues by hashing IPv4/IPv6/TCP/UDP headers (if supported).
    pub rss: bool,
    pub mtu: Option<u16>,
}

/// Link state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub up: bool,
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

/// Basic ethdev counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

/// What the driver says about the device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub rss_offloads: u64,
    pub socket: i32,
}

struct Taken {
    rx: Vec<bool>,
    tx: Vec<bool>,
}

/// A port handle (cheap to clone; queue handles are single-owner).
#[derive(Clone)]
pub struct Port {
    id: u16,
    taken: Arc<Mutex<Taken>>,
}

impl Port {
    /// Probe the device described by `devargs` (e.g. `net_pcap0,rx_pcap=a.pcap` or a PCI
    /// address) and return its port.
    pub fn attach(devargs: &str) -> Result<Port> {
        let c = CString::new(devargs).map_err(|_| Error::msg("devargs contain a NUL byte"))?;
        // SAFETY: valid C string; DPDK parses and copies it.
        let r = unsafe { dpdk_sys::rte_dev_probe(c.as_ptr()) };
        if r < 0 {
            // Drivers mostly return -1 rather than an errno: the reason is in the EAL log.
            let what = "device probe failed (the driver's reason is in the EAL log above)";
            return Err(if r == -1 {
                Error::msg(what)
            } else {
                Error::from_errno(what, r)
            });
        }
        let name = devargs.split(',').next().unwrap_or(devargs);
        Port::by_name(name)
    }

    /// The port of an already probed device.
    pub fn by_name(name: &str) -> Result<Port> {
        let c = CString::new(name).map_err(|_| Error::msg("name contains a NUL byte"))?;
        let mut id = 0u16;
        // SAFETY: valid C string and out-pointer.
        let r = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        if r != 0 {
            return Err(Error::from_errno(
                &format!("no ethdev port named '{name}'"),
                r,
            ));
        }
        Ok(Port::by_id(id))
    }

    /// A handle for port `id`.
    pub fn by_id(id: u16) -> Port {
        Port {
            id,
            taken: Arc::new(Mutex::new(Taken {
                rx: Vec::new(),
                tx: Vec::new(),
            })),
        }
    }

    pub fn id(&self) -> u16 {
        self.id
    }

    fn dev_info(&self) -> Result<rte_eth_dev_info> {
        let mut info = rte_eth_dev_info::default();
        // SAFETY: out-pointer to a properly sized, default-initialised struct.
        let r = unsafe { dpdk_sys::rte_eth_dev_info_get(self.id, &mut info) };
        if r != 0 {
            return Err(Error::from_errno("rte_eth_dev_info_get", r));
        }
        Ok(info)
    }

    /// Driver facts.
    pub fn info(&self) -> PortInfo {
        let info = self.dev_info().unwrap_or_default();
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: a non-null driver_name is a static NUL-terminated string of the driver.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        // SAFETY: plain query on a valid port id.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(self.id) };
        PortInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rss_offloads: info.flow_type_rss_offloads,
            socket,
        }
    }

    /// Configure queues and offloads, with RX buffers from `pool`.
    pub fn configure(&self, cfg: &PortConfig, pool: &Mempool) -> Result<()> {
        let info = self.dev_info()?;
        if cfg.rx_queues == 0 || cfg.rx_queues > info.max_rx_queues {
            return Err(Error::msg(format!(
                "{} RX queues requested, the device supports 1..={}",
                cfg.rx_queues, info.max_rx_queues
            )));
        }
        if cfg.tx_queues == 0 || cfg.tx_queues > info.max_tx_queues {
            return Err(Error::msg(format!(
                "{} TX queues requested, the device supports 1..={}",
                cfg.tx_queues, info.max_tx_queues
            )));
        }
        let mut conf = rte_eth_conf::default();
        if let Some(mtu) = cfg.mtu {
            if mtu < info.min_mtu || mtu > info.max_mtu {
                return Err(Error::msg(format!(
                    "MTU {mtu} outside the device's {}..={}",
                    info.min_mtu, info.max_mtu
                )));
            }
            conf.rxmode.mtu = mtu as u32;
        }
        // SAFETY: shim functions returning constants.
        let (want_hf, rss_hash_offload) = unsafe {
            (
                dpdk_sys::fg_rss_hf_ip_tcp_udp(),
                dpdk_sys::fg_rx_offload_rss_hash(),
            )
        };
        let hf = want_hf & info.flow_type_rss_offloads;
        if cfg.rss && cfg.rx_queues > 1 && hf != 0 {
            conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = hf;
            if info.rx_offload_capa & rss_hash_offload != 0 {
                conf.rxmode.offloads |= rss_hash_offload;
            }
        }
        // SAFETY: conf is a valid configuration struct; the port id exists.
        let r = unsafe {
            dpdk_sys::rte_eth_dev_configure(self.id, cfg.rx_queues, cfg.tx_queues, &conf)
        };
        if r != 0 {
            return Err(Error::from_errno("rte_eth_dev_configure", r));
        }
        let (mut nrx, mut ntx) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: out-pointers to locals.
        let r = unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut nrx, &mut ntx) };
        if r != 0 {
            return Err(Error::from_errno("rte_eth_dev_adjust_nb_rx_tx_desc", r));
        }
        // SAFETY: plain query.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(self.id) }.max(0) as u32;
        for q in 0..cfg.rx_queues {
            // SAFETY: valid port/queue; NULL rxconf means driver defaults; the pool outlives the port.
            let r = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    self.id,
                    q,
                    nrx,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            if r != 0 {
                return Err(Error::from_errno(&format!("rx queue {q} setup"), r));
            }
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: valid port/queue; NULL txconf means driver defaults.
            let r = unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(self.id, q, ntx, socket, std::ptr::null())
            };
            if r != 0 {
                return Err(Error::from_errno(&format!("tx queue {q} setup"), r));
            }
        }
        let mut t = self
            .taken
            .lock()
            .map_err(|_| Error::msg("port lock poisoned"))?;
        t.rx = vec![false; cfg.rx_queues as usize];
        t.tx = vec![false; cfg.tx_queues as usize];
        Ok(())
    }

    pub fn start(&self) -> Result<()> {
        // SAFETY: valid port id.
        let r = unsafe { dpdk_sys::rte_eth_dev_start(self.id) };
        if r != 0 {
            return Err(Error::from_errno("rte_eth_dev_start", r));
        }
        Ok(())
    }

    pub fn stop(&self) {
        // SAFETY: valid port id; stopping a stopped port is harmless.
        unsafe {
            dpdk_sys::rte_eth_dev_stop(self.id);
        }
    }

    /// Close the port (frees its queues and the mbufs in its rings).
    pub fn close(self) {
        // SAFETY: valid port id; after close no queue handle may be used — the workers have
        // been joined before the daemon closes ports.
        unsafe {
            dpdk_sys::rte_eth_dev_close(self.id);
        }
    }

    pub fn mac(&self) -> [u8; 6] {
        let mut a = dpdk_sys::rte_ether_addr::default();
        // SAFETY: out-pointer to a local.
        unsafe {
            dpdk_sys::rte_eth_macaddr_get(self.id, &mut a);
        }
        a.addr_bytes
    }

    /// Set the port's MAC address.
    pub fn set_mac(&self, mac: [u8; 6]) -> Result<()> {
        let mut a = dpdk_sys::rte_ether_addr { addr_bytes: mac };
        // SAFETY: pointer to a local address.
        let r = unsafe { dpdk_sys::rte_eth_dev_default_mac_addr_set(self.id, &mut a) };
        if r != 0 {
            return Err(Error::from_errno("set MAC address", r));
        }
        Ok(())
    }

    pub fn set_promiscuous(&self, on: bool) {
        // SAFETY: valid port id.
        unsafe {
            if on {
                dpdk_sys::rte_eth_promiscuous_enable(self.id);
            } else {
                dpdk_sys::rte_eth_promiscuous_disable(self.id);
            }
        }
    }

    pub fn link(&self) -> Link {
        let mut l = dpdk_sys::rte_eth_link::default();
        // SAFETY: out-pointer to a local.
        unsafe {
            dpdk_sys::rte_eth_link_get_nowait(self.id, &mut l);
        }
        Link {
            up: l.link_status() != 0,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() != 0,
        }
    }

    pub fn stats(&self) -> PortStats {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: out-pointer to a local.
        unsafe {
            dpdk_sys::rte_eth_stats_get(self.id, &mut s);
        }
        PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }

    /// Every extended statistic, by name.
    pub fn xstats(&self) -> Vec<(String, u64)> {
        // SAFETY: NULL/0 asks for the count.
        let n = unsafe { dpdk_sys::rte_eth_xstats_get_names(self.id, std::ptr::null_mut(), 0) };
        if n <= 0 {
            return Vec::new();
        }
        let mut names = vec![dpdk_sys::rte_eth_xstat_name::default(); n as usize];
        let mut vals = vec![dpdk_sys::rte_eth_xstat::default(); n as usize];
        // SAFETY: arrays of exactly n entries.
        let (a, b) = unsafe {
            (
                dpdk_sys::rte_eth_xstats_get_names(self.id, names.as_mut_ptr(), n as u32),
                dpdk_sys::rte_eth_xstats_get(self.id, vals.as_mut_ptr(), n as u32),
            )
        };
        if a != n || b != n {
            return Vec::new();
        }
        vals.iter()
            .map(|v| {
                let nm = &names[v.id as usize % names.len()].name;
                // SAFETY: DPDK NUL-terminates xstat names within the 64-byte array.
                let s = unsafe { CStr::from_ptr(nm.as_ptr()) }
                    .to_string_lossy()
                    .into_owned();
                (s, v.value)
            })
            .collect()
    }

    /// The device name.
    pub fn name(&self) -> String {
        let mut buf = [0 as std::os::raw::c_char; 64];
        // SAFETY: buffer of RTE_ETH_NAME_MAX_LEN bytes.
        let r = unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(self.id, buf.as_mut_ptr()) };
        if r != 0 {
            return String::new();
        }
        // SAFETY: NUL-terminated on success.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    /// RX queue `q`; each queue can be taken once.
    pub fn rx_queue(&self, q: u16) -> Result<RxQueue> {
        let mut t = self
            .taken
            .lock()
            .map_err(|_| Error::msg("port lock poisoned"))?;
        match t.rx.get_mut(q as usize) {
            None => Err(Error::msg(format!("port {} has no RX queue {q}", self.id))),
            Some(true) => Err(Error::msg(format!(
                "port {} RX queue {q} is already taken",
                self.id
            ))),
            Some(s) => {
                *s = true;
                Ok(RxQueue {
                    port: self.id,
                    queue: q,
                })
            }
        }
    }

    /// TX queue `q`; each queue can be taken once.
    pub fn tx_queue(&self, q: u16) -> Result<TxQueue> {
        let mut t = self
            .taken
            .lock()
            .map_err(|_| Error::msg("port lock poisoned"))?;
        match t.tx.get_mut(q as usize) {
            None => Err(Error::msg(format!("port {} has no TX queue {q}", self.id))),
            Some(true) => Err(Error::msg(format!(
                "port {} TX queue {q} is already taken",
                self.id
            ))),
            Some(s) => {
                *s = true;
                Ok(TxQueue {
                    port: self.id,
                    queue: q,
                })
            }
        }
    }
}

/// The only handle to one RX queue.
pub struct RxQueue {
    port: u16,
    queue: u16,
}

/// The only handle to one TX queue.
pub struct TxQueue {
    port: u16,
    queue: u16,
}

impl RxQueue {
    /// Receive up to the free capacity of `out`, appending; never allocates.
    #[inline]
    pub fn rx_burst(&mut self, out: &mut Vec<Mbuf>) -> usize {
        let len = out.len();
        let room = (out.capacity() - len).min(u16::MAX as usize) as u16;
        if room == 0 {
            return 0;
        }
        // SAFETY: the spare capacity holds `room` slots; Mbuf is a transparent non-null
        // pointer and the PMD writes exactly `n` valid mbufs we now own. This handle is the
        // only one for the queue, so no other thread polls it.
        unsafe {
            let p = out.as_mut_ptr().add(len) as *mut *mut rte_mbuf;
            let n = dpdk_sys::fg_eth_rx_burst(self.port, self.queue, p, room) as usize;
            out.set_len(len + n);
            n
        }
    }
}

impl TxQueue {
    /// Transmit from the front of `pkts`; the sent ones are removed (now owned by the
    /// driver), the rest stay in order. Returns how many were sent.
    #[inline]
    pub fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        let len = pkts.len();
        if len == 0 {
            return 0;
        }
        let want = len.min(u16::MAX as usize) as u16;
        // SAFETY: the first `want` entries are valid mbufs; the driver takes ownership of the
        // first `n`, which we then remove without dropping (moving the unsent tail forward).
        unsafe {
            let p = pkts.as_mut_ptr() as *mut *mut rte_mbuf;
            let n = dpdk_sys::fg_eth_tx_burst(self.port, self.queue, p, want) as usize;
            if n > 0 {
                std::ptr::copy(pkts.as_ptr().add(n), pkts.as_mut_ptr(), len - n);
                pkts.set_len(len - n);
            }
            n
        }
    }
}
