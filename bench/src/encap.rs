//! `ferrobench encap`: the cost of encapsulation alone, in-process, per tunnel type — the
//! general `tunnel::encap` (with the flow hash it needs) against the tunnel's outer-header
//! template (`EncapTemplate`), on the same inner frames as `ferrobench tunnel` sends.
//!
//! This shared machine swings between fast and slow phases (±30–50 %) that make two runs
//! minutes apart incomparable, so the two codes are not run one after the other: they
//! alternate in short slices (a pass over the frames each) for the whole window, and each
//! is credited with its fastest slice — both saw the same host phases.

use crate::frames::Size;
use crate::tunnel::{Dir, Type};
use dataplane::packet::{HeapPacket, Packet};
use dataplane::stats::DropReason;
use dataplane::tunnel::{encap, inner_flow_hash, EncapTemplate, Payload, TunnelEncap};
use std::time::{Duration, Instant};

/// Fastest slice of each code, in nanoseconds per packet.
#[derive(Debug, Clone, Copy)]
pub struct Costs {
    pub general_ns: f64,
    pub template_ns: Option<f64>,
}

/// The inner packets `ferrobench tunnel` feeds type `ty` (Ethernet frames for L2 tunnels,
/// their IP packets for routed ones), each in a buffer with room for the outer headers.
fn inner_packets(ty: &Type, size: Size, flows: u16) -> Vec<HeapPacket> {
    let frames = ty.plain_frames(&size.lengths(flows), Dir::Encap);
    frames
        .iter()
        .map(|f| {
            let inner = if ty.l2() {
                &f[..]
            } else {
                &f[14.min(f.len())..]
            };
            HeapPacket::with_room(inner, 128, 0)
        })
        .collect()
}

/// One pass over `pkts` with `f`, each packet put back as it was (its outer headers
/// stripped again); the time it took.
fn pass(
    pkts: &mut [HeapPacket],
    overhead: usize,
    mut f: impl FnMut(&mut HeapPacket) -> Result<(), DropReason>,
) -> Result<Duration, String> {
    let t0 = Instant::now();
    for p in pkts.iter_mut() {
        f(p).map_err(|r| format!("encapsulation failed: {r:?}"))?;
        if !p.adj(overhead) {
            return Err("cannot strip the outer headers again".into());
        }
    }
    Ok(t0.elapsed())
}

/// Measure type `ty` at `size` for about `seconds`.
pub fn measure(ty: &Type, size: Size, flows: u16, seconds: f64) -> Result<Costs, String> {
    let t: TunnelEncap = ty.encap(false)?;
    let tpl = EncapTemplate::new(&t);
    let mut pkts = inner_packets(ty, size, flows);
    let n = pkts.len().max(1) as f64;
    let overhead = t.overhead();
    let ethernet = t.carries() == Payload::Ethernet;
    // The outer IPv4 identification moves like the daemon's per-worker counter.
    let mut id = 0u16;
    let mut general = |p: &mut HeapPacket| {
        id = id.wrapping_add(1);
        let h = inner_flow_hash(p.data(), ethernet);
        encap(p, &t, h, None, id)
    };
    let mut id2 = 0u16;
    let mut templated = |p: &mut HeapPacket| {
        id2 = id2.wrapping_add(1);
        match &tpl {
            Some(tpl) => tpl.encap(p, &t, id2),
            None => Ok(()),
        }
    };
    // Warm both up, then alternate until the window is over.
    pass(&mut pkts, overhead, &mut general)?;
    if tpl.is_some() {
        pass(&mut pkts, overhead, &mut templated)?;
    }
    let (mut best_g, mut best_t) = (Duration::MAX, Duration::MAX);
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < end {
        best_g = best_g.min(pass(&mut pkts, overhead, &mut general)?);
        if tpl.is_some() {
            best_t = best_t.min(pass(&mut pkts, overhead, &mut templated)?);
        }
    }
    Ok(Costs {
        general_ns: best_g.as_secs_f64() * 1e9 / n,
        template_ns: tpl.map(|_| best_t.as_secs_f64() * 1e9 / n),
    })
}

/// Run every type and size; the table goes to stdout.
pub fn run(types: &[Type], sizes: &[Size], flows: u16, seconds: f64) -> Result<(), String> {
    println!(
        "# ferrobench encap: encapsulation alone, in-process (heap buffers), ns per packet of \
         the fastest pass over {flows} frames; the two codes alternate pass by pass for {seconds} s \
         per row, so both see the same host phases"
    );
    println!(
        "{:<13} {:>6} {:>11} {:>12} {:>8}",
        "type", "bytes", "general_ns", "template_ns", "speedup"
    );
    for ty in types {
        for &size in sizes {
            let c = measure(ty, size, flows, seconds)?;
            let (tns, speedup) = match c.template_ns {
                Some(x) => (format!("{x:.2}"), format!("{:.2}", c.general_ns / x)),
                None => ("-".into(), "-".into()),
            };
            println!(
                "{:<13} {:>6} {:>11.2} {:>12} {:>8}",
                ty.name,
                size.to_string(),
                c.general_ns,
                tns,
                speedup
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every type measures; the template, where there is one, leaves the frames as the
    /// general code does (the passes strip what they added, so a second pass of either
    /// starts from the same inner frames).
    #[test]
    fn every_type_measures_and_passes_restore_the_frames() {
        for ty in crate::tunnel::TYPES.iter() {
            let c = measure(ty, Size::Bytes(64), 8, 0.01).unwrap();
            assert!(c.general_ns > 0.0, "{}", ty.name);
            assert!(c.template_ns.is_some(), "{}", ty.name);
            let mut a = inner_packets(ty, Size::Bytes(64), 8);
            let before: Vec<Vec<u8>> = a.iter().map(|p| p.to_vec()).collect();
            let t = ty.encap(false).unwrap();
            pass(&mut a, t.overhead(), |p| {
                let h = inner_flow_hash(p.data(), t.carries() == Payload::Ethernet);
                encap(p, &t, h, None, 1)
            })
            .unwrap();
            let after: Vec<Vec<u8>> = a.iter().map(|p| p.to_vec()).collect();
            assert_eq!(before, after, "{}", ty.name);
        }
    }
}
