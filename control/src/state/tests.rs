//! Validation of whole configs (every refusal names its field) and table building.

use super::*;
use crate::build::{build_tables, Neighbors, Runtime};
use dataplane::tables::fib::NextHop;

const BASE: &str = r#"
[system]
main_lcore = 0
[[ports]]
name = "wan"
devargs = "net_null0"
[[ports]]
name = "lan"
devargs = "net_null1"
[[workers]]
lcore = 1
rx = ["wan:0", "lan:0"]
[[interfaces]]
name = "wan"
port = "wan"
addresses = ["192.0.2.1/24", "2001:db8::1/64"]
[[interfaces]]
name = "lan"
port = "lan"
addresses = ["10.0.0.1/24"]
[[interfaces]]
name = "lan100"
port = "lan"
vlan = 100
addresses = ["10.100.0.1/24"]
[[neighbors]]
ip = "192.0.2.2"
mac = "02:00:00:00:00:99"
interface = "wan"
[[routes]]
prefix = "0.0.0.0/0"
via = "192.0.2.2"
[[routes]]
prefix = "10.9.0.0/16"
via = "10.0.0.254"
[[routes]]
prefix = "198.51.100.0/24"
blackhole = true
"#;

fn state(extra: &str) -> Result<State, String> {
    let raw = RawConfig::parse(&format!("{BASE}{extra}"))?;
    State::from_config(&raw)
}

fn refused(cfg: &str, needle: &str) {
    let e = match RawConfig::parse(cfg).and_then(|r| State::from_config(&r)) {
        Ok(_) => panic!("accepted, expected an error containing '{needle}'"),
        Err(e) => e,
    };
    assert!(
        e.contains(needle),
        "error '{e}' does not contain '{needle}'"
    );
}

#[test]
fn base_config_is_valid() {
    let s = state("").unwrap();
    assert_eq!(s.ports[0].queues, 1);
    assert_eq!(s.ifaces[2].vlan, 100);
    assert_eq!(s.routes.len(), 3);
}

#[test]
fn every_refusal_names_the_field_and_value() {
    let lcore_absent = online_cpus().iter().max().unwrap() + 1;
    refused(
        &BASE.replace("lcore = 1", &format!("lcore = {lcore_absent}")),
        &format!("workers[0].lcore: lcore {lcore_absent} does not exist"),
    );
    refused(
        &BASE.replace("lcore = 1", "lcore = 0"),
        "workers[0].lcore: lcore 0 is system.main_lcore",
    );
    refused(
        &BASE.replace("192.0.2.1/24", "192.0.2.300/24"),
        "interfaces[0].addresses[0]: '192.0.2.300/24'",
    );
    refused(
        &BASE.replace("\"wan:0\", ", ""),
        "port 'wan': no worker polls it",
    );
    refused(
        &BASE.replace("\"wan:0\"", "\"wan:1\""),
        "port 'wan': queue 0 is polled by no worker",
    );
    refused(
        &BASE.replace("\"wan:0\"", "\"wen:0\""),
        "workers[0].rx[0]: no port named 'wen'",
    );
    refused(
        &BASE.replace("devargs = \"net_null1\"", "devargs = \"net_null0\""),
        "ports[1].devargs: 'net_null0' is used by another port",
    );
    refused(
        &BASE.replace("via = \"10.0.0.254\"", "via = \"172.31.0.1\""),
        "routes[1].via: 172.31.0.1 is not on any connected subnet",
    );
    refused(
        &BASE.replace("via = \"10.0.0.254\"", "via = \"10.0.0.1\""),
        "routes[1].via: 10.0.0.1 is one of our own addresses",
    );
    refused(
        &BASE.replace("10.9.0.0/16", "0.0.0.0/0"),
        "routes[1].prefix: 0.0.0.0/0 already has a route",
    );
    refused(
        &BASE.replace("vlan = 100", "vlan = 4095"),
        "interfaces[2].vlan: 4095 is outside 1..=4094",
    );
    refused(
        &BASE.replace("10.100.0.1/24", "10.0.0.2/24"),
        "interface 'lan100'.addresses: subnet 10.0.0.0/24 is already on interface 'lan'",
    );
    refused(
        &BASE.replace("mac = \"02:00:00:00:00:99\"", "mac = \"02:00:00:00:99\""),
        "neighbors[0].mac",
    );
    refused(
        &format!("{BASE}\n[[routes]]\nprefix = \"10.8.0.0/16\"\n"),
        "routes[3].via: a route needs a gateway",
    );
    refused(&format!("{BASE}\nbogus = 1\n"), "bogus");
    refused(
        &BASE.replace("name = \"lan\"\ndevargs", "name = \"l an\"\ndevargs"),
        "ports[1].name: 'l an' is not a valid name",
    );
}

#[test]
fn tables_route_and_resolve() {
    let s = state("").unwrap();
    let rt = Runtime::fake(2);
    let mut dyn_n = Neighbors::new();
    let t = build_tables(&s, &rt, &dyn_n, 7, &Default::default()).unwrap();
    assert_eq!(t.version, 7);
    assert_eq!(t.ports[1].vlans, vec![(100, 2)]);
    // Our address: local. Default route: resolved via the static neighbor.
    assert!(matches!(
        t.fib.lookup4([192, 0, 2, 1]),
        Ok(NextHop::Local { ifindex: 0 })
    ));
    match t.fib.lookup4([8, 8, 8, 8]) {
        Ok(NextHop::Forward(a)) => {
            assert_eq!(
                (a.port, a.dst, a.src),
                (0, Mac([2, 0, 0, 0, 0, 0x99]), Mac([2, 0, 0, 0, 0, 1]))
            )
        }
        other => panic!("{other:?}"),
    }
    // Gateway not resolved yet; connected subnet gleans; blackhole.
    assert!(matches!(
        t.fib.lookup4([10, 9, 1, 1]),
        Ok(NextHop::Unresolved { ifindex: 1, .. })
    ));
    assert!(matches!(
        t.fib.lookup4([10, 0, 0, 7]),
        Ok(NextHop::Glean { ifindex: 1 })
    ));
    assert!(matches!(
        t.fib.lookup4([198, 51, 100, 1]),
        Ok(NextHop::Blackhole)
    ));
    assert!(t
        .fib
        .lookup6([0x20, 0x01, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5])
        .is_ok());
    assert!(t.fib.lookup6([0x30; 16]).is_err());

    // Resolving the gateway and a host turns both into adjacencies (VLAN for lan100).
    dyn_n.insert(
        (1, "10.0.0.254".parse().unwrap()),
        Mac([2, 0, 0, 0, 0, 0xfe]),
    );
    dyn_n.insert(
        (2, "10.100.0.5".parse().unwrap()),
        Mac([2, 0, 0, 0, 0, 0x05]),
    );
    let t = build_tables(&s, &rt, &dyn_n, 8, &Default::default()).unwrap();
    assert!(matches!(t.fib.lookup4([10, 9, 1, 1]), Ok(NextHop::Forward(a)) if a.dst.0[5] == 0xfe));
    assert!(matches!(t.fib.lookup4([10, 100, 0, 5]), Ok(NextHop::Forward(a)) if a.vlan == 100));
}

#[test]
fn route_add_del_on_a_copy() {
    let s = state("").unwrap();
    let mut c = s.clone();
    let r = c
        .parse_route(&RawRoute {
            prefix: "10.50.0.0/16".into(),
            via: Some("10.0.0.9".into()),
            ..Default::default()
        })
        .unwrap();
    c.add_route(r.clone()).unwrap();
    assert!(c.add_route(r).unwrap_err().contains("already has a route"));
    c.del_route(Prefix::parse("10.50.0.0/16").unwrap()).unwrap();
    assert_eq!(c, s);
    assert!(c
        .del_route(Prefix::parse("10.51.0.0/16").unwrap())
        .unwrap_err()
        .contains("no route for"));
    let e = c.parse_route(&RawRoute {
        prefix: "10.0.0.0/33".into(),
        blackhole: true,
        ..Default::default()
    });
    assert!(e.unwrap_err().starts_with("prefix:"));
}

#[test]
fn lcore_placement_lets_two_workers_share_a_cpu() {
    let cfg = BASE
        .replace(
            "[system]\nmain_lcore = 0",
            "[system]\nmain_lcore = 0\n[system.lcore_cpus]\n\"1\" = 1\n\"2\" = 1",
        )
        .replace(
            "rx = [\"wan:0\", \"lan:0\"]",
            "rx = [\"wan:0\"]\n[[workers]]\nlcore = 2\nrx = [\"lan:0\"]",
        );
    let s = State::from_config(&RawConfig::parse(&cfg).unwrap()).unwrap();
    assert_eq!(s.workers.len(), 2);
    assert_eq!(s.lcore_cpu(2), 1);
    let bad = cfg.replace("\"2\" = 1", "\"2\" = 99");
    refused(&bad, "system.lcore_cpus.2: CPU 99 does not exist");
}

#[test]
fn replay_window_zero_turns_anti_replay_off_but_not_with_esn() {
    let sa = |extra: &str| {
        format!(
            r#"
[ipsec]
[[ipsec.sa]]
name = "in1"
spi = 4096
direction = "in"
src = "192.0.2.2"
dst = "192.0.2.1"
encryption = "aes-gcm-128"
key = "000102030405060708090a0b0c0d0e0f10111213"
{extra}
"#
        )
    };
    state(&sa("replay_window = 0")).expect("window 0 (off) is valid");
    state(&sa("replay_window = 128\nesn = true")).expect("ESN with a window is valid");
    let e = state(&sa("replay_window = 0\nesn = true")).unwrap_err();
    assert!(
        e.contains("replay_window: 0 (off) cannot be combined with esn"),
        "{e}"
    );
    let e = state(&sa("replay_window = 100")).unwrap_err();
    assert!(e.contains("replay_window: 100"), "{e}");
}
