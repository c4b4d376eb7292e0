//! The programs under test, started as child processes, and the sampling of their output
//! port's transmitted-packet counter. Each program gets its own `--file-prefix` and runs
//! `--in-memory`, so nothing is left behind and two runs never collide.

use control::api::client;
use control::api::proto::Request;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

/// Something forwarding from an input pcap to a null port whose TX counter we can read.
pub trait Dut {
    /// Packets transmitted on the output port so far.
    fn tx_packets(&mut self) -> Result<u64, String>;
    /// Stop the program (and return its log on failure).
    fn stop(self: Box<Self>) -> Result<(), String>;
    /// Its process id (to tell its CPU time from other people's).
    fn pid(&self) -> Option<u32> {
        None
    }
}

/// One measurement: packets over a window.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub packets: u64,
    pub seconds: f64,
    /// CPU time used during the window by anything but the program under test and ferrobench,
    /// in cores (1.0 = one whole core): other people's jobs on this shared machine. Anything
    /// much above 0 means the figure was taken under load (the measuring core may have been
    /// shared).
    pub other_cpu: Option<f64>,
    /// Share of the window the measured code actually ran (its threads on the worker CPU; for
    /// the raw cipher loop, ferrobench's own thread): 1.0 = it had its core to itself. This is
    /// what decides whether a figure under foreign load is still fair.
    pub core_share: Option<f64>,
    /// The best rate over any [`PEAK_INTERVAL`] of the window, in Mpps: on this shared
    /// machine the host swings between fast and slow phases shorter than a window, and the
    /// fast ones are the closest to what the code does undisturbed — so two builds are
    /// compared on this, not on window means that mix the phases.
    pub peak_mpps: Option<f64>,
}

/// The interval the window is sampled at for [`Rate::peak_mpps`].
pub const PEAK_INTERVAL: Duration = Duration::from_millis(100);

impl Rate {
    pub fn mpps(&self) -> f64 {
        self.packets as f64 / self.seconds / 1e6
    }
    /// Gbit/s of Ethernet frame bytes (no FCS, preamble or gap), like the reference figures.
    pub fn gbps(&self, frame_len: usize) -> f64 {
        self.packets as f64 * frame_len as f64 * 8.0 / self.seconds / 1e9
    }
    /// Core cycles per packet: the forwarding core spins at 100 %, so every cycle of the
    /// window it ran (all of it, or its `core_share` when known) is spent on these packets.
    pub fn cycles_per_packet(&self, hz: f64) -> f64 {
        if self.packets == 0 {
            return f64::INFINITY;
        }
        hz * self.seconds * self.core_share.unwrap_or(1.0).min(1.0) / self.packets as f64
    }
    /// Mpps per whole core: the rate scaled to the share of the window the loop really ran
    /// (what it would do with its core to itself, cache disturbance aside).
    pub fn mpps_per_core(&self) -> f64 {
        match self.core_share {
            Some(c) if c > 0.0 => self.mpps() / c.min(1.0),
            _ => self.mpps(),
        }
    }
}

/// Warm up, then count packets over `window`.
pub fn measure(d: &mut dyn Dut, warmup: Duration, window: Duration) -> Result<Rate, String> {
    std::thread::sleep(warmup);
    let pid = d.pid();
    let before = CpuSample::take(pid);
    let core0 = pid.and_then(|p| ticks_on_cpu(p, WORKER_CPU));
    let (t0, p0) = (Instant::now(), d.tx_packets()?);
    let (mut last_t, mut last_p, mut peak) = (t0, p0, None::<f64>);
    let p1 = loop {
        let left = window.saturating_sub(t0.elapsed());
        std::thread::sleep(left.min(PEAK_INTERVAL));
        let p = d.tx_packets()?;
        let now = Instant::now();
        let dt = now.duration_since(last_t).as_secs_f64();
        // Only whole intervals: the last, shorter one is noisier.
        if dt >= PEAK_INTERVAL.as_secs_f64() * 0.9 {
            let r = p.saturating_sub(last_p) as f64 / dt / 1e6;
            peak = Some(peak.map_or(r, |x| x.max(r)));
        }
        (last_t, last_p) = (now, p);
        if now.duration_since(t0) >= window {
            break p;
        }
    };
    let seconds = t0.elapsed().as_secs_f64();
    let other_cpu = before.and_then(|c| c.other_since(pid, seconds));
    let core1 = pid.and_then(|p| ticks_on_cpu(p, WORKER_CPU));
    let core_share = match (core0, core1) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 100.0 / seconds),
        _ => None,
    };
    Ok(Rate {
        packets: p1.saturating_sub(p0),
        seconds,
        other_cpu,
        core_share,
        peak_mpps: peak,
    })
}

/// The CPU every program under test runs its packet loop on (lcore 1 = CPU 1).
pub const WORKER_CPU: u32 = 1;

/// utime + stime of the threads of `pid` last seen on `cpu` (the pinned worker's, in
/// practice), in USER_HZ ticks.
pub fn ticks_on_cpu(pid: u32, cpu: u32) -> Option<u64> {
    let mut sum = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Ok(s) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = s.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After the name: utime is field 14, stime 15, processor 39 (1-based, whole line).
        let on = f.get(36).and_then(|x| x.parse::<u32>().ok());
        if on == Some(cpu) {
            let u = f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
            let k = f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
            sum += u + k;
        }
    }
    Some(sum)
}

/// utime + stime of the calling thread, in USER_HZ ticks.
pub fn thread_ticks() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let f: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// CPU time counters (in USER_HZ ticks, 100 per second on Linux): all CPUs busy, the program
/// under test, this process.
#[derive(Clone, Copy, Debug)]
pub struct CpuSample {
    all_busy: u64,
    dut: u64,
    me: u64,
}

/// utime + stime of a process (all its threads) from /proc/PID/stat.
fn proc_ticks(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15.
    let f: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

impl CpuSample {
    pub fn take(dut: Option<u32>) -> Option<CpuSample> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let v: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
        let busy = v.iter().take(8).sum::<u64>() - v.get(3)? - v.get(4)?;
        Some(CpuSample {
            all_busy: busy,
            dut: dut.and_then(|p| proc_ticks(&p.to_string())).unwrap_or(0),
            me: proc_ticks("self")?,
        })
    }

    /// Cores' worth of CPU others used since this sample, over `seconds`.
    pub fn other_since(&self, dut: Option<u32>, seconds: f64) -> Option<f64> {
        let now = CpuSample::take(dut)?;
        let other = now.all_busy as i64
            - self.all_busy as i64
            - (now.dut as i64 - self.dut as i64)
            - (now.me as i64 - self.me as i64);
        Some(other.max(0) as f64 / 100.0 / seconds)
    }
}

/// Wait until the machine is idle (less than `threshold` cores busy over a 2-s sample) or
/// `max` has passed; returns the last busy figure in cores.
pub fn wait_quiet(max: Duration, threshold: f64) -> f64 {
    let start = Instant::now();
    loop {
        let Some(a) = CpuSample::take(None) else {
            return f64::NAN;
        };
        std::thread::sleep(Duration::from_secs(2));
        let busy = a.other_since(None, 2.0).unwrap_or(f64::NAN);
        if busy < threshold || start.elapsed() >= max {
            return busy;
        }
    }
}

/// Before a measurement: wait up to `max` for the machine to go idle (others below 10 % of a
/// core, as the reference figures did); nothing when `max` is zero. The row's other% column
/// tells what it got.
pub fn settle(max: Duration) {
    if !max.is_zero() {
        wait_quiet(max, 0.1);
    }
}

/// Wait until `count()` reaches `n` (or stalls for 3 s, or 30 s pass); its last value.
pub fn wait_count(mut count: impl FnMut() -> Result<u64, String>, n: u64) -> Result<u64, String> {
    let start = Instant::now();
    let (mut last, mut since) = (0, Instant::now());
    loop {
        let c = count()?;
        if c >= n {
            return Ok(c);
        }
        if c != last {
            (last, since) = (c, Instant::now());
        }
        if since.elapsed() > Duration::from_secs(3) || start.elapsed() > Duration::from_secs(30) {
            return Ok(c);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The 1/5/15-minute load averages, as /proc/loadavg gives them.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Nominal core clock from /proc/cpuinfo (MHz of the first CPU).
pub fn cpu_hz() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let l = s.lines().find(|l| l.starts_with("cpu MHz"))?;
    let mhz: f64 = l.split(':').nth(1)?.trim().parse().ok()?;
    Some(mhz * 1e6)
}

/// A binary next to the running one (cargo puts all of the workspace's binaries together).
pub fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// ferrogate routing from the input pcap to net_null with one worker on lcore 1.
pub struct Ferrogate {
    child: Child,
    socket: String,
    log: PathBuf,
}

impl Ferrogate {
    pub fn config(socket: &str, prefix: &str, input: &Path) -> String {
        let system = system_toml(socket, prefix);
        format!(
            r#"{system}[[ports]]
name = "in"
devargs = "net_pcap0,rx_pcap={input},infinite_rx=1"
mac = "02:00:00:00:00:02"
[[ports]]
name = "out"
devargs = "net_null0,no-rx=1"

[[workers]]
lcore = 1
rx = ["in:0", "out:0"]

[[interfaces]]
name = "in"
port = "in"
addresses = ["10.0.0.254/24"]
[[interfaces]]
name = "out"
port = "out"
addresses = ["10.9.0.1/24"]

[[neighbors]]
ip = "10.9.0.2"
mac = "02:00:00:00:00:09"
interface = "out"

[[routes]]
prefix = "10.1.0.0/16"
via = "10.9.0.2"
"#,
            input = input.display()
        )
    }

    pub fn start(dir: &Path, input: &Path) -> Result<Ferrogate, String> {
        Self::launch(dir, |socket, prefix| Self::config(socket, prefix, input))
    }

    /// Start ferrogate with the config `make(socket, file_prefix)` returns (written to
    /// `dir/ferrogate.toml`) and wait until it answers on its socket.
    pub fn launch(
        dir: &Path,
        make: impl FnOnce(&str, &str) -> String,
    ) -> Result<Ferrogate, String> {
        let socket = dir.join("ferrogate.sock").display().to_string();
        let prefix = format!("fgbench{}", std::process::id());
        let cfg = dir.join("ferrogate.toml");
        std::fs::write(&cfg, make(&socket, &prefix)).map_err(|e| e.to_string())?;
        let log = dir.join("ferrogate.log");
        let logf = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let bin = sibling("ferrogate");
        let child = Command::new(&bin)
            .arg("--config")
            .arg(&cfg)
            .stdout(logf.try_clone().map_err(|e| e.to_string())?)
            .stderr(logf)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let mut f = Ferrogate { child, socket, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(st)) = f.child.try_wait() {
                return Err(format!("ferrogate exited ({st}): {}", f.log_text()));
            }
            if client::call(&f.socket, &Request::Ping).is_ok() {
                return Ok(f);
            }
            if Instant::now() > deadline {
                let _ = f.child.kill();
                return Err(format!("ferrogate did not come up: {}", f.log_text()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `show stats` of the worker (for cycles the worker itself accounts as busy).
    pub fn stats(&self) -> Result<serde_json::Value, String> {
        let r = client::call(&self.socket, &Request::ShowStats)?;
        Ok(r.data)
    }

    /// `show errors`: one row per drop reason seen (`reason`, `count`, ...).
    pub fn errors(&self) -> Result<serde_json::Value, String> {
        Ok(client::call(&self.socket, &Request::ShowErrors)?.data)
    }

    /// `show errors` as (reason, count) pairs; empty when nothing was dropped.
    pub fn drops(&self) -> Result<Vec<(String, u64)>, String> {
        let v = self.errors()?;
        Ok(v.as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        (
                            r["reason"].as_str().unwrap_or("?").to_string(),
                            r["count"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `show errors` as one line, with the drops' share of what port "out" transmitted.
    pub fn drops_line(&self) -> String {
        let sent = self.port_counter("out", "opackets").unwrap_or(0);
        match self.drops() {
            Err(e) => format!("show errors failed: {e}"),
            Ok(rows) if rows.is_empty() => format!("none ({sent} packets sent)"),
            Ok(rows) => {
                let total: u64 = rows.iter().map(|r| r.1).sum();
                let list: Vec<String> = rows.iter().map(|(r, n)| format!("{r}={n}")).collect();
                let share = total as f64 / sent.max(1) as f64 * 100.0;
                let flag = if share > 1.0 { "WARNING: " } else { "" };
                format!("{flag}{} ({share:.2}% of {sent} sent)", list.join(" "))
            }
        }
    }

    /// `show ipsec sa`: one row per SA with its counters.
    pub fn sas(&self) -> Result<serde_json::Value, String> {
        let r = client::call(
            &self.socket,
            &Request::ShowIpsecSa {
                name: None,
                spi: None,
                peer: None,
                selector: None,
                detail: true,
            },
        )?;
        Ok(r.data)
    }

    /// A counter (`ipackets`, `opackets`, ...) of the port named `port` in `show ports`.
    pub fn port_counter(&self, port: &str, name: &str) -> Result<u64, String> {
        let r = client::call(&self.socket, &Request::ShowPorts)?;
        r.data
            .as_array()
            .and_then(|rows| rows.iter().find(|p| p["name"] == port))
            .and_then(|p| p[name].as_u64())
            .ok_or_else(|| format!("no {name} of port '{port}' in show ports: {}", r.data))
    }
}

impl Dut for Ferrogate {
    fn tx_packets(&mut self) -> Result<u64, String> {
        self.port_counter("out", "opackets")
    }

    fn pid(&self) -> Option<u32> {
        Some(self.child.id())
    }

    fn stop(mut self: Box<Self>) -> Result<(), String> {
        // SIGTERM through kill(1): the daemon shuts down cleanly and reports leaks.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return if st.success() {
                    Ok(())
                } else {
                    Err(format!("ferrogate exited {st}: {}", self.log_text()))
                };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        Err("ferrogate did not stop within 20 s".into())
    }
}

/// `dpdk-testpmd` in interactive mode, driven over its stdin.
pub struct Testpmd {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Testpmd {
    /// Start testpmd forwarding `net_pcap0` → `net_null0` on lcore 1 in `mode` (io, mac).
    pub fn start(input: &Path, mode: &str) -> Result<Testpmd, String> {
        let prefix = format!("fgbenchpmd{}", std::process::id());
        // stdbuf: testpmd's stdout is a pipe here, which glibc would buffer fully.
        let mut child = Command::new("stdbuf")
            .args([
                "-oL",
                "dpdk-testpmd",
                "-l",
                "0,1",
                "--in-memory",
                "--no-pci",
                "--no-telemetry",
                "--file-prefix",
                &prefix,
            ])
            .arg("--vdev")
            .arg(format!(
                "net_pcap0,rx_pcap={},infinite_rx=1",
                input.display()
            ))
            .args([
                "--vdev",
                "net_null0,no-rx=1",
                "--",
                "-i",
                "--nb-cores=1",
                "--rxq=1",
                "--txq=1",
                "--no-flush-rx",
            ])
            .arg(format!("--forward-mode={mode}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start dpdk-testpmd (install the dpdk package): {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut t = Testpmd {
            child,
            stdin,
            lines: rx,
        };
        t.cmd("start")?;
        t.wait_for(
            |l| l.contains("packet forwarding - ports="),
            Duration::from_secs(60),
        )?;
        Ok(t)
    }

    fn cmd(&mut self, c: &str) -> Result<(), String> {
        writeln!(self.stdin, "{c}").map_err(|e| format!("testpmd stdin: {e}"))
    }

    fn wait_for(&mut self, mut f: impl FnMut(&str) -> bool, t: Duration) -> Result<String, String> {
        let deadline = Instant::now() + t;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if f(&l) => return Ok(l),
                Ok(_) => {}
                Err(_) => return Err("testpmd did not answer (exited or timed out)".into()),
            }
        }
    }
}

impl Dut for Testpmd {
    fn pid(&self) -> Option<u32> {
        // stdbuf execs testpmd in the same process.
        Some(self.child.id())
    }

    fn tx_packets(&mut self) -> Result<u64, String> {
        self.cmd("show port stats 1")?;
        self.wait_for(
            |l| l.contains("NIC statistics for port 1"),
            Duration::from_secs(10),
        )?;
        let l = self.wait_for(|l| l.contains("TX-packets:"), Duration::from_secs(10))?;
        l.split_whitespace()
            .skip_while(|w| *w != "TX-packets:")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("cannot parse testpmd line '{l}'"))
    }

    fn stop(mut self: Box<Self>) -> Result<(), String> {
        let _ = self.cmd("stop");
        let _ = self.cmd("quit");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        Ok(())
    }
}

/// What a Scapy check script (`bench/reference/*_check.py`) said about a one-pass capture.
pub struct ScapyVerdict {
    /// Its one-line JSON report (`ok`, `inputs`, `bad`, `frames`, `first_error`, ...).
    pub report: serde_json::Value,
    /// The script exited 0: everything checked out.
    pub passed: bool,
}

impl ScapyVerdict {
    /// "ok N/M" counts from the report.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.report["ok"].as_u64().unwrap_or(0),
            self.report["inputs"].as_u64().unwrap_or(0),
        )
    }

    /// The "ok N/M" counts of a check that passed; its failure line otherwise.
    pub fn passed_counts(&self) -> Result<(u64, u64), String> {
        if self.passed {
            Ok(self.counts())
        } else {
            Err(self.failure())
        }
    }

    /// The failure line for a check that did not pass.
    pub fn failure(&self) -> String {
        let (ok, n) = self.counts();
        let v = &self.report;
        format!(
            "FAILED {ok}/{n} matched, {} bad, {} frames out: {}",
            v["bad"], v["frames"], v["first_error"]
        )
    }
}

/// Write `script` (its text) and `spec` (the JSON it reads) into `work` and run it with the
/// system Python (where Debian's Scapy is) as `script [args before] spec input output`.
pub fn scapy_check(
    work: &Path,
    script: (&str, &str),
    spec: (&str, &serde_json::Value),
    args_before: &[&str],
    input: &Path,
    output: &Path,
) -> Result<ScapyVerdict, String> {
    let script_path = work.join(script.0);
    std::fs::write(&script_path, script.1).map_err(|e| e.to_string())?;
    let spec_path = work.join(spec.0);
    std::fs::write(&spec_path, spec.1.to_string()).map_err(|e| e.to_string())?;
    let out = Command::new("/usr/bin/python3")
        .arg(&script_path)
        .args(args_before)
        .arg(&spec_path)
        .arg(input)
        .arg(output)
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let report = serde_json::from_str(&text).map_err(|_| {
        format!(
            "Scapy check failed to run: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok(ScapyVerdict {
        report,
        passed: out.status.success(),
    })
}

/// The `[system]` table every measured ferrogate runs with: its control socket and EAL file
/// prefix, the main lcore 0 (the worker gets lcore 1), a fixed pool, a worker that never
/// sleeps, quiet logs.
pub fn system_toml(socket: &str, prefix: &str) -> String {
    format!(
        r#"[system]
socket = "{socket}"
file_prefix = "{prefix}"
main_lcore = 0
mempool_mbufs = 16383
worker_idle_sleep_us = 0
log = "warn"

"#
    )
}
