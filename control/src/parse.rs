//! Parsing of the value syntaxes shared by the config file and `ferroctl` arguments, so both
//! accept exactly the same text and refuse it with the same words.

use std::net::IpAddr;

/// An IP prefix with its host bits cleared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// Parse `addr/len` or a bare address (/32 or /128). Host bits are cleared.
    pub fn parse(s: &str) -> Result<Prefix, String> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not an IP prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            None => max,
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| format!("'{s}': prefix length must be 0..={max}"))?,
        };
        Ok(Prefix {
            addr: mask(addr, len),
            len,
        })
    }

    /// The all-addresses prefix of a family.
    pub fn any(v6: bool) -> Prefix {
        if v6 {
            Prefix {
                addr: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                len: 0,
            }
        } else {
            Prefix {
                addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                len: 0,
            }
        }
    }

    pub fn is_v6(&self) -> bool {
        self.addr.is_ipv6()
    }

    /// True if `a` is inside the prefix.
    pub fn contains(&self, a: IpAddr) -> bool {
        a.is_ipv6() == self.addr.is_ipv6() && mask(a, self.len) == self.addr
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Clear the host bits of `a` beyond `len`.
pub fn mask(a: IpAddr, len: u8) -> IpAddr {
    match a {
        IpAddr::V4(v) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len as u32)
            };
            IpAddr::V4((u32::from(v) & m).into())
        }
        IpAddr::V6(v) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len as u32)
            };
            IpAddr::V6((u128::from(v) & m).into())
        }
    }
}

/// An interface address: the address itself and the length of its subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct IfAddr {
    pub addr: IpAddr,
    pub len: u8,
}

impl IfAddr {
    /// Parse `addr/len` (the length is required: it defines the connected subnet).
    pub fn parse(s: &str) -> Result<IfAddr, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' needs a prefix length, e.g. 192.0.2.1/24"))?;
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("'{s}' is not an address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = l
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|&l| l <= max)
            .ok_or_else(|| format!("'{s}': prefix length must be 0..={max}"))?;
        if addr.is_unspecified() || addr.is_multicast() {
            return Err(format!("'{s}' cannot be an interface address"));
        }
        Ok(IfAddr { addr, len })
    }

    /// The connected subnet.
    pub fn subnet(&self) -> Prefix {
        Prefix {
            addr: mask(self.addr, self.len),
            len: self.len,
        }
    }
}

impl std::fmt::Display for IfAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// Parse a plain IP address.
pub fn ip(s: &str) -> Result<IpAddr, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("'{s}' is not an IP address"))
}

/// An inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub const ANY: PortRange = PortRange { lo: 0, hi: 65535 };

    /// `N`, `N-M` or `any`.
    pub fn parse(s: &str) -> Result<PortRange, String> {
        let s = s.trim();
        if s == "any" || s == "*" {
            return Ok(PortRange::ANY);
        }
        let p = |x: &str| {
            x.trim()
                .parse::<u16>()
                .map_err(|_| format!("'{s}' is not a port or range"))
        };
        let r = match s.split_once('-') {
            Some((a, b)) => PortRange {
                lo: p(a)?,
                hi: p(b)?,
            },
            None => {
                let v = p(s)?;
                PortRange { lo: v, hi: v }
            }
        };
        if r.lo > r.hi {
            return Err(format!("'{s}': range start is above its end"));
        }
        Ok(r)
    }

    pub fn is_any(&self) -> bool {
        *self == PortRange::ANY
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_any() {
            f.write_str("any")
        } else if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

const PROTOCOLS: &[(&str, u8)] = &[
    ("icmp", 1),
    ("ipip", 4),
    ("ipv4", 4),
    ("tcp", 6),
    ("udp", 17),
    ("ipv6", 41),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("icmpv6", 58),
    ("ipv6-icmp", 58),
    ("etherip", 97),
    ("sctp", 132),
];

/// An IP protocol by name or number; `any` is `None`.
pub fn protocol(s: &str) -> Result<Option<u8>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("any") || s == "*" {
        return Ok(None);
    }
    if let Ok(n) = s.parse::<u8>() {
        return Ok(Some(n));
    }
    PROTOCOLS
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(s))
        .map(|&(_, v)| Some(v))
        .ok_or_else(|| format!("'{s}' is not a protocol name or number 0..=255"))
}

/// The name of a protocol number, for display.
pub fn protocol_name(p: Option<u8>) -> String {
    match p {
        None => "any".into(),
        Some(n) => PROTOCOLS
            .iter()
            .find(|&&(_, v)| v == n)
            .map(|(name, _)| name.to_string())
            .unwrap_or_else(|| n.to_string()),
    }
}

/// Hex bytes (optionally `0x`-prefixed, `:` or space separated).
pub fn hex(s: &str) -> Result<Vec<u8>, String> {
    let t: String = s
        .trim()
        .trim_start_matches("0x")
        .chars()
        .filter(|c| !matches!(c, ':' | ' ' | '_'))
        .collect();
    if !t.len().is_multiple_of(2) {
        return Err("hex has an odd number of digits".into());
    }
    (0..t.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(&t[i..i + 2], 16)
                .map_err(|_| format!("'{}' is not hex", &t[i..i + 2]))
        })
        .collect()
}

/// `port:queue` from a worker's rx list.
pub fn port_queue(s: &str) -> Result<(String, u16), String> {
    let (p, q) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("'{s}' is not port:queue (e.g. \"wan:0\")"))?;
    let q = q
        .parse::<u16>()
        .map_err(|_| format!("'{s}': queue '{q}' is not a number"))?;
    Ok((p.to_string(), q))
}

/// An outer DF setting as written (`propagate`, the default, `set` or `clear`); the error
/// is the text after the field name.
pub fn df_policy(s: Option<&str>) -> Result<dataplane::outer::DfPolicy, String> {
    use dataplane::outer::DfPolicy;
    match s.unwrap_or("propagate") {
        "propagate" => Ok(DfPolicy::Propagate),
        "set" => Ok(DfPolicy::Set),
        "clear" => Ok(DfPolicy::Clear),
        d => Err(format!("'{d}': must be propagate, set or clear")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(
            Prefix::parse("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(Prefix::parse("10.1.2.3").unwrap().len, 32);
        assert_eq!(
            Prefix::parse("2001:db8::1/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert!(Prefix::parse("10.0.0.0/33").is_err());
        assert!(Prefix::parse("10.0.0/8").is_err());
        assert!(Prefix::parse("10.0.0.0/8")
            .unwrap()
            .contains("10.9.9.9".parse().unwrap()));
        assert!(!Prefix::parse("10.0.0.0/8")
            .unwrap()
            .contains("::1".parse().unwrap()));
        assert_eq!(Prefix::parse("0.0.0.0/0").unwrap(), Prefix::any(false));
    }

    #[test]
    fn interface_addresses() {
        let a = IfAddr::parse("192.0.2.1/24").unwrap();
        assert_eq!(a.subnet().to_string(), "192.0.2.0/24");
        assert!(IfAddr::parse("192.0.2.1")
            .unwrap_err()
            .contains("prefix length"));
        assert!(IfAddr::parse("0.0.0.0/0").is_err());
        assert!(IfAddr::parse("224.0.0.1/4").is_err());
    }

    #[test]
    fn ranges_protocols_hex() {
        assert_eq!(
            PortRange::parse("1000-2000").unwrap(),
            PortRange { lo: 1000, hi: 2000 }
        );
        assert_eq!(
            PortRange::parse("53").unwrap(),
            PortRange { lo: 53, hi: 53 }
        );
        assert!(PortRange::parse("20-10").is_err());
        assert!(PortRange::parse("70000").is_err());
        assert_eq!(protocol("udp").unwrap(), Some(17));
        assert_eq!(protocol("47").unwrap(), Some(47));
        assert_eq!(protocol("any").unwrap(), None);
        assert!(protocol("foo").is_err());
        assert_eq!(protocol_name(Some(97)), "etherip");
        assert_eq!(hex("0xdeadBEEF").unwrap(), vec![0xde, 0xad, 0xbe, 0xef]);
        assert!(hex("abc").is_err());
        assert!(hex("zz").is_err());
        assert_eq!(port_queue("wan:1").unwrap(), ("wan".into(), 1));
        assert!(port_queue("wan").is_err());
    }
}
