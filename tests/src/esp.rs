//! ESP end-to-end helpers: the algorithm table (ferrogate's names next to Scapy's and
//! tshark's), SA-pair "cases" (an algorithm in one mode), and the net_pcap configuration that
//! puts many cases through one daemon run. `tools/esp_interop.py` is the peer's side of the
//! same address plan (see its docstring).

use crate::Scratch;
use serde_json::{json, Value};

/// One ESP algorithm: how ferrogate's config, Scapy and tshark name it.
#[derive(Debug)]
pub struct Alg {
    pub encryption: &'static str,
    pub integrity: Option<&'static str>,
    /// Scapy `crypt_algo`, or "AES-GMAC" (the tool's own RFC 4543 code: Scapy 2.5 has none).
    pub scapy: &'static str,
    pub scapy_auth: Option<&'static str>,
    /// tshark `esp_sa` encryption / authentication names; None: tshark 4.0 cannot decrypt it
    /// (ChaCha20-Poly1305 and GMAC are not in its ESP dissector).
    pub tshark: Option<(&'static str, &'static str)>,
    /// Encryption KEYMAT octets (AEAD: key and 4-octet salt).
    pub key_len: usize,
    pub auth_len: usize,
}

const GCM16: &str = "AES-GCM with 16 octet ICV [RFC4106]";
const CBC: &str = "AES-CBC [RFC3602]";

const fn aead(encryption: &'static str, scapy: &'static str, key_len: usize) -> Alg {
    Alg {
        encryption,
        integrity: None,
        scapy,
        scapy_auth: None,
        tshark: None,
        key_len,
        auth_len: 0,
    }
}

const fn gcm(encryption: &'static str, key_len: usize) -> Alg {
    Alg {
        tshark: Some((GCM16, "NULL")),
        ..aead(encryption, "AES-GCM", key_len)
    }
}

const fn hmac(
    encryption: &'static str,
    key_len: usize,
    integ: usize,
    tshark_enc: &'static str,
) -> Alg {
    // (ferrogate, Scapy, tshark, key length) per integrity algorithm.
    let (i, s, t, a) = match integ {
        1 => (
            "hmac-sha1-96",
            "HMAC-SHA1-96",
            "HMAC-SHA-1-96 [RFC2404]",
            20,
        ),
        256 => (
            "hmac-sha256-128",
            "SHA2-256-128",
            "HMAC-SHA-256-128 [RFC4868]",
            32,
        ),
        384 => (
            "hmac-sha384-192",
            "SHA2-384-192",
            "HMAC-SHA-384-192 [RFC4868]",
            48,
        ),
        _ => (
            "hmac-sha512-256",
            "SHA2-512-256",
            "HMAC-SHA-512-256 [RFC4868]",
            64,
        ),
    };
    let scapy = if key_len == 0 { "NULL" } else { "AES-CBC" };
    Alg {
        encryption,
        integrity: Some(i),
        scapy,
        scapy_auth: Some(s),
        tshark: Some((tshark_enc, t)),
        key_len,
        auth_len: a,
    }
}

/// Every algorithm of issue 4.
pub const ALGS: &[Alg] = &[
    gcm("aes-gcm-128", 20),
    gcm("aes-gcm-192", 28),
    gcm("aes-gcm-256", 36),
    aead("aes-gmac-128", "AES-GMAC", 20),
    aead("aes-gmac-192", "AES-GMAC", 28),
    aead("aes-gmac-256", "AES-GMAC", 36),
    aead("chacha20-poly1305", "CHACHA20-POLY1305", 36),
    hmac("aes-cbc-128", 16, 1, CBC),
    hmac("aes-cbc-256", 32, 1, CBC),
    hmac("aes-cbc-128", 16, 256, CBC),
    hmac("aes-cbc-256", 32, 256, CBC),
    hmac("aes-cbc-128", 16, 384, CBC),
    hmac("aes-cbc-256", 32, 384, CBC),
    hmac("aes-cbc-128", 16, 512, CBC),
    hmac("aes-cbc-256", 32, 512, CBC),
    hmac("null", 0, 1, "NULL"),
    hmac("null", 0, 256, "NULL"),
    hmac("null", 0, 384, "NULL"),
    hmac("null", 0, 512, "NULL"),
];

/// The algorithm with this encryption and integrity name.
pub fn alg(encryption: &str, integrity: Option<&str>) -> &'static Alg {
    ALGS.iter()
        .find(|a| a.encryption == encryption && a.integrity == integrity)
        .unwrap_or_else(|| panic!("no algorithm {encryption}/{integrity:?}"))
}

/// Tunnel mode inner-in-outer and transport mode per family.
pub const MODES: &[&str] = &["4in4", "6in4", "4in6", "6in6", "tr4", "tr6"];

/// One SA pair between ferrogate and the peer.
#[derive(Debug, Clone)]
pub struct Case {
    pub k: usize,
    pub alg: &'static Alg,
    pub mode: &'static str,
    pub key: String,
    pub auth_key: String,
    pub spi_out: u32,
    pub spi_in: u32,
    pub esn: bool,
    /// First sequence number of both SAs (1 unless an ESN test starts near 2^32).
    pub initial_seq: u64,
    pub replay_window: Option<u32>,
}

/// Deterministic key material: `len` octets from `seed`.
pub fn hexkey(len: usize, seed: usize) -> String {
    (0..len)
        .map(|i| format!("{:02x}", (i * 7 + seed * 31 + 1) as u8))
        .collect()
}

impl Case {
    pub fn new(k: usize, alg: &'static Alg, mode: &'static str) -> Case {
        Case {
            k,
            alg,
            mode,
            key: hexkey(alg.key_len, 2 * k),
            auth_key: hexkey(alg.auth_len, 2 * k + 1),
            spi_out: 0x1_0000 + k as u32,
            spi_in: 0x2_0000 + k as u32,
            esn: false,
            initial_seq: 1,
            replay_window: None,
        }
    }
    pub fn tunnel(&self) -> bool {
        !self.mode.starts_with("tr")
    }
    pub fn inner_v6(&self) -> bool {
        matches!(self.mode, "6in4" | "6in6" | "tr6")
    }
    pub fn outer_v6(&self) -> bool {
        matches!(self.mode, "4in6" | "6in6" | "tr6")
    }
    /// Ferrogate's WAN address for this case's family, and the peer's.
    pub fn wan(&self) -> (&'static str, &'static str) {
        if self.outer_v6() {
            ("fd10::1", "fd10::2")
        } else {
            ("172.16.0.1", "172.16.0.2")
        }
    }
    /// The host behind ferrogate and the remote host behind the peer.
    pub fn hosts(&self) -> (String, String) {
        let k = self.k;
        if self.inner_v6() {
            (format!("fd01:0:0:{k:x}::2"), format!("fd02:0:0:{k:x}::2"))
        } else {
            (format!("10.1.{k}.2"), format!("10.2.{k}.2"))
        }
    }
    /// The policy's selectors (as seen outbound).
    pub fn selectors(&self) -> (String, String) {
        let k = self.k;
        match (self.tunnel(), self.inner_v6()) {
            (true, false) => (format!("10.1.{k}.0/24"), format!("10.2.{k}.0/24")),
            (true, true) => (
                format!("fd01:0:0:{k:x}::/64"),
                format!("fd02:0:0:{k:x}::/64"),
            ),
            (false, v6) => (
                format!("{}/{}", self.wan().0, if v6 { 128 } else { 32 }),
                format!("{}/{}", self.hosts().1, if v6 { 128 } else { 32 }),
            ),
        }
    }
    pub fn label(&self) -> String {
        format!(
            "{} {}{}",
            self.mode,
            self.alg.encryption,
            self.alg
                .integrity
                .map(|i| format!("/{i}"))
                .unwrap_or_default()
        )
    }

    /// The case as `esp_interop.py` reads it.
    pub fn json(&self) -> Value {
        json!({
            "k": self.k, "mode": self.mode, "crypt": self.alg.scapy, "auth": self.alg.scapy_auth,
            "key": self.key, "auth_key": self.auth_key, "spi_out": self.spi_out,
            "spi_in": self.spi_in, "esn": self.esn, "initial_seq": self.initial_seq,
            "tshark": self.alg.tshark.map(|(e, a)| [e, a]),
        })
    }

    fn sa(&self, name: &str, out: bool) -> String {
        let (gw, peer) = self.wan();
        let (src, dst) = if out { (gw, peer) } else { (peer, gw) };
        let mut s = format!(
            "[[ipsec.sa]]\nname = \"{name}\"\nspi = {}\ndirection = \"{}\"\nencryption = \"{}\"\nkey = \"{}\"\n",
            if out { self.spi_out } else { self.spi_in },
            if out { "out" } else { "in" },
            self.alg.encryption,
            self.key
        );
        if self.tunnel() {
            s += &format!("mode = \"tunnel\"\nsrc = \"{src}\"\ndst = \"{dst}\"\n");
        } else {
            s += "mode = \"transport\"\n";
        }
        if let Some(i) = self.alg.integrity {
            s += &format!(
                "integrity = \"{i}\"\nintegrity_key = \"{}\"\n",
                self.auth_key
            );
        }
        if self.esn {
            s += "esn = true\n";
        }
        if self.initial_seq != 1 {
            s += &format!("initial_seq = {}\n", self.initial_seq);
        }
        if let Some(w) = self.replay_window {
            s += &format!("replay_window = {w}\n");
        }
        s
    }

    /// Ferrogate's SA pair and the policy that binds them.
    pub fn ipsec_toml(&self) -> String {
        let k = self.k;
        let (src, dst) = self.selectors();
        format!(
            "{}{}[[ipsec.policy]]\nname = \"p{k}\"\npriority = {}\ndirection = \"both\"\nsrc = \"{src}\"\ndst = \"{dst}\"\naction = \"protect\"\nsa = [\"o{k}\"]\nsa_in = [\"i{k}\"]\n",
            self.sa(&format!("o{k}"), true),
            self.sa(&format!("i{k}"), false),
            100 + k
        )
    }
}

/// Every algorithm in every mode, numbered.
pub fn all_cases() -> Vec<Case> {
    ALGS.iter()
        .flat_map(|a| MODES.iter().map(move |m| (a, *m)))
        .enumerate()
        .map(|(k, (a, m))| Case::new(k, a, m))
        .collect()
}

pub const GW_IN_MAC: &str = "02:00:00:00:01:01";
pub const GW_OUT_MAC: &str = "02:00:00:00:02:01";
pub const HOST_MAC: &str = "02:00:00:00:01:02";
pub const PEER_MAC: &str = "02:00:00:00:02:02";

/// The spec `esp_interop.py` reads.
pub fn spec(cases: &[Case], count: u64) -> Value {
    json!({
        "count": count, "gw_in_mac": GW_IN_MAC, "gw_out_mac": GW_OUT_MAC,
        "host_mac": HOST_MAC, "peer_mac": PEER_MAC,
        "cases": cases.iter().map(Case::json).collect::<Vec<_>>(),
    })
}

/// A daemon config (without `[system]`) on two net_pcap ports: "in" (hosts) reads
/// `plain.pcap` and writes `in_tx.pcap`, "out" (the peer) reads `esp.pcap` and writes
/// `out_tx.pcap`, both in `dir`; one worker; every case's SA pair and policy.
pub fn pcap_config(dir: &Scratch, cases: &[Case]) -> String {
    let mut s = format!(
        r#"
[[ports]]
name = "in"
devargs = "net_pcap0,rx_pcap={plain},tx_pcap={in_tx}"
mac = "{GW_IN_MAC}"
[[ports]]
name = "out"
devargs = "net_pcap1,rx_pcap={esp},tx_pcap={out_tx}"
mac = "{GW_OUT_MAC}"
[[workers]]
lcore = 1
rx = ["in:0", "out:0"]
[[interfaces]]
name = "in"
port = "in"
addresses = ["10.1.0.1/16", "fd01::1/48"]
[[interfaces]]
name = "out"
port = "out"
addresses = ["172.16.0.1/24", "fd10::1/64"]
[[neighbors]]
ip = "172.16.0.2"
mac = "{PEER_MAC}"
interface = "out"
[[neighbors]]
ip = "fd10::2"
mac = "{PEER_MAC}"
interface = "out"
[[routes]]
prefix = "10.2.0.0/16"
via = "172.16.0.2"
[[routes]]
prefix = "fd02::/32"
via = "fd10::2"
"#,
        plain = dir.file("plain.pcap").display(),
        in_tx = dir.file("in_tx.pcap").display(),
        esp = dir.file("esp.pcap").display(),
        out_tx = dir.file("out_tx.pcap").display(),
    );
    for c in cases.iter().filter(|c| c.tunnel()) {
        s += &format!(
            "[[neighbors]]\nip = \"{}\"\nmac = \"{HOST_MAC}\"\ninterface = \"in\"\n",
            c.hosts().0
        );
    }
    s += "[ipsec]\n";
    for c in cases {
        s += &c.ipsec_toml();
    }
    s
}

/// Path of a tool in `tests/tools`.
pub fn tool(name: &str) -> String {
    format!("{}/tools/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// Run the system python3 (Scapy is a Debian package), return stdout; `Err` carries the exit
/// status and both streams.
pub fn python(args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("/usr/bin/python3")
        .args(args)
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{args:?}: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `(packets, auth_fail, replay_drop, errors)` of every SA by name, from `show ipsec sa`.
pub fn sa_counters(d: &crate::Daemon) -> std::collections::BTreeMap<String, [u64; 4]> {
    d.json(&["show", "ipsec", "sa"])
        .as_array()
        .expect("sa rows")
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap_or(u64::MAX);
            (
                r["name"].as_str().unwrap_or("").to_string(),
                [n("packets"), n("auth_fail"), n("replay_drop"), n("errors")],
            )
        })
        .collect()
}
