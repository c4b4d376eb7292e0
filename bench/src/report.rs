//! How the subcommands print a measured rate: the columns every table shares (Mpps, Gbps,
//! cycles/packet, the load columns other% and core%, Mpps/core, the best 100-ms rate), the ratio of two rates on
//! their per-core figures, and the notes that explain the load columns.

use crate::run::Rate;

/// The rate columns' header, aligned with [`rate_cells`].
pub const RATE_HEADER: &str = "      Mpps     Gbps  cycles/pkt other%  core%  Mpps/core   peak";

/// What the load columns mean (printed once above a table).
pub const LOAD_NOTE: &str = "other% = CPU used during the window by other processes (100 = one core); core% = share of the window the measured loop really ran on its core; Mpps/core = Mpps / core%, cycles/pkt count only the time it ran, and ratios are taken on Mpps/core (below ~90 core% the figure is still approximate: caches were shared); peak = the best 100-ms interval of the window in Mpps (the host's fast phases: what A/B comparisons of two builds should use)";

/// The rate columns of one row: Mpps, Gbps of `bytes_per_packet`-byte frames, cycles per
/// packet (at `hz`), other%, core%, Mpps/core, peak (best 100-ms Mpps, `-` when not sampled).
pub fn rate_cells(r: &Rate, bytes_per_packet: f64, hz: Option<f64>) -> String {
    let pct = |x: Option<f64>| {
        x.map(|c| format!("{:.0}", c * 100.0))
            .unwrap_or_else(|| "-".into())
    };
    let cpp = hz
        .map(|h| format!("{:.0}", r.cycles_per_packet(h)))
        .unwrap_or_else(|| "-".into());
    let gbps = r.packets as f64 * bytes_per_packet * 8.0 / r.seconds / 1e9;
    let peak = r
        .peak_mpps
        .map(|x| format!("{x:.2}"))
        .unwrap_or_else(|| "-".into());
    format!(
        "{:>10.3} {:>8.2} {:>11} {:>6} {:>6} {:>10.3} {:>6}",
        r.mpps(),
        gbps,
        cpp,
        pct(r.other_cpu),
        pct(r.core_share),
        r.mpps_per_core(),
        peak
    )
}

/// a/b on the per-core rates, so a row whose core was shared with someone else's job does not
/// skew the ratio.
pub fn ratio(a: &Rate, b: &Rate) -> f64 {
    if b.packets == 0 {
        f64::NAN
    } else {
        a.mpps_per_core() / b.mpps_per_core()
    }
}

/// The core clock for a header line.
pub fn clock(hz: Option<f64>) -> String {
    hz.map(|h| format!("{:.0} MHz", h / 1e6))
        .unwrap_or_else(|| "unknown".into())
}
