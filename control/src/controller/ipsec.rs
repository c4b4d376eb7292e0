//! The control thread's IPsec runtime: where each SA is installed and what is known of it,
//! make-before-break across table versions, lifetimes in seconds, the reject log, and the
//! `show ipsec` / `clear ipsec` commands.
//!
//! An SA's life: created here (keys expanded off the fast path) and sent to its owner worker
//! *before* the first tables that name it are published; named by tables; left out of a newer
//! version; removed from its worker only once every worker runs a version without it (and the
//! worker has drained the hand-off packets classified before). A replaced or removed inbound SA
//! is left in the tables for `ipsec.rekey_grace_secs` first (it "lingers"), still found by its
//! SPI and admitted by the policies and VTIs that named it, so packets the peer sent before it
//! switched still decrypt. `clear ipsec sa` reinstalls the chosen SAs from their configuration
//! (new sequence numbers, replay window, counters and lifetimes), as the reference products do
//! with manual SAs; a cleared SA does not linger.

use super::Controller;
use crate::api::proto::Response;
use crate::parse::Prefix;
use crate::rejects::RejectLog;
use crate::state::ipsec::{Lingering, PolicyAction, SaPlacement, SaSpec, VtiSpec};
use crate::state::State;
use dataplane::esp::store::{OwnedSa, SaCmd};
use dataplane::esp::{Mode, Sa, SaCounters};
use dataplane::events::Event;
use dataplane::packet::Packet;
use dataplane::stats::{PolicyCounters, PolicyStat};
use dataplane::tables::ipsec::SaRef;
use dataplane::worker::WorkerShared;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What the control thread keeps of an installed SA.
pub(super) struct SaInfo {
    pub(super) spec: SaSpec,
    counters: Arc<SaCounters>,
    owner: u16,
    created: Instant,
    created_wall: SystemTime,
    last_use: Option<SystemTime>,
    /// Packets at the last tick (a change means it was used).
    seen: u64,
    soft_logged: bool,
    /// Stopped: hard lifetime (seconds here; bytes, packets or sequence space in the worker).
    expired: bool,
    /// Lingering after a rekey until then.
    until: Option<Instant>,
    /// The VTIs using it as of the last published tables (what its counts are retired to).
    vtis: Vec<String>,
}

/// The IPsec part of the controller.
#[derive(Default)]
pub(super) struct IpsecRt {
    /// What the published tables were built from.
    pl: SaPlacement,
    /// Every SA a worker holds (current and lingering), by slot.
    info: HashMap<u32, SaInfo>,
    next: u32,
    /// (slot, owner, version): left out of tables since `version`; removed from the owner
    /// once every worker runs at least that version.
    removing: Vec<(u32, u16, u64)>,
    rejects: RejectLog,
    next_tick: Option<Instant>,
    /// What deleted SAs counted (packets in, bytes in, packets out, bytes out), by mode
    /// (tunnel, transport): the per-mode totals of `show ipsec stats` never go backwards
    /// when a rekey, `sa del` or `clear ipsec sa` retires an SA.
    retired_by_mode: [[u64; 4]; 2],
    /// The same by VTI, for its `show ipsec stats` row.
    retired_by_vti: HashMap<String, [u64; 4]>,
}

/// A placement prepared for the next tables: SAs already sent to their workers, not yet
/// named by published tables.
pub(super) struct Plan {
    pl: SaPlacement,
    installed: Vec<(u32, SaInfo)>,
    /// Newly lingering slots and until when.
    linger: Vec<(u32, Instant)>,
}

impl Plan {
    pub(super) fn placement(&self) -> &SaPlacement {
        &self.pl
    }
}

/// The peer of an SA: the tunnel remote, or for transport mode the configured remote end.
fn peer_of(s: &SaSpec) -> Option<IpAddr> {
    match s.cfg.mode {
        Mode::Tunnel4 { remote, .. } => Some(remote.into()),
        Mode::Tunnel6 { remote, .. } => Some(remote.into()),
        Mode::Transport => {
            let r = if s.inbound { &s.raw.src } else { &s.raw.dst };
            r.as_deref().and_then(|a| crate::parse::ip(a).ok())
        }
    }
}

fn local_of(s: &SaSpec) -> Option<IpAddr> {
    match s.cfg.mode {
        Mode::Tunnel4 { local, .. } => Some(local.into()),
        Mode::Tunnel6 { local, .. } => Some(local.into()),
        Mode::Transport => {
            let r = if s.inbound { &s.raw.dst } else { &s.raw.src };
            r.as_deref().and_then(|a| crate::parse::ip(a).ok())
        }
    }
}

fn spi_text(spi: u32) -> String {
    format!("0x{spi:08x}({spi})")
}

fn describe(s: &SaSpec) -> String {
    let ends = |a: Option<IpAddr>| a.map_or_else(|| "-".to_string(), |a| a.to_string());
    let (src, dst) = if s.inbound {
        (peer_of(s), local_of(s))
    } else {
        (local_of(s), peer_of(s))
    };
    format!(
        "'{}' ESP/{} {} -> {} {} spi={}",
        s.name,
        if s.cfg.mode.is_tunnel() {
            "Tunnel"
        } else {
            "Transport"
        },
        ends(src),
        ends(dst),
        if s.inbound { "in" } else { "out" },
        spi_text(s.cfg.spi)
    )
}

/// "N seconds; M bytes; K packets", 0 shown as unlimited (F5's wording).
fn lifetime_text(secs: u64, bytes: u64, packets: u64) -> String {
    let part = |v: u64, unit: &str| {
        if v == 0 {
            format!("unlimited {unit}")
        } else {
            format!("{v} {unit}")
        }
    };
    format!(
        "{}; {}; {}",
        part(secs, "seconds"),
        part(bytes, "bytes"),
        part(packets, "packets")
    )
}

/// UTC date and time of `t` (civil-from-days, H. Hinnant), without a date library.
pub(crate) fn utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

impl IpsecRt {
    /// Send new and changed SAs (and those in `clear`, by slot) to their workers and work
    /// out the placement of the tables for `new`; `old` is the state the published tables
    /// came from. Nothing is published; on error everything sent is taken back.
    pub(super) fn prepare<P>(
        &mut self,
        old: &State,
        new: &State,
        workers: &[Arc<WorkerShared<P>>],
        now: Instant,
        clear: &[u32],
    ) -> Result<Plan, String> {
        let n = workers.len().max(1) as u32;
        let mut pl = self.pl.clone();
        let mut plan_installed: Vec<(u32, SaInfo)> = Vec::new();
        for spec in &new.ipsec.sas {
            if let Some(r) = pl.slots.get(&spec.name) {
                if !clear.contains(&r.slot)
                    && self.info.get(&r.slot).is_some_and(|i| &i.spec == spec)
                {
                    continue;
                }
            }
            let sa = match Sa::new(&spec.cfg, &spec.enc_key, &spec.auth_key) {
                Ok(sa) => sa,
                Err(e) => {
                    self.take_back(plan_installed, workers);
                    return Err(format!("SA '{}': {e}", spec.name));
                }
            };
            let counters = sa.counters().clone();
            let slot = self.next;
            self.next += 1;
            let owner = (slot % n) as u16;
            let pushed = workers.get(owner as usize).map(|w| {
                w.sa_cmds.push(SaCmd::Install {
                    slot,
                    sa: Box::new(OwnedSa {
                        sa,
                        outer: spec.outer,
                    }),
                })
            });
            if !matches!(pushed, Some(Ok(()))) {
                self.take_back(plan_installed, workers);
                return Err(format!(
                    "SA '{}': worker {owner}'s SA command queue is full, try again",
                    spec.name
                ));
            }
            pl.slots.insert(spec.name.clone(), SaRef { slot, owner });
            plan_installed.push((
                slot,
                SaInfo {
                    spec: spec.clone(),
                    counters,
                    owner,
                    created: now,
                    created_wall: SystemTime::now(),
                    last_use: None,
                    seen: 0,
                    soft_logged: false,
                    expired: false,
                    until: None,
                    vtis: Vec::new(),
                },
            ));
        }
        pl.slots
            .retain(|name, _| new.ipsec.sas.iter().any(|s| &s.name == name));

        // Lingering: the unexpired ones stay (unless cleared); inbound SAs this change replaces
        // or removes start.
        pl.lingering.retain(|l| {
            !clear.contains(&l.sa.slot)
                && self
                    .info
                    .get(&l.sa.slot)
                    .and_then(|i| i.until)
                    .is_some_and(|u| u > now)
        });
        let grace = Duration::from_secs(new.ipsec.grace_secs as u64);
        let mut linger = Vec::new();
        if !grace.is_zero() {
            for (name, r) in &self.pl.slots {
                let Some(i) = self.info.get(&r.slot) else {
                    continue;
                };
                if !i.spec.inbound || clear.contains(&r.slot) || pl.slots.get(name) == Some(r) {
                    continue;
                }
                let policies = old
                    .ipsec
                    .policies
                    .iter()
                    .filter(|p| matches!(&p.action, PolicyAction::Protect { sa_in, .. } if sa_in.contains(name)))
                    .map(|p| p.name.clone())
                    .collect();
                let vtis = old
                    .ipsec
                    .vtis
                    .iter()
                    .filter(|v| v.sa_in.contains(name))
                    .map(|v| v.name.clone())
                    .collect();
                pl.lingering.push(Lingering {
                    sa: *r,
                    spi: i.spec.cfg.spi,
                    policies,
                    vtis,
                });
                linger.push((r.slot, now + grace));
            }
        }
        // An SPI taken over by a current inbound SA finds that one: lingering is pointless.
        pl.lingering.retain(|l| {
            !new.ipsec
                .sas
                .iter()
                .any(|s| s.inbound && s.cfg.spi == l.spi)
        });
        linger.retain(|(slot, _)| pl.lingering.iter().any(|l| l.sa.slot == *slot));

        let nw = workers.len();
        pl.counters
            .retain(|name, _| new.ipsec.policies.iter().any(|p| &p.name == name));
        for p in &new.ipsec.policies {
            pl.counters
                .entry(p.name.clone())
                .or_insert_with(|| Arc::new(PolicyCounters::new(nw)));
        }
        if pl.default_counters.is_none() {
            pl.default_counters = Some(Arc::new(PolicyCounters::new(nw)));
        }
        Ok(Plan {
            pl,
            installed: plan_installed,
            linger,
        })
    }

    /// Take back SAs sent for tables that were never published (no worker can have used them).
    fn take_back<P>(&mut self, installed: Vec<(u32, SaInfo)>, workers: &[Arc<WorkerShared<P>>]) {
        for (slot, i) in installed {
            if let Some(w) = workers.get(i.owner as usize) {
                if w.sa_cmds.push(SaCmd::Remove { slot }).is_err() {
                    // Retried from `release` like any other removal.
                    self.removing.push((slot, i.owner, 0));
                }
            }
        }
    }

    /// The tables built from `plan` could not be built: undo it.
    pub(super) fn abort<P>(&mut self, plan: Plan, workers: &[Arc<WorkerShared<P>>]) {
        self.take_back(plan.installed, workers);
    }

    /// The tables built from `plan` (for a state with these VTIs) were published as `version`.
    pub(super) fn commit(&mut self, plan: Plan, version: u64, vtis: &[VtiSpec]) {
        for (slot, i) in plan.installed {
            tracing::info!(
                "IPsec SA installed: {} worker={}",
                describe(&i.spec),
                i.owner
            );
            self.info.insert(slot, i);
        }
        for (slot, until) in plan.linger {
            if let Some(i) = self.info.get_mut(&slot) {
                i.until = Some(until);
                tracing::info!(
                    "IPsec SA replaced or removed: {} stays installed for the rekey grace period",
                    describe(&i.spec)
                );
            }
        }
        self.pl = plan.pl;
        let live: HashSet<u32> = self
            .pl
            .slots
            .values()
            .map(|r| r.slot)
            .chain(self.pl.lingering.iter().map(|l| l.sa.slot))
            .collect();
        let gone: Vec<u32> = self
            .info
            .keys()
            .filter(|s| !live.contains(s))
            .copied()
            .collect();
        for slot in gone {
            if let Some(i) = self.info.remove(&slot) {
                tracing::info!("IPsec SA deleted: {}", describe(&i.spec));
                let c = &i.counters;
                let counted = [
                    c.in_packets.get(),
                    c.in_bytes.get(),
                    c.out_packets.get(),
                    c.out_bytes.get(),
                ];
                let add = |to: &mut [u64; 4]| {
                    for (t, v) in to.iter_mut().zip(counted) {
                        *t += v;
                    }
                };
                add(&mut self.retired_by_mode[!i.spec.cfg.mode.is_tunnel() as usize]);
                for v in &i.vtis {
                    add(self.retired_by_vti.entry(v.clone()).or_default());
                }
                self.removing.push((slot, i.owner, version));
            }
        }
        // Which VTIs each SA serves now (by name, as the tables were built).
        for i in self.info.values_mut() {
            i.vtis.clear();
        }
        for v in vtis {
            for n in std::iter::once(&v.sa_out).chain(&v.sa_in) {
                if let Some(i) = self
                    .pl
                    .slots
                    .get(n)
                    .and_then(|r| self.info.get_mut(&r.slot))
                {
                    i.vtis.push(v.name.clone());
                }
            }
        }
        for l in &self.pl.lingering {
            if let Some(i) = self.info.get_mut(&l.sa.slot) {
                i.vtis.extend(l.vtis.iter().cloned());
            }
        }
        self.retired_by_vti
            .retain(|name, _| vtis.iter().any(|v| &v.name == name));
    }

    /// Remove from their workers the SAs no table in use names any more (`running` is the
    /// oldest version a worker runs), and free what workers gave back.
    pub(super) fn release<P>(&mut self, running: u64, workers: &[Arc<WorkerShared<P>>]) {
        for w in workers {
            while w.sa_retired.pop().is_some() {}
        }
        if self.removing.is_empty() {
            return;
        }
        // Pairs with the worker's release fence before it reports a version: every hand-off
        // it pushed with older tables is visible to the owner before the Remove is.
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        self.removing.retain(|&(slot, owner, v)| {
            if v > running {
                return true;
            }
            match workers.get(owner as usize) {
                Some(w) => w.sa_cmds.push(SaCmd::Remove { slot }).is_err(),
                None => false,
            }
        });
    }

    /// A worker's SA event.
    pub(super) fn on_event(&mut self, e: Event) {
        match e {
            Event::SaSoftExpired { sa } => {
                if let Some(i) = self.info.get_mut(&sa) {
                    if !i.soft_logged {
                        i.soft_logged = true;
                        tracing::warn!(
                            "IPsec SA soft lifetime reached (bytes/packets): {}: rekey needed; no IKE yet: add a new SA with `sa add ... --policy|--vti` and delete this one",
                            describe(&i.spec)
                        );
                    }
                }
            }
            Event::SaHardExpired { sa } => {
                if let Some(i) = self.info.get_mut(&sa) {
                    if !i.expired {
                        i.expired = true;
                        tracing::warn!(
                            "IPsec SA hard lifetime reached (bytes/packets or sequence numbers): {}: it no longer passes traffic (counted as esp-sa-expired)",
                            describe(&i.spec)
                        );
                    }
                }
            }
            _ => {}
        }
    }

    /// Once a second: lifetimes in seconds, last use, the reject log. True when a lingering
    /// SA's grace period is over (the tables must be republished without it).
    pub(super) fn tick<P>(&mut self, now: Instant, workers: &[Arc<WorkerShared<P>>]) -> bool {
        if self.next_tick.is_some_and(|t| now < t) {
            return false;
        }
        self.next_tick = Some(now + Duration::from_secs(1));
        let wall = SystemTime::now();
        let mut republish = false;
        for (&slot, i) in &mut self.info {
            let used = i.counters.in_packets.get() + i.counters.out_packets.get();
            if used != i.seen {
                i.seen = used;
                i.last_use = Some(wall);
            }
            let age = now.saturating_duration_since(i.created).as_secs();
            let (soft, hard) = (i.spec.soft_seconds, i.spec.hard_seconds);
            if soft > 0 && !i.soft_logged && age >= soft {
                i.soft_logged = true;
                tracing::warn!(
                    "IPsec SA soft lifetime reached ({soft} seconds): {}: rekey needed; no IKE yet: add a new SA with `sa add ... --policy|--vti` and delete this one",
                    describe(&i.spec)
                );
            }
            if hard > 0 && !i.expired && age >= hard {
                let sent = workers
                    .get(i.owner as usize)
                    .is_some_and(|w| w.sa_cmds.push(SaCmd::Expire { slot }).is_ok());
                if sent {
                    i.expired = true;
                    tracing::warn!(
                        "IPsec SA hard lifetime reached ({hard} seconds): {}: stopped; later packets are counted as esp-sa-expired",
                        describe(&i.spec)
                    );
                }
            }
            if i.until.is_some_and(|u| now >= u) {
                republish = true;
            }
        }
        let lines = self.rejects.tick(now, workers.iter().map(|w| &w.counters));
        for l in lines {
            let msg = l.message(|spi| {
                self.info
                    .values()
                    .filter(|i| i.spec.cfg.spi == spi)
                    .min_by_key(|i| !i.spec.inbound)
                    .map(|i| i.spec.name.clone())
            });
            if l.is_info() {
                tracing::info!("{msg}");
            } else {
                tracing::warn!("{msg}");
            }
        }
        republish
    }

    fn state_text(&self, i: &SaInfo, now: Instant) -> String {
        if let Some(u) = i.until {
            return format!(
                "grace ({} s left)",
                u.saturating_duration_since(now).as_secs()
            );
        }
        if i.expired {
            "expired".into()
        } else if i.soft_logged {
            "rekey-needed".into()
        } else {
            "mature".into()
        }
    }
}

/// Which SAs a command is about.
#[derive(Default)]
pub(super) struct SaFilter<'a> {
    pub name: Option<&'a str>,
    pub spi: Option<u32>,
    pub peer: Option<&'a str>,
    /// A policy or VTI name, or an address / prefix the SA's selectors cover.
    pub selector: Option<&'a str>,
}

impl<P: Packet + Send> Controller<P> {
    /// Policy and VTI names using each SA (current and lingering).
    fn sa_users(&self) -> HashMap<u32, Vec<String>> {
        let st = &self.state.ipsec;
        let mut users: HashMap<u32, Vec<String>> = HashMap::new();
        for p in &st.policies {
            if let PolicyAction::Protect { sa_out, sa_in } = &p.action {
                for n in sa_out.iter().chain(sa_in) {
                    if let Some(r) = self.ipsec.pl.slots.get(n) {
                        users.entry(r.slot).or_default().push(p.name.clone());
                    }
                }
            }
        }
        for v in &st.vtis {
            for n in std::iter::once(&v.sa_out).chain(&v.sa_in) {
                if let Some(r) = self.ipsec.pl.slots.get(n) {
                    users.entry(r.slot).or_default().push(v.name.clone());
                }
            }
        }
        for l in &self.ipsec.pl.lingering {
            users
                .entry(l.sa.slot)
                .or_default()
                .extend(l.policies.iter().chain(&l.vtis).cloned());
        }
        users
    }

    /// Slots of the installed SAs matching `f`, in slot order.
    fn matching_sas(&self, f: &SaFilter) -> Result<Vec<u32>, String> {
        let peer = match f.peer {
            Some(p) => Some(crate::parse::ip(p).map_err(|e| format!("peer: {e}"))?),
            None => None,
        };
        let users = self.sa_users();
        // An address or prefix (a bare address is a host prefix), else a policy / VTI name.
        let sel_prefix = f.selector.and_then(|s| Prefix::parse(s).ok());
        let covers = |p: &Prefix, q: &Prefix| {
            p.is_v6() == q.is_v6() && (p.contains(q.addr) || q.contains(p.addr))
        };
        let mut out: Vec<u32> = Vec::new();
        for (&slot, i) in &self.ipsec.info {
            let s = &i.spec;
            if f.name.is_some_and(|n| n != s.name)
                || f.spi.is_some_and(|x| x != s.cfg.spi)
                || peer.is_some_and(|p| Some(p) != peer_of(s))
            {
                continue;
            }
            if let Some(sel) = f.selector {
                let names = users.get(&slot).cloned().unwrap_or_default();
                let ok =
                    match &sel_prefix {
                        None => names.iter().any(|n| n == sel),
                        Some(q) => names.iter().any(|n| {
                            // VTIs carry 0/0 selectors: they cover every address.
                            self.state.ipsec.vti(n).is_some()
                                || self.state.ipsec.policies.iter().any(|p| {
                                    &p.name == n && (covers(&p.src, q) || covers(&p.dst, q))
                                })
                        }),
                    };
                if !ok {
                    continue;
                }
            }
            out.push(slot);
        }
        out.sort_unstable();
        Ok(out)
    }

    pub(super) fn show_ipsec_sa(&self, f: &SaFilter, detail: bool) -> Response {
        let slots = match self.matching_sas(f) {
            Ok(s) => s,
            Err(e) => return Response::err(e),
        };
        let now = Instant::now();
        let users = self.sa_users();
        let rows = slots
            .iter()
            .filter_map(|slot| self.ipsec.info.get(slot).map(|i| (slot, i)))
            .map(|(slot, i)| {
                let s = &i.spec;
                let c = &i.counters;
                let text = |a: Option<IpAddr>| a.map(|a| a.to_string());
                let mut row = json!({
                    "name": s.name,
                    "spi": format!("0x{:08x}", s.cfg.spi),
                    "spi_dec": s.cfg.spi,
                    "dir": if s.inbound { "in" } else { "out" },
                    "mode": if s.cfg.mode.is_tunnel() { "tunnel" } else { "transport" },
                    "peer": text(peer_of(s)),
                    "algorithm": s.raw.integrity.as_ref().map(|x| format!("{}/{}", s.raw.encryption, x)).unwrap_or_else(|| s.raw.encryption.clone()),
                    "state": self.ipsec.state_text(i, now),
                    "packets": if s.inbound { c.in_packets.get() } else { c.out_packets.get() },
                    "bytes": if s.inbound { c.in_bytes.get() } else { c.out_bytes.get() },
                    "auth_fail": c.auth_failures.get(),
                    "replay_drop": c.replay_drops.get(),
                    "errors": c.errors.get(),
                    "worker": i.owner,
                });
                if detail {
                    let lt = &s.raw.lifetime;
                    let obj = row.as_object_mut().expect("row is an object");
                    let mut put = |k: &str, v: Value| {
                        obj.insert(k.into(), v);
                    };
                    put("local", json!(text(local_of(s))));
                    put("used_by", json!(users.get(slot).cloned().unwrap_or_default()));
                    put("replay_window", json!(s.cfg.replay_window));
                    put("esn", json!(s.cfg.esn));
                    put("natt", json!(s.cfg.natt.map(|n| format!("{}->{}", n.sport, n.dport))));
                    put("created", json!(utc(i.created_wall)));
                    put("age_s", json!(now.saturating_duration_since(i.created).as_secs()));
                    put("last_use", json!(i.last_use.map(utc)));
                    put("lifetime_soft", json!(lifetime_text(lt.soft_seconds, lt.soft_bytes, lt.soft_packets)));
                    put("lifetime_hard", json!(lifetime_text(lt.hard_seconds, lt.hard_bytes, lt.hard_packets)));
                    put(
                        "hard_expires_in_s",
                        json!((s.hard_seconds > 0).then(|| {
                            s.hard_seconds.saturating_sub(now.saturating_duration_since(i.created).as_secs())
                        })),
                    );
                    put("in_packets", json!(c.in_packets.get()));
                    put("in_bytes", json!(c.in_bytes.get()));
                    put("out_packets", json!(c.out_packets.get()));
                    put("out_bytes", json!(c.out_bytes.get()));
                }
                row
            })
            .collect();
        Response::ok(Value::Array(rows))
    }

    /// `show ipsec stats`: per policy (what its verdicts let through, sealed, admitted and
    /// dropped), per VTI, for the default action, and per mode (F5's ipsec-stat rows).
    pub(super) fn show_ipsec_stats(&self) -> Response {
        let st = &self.state.ipsec;
        let pl = &self.ipsec.pl;
        let mut rows = Vec::new();
        let row = |kind: &str, name: &str, c: Option<&Arc<PolicyCounters>>| {
            let g = |w: PolicyStat| c.map_or(0, |c| c.get(w));
            json!({
                "kind": kind,
                "name": name,
                "packets_in": g(PolicyStat::InProtected),
                "bytes_in": g(PolicyStat::InProtectedBytes),
                "packets_out": g(PolicyStat::OutProtected),
                "bytes_out": g(PolicyStat::OutProtectedBytes),
                "bypassed": g(PolicyStat::Bypassed),
                "discarded": g(PolicyStat::Discarded),
            })
        };
        for p in &st.policies {
            rows.push(row("policy", &p.name, pl.counters.get(&p.name)));
        }
        rows.push(row(
            "default",
            if st.default_discard {
                "(no policy: discard)"
            } else {
                "(no policy: bypass)"
            },
            pl.default_counters.as_ref(),
        ));
        let sa_sum = |pred: &dyn Fn(u32, &SaInfo) -> bool| {
            let mut t = [0u64; 4];
            for (&slot, i) in &self.ipsec.info {
                if pred(slot, i) {
                    let c = &i.counters;
                    t[0] += c.in_packets.get();
                    t[1] += c.in_bytes.get();
                    t[2] += c.out_packets.get();
                    t[3] += c.out_bytes.get();
                }
            }
            t
        };
        let users = self.sa_users();
        let sa_row = |kind: &str, name: &str, t: [u64; 4]| {
            json!({
                "kind": kind, "name": name,
                "packets_in": t[0], "bytes_in": t[1], "packets_out": t[2], "bytes_out": t[3],
                "bypassed": Value::Null, "discarded": Value::Null,
            })
        };
        for v in &st.vtis {
            let mut t = sa_sum(&|slot, _| users.get(&slot).is_some_and(|u| u.contains(&v.name)));
            if let Some(r) = self.ipsec.retired_by_vti.get(&v.name) {
                for (t, r) in t.iter_mut().zip(r) {
                    *t += r;
                }
            }
            rows.push(sa_row("vti", &v.name, t));
        }
        for (k, (name, tunnel)) in [("tunnel", true), ("transport", false)]
            .into_iter()
            .enumerate()
        {
            let mut t = sa_sum(&|_, i| i.spec.cfg.mode.is_tunnel() == tunnel);
            for (t, r) in t.iter_mut().zip(self.ipsec.retired_by_mode[k]) {
                *t += r;
            }
            rows.push(sa_row("mode", name, t));
        }
        Response::ok(Value::Array(rows))
    }

    /// `clear ipsec sa` by SPI, peer, policy (or VTI), or all: the chosen manual SAs are
    /// reinstalled from their configuration at once (fresh sequence numbers, replay window,
    /// counters and lifetimes), as SmartEdge and F5 do with manual SAs; lingering ones are
    /// removed. Clearing an outbound SA restarts its sequence numbers, which the peer's replay
    /// window refuses until its inbound SA is cleared too: clear both ends.
    pub(super) fn clear_ipsec_sa(
        &mut self,
        spi: Option<u32>,
        peer: Option<&str>,
        policy: Option<&str>,
        all: bool,
    ) -> Response {
        let given = spi.is_some() as u8 + peer.is_some() as u8 + policy.is_some() as u8 + all as u8;
        if given != 1 {
            return Response::err(
                "clear ipsec sa: give exactly one of --spi, --peer, --policy or --all",
            );
        }
        if let Some(p) = policy {
            if self.state.ipsec.vti(p).is_none()
                && !self.state.ipsec.policies.iter().any(|x| x.name == p)
            {
                return Response::err(format!("policy: no policy or VTI named '{p}'"));
            }
        }
        let f = SaFilter {
            spi,
            peer,
            selector: policy,
            ..Default::default()
        };
        let slots = match self.matching_sas(&f) {
            Ok(s) => s,
            Err(e) => return Response::err(e),
        };
        if slots.is_empty() {
            return Response::err("clear ipsec sa: no installed SA matches");
        }
        let names: Vec<String> = slots
            .iter()
            .filter_map(|s| self.ipsec.info.get(s))
            .map(|i| i.spec.name.clone())
            .collect();
        let st = self.state.clone();
        match self.publish_with(&st, Instant::now(), &slots) {
            Ok(()) => {
                tracing::info!("IPsec SAs cleared: {}", names.join(", "));
                Response::ok(json!({ "cleared": names }))
            }
            Err(e) => Response::err(e),
        }
    }

    /// `show interfaces` rows of the VTIs.
    pub(super) fn vti_rows(&self) -> Vec<Value> {
        self.state
            .ipsec
            .vtis
            .iter()
            .map(|v| {
                json!({
                    "name": v.name,
                    "port": "vti",
                    "vlan": Value::Null,
                    "mac": Value::Null,
                    "mtu": crate::build::vti_mtu(&self.state, v),
                    "addresses": v.addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
                    "sa": format!("out {} in {}", v.sa_out, v.sa_in.join(",")),
                })
            })
            .collect()
    }

    /// `show routes` rows of the VTIs' own addresses and subnets.
    pub(super) fn vti_route_rows(&self) -> Vec<Value> {
        let mut rows = Vec::new();
        for v in &self.state.ipsec.vtis {
            for a in &v.addrs {
                let host = if a.addr.is_ipv6() { 128 } else { 32 };
                rows.push(json!({"prefix": format!("{}/{host}", a.addr), "nexthop": "local", "interface": v.name, "source": "local", "state": "up"}));
                rows.push(json!({"prefix": a.subnet().to_string(), "nexthop": "vti", "interface": v.name, "source": "connected", "state": "up"}));
            }
        }
        rows
    }
}
