//! VXLAN interop with the Linux kernel: a kernel VXLAN device in a namespace is one VTEP,
//! ferrogate the other, cross-connecting the VNI to a port where a second namespace sits on
//! the same overlay subnet. Pings cross in both directions (ARP included, as it is carried
//! in the tunnel like any frame), and the tunnel's counters show the traffic.

use tests::{require_env, Daemon, Netns, Veth};

fn ping(ns: &Netns, dst: &str) -> Result<String, String> {
    ns.exec(&["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", dst])
}

#[test]
fn linux_vxlan_and_ferrogate_exchange_pings_both_ways() {
    require_env();
    // peer: the underlay (10.1.0.2) and the kernel VTEP; host: an overlay host.
    let peer = Netns::new("vxp");
    let host = Netns::new("vxh");
    let wan = Veth::new(&peer, &["10.1.0.2/24"]);
    let lan = Veth::new(&host, &["192.168.42.1/24"]);
    peer.ip(&[
        "link", "add", "vx0", "type", "vxlan", "id", "42", "local", "10.1.0.2", "remote",
        "10.1.0.1", "dstport", "4789", "dev", &wan.inner,
    ]);
    peer.ip(&["addr", "add", "192.168.42.2/24", "dev", "vx0"]);
    peer.ip(&["link", "set", "vx0", "up"]);
    // The overlay MTU leaves room for the 50 bytes of VXLAN over IPv4 on the 1500 underlay.
    host.ip(&["link", "set", &lan.inner, "mtu", "1450"]);

    let d = Daemon::start(
        "vxlan",
        "",
        &format!(
            r#"
[[ports]]
name = "wan"
devargs = "net_af_packet_{w}0,iface={w}"
[[ports]]
name = "lan"
devargs = "net_af_packet_{l}1,iface={l}"
[[workers]]
lcore = 1
rx = ["wan:0", "lan:0"]
[[interfaces]]
name = "wan"
port = "wan"
addresses = ["10.1.0.1/24"]
[[tunnels]]
name = "vx42"
profile = "vxlan"
local = "10.1.0.1"
remote = "10.1.0.2"
key = 42
[[xconnects]]
name = "lan-vx42"
port = "lan"
tunnel = "vx42"
"#,
            w = wan.outer,
            l = lan.outer
        ),
    );
    // The first frames may be dropped while the gateway resolves the peer VTEP's MAC: one
    // warm-up ping, then the measured ones.
    let _ = host.exec(&[
        "ping",
        "-n",
        "-c",
        "2",
        "-i",
        "0.5",
        "-W",
        "1",
        "192.168.42.2",
    ]);
    let out = ping(&host, "192.168.42.2").expect("overlay host -> kernel VTEP through VXLAN");
    assert!(out.contains("3 received"), "{out}");
    let out = ping(&peer, "192.168.42.1").expect("kernel VTEP -> overlay host through VXLAN");
    assert!(out.contains("3 received"), "{out}");

    let t = d.json(&["show", "tunnels", "vx42"]);
    assert_eq!(t["profile"], "vxlan");
    assert!(t["rx_packets"].as_u64().unwrap() >= 6, "{t}");
    assert!(t["tx_packets"].as_u64().unwrap() >= 6, "{t}");
    assert_eq!(t["attached"], "xconnect lan-vx42");
    assert_eq!(t["mtu"], 1450, "auto: 1500 - 50");
    let errs = d.errors();
    for r in [
        "tunnel-no-match",
        "udp-bad-checksum",
        "vxlan-i-flag-clear",
        "mtu-exceeded",
    ] {
        assert!(!errs.contains_key(r), "{r}: {errs:?}");
    }
    let st = d.stop();
    assert_eq!(st.code, Some(0), "{}", st.log);
    assert!(st.log.contains("mbufs in use at exit: 0"), "{}", st.log);
}
