//! DPDK's `ipsec-secgw` example as the IPsec reference: built from the Debian `dpdk-doc`
//! sources with the reference patch (cached in the scratch directory), run the way the
//! reference figures were measured (one lcore, `crypto_aesni_gcm` vdev, pcap in, null out) and
//! read through DPDK telemetry. The patch and configs live in `bench/reference/` and are
//! compiled into ferrobench, so nothing outside the repository is read.

use crate::run::Dut;
use crate::telemetry::{socket_path, Telemetry};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PATCH: &str = include_str!("../reference/ipsec-secgw-vdev.patch");
const GCM128: &str = include_str!("../reference/gcm128.cfg");
const GCM128_CPU: &str = include_str!("../reference/gcm128_cpu.cfg");
const GCM256: &str = include_str!("../reference/gcm256.cfg");
const GCM256_CPU: &str = include_str!("../reference/gcm256_cpu.cfg");
/// The checker both programs' captures go through (see its docstring).
pub const ESP_CHECK: &str = include_str!("../reference/esp_check.py");

const EXAMPLES: &str = "/usr/share/dpdk/examples";

/// Where the app's SAs can be: AES-GCM with 128- or 256-bit keys (what the recipe covers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcmKey {
    Aes128,
    Aes256,
}

/// How ipsec-secgw processes ESP (the recipe's three modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The app's own ESP code, crypto through the cryptodev (lookaside-none).
    Legacy,
    /// librte_ipsec (`-l`), crypto through the cryptodev.
    Lib,
    /// librte_ipsec with `type cpu-crypto` SAs: synchronous crypto on the lcore.
    Cpu,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "legacy" => Ok(Mode::Legacy),
            "lib" => Ok(Mode::Lib),
            "cpu" | "cpu-crypto" => Ok(Mode::Cpu),
            o => Err(format!("'{o}': legacy, lib or cpu")),
        }
    }
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Legacy => "legacy",
            Mode::Lib => "lib",
            Mode::Cpu => "cpu",
        }
    }
}

/// The config file text for a key size and mode.
pub fn config(key: GcmKey, mode: Mode) -> &'static str {
    match (key, mode) {
        (GcmKey::Aes128, Mode::Cpu) => GCM128_CPU,
        (GcmKey::Aes128, _) => GCM128,
        (GcmKey::Aes256, Mode::Cpu) => GCM256_CPU,
        (GcmKey::Aes256, _) => GCM256,
    }
}

fn run(cmd: &mut Command, what: &str, log: &Path) -> Result<(), String> {
    let f = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let st = cmd
        .stdout(f.try_clone().map_err(|e| e.to_string())?)
        .stderr(f)
        .status()
        .map_err(|e| format!("{what}: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        let tail: String = std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        Err(format!(
            "{what} failed ({st}), log {}:\n{tail}",
            log.display()
        ))
    }
}

/// Build ipsec-secgw into `dir/ipsec-secgw-build` unless a build from the same patch and DPDK
/// version is already there; returns the binary.
pub fn build(dir: &Path) -> Result<PathBuf, String> {
    let root = dir.join("ipsec-secgw-build");
    let bin = root.join("ipsec-secgw/build/ipsec-secgw");
    let dpdk = Command::new("pkg-config")
        .args(["--modversion", "libdpdk"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let stamp_want = format!("dpdk {dpdk}\n{PATCH}");
    let stamp = root.join("stamp");
    if bin.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&stamp_want) {
        return Ok(bin);
    }
    let src = Path::new(EXAMPLES).join("ipsec-secgw");
    if !src.is_dir() {
        return Err(format!(
            "{} missing: install dpdk-doc and dpdk-dev (scripts/setup.sh)",
            src.display()
        ));
    }
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    eprintln!(
        "ferrobench: building ipsec-secgw from {EXAMPLES} (once; cached in {})",
        root.display()
    );
    run(
        Command::new("cp")
            .arg("-r")
            .arg(&src)
            .arg(Path::new(EXAMPLES).join("common"))
            .arg(&root),
        "copy the example sources",
        &root.join("copy.log"),
    )?;
    let patch = root.join("ipsec-secgw-vdev.patch");
    std::fs::write(&patch, PATCH).map_err(|e| e.to_string())?;
    run(
        Command::new("patch")
            .args(["-p0", "-i"])
            .arg(&patch)
            .current_dir(root.join("ipsec-secgw")),
        "patch ipsec-secgw",
        &root.join("patch.log"),
    )?;
    run(
        Command::new("make")
            .arg("-j2")
            .current_dir(root.join("ipsec-secgw")),
        "make ipsec-secgw",
        &root.join("build.log"),
    )?;
    if !bin.exists() {
        return Err(format!("make ran but {} is missing", bin.display()));
    }
    std::fs::write(&stamp, stamp_want).map_err(|e| e.to_string())?;
    Ok(bin)
}

/// A running ipsec-secgw: port 0 receives, port 1 transmits.
pub struct Secgw {
    child: Child,
    tel: Telemetry,
    prefix: String,
    log: PathBuf,
}

/// What one ipsec-secgw run does.
pub struct SecgwRun<'a> {
    pub bin: &'a Path,
    pub cfg: &'a Path,
    pub mode: Mode,
    /// Input is ESP to decrypt (port 0 unprotected, `-u 0x1`); else plain to encrypt (`-u 0x2`).
    pub inbound: bool,
    /// `--vdev` of port 0 (the input) and port 1 (the output).
    pub rx_vdev: String,
    pub tx_vdev: String,
    pub log: PathBuf,
}

impl Secgw {
    pub fn start(r: &SecgwRun) -> Result<Secgw, String> {
        let prefix = format!("fgbenchsgw{}", std::process::id());
        let logf = std::fs::File::create(&r.log).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(r.bin);
        // -l 1: lcore 1 is the main lcore and the only packet lcore (the app polls on its main
        // lcore); EAL's control threads, telemetry included, stay on CPU 0.
        cmd.args([
            "-l",
            "1",
            "-n",
            "4",
            "--in-memory",
            "--no-pci",
            "--file-prefix",
        ])
        .arg(&prefix)
        .arg("--vdev")
        .arg(&r.rx_vdev)
        .arg("--vdev")
        .arg(&r.tx_vdev)
        .args(["--vdev", "crypto_aesni_gcm0", "--", "-p", "0x3", "-u"])
        .arg(if r.inbound { "0x1" } else { "0x2" })
        .args(["--config=(0,0,1),(1,0,1)", "--mtu", "1600", "-f"])
        .arg(r.cfg);
        if r.mode != Mode::Legacy {
            cmd.arg("-l");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(logf.try_clone().map_err(|e| e.to_string())?)
            .stderr(logf)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", r.bin.display()))?;
        let tel = match Telemetry::connect(&socket_path(&prefix), Duration::from_secs(60)) {
            Ok(t) => t,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&r.log).unwrap_or_default();
                return Err(format!("ipsec-secgw did not come up ({e}):\n{log}"));
            }
        };
        Ok(Secgw {
            child,
            tel,
            prefix,
            log: r.log.clone(),
        })
    }

    /// A port counter (`ipackets`, `opackets`, ...).
    pub fn counter(&mut self, port: u16, name: &str) -> Result<u64, String> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Err(format!(
                "ipsec-secgw exited ({st}): {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            ));
        }
        self.tel.port_counter(port, name)
    }

    /// Wait until the input port has received something (the app is forwarding).
    pub fn wait_running(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        while self.counter(0, "ipackets")? == 0 {
            if Instant::now() > deadline {
                return Err("ipsec-secgw received nothing".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

impl Dut for Secgw {
    fn tx_packets(&mut self) -> Result<u64, String> {
        self.counter(1, "opackets")
    }

    fn pid(&self) -> Option<u32> {
        Some(self.child.id())
    }

    fn stop(mut self: Box<Self>) -> Result<(), String> {
        // SIGINT is how the app is told to stop (it closes the ports, flushing a tx_pcap).
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut r = Err("ipsec-secgw did not stop within 20 s".to_string());
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                r = Ok(());
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if r.is_err() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // --in-memory leaves only the (now dead) sockets' directory behind.
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
        r
    }
}
