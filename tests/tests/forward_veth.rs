//! Routing through the real daemon on `net_af_packet` over veth pairs, with the Linux kernel
//! in two network namespaces as hosts A and B: ping (TTL decremented once), a UDP stream
//! that loses nothing while a route is added, and RSS spreading flows over two workers.

use std::time::Duration;
use tests::{require_env, wait_until, Daemon, Netns, Veth};

struct Topo {
    a: Netns,
    b: Netns,
    va: Veth,
    vb: Veth,
}

/// A (10.0.1.2/24) -- [a: 10.0.1.1 | ferrogate | b: 10.0.2.1] -- B (10.0.2.2/24).
fn topo() -> Topo {
    let a = Netns::new("a");
    let b = Netns::new("b");
    let va = Veth::new(&a, &["10.0.1.2/24", "fd00:1::2/64"]);
    let vb = Veth::new(&b, &["10.0.2.2/24", "fd00:2::2/64"]);
    a.ip(&["route", "add", "default", "via", "10.0.1.1"]);
    b.ip(&["route", "add", "default", "via", "10.0.2.1"]);
    a.ip(&["-6", "route", "add", "default", "via", "fd00:1::1"]);
    b.ip(&["-6", "route", "add", "default", "via", "fd00:2::1"]);
    Topo { a, b, va, vb }
}

fn config(t: &Topo, qpairs: u16) -> String {
    let q = if qpairs > 1 {
        format!(",qpairs={qpairs}")
    } else {
        String::new()
    };
    format!(
        r#"
[[ports]]
name = "a"
devargs = "net_af_packet_{a}0,iface={a}{q}"
[[ports]]
name = "b"
devargs = "net_af_packet_{b}1,iface={b}{q}"
[[interfaces]]
name = "a"
port = "a"
addresses = ["10.0.1.1/24", "fd00:1::1/64"]
[[interfaces]]
name = "b"
port = "b"
addresses = ["10.0.2.1/24", "fd00:2::1/64"]
"#,
        a = t.va.outer,
        b = t.vb.outer
    )
}

const ONE_WORKER: &str = "[[workers]]\nlcore = 1\nrx = [\"a:0\", \"b:0\"]\n";

fn ping(ns: &Netns, args: &[&str]) -> Result<String, String> {
    let mut a = vec!["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2"];
    a.extend_from_slice(args);
    ns.exec(&a)
}

#[test]
fn ping_crosses_the_gateway_with_ttl_decremented_once() {
    require_env();
    let t = topo();
    let d = Daemon::start("ping", "", &format!("{}{ONE_WORKER}", config(&t, 1)));
    // The gateway itself answers (smoltcp).
    ping(&t.a, &["10.0.1.1"]).expect("ping the gateway");
    // Capture in B what arrives, while A pings B with TTL 50.
    let cap = t.b.spawn(&[
        "tcpdump",
        "-l",
        "-n",
        "-v",
        "-c",
        "1",
        "-i",
        &t.vb.inner,
        "icmp[icmptype] == icmp-echo",
    ]);
    std::thread::sleep(Duration::from_millis(800));
    let out = ping(&t.a, &["-t", "50", "10.0.2.2"]).expect("ping A -> B through ferrogate");
    assert!(
        out.contains("ttl=63"),
        "reply TTL (64 from B, one hop): {out}"
    );
    let cap_out = cap.wait_with_output().expect("tcpdump");
    let text = String::from_utf8_lossy(&cap_out.stdout);
    assert!(text.contains("ttl 49"), "B must see TTL 50-1=49: {text}");
    // IPv6 too (ND resolution both ways).
    let out6 = ping(&t.a, &["fd00:2::2"]).expect("ping6 A -> B");
    assert!(
        out6.contains("ttl=63") || out6.contains("hlim=63"),
        "{out6}"
    );
    let stats = d.json(&["show", "stats"]);
    assert!(stats[0]["rx_packets"].as_u64().unwrap() >= 6);
    assert!(!d.errors().contains_key("ttl-expired"));
    // TTL 1 gets "time exceeded" from the gateway.
    let trace =
        t.a.exec(&["ping", "-n", "-c", "1", "-t", "1", "-W", "2", "10.0.2.2"])
            .unwrap_err();
    assert!(trace.contains("Time to live exceeded"), "{trace}");
    assert_eq!(d.errors().get("ttl-expired"), Some(&1));
    let st = d.stop();
    assert_eq!(st.code, Some(0), "{}", st.log);
    assert!(st.log.contains("mbufs in use at exit: 0"), "{}", st.log);
}

fn udp_tool() -> String {
    format!("{}/tools/udpstream.py", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn route_add_under_a_udp_stream_loses_nothing() {
    require_env();
    let t = topo();
    let d = Daemon::start("stream", "", &format!("{}{ONE_WORKER}", config(&t, 1)));
    // B also owns 10.0.3.1, reachable only once a route is added.
    t.b.ip(&["addr", "add", "10.0.3.1/32", "dev", "lo"]);
    ping(&t.a, &["10.0.2.2"]).expect("warm-up ping resolves neighbors");
    let tool = udp_tool();
    let rx =
        t.b.spawn(&["/usr/bin/python3", &tool, "recv", "9000", "1.5", "30"]);
    std::thread::sleep(Duration::from_millis(500));
    let tx = t.a.spawn(&[
        "/usr/bin/python3",
        &tool,
        "send",
        "10.0.2.2",
        "9000",
        "6000",
        "2000",
    ]);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        ping(&t.a, &["-c", "1", "10.0.3.1"]).is_err(),
        "no route yet"
    );
    d.ctl_ok(&["route", "add", "10.0.3.0/24", "via", "10.0.2.2"]);
    ping(&t.a, &["10.0.3.1"]).expect("new destination reachable after route add");
    let sent = tx.wait_with_output().expect("sender");
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let got = rx.wait_with_output().expect("receiver");
    let r: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap_or_else(|e| {
        panic!(
            "receiver output: {e}: {}{}",
            String::from_utf8_lossy(&got.stdout),
            String::from_utf8_lossy(&got.stderr)
        )
    });
    assert_eq!(r["count"], 6000, "stream lost packets: {r}");
    assert_eq!(r["dups"], 0);
    let routes = d.ctl_ok(&["show", "routes"]);
    assert!(routes.contains("10.0.3.0/24"), "{routes}");
    d.ctl_ok(&["route", "del", "10.0.3.0/24"]);
    wait_until("route removed", 5, || {
        ping(&t.a, &["-c", "1", "10.0.3.1"]).is_err()
    });
}

#[test]
fn two_workers_share_flows_through_rss() {
    require_env();
    let t = topo();
    let workers = "[[workers]]\nlcore = 1\nrx = [\"a:0\", \"b:0\"]\n[[workers]]\nlcore = 2\nrx = [\"a:1\", \"b:1\"]\n";
    let sys = "[system.lcore_cpus]\n\"0\" = 0\n\"1\" = 1\n\"2\" = 1\n";
    let d = Daemon::start("rss", sys, &format!("{}{workers}", config(&t, 2)));
    ping(&t.a, &["10.0.2.2"]).expect("ping through two workers");
    let tool = udp_tool();
    let rx =
        t.b.spawn(&["/usr/bin/python3", &tool, "recv", "9001", "1.5", "30"]);
    std::thread::sleep(Duration::from_millis(500));
    let tx = t.a.spawn(&[
        "/usr/bin/python3",
        &tool,
        "send",
        "10.0.2.2",
        "9001",
        "4000",
        "2000",
        "64",
    ]);
    let _ = tx.wait_with_output();
    let got = rx.wait_with_output().expect("receiver");
    let r: serde_json::Value = serde_json::from_slice(&got.stdout).expect("receiver json");
    assert_eq!(r["count"], 4000, "{r}");
    let stats = d.json(&["show", "stats"]);
    let w: Vec<u64> = stats
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rx_packets"].as_u64().unwrap())
        .collect();
    assert_eq!(w.len(), 2);
    assert!(
        w.iter().all(|&n| n > 100),
        "both workers carry traffic: {w:?}"
    );
    let text = d.ctl_ok(&["show", "stats"]);
    assert!(text.lines().count() == 3, "{text}");
}
