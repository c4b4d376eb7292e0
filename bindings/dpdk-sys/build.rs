//! Generates bindings to the system DPDK (pkg-config `libdpdk`) and compiles the shim that
//! re-exports DPDK's static inline fast-path functions. Also tells the `dpdk` crate where the
//! PMD plugins live (Debian ships PMDs as plugins, loaded with EAL `-d`).

use std::env;
use std::path::PathBuf;

fn main() {
    let lib = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .expect("DPDK 22.11 development files (pkg-config libdpdk): run scripts/setup.sh");
    let pmds = pkg_config::get_variable("libdpdk", "pmdsdir")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| {
            // Debian's .pc has no pmdsdir: the plugins sit in <libdir>/dpdk/pmds-<ABI>.
            let libdir = pkg_config::get_variable("libdpdk", "libdir").ok()?;
            let base = std::path::Path::new(&libdir).join("dpdk");
            let found = std::fs::read_dir(&base)
                .ok()?
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("pmds-"))
                })?;
            Some(found.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    println!("cargo:rustc-env=DPDK_PMD_DIR={pmds}");
    println!("cargo:rustc-env=DPDK_VERSION={}", lib.version);

    // pkg-config's cflags carry -include rte_config.h and -march; pass them to both tools.
    let out = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .expect("pkg-config");
    let flags: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();

    let mut cc = cc::Build::new();
    cc.file("shim.c").opt_level(3).warnings(false);
    for f in &flags {
        cc.flag(f);
    }
    cc.compile("fgshim");

    let b = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(flags.iter().filter(|f| !f.starts_with("-march")))
        .allowlist_function("fg_.*")
        .allowlist_function("rte_eal_init|rte_eal_cleanup|rte_eal_get_runtime_dir|rte_eal_remote_launch|rte_eal_wait_lcore|rte_eal_get_lcore_state")
        .allowlist_function("rte_strerror|rte_version|rte_get_main_lcore|rte_lcore_count|rte_lcore_is_enabled|rte_socket_id|rte_lcore_to_socket_id")
        .allowlist_function("rte_pktmbuf_pool_create|rte_mempool_free|rte_mempool_avail_count|rte_mempool_in_use_count|rte_pktmbuf_free_bulk")
        .allowlist_function("rte_eth_dev_.*|rte_eth_rx_queue_setup|rte_eth_tx_queue_setup|rte_eth_stats_get|rte_eth_xstats_.*|rte_eth_link_get_nowait|rte_eth_macaddr_get|rte_eth_promiscuous_.*|rte_eth_dev_count_avail|rte_eth_find_next_owned_by")
        .allowlist_function("rte_dev_probe|rte_dev_remove|rte_vdev_init|rte_vdev_uninit")
        .allowlist_function("rte_ring_create|rte_ring_free")
        .allowlist_type("rte_mbuf|rte_mempool|rte_ring|rte_eth_.*|rte_ether_addr|lcore_function_t")
        .allowlist_var("RTE_MBUF_F_RX_RSS_HASH|RTE_ETH_RSS_.*|RTE_ETH_MQ_RX_RSS|RTE_ETH_MQ_RX_NONE|RING_F_.*|RTE_PKTMBUF_HEADROOM|RTE_MBUF_DEFAULT_BUF_SIZE|RTE_ETH_NAME_MAX_LEN|RTE_MAX_ETHPORTS|RTE_ETH_LINK_UP")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    let bindings = b.generate().expect("bindgen over DPDK headers");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("write bindings");
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=wrapper.h");
}
