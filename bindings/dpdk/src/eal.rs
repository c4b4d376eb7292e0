//! EAL initialisation (once per process) and the PMD plugins Debian ships separately.

use crate::{Error, Result};
use std::ffi::CString;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, Ordering};

static INITIALISED: AtomicBool = AtomicBool::new(false);

/// The initialised EAL. Dropping it runs `rte_eal_cleanup`.
pub struct Eal {
    _private: (),
}

/// Plugins every ferrogate process loads: the vdev bus, the ring mempool driver (the default
/// mempool ops), and the virtual NICs and crypto devices used here. Debian builds DPDK shared,
/// with each PMD a separate plugin; loading exactly these is faster and quieter than the whole
/// directory.
const PLUGINS: &[&str] = &[
    "librte_bus_vdev.so",
    "librte_mempool_ring.so",
    "librte_net_null.so",
    "librte_net_ring.so",
    "librte_net_pcap.so",
    "librte_net_af_packet.so",
    "librte_net_tap.so",
    "librte_net_memif.so",
    "librte_crypto_null.so",
    "librte_crypto_ipsec_mb.so",
    "librte_crypto_openssl.so",
];

/// EAL `-d` arguments loading the plugins above from the directory found at build time
/// (`pkg-config --variable=pmdsdir libdpdk`), skipping any that are not installed.
pub fn plugin_args() -> Vec<String> {
    let dir = dpdk_sys::PMD_DIR;
    if dir.is_empty() {
        return Vec::new();
    }
    PLUGINS
        .iter()
        .map(|p| format!("{dir}/{p}"))
        .filter(|p| std::path::Path::new(p).exists())
        .flat_map(|p| ["-d".to_string(), p])
        .collect()
}

impl Eal {
    /// Initialise EAL with `args` (args[0] is the program name). Only once per process.
    pub fn init(args: &[String]) -> Result<Eal> {
        if INITIALISED.swap(true, Ordering::SeqCst) {
            return Err(Error::msg("EAL is already initialised in this process"));
        }
        let cs: Vec<CString> = args
            .iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::msg("EAL argument contains a NUL byte"))?;
        // EAL keeps pointers into argv (e.g. for the program name): leak the strings; this
        // happens once per process.
        let mut argv: Vec<*mut c_char> = cs.into_iter().map(|c| c.into_raw()).collect();
        argv.push(std::ptr::null_mut());
        let argc = (argv.len() - 1) as i32;
        let argv = argv.leak();
        // SAFETY: argv is a NULL-terminated array of valid, leaked C strings; EAL may permute
        // it, which is fine for a leaked array nobody else reads.
        let r = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if r < 0 {
            return Err(Error::last("rte_eal_init"));
        }
        Ok(Eal { _private: () })
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: EAL was initialised by this value; the runtime dir string is EAL's own,
        // copied before cleanup; cleanup is called once, at the end.
        let dir = unsafe {
            let p = dpdk_sys::rte_eal_get_runtime_dir();
            let d =
                (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned());
            dpdk_sys::rte_eal_cleanup();
            d
        };
        // EAL creates /var/run/dpdk/<file-prefix> even with --in-memory and leaves it behind;
        // an empty one is ours to remove (rmdir refuses a non-empty one, which is right).
        if let Some(d) = dir {
            let _ = std::fs::remove_dir(d);
        }
    }
}
