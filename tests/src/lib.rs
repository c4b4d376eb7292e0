//! Harness for end-to-end tests: the real `ferrogate` daemon started on a generated config,
//! driven through `ferroctl`, with network namespaces and veth pairs playing the hosts.
//!
//! Everything a test creates has a name unique to the process and test (namespaces, links,
//! EAL `--file-prefix`, socket, scratch directory), so tests run in parallel, and every object
//! is an RAII guard, so it is torn down when the test ends — including when it fails.
//! Missing prerequisites (root, hugepages, binaries) fail the test with a message saying what
//! to run; they never silently skip.

pub use bench::pcap;

pub mod esp;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Run a command; error with its stderr if it fails.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `run` that panics with the message (for test set-up steps).
pub fn must(cmd: &str, args: &[&str]) -> String {
    run(cmd, args).unwrap_or_else(|e| panic!("{e}"))
}

/// Fail loudly unless we are root with hugepages reserved.
pub fn require_env() {
    let uid = must("id", &["-u"]);
    assert_eq!(
        uid.trim(),
        "0",
        "end-to-end tests need root (run scripts/test.sh as root)"
    );
    let mi = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let free: u64 = mi
        .lines()
        .find(|l| l.starts_with("HugePages_Free:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(
        free >= 64,
        "end-to-end tests need free hugepages (found {free}); run scripts/setup.sh"
    );
}

/// A short unique tag (interface names are limited to 15 characters).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}{n}", std::process::id() % 100_000)
}

/// The directory holding the workspace's built binaries (next to this test executable).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --bins` (scripts/test.sh does)",
        p.display()
    );
    p
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = unique(&format!("fg{tag}"));
        must("ip", &["netns", "add", &name]);
        must("ip", &["-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// Run a command inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Result<String, String> {
        let mut a = vec!["netns", "exec", &self.name];
        a.extend_from_slice(args);
        run("ip", &a)
    }

    /// Spawn a command inside the namespace.
    pub fn spawn(&self, args: &[&str]) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn in netns")
    }

    /// `ip` inside the namespace.
    pub fn ip(&self, args: &[&str]) {
        let mut a = vec!["-n", &self.name];
        a.extend_from_slice(args);
        must("ip", &a);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// A veth pair: `outer` stays in the root namespace (for DPDK's net_af_packet), `inner` is
/// moved into `ns` with `addrs`. Deleted on drop (deleting one end deletes both).
pub struct Veth {
    pub outer: String,
    pub inner: String,
}

impl Veth {
    pub fn new(ns: &Netns, addrs: &[&str]) -> Veth {
        let t = unique("v");
        let outer = format!("{t}o");
        let inner = format!("{t}i");
        must(
            "ip",
            &[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ],
        );
        let v = Veth { outer, inner };
        must("ip", &["link", "set", &v.inner, "netns", &ns.name]);
        // The daemon's end: up, no addresses, no IPv6 chatter from the root namespace.
        let _ = run(
            "sysctl",
            &["-qw", &format!("net.ipv6.conf.{}.disable_ipv6=1", v.outer)],
        );
        must("ip", &["link", "set", &v.outer, "up"]);
        for a in addrs {
            let fam = if a.contains(':') { "-6" } else { "-4" };
            ns.ip(&[fam, "addr", "add", a, "dev", &v.inner]);
        }
        ns.ip(&["link", "set", &v.inner, "up"]);
        // Checksums offloaded by veth would reach the gateway unfilled and leave it still
        // unfilled for the receiving kernel: make the hosts compute them.
        let _ = ns.exec(&["ethtool", "-K", &v.inner, "tx", "off"]);
        v
    }

    /// MAC of the namespace end.
    pub fn inner_mac(&self, ns: &Netns) -> String {
        let out = ns
            .exec(&["cat", &format!("/sys/class/net/{}/address", self.inner)])
            .unwrap_or_default();
        out.trim().to_string()
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = run("ip", &["link", "del", &self.outer]);
    }
}

/// A veth pair with both ends in the root namespace (a link between two daemons, each on
/// one end through net_af_packet). Both ends up, no IPv6 chatter. Deleted on drop.
pub struct VethLink {
    pub a: String,
    pub b: String,
}

impl VethLink {
    pub fn new() -> VethLink {
        let t = unique("w");
        let (a, b) = (format!("{t}a"), format!("{t}b"));
        must(
            "ip",
            &["link", "add", &a, "type", "veth", "peer", "name", &b],
        );
        let l = VethLink { a, b };
        for e in [&l.a, &l.b] {
            let _ = run(
                "sysctl",
                &["-qw", &format!("net.ipv6.conf.{e}.disable_ipv6=1")],
            );
            must("ip", &["link", "set", e, "up"]);
        }
        l
    }
}

impl Default for VethLink {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for VethLink {
    fn drop(&mut self) {
        let _ = run("ip", &["link", "del", &self.a]);
    }
}

/// A scratch directory, removed on drop (kept when FERRO_KEEP is set, for debugging).
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let path = std::env::temp_dir().join(unique(&format!("ferrotest-{tag}-")));
        std::fs::create_dir_all(&path).expect("scratch dir");
        Scratch { path }
    }
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("FERRO_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A running ferrogate.
pub struct Daemon {
    child: Option<Child>,
    pub socket: String,
    pub prefix: String,
    pub log: PathBuf,
    pub config: PathBuf,
    pub dir: Scratch,
}

/// Result of a daemon that was asked to stop.
pub struct Stopped {
    pub code: Option<i32>,
    pub log: String,
}

impl Daemon {
    /// The `[system]` block the harness writes: unique socket and file prefix; workers sleep
    /// when idle so parallel tests on a small machine do not starve each other.
    fn system_block(socket: &str, prefix: &str, extra: &str) -> String {
        format!(
            "[system]\nsocket = \"{socket}\"\nfile_prefix = \"{prefix}\"\nmempool_mbufs = 4095\nworker_idle_sleep_us = 200\nlog = \"info\"\n{extra}\n"
        )
    }

    /// Write `body` (a config without `[system]`) plus the harness's system block, start the
    /// daemon, and wait until it answers on its socket.
    ///
    /// DPDK's af_packet driver names its PACKET_FANOUT group `pid ^ ifindex`, so a daemon can
    /// collide with another process's group (another test's daemon) and fail its probe with
    /// "could not set PACKET_FANOUT"; that start, and only that, is retried (a new process
    /// has a new pid).
    pub fn start(tag: &str, system_extra: &str, body: &str) -> Daemon {
        let mut tries = 0;
        loop {
            match Self::try_start(tag, system_extra, body) {
                Ok(d) => return d,
                Err(e) if e.contains("could not set PACKET_FANOUT") && tries < 3 => tries += 1,
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// Like `start`, but returns the daemon's exit status and log if it does not come up.
    pub fn try_start(tag: &str, system_extra: &str, body: &str) -> Result<Daemon, String> {
        let dir = Scratch::new(tag);
        let prefix = unique(&format!("fg{tag}"));
        let socket = dir.file("ferrogate.sock").display().to_string();
        let config = dir.file("ferrogate.toml");
        std::fs::write(
            &config,
            format!(
                "{}{}",
                Self::system_block(&socket, &prefix, system_extra),
                body
            ),
        )
        .expect("write config");
        let log = dir.file("ferrogate.log");
        let logf = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin("ferrogate"))
            .arg("--config")
            .arg(&config)
            .stdout(logf.try_clone().expect("log"))
            .stderr(logf)
            .spawn()
            .map_err(|e| format!("cannot start ferrogate: {e}"))?;
        let mut d = Daemon {
            child: Some(child),
            socket,
            prefix,
            log,
            config,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(c) = d.child.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    d.child = None;
                    return Err(format!(
                        "ferrogate exited during start-up ({st}):\n{}",
                        std::fs::read_to_string(&d.log).unwrap_or_default()
                    ));
                }
            }
            if d.ctl(&["ping"]).status.success() {
                return Ok(d);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "ferrogate did not answer within 60 s:\n{}",
                    std::fs::read_to_string(&d.log).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Run ferroctl against this daemon.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(bin("ferroctl"))
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run ferroctl")
    }

    /// Run ferroctl, require success, return stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(
            o.status.success(),
            "ferroctl {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr),
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Run `ferroctl --json ARGS` and parse the output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.ctl_ok(&a);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("ferroctl --json {}: {e}: {out}", args.join(" ")))
    }

    /// Drop counters by reason, summed over workers.
    pub fn errors(&self) -> std::collections::HashMap<String, u64> {
        self.json(&["show", "errors"])
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        (
                            r["reason"].as_str().unwrap_or("").to_string(),
                            r["count"].as_u64().unwrap_or(0),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sum of a `show stats` column over workers.
    pub fn stat(&self, column: &str) -> u64 {
        self.json(&["show", "stats"])
            .as_array()
            .map(|rows| rows.iter().map(|r| r[column].as_u64().unwrap_or(0)).sum())
            .unwrap_or(0)
    }

    /// The daemon's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, wait (killing after 20 s), return the exit code and log.
    pub fn stop(mut self) -> Stopped {
        let code = self.terminate();
        Stopped {
            code,
            log: self.log_text(),
        }
    }

    fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = run("kill", &["-TERM", &c.id().to_string()]);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.terminate();
            if std::thread::panicking() {
                eprintln!(
                    "--- ferrogate log ({}) ---\n{}",
                    self.log.display(),
                    self.log_text()
                );
            }
        }
    }
}

/// A tcpdump writing `count` frames matching `filter` on `iface` (root namespace) to `file`;
/// `start` returns once tcpdump is listening. Killed on drop if still running.
pub struct Capture {
    child: Option<Child>,
    pub file: PathBuf,
}

impl Capture {
    pub fn start(iface: &str, filter: &str, count: u32, file: PathBuf) -> Capture {
        use std::io::BufRead;
        let mut child = Command::new("tcpdump")
            .args(["-n", "-U", "-i", iface, "-c", &count.to_string(), "-w"])
            .arg(&file)
            .arg(filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tcpdump");
        let stderr = child.stderr.take().expect("tcpdump stderr");
        let mut lines = std::io::BufReader::new(stderr).lines();
        let ready = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        assert!(ready.contains("listening on"), "tcpdump: {ready}");
        // Keep draining stderr so tcpdump never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Capture {
            child: Some(child),
            file,
        }
    }

    /// Wait (up to `secs`) for tcpdump to have its `count` frames and exit.
    pub fn finish(mut self, secs: u64) -> PathBuf {
        let mut c = self.child.take().expect("capture running");
        wait_until("tcpdump to capture its frames", secs, || {
            matches!(c.try_wait(), Ok(Some(_)))
        });
        self.file.clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Poll `cond` until true or `secs` pass; panics with `what` on timeout.
pub fn wait_until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Run `ferrobench ARGS --dir WORK` and return its standard output; the test fails, showing
/// both outputs, unless it exits 0.
pub fn ferrobench(args: &[&str], work: &std::path::Path) -> String {
    let out = Command::new(bin("ferrobench"))
        .args(args)
        .arg("--dir")
        .arg(work)
        .output()
        .expect("run ferrobench");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}
