//! ESP interop with Scapy as the peer, for every algorithm: ferrogate on net_pcap encrypts a
//! cleartext capture (Scapy decrypts the result and finds the routed packets) and decrypts a
//! Scapy-encrypted capture (the routed inner packets come out), tunnel mode over IPv4.

use tests::{require_env, wait_until, Daemon, Scratch};

struct Alg {
    name: &'static str,
    integ: Option<&'static str>,
    scapy: &'static str,
    scapy_auth: Option<&'static str>,
    key_len: usize,
    auth_len: usize,
}

const ALGS: &[Alg] = &[
    Alg {
        name: "aes-gcm-128",
        integ: None,
        scapy: "AES-GCM",
        scapy_auth: None,
        key_len: 20,
        auth_len: 0,
    },
    Alg {
        name: "aes-gcm-256",
        integ: None,
        scapy: "AES-GCM",
        scapy_auth: None,
        key_len: 36,
        auth_len: 0,
    },
    Alg {
        name: "chacha20-poly1305",
        integ: None,
        scapy: "CHACHA20-POLY1305",
        scapy_auth: None,
        key_len: 36,
        auth_len: 0,
    },
    Alg {
        name: "aes-cbc-128",
        integ: Some("hmac-sha256-128"),
        scapy: "AES-CBC",
        scapy_auth: Some("SHA2-256-128"),
        key_len: 16,
        auth_len: 32,
    },
    Alg {
        name: "aes-cbc-256",
        integ: Some("hmac-sha1-96"),
        scapy: "AES-CBC",
        scapy_auth: Some("HMAC-SHA1-96"),
        key_len: 32,
        auth_len: 20,
    },
    Alg {
        name: "aes-cbc-128",
        integ: Some("hmac-sha512-256"),
        scapy: "AES-CBC",
        scapy_auth: Some("SHA2-512-256"),
        key_len: 16,
        auth_len: 64,
    },
    Alg {
        name: "null",
        integ: Some("hmac-sha256-128"),
        scapy: "NULL",
        scapy_auth: Some("SHA2-256-128"),
        key_len: 0,
        auth_len: 32,
    },
];

fn hexkey(len: usize, seed: u8) -> String {
    (0..len)
        .map(|i| format!("{:02x}", (i as u8).wrapping_mul(7).wrapping_add(seed)))
        .collect()
}

fn python(args: &[&str]) -> String {
    let out = std::process::Command::new("/usr/bin/python3")
        .args(args)
        .output()
        .expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{args:?}: {text}");
    text
}

fn config(dir: &Scratch, a: &Alg, key: &str, auth: &str) -> String {
    let integ = a
        .integ
        .map(|i| format!("integrity = \"{i}\"\nintegrity_key = \"{auth}\"\n"))
        .unwrap_or_default();
    format!(
        r#"
[[ports]]
name = "in"
devargs = "net_pcap0,rx_pcap={plain},tx_pcap={in_tx}"
mac = "02:00:00:00:01:01"
[[ports]]
name = "out"
devargs = "net_pcap1,rx_pcap={esp},tx_pcap={out_tx}"
mac = "02:00:00:00:02:01"
[[workers]]
lcore = 1
rx = ["in:0", "out:0"]
[[interfaces]]
name = "in"
port = "in"
addresses = ["10.1.0.1/24"]
[[interfaces]]
name = "out"
port = "out"
addresses = ["172.16.0.1/24"]
[[neighbors]]
ip = "10.1.0.2"
mac = "02:00:00:00:01:02"
interface = "in"
[[neighbors]]
ip = "172.16.0.2"
mac = "02:00:00:00:02:02"
interface = "out"
[[routes]]
prefix = "10.2.0.0/24"
via = "172.16.0.2"

[ipsec]
[[ipsec.sa]]
name = "to-peer"
spi = 4097
direction = "out"
src = "172.16.0.1"
dst = "172.16.0.2"
encryption = "{alg}"
key = "{key}"
{integ}
[[ipsec.sa]]
name = "from-peer"
spi = 8193
direction = "in"
src = "172.16.0.2"
dst = "172.16.0.1"
encryption = "{alg}"
key = "{key}"
{integ}
[[ipsec.policy]]
name = "nets"
priority = 10
direction = "both"
src = "10.1.0.0/24"
dst = "10.2.0.0/24"
action = "protect"
sa = ["to-peer"]
sa_in = ["from-peer"]
"#,
        plain = dir.file("plain.pcap").display(),
        in_tx = dir.file("in_tx.pcap").display(),
        esp = dir.file("esp.pcap").display(),
        out_tx = dir.file("out_tx.pcap").display(),
        alg = a.name,
    )
}

#[test]
fn scapy_decrypts_ours_and_we_decrypt_scapys_for_every_algorithm() {
    require_env();
    let tool = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/esp_interop.py");
    let n = 20u64;
    for (ai, a) in ALGS.iter().enumerate() {
        let dir = Scratch::new(&format!("esp{ai}"));
        let key = hexkey(a.key_len, 0x11 + ai as u8);
        let auth = hexkey(a.auth_len, 0x51 + ai as u8);
        let cfg = serde_json::json!({
            "crypt": a.scapy, "auth": a.scapy_auth, "key": key, "auth_key": auth,
            "spi_out": 4097, "spi_in": 8193, "count": n,
            "gw_in_mac": "02:00:00:00:01:01", "gw_out_mac": "02:00:00:00:02:01",
        });
        let cfg_path = dir.file("sa.json");
        std::fs::write(&cfg_path, cfg.to_string()).unwrap();
        let d = dir.path.display().to_string();
        python(&[tool, "gen", &cfg_path.display().to_string(), &d]);
        let daemon = Daemon::start(&format!("esp{ai}"), "", &config(&dir, a, &key, &auth));
        wait_until("all frames received", 30, || {
            daemon.stat("rx_packets") >= 2 * n
        });
        wait_until("all frames sent", 10, || {
            daemon.stat("tx_packets") + daemon.stat("drops") >= 2 * n
        });
        let errs = daemon.errors();
        let sas = daemon.json(&["show", "ipsec", "sa"]);
        let st = daemon.stop();
        assert!(st.log.contains("mbufs in use at exit: 0"), "{}", st.log);
        assert!(errs.is_empty(), "{} {:?}: drops {errs:?}", a.name, a.integ);
        let rows = sas.as_array().expect("sa rows");
        assert!(
            rows.iter().all(|r| r["packets"].as_u64() == Some(n)),
            "{sas}"
        );
        let out = python(&[tool, "verify", &cfg_path.display().to_string(), &d]);
        assert!(
            out.contains("\"errors\": []"),
            "{} {:?}: {out}",
            a.name,
            a.integ
        );
    }
}
