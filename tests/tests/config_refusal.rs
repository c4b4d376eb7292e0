//! A bad config is refused with a message naming what is wrong, the daemon exits non-zero and
//! leaves nothing behind (no socket, no DPDK runtime files).

use tests::{require_env, Daemon};

const OK_PORT: &str =
    "[[ports]]\nname = \"p\"\ndevargs = \"net_null0\"\n[[workers]]\nlcore = 1\nrx = [\"p:0\"]\n";

fn refused(tag: &str, body: &str, needle: &str) {
    let err = match Daemon::try_start(tag, "", body) {
        Ok(d) => {
            drop(d);
            panic!("config accepted, expected refusal mentioning '{needle}'");
        }
        Err(e) => e,
    };
    assert!(
        err.contains("exited during start-up (exit status: 1)"),
        "{err}"
    );
    assert!(
        err.contains(needle),
        "message should name '{needle}': {err}"
    );
}

#[test]
fn unknown_key_bad_address_absent_lcore_and_failing_devargs_are_refused() {
    require_env();
    refused(
        "cfgkey",
        &format!("{OK_PORT}[[interfaces]]\nname = \"p\"\nport = \"p\"\nadress = []\n"),
        "unknown field `adress`",
    );
    refused(
        "cfgaddr",
        &format!("{OK_PORT}[[interfaces]]\nname = \"p\"\nport = \"p\"\naddresses = [\"10.0.0.300/24\"]\n"),
        "interfaces[0].addresses[0]: '10.0.0.300/24'",
    );
    refused(
        "cfglcore",
        &OK_PORT.replace("lcore = 1", "lcore = 77"),
        "workers[0].lcore: lcore 77 does not exist",
    );
    refused(
        "cfgdev",
        &OK_PORT.replace("net_null0", "net_pcap0,rx_pcap=/nonexistent/in.pcap"),
        "ports[0].devargs: port 'p': 'net_pcap0,rx_pcap=/nonexistent/in.pcap' failed",
    );
    // Nothing left behind by the one that got as far as DPDK.
    let leftovers: Vec<_> = std::fs::read_dir("/var/run/dpdk")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("fgcfg"))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        leftovers.is_empty(),
        "DPDK runtime files left: {leftovers:?}"
    );
}
