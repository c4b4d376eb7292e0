//! ferrobench: measures ferrogate against the DPDK reference applications in one invocation.
//!
//!   ferrobench forward [--sizes 64,512,1420] [--warmup 3] [--seconds 10] [--compare testpmd]
//!   ferrobench esp [--algs aes-gcm-128,aes-cbc-128+hmac-sha256-128,...] [--dirs out,in]
//!                  [--sizes 64,512,1420,imix] [--seconds 10] [--compare ipsec-secgw]
//!                  [--secgw-modes legacy,lib,cpu] [--no-verify]
//!   ferrobench aead [--algs ...] [--sizes ...] [--seconds 2]
//!   ferrobench tunnel [--types gre,vxlan,...] [--dirs encap,decap] [--sizes 64,512,1420]
//!                     [--seconds 10] [--compare testpmd|testpmd-io|none] [--quiet-wait 300]
//!
//! `forward`: one forwarding core (lcore 1) fed from memory (net_pcap infinite_rx) into
//! net_null; Mpps, Gbps and cycles/packet per frame size, and with `--compare testpmd` the same
//! for `dpdk-testpmd --forward-mode=mac` and the ratio.
//!
//! `esp`: the same harness through ESP tunnel mode: `out` seals plain frames (policy → SA →
//! seal → outer route), `in` opens ESP frames made by the dataplane's own sealing code for the
//! inbound SA (anti-replay off on it, as in ipsec-secgw's default, because the capture
//! repeats its sequence numbers). Beside each figure: the raw speed of the dataplane's
//! `SaCrypto::seal`/`open` on the same buffers and the ratio; with `--compare ipsec-secgw`, DPDK's
//! ipsec-secgw (built once from the dpdk-doc sources with `bench/reference/`'s patch, AES-GCM
//! only, crypto_aesni_gcm vdev, each mode asked for) measured the same way on the same
//! captures. Unless `--no-verify`, every program's output of one pass over the capture is
//! checked with Scapy (decrypt and match), and ferrogate's drop counters are shown.
//!
//! `aead`: the raw cipher speed alone. Needs root and hugepages (`esp`, `forward`, `tunnel`).
//!
//! `tunnel`: each overlay tunnel type's encapsulation and decapsulation through the same
//! harness, next to testpmd mac forwarding on the same captures, every path checked once by
//! Scapy (see `bench::tunnel`).
//!
//! `spd`: SPD lookup cost in-process (no DPDK, no root): the classifier next to the linear
//! scan per rule-set kind and size, with build time and memory (see `bench::spd`).

use bench::esp::{Alg, Dir};
use bench::frames::{Size, HOST_A, HOST_B};
use bench::report::{self, rate_cells};
use bench::run::{
    self, cpu_hz, loadavg, measure, settle, wait_count, Dut, Ferrogate, Rate, Testpmd,
};
use bench::secgw::{self, Secgw, SecgwRun};
use bench::{frames, pcap};
use clap::{Parser, Subcommand};
use dataplane::esp::Backend;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "ferrobench",
    version,
    about = "ferrogate benchmarks against DPDK references"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Plain IPv4 routing, one core: pcap (from memory) → ferrogate → net_null.
    Forward {
        /// Frame sizes in bytes (no FCS).
        #[arg(long, value_delimiter = ',', default_value = "64,512,1420")]
        sizes: Vec<usize>,
        /// Distinct flows (UDP source ports) in the input.
        #[arg(long, default_value_t = 1024)]
        flows: u16,
        /// Seconds of warm-up before the window.
        #[arg(long, default_value_t = 3.0)]
        warmup: f64,
        /// Seconds of the measured window.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Reference to run the same way: `testpmd` (mac forwarding) or `testpmd-io`.
        #[arg(long)]
        compare: Option<String>,
        /// Scratch directory (input pcaps, configs, logs).
        #[arg(long, default_value = "/var/tmp/ferrobench")]
        dir: String,
    },
    /// SPD lookup: the classifier against the linear scan, in-process.
    Spd {
        /// Rule counts.
        #[arg(long, value_delimiter = ',', default_value = "1,1000,100000")]
        sizes: Vec<usize>,
        /// Rule-set kinds: realistic, ports (adversarial), nested (adversarial).
        #[arg(long, value_delimiter = ',', default_value = "realistic,ports,nested")]
        sets: Vec<String>,
        /// Timed classifier lookups per row.
        #[arg(long, default_value_t = 2_000_000)]
        lookups: usize,
        /// Timed scan lookups per row (default: about 2·10⁸ rule checks' worth, ≤ --lookups).
        #[arg(long)]
        scan_lookups: Option<usize>,
        /// Distinct precomputed keys, replayed round-robin.
        #[arg(long, default_value_t = 4096)]
        keys: usize,
        /// Percentage of keys aimed inside a rule (the rest are random).
        #[arg(long, default_value_t = 70)]
        aimed: u64,
        /// Seed of the rule sets and keys.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// ESP tunnel mode seal (out) and open (in), one core, beside the raw cipher speed and
    /// optionally DPDK's ipsec-secgw.
    Esp {
        /// Algorithms in the config's names, ENCRYPTION[+INTEGRITY].
        #[arg(long, value_delimiter = ',', default_value = "aes-gcm-128")]
        algs: Vec<Alg>,
        /// Directions: out (seal), in (open).
        #[arg(long, value_delimiter = ',', default_value = "out,in")]
        dirs: Vec<Dir>,
        /// Plain frame sizes in bytes (no FCS) or `imix`.
        #[arg(long, value_delimiter = ',', default_value = "64,512,1420,imix")]
        sizes: Vec<Size>,
        /// Distinct flows (UDP source ports), i.e. frames in the capture.
        #[arg(long, default_value_t = 1024)]
        flows: u16,
        /// Seconds of warm-up before each window.
        #[arg(long, default_value_t = 3.0)]
        warmup: f64,
        /// Seconds of each measured window.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Seconds of the raw cipher measurement per algorithm and size (default: --seconds,
        /// at most 2).
        #[arg(long)]
        raw_seconds: Option<f64>,
        /// Reference to run the same way: `ipsec-secgw` (AES-GCM-128/256 only).
        #[arg(long)]
        compare: Option<String>,
        /// ipsec-secgw modes: legacy, lib (librte_ipsec), cpu (cpu-crypto).
        #[arg(long, value_delimiter = ',', default_value = "legacy,lib,cpu")]
        secgw_modes: Vec<secgw::Mode>,
        /// Skip the one-pass capture + Scapy check of every measured path.
        #[arg(long)]
        no_verify: bool,
        /// Where the ipsec-secgw build is cached (default: --dir).
        #[arg(long)]
        secgw_cache: Option<String>,
        /// Before each measurement wait up to this many seconds for the machine to go idle
        /// (other processes below 10 % of a core), as the reference figures did; 0: never wait.
        #[arg(long, default_value_t = 0.0)]
        quiet_wait: f64,
        /// Also measure ferrogate with every packet handed off: two workers, the SA owned by
        /// the one that does not receive (rows `ferrogate-handoff`; the second worker, lcore
        /// 2, shares CPU 0 with the control thread).
        #[arg(long)]
        handoff: bool,
        /// Scratch directory (captures, configs, logs, the ipsec-secgw build).
        #[arg(long, default_value = "/var/tmp/ferrobench")]
        dir: String,
    },
    /// Overlay tunnel encapsulation and decapsulation per type, one core, next to testpmd
    /// mac forwarding on the same captures; every path checked once by Scapy.
    Tunnel {
        /// Tunnel types (see `bench::tunnel::TYPES`): gre, gre-teb, nvgre, vxlan, vxlan-gpe,
        /// geneve, ipip, etherip, and ip6ip6, vxlan6 (IPv6 underlay), vxlan-gpe-ip, geneve-ip.
        #[arg(long, value_delimiter = ',', default_value = bench::tunnel::DEFAULT_TYPES)]
        types: Vec<bench::tunnel::Type>,
        /// Directions: encap (plain in, tunnel out), decap (tunnel in, inner out).
        #[arg(long, value_delimiter = ',', default_value = "encap,decap")]
        dirs: Vec<bench::tunnel::Dir>,
        /// Plain (inner) frame sizes in bytes (no FCS) or `imix`.
        #[arg(long, value_delimiter = ',', default_value = "64,512,1420")]
        sizes: Vec<Size>,
        /// Distinct flows (inner UDP source ports), i.e. frames in each capture.
        #[arg(long, default_value_t = 1024)]
        flows: u16,
        /// Seconds of warm-up before each window.
        #[arg(long, default_value_t = 3.0)]
        warmup: f64,
        /// Seconds of each measured window.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Reference run the same way on the same captures: testpmd (mac forwarding),
        /// testpmd-io, or none.
        #[arg(long, default_value = "testpmd")]
        compare: String,
        /// Skip the one-pass capture + Scapy check of every measured path.
        #[arg(long)]
        no_verify: bool,
        /// Before each measurement wait up to this many seconds for the machine to go idle
        /// (other processes below 10 % of a core); 0: never wait.
        #[arg(long, default_value_t = 0.0)]
        quiet_wait: f64,
        /// Scratch directory (captures, configs, logs).
        #[arg(long, default_value = "/var/tmp/ferrobench")]
        dir: String,
    },
    /// Encapsulation alone, in-process: the general code against the per-tunnel outer-header
    /// template, alternated pass by pass so both see the same host phases
    Encap {
        /// Tunnel types (as `tunnel --types`)
        #[arg(long, value_delimiter = ',', default_value = bench::tunnel::DEFAULT_TYPES)]
        types: Vec<bench::tunnel::Type>,
        /// Plain (inner) frame sizes in bytes (no FCS) or `imix`
        #[arg(long, value_delimiter = ',', default_value = "64,512,1420")]
        sizes: Vec<Size>,
        /// Frames per pass (flows)
        #[arg(long, default_value_t = 1024)]
        flows: u16,
        /// Seconds per type and size
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
    },
    /// Raw cipher speed of the dataplane's SaCrypto seal/open on ESP-shaped buffers.
    Aead {
        #[arg(long, value_delimiter = ',', default_value = "aes-gcm-128")]
        algs: Vec<Alg>,
        #[arg(long, value_delimiter = ',', default_value = "64,512,1420,imix")]
        sizes: Vec<Size>,
        /// Buffers per size (like the capture's frames).
        #[arg(long, default_value_t = 1024)]
        flows: u16,
        /// Seconds spent sealing (and as many opening) per algorithm and size.
        #[arg(long, default_value_t = 2.0)]
        seconds: f64,
        /// Crypto backends: fastest (what the daemon uses: intel-ipsec-mb for AES-GCM/GMAC),
        /// portable (ring / RustCrypto, the fallback).
        #[arg(long, value_delimiter = ',', default_value = "fastest", value_parser = parse_backend)]
        backends: Vec<Backend>,
    },
}

fn parse_backend(s: &str) -> Result<Backend, String> {
    match s {
        "fastest" => Ok(Backend::Fastest),
        "portable" => Ok(Backend::Portable),
        _ => Err(format!("unknown backend {s:?} (fastest, portable)")),
    }
}

fn row(name: &str, size: usize, r: &Rate, hz: Option<f64>) {
    let cpp = hz
        .map(|h| format!("{:.0}", r.cycles_per_packet(h)))
        .unwrap_or_else(|| "-".into());
    println!(
        "{name:<22} {size:>6} {:>9.3} {:>8.2} {:>10}",
        r.mpps(),
        r.gbps(size),
        cpp
    );
}

fn forward(
    sizes: &[usize],
    flows: u16,
    warmup: f64,
    seconds: f64,
    compare: Option<&str>,
    dir: &str,
) -> Result<(), String> {
    let mode = match compare {
        None => None,
        Some("testpmd") | Some("testpmd-mac") => Some("mac"),
        Some("testpmd-io") => Some("io"),
        Some(o) => {
            return Err(format!(
                "--compare: unknown reference '{o}' (testpmd, testpmd-io)"
            ))
        }
    };
    if !(warmup >= 0.0 && seconds > 0.0) {
        return Err("--warmup must be ≥ 0 and --seconds > 0".into());
    }
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("--dir {}: {e}", dir.display()))?;
    let hz = cpu_hz();
    let (w, s) = (
        Duration::from_secs_f64(warmup),
        Duration::from_secs_f64(seconds),
    );
    println!("# one forwarding core; warm-up {warmup} s, window {seconds} s; {flows} flows; core clock {}", hz.map(|h| format!("{:.0} MHz", h / 1e6)).unwrap_or_else(|| "unknown".into()));
    println!(
        "{:<22} {:>6} {:>9} {:>8} {:>10}",
        "program", "bytes", "Mpps", "Gbps", "cycles/pkt"
    );
    for &size in sizes {
        if !(60..=9000).contains(&size) {
            return Err(format!("--sizes: {size} is outside 60..=9000"));
        }
        let input = dir.join(format!("in_plain_{size}.pcap"));
        pcap::try_write(&input, &frames::udp4_flows(size, flows))
            .map_err(|e| format!("{}: {e}", input.display()))?;

        let mut fg: Box<Ferrogate> = Box::new(Ferrogate::start(&dir, &input)?);
        let ours = measure(fg.as_mut(), w, s);
        let stats = fg.stats().ok();
        fg.stop()?;
        let ours = ours?;
        row("ferrogate", size, &ours, hz);
        if let Some(st) = stats.as_ref().and_then(|v| v.get(0)) {
            println!(
                "{:<22} worker-accounted cycles/pkt {} (packet work only, excluding RX polling)",
                "", st["cycles_per_packet"]
            );
        }
        if let Some(mode) = mode {
            let mut t: Box<Testpmd> = Box::new(Testpmd::start(&input, mode)?);
            let theirs = measure(t.as_mut(), w, s);
            t.stop()?;
            let theirs = theirs?;
            row(&format!("testpmd {mode}-fwd"), size, &theirs, hz);
            let ratio = if theirs.packets == 0 {
                f64::NAN
            } else {
                ours.mpps() / theirs.mpps()
            };
            println!("{:<22} {size:>6} ratio ferrogate/testpmd = {ratio:.2}", "");
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn spd(
    sizes: &[usize],
    sets: &[String],
    lookups: usize,
    scan_lookups: Option<usize>,
    keys: usize,
    aimed: u64,
    seed: u64,
) -> Result<(), String> {
    if aimed > 100 {
        return Err("--aimed must be 0..=100".into());
    }
    if lookups == 0 || keys == 0 || scan_lookups == Some(0) {
        return Err("--lookups, --scan-lookups and --keys must be > 0".into());
    }
    for s in sets {
        bench::spd::rule_set(s, 0, &mut bench::spd::Rng::new(0))?;
    }
    println!(
        "# SPD lookup, one thread: classifier vs linear scan; {keys} precomputed keys ({aimed}% aimed at a rule), {lookups} classifier lookups per row; wall clock on a possibly shared machine"
    );
    println!("# probes = bound of hash probes per lookup for the set; pol_KiB = the policy vector the scan walks");
    println!("{}", bench::spd::header());
    for s in sets {
        for &n in sizes {
            let row = bench::spd::measure(s, n, keys, aimed, lookups, scan_lookups, seed)?;
            println!("{}   (scan: {} lookups)", row.line(), row.scan_lookups);
        }
    }
    Ok(())
}

/// Everything `esp` needs besides the algorithm list.
struct EspOpts {
    /// Also measure with every packet handed off to the SA's owner.
    handoff: bool,
    dirs: Vec<Dir>,
    sizes: Vec<Size>,
    flows: u16,
    warmup: f64,
    seconds: f64,
    raw_seconds: f64,
    secgw_modes: Vec<secgw::Mode>,
    verify: bool,
    dir: PathBuf,
    secgw_cache: PathBuf,
    quiet_wait: Duration,
}

impl EspOpts {
    /// Wait for an idle machine if asked to (the row's other% tells what it got).
    fn settle(&self) {
        settle(self.quiet_wait);
    }
}

/// One figure of the `esp` / `aead` tables.
struct Fig {
    prog: String,
    alg: String,
    dir: &'static str,
    size: Size,
    rate: Rate,
}

const HEADER: &str = "program          alg                            dir  bytes       Mpps     Gbps  cycles/pkt other%  core%  Mpps/core   peak  note";

fn print_fig(f: &Fig, mean_len: f64, hz: Option<f64>, note: &str) {
    println!(
        "{:<16} {:<30} {:<3} {:>6} {}  {note}",
        f.prog,
        f.alg,
        f.dir,
        f.size.to_string(),
        rate_cells(&f.rate, mean_len, hz)
    );
}

use report::ratio;

fn write_pcap(path: &Path, frames: &[Vec<u8>]) -> Result<(), String> {
    pcap::try_write(path, frames).map_err(|e| format!("{}: {e}", path.display()))
}

/// Run the Scapy check of a one-pass capture; returns its one-line verdict.
fn scapy_check(
    work: &Path,
    alg: &Alg,
    dir: Dir,
    input: &Path,
    output: &Path,
) -> Result<String, String> {
    let Some(sa) = alg.check_json(dir) else {
        return Ok(format!("unchecked: Scapy has no {}", alg.label));
    };
    let v = run::scapy_check(
        work,
        ("esp_check.py", secgw::ESP_CHECK),
        (&format!("check_{}_{}.json", alg.label, dir.name()), &sa),
        &[dir.name()],
        input,
        output,
    )?;
    let (ok, n) = v.passed_counts()?;
    Ok(format!(
        "ok {ok}/{n} ({})",
        match dir {
            Dir::Out => "Scapy decrypted every ESP frame sent; inner packets = the input",
            Dir::In => "Scapy decrypted the ESP input; every packet sent is one of those",
        }
    ))
}

fn esp_bench(algs: &[Alg], o: &EspOpts, compare: Option<&str>) -> Result<(), String> {
    let secgw_on = match compare {
        None => false,
        Some("ipsec-secgw") | Some("secgw") => true,
        Some(x) => return Err(format!("--compare: unknown reference '{x}' (ipsec-secgw)")),
    };
    if !(o.warmup >= 0.0 && o.seconds > 0.0 && o.raw_seconds > 0.0) {
        return Err("--warmup must be ≥ 0, --seconds and --raw-seconds > 0".into());
    }
    let work = o.dir.join("esp");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let secgw_bin = if secgw_on && algs.iter().any(|a| a.secgw_key().is_some()) {
        Some(secgw::build(&o.secgw_cache)?)
    } else {
        None
    };
    let hz = cpu_hz();
    let (w, s) = (
        Duration::from_secs_f64(o.warmup),
        Duration::from_secs_f64(o.seconds),
    );
    println!(
        "# ferrobench esp: ESP tunnel mode over IPv4, one worker core (lcore 1) fed from memory (net_pcap infinite_rx) into net_null; warm-up {} s, window {} s; {} flows; core clock {}",
        o.warmup,
        o.seconds,
        o.flows,
        hz.map(|h| format!("{:.0} MHz", h / 1e6)).unwrap_or_else(|| "unknown".into())
    );
    println!(
        "# load average at start: {} (1/5/15 min); {}",
        loadavg(),
        report::LOAD_NOTE
    );
    println!("# bytes = plain frame length without FCS (the ESP frame is 54..86 B longer); Gbps counts plain frame bytes; imix = 7:4:1 of 60/590/1514 B (64/594/1518 on the wire)");
    println!("# raw-seal / raw-open = dataplane SaCrypto::seal / open alone on the same buffers ({} s each; Mpps column = Mops)", o.raw_seconds);
    println!("# inbound SA: replay_window = 0 (anti-replay off), like ipsec-secgw's default -w 0: the capture replays the same sequence numbers forever");
    println!("{HEADER}");
    let mut figs: Vec<Fig> = Vec::new();
    let mut failures = Vec::new();
    for alg in algs {
        for &size in &o.sizes {
            let lengths = size.lengths(o.flows);
            let plain = frames::udp4_sized(&lengths, HOST_A, HOST_B);
            let mean = frames::mean_len(&plain);
            o.settle();
            let (raw_seal, raw_open) = alg.raw_speed(&plain, o.raw_seconds)?;
            let plain_pcap = work.join(format!("plain_{size}.pcap"));
            write_pcap(&plain_pcap, &plain)?;
            let esp_pcap = work.join(format!("in_{}_{size}.pcap", alg.label));
            if o.dirs.contains(&Dir::In) {
                let inner = frames::udp4_sized(&lengths, HOST_B, HOST_A);
                write_pcap(&esp_pcap, &alg.inbound_frames(&inner)?)?;
            }
            for &dir in &o.dirs {
                let input = match dir {
                    Dir::Out => &plain_pcap,
                    Dir::In => &esp_pcap,
                };
                let tag = format!("{} {} {size}", alg.label, dir.name());
                // The measurement: the capture replayed from memory, output counted.
                o.settle();
                let mut fg = Box::new(Ferrogate::launch(&o.dir, |sock, prefix| {
                    alg.ferrogate_config(
                        dir,
                        false,
                        sock,
                        prefix,
                        &format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display()),
                        "net_null0,no-rx=1",
                    )
                })?);
                let ours = measure(fg.as_mut(), w, s);
                let drops = fg.drops_line();
                fg.stop()?;
                if o.handoff {
                    o.settle();
                    let mut fg = Box::new(Ferrogate::launch(&o.dir, |sock, prefix| {
                        alg.ferrogate_config(
                            dir,
                            true,
                            sock,
                            prefix,
                            // Two workers, two TX queues on every port: net_pcap has one per
                            // tx_pcap (nothing is sent on "in").
                            &format!(
                                "net_pcap0,rx_pcap={},infinite_rx=1,tx_pcap=/dev/null,tx_pcap=/dev/null",
                                input.display()
                            ),
                            "net_null0,no-rx=1",
                        )
                    })?);
                    let handed = measure(fg.as_mut(), w, s);
                    let hdrops = fg.drops_line();
                    fg.stop()?;
                    let fig = Fig {
                        prog: "ferrogate-handoff".into(),
                        alg: alg.label.clone(),
                        dir: dir.name(),
                        size,
                        rate: handed?,
                    };
                    print_fig(&fig, mean, hz, "every packet handed to the SA's owner");
                    println!("{:<16} {tag} handoff: {hdrops}", "drops");
                    figs.push(fig);
                }
                let ours = Fig {
                    prog: "ferrogate".into(),
                    alg: alg.label.clone(),
                    dir: dir.name(),
                    size,
                    rate: ours?,
                };
                let raw = Fig {
                    prog: match dir {
                        Dir::Out => "raw-seal".into(),
                        Dir::In => "raw-open".into(),
                    },
                    rate: match dir {
                        Dir::Out => raw_seal,
                        Dir::In => raw_open,
                    },
                    alg: alg.label.clone(),
                    dir: dir.name(),
                    size,
                };
                print_fig(
                    &ours,
                    mean,
                    hz,
                    &format!("esp/raw {:.2}", ratio(&ours.rate, &raw.rate)),
                );
                print_fig(&raw, mean, hz, "");
                println!("{:<16} {tag}: {drops}", "drops");
                if o.verify {
                    match verify_ferrogate(&o.dir, &work, alg, dir, size, input) {
                        Ok(v) => println!("{:<16} {tag} ferrogate: {v}", "verify"),
                        Err(e) => {
                            println!("{:<16} {tag} ferrogate: {e}", "verify");
                            failures.push(format!("ferrogate {tag}"));
                        }
                    }
                }
                let mut best: Option<Rate> = None;
                if let (Some(bin), Some(key)) = (&secgw_bin, alg.secgw_key()) {
                    for &mode in &o.secgw_modes {
                        let cfg = work.join(format!("secgw_{:?}_{}.cfg", key, mode.name()));
                        std::fs::write(&cfg, secgw::config(key, mode))
                            .map_err(|e| e.to_string())?;
                        let run = SecgwRun {
                            bin,
                            cfg: &cfg,
                            mode,
                            inbound: dir == Dir::In,
                            rx_vdev: format!("net_pcap0,rx_pcap={},infinite_rx=1", input.display()),
                            tx_vdev: "net_null0,no-rx=1".into(),
                            log: o.dir.join("ipsec-secgw.log"),
                        };
                        let prog = format!("secgw-{}", mode.name());
                        o.settle();
                        let r = Secgw::start(&run).and_then(|sg| {
                            let mut sg = Box::new(sg);
                            let r = sg
                                .wait_running(Duration::from_secs(30))
                                .and_then(|_| measure(sg.as_mut(), w, s));
                            let st = sg.stop();
                            let r = r?;
                            st.map(|_| r)
                        });
                        match r {
                            Ok(rate) => {
                                let f = Fig {
                                    prog,
                                    alg: alg.label.clone(),
                                    dir: dir.name(),
                                    size,
                                    rate,
                                };
                                print_fig(
                                    &f,
                                    mean,
                                    hz,
                                    &format!("ferrogate/this {:.2}", ratio(&ours.rate, &rate)),
                                );
                                if best.is_none_or(|b| rate.mpps_per_core() > b.mpps_per_core()) {
                                    best = Some(rate);
                                }
                                figs.push(f);
                            }
                            Err(e) => {
                                println!("{prog:<16} {tag}: error: {e}");
                                failures.push(format!("{prog} {tag}"));
                            }
                        }
                        if o.verify {
                            match verify_secgw(&work, &run, alg, dir, size, input) {
                                Ok(v) => {
                                    println!("{:<16} {tag} secgw-{}: {v}", "verify", mode.name())
                                }
                                Err(e) => {
                                    println!("{:<16} {tag} secgw-{}: {e}", "verify", mode.name());
                                    failures.push(format!("secgw-{} {tag}", mode.name()));
                                }
                            }
                        }
                    }
                    if let Some(b) = best {
                        println!(
                            "{:<16} {tag}: ferrogate/best-secgw {:.2}",
                            "ratio",
                            ratio(&ours.rate, &b)
                        );
                    }
                }
                figs.push(ours);
                figs.push(raw);
            }
        }
    }
    summary(&figs, algs, o);
    println!("# load average at end: {}", loadavg());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!("failed: {}", failures.join(", ")))
    }
}

/// The figures again as one table per algorithm: Mpps per size for each program and direction.
fn summary(figs: &[Fig], algs: &[Alg], o: &EspOpts) {
    println!("# summary: Mpps/core (raw-*: Mops per core) by size");
    let sizes: Vec<String> = o
        .sizes
        .iter()
        .map(|s| format!("{:>8}", s.to_string()))
        .collect();
    println!(
        "{:<30} {:<3} {:<16} {}",
        "alg",
        "dir",
        "program",
        sizes.join("")
    );
    for alg in algs {
        for dir in &o.dirs {
            let mut progs: Vec<&str> = Vec::new();
            for f in figs
                .iter()
                .filter(|f| f.alg == alg.label && f.dir == dir.name())
            {
                if !progs.contains(&f.prog.as_str()) {
                    progs.push(&f.prog);
                }
            }
            for p in progs {
                let cells: Vec<String> = o
                    .sizes
                    .iter()
                    .map(|s| {
                        figs.iter()
                            .find(|f| {
                                f.alg == alg.label
                                    && f.dir == dir.name()
                                    && f.prog == p
                                    && f.size == *s
                            })
                            .map(|f| format!("{:>8.2}", f.rate.mpps_per_core()))
                            .unwrap_or_else(|| format!("{:>8}", "-"))
                    })
                    .collect();
                println!(
                    "{:<30} {:<3} {:<16} {}",
                    alg.label,
                    dir.name(),
                    p,
                    cells.join("")
                );
            }
        }
    }
}

/// One pass of the capture through ferrogate into a tx_pcap, then the Scapy check.
fn verify_ferrogate(
    scratch: &Path,
    work: &Path,
    alg: &Alg,
    dir: Dir,
    size: Size,
    input: &Path,
) -> Result<String, String> {
    let n = pcap::read(input).len() as u64;
    let out = work.join(format!(
        "check_ferrogate_{}_{}_{size}.pcap",
        alg.label,
        dir.name()
    ));
    let _ = std::fs::remove_file(&out);
    let fg = Box::new(Ferrogate::launch(scratch, |sock, prefix| {
        alg.ferrogate_config(
            dir,
            false,
            sock,
            prefix,
            &format!("net_pcap0,rx_pcap={}", input.display()),
            &format!("net_pcap1,tx_pcap={}", out.display()),
        )
    })?);
    let sent = wait_count(|| fg.port_counter("out", "opackets"), n);
    let drops = fg.drops_line();
    fg.stop()?;
    let sent = sent?;
    let v = scapy_check(work, alg, dir, input, &out)?;
    Ok(format!("{v}; {sent}/{n} sent, drops: {drops}"))
}

/// One pass of the capture through ipsec-secgw into a tx_pcap, then the Scapy check.
fn verify_secgw(
    work: &Path,
    run: &SecgwRun,
    alg: &Alg,
    dir: Dir,
    size: Size,
    input: &Path,
) -> Result<String, String> {
    let n = pcap::read(input).len() as u64;
    let out = work.join(format!(
        "check_secgw_{}_{}_{}_{size}.pcap",
        run.mode.name(),
        alg.label,
        dir.name()
    ));
    let _ = std::fs::remove_file(&out);
    let r = SecgwRun {
        rx_vdev: format!("net_pcap0,rx_pcap={}", input.display()),
        tx_vdev: format!("net_pcap1,tx_pcap={}", out.display()),
        log: work.join("ipsec-secgw-check.log"),
        ..*run
    };
    let mut sg = Box::new(Secgw::start(&r)?);
    let sent = wait_count(|| sg.counter(1, "opackets"), n);
    sg.stop()?;
    let sent = sent?;
    let v = scapy_check(work, alg, dir, input, &out)?;
    Ok(format!("{v}; {sent}/{n} sent"))
}

fn aead(
    algs: &[Alg],
    sizes: &[Size],
    flows: u16,
    seconds: f64,
    backends: &[Backend],
) -> Result<(), String> {
    if seconds <= 0.0 {
        return Err("--seconds must be > 0".into());
    }
    let hz = cpu_hz();
    println!("# raw cipher speed: dataplane SaCrypto::seal / open in place on {flows} ESP tunnel packets per size (the buffers `esp` seals), {seconds} s each; Mpps column = Mops, Gbps of plain frame bytes; core clock {}", hz.map(|h| format!("{:.0} MHz", h / 1e6)).unwrap_or_else(|| "unknown".into()));
    println!("{HEADER}");
    for alg in algs {
        for &size in sizes {
            let plain = frames::udp4_sized(&size.lengths(flows), HOST_A, HOST_B);
            let mean = frames::mean_len(&plain);
            for &backend in backends {
                let (seal, open) = alg.raw_speed_on(&plain, seconds, backend)?;
                let note = match backend {
                    Backend::Fastest => "fastest",
                    Backend::Portable => "portable",
                };
                for (prog, rate) in [("raw-seal", seal), ("raw-open", open)] {
                    let f = Fig {
                        prog: prog.into(),
                        alg: alg.label.clone(),
                        dir: "-",
                        size,
                        rate,
                    };
                    print_fig(&f, mean, hz, note);
                }
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Forward {
            sizes,
            flows,
            warmup,
            seconds,
            compare,
            dir,
        } => forward(&sizes, flows, warmup, seconds, compare.as_deref(), &dir),
        Cmd::Spd {
            sizes,
            sets,
            lookups,
            scan_lookups,
            keys,
            aimed,
            seed,
        } => spd(&sizes, &sets, lookups, scan_lookups, keys, aimed, seed),
        Cmd::Esp {
            algs,
            dirs,
            sizes,
            flows,
            warmup,
            seconds,
            raw_seconds,
            compare,
            secgw_modes,
            no_verify,
            secgw_cache,
            quiet_wait,
            handoff,
            dir,
        } => {
            let o = EspOpts {
                handoff,
                quiet_wait: Duration::from_secs_f64(quiet_wait.max(0.0)),
                secgw_cache: PathBuf::from(secgw_cache.as_deref().unwrap_or(&dir)),
                dirs,
                sizes,
                flows,
                warmup,
                seconds,
                raw_seconds: raw_seconds.unwrap_or(seconds.min(2.0)),
                secgw_modes,
                verify: !no_verify,
                dir: PathBuf::from(dir),
            };
            esp_bench(&algs, &o, compare.as_deref())
        }
        Cmd::Encap {
            types,
            sizes,
            flows,
            seconds,
        } => bench::encap::run(&types, &sizes, flows, seconds),
        Cmd::Aead {
            algs,
            sizes,
            flows,
            seconds,
            backends,
        } => aead(&algs, &sizes, flows, seconds, &backends),
        Cmd::Tunnel {
            types,
            dirs,
            sizes,
            flows,
            warmup,
            seconds,
            compare,
            no_verify,
            quiet_wait,
            dir,
        } => match compare.as_str() {
            "testpmd" | "testpmd-mac" => Ok(Some("mac")),
            "testpmd-io" => Ok(Some("io")),
            "none" => Ok(None),
            o => Err(format!(
                "--compare: unknown reference '{o}' (testpmd, testpmd-io, none)"
            )),
        }
        .and_then(|testpmd| {
            bench::tunnel::run(&bench::tunnel::Opts {
                types,
                dirs,
                sizes,
                flows,
                warmup,
                seconds,
                testpmd,
                verify: !no_verify,
                quiet_wait: Duration::from_secs_f64(quiet_wait.max(0.0)),
                dir: PathBuf::from(dir),
            })
        }),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrobench: {e}");
            ExitCode::from(1)
        }
    }
}
