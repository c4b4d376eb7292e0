//! Two ferrogate instances with mirrored manual SAs, each on `net_af_packet`: host A (a
//! network namespace) -- gw1 -- wan veth pair -- gw2 -- host B (another namespace).
//!
//! - Route-based IPsec: a VTI on each side, a route into it; ping crosses, the VTI's SAs count
//!   it; removing the route stops it (no cleartext leaks, no encryption); a policy-based
//!   tunnel for other subnets works beside it; wrong keys and unknown SPIs are logged with the
//!   reference texts.
//! - Make-before-break rekey under sequence-numbered UDP streams both ways: new SAs attached,
//!   an inbound SA deleted while the peer still uses it (the grace period carries it), old
//!   outbound SAs deleted; the streams lose nothing.

use std::process::Child;
use std::time::Duration;
use tests::{require_env, run, unique, wait_until, Daemon, Netns, Veth};

/// A veth pair with both ends in the root namespace (the wan between the gateways).
struct Wire {
    a: String,
    b: String,
}

impl Wire {
    fn new() -> Wire {
        let t = unique("w");
        let w = Wire {
            a: format!("{t}a"),
            b: format!("{t}b"),
        };
        tests::must(
            "ip",
            &["link", "add", &w.a, "type", "veth", "peer", "name", &w.b],
        );
        for i in [&w.a, &w.b] {
            let _ = run(
                "sysctl",
                &["-qw", &format!("net.ipv6.conf.{i}.disable_ipv6=1")],
            );
            tests::must("ip", &["link", "set", i, "up"]);
        }
        w
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        let _ = run("ip", &["link", "del", &self.a]);
    }
}

struct Topo {
    a: Netns,
    b: Netns,
    va: Veth,
    vb: Veth,
    wan: Wire,
}

/// A: 10.0.1.2/24 (and 10.0.4.2 on lo); B: 10.0.2.2/24 (and 10.0.3.1 on lo).
fn topo() -> Topo {
    let a = Netns::new("ia");
    let b = Netns::new("ib");
    let va = Veth::new(&a, &["10.0.1.2/24"]);
    let vb = Veth::new(&b, &["10.0.2.2/24"]);
    a.ip(&["addr", "add", "10.0.4.2/32", "dev", "lo"]);
    b.ip(&["addr", "add", "10.0.3.1/32", "dev", "lo"]);
    a.ip(&["route", "add", "default", "via", "10.0.1.1"]);
    b.ip(&["route", "add", "default", "via", "10.0.2.1"]);
    Topo {
        a,
        b,
        va,
        vb,
        wan: Wire::new(),
    }
}

const K1: &str = "1111111111111111111111111111111111111111";
const K2: &str = "2222222222222222222222222222222222222222";
const K3: &str = "3333333333333333333333333333333333333333";
const K4: &str = "4444444444444444444444444444444444444444";
const WRONG: &str = "1111111111111111111111111111111111111112";

/// Ports, one worker, interfaces. `n` is 1 or 2 (which gateway).
fn base(n: u8, lan: &str, wan: &str) -> String {
    let lan_net = if n == 1 { "10.0.1.1/24" } else { "10.0.2.1/24" };
    format!(
        r#"
[[ports]]
name = "lan"
devargs = "net_af_packet_{lan}0,iface={lan}"
[[ports]]
name = "wan"
devargs = "net_af_packet_{wan}1,iface={wan}"
[[workers]]
lcore = 1
rx = ["lan:0", "wan:0"]
[[interfaces]]
name = "lan"
port = "lan"
addresses = ["{lan_net}"]
[[interfaces]]
name = "wan"
port = "wan"
addresses = ["192.168.100.{n}/24"]
"#
    )
}

/// One SA of gateway `n`: outbound SAs go from it to the other one.
fn sa(n: u8, name: &str, spi: u32, out: bool, key: &str) -> String {
    let (me, them) = (n, 3 - n);
    let (src, dst) = if out { (me, them) } else { (them, me) };
    format!(
        "[[ipsec.sa]]\nname = \"{name}\"\nspi = {spi}\ndirection = \"{}\"\nsrc = \"192.168.100.{src}\"\ndst = \"192.168.100.{dst}\"\nencryption = \"aes-gcm-128\"\nkey = \"{key}\"\n",
        if out { "out" } else { "in" }
    )
}

/// `ferroctl sa add` arguments for the same SA.
fn sa_args(n: u8, name: &str, spi: u32, out: bool, key: &str, attach: &[&str]) -> Vec<String> {
    let (me, them) = (n, 3 - n);
    let (src, dst) = if out { (me, them) } else { (them, me) };
    let mut v: Vec<String> = [
        "sa",
        "add",
        name,
        "--spi",
        &format!("{spi:#x}"),
        "--direction",
        if out { "out" } else { "in" },
        "--src",
        &format!("192.168.100.{src}"),
        "--dst",
        &format!("192.168.100.{dst}"),
        "--encryption",
        "aes-gcm-128",
        "--key",
        key,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(attach.iter().map(|s| s.to_string()));
    v
}

fn ctl(d: &Daemon, args: &[String]) -> String {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    d.ctl_ok(&a)
}

fn ping(ns: &Netns, args: &[&str]) -> Result<String, String> {
    let mut a = vec!["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2"];
    a.extend_from_slice(args);
    ns.exec(&a)
}

/// Packets counted on SA `name` of `d`.
fn sa_packets(d: &Daemon, name: &str) -> Option<u64> {
    let rows = d.json(&["show", "ipsec", "sa", "--name", name]);
    rows.as_array()?.first()?["packets"].as_u64()
}

fn err(d: &Daemon, reason: &str) -> u64 {
    d.errors().get(reason).copied().unwrap_or(0)
}

#[test]
fn vti_carries_routed_traffic_beside_a_policy_and_rejects_are_logged() {
    require_env();
    let t = topo();
    // gw1: VTI to gw2 for 10.0.2.0/24; policy-based 10.0.4.0/24 <-> 10.0.3.0/24.
    let gw1 = format!(
        "{}{}{}{}{}{}",
        base(1, &t.va.outer, &t.wan.a),
        r#"
[[routes]]
prefix = "10.0.2.0/24"
interface = "vti0"
[[routes]]
prefix = "10.0.3.0/24"
via = "192.168.100.2"
[[routes]]
prefix = "10.0.4.0/24"
via = "10.0.1.2"
[ipsec]
[[ipsec.vti]]
name = "vti0"
sa_out = "vti-out"
sa_in = ["vti-in"]
addresses = ["172.16.0.5/30"]
[[ipsec.policy]]
name = "nets"
priority = 10
direction = "both"
src = "10.0.4.0/24"
dst = "10.0.3.0/24"
action = "protect"
sa = ["pol-out"]
sa_in = ["pol-in"]
"#,
        sa(1, "vti-out", 0x1001, true, K1),
        sa(1, "vti-in", 0x2001, false, K2),
        sa(1, "pol-out", 0x1101, true, K3),
        sa(1, "pol-in", 0x2101, false, K4),
    );
    let gw2 = format!(
        "{}{}{}{}{}{}",
        base(2, &t.vb.outer, &t.wan.b),
        r#"
[[routes]]
prefix = "10.0.1.0/24"
interface = "vti0"
[[routes]]
prefix = "10.0.4.0/24"
via = "192.168.100.1"
[[routes]]
prefix = "10.0.3.0/24"
via = "10.0.2.2"
[ipsec]
[[ipsec.vti]]
name = "vti0"
sa_out = "vti-out"
sa_in = ["vti-in"]
addresses = ["172.16.0.6/30"]
[[ipsec.policy]]
name = "nets"
priority = 10
direction = "both"
src = "10.0.3.0/24"
dst = "10.0.4.0/24"
action = "protect"
sa = ["pol-out"]
sa_in = ["pol-in"]
"#,
        sa(2, "vti-out", 0x2001, true, K2),
        sa(2, "vti-in", 0x1001, false, K1),
        sa(2, "pol-out", 0x2101, true, K4),
        sa(2, "pol-in", 0x1101, false, K3),
    );
    let d1 = Daemon::start("vti1", "", &gw1);
    let d2 = Daemon::start("vti2", "", &gw2);
    // Neighbors resolve on the first packets; then the tunnel answers.
    wait_until("A reaches B through the VTIs", 30, || {
        ping(&t.a, &["-c", "1", "10.0.2.2"]).is_ok()
    });
    let (o1, i2) = (
        sa_packets(&d1, "vti-out").unwrap(),
        sa_packets(&d2, "vti-in").unwrap(),
    );
    let out = ping(&t.a, &["10.0.2.2"]).expect("ping A -> B over the VTI");
    assert!(out.contains("ttl=62"), "two routed hops: {out}");
    assert_eq!(sa_packets(&d1, "vti-out").unwrap(), o1 + 3);
    assert_eq!(sa_packets(&d2, "vti-in").unwrap(), i2 + 3);
    assert!(
        sa_packets(&d2, "vti-out").unwrap() >= 3,
        "replies over gw2's VTI"
    );
    // gw2's own VTI address answers through the tunnel (its host stack has the VTI).
    ping(&t.a, &["-c", "2", "172.16.0.6"]).expect("ping gw2's VTI address");

    // Policy-based beside it, between the other subnets: its own SAs count it.
    let (v1, p1) = (
        sa_packets(&d1, "vti-out").unwrap(),
        sa_packets(&d1, "pol-out").unwrap(),
    );
    wait_until("A reaches B's 10.0.3.1 through the policy", 20, || {
        ping(&t.a, &["-c", "1", "-I", "10.0.4.2", "10.0.3.1"]).is_ok()
    });
    ping(&t.a, &["-I", "10.0.4.2", "10.0.3.1"]).expect("policy-based ping");
    assert!(sa_packets(&d1, "pol-out").unwrap() >= p1 + 3);
    assert!(sa_packets(&d2, "pol-in").unwrap() >= 3);
    assert!(sa_packets(&d1, "pol-in").unwrap() >= 3, "replies by policy");
    assert_eq!(
        sa_packets(&d1, "vti-out").unwrap(),
        v1,
        "not through the VTI"
    );

    let ifs = d1.ctl_ok(&["show", "interfaces"]);
    assert!(
        ifs.lines().any(|l| l.starts_with("vti0")
            && l.contains("172.16.0.5/30")
            && l.contains("out vti-out in vti-in")),
        "{ifs}"
    );
    let routes = d1.ctl_ok(&["show", "routes"]);
    assert!(
        routes
            .lines()
            .any(|l| l.contains("10.0.2.0/24") && l.contains("vti0")),
        "{routes}"
    );
    let stats = d1.json(&["show", "ipsec", "stats"]);
    let vti_row = stats
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "vti")
        .unwrap();
    assert!(vti_row["packets_out"].as_u64().unwrap() >= 4, "{stats}");

    // Removing the route stops it: no route, nothing sealed, nothing leaks in clear.
    d1.ctl_ok(&["route", "del", "10.0.2.0/24"]);
    let before = (sa_packets(&d1, "vti-out").unwrap(), err(&d1, "no-route"));
    assert!(ping(&t.a, &["-c", "2", "10.0.2.2"]).is_err());
    assert_eq!(sa_packets(&d1, "vti-out").unwrap(), before.0);
    assert!(err(&d1, "no-route") >= before.1 + 2);
    ping(&t.a, &["-c", "1", "-I", "10.0.4.2", "10.0.3.1"]).expect("the policy still works");
    // And back.
    d1.ctl_ok(&["route", "add", "10.0.2.0/24", "dev", "vti0"]);
    ping(&t.a, &["-c", "2", "10.0.2.2"]).expect("route back into the VTI");

    // Rejects, logged rate-limited with the reference texts by the receiving gateway: a
    // wrong key on gw1's side (its new SA starts at sequence number 1, which gw2's window
    // has seen: replayed packets are refused before the ICV is even checked, so gw2 first
    // clears its inbound SA to a fresh window)...
    ctl(
        &d1,
        &sa_args(1, "vti-out-bad", 0x1001, true, WRONG, &["--vti", "vti0"]),
    );
    assert!(ping(&t.a, &["-c", "1", "10.0.2.2"]).is_err());
    wait_until("replay logged", 10, || {
        d2.log_text().lines().any(|l| {
            l.contains("Repeated/duplicate packet.") && l.contains("spi=0x00001001(4097) sa=vti-in")
        })
    });
    let packets_in = |d: &Daemon, kind: &str, name: &str| {
        d.json(&["show", "ipsec", "stats"])
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == kind && r["name"] == name)
            .unwrap()["packets_in"]
            .as_u64()
            .unwrap()
    };
    let mode_before = packets_in(&d2, "mode", "tunnel");
    let vti_before = packets_in(&d2, "vti", "vti0");
    assert!(mode_before >= 3 && vti_before >= 3);
    d2.ctl_ok(&["clear", "ipsec", "sa", "--spi", "0x1001"]);
    // The cleared SA's counters start again; the per-mode and per-VTI totals keep what it
    // counted.
    assert!(packets_in(&d2, "mode", "tunnel") >= mode_before);
    assert!(packets_in(&d2, "vti", "vti0") >= vti_before);
    assert!(ping(&t.a, &["-c", "2", "10.0.2.2"]).is_err());
    wait_until("auth failure logged", 10, || {
        d2.log_text().lines().any(|l| {
            l.contains("Authentication failure. Possibly mis-matching keys.")
                && l.contains("spi=0x00001001(4097)")
                && l.contains("peer=192.168.100.1")
        })
    });
    assert!(err(&d2, "esp-auth-failed") >= 2);
    // ... and an SPI gw2 does not know.
    ctl(
        &d1,
        &sa_args(1, "vti-out-unknown", 0x1999, true, K1, &["--vti", "vti0"]),
    );
    assert!(ping(&t.a, &["-c", "2", "10.0.2.2"]).is_err());
    wait_until("no inbound SA logged", 10, || {
        d2.log_text()
            .lines()
            .any(|l| l.contains("No Inbound SA Found.") && l.contains("spi=0x00001999(6553)"))
    });
    // Back to the right SA: `sa add --vti` replaced the VTI's outbound SA each time.
    ctl(
        &d1,
        &sa_args(1, "vti-out-2", 0x1001, true, K1, &["--vti", "vti0"]),
    );
    // gw2's replay window saw 0x1001 up to the earlier sequence numbers; the new SA starts
    // at 1 again, so gw2 clears its inbound end (as with any manual SA reset).
    d2.ctl_ok(&["clear", "ipsec", "sa", "--spi", "0x1001"]);
    ping(&t.a, &["-c", "2", "10.0.2.2"]).expect("good SA again");
    // A VTI is replaced through ferroctl: not while a route points into it.
    let e = d1.ctl(&["vti", "del", "vti0"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("used by route 10.0.2.0/24"));
    d1.ctl_ok(&["route", "del", "10.0.2.0/24"]);
    d1.ctl_ok(&["vti", "del", "vti0"]);
    assert!(!d1.ctl_ok(&["show", "interfaces"]).contains("vti0"));
    d1.ctl_ok(&[
        "vti",
        "add",
        "vti0",
        "--sa-out",
        "vti-out-2",
        "--sa-in",
        "vti-in",
        "--address",
        "172.16.0.5/30",
    ]);
    d1.ctl_ok(&["route", "add", "10.0.2.0/24", "dev", "vti0"]);
    ping(&t.a, &["-c", "2", "10.0.2.2"]).expect("through the re-added VTI");
    let line_count = d2
        .log_text()
        .lines()
        .filter(|l| l.contains("Authentication failure"))
        .count();
    assert!(line_count >= 1);

    for d in [d1, d2] {
        let st = d.stop();
        assert_eq!(st.code, Some(0), "{}", st.log);
        assert!(st.log.contains("mbufs in use at exit: 0"), "{}", st.log);
    }
}

fn udp_tool() -> String {
    format!("{}/tools/udpstream.py", env!("CARGO_MANIFEST_DIR"))
}

fn stream_result(c: Child) -> serde_json::Value {
    let got = c.wait_with_output().expect("receiver");
    serde_json::from_slice(&got.stdout).unwrap_or_else(|e| {
        panic!(
            "receiver output: {e}: {}{}",
            String::from_utf8_lossy(&got.stdout),
            String::from_utf8_lossy(&got.stderr)
        )
    })
}

#[test]
fn rekey_under_udp_streams_both_ways_loses_nothing() {
    require_env();
    let t = topo();
    let policy = |n: u8| {
        let (src, dst) = if n == 1 {
            ("10.0.1.0/24", "10.0.2.0/24")
        } else {
            ("10.0.2.0/24", "10.0.1.0/24")
        };
        format!(
            "[[routes]]\nprefix = \"{dst}\"\nvia = \"192.168.100.{}\"\n[ipsec]\nrekey_grace_secs = 20\n[[ipsec.policy]]\nname = \"nets\"\npriority = 10\ndirection = \"both\"\nsrc = \"{src}\"\ndst = \"{dst}\"\naction = \"protect\"\nsa = [\"out-1\"]\nsa_in = [\"in-1\"]\n",
            3 - n
        )
    };
    let gw1 = format!(
        "{}{}{}{}",
        base(1, &t.va.outer, &t.wan.a),
        policy(1),
        sa(1, "out-1", 0x1001, true, K1),
        sa(1, "in-1", 0x2001, false, K2),
    );
    let gw2 = format!(
        "{}{}{}{}",
        base(2, &t.vb.outer, &t.wan.b),
        policy(2),
        sa(2, "out-1", 0x2001, true, K2),
        sa(2, "in-1", 0x1001, false, K1),
    );
    let d1 = Daemon::start("rk1", "", &gw1);
    let d2 = Daemon::start("rk2", "", &gw2);
    wait_until("A reaches B through the tunnel", 30, || {
        ping(&t.a, &["-c", "1", "10.0.2.2"]).is_ok()
    });
    ping(&t.b, &["-c", "1", "10.0.1.2"]).expect("B reaches A");

    // 12000 datagrams each way at 2000/s: the rekey below happens well inside them.
    let tool = udp_tool();
    let rx_b =
        t.b.spawn(&["/usr/bin/python3", &tool, "recv", "9000", "2", "60"]);
    let rx_a =
        t.a.spawn(&["/usr/bin/python3", &tool, "recv", "9001", "2", "60"]);
    std::thread::sleep(Duration::from_millis(500));
    let mut tx_a = t.a.spawn(&[
        "/usr/bin/python3",
        &tool,
        "send",
        "10.0.2.2",
        "9000",
        "12000",
        "2000",
    ]);
    let mut tx_b = t.b.spawn(&[
        "/usr/bin/python3",
        &tool,
        "send",
        "10.0.1.2",
        "9001",
        "12000",
        "2000",
    ]);
    wait_until("the streams flow", 10, || {
        sa_packets(&d2, "in-1").unwrap_or(0) > 200 && sa_packets(&d1, "in-1").unwrap_or(0) > 200
    });

    // Make: each side admits its new inbound SA.
    ctl(
        &d2,
        &sa_args(2, "in-2", 0x1002, false, K3, &["--policy", "nets"]),
    );
    ctl(
        &d1,
        &sa_args(1, "in-2", 0x2002, false, K4, &["--policy", "nets"]),
    );
    // Break early on gw2: in-1 is deleted while gw1 still seals with it. The grace period
    // keeps it installed, so gw1's packets keep decrypting.
    d2.ctl_ok(&["sa", "del", "in-1"]);
    let at_delete = sa_packets(&d2, "in-1").expect("in-1 still installed (grace)");
    wait_until("gw2 decrypts on the deleted in-1", 10, || {
        sa_packets(&d2, "in-1").unwrap_or(0) > at_delete + 100
    });
    // gw1 switches to the new outbound SA, then drops the old one.
    ctl(
        &d1,
        &sa_args(1, "out-2", 0x1002, true, K3, &["--policy", "nets"]),
    );
    d1.ctl_ok(&["sa", "del", "out-1"]);
    // The other direction, in the usual order: switch, then delete the old inbound SA.
    ctl(
        &d2,
        &sa_args(2, "out-2", 0x2002, true, K4, &["--policy", "nets"]),
    );
    d2.ctl_ok(&["sa", "del", "out-1"]);
    d1.ctl_ok(&["sa", "del", "in-1"]);
    assert!(
        tx_a.try_wait().unwrap().is_none() && tx_b.try_wait().unwrap().is_none(),
        "the streams must still be running after the rekey (machine too slow for this test?)"
    );
    let state = d2.json(&["show", "ipsec", "sa", "--name", "in-1"]);
    assert!(
        state[0]["state"].as_str().unwrap().starts_with("grace"),
        "{state}"
    );

    let a = stream_result(rx_b);
    let b = stream_result(rx_a);
    let _ = tx_a.wait();
    let _ = tx_b.wait();
    assert_eq!(a["count"], 12000, "A -> B lost packets: {a}");
    assert_eq!(a["dups"], 0, "{a}");
    assert_eq!(b["count"], 12000, "B -> A lost packets: {b}");
    assert_eq!(b["dups"], 0, "{b}");
    assert!(sa_packets(&d1, "out-2").unwrap() > 1000 && sa_packets(&d2, "in-2").unwrap() > 1000);
    assert!(sa_packets(&d2, "out-2").unwrap() > 1000 && sa_packets(&d1, "in-2").unwrap() > 1000);
    for d in [&d1, &d2] {
        let e = d.errors();
        let ipsec: Vec<_> = e
            .iter()
            .filter(|(k, _)| k.starts_with("esp-") || k.starts_with("spd-"))
            .collect();
        assert!(ipsec.is_empty(), "{ipsec:?}");
    }

    // The grace period ends: the old inbound SAs leave.
    wait_until("old inbound SAs removed after the grace period", 40, || {
        sa_packets(&d1, "in-1").is_none() && sa_packets(&d2, "in-1").is_none()
    });
    assert!(d2
        .log_text()
        .contains("stays installed for the rekey grace period"));
    for d in [d1, d2] {
        let st = d.stop();
        assert_eq!(st.code, Some(0), "{}", st.log);
        assert!(st.log.contains("mbufs in use at exit: 0"), "{}", st.log);
    }
}
