//! The daemon on `net_pcap` vdevs: an input capture is routed to an output capture, compared
//! frame by frame with what a router must emit; malformed frames are counted under their own
//! reasons and never emitted; no mbuf leaks.

use etherparse::PacketBuilder;
use tests::pcap;
use tests::{require_env, wait_until, Daemon, Scratch};

const GW_IN: [u8; 6] = [2, 0, 0, 0, 1, 1];
const HOST_OUT: [u8; 6] = [2, 0, 0, 0, 2, 2];

fn cfg(inp: &str, out: &str, sink: &str) -> String {
    let empty = format!("{inp}.empty.pcap");
    format!(
        r#"
[[ports]]
name = "in"
devargs = "net_pcap0,rx_pcap={inp},tx_pcap={sink}"
mac = "02:00:00:00:01:01"
[[ports]]
name = "out"
devargs = "net_pcap1,rx_pcap={empty},tx_pcap={out}"
mac = "02:00:00:00:02:01"
[[workers]]
lcore = 1
rx = ["in:0", "out:0"]
[[interfaces]]
name = "in"
port = "in"
addresses = ["10.0.1.1/24", "fd00:1::1/64"]
[[interfaces]]
name = "out"
port = "out"
addresses = ["10.0.2.1/24", "fd00:2::1/64"]
[[neighbors]]
ip = "10.0.1.2"
mac = "02:00:00:00:01:02"
interface = "in"
[[neighbors]]
ip = "10.0.2.2"
mac = "02:00:00:00:02:02"
interface = "out"
[[neighbors]]
ip = "fd00:2::2"
mac = "02:00:00:00:02:02"
interface = "out"
[[routes]]
prefix = "198.18.0.0/15"
via = "10.0.2.2"
"#,
    )
}

fn v4(dst: [u8; 4], ttl: u8, len: usize, sport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 1, 2], GW_IN)
        .ipv4([10, 0, 1, 2], dst, ttl)
        .udp(sport, 7)
        .write(&mut v, &vec![sport as u8; len])
        .unwrap();
    v
}

fn v6(hops: u8) -> Vec<u8> {
    let s: std::net::Ipv6Addr = "fd00:1::2".parse().unwrap();
    let d: std::net::Ipv6Addr = "fd00:2::2".parse().unwrap();
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 1, 2], GW_IN)
        .ipv6(s.octets(), d.octets(), hops)
        .tcp(1, 2, 3, 4)
        .write(&mut v, b"tcp payload")
        .unwrap();
    v
}

/// What a router emits for a well-formed IPv4 frame: new MACs, TTL - 1, checksum patched.
fn routed_v4(f: &[u8]) -> Vec<u8> {
    let mut o = f.to_vec();
    o[0..6].copy_from_slice(&HOST_OUT);
    o[6..12].copy_from_slice(&[2, 0, 0, 0, 2, 1]);
    o[22] -= 1;
    o[24..26].fill(0);
    let c = etherparse::Ipv4HeaderSlice::from_slice(&o[14..])
        .unwrap()
        .to_header()
        .calc_header_checksum();
    o[24..26].copy_from_slice(&c.to_be_bytes());
    o
}

#[test]
fn pcap_in_pcap_out_frame_by_frame_and_malformed_counted() {
    require_env();
    let dir = Scratch::new("pcap");
    let inp = dir.file("in.pcap");
    let out = dir.file("out.pcap");
    let sink = dir.file("sink.pcap");
    pcap::write(&dir.file("in.pcap.empty.pcap"), &[]);

    let mut frames = Vec::new();
    let mut expected = Vec::new();
    for i in 0..50u16 {
        let f = v4([10, 0, 2, 2], 64, 18 + i as usize * 20, 1000 + i);
        expected.push(routed_v4(&f));
        frames.push(f);
    }
    let f = v4([198, 19, 7, 7], 9, 100, 7); // via the static route
    expected.push(routed_v4(&f));
    frames.push(f);
    let f6 = v6(64);
    let mut e6 = f6.clone();
    e6[0..6].copy_from_slice(&HOST_OUT);
    e6[6..12].copy_from_slice(&[2, 0, 0, 0, 2, 1]);
    e6[14 + 7] = 63;
    expected.push(e6);
    frames.push(f6);

    // Malformed: each must be counted under its own reason and never emitted.
    let good = v4([10, 0, 2, 2], 64, 40, 1);
    let mut ihl = good.clone();
    ihl[14] = 0x44;
    let mut total = good.clone();
    total[16..18].copy_from_slice(&3000u16.to_be_bytes());
    let mut v6len = v6(64);
    v6len[18..20].copy_from_slice(&2000u16.to_be_bytes());
    let malformed: Vec<(Vec<u8>, &str)> = vec![
        (good[..12].to_vec(), "eth-truncated"),
        (good[..30].to_vec(), "ipv4-truncated"),
        (ihl, "ipv4-bad-ihl"),
        (total, "ipv4-bad-total-length"),
        (v6(64)[..50].to_vec(), "ipv6-truncated"),
        (v6len, "ipv6-bad-payload-length"),
        (v4([10, 0, 2, 2], 1, 10, 2), "ttl-expired"),
    ];
    frames.extend(malformed.iter().map(|(f, _)| f.clone()));
    pcap::write(&inp, &frames);

    let d = Daemon::start(
        "pcap",
        "",
        &cfg(
            &inp.display().to_string(),
            &out.display().to_string(),
            &sink.display().to_string(),
        ),
    );
    let n = frames.len() as u64;
    wait_until("all input frames received", 30, || {
        d.stat("rx_packets") >= n
    });
    wait_until("outputs flushed", 10, || {
        d.stat("tx_packets") + d.stat("drops") >= n
    });
    let errs = d.errors();
    for (_, reason) in &malformed {
        assert_eq!(errs.get(*reason), Some(&1), "{reason}: {errs:?}");
    }
    let pool = d.json(&["show", "pool"]);
    let st = d.stop();
    assert_eq!(st.code, Some(0), "{}", st.log);
    assert!(
        st.log.contains("mbufs in use at exit: 0"),
        "mbuf leak: {}",
        st.log
    );
    assert!(pool["in_use"].as_u64().is_some(), "{pool}");

    let got = pcap::read(&out);
    assert_eq!(
        got.len(),
        expected.len(),
        "frames out: {:02x?}",
        got.iter()
            .filter(|g| !expected.contains(g))
            .collect::<Vec<_>>()
    );
    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(g, e, "frame {i} differs");
    }
    // The TTL-1 frame was answered with ICMP time exceeded towards the sender, on port "in".
    let back = pcap::read(&sink);
    assert!(
        back.iter()
            .any(|f| f.len() > 34 && f[23] == 1 && f[34] == 11),
        "ICMP time exceeded back to the source"
    );
}
