//! ferrobench: measures ferrogate against the DPDK reference applications in one invocation.
//!
//!   ferrobench forward [--sizes 64,512,1420] [--warmup 3] [--seconds 10] [--compare testpmd]
//!
//! One forwarding core (lcore 1) fed from memory (net_pcap infinite_rx) into net_null; prints
//! Mpps, Gbps and cycles/packet per frame size, and with `--compare testpmd` the same for
//! `dpdk-testpmd --forward-mode=mac` and the ratio. Needs root and hugepages.
//!
//!   ferrobench spd [--sizes 1,1000,100000] [--sets realistic,ports,nested] [--lookups N]
//!
//! SPD lookup cost in-process (no DPDK, no root): the classifier next to the linear scan per
//! rule-set kind and size, with build time and memory (see `bench::spd`).

use bench::run::{cpu_hz, measure, Dut, Ferrogate, Rate, Testpmd};
use bench::{frames, pcap};
use clap::{Parser, Subcommand};
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
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrobench: {e}");
            ExitCode::from(1)
        }
    }
}
