//! Manual SAs and security policies: validation of `[ipsec]` (every refusal names the field
//! and the bad value) into the objects the controller installs, and the policy table the
//! workers read.

use crate::config::{RawIpsec, RawPolicy, RawSa};
use crate::parse::{self, PortRange, Prefix};
use dataplane::esp::{AesKeyLen, Integ, Lifetime, Mode, NatT, SaConfig, Suite};
use dataplane::outer::{DfPolicy, OuterPolicy, TosPolicy};
use dataplane::tables::ipsec::{Action, IpsecTables, Policy, SaRef};
use std::collections::HashMap;
use std::net::IpAddr;

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

/// Everything IPsec in the running config.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct IpsecState {
    pub default_discard: bool,
    pub grace_secs: u32,
    pub sas: Vec<SaSpec>,
    pub policies: Vec<PolicySpec>,
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
            "hmac-sha512-256" | "hmac-sha2-512-256" | "sha512" => Ok(Integ::HmacSha512_256),
            "hmac-md5-96" | "md5" => Err(format!(
                "{}: '{s}': MD5 is not supported (insecure)",
                f("integrity")
            )),
            "hmac-sha384-192" | "sha384" => Err(format!(
                "{}: '{s}': HMAC-SHA-384-192 is not implemented yet",
                f("integrity")
            )),
            _ => Err(format!(
                "{}: '{s}': unknown (hmac-sha1-96, hmac-sha256-128, hmac-sha512-256)",
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
    if let Some(w) = r.replay_window {
        // 0 turns anti-replay off; the window itself has a floor of 64.
        if w != 0 && !(64..=4096).contains(&w) || w % 64 != 0 {
            return Err(format!(
                "{}: {w}: must be 0 (off) or a multiple of 64 in 64..=4096",
                f("replay_window")
            ));
        }
        if w == 0 && r.esn {
            // ESN infers the high half of the sequence number from the window.
            return Err(format!(
                "{}: 0 (off) cannot be combined with esn = true",
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
    outer.df = match r.df.as_deref().unwrap_or("propagate") {
        "propagate" => DfPolicy::Propagate,
        "set" => DfPolicy::Set,
        "clear" => DfPolicy::Clear,
        d => {
            return Err(format!(
                "{}: '{d}': must be propagate, set or clear",
                f("df")
            ))
        }
    };
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
        if !raw.vti.is_empty() {
            return Err("ipsec.vti: route-based VTI interfaces are not implemented yet".into());
        }
        Ok(st)
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
        let p = policy_spec(i, r, &self.sas, iface)?;
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

    /// Remove an SA; refused while a policy names it.
    pub fn del_sa(&mut self, name: &str) -> Result<(), String> {
        let Some(i) = self.sas.iter().position(|s| s.name == name) else {
            return Err(format!("no SA named '{name}'"));
        };
        if let Some(p) = self.policies.iter().find(|p| match &p.action {
            PolicyAction::Protect { sa_out, sa_in } => {
                sa_out.iter().chain(sa_in).any(|n| n == name)
            }
            _ => false,
        }) {
            return Err(format!(
                "SA '{name}' is used by policy '{}': delete or change the policy first",
                p.name
            ));
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

    /// The workers' view, given where each SA (by name) is installed.
    pub fn tables(&self, slots: &HashMap<String, SaRef>, workers: u16) -> IpsecTables {
        let slot = |n: &String| slots.get(n).copied();
        let policies = self
            .policies
            .iter()
            .enumerate()
            .map(|(id, p)| Policy {
                id: id as u32,
                priority: p.priority,
                out: p.out,
                inb: p.inb,
                src: (p.src.addr, p.src.len),
                dst: (p.dst.addr, p.dst.len),
                proto: p.proto,
                sport: (p.sport.lo, p.sport.hi),
                dport: (p.dport.lo, p.dport.hi),
                icmp_type: p.icmp_type,
                icmp_code: p.icmp_code,
                scope: p.scope.map(|s| s as u16),
                action: match &p.action {
                    // The newest installed outbound SA protects; the rest stay for the rekey.
                    PolicyAction::Protect { sa_out, sa_in } => Action::Protect {
                        out: sa_out.iter().rev().find_map(slot),
                        inbound: sa_in.iter().filter_map(slot).map(|r| r.slot).collect(),
                    },
                    PolicyAction::Bypass => Action::Bypass,
                    PolicyAction::Discard => Action::Discard,
                },
            })
            .collect();
        let sa_in = self
            .sas
            .iter()
            .filter(|s| s.inbound)
            .filter_map(|s| slot(&s.name).map(|r| (s.cfg.spi, r)))
            .collect();
        IpsecTables::new(policies, self.default_discard, sa_in, workers)
    }
}
