//! The ESP benchmark's fixed pieces: the algorithms (config names → dataplane suite, fixed
//! keys), the one SA pair both ferrogate and ipsec-secgw use (SPIs 4103 out / 4104 in, tunnel
//! 172.16.1.1 ↔ 172.16.2.1, as in `bench/reference/*.cfg`), ferrogate's config per direction,
//! the inbound input (ESP frames sealed by the dataplane's own encapsulation code) and the raw
//! cipher speed of the dataplane's `SaCrypto` on the very buffers the ESP path seals.

use crate::frames::DUT_MAC;
use crate::run::{self, thread_ticks, CpuSample, Rate};
use dataplane::esp::{self, AesKeyLen, Backend, Integ, Mode, Sa, SaConfig, SaCrypto, Suite};
use dataplane::outer::OuterPolicy;
use dataplane::packet::{HeapPacket, Packet};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// SPI of the outbound SA (what the program under test seals with).
pub const SPI_OUT: u32 = 4103;
/// SPI of the inbound SA (what the inbound input carries).
pub const SPI_IN: u32 = 4104;
/// Our tunnel end.
pub const LOCAL: Ipv4Addr = Ipv4Addr::new(172, 16, 1, 1);
/// The peer's tunnel end.
pub const PEER: Ipv4Addr = Ipv4Addr::new(172, 16, 2, 1);
/// The peer's MAC (static neighbor; source of the inbound ESP frames).
pub const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x22];
/// Bytes from the start of an ESP tunnel packet (outer IPv4 header) to the SPI.
const ESP_OFFSET: usize = 20;

/// Direction of the measured path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Plain frames in, ESP out (seal).
    Out,
    /// ESP frames in, plain out (open).
    In,
}

impl std::str::FromStr for Dir {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "out" => Ok(Dir::Out),
            "in" => Ok(Dir::In),
            o => Err(format!("'{o}': out or in")),
        }
    }
}

impl Dir {
    pub fn name(self) -> &'static str {
        match self {
            Dir::Out => "out",
            Dir::In => "in",
        }
    }
}

/// An algorithm as given on the command line: `ENCRYPTION[+INTEGRITY]` in the config's names,
/// e.g. `aes-gcm-128` or `aes-cbc-128+hmac-sha256-128`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alg {
    pub label: String,
    pub encryption: String,
    pub integrity: Option<String>,
    pub suite: Suite,
}

impl std::str::FromStr for Alg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (enc, integ) = match s.split_once('+') {
            Some((e, i)) => (e, Some(i)),
            None => (s, None),
        };
        let suite = control::state::ipsec::suite_by_name(enc, integ)?;
        Ok(Alg {
            label: s.to_string(),
            encryption: enc.to_string(),
            integrity: integ.map(str::to_string),
            suite,
        })
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Alg {
    /// Encryption KEYMAT (key and, for the counter-mode suites, salt): `de ad be ef` repeated,
    /// the recipe's key, so ipsec-secgw's configs carry the same one.
    pub fn enc_key(&self) -> Vec<u8> {
        [0xde, 0xad, 0xbe, 0xef]
            .into_iter()
            .cycle()
            .take(self.suite.enc_key_len())
            .collect()
    }

    /// Integrity key (CBC / NULL suites).
    pub fn auth_key(&self) -> Vec<u8> {
        (0..self.suite.auth_key_len())
            .map(|i| (i as u8).wrapping_mul(7).wrapping_add(0x51))
            .collect()
    }

    /// The ipsec-secgw key size, for the suites the reference configs cover.
    pub fn secgw_key(&self) -> Option<crate::secgw::GcmKey> {
        match self.suite {
            Suite::AesGcm(AesKeyLen::Aes128) => Some(crate::secgw::GcmKey::Aes128),
            Suite::AesGcm(AesKeyLen::Aes256) => Some(crate::secgw::GcmKey::Aes256),
            _ => None,
        }
    }

    /// Scapy's names (crypt_algo, auth_algo), or None when Scapy lacks the suite (GMAC).
    fn scapy(&self) -> Option<(&'static str, Option<&'static str>)> {
        let integ = |i: Integ| match i {
            Integ::HmacSha1_96 => "HMAC-SHA1-96",
            Integ::HmacSha256_128 => "SHA2-256-128",
            Integ::HmacSha384_192 => "SHA2-384-192",
            Integ::HmacSha512_256 => "SHA2-512-256",
        };
        match self.suite {
            Suite::AesGcm(_) => Some(("AES-GCM", None)),
            Suite::ChaCha20Poly1305 => Some(("CHACHA20-POLY1305", None)),
            Suite::AesCbc(_, i) => Some(("AES-CBC", Some(integ(i)))),
            Suite::Null(i) => Some(("NULL", Some(integ(i)))),
            Suite::AesGmac(_) => None,
        }
    }

    /// The SA description `esp_check.py` reads for direction `dir`, or None (no Scapy suite).
    pub fn check_json(&self, dir: Dir) -> Option<serde_json::Value> {
        let (crypt, auth) = self.scapy()?;
        let (spi, src, dst) = match dir {
            Dir::Out => (SPI_OUT, LOCAL, PEER),
            Dir::In => (SPI_IN, PEER, LOCAL),
        };
        Some(serde_json::json!({
            "crypt": crypt, "key": hex(&self.enc_key()), "auth": auth,
            "auth_key": hex(&self.auth_key()), "spi": spi,
            "src": src.to_string(), "dst": dst.to_string(),
        }))
    }

    fn sa_toml(&self, name: &str, spi: u32, dir: &str, src: Ipv4Addr, dst: Ipv4Addr) -> String {
        let integ = self
            .integrity
            .as_ref()
            .map(|i| {
                format!(
                    "integrity = \"{i}\"\nintegrity_key = \"{}\"\n",
                    hex(&self.auth_key())
                )
            })
            .unwrap_or_default();
        // replay_window = 0 on the inbound SA: the capture is replayed forever with the same
        // sequence numbers, which a window would drop from the second pass on. ipsec-secgw
        // runs the same way (its default `-w 0`; its legacy path has no window at all).
        let replay = if dir == "in" {
            "replay_window = 0\n"
        } else {
            ""
        };
        format!(
            r#"[[ipsec.sa]]
name = "{name}"
spi = {spi}
direction = "{dir}"
src = "{src}"
dst = "{dst}"
encryption = "{enc}"
key = "{key}"
{integ}{replay}"#,
            enc = self.encryption,
            key = hex(&self.enc_key()),
        )
    }

    /// ferrogate's config for measuring `dir`: port "in" (`rx_devargs`) receives, port "out"
    /// (`tx_devargs`) transmits, one worker on lcore 1. Outbound: 10.0.0.0/16 → 10.1.0.0/16 is
    /// protected and tunnelled to the peer out of "out". Inbound: ESP to our tunnel address on
    /// "in", the inner packets (10.1/16 → 10.0/16) routed out of "out".
    ///
    /// `handoff`: two workers, lcore 1 (CPU 1) and lcore 2 (on CPU 0, beside the mostly idle
    /// control thread), and port "in" received by the one that does *not* own the SA of `dir`
    /// (SAs go to workers by slot: "out" is slot 0 → worker 0, "in" slot 1 → worker 1), so
    /// every packet crosses the hand-off ring to the SA's owner, which seals or opens it and
    /// transmits it. The SA's owner is the worker on CPU 1 outbound, on CPU 0 inbound.
    pub fn ferrogate_config(
        &self,
        dir: Dir,
        handoff: bool,
        socket: &str,
        prefix: &str,
        rx_devargs: &str,
        tx_devargs: &str,
    ) -> String {
        let net = match dir {
            Dir::Out => format!(
                r#"[[interfaces]]
name = "in"
port = "in"
addresses = ["10.0.0.254/16"]
[[interfaces]]
name = "out"
port = "out"
addresses = ["{LOCAL}/16"]
[[neighbors]]
ip = "{PEER}"
mac = "02:00:00:00:00:22"
interface = "out"
[[routes]]
prefix = "10.1.0.0/16"
via = "{PEER}"
"#
            ),
            Dir::In => format!(
                r#"[[interfaces]]
name = "in"
port = "in"
addresses = ["{LOCAL}/16"]
[[interfaces]]
name = "out"
port = "out"
addresses = ["10.9.0.1/24"]
[[neighbors]]
ip = "10.9.0.2"
mac = "02:00:00:00:00:09"
interface = "out"
[[routes]]
prefix = "10.0.0.0/16"
via = "10.9.0.2"
"#
            ),
        };
        let mut system = run::system_toml(socket, prefix);
        let workers = if handoff {
            system.push_str("lcore_cpus = { \"2\" = 0 }\n\n");
            let (w1, w2) = match dir {
                Dir::Out => ("out:0", "in:0"),
                Dir::In => ("in:0", "out:0"),
            };
            format!(
                "[[workers]]\nlcore = 1\nrx = [\"{w1}\"]\n[[workers]]\nlcore = 2\nrx = [\"{w2}\"]\n"
            )
        } else {
            "[[workers]]\nlcore = 1\nrx = [\"in:0\", \"out:0\"]\n".to_string()
        };
        // MTU 1600 on both ports (ipsec-secgw gets --mtu 1600): IMIX's 1500-byte IP packets
        // are 1556 bytes after ESP.
        format!(
            r#"{system}[[ports]]
name = "in"
devargs = "{rx_devargs}"
mac = "02:00:00:00:00:02"
mtu = 1600
[[ports]]
name = "out"
devargs = "{tx_devargs}"
mtu = 1600

{workers}
{net}
[ipsec]
{sa_out}
{sa_in}
[[ipsec.policy]]
name = "nets"
priority = 10
direction = "both"
src = "10.0.0.0/16"
dst = "10.1.0.0/16"
action = "protect"
sa = ["out"]
sa_in = ["in"]
"#,
            sa_out = self.sa_toml("out", SPI_OUT, "out", LOCAL, PEER),
            sa_in = self.sa_toml("in", SPI_IN, "in", PEER, LOCAL),
        )
    }

    fn sa(&self, spi: u32, local: Ipv4Addr, remote: Ipv4Addr) -> Result<Sa, String> {
        let cfg = SaConfig::new(spi, Mode::Tunnel4 { local, remote }, self.suite);
        Sa::new(&cfg, &self.enc_key(), &self.auth_key()).map_err(|e| format!("{}: {e}", self.label))
    }

    /// ESP tunnel packets (outer IPv4 header on) made by the dataplane's own encapsulation
    /// from the IP packets of `frames`, sealed by an SA `spi` from `local` to `remote` with
    /// sequence numbers 1, 2, ...
    fn seal_all(
        &self,
        frames: &[Vec<u8>],
        spi: u32,
        local: Ipv4Addr,
        remote: Ipv4Addr,
    ) -> Result<Vec<Vec<u8>>, String> {
        let mut sa = self.sa(spi, local, remote)?;
        let outer = OuterPolicy::default();
        frames
            .iter()
            .map(|f| {
                let mut p = HeapPacket::from_frame(&f[14..]);
                esp::encap(&mut sa, &mut p, &outer)
                    .map_err(|e| format!("{}: encap: {e:?}", self.label))?;
                Ok(p.data().to_vec())
            })
            .collect()
    }

    /// The inbound input: each frame's IP packet sealed for our inbound SA by the peer, in an
    /// Ethernet frame from the peer to the gateway.
    pub fn inbound_frames(&self, inner: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, String> {
        Ok(self
            .seal_all(inner, SPI_IN, PEER, LOCAL)?
            .into_iter()
            .map(|ip| {
                let mut f = Vec::with_capacity(14 + ip.len());
                f.extend_from_slice(&DUT_MAC);
                f.extend_from_slice(&PEER_MAC);
                f.extend_from_slice(&[0x08, 0x00]);
                f.extend_from_slice(&ip);
                f
            })
            .collect())
    }

    /// Raw cipher speed of the dataplane's `SaCrypto::seal` / `open` (the calls the ESP path
    /// makes) on the buffers the outbound path builds from `frames`: one buffer per frame, so
    /// the working set is the capture's, as in the ESP measurement. Seal and open passes over
    /// all buffers alternate (each open pass verifies what the seal pass made) until
    /// `seconds` have been spent in each. Returns (seal, open) in operations.
    pub fn raw_speed(&self, frames: &[Vec<u8>], seconds: f64) -> Result<(Rate, Rate), String> {
        self.raw_speed_on(frames, seconds, Backend::Fastest)
    }

    /// [`raw_speed`](Self::raw_speed) on a chosen crypto backend.
    pub fn raw_speed_on(
        &self,
        frames: &[Vec<u8>],
        seconds: f64,
        backend: Backend,
    ) -> Result<(Rate, Rate), String> {
        let mut bufs = self.seal_all(frames, SPI_OUT, LOCAL, PEER)?;
        let crypto = SaCrypto::with_backend(self.suite, &self.enc_key(), &self.auth_key(), backend)
            .map_err(|e| format!("{}: {e}", self.label))?;
        let budget = Duration::from_secs_f64(seconds);
        let (start, before, mine) = (Instant::now(), CpuSample::take(None), thread_ticks());
        let (mut t_seal, mut t_open) = (Duration::ZERO, Duration::ZERO);
        let mut passes = 0u64;
        while t_seal < budget || t_open < budget {
            let t = Instant::now();
            for b in bufs.iter_mut() {
                crypto
                    .seal(b, ESP_OFFSET, None)
                    .map_err(|e| format!("{}: seal: {e:?}", self.label))?;
            }
            t_seal += t.elapsed();
            let t = Instant::now();
            for b in bufs.iter_mut() {
                crypto
                    .open(b, ESP_OFFSET, None)
                    .map_err(|e| format!("{}: open: {e:?}", self.label))?;
            }
            t_open += t.elapsed();
            passes += 1;
        }
        let elapsed = start.elapsed().as_secs_f64();
        let other_cpu = before.and_then(|b| b.other_since(None, elapsed));
        let core_share = match (mine, thread_ticks()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 100.0 / elapsed),
            _ => None,
        };
        let rate = |t: Duration| Rate {
            packets: passes * bufs.len() as u64,
            seconds: t.as_secs_f64(),
            other_cpu,
            core_share,
            peak_mpps: None,
        };
        Ok((rate(t_seal), rate(t_open)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_accepted_by_the_daemons_validation() {
        use control::config::RawConfig;
        use control::state::State;
        let a: Alg = "aes-gcm-128".parse().unwrap();
        for dir in [Dir::Out, Dir::In] {
            for handoff in [false, true] {
                let c = a.ferrogate_config(
                    dir,
                    handoff,
                    "/tmp/s",
                    "p",
                    "net_pcap0,rx_pcap=x",
                    "net_null0",
                );
                let st = RawConfig::parse(&c)
                    .and_then(|r| State::from_config(&r))
                    .unwrap_or_else(|e| panic!("{dir:?} {handoff}: {e}\n{c}"));
                assert_eq!(st.workers.len(), 1 + handoff as usize, "{c}");
            }
        }
    }

    #[test]
    fn names_parse_to_suites() {
        let a: Alg = "aes-cbc-128+hmac-sha256-128".parse().unwrap();
        assert_eq!(
            a.suite,
            Suite::AesCbc(AesKeyLen::Aes128, Integ::HmacSha256_128)
        );
        assert_eq!(a.auth_key().len(), 32);
        let g: Alg = "aes-gcm-128".parse().unwrap();
        assert_eq!(hex(&g.enc_key()), "deadbeef".repeat(5));
        assert!("aes-gcm-100".parse::<Alg>().is_err());
        assert!(
            "aes-cbc-128".parse::<Alg>().is_err(),
            "CBC needs an integrity algorithm"
        );
    }

    #[test]
    fn inbound_frames_open_with_the_inbound_sa_and_raw_speed_runs() {
        for name in [
            "aes-gcm-128",
            "chacha20-poly1305",
            "aes-cbc-256+hmac-sha1-96",
        ] {
            let a: Alg = name.parse().unwrap();
            let inner = crate::frames::udp4_sized(&[64, 1420], [10, 1, 0, 1], [10, 0, 0, 1]);
            let esp = a.inbound_frames(&inner).unwrap();
            let mut rx = a.sa(SPI_IN, LOCAL, PEER).unwrap();
            for (e, i) in esp.iter().zip(&inner) {
                assert_eq!(e[..6], DUT_MAC);
                let mut p = HeapPacket::from_frame(&e[14..]);
                esp::decap(&mut rx, &mut p).unwrap();
                assert_eq!(p.data(), &i[14..], "{name}");
            }
            let (s, o) = a.raw_speed(&inner, 0.001).unwrap();
            assert!(s.packets > 0 && s.packets == o.packets);
        }
    }
}
