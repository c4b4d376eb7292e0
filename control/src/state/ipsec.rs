//! Manual SAs and security policies: validation of `[ipsec]` (every refusal names the field
//! and the bad value) into the objects the controller installs, and the policy table the
//! workers read.

use crate::config::{RawIpsec, RawPolicy, RawSa, RawVti};
use crate::parse::{self, IfAddr, PortRange, Prefix};
use dataplane::esp::{AesKeyLen, Integ, Lifetime, Mode, NatT, SaConfig, Suite};
use dataplane::outer::{OuterPolicy, TosPolicy};
use dataplane::stats::PolicyCounters;
use dataplane::tables::ipsec::{Action, IpsecTables, Policy, SaRef, VtiEntry};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// One validated SA.
#[derive(Clone, Debug, PartialEq)]
pub struct SaSpec {
    pub name: String,
    pub inbound: bool,
    pub cfg: SaConfig,
    pub enc_key: Vec<u8>,
    pub auth_key: Vec<u8>,
    pub outer: OuterPolicy,
    /// Seconds limits (the dataplane counts bytes and packets; the controller the time).
    pub soft_seconds: u64,
    pub hard_seconds: u64,
    pub raw: RawSa,
}

/// What a policy does with the names of its SAs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyAction {
    Protect {
        sa_out: Vec<String>,
        sa_in: Vec<String>,
    },
    Bypass,
    Discard,
}

/// One validated policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySpec {
    pub name: String,
    pub priority: u32,
    pub out: bool,
    pub inb: bool,
    pub src: Prefix,
    pub dst: Prefix,
    pub proto: Option<u8>,
    pub sport: PortRange,
    pub dport: PortRange,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub scope: Option<usize>,
    pub action: PolicyAction,
    pub raw: RawPolicy,
}

impl PolicySpec {
    /// The dataplane's form of this policy (its selectors, `id`, and `action`).
    pub fn selector(&self, id: u32, action: Action) -> Policy {
        Policy {
            id,
            priority: self.priority,
            out: self.out,
            inb: self.inb,
            src: (self.src.addr, self.src.len),
            dst: (self.dst.addr, self.dst.len),
            proto: self.proto,
            sport: (self.sport.lo, self.sport.hi),
            dport: (self.dport.lo, self.dport.hi),
            icmp_type: self.icmp_type,
            icmp_code: self.icmp_code,
            scope: self.scope.map(|s| s as u16),
            action,
        }
    }
}

/// One validated route-based IPsec interface (VTI): an L3 interface bound to an SA pair
/// whose selectors are 0.0.0.0/0 and ::/0. Routes pointing into it get sealed with `sa_out`;
/// what its `sa_in` SAs decrypt arrives on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VtiSpec {
    pub name: String,
    pub sa_out: String,
    pub sa_in: Vec<String>,
    pub addrs: Vec<IfAddr>,
    /// Configured IP MTU; `None` = the largest inner packet that still fits the MTU towards
    /// `sa_out`'s peer once sealed with it (see [`esp_overhead_mtu`], `build::vti_mtu`).
    pub mtu: Option<u16>,
    pub raw: RawVti,
}

/// Everything IPsec in the running config.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IpsecState {
    pub default_discard: bool,
    pub grace_secs: u32,
    pub sas: Vec<SaSpec>,
    pub policies: Vec<PolicySpec>,
    pub vtis: Vec<VtiSpec>,
}

/// An inbound SA kept installed for the rekey grace period after it was replaced or removed
/// (make-before-break): still found by its SPI, still admitted by the policies and VTIs that
/// named it, so packets the peer sent before it switched still decrypt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lingering {
    pub sa: SaRef,
    pub spi: u32,
    pub policies: Vec<String>,
    pub vtis: Vec<String>,
}

/// What the tables need from the controller besides the state: where each SA is installed,
/// the lingering inbound SAs, and the policies' counters (kept by the controller so they
/// survive every republish).
#[derive(Clone, Debug, Default)]
pub struct SaPlacement {
    pub slots: HashMap<String, SaRef>,
    pub lingering: Vec<Lingering>,
    pub counters: HashMap<String, Arc<PolicyCounters>>,
    /// Counters of the default action (traffic no policy matched).
    pub default_counters: Option<Arc<PolicyCounters>>,
}

/// The largest inner packet an SA of `cfg` can seal without the result exceeding
/// `underlay_mtu`: outer header (tunnel mode), UDP (NAT-T), ESP header, IV, payload padded
/// with the pad-length and next-header octets to the suite's alignment, ICV.
pub fn esp_overhead_mtu(cfg: &SaConfig, underlay_mtu: u16) -> u16 {
    let s = cfg.suite;
    let outer = match cfg.mode {
        Mode::Tunnel4 { .. } => 20,
        Mode::Tunnel6 { .. } => 40,
        Mode::Transport => 0,
    };
    let udp = if cfg.natt.is_some() { 8 } else { 0 };
    let fixed = outer + udp + 8 + s.iv_len() + s.icv_len();
    let room = (underlay_mtu as usize).saturating_sub(fixed);
    let aligned = room / s.pad_align() * s.pad_align();
    aligned.saturating_sub(2) as u16
}

/// The suite of config names `encryption` / `integrity` (e.g. `aes-gcm-128`, or `aes-cbc-128`
/// with `hmac-sha256-128`), for tools that speak the config's language (ferrobench).
pub fn suite_by_name(enc: &str, integ: Option<&str>) -> Result<Suite, String> {
    suite_of(&|n| n.to_string(), enc, integ)
}

fn suite_of(f: &dyn Fn(&str) -> String, enc: &str, integ: Option<&str>) -> Result<Suite, String> {
    let e = enc.to_ascii_lowercase();
    let i = integ.map(|s| s.to_ascii_lowercase());
    let aes = |bits: &str| match bits {
        "128" => Some(AesKeyLen::Aes128),
        "192" => Some(AesKeyLen::Aes192),
        "256" => Some(AesKeyLen::Aes256),
        _ => None,
    };
    let integ_of = |s: &str| -> Result<Integ, String> {
        match s {
            "hmac-sha1-96" | "sha1" | "sha1-96" => Ok(Integ::HmacSha1_96),
            "hmac-sha256-128" | "hmac-sha2-256-128" | "sha256" => Ok(Integ::HmacSha256_128),
            "hmac-sha384-192" | "hmac-sha2-384-192" | "sha384" => Ok(Integ::HmacSha384_192),
            "hmac-sha512-256" | "hmac-sha2-512-256" | "sha512" => Ok(Integ::HmacSha512_256),
            "hmac-md5-96" | "md5" => Err(format!(
                "{}: '{s}': MD5 is not supported (insecure)",
                f("integrity")
            )),
            _ => Err(format!(
                "{}: '{s}': unknown (hmac-sha1-96, hmac-sha256-128, hmac-sha384-192, hmac-sha512-256)",
                f("integrity")
            )),
        }
    };
    let aead = |s: Suite| -> Result<Suite, String> {
        match &i {
            Some(x) if x != "none" => Err(format!(
                "{}: '{x}': {enc} is an AEAD algorithm and takes no separate integrity algorithm",
                f("integrity")
            )),
            _ => Ok(s),
        }
    };
    if let Some(b) = e
        .strip_prefix("aes-gcm-")
        .or_else(|| e.strip_prefix("aes").and_then(|r| r.strip_suffix("gcm16")))
    {
        let k = aes(b).ok_or_else(|| {
            format!(
                "{}: '{enc}': key size must be 128, 192 or 256",
                f("encryption")
            )
        })?;
        return aead(Suite::AesGcm(k));
    }
    if let Some(b) = e
        .strip_prefix("aes-gmac-")
        .or_else(|| e.strip_prefix("aes").and_then(|r| r.strip_suffix("gmac")))
    {
        let k = aes(b).ok_or_else(|| {
            format!(
                "{}: '{enc}': key size must be 128, 192 or 256",
                f("encryption")
            )
        })?;
        return aead(Suite::AesGmac(k));
    }
    if e == "chacha20-poly1305" || e == "chacha20poly1305" {
        return aead(Suite::ChaCha20Poly1305);
    }
    let need_integ = || -> Result<Integ, String> {
        match &i {
            Some(x) if x != "none" => integ_of(x),
            _ => Err(format!(
                "{}: {enc} needs an integrity algorithm",
                f("integrity")
            )),
        }
    };
    if let Some(b) = e
        .strip_prefix("aes-cbc-")
        .or_else(|| e.strip_prefix("aes").and_then(|r| r.strip_suffix("cbc")))
    {
        let k = aes(b)
            .filter(|k| *k != AesKeyLen::Aes192)
            .ok_or_else(|| format!("{}: '{enc}': key size must be 128 or 256", f("encryption")))?;
        return Ok(Suite::AesCbc(k, need_integ()?));
    }
    if e == "null" {
        return Ok(Suite::Null(need_integ()?));
    }
    if matches!(e.as_str(), "3des" | "3des-cbc" | "des" | "des-cbc" | "des3") {
        return Err(format!(
            "{}: '{enc}': DES and 3DES are not supported (insecure)",
            f("encryption")
        ));
    }
    Err(format!(
        "{}: '{enc}': unknown (aes-gcm-128|192|256, aes-gmac-128|192|256, chacha20-poly1305, aes-cbc-128|256, null)",
        f("encryption")
    ))
}

fn sa_spec(i: usize, r: &RawSa) -> Result<SaSpec, String> {
    let f = |field: &str| format!("ipsec.sa[{i}].{field}");
    if r.name.is_empty() {
        return Err(format!("{}: must not be empty", f("name")));
    }
    if r.spi < 256 || r.spi > u32::MAX as u64 {
        return Err(format!(
            "{}: {} (0x{:x}) is reserved or out of range: SPIs are 256..=4294967295",
            f("spi"),
            r.spi,
            r.spi
        ));
    }
    let inbound = match r.direction.as_str() {
        "in" => true,
        "out" => false,
        d => return Err(format!("{}: '{d}': must be in or out", f("direction"))),
    };
    match r.protocol.as_deref().unwrap_or("esp") {
        "esp" => {}
        "ah" => {
            return Err(format!(
                "{}: 'ah': AH is not supported (use ESP, e.g. with NULL encryption)",
                f("protocol")
            ))
        }
        p => return Err(format!("{}: '{p}': only esp is supported", f("protocol"))),
    }
    if let Some(c) = &r.ipcomp {
        return Err(format!("{}: '{c}': IPComp is not supported", f("ipcomp")));
    }
    let suite = suite_of(&f, &r.encryption, r.integrity.as_deref())?;
    let enc_key = parse::hex(&r.key).map_err(|e| format!("{}: {e}", f("key")))?;
    if enc_key.len() != suite.enc_key_len() {
        return Err(format!(
            "{}: {} bytes given, {} takes exactly {} ({} hex digits{})",
            f("key"),
            enc_key.len(),
            r.encryption,
            suite.enc_key_len(),
            2 * suite.enc_key_len(),
            if matches!(
                suite,
                Suite::AesGcm(_) | Suite::AesGmac(_) | Suite::ChaCha20Poly1305
            ) {
                ", the 4-byte salt included"
            } else {
                ""
            }
        ));
    }
    let auth_key = match &r.integrity_key {
        Some(k) => parse::hex(k).map_err(|e| format!("{}: {e}", f("integrity_key")))?,
        None => Vec::new(),
    };
    if auth_key.len() != suite.auth_key_len() {
        return Err(format!(
            "{}: {} bytes given, exactly {} needed",
            f("integrity_key"),
            auth_key.len(),
            suite.auth_key_len()
        ));
    }
    let mode = match r.mode.as_deref().unwrap_or("tunnel") {
        "transport" => Mode::Transport,
        "tunnel" => {
            let src = r
                .src
                .as_deref()
                .ok_or_else(|| format!("{}: required in tunnel mode", f("src")))?;
            let dst = r
                .dst
                .as_deref()
                .ok_or_else(|| format!("{}: required in tunnel mode", f("dst")))?;
            let s = parse::ip(src).map_err(|e| format!("{}: {e}", f("src")))?;
            let d = parse::ip(dst).map_err(|e| format!("{}: {e}", f("dst")))?;
            // The SA's local end is the source outbound and the destination inbound.
            let (local, remote) = if inbound { (d, s) } else { (s, d) };
            match (local, remote) {
                (IpAddr::V4(l), IpAddr::V4(r)) => Mode::Tunnel4 {
                    local: l,
                    remote: r,
                },
                (IpAddr::V6(l), IpAddr::V6(r)) => Mode::Tunnel6 {
                    local: l,
                    remote: r,
                },
                _ => {
                    return Err(format!(
                        "{}: '{dst}' is not the family of src '{src}'",
                        f("dst")
                    ))
                }
            }
        }
        m => return Err(format!("{}: '{m}': must be tunnel or transport", f("mode"))),
    };
    let mut cfg = SaConfig::new(r.spi as u32, mode, suite);
    cfg.esn = r.esn;
    match r.initial_seq {
        None => {}
        Some(0) => {
            return Err(format!(
                "{}: 0: sequence numbers start at 1",
                f("initial_seq")
            ))
        }
        Some(n) if !r.esn && n > u32::MAX as u64 => {
            return Err(format!(
                "{}: {n}: above 4294967295 (2^32-1) needs esn = true",
                f("initial_seq")
            ))
        }
        Some(n) => cfg.initial_seq = n,
    }
    if let Some(w) = r.replay_window {
        // 0 turns anti-replay off; the window itself has a floor of 64.
        if w != 0 && !(64..=4096).contains(&w) || w % 64 != 0 {
            return Err(format!(
                "{}: {w}: must be 0 (off) or a multiple of 64 in 64..=4096",
                f("replay_window")
            ));
        }
        cfg.replay_window = w;
    }
    if r.natt {
        cfg.natt = Some(NatT {
            sport: r.natt_sport.unwrap_or(4500),
            dport: r.natt_dport.unwrap_or(4500),
        });
    } else if r.natt_sport.is_some() || r.natt_dport.is_some() {
        return Err(format!("{}: ports given but natt = false", f("natt")));
    }
    let lt = &r.lifetime;
    let opt = |v: u64| (v != 0).then_some(v);
    cfg.lifetime = Lifetime {
        soft_bytes: opt(lt.soft_bytes),
        hard_bytes: opt(lt.hard_bytes),
        soft_packets: opt(lt.soft_packets),
        hard_packets: opt(lt.hard_packets),
    };
    for (what, s, h) in [
        ("bytes", lt.soft_bytes, lt.hard_bytes),
        ("packets", lt.soft_packets, lt.hard_packets),
        ("seconds", lt.soft_seconds, lt.hard_seconds),
    ] {
        if s != 0 && h != 0 && s >= h {
            return Err(format!(
                "{}: soft_{what} {s} must be below hard_{what} {h}",
                f("lifetime")
            ));
        }
    }
    let mut outer = OuterPolicy::default();
    if let Some(t) = r.ttl {
        if t == 0 {
            return Err(format!("{}: 0: must be 1..=255", f("ttl")));
        }
        outer.ttl = t;
    }
    outer.df = parse::df_policy(r.df.as_deref()).map_err(|e| format!("{}: {e}", f("df")))?;
    outer.tos = match &r.dscp {
        None => TosPolicy::Preserve,
        Some(toml::Value::String(s)) if s == "copy" => TosPolicy::Preserve,
        Some(toml::Value::Integer(n)) if (0..=63).contains(n) => TosPolicy::Fixed((*n as u8) << 2),
        Some(v) => return Err(format!("{}: {v}: must be \"copy\" or 0..=63", f("dscp"))),
    };
    if let Err(e) = dataplane::esp::Sa::new(&cfg, &enc_key, &auth_key) {
        return Err(format!("ipsec.sa[{i}] '{}': {e}", r.name));
    }
    Ok(SaSpec {
        name: r.name.clone(),
        inbound,
        cfg,
        enc_key,
        auth_key,
        outer,
        soft_seconds: lt.soft_seconds,
        hard_seconds: lt.hard_seconds,
        raw: r.clone(),
    })
}

fn policy_spec(
    i: usize,
    r: &RawPolicy,
    sas: &[SaSpec],
    vtis: &[VtiSpec],
    iface: &dyn Fn(&str) -> Option<usize>,
) -> Result<PolicySpec, String> {
    let f = |field: &str| format!("ipsec.policy[{i}].{field}");
    if r.name.is_empty() {
        return Err(format!("{}: must not be empty", f("name")));
    }
    let (out, inb) = match r.direction.as_str() {
        "out" => (true, false),
        "in" => (false, true),
        "both" => (true, true),
        d => {
            return Err(format!(
                "{}: '{d}': must be out, in or both",
                f("direction")
            ))
        }
    };
    let pfx = |field: &str, v: &Option<String>| -> Result<Option<Prefix>, String> {
        v.as_deref()
            .map(|s| Prefix::parse(s).map_err(|e| format!("{}: {e}", f(field))))
            .transpose()
    };
    let (src, dst) = (pfx("src", &r.src)?, pfx("dst", &r.dst)?);
    let v6 = src.or(dst).is_some_and(|p| p.is_v6());
    if let (Some(s), Some(d)) = (src, dst) {
        if s.is_v6() != d.is_v6() {
            return Err(format!(
                "{}: '{d}' is not the family of src '{s}'",
                f("dst")
            ));
        }
    }
    let proto = match &r.protocol {
        Some(p) => parse::protocol(p).map_err(|e| format!("{}: {e}", f("protocol")))?,
        None => None,
    };
    let range = |field: &str, v: &Option<String>| -> Result<PortRange, String> {
        match v {
            None => Ok(PortRange { lo: 0, hi: 65535 }),
            Some(s) => {
                if !matches!(proto, Some(6) | Some(17) | Some(132)) {
                    return Err(format!(
                        "{}: ports need protocol tcp, udp or sctp",
                        f(field)
                    ));
                }
                PortRange::parse(s).map_err(|e| format!("{}: {e}", f(field)))
            }
        }
    };
    let (sport, dport) = (
        range("src_ports", &r.src_ports)?,
        range("dst_ports", &r.dst_ports)?,
    );
    if (r.icmp_type.is_some() || r.icmp_code.is_some()) && !matches!(proto, Some(1) | Some(58)) {
        return Err(format!(
            "{}: needs protocol icmp or ipv6-icmp",
            f("icmp_type")
        ));
    }
    let names = |field: &str, list: &[String], want_in: bool| -> Result<Vec<String>, String> {
        for n in list {
            if let Some(v) = vtis.iter().find(|v| &v.sa_out == n || v.sa_in.contains(n)) {
                return Err(format!(
                    "{}: SA '{n}' is already used by VTI '{}'",
                    f(field),
                    v.name
                ));
            }
            match sas.iter().find(|s| &s.name == n) {
                None => return Err(format!("{}: no SA named '{n}'", f(field))),
                Some(s) if s.inbound != want_in => {
                    return Err(format!(
                        "{}: SA '{n}' is {}bound",
                        f(field),
                        if s.inbound { "in" } else { "out" }
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(list.to_vec())
    };
    let action = match r.action.as_str() {
        "protect" => {
            if r.sa.is_empty() && out {
                return Err(format!(
                    "{}: a protect policy for outbound traffic needs an SA",
                    f("sa")
                ));
            }
            PolicyAction::Protect {
                sa_out: names("sa", &r.sa, false)?,
                sa_in: names("sa_in", &r.sa_in, true)?,
            }
        }
        "bypass" | "discard" if !r.sa.is_empty() || !r.sa_in.is_empty() => {
            return Err(format!("{}: only protect policies name SAs", f("sa")))
        }
        "bypass" => PolicyAction::Bypass,
        "discard" => PolicyAction::Discard,
        a => {
            return Err(format!(
                "{}: '{a}': must be protect, bypass or discard",
                f("action")
            ))
        }
    };
    let scope = match &r.interface {
        Some(n) => {
            Some(iface(n).ok_or_else(|| format!("{}: no interface named '{n}'", f("interface")))?)
        }
        None => None,
    };
    Ok(PolicySpec {
        name: r.name.clone(),
        priority: r.priority,
        out,
        inb,
        src: src.unwrap_or_else(|| Prefix::any(v6)),
        dst: dst.unwrap_or_else(|| Prefix::any(v6)),
        proto,
        sport,
        dport,
        icmp_type: r.icmp_type,
        icmp_code: r.icmp_code,
        scope,
        action,
        raw: r.clone(),
    })
}

impl IpsecState {
    /// Validate `[ipsec]`; `iface` resolves interface names for policy scopes.
    pub fn from_config(
        raw: &RawIpsec,
        iface: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<IpsecState, String> {
        let default_discard = match raw.default_action.as_deref().unwrap_or("bypass") {
            "bypass" => false,
            "discard" => true,
            a => {
                return Err(format!(
                    "ipsec.default_action: '{a}': must be bypass or discard"
                ))
            }
        };
        let mut st = IpsecState {
            default_discard,
            grace_secs: raw.rekey_grace_secs.unwrap_or(30),
            ..Default::default()
        };
        for (i, r) in raw.sa.iter().enumerate() {
            st.add_sa_at(i, r)?;
        }
        for (i, r) in raw.policy.iter().enumerate() {
            st.add_policy_at(i, r, iface)?;
        }
        for (i, r) in raw.vti.iter().enumerate() {
            st.add_vti_at(i, r, iface)?;
        }
        Ok(st)
    }

    /// The VTI named `name`.
    pub fn vti(&self, name: &str) -> Option<usize> {
        self.vtis.iter().position(|v| v.name == name)
    }

    /// The policy or VTI that names SA `sa`, if any (an SA serves one of them at most).
    fn user_of(&self, sa: &str) -> Option<String> {
        for p in &self.policies {
            if let PolicyAction::Protect { sa_out, sa_in } = &p.action {
                if sa_out.iter().chain(sa_in).any(|n| n == sa) {
                    return Some(format!("policy '{}'", p.name));
                }
            }
        }
        self.vtis
            .iter()
            .find(|v| v.sa_out == sa || v.sa_in.iter().any(|n| n == sa))
            .map(|v| format!("VTI '{}'", v.name))
    }

    fn add_vti_at(
        &mut self,
        i: usize,
        r: &RawVti,
        iface: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<(), String> {
        let f = |field: &str| format!("ipsec.vti[{i}].{field}");
        crate::state::valid_name(&f("name"), &r.name)?;
        if self.vti(&r.name).is_some() || iface(&r.name).is_some() {
            return Err(format!(
                "{}: '{}' is already an interface name",
                f("name"),
                r.name
            ));
        }
        let check = |field: &str, n: &str, want_in: bool| -> Result<(), String> {
            let Some(s) = self.sas.iter().find(|s| s.name == n) else {
                return Err(format!("{}: no SA named '{n}'", f(field)));
            };
            if s.inbound != want_in {
                return Err(format!(
                    "{}: SA '{n}' is {}bound",
                    f(field),
                    if s.inbound { "in" } else { "out" }
                ));
            }
            if !s.cfg.mode.is_tunnel() {
                return Err(format!(
                    "{}: SA '{n}' is in transport mode; a VTI carries whole packets (tunnel mode)",
                    f(field)
                ));
            }
            if let Some(u) = self.user_of(n) {
                return Err(format!("{}: SA '{n}' is already used by {u}", f(field)));
            }
            Ok(())
        };
        check("sa_out", &r.sa_out, false)?;
        for (k, n) in r.sa_in.iter().enumerate() {
            check(&format!("sa_in[{k}]"), n, true)?;
            if r.sa_in[..k].contains(n) {
                return Err(format!("{}: SA '{n}' is listed twice", f("sa_in")));
            }
        }
        let mut addrs = Vec::new();
        for (k, a) in r.addresses.iter().enumerate() {
            addrs.push(IfAddr::parse(a).map_err(|e| format!("{}[{k}]: {e}", f("addresses")))?);
        }
        if addrs.len() > crate::state::MAX_IF_ADDRS {
            return Err(format!(
                "{}: at most {} addresses",
                f("addresses"),
                crate::state::MAX_IF_ADDRS
            ));
        }
        if let Some(m) = r.mtu {
            if !(576..=9000).contains(&m) {
                return Err(format!("{}: {m} is outside 576..=9000", f("mtu")));
            }
        }
        self.vtis.push(VtiSpec {
            name: r.name.clone(),
            sa_out: r.sa_out.clone(),
            sa_in: r.sa_in.clone(),
            addrs,
            mtu: r.mtu,
            raw: r.clone(),
        });
        Ok(())
    }

    /// Add a VTI at runtime (`ferroctl vti add`).
    pub fn add_vti(
        &mut self,
        r: &RawVti,
        iface: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<(), String> {
        self.add_vti_at(self.vtis.len(), r, iface)
    }

    /// Attach SA `sa` (already added) to policy or VTI `to`: an outbound SA becomes the one
    /// that protects (the newest), an inbound one is admitted beside those already there.
    /// This is the make step of a rekey; `del_sa` of the old SA is the break step.
    pub fn attach_sa(&mut self, sa: &str, to: &str) -> Result<(), String> {
        let Some(spec) = self.sas.iter().find(|s| s.name == sa) else {
            return Err(format!("no SA named '{sa}'"));
        };
        let inbound = spec.inbound;
        let tunnel = spec.cfg.mode.is_tunnel();
        if let Some(u) = self.user_of(sa) {
            return Err(format!("SA '{sa}' is already used by {u}"));
        }
        if let Some(p) = self.policies.iter_mut().find(|p| p.name == to) {
            let PolicyAction::Protect { sa_out, sa_in } = &mut p.action else {
                return Err(format!("policy '{to}' is not a protect policy"));
            };
            if inbound {
                sa_in.push(sa.to_string());
                p.raw.sa_in.push(sa.to_string());
            } else {
                if !p.out {
                    return Err(format!(
                        "policy '{to}' is inbound only: it takes no outbound SA"
                    ));
                }
                sa_out.push(sa.to_string());
                p.raw.sa.push(sa.to_string());
            }
            return Ok(());
        }
        if let Some(v) = self.vtis.iter_mut().find(|v| v.name == to) {
            if !tunnel {
                return Err(format!(
                    "SA '{sa}' is in transport mode; a VTI carries whole packets (tunnel mode)"
                ));
            }
            if inbound {
                v.sa_in.push(sa.to_string());
                v.raw.sa_in.push(sa.to_string());
            } else {
                // The VTI's previous outbound SA stays defined (delete it when done).
                v.sa_out = sa.to_string();
                v.raw.sa_out = sa.to_string();
            }
            return Ok(());
        }
        Err(format!("no policy or VTI named '{to}'"))
    }

    fn add_sa_at(&mut self, i: usize, r: &RawSa) -> Result<(), String> {
        let s = sa_spec(i, r)?;
        if self.sas.iter().any(|x| x.name == s.name) {
            return Err(format!(
                "ipsec.sa[{i}].name: duplicate SA name '{}'",
                s.name
            ));
        }
        if s.inbound && self.sas.iter().any(|x| x.inbound && x.cfg.spi == s.cfg.spi) {
            return Err(format!(
                "ipsec.sa[{i}].spi: inbound SPI {} (0x{:x}) is already in use",
                s.cfg.spi, s.cfg.spi
            ));
        }
        self.sas.push(s);
        Ok(())
    }

    fn add_policy_at(
        &mut self,
        i: usize,
        r: &RawPolicy,
        iface: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<(), String> {
        let p = policy_spec(i, r, &self.sas, &self.vtis, iface)?;
        if self.policies.iter().any(|x| x.name == p.name) {
            return Err(format!(
                "ipsec.policy[{i}].name: duplicate policy name '{}'",
                p.name
            ));
        }
        self.policies.push(p);
        Ok(())
    }

    /// Add an SA at runtime (`ferroctl sa add`).
    pub fn add_sa(&mut self, r: &RawSa) -> Result<(), String> {
        self.add_sa_at(self.sas.len(), r)
    }

    /// Remove an SA and detach it from the policy or VTI that names it (the break step of a
    /// rekey). Refused when it is the only outbound SA of an outbound protect policy or a
    /// VTI's outbound SA: that traffic would have nothing to be sealed with (attach the new
    /// SA first). A removed inbound SA lingers for the grace period (see `Lingering`).
    pub fn del_sa(&mut self, name: &str) -> Result<(), String> {
        let Some(i) = self.sas.iter().position(|s| s.name == name) else {
            return Err(format!("no SA named '{name}'"));
        };
        for p in &mut self.policies {
            let PolicyAction::Protect { sa_out, sa_in } = &mut p.action else {
                continue;
            };
            if sa_out.iter().any(|n| n == name) && sa_out.len() == 1 && p.out {
                return Err(format!(
                    "SA '{name}' is the only outbound SA of policy '{}': attach its successor first (sa add ... --policy {}) or delete the policy",
                    p.name, p.name
                ));
            }
            sa_out.retain(|n| n != name);
            sa_in.retain(|n| n != name);
            p.raw.sa.retain(|n| n != name);
            p.raw.sa_in.retain(|n| n != name);
        }
        for v in &mut self.vtis {
            if v.sa_out == name {
                return Err(format!(
                    "SA '{name}' is the outbound SA of VTI '{}': attach its successor first (sa add ... --vti {}) or delete the VTI",
                    v.name, v.name
                ));
            }
            v.sa_in.retain(|n| n != name);
            v.raw.sa_in.retain(|n| n != name);
        }
        self.sas.remove(i);
        Ok(())
    }

    pub fn add_policy(
        &mut self,
        r: &RawPolicy,
        iface: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<(), String> {
        self.add_policy_at(self.policies.len(), r, iface)
    }

    pub fn del_policy(&mut self, name: &str) -> Result<(), String> {
        let Some(i) = self.policies.iter().position(|p| p.name == name) else {
            return Err(format!("no policy named '{name}'"));
        };
        self.policies.remove(i);
        Ok(())
    }

    /// The workers' view, given where each SA is installed (`pl`) and, for each VTI, its
    /// interface index and IP MTU.
    pub fn tables(&self, pl: &SaPlacement, workers: u16, vti_ifs: &[(u16, u16)]) -> IpsecTables {
        let slot = |n: &String| pl.slots.get(n).copied();
        let policies = self
            .policies
            .iter()
            .enumerate()
            .map(|(id, p)| {
                p.selector(
                    id as u32,
                    match &p.action {
                        // The newest installed outbound SA protects; the rest stay for the rekey.
                        PolicyAction::Protect { sa_out, sa_in } => Action::Protect {
                            out: sa_out.iter().rev().find_map(slot),
                            inbound: sa_in
                                .iter()
                                .filter_map(slot)
                                .map(|r| r.slot)
                                .chain(
                                    pl.lingering
                                        .iter()
                                        .filter(|l| l.policies.contains(&p.name))
                                        .map(|l| l.sa.slot),
                                )
                                .collect(),
                        },
                        PolicyAction::Bypass => Action::Bypass,
                        PolicyAction::Discard => Action::Discard,
                    },
                )
            })
            .collect();
        let mut sa_in: Vec<(u32, SaRef)> = self
            .sas
            .iter()
            .filter(|s| s.inbound)
            .filter_map(|s| slot(&s.name).map(|r| (s.cfg.spi, r)))
            .collect();
        // A lingering SA keeps its SPI unless a current SA took it over.
        for l in &pl.lingering {
            if !sa_in.iter().any(|(spi, _)| *spi == l.spi) {
                sa_in.push((l.spi, l.sa));
            }
        }
        let mut t = IpsecTables::new(
            policies,
            self.default_discard,
            sa_in.into_iter().collect(),
            workers,
        );
        for (k, v) in self.vtis.iter().enumerate() {
            let (ifindex, mtu) = vti_ifs.get(k).copied().unwrap_or((u16::MAX, 0));
            t.vtis.push(VtiEntry {
                ifindex,
                out: slot(&v.sa_out),
                mtu,
            });
            let lingering = pl
                .lingering
                .iter()
                .filter(|l| l.vtis.contains(&v.name))
                .map(|l| l.sa);
            for r in v.sa_in.iter().filter_map(slot).chain(lingering) {
                t.vti_in.insert(r.slot, k as u32);
            }
        }
        let fresh = || Arc::new(PolicyCounters::new(workers as usize));
        t.counters = self
            .policies
            .iter()
            .map(|p| pl.counters.get(&p.name).cloned().unwrap_or_else(fresh))
            .chain(std::iter::once(
                pl.default_counters.clone().unwrap_or_else(fresh),
            ))
            .collect();
        t
    }
}

impl crate::state::State {
    /// A route into VTI `vti`: no gateway, not a blackhole.
    pub(crate) fn parse_vti_route(
        &self,
        prefix: Prefix,
        vti: &str,
        r: &crate::config::RawRoute,
    ) -> Result<crate::state::Route, String> {
        if r.via.is_some() {
            return Err(format!(
                "via: a route into VTI '{vti}' takes no gateway (the VTI is point-to-point)"
            ));
        }
        if r.blackhole {
            return Err("blackhole: a blackhole route takes no via or interface".into());
        }
        Ok(crate::state::Route {
            prefix,
            target: crate::state::RouteTarget::Vti(vti.to_string()),
        })
    }

    /// VTI addresses are unique among all interfaces' and VTIs', and so are their subnets.
    pub(crate) fn check_vti_addresses(&self) -> Result<(), String> {
        let mut seen: Vec<(IfAddr, &str)> = self
            .ifaces
            .iter()
            .map(|f| (f.name.as_str(), &f.addrs))
            .chain(self.tunnels.iter().map(|t| (t.name.as_str(), &t.addrs)))
            .flat_map(|(n, addrs)| addrs.iter().map(move |a| (*a, n)))
            .collect();
        for v in &self.ipsec.vtis {
            if self.tunnels.iter().any(|t| t.name == v.name) {
                return Err(format!(
                    "VTI '{}'.name: '{}' is already a tunnel name",
                    v.name, v.name
                ));
            }
            for a in &v.addrs {
                if let Some((_, other)) = seen.iter().find(|(x, _)| x.addr == a.addr) {
                    return Err(format!(
                        "VTI '{}'.addresses: {} is already on interface '{other}'",
                        v.name, a.addr
                    ));
                }
                if let Some((_, other)) = seen.iter().find(|(x, _)| x.subnet() == a.subnet()) {
                    return Err(format!(
                        "VTI '{}'.addresses: subnet {} is already on interface '{other}'",
                        v.name,
                        a.subnet()
                    ));
                }
            }
            seen.extend(v.addrs.iter().map(|a| (*a, v.name.as_str())));
        }
        Ok(())
    }

    /// Add a VTI at runtime.
    pub fn add_vti(&mut self, r: &RawVti) -> Result<(), String> {
        let ifs: Vec<String> = self.ifaces.iter().map(|f| f.name.clone()).collect();
        self.ipsec
            .add_vti(r, &|n| ifs.iter().position(|x| x == n))?;
        self.check_vti_addresses()
    }

    /// Delete a VTI; refused while a route points into it.
    pub fn del_vti(&mut self, name: &str) -> Result<(), String> {
        let Some(i) = self.ipsec.vti(name) else {
            return Err(format!("no VTI named '{name}'"));
        };
        if let Some(r) = self
            .routes
            .iter()
            .find(|r| r.target == crate::state::RouteTarget::Vti(name.to_string()))
        {
            return Err(format!(
                "VTI '{name}' is used by route {}: delete the route first",
                r.prefix
            ));
        }
        self.ipsec.vtis.remove(i);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{build_tables, Runtime};
    use crate::config::RawConfig;
    use crate::state::State;
    use dataplane::tables::fib::NextHop;
    use dataplane::tables::iface::IfKind;

    const BASE: &str = r#"
[[ports]]
name = "wan"
devargs = "net_null0"
[[ports]]
name = "lan"
devargs = "net_null1"
[[workers]]
lcore = 1
rx = ["wan:0", "lan:0"]
[[interfaces]]
name = "wan"
port = "wan"
addresses = ["192.0.2.1/24"]
[[interfaces]]
name = "lan"
port = "lan"
addresses = ["10.0.0.1/24"]
[ipsec]
[[ipsec.sa]]
name = "out1"
spi = 4097
direction = "out"
src = "192.0.2.1"
dst = "192.0.2.2"
encryption = "aes-gcm-128"
key = "0102030405060708090a0b0c0d0e0f1011121314"
[[ipsec.sa]]
name = "in1"
spi = 8193
direction = "in"
src = "192.0.2.2"
dst = "192.0.2.1"
encryption = "aes-gcm-128"
key = "1102030405060708090a0b0c0d0e0f1011121314"
"#;

    fn state(extra: &str) -> Result<State, String> {
        State::from_config(&RawConfig::parse(&format!("{BASE}{extra}"))?)
    }

    fn refused(cfg: &str, needle: &str) {
        match RawConfig::parse(cfg).and_then(|r| State::from_config(&r)) {
            Ok(_) => panic!("accepted, expected an error containing '{needle}'"),
            Err(e) => assert!(
                e.contains(needle),
                "error '{e}' does not contain '{needle}'"
            ),
        }
    }

    const VTI: &str = r#"
[[ipsec.vti]]
name = "vti0"
sa_out = "out1"
sa_in = ["in1"]
addresses = ["172.16.0.5/30"]
[[routes]]
prefix = "10.9.0.0/16"
interface = "vti0"
"#;

    #[test]
    fn unsupported_sa_configuration_is_refused_naming_the_field() {
        let b = BASE;
        refused(
            &b.replace("spi = 4097", "spi = 255"),
            "ipsec.sa[0].spi: 255 (0xff) is reserved or out of range",
        );
        refused(
            &b.replace("spi = 4097", "spi = 4294967296"),
            "ipsec.sa[0].spi: 4294967296",
        );
        refused(
            &b.replace(
                "key = \"0102030405060708090a0b0c0d0e0f1011121314\"",
                "key = \"0102030405060708090a0b0c0d0e0f10\"",
            ),
            "ipsec.sa[0].key: 16 bytes given, aes-gcm-128 takes exactly 20 (40 hex digits, the 4-byte salt included)",
        );
        refused(
            &b.replace(
                "direction = \"out\"",
                "direction = \"out\"\nprotocol = \"ah\"",
            ),
            "ipsec.sa[0].protocol: 'ah': AH is not supported",
        );
        refused(
            &b.replace(
                "direction = \"out\"",
                "direction = \"out\"\nipcomp = \"deflate\"",
            ),
            "ipsec.sa[0].ipcomp: 'deflate': IPComp is not supported",
        );
        for alg in ["3des", "des", "3des-cbc", "des-cbc"] {
            refused(
                &b.replacen("aes-gcm-128", alg, 1),
                &format!("ipsec.sa[0].encryption: '{alg}': DES and 3DES are not supported"),
            );
        }
        let cbc = b.replacen(
            "encryption = \"aes-gcm-128\"\nkey = \"0102030405060708090a0b0c0d0e0f1011121314\"",
            "encryption = \"aes-cbc-128\"\nkey = \"0102030405060708090a0b0c0d0e0f10\"\nintegrity = \"hmac-md5-96\"\nintegrity_key = \"00112233445566778899aabbccddeeff\"",
            1,
        );
        refused(
            &cbc,
            "ipsec.sa[0].integrity: 'hmac-md5-96': MD5 is not supported",
        );
        refused(
            &cbc.replace("hmac-md5-96", "hmac-sha256-128"),
            "ipsec.sa[0].integrity_key: 16 bytes given, exactly 32 needed",
        );
        refused(
            &b.replacen(
                "encryption = \"aes-gcm-128\"",
                "encryption = \"aes-gcm-128\"\nintegrity = \"hmac-sha256-128\"",
                1,
            ),
            "ipsec.sa[0].integrity: 'hmac-sha256-128': aes-gcm-128 is an AEAD algorithm and takes no separate integrity algorithm",
        );
        refused(
            &b.replacen(
                "encryption = \"aes-gcm-128\"",
                "encryption = \"aes-cbc-128\"",
                1,
            ),
            "ipsec.sa[0].integrity: aes-cbc-128 needs an integrity algorithm",
        );
        // The same SA set is fine.
        assert!(state("").is_ok());
    }

    #[test]
    fn vti_becomes_an_interface_with_routes_into_it() {
        let st = state(VTI).unwrap();
        assert_eq!(st.ipsec.vtis.len(), 1);
        let mut pl = SaPlacement::default();
        pl.slots.insert("out1".into(), SaRef { slot: 0, owner: 0 });
        pl.slots.insert("in1".into(), SaRef { slot: 1, owner: 0 });
        let t = build_tables(
            &st,
            &Runtime::fake(2),
            &Default::default(),
            1,
            &pl,
            &mut Default::default(),
        )
        .unwrap();
        // After the two port interfaces; MTU: 1500 minus AES-GCM tunnel overhead over IPv4.
        let ifc = &t.interfaces[2];
        assert_eq!(ifc.kind, IfKind::Vti { vti: 0 });
        assert_eq!(ifc.mtu, 1446);
        assert_eq!(ifc.icmp_src_v4, Some([172, 16, 0, 5]));
        let vti = NextHop::Vti { vti: 0 };
        assert_eq!(t.fib.lookup("10.9.1.1".parse().unwrap()), Ok(&vti));
        assert_eq!(t.fib.lookup("172.16.0.6".parse().unwrap()), Ok(&vti));
        assert_eq!(
            t.fib.lookup("172.16.0.5".parse().unwrap()),
            Ok(&NextHop::Local { ifindex: 2 })
        );
        assert_eq!(t.ipsec.vtis.len(), 1);
        assert_eq!(t.ipsec.vtis[0].ifindex, 2);
        assert_eq!(t.ipsec.vtis[0].out, Some(SaRef { slot: 0, owner: 0 }));
        assert_eq!(t.ipsec.vti_in.get(&1), Some(&0));
        assert_eq!(t.ipsec.sa_in.get(&8193), Some(&SaRef { slot: 1, owner: 0 }));
        // One counter block per policy plus the default action.
        assert_eq!(t.ipsec.counters.len(), 1);

        // Removing the route leaves the VTI but nothing else goes into it.
        let mut st2 = st.clone();
        st2.del_route(Prefix::parse("10.9.0.0/16").unwrap())
            .unwrap();
        let t2 = build_tables(
            &st2,
            &Runtime::fake(2),
            &Default::default(),
            2,
            &pl,
            &mut Default::default(),
        )
        .unwrap();
        assert_ne!(t2.fib.lookup("10.9.1.1".parse().unwrap()), Ok(&vti));
        // A VTI with a route into it cannot go; without, it can.
        let mut st3 = st.clone();
        assert_eq!(
            st3.del_vti("vti0").unwrap_err(),
            "VTI 'vti0' is used by route 10.9.0.0/16: delete the route first"
        );
        st2.del_vti("vti0").unwrap();
        assert!(st2.ipsec.vtis.is_empty());
        // Its SAs are bound to it: neither detachable as the outbound SA nor reusable.
        assert!(st3
            .ipsec
            .del_sa("out1")
            .unwrap_err()
            .contains("outbound SA of VTI 'vti0'"));
        st3.ipsec.del_sa("in1").unwrap();
        assert!(st3.ipsec.vtis[0].sa_in.is_empty());
    }

    #[test]
    fn vti_auto_mtu_follows_the_interface_towards_the_peer() {
        let mtu = |cfg: &str| {
            let st = State::from_config(&RawConfig::parse(cfg).unwrap()).unwrap();
            crate::build::vti_mtu(&st, &st.ipsec.vtis[0])
        };
        let base = format!("{BASE}{VTI}");
        // The peer (192.0.2.2) is on wan: a smaller LAN port does not shrink the VTI...
        let small_lan = base.replacen(
            "devargs = \"net_null1\"",
            "devargs = \"net_null1\"\nmtu = 1400",
            1,
        );
        assert_eq!(mtu(&small_lan), 1446);
        // ...and a larger wan MTU gives the VTI that room (2000 - 54, 4-aligned).
        let larger_wan = base.replacen(
            "devargs = \"net_null0\"",
            "devargs = \"net_null0\"\nmtu = 2000",
            1,
        );
        assert_eq!(mtu(&larger_wan), 1946);
        // A configured MTU wins.
        let fixed = base.replacen("sa_in = [\"in1\"]", "sa_in = [\"in1\"]\nmtu = 1300", 1);
        assert_eq!(mtu(&fixed), 1300);
    }

    #[test]
    fn a_tunnel_protected_by_esp_leaves_room_for_it_in_its_auto_mtu() {
        let gre = r#"
[[tunnels]]
name = "g"
profile = "gre"
local = "192.0.2.1"
remote = "192.0.2.2"
addresses = ["172.30.0.1/30"]
"#;
        let policy = |priority: u32, proto: &str, action: &str| {
            let sa = if action == "protect" {
                "sa = [\"out1\"]\n"
            } else {
                ""
            };
            format!(
                "[[ipsec.policy]]\nname = \"p{priority}\"\npriority = {priority}\ndirection = \"out\"\nsrc = \"192.0.2.1/32\"\ndst = \"192.0.2.2/32\"\nprotocol = \"{proto}\"\naction = \"{action}\"\n{sa}"
            )
        };
        let mtu = |extra: &str| state(&format!("{gre}{extra}")).unwrap().tunnel_mtu(0);
        // 1500 - 20 - 4 (GRE without key).
        assert_eq!(mtu(""), 1476);
        // GRE protected with AES-GCM-128 in tunnel mode: 1446 inside ESP, less GRE's 24.
        assert_eq!(mtu(&policy(10, "gre", "protect")), 1422);
        // A policy on another protocol, or a bypass ahead of the protect, leaves it alone.
        assert_eq!(mtu(&policy(10, "udp", "protect")), 1476);
        let both = format!(
            "{}{}",
            policy(5, "gre", "bypass"),
            policy(10, "gre", "protect")
        );
        assert_eq!(mtu(&both), 1476);
        // A configured MTU is taken as given.
        let fixed = format!(
            "{}{}",
            gre.replace("addresses", "mtu = 1400\naddresses"),
            policy(10, "gre", "protect")
        );
        assert_eq!(state(&fixed).unwrap().tunnel_mtu(0), 1400);
    }

    #[test]
    fn vti_refusals_name_the_field() {
        refused(
            &format!(
                "{BASE}{}",
                VTI.replace("sa_out = \"out1\"", "sa_out = \"in1\"")
            ),
            "ipsec.vti[0].sa_out: SA 'in1' is inbound",
        );
        refused(
            &format!(
                "{BASE}{}",
                VTI.replace("sa_in = [\"in1\"]", "sa_in = [\"nope\"]")
            ),
            "ipsec.vti[0].sa_in[0]: no SA named 'nope'",
        );
        refused(
            &format!(
                "{}{VTI}",
                BASE.replace(
                    "src = \"192.0.2.1\"\ndst = \"192.0.2.2\"",
                    "mode = \"transport\""
                )
            ),
            "ipsec.vti[0].sa_out: SA 'out1' is in transport mode",
        );
        refused(
            &format!("{BASE}{}", VTI.replace("name = \"vti0\"", "name = \"lan\"")),
            "ipsec.vti[0].name: 'lan' is already an interface name",
        );
        refused(
            &format!("{BASE}{}", VTI.replace("172.16.0.5/30", "10.0.0.1/24")),
            "VTI 'vti0'.addresses: 10.0.0.1 is already on interface 'lan'",
        );
        refused(
            &format!("{BASE}{}", VTI.replace("172.16.0.5/30", "10.0.0.9/24")),
            "VTI 'vti0'.addresses: subnet 10.0.0.0/24 is already on interface 'lan'",
        );
        refused(
            &format!(
                "{BASE}{}",
                VTI.replace("mtu", "x")
                    .replace("addresses", "mtu = 100\naddresses")
            ),
            "ipsec.vti[0].mtu: 100 is outside 576..=9000",
        );
        refused(
            &format!(
                "{BASE}{}",
                VTI.replace(
                    "interface = \"vti0\"",
                    "interface = \"vti0\"\nvia = \"172.16.0.6\""
                )
            ),
            "routes[0].via: a route into VTI 'vti0' takes no gateway",
        );
        let policy = r#"
[[ipsec.policy]]
name = "p"
priority = 1
direction = "both"
src = "10.0.0.0/24"
dst = "10.9.0.0/16"
action = "protect"
sa = ["out1"]
"#;
        refused(
            &format!("{BASE}{policy}{VTI}"),
            "ipsec.vti[0].sa_out: SA 'out1' is already used by policy 'p'",
        );
    }

    #[test]
    fn attach_and_detach_make_a_rekey() {
        let policy = r#"
[[ipsec.policy]]
name = "p"
priority = 1
direction = "both"
src = "10.0.0.0/24"
dst = "10.9.0.0/16"
action = "protect"
sa = ["out1"]
sa_in = ["in1"]
"#;
        let mut st = state(policy).unwrap();
        let ip = &mut st.ipsec;
        assert!(ip
            .del_sa("out1")
            .unwrap_err()
            .contains("only outbound SA of policy 'p'"));
        let mut out2 = ip.sas[0].raw.clone();
        out2.name = "out2".into();
        out2.spi = 4098;
        let mut in2 = ip.sas[1].raw.clone();
        in2.name = "in2".into();
        in2.spi = 8194;
        ip.add_sa(&out2).unwrap();
        ip.add_sa(&in2).unwrap();
        ip.attach_sa("in2", "p").unwrap();
        ip.attach_sa("out2", "p").unwrap();
        assert_eq!(
            ip.attach_sa("out2", "p").unwrap_err(),
            "SA 'out2' is already used by policy 'p'"
        );
        assert_eq!(
            ip.attach_sa("in2", "nope").unwrap_err(),
            "SA 'in2' is already used by policy 'p'"
        );
        let PolicyAction::Protect { sa_out, sa_in } = &ip.policies[0].action else {
            panic!()
        };
        assert_eq!(sa_out, &["out1", "out2"]);
        assert_eq!(sa_in, &["in1", "in2"]);
        // The newest outbound SA protects; both inbound SAs are admitted.
        let mut pl = SaPlacement::default();
        for (k, n) in ["out1", "in1", "out2", "in2"].iter().enumerate() {
            pl.slots.insert(
                n.to_string(),
                SaRef {
                    slot: k as u32,
                    owner: 0,
                },
            );
        }
        let t = ip.tables(&pl, 1, &[]);
        assert_eq!(
            t.policies()[0].action,
            Action::Protect {
                out: Some(SaRef { slot: 2, owner: 0 }),
                inbound: vec![1, 3]
            }
        );
        ip.del_sa("out1").unwrap();
        ip.del_sa("in1").unwrap();
        let PolicyAction::Protect { sa_out, sa_in } = &ip.policies[0].action else {
            panic!()
        };
        assert_eq!(
            (sa_out.as_slice(), sa_in.as_slice()),
            (&["out2".to_string()][..], &["in2".to_string()][..])
        );
        assert_eq!(ip.policies[0].raw.sa, ["out2"]);
        // A lingering inbound SA keeps its SPI and its admission.
        pl.slots.remove("in1");
        pl.lingering.push(Lingering {
            sa: SaRef { slot: 1, owner: 0 },
            spi: 8193,
            policies: vec!["p".into()],
            vtis: vec![],
        });
        let t = ip.tables(&pl, 1, &[]);
        assert_eq!(t.sa_in.get(&8193), Some(&SaRef { slot: 1, owner: 0 }));
        assert_eq!(
            t.policies()[0].action,
            Action::Protect {
                out: Some(SaRef { slot: 2, owner: 0 }),
                inbound: vec![3, 1]
            }
        );
    }

    #[test]
    fn vti_mtu_leaves_room_for_the_worst_case_overhead() {
        let cfg = |suite, v6: bool, natt: bool| {
            let mode = if v6 {
                Mode::Tunnel6 {
                    local: "::1".parse().unwrap(),
                    remote: "::2".parse().unwrap(),
                }
            } else {
                Mode::Tunnel4 {
                    local: "10.0.0.1".parse().unwrap(),
                    remote: "10.0.0.2".parse().unwrap(),
                }
            };
            let mut c = SaConfig::new(300, mode, suite);
            c.natt = natt.then(NatT::default);
            c
        };
        let gcm = Suite::AesGcm(AesKeyLen::Aes128);
        let cbc = Suite::AesCbc(AesKeyLen::Aes128, Integ::HmacSha256_128);
        assert_eq!(esp_overhead_mtu(&cfg(gcm, false, false), 1500), 1446);
        assert_eq!(esp_overhead_mtu(&cfg(cbc, false, false), 1500), 1438);
        assert_eq!(esp_overhead_mtu(&cfg(gcm, true, true), 1500), 1418);
        // Every inner size up to the MTU seals to at most the underlay MTU (and one more
        // octet would not fit): the Vyatta example, 84 octets -> 140 with AES-GCM over IPv4.
        for (suite, v6, natt) in [(gcm, false, false), (cbc, false, true), (cbc, true, false)] {
            let c = cfg(suite, v6, natt);
            let sealed = |inner: usize| {
                let outer = if v6 { 40 } else { 20 } + if natt { 8 } else { 0 };
                let a = suite.pad_align();
                outer + 8 + suite.iv_len() + (inner + 2).div_ceil(a) * a + suite.icv_len()
            };
            let m = esp_overhead_mtu(&c, 1500) as usize;
            assert!(
                sealed(m) <= 1500 && sealed(m + 1) > 1500,
                "{suite:?} {v6} {natt}"
            );
        }
        assert_eq!(20 + 8 + 8 + (84 + 2usize).div_ceil(4) * 4 + 16, 140);
    }
}
