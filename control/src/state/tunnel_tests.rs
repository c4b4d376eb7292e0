//! Tunnels and cross-connects in the object model: what is accepted and built into tables,
//! and every refusal naming its field.

use super::tests::{refused, BASE};
use super::*;
use crate::build::{build_tables, Neighbors, Runtime};
use crate::config::{RawTunnel, RawXconnect};
use dataplane::tables::fib::NextHop;
use dataplane::tables::iface::XCONNECT_PORT;
use dataplane::tables::tunnels::Attach;

/// BASE plus: GRE (key 7) to 192.0.2.9 addressed 172.30.0.1/30 with a route into it, VXLAN
/// VNI 100 and 101 to the same peer cross-connected to lan VLAN 300 and 301, Geneve carrying
/// IP, an IPv6 ip4ip6, an inbound-only GRE from any remote.
const TUNNELS: &str = r#"
[[tunnels]]
name = "gre1"
profile = "gre"
local = "192.0.2.1"
remote = "192.0.2.9"
key = 7
addresses = ["172.30.0.1/30"]
[[tunnels]]
name = "vx100"
profile = "vxlan"
local = "192.0.2.1"
remote = "192.0.2.9"
key = 100
[[tunnels]]
name = "vx101"
profile = "vxlan"
local = "192.0.2.1"
remote = "192.0.2.9"
key = 101
mtu = 1400
[[tunnels]]
name = "gnv"
profile = "geneve"
local = "192.0.2.1"
remote = "192.0.2.9"
key = 5
payload = "ip"
addresses = ["172.31.0.1/30"]
[[tunnels]]
name = "v6"
profile = "ip4ip6"
local = "2001:db8::1"
remote = "2001:db8::9"
addresses = ["172.29.0.1/30"]
[[tunnels]]
name = "anygre"
profile = "gre"
local = "192.0.2.1"
remote = "any"
key = 9
mode = "inbound"
[[xconnects]]
name = "x300"
port = "lan"
vlan = 300
tunnel = "vx100"
[[xconnects]]
name = "x301"
port = "lan"
vlan = 301
tunnel = "vx101"
[[routes]]
prefix = "10.77.0.0/16"
interface = "gre1"
[[routes]]
prefix = "10.78.0.0/16"
via = "172.31.0.2"
"#;

fn cfg() -> String {
    format!("{BASE}{TUNNELS}")
}

fn st() -> State {
    State::from_config(&RawConfig::parse(&cfg()).unwrap()).unwrap()
}

#[test]
fn tunnels_become_interfaces_routes_and_cross_connects() {
    let s = st();
    assert_eq!(s.tunnels.len(), 6);
    let rt = Runtime::fake(2);
    let mut states = Default::default();
    let t = build_tables(
        &s,
        &rt,
        &Neighbors::new(),
        1,
        &Default::default(),
        &mut states,
    )
    .unwrap();
    assert_eq!(t.tunnels.entries().len(), 6);
    // Interface 3 + k is tunnel k; its address is local, its subnet and routes go into it.
    let gre = s.tunnel_ifindex(0) as u16;
    assert!(
        matches!(t.fib.lookup4([172, 30, 0, 1]), Ok(NextHop::Local { ifindex }) if *ifindex == gre)
    );
    assert!(matches!(
        t.fib.lookup4([172, 30, 0, 2]),
        Ok(NextHop::Tunnel { tunnel: 0 })
    ));
    assert!(matches!(
        t.fib.lookup4([10, 77, 1, 1]),
        Ok(NextHop::Tunnel { tunnel: 0 })
    ));
    assert!(matches!(
        t.fib.lookup4([10, 78, 1, 1]),
        Ok(NextHop::Tunnel { tunnel: 3 })
    ));
    assert!(matches!(
        t.fib.lookup4([172, 29, 0, 2]),
        Ok(NextHop::Tunnel { tunnel: 4 })
    ));
    // Auto MTU: underlay 1500 minus IPv4 20 + GRE 8 (key); VXLAN frames 1500 - 36;
    // configured 1400 = inner IP MTU, 1414 as a frame; ip4ip6: 1500 - 40.
    let e = t.tunnels.entries();
    assert_eq!(
        (e[0].mtu, e[1].mtu, e[2].mtu, e[4].mtu),
        (1472, 1464, 1414, 1460)
    );
    assert_eq!(t.interfaces[gre as usize].mtu, 1472);
    assert_eq!(e[0].attach, Attach::L3 { ifindex: gre });
    assert_eq!(e[1].attach, Attach::Xconnect { port: 1, vlan: 300 });
    assert!(e[5].inbound_only);
    assert_eq!(t.ports[1].xconnects, vec![(300, 1), (301, 2)]);
    // Counters live across rebuilds, by name.
    let before = states["gre1"].clone();
    let t2 = build_tables(
        &s,
        &rt,
        &Neighbors::new(),
        2,
        &Default::default(),
        &mut states,
    )
    .unwrap();
    assert!(std::sync::Arc::ptr_eq(
        &t2.tunnels.entries()[0].shared,
        &before
    ));
}

#[test]
fn whole_port_cross_connect() {
    let c = cfg().replace(
        "[[xconnects]]\nname = \"x301\"\nport = \"lan\"\nvlan = 301\ntunnel = \"vx101\"",
        "",
    );
    // A port of its own: a third port with no interface.
    let c = c.replace(
        "[[workers]]\nlcore = 1\nrx = [\"wan:0\", \"lan:0\"]",
        "[[ports]]\nname = \"cust\"\ndevargs = \"net_null2\"\n[[workers]]\nlcore = 1\nrx = [\"wan:0\", \"lan:0\", \"cust:0\"]\n[[xconnects]]\nname = \"whole\"\nport = \"cust\"\ntunnel = \"vx101\"",
    );
    let s = State::from_config(&RawConfig::parse(&c).unwrap()).unwrap();
    let t = build_tables(
        &s,
        &Runtime::fake(3),
        &Neighbors::new(),
        1,
        &Default::default(),
        &mut Default::default(),
    )
    .unwrap();
    assert_eq!(t.ports[2].xconnects, vec![(XCONNECT_PORT, 2)]);
    assert_eq!(
        t.tunnels.entries()[2].attach,
        Attach::Xconnect { port: 2, vlan: 0 }
    );
}

#[test]
fn tunnel_refusals_name_the_field() {
    let c = cfg();
    let one = |from: &str, to: &str, needle: &str| {
        assert!(c.contains(from), "{from}");
        refused(&c.replacen(from, to, 1), needle)
    };
    one(
        "profile = \"gre\"",
        "profile = \"l2tp\"",
        "tunnels[0].profile: 'l2tp': must be one of",
    );
    one(
        "remote = \"192.0.2.9\"\nkey = 100",
        "remote = \"any\"\nkey = 100",
        "tunnels[1].remote: 'any' is only for gre",
    );
    one(
        "key = 100",
        "key = 16777216",
        "tunnels[1].key: vxlan VNI 16777216 does not fit in 24 bits",
    );
    one("key = 100", "", "tunnels[1].key: vxlan needs a key");
    one(
        "key = 101",
        "key = 100",
        "tunnels[2]: tunnel 'vx100' already has the same local, remote, profile, port and key",
    );
    one(
        "local = \"192.0.2.1\"",
        "local = \"192.0.2.77\"",
        "tunnels[0].local: 192.0.2.77 is not an address of any interface",
    );
    one(
        "local = \"2001:db8::1\"",
        "local = \"192.0.2.1\"",
        "tunnels[4].remote: 2001:db8::9 is not of the family of local 192.0.2.1",
    );
    one(
        "profile = \"ip4ip6\"",
        "profile = \"ip6ip4\"",
        "tunnels[4].local: 2001:db8::1: profile ip6ip4 runs over IPv4",
    );
    one(
        "mode = \"inbound\"",
        "",
        "tunnels[5].mode: a tunnel with remote any cannot send",
    );
    one("mtu = 1400", "mtu = 100", "tunnels[2].mtu: 100 is outside");
    one(
        "key = 100",
        "key = 100\naddresses = [\"10.1.1.1/24\"]",
        "tunnels[1].addresses: profile vxlan is an L2 tunnel",
    );
    one(
        "name = \"vx101\"\nprofile = \"vxlan\"",
        "name = \"vx101\"\nprofile = \"geneve\"\nport = 4789",
        "tunnels[2].port: UDP 4789 already carries vxlan",
    );
    one(
        "payload = \"ip\"",
        "payload = \"ip\"\ngeneve_options = \"0001\"",
        "tunnels[3].geneve_options: not a list of whole option TLVs",
    );
    one(
        "name = \"gre1\"",
        "name = \"lan\"",
        "tunnels[0].name: 'lan' is already an interface, tunnel or VTI",
    );
    one(
        "tunnel = \"vx100\"",
        "tunnel = \"gre1\"",
        "xconnects[0].tunnel: 'gre1' carries IP",
    );
    one(
        "tunnel = \"vx100\"",
        "tunnel = \"vx101\"",
        "xconnects[1].tunnel: 'vx101' is already cross-connected by 'x300'",
    );
    one(
        "vlan = 300",
        "vlan = 100",
        "xconnects[0].vlan: port 'lan' vlan 100 is interface 'lan100'",
    );
    one(
        "vlan = 300\n",
        "",
        "xconnects[0].vlan: a whole-port cross-connect needs port 'lan' to itself",
    );
    one(
        "interface = \"gre1\"",
        "interface = \"vx100\"",
        "interface: tunnel 'vx100' is an L2 tunnel",
    );
    one(
        "addresses = [\"172.30.0.1/30\"]",
        "addresses = [\"10.0.0.9/24\"]",
        "subnet 10.0.0.0/24 is already on interface 'lan'",
    );
}

#[test]
fn add_and_delete_at_runtime_respect_references() {
    let mut s = st();
    assert!(s
        .del_tunnel("gre1")
        .unwrap_err()
        .contains("egress of route 10.77.0.0/16"));
    assert!(s
        .del_tunnel("vx100")
        .unwrap_err()
        .contains("used by xconnect 'x300'"));
    s.del_xconnect("x300").unwrap();
    s.del_tunnel("vx100").unwrap();
    assert!(s
        .del_tunnel("vx100")
        .unwrap_err()
        .contains("no tunnel named"));
    let raw = RawTunnel {
        name: "eip".into(),
        profile: "etherip".into(),
        local: "192.0.2.1".into(),
        remote: "192.0.2.10".into(),
        ..Default::default()
    };
    s.add_tunnel("tunnel 'eip'", &raw).unwrap();
    s.add_xconnect(
        "xconnect 'e'",
        &RawXconnect {
            name: "e".into(),
            port: "lan".into(),
            vlan: Some(300),
            tunnel: "eip".into(),
        },
    )
    .unwrap();
    assert!(s
        .add_tunnel("tunnel 'eip'", &raw)
        .unwrap_err()
        .contains("already an interface, tunnel or VTI"));
}
