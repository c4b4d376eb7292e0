//! Two ferrogate instances with mirrored manual SAs, each on net_af_packet over two veth
//! pairs: one to its host's network namespace, one straight to the other instance (the WAN).
//!
//!   host A 10.1.0.2 ── [A: 10.1.0.1 | 192.0.2.1] ══ ESP ══ [192.0.2.2 | 10.2.0.1 :B] ── host B 10.2.0.2
//!
//! The Linux hosts ping each other and move a 4 MB TCP stream each way through the tunnel
//! (SHA-256 compared); every ESP packet one gateway sends is decrypted by the other. A capture
//! of the WAN replayed into B is dropped whole: the recent part as duplicates, the part older
//! than the replay window as late, counted exactly. Then B restarts with one byte of its
//! inbound key changed: every packet from A is an authentication failure and none reaches
//! host B.
//!
//! Two daemons on two cores: the harness sets `worker_idle_sleep_us`, and A's worker and
//! control thread sit on the CPUs opposite B's (`lcore_cpus`).

use std::collections::HashMap;
use tests::esp::{hexkey, python, sa_counters, tool};
use tests::{require_env, wait_until, Capture, Daemon, Netns, Scratch, Veth, VethLink};

const KEY_AB: usize = 1;
const KEY_BA: usize = 2;
const WINDOW: u64 = 256;

struct Side {
    lan: &'static str,
    local_net: &'static str,
    wan: &'static str,
    peer_wan: &'static str,
    remote_net: &'static str,
}

const A: Side = Side {
    lan: "10.1.0.1/24",
    local_net: "10.1.0.0/24",
    wan: "192.0.2.1",
    peer_wan: "192.0.2.2",
    remote_net: "10.2.0.0/24",
};
const B: Side = Side {
    lan: "10.2.0.1/24",
    local_net: "10.2.0.0/24",
    wan: "192.0.2.2",
    peer_wan: "192.0.2.1",
    remote_net: "10.1.0.0/24",
};

/// One gateway; `out` and `inb` are the SPI and key of its outbound and inbound SA, and the
/// outbound SA starts at sequence number `first_out`.
fn config(
    s: &Side,
    lan_if: &str,
    wan_if: &str,
    out: (u32, &str),
    inb: (u32, &str),
    first_out: u64,
) -> String {
    format!(
        r#"
[[ports]]
name = "lan"
devargs = "net_af_packet_{lan_if}0,iface={lan_if}"
[[ports]]
name = "wan"
devargs = "net_af_packet_{wan_if}1,iface={wan_if},framecnt=4096"
[[workers]]
lcore = 1
rx = ["lan:0", "wan:0"]
[[interfaces]]
name = "lan"
port = "lan"
addresses = ["{lan}"]
[[interfaces]]
name = "wan"
port = "wan"
addresses = ["{wan}/24"]
[[routes]]
prefix = "{remote}"
via = "{peer}"
[ipsec]
[[ipsec.sa]]
name = "out"
spi = {spi_out}
direction = "out"
src = "{wan}"
dst = "{peer}"
encryption = "aes-gcm-256"
key = "{key_out}"
initial_seq = {first_out}
[[ipsec.sa]]
name = "in"
spi = {spi_in}
direction = "in"
src = "{peer}"
dst = "{wan}"
encryption = "aes-gcm-256"
key = "{key_in}"
replay_window = {WINDOW}
[[ipsec.policy]]
name = "nets"
priority = 10
direction = "both"
src = "{local_net}"
dst = "{remote}"
action = "protect"
sa = ["out"]
sa_in = ["in"]
"#,
        lan = s.lan,
        local_net = s.local_net,
        wan = s.wan,
        peer = s.peer_wan,
        remote = s.remote_net,
        spi_out = out.0,
        key_out = out.1,
        spi_in = inb.0,
        key_in = inb.1,
    )
}

/// `(InEchos, InEchoReps)` of a namespace's kernel.
fn icmp_in(ns: &Netns) -> (u64, u64) {
    let snmp = ns.exec(&["cat", "/proc/net/snmp"]).expect("snmp");
    let rows: Vec<Vec<&str>> = snmp
        .lines()
        .filter(|l| l.starts_with("Icmp:"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let get = |k: &str| {
        let i = rows[0].iter().position(|x| *x == k).expect("snmp field");
        rows[1][i].parse::<u64>().expect("snmp value")
    };
    (get("InEchos"), get("InEchoReps"))
}

/// `ping -c COUNT` quickly; returns the number of replies.
fn ping(ns: &Netns, dst: &str, count: u32) -> u32 {
    let out = match ns.exec(&[
        "ping",
        "-n",
        "-q",
        "-c",
        &count.to_string(),
        "-i",
        "0.05",
        "-W",
        "1",
        dst,
    ]) {
        Ok(o) => o,
        Err(e) => e,
    };
    out.split(", ")
        .find_map(|p| p.strip_suffix(" received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("ping output: {out}"))
}

/// A 4 MB TCP stream from `from` to `to_ip` (listening in `to`); both ends' byte counts and
/// SHA-256 must agree.
fn tcp_stream(from: &Netns, to: &Netns, to_ip: &str, port: u16, seed: u32) {
    use std::io::BufRead;
    let t = tool("tcpstream.py");
    let mut rx = to.spawn(&["/usr/bin/python3", &t, "recv", &port.to_string(), "60"]);
    let mut err = std::io::BufReader::new(rx.stderr.take().expect("stderr")).lines();
    assert_eq!(
        err.next().and_then(|l| l.ok()).as_deref(),
        Some("ready"),
        "receiver did not start"
    );
    let bytes = (4u32 << 20).to_string();
    let sent = from
        .exec(&[
            "/usr/bin/python3",
            &t,
            "send",
            to_ip,
            &port.to_string(),
            &bytes,
            &seed.to_string(),
        ])
        .unwrap_or_else(|e| panic!("sender: {e}"));
    let got = rx.wait_with_output().expect("receiver");
    let got = String::from_utf8_lossy(&got.stdout).into_owned();
    let s: serde_json::Value = serde_json::from_str(&sent).expect("sender json");
    let r: serde_json::Value = serde_json::from_str(&got).expect("receiver json");
    assert_eq!(s["bytes"].as_u64(), Some(4 << 20), "{sent}");
    assert_eq!(s, r, "stream {port} arrived altered or short");
}

fn errors_esp(d: &Daemon) -> HashMap<String, u64> {
    d.errors()
        .into_iter()
        .filter(|(k, _)| k.starts_with("esp"))
        .collect()
}

#[test]
fn two_gateways_carry_ping_and_tcp_drop_replays_and_refuse_a_wrong_key() {
    require_env();
    let (ha, hb) = (Netns::new("ha"), Netns::new("hb"));
    let va = Veth::new(&ha, &["10.1.0.2/24"]);
    let vb = Veth::new(&hb, &["10.2.0.2/24"]);
    // The hosts keep MTU 1500: a full-size TCP segment does not fit the WAN once sealed, and
    // the gateway answers it with "fragmentation needed" carrying the MTU left inside the SA
    // (path MTU discovery), before spending a sequence number on it.
    ha.ip(&["route", "add", "default", "via", "10.1.0.1"]);
    hb.ip(&["route", "add", "default", "via", "10.2.0.1"]);
    let wan = VethLink::new();
    let (k_ab, k_ba) = (hexkey(36, KEY_AB), hexkey(36, KEY_BA));
    let sys_a = "[system.lcore_cpus]\n\"0\" = 0\n\"1\" = 1\n";
    let sys_b = "[system.lcore_cpus]\n\"0\" = 1\n\"1\" = 0\n";
    let cfg_b = |key_in: &str, first_out: u64| {
        config(
            &B,
            &vb.outer,
            &wan.b,
            (0x2002, &k_ba),
            (0x1001, key_in),
            first_out,
        )
    };
    let a = Daemon::start(
        "gwa",
        sys_a,
        &config(&A, &va.outer, &wan.a, (0x1001, &k_ab), (0x2002, &k_ba), 1),
    );
    let b = Daemon::start("gwb", sys_b, &cfg_b(&k_ab, 1));
    let scratch = Scratch::new("gwcap");

    // Neighbors resolve (ARP on both LANs and the WAN); then the tunnel carries pings.
    wait_until("host A reaches host B through the tunnel", 30, || {
        ping(&ha, "10.2.0.2", 1) == 1
    });
    // A capture of ten A->B ESP packets while they are new.
    let early = Capture::start(
        &wan.b,
        "esp and src host 192.0.2.1",
        10,
        scratch.file("early.pcap"),
    );
    let (echos_b, _) = icmp_in(&hb);
    assert_eq!(ping(&ha, "10.2.0.2", 10), 10);
    assert_eq!(icmp_in(&hb).0 - echos_b, 10, "host B got every request");
    let early = early.finish(10);
    assert_eq!(ping(&hb, "10.1.0.2", 10), 10);

    tcp_stream(&ha, &hb, "10.2.0.2", 5001, 1);
    tcp_stream(&hb, &ha, "10.1.0.2", 5002, 2);

    // Everything one side sealed, the other opened (the WAN rings hold 4096 frames, so a
    // TCP burst while a worker waits for its CPU is not dropped by the kernel).
    wait_until("both directions settle", 10, || {
        let (sa, sb) = (sa_counters(&a), sa_counters(&b));
        sa["out"][0] == sb["in"][0] && sb["out"][0] == sa["in"][0]
    });
    let (sa, sb) = (sa_counters(&a), sa_counters(&b));
    assert!(sa["out"][0] > 3000 && sb["out"][0] > 3000, "{sa:?} {sb:?}");
    // Path MTU discovery ran: A refused host A's full-size segments before sealing them,
    // with "fragmentation needed" carrying the MTU left inside the SA, and the host's TCP
    // sent smaller ones (its later SYN-ACK then advertised the smaller MSS to host B).
    let e = a.errors();
    assert!(e.get("mtu-exceeded").is_some_and(|&n| n > 0), "{e:?}");
    let route = ha.exec(&["ip", "route", "get", "10.2.0.2"]).unwrap();
    assert!(
        route.contains("mtu 1446"),
        "AES-GCM-256 leaves 1446 of 1500: {route}"
    );
    assert_eq!(errors_esp(&a), HashMap::new());
    assert_eq!(errors_esp(&b), HashMap::new());

    // Replays: ten recent packets (within the window: duplicates), then the ten early ones
    // (thousands of sequence numbers ago: late). Nothing reaches host B.
    let recent = Capture::start(
        &wan.b,
        "esp and src host 192.0.2.1",
        10,
        scratch.file("recent.pcap"),
    );
    assert_eq!(ping(&ha, "10.2.0.2", 10), 10);
    let recent = recent.finish(10);
    let b_in = sa_counters(&b)["in"];
    let (echos_b, _) = icmp_in(&hb);
    let replay = |f: &std::path::Path| {
        let out = python(&[&tool("replay.py"), &wan.a, &f.display().to_string()])
            .unwrap_or_else(|e| panic!("{e}"));
        let v: serde_json::Value = serde_json::from_str(&out).expect("replay json");
        assert_eq!(v["sent"], 10, "{out}");
        v
    };
    let seqs = replay(&recent);
    wait_until("the recent replay counted", 10, || {
        errors_esp(&b).get("esp-replay-duplicate") >= Some(&10)
    });
    let early_seqs = replay(&early);
    wait_until("the early replay counted", 10, || {
        errors_esp(&b).get("esp-replay-late") >= Some(&10)
    });
    let e = errors_esp(&b);
    assert_eq!(
        e,
        HashMap::from([
            ("esp-replay-duplicate".to_string(), 10),
            ("esp-replay-late".to_string(), 10)
        ]),
        "recent {seqs} early {early_seqs}"
    );
    let b_now = sa_counters(&b)["in"];
    assert_eq!(
        b_now,
        [b_in[0], 0, 20, 0],
        "replays are counted on the SA, none opened"
    );
    assert_eq!(
        icmp_in(&hb).0,
        echos_b,
        "no replayed request reached host B"
    );
    let b_sent = sa_counters(&b)["out"][0];
    let st = b.stop();
    assert_eq!(st.code, Some(0), "{}", st.log);
    assert!(st.log.contains("mbufs in use at exit: 0"), "{}", st.log);

    // B again, with one byte of its inbound key changed. Its outbound SA resumes the
    // sequence where the first B stopped (`initial_seq`), or A would drop it as replayed.
    let mut bad = k_ab.clone().into_bytes();
    bad[10] = if bad[10] == b'0' { b'1' } else { b'0' };
    let bad = String::from_utf8(bad).unwrap();
    let b = Daemon::start("gwb2", sys_b, &cfg_b(&bad, b_sent + 1));
    let a_out = sa_counters(&a)["out"][0];
    let (echos_b, replies_b) = icmp_in(&hb);
    assert_eq!(ping(&ha, "10.2.0.2", 10), 0, "nothing gets through");
    let sent = sa_counters(&a)["out"][0] - a_out;
    assert_eq!(sent, 10, "A sealed the ten requests");
    wait_until("B counted them", 10, || {
        errors_esp(&b).get("esp-auth-failed") >= Some(&10)
    });
    // B -> A: the requests get through (B's outbound key is right) and A answers, but every
    // answer fails authentication at B.
    let a_in = sa_counters(&a)["in"][0];
    let (echos_a, _) = icmp_in(&ha);
    assert_eq!(ping(&hb, "10.1.0.2", 10), 0);
    let answered = sa_counters(&a)["in"][0] - a_in;
    assert_eq!(icmp_in(&ha).0 - echos_a, answered);
    assert!(answered > 0, "A decrypted B's requests");
    wait_until("B counted the answers", 10, || {
        errors_esp(&b).get("esp-auth-failed") >= Some(&(10 + answered))
    });
    assert_eq!(
        errors_esp(&b),
        HashMap::from([("esp-auth-failed".to_string(), 10 + answered)])
    );
    assert_eq!(sa_counters(&b)["in"], [0, 10 + answered, 0, 0]);
    assert_eq!(icmp_in(&hb), (echos_b, replies_b), "nothing reached host B");
    assert_eq!(errors_esp(&a), HashMap::new());
    for d in [a, b] {
        let st = d.stop();
        assert_eq!(st.code, Some(0), "{}", st.log);
        assert!(st.log.contains("mbufs in use at exit: 0"), "{}", st.log);
    }
}
