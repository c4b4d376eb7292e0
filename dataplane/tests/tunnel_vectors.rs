//! Byte-exact checks of encapsulation and decapsulation against frames Scapy built
//! (`tests/data/make_tunnel_vectors.py` wrote `tests/data/tunnel_vectors.json`; this test only
//! reads the JSON).

use dataplane::outer::{DfPolicy, OuterPolicy, TosPolicy};
use dataplane::packet::{HeapPacket, Packet};
use dataplane::stats::DropReason;
use dataplane::tunnel::{
    decap, decap_parse, encap, DecapConfig, Endpoints, GreSeqState, Payload, TunnelEncap,
    TunnelKind,
};
use dataplane::wire::geneve::GeneveOptionBuf;
use std::net::IpAddr;

/// Just enough JSON for the vector file: objects, arrays, strings without escapes beyond
/// `\"` and `\\`, non-negative integers, booleans and null.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(u64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) {
        self.ws();
        assert_eq!(
            self.s[self.i], c,
            "JSON: expected '{}' at {}",
            c as char, self.i
        );
        self.i += 1;
    }
    fn string(&mut self) -> String {
        self.eat(b'"');
        let mut out = Vec::new();
        loop {
            let c = self.s[self.i];
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    out.push(self.s[self.i]);
                    self.i += 1;
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out).unwrap()
    }
    fn value(&mut self) -> Json {
        self.ws();
        match self.s[self.i] {
            b'{' => {
                self.i += 1;
                let mut v = Vec::new();
                self.ws();
                if self.s[self.i] == b'}' {
                    self.i += 1;
                    return Json::Obj(v);
                }
                loop {
                    let k = self.string();
                    self.eat(b':');
                    v.push((k, self.value()));
                    self.ws();
                    self.i += 1;
                    if self.s[self.i - 1] == b'}' {
                        return Json::Obj(v);
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut v = Vec::new();
                self.ws();
                if self.s[self.i] == b']' {
                    self.i += 1;
                    return Json::Arr(v);
                }
                loop {
                    v.push(self.value());
                    self.ws();
                    self.i += 1;
                    if self.s[self.i - 1] == b']' {
                        return Json::Arr(v);
                    }
                }
            }
            b'"' => Json::Str(self.string()),
            b't' => {
                self.i += 4;
                Json::Bool(true)
            }
            b'f' => {
                self.i += 5;
                Json::Bool(false)
            }
            b'n' => {
                self.i += 4;
                Json::Null
            }
            _ => {
                let st = self.i;
                while self.s[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                Json::Num(
                    std::str::from_utf8(&self.s[st..self.i])
                        .unwrap()
                        .parse()
                        .unwrap(),
                )
            }
        }
    }
}

impl Json {
    fn get(&self, k: &str) -> &Json {
        match self {
            Json::Obj(v) => {
                &v.iter()
                    .find(|(n, _)| n == k)
                    .unwrap_or_else(|| panic!("{k}"))
                    .1
            }
            _ => panic!("not an object"),
        }
    }
    fn str(&self, k: &str) -> &str {
        match self.get(k) {
            Json::Str(s) => s,
            o => panic!("{k}: {o:?}"),
        }
    }
    fn num(&self, k: &str) -> Option<u64> {
        match self.get(k) {
            Json::Num(n) => Some(*n),
            Json::Null => None,
            o => panic!("{k}: {o:?}"),
        }
    }
    fn flag(&self, k: &str) -> bool {
        self.get(k) == &Json::Bool(true)
    }
    fn hex(&self, k: &str) -> Option<Vec<u8>> {
        match self.get(k) {
            Json::Str(s) => Some(
                (0..s.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                    .collect(),
            ),
            _ => None,
        }
    }
    fn list(&self, k: &str) -> &[Json] {
        match self.get(k) {
            Json::Arr(v) => v,
            _ => panic!("{k}"),
        }
    }
}

fn vectors() -> Json {
    let text = include_str!("data/tunnel_vectors.json");
    Parser {
        s: text.as_bytes(),
        i: 0,
    }
    .value()
}

fn kind(s: &str) -> TunnelKind {
    *TunnelKind::ALL
        .iter()
        .find(|k| k.name() == s)
        .unwrap_or_else(|| panic!("kind {s}"))
}

fn tunnel(v: &Json) -> TunnelEncap {
    let k = kind(v.str("kind"));
    let endpoints = match (
        v.str("local").parse::<IpAddr>().unwrap(),
        v.str("remote").parse::<IpAddr>().unwrap(),
    ) {
        (IpAddr::V4(local), IpAddr::V4(remote)) => Endpoints::V4 { local, remote },
        (IpAddr::V6(local), IpAddr::V6(remote)) => Endpoints::V6 { local, remote },
        _ => panic!("mixed families"),
    };
    let mut t = TunnelEncap::new(k, endpoints);
    t.payload = match v.str("payload") {
        "ethernet" => Payload::Ethernet,
        "ipv4" => Payload::Ipv4,
        "ipv6" => Payload::Ipv6,
        "ip" => Payload::Ip,
        p => panic!("payload {p}"),
    };
    t.key = v.num("key").map(|n| n as u32);
    t.sport_min = v.num("sport_min").unwrap() as u16;
    t.sport_max = v.num("sport_max").unwrap() as u16;
    t.dst_port = v.num("dst_port").unwrap() as u16;
    t.gre_checksum = v.flag("gre_checksum");
    t.gre_sequence = v.flag("gre_sequence");
    t.udp6_zero_checksum = v.flag("udp6_zero_checksum");
    t.outer = OuterPolicy {
        ttl: v.num("ttl").unwrap() as u8,
        tos: match v.get("tos") {
            Json::Num(n) => TosPolicy::Fixed(*n as u8),
            _ => TosPolicy::Preserve,
        },
        df: match v.str("df") {
            "set" => DfPolicy::Set,
            "clear" => DfPolicy::Clear,
            _ => DfPolicy::Propagate,
        },
    };
    t.geneve_options = GeneveOptionBuf::new(&v.hex("geneve_options").unwrap()).unwrap();
    t.validate()
        .unwrap_or_else(|e| panic!("{}: {e}", v.str("name")));
    t
}

const KNOWN: &[(u16, u8)] = &[(0x0102, 0x80)];

fn decap_config(t: &TunnelEncap) -> DecapConfig<'static> {
    let mut c = DecapConfig {
        geneve_known_options: KNOWN,
        udp6_zero_checksum: t.udp6_zero_checksum,
        ..DecapConfig::default()
    };
    match t.kind {
        TunnelKind::Vxlan => c.vxlan_port = t.dst_port,
        TunnelKind::VxlanGpe => c.vxlan_gpe_port = t.dst_port,
        TunnelKind::Geneve => c.geneve_port = t.dst_port,
        _ => {}
    }
    c
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn encap_matches_scapy_and_decap_restores_inner() {
    let all = vectors();
    let list = all.list("encap");
    assert!(list.len() >= 25);
    let mut kinds = std::collections::HashSet::new();
    for v in list {
        let name = v.str("name");
        let t = tunnel(v);
        kinds.insert((t.kind, t.endpoints.is_v6()));
        let inner = v.hex("inner").unwrap();
        let want = v.hex("outer").unwrap();
        let mut p = HeapPacket::from_frame(&inner);
        encap(
            &mut p,
            &t,
            v.num("inner_hash").unwrap() as u32,
            v.num("seq").map(|s| s as u32),
            v.num("ip_id").unwrap() as u16,
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            hexs(p.data()),
            hexs(&want),
            "{name}: encap differs from Scapy"
        );
        assert_eq!(p.len(), t.overhead() + inner.len(), "{name}: overhead");

        // The peer decapsulates what we sent: its local is our remote.
        let info = decap_parse(&want, &decap_config(&t)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(info.header_len, t.overhead(), "{name}");
        let (ours, theirs) = match t.endpoints {
            Endpoints::V4 { local, remote } => (IpAddr::V4(local), IpAddr::V4(remote)),
            Endpoints::V6 { local, remote } => (IpAddr::V6(local), IpAddr::V6(remote)),
        };
        assert_eq!((info.key.local, info.key.remote), (theirs, ours), "{name}");
        match t.kind {
            TunnelKind::Nvgre => assert_eq!(info.key.nvgre_vsid(), t.key, "{name}"),
            TunnelKind::Ipip | TunnelKind::Etherip => assert_eq!(info.key.id, None),
            _ => assert_eq!(info.key.id, t.key, "{name}"),
        }
        if t.kind.is_udp() {
            assert_eq!((info.key.proto, info.key.port), (17, t.dst_port), "{name}");
        }
        let mut seq = GreSeqState::default();
        let mut q = HeapPacket::from_frame(&want);
        decap(&mut q, &info, &t, Some(&mut seq)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(hexs(q.data()), hexs(&inner), "{name}: decap");
        if t.gre_sequence {
            assert_eq!(seq.last(), v.num("seq").map(|s| s as u32), "{name}");
            // The same packet again is out of order.
            let mut q = HeapPacket::from_frame(&want);
            assert_eq!(
                decap(&mut q, &info, &t, Some(&mut seq)),
                Err(DropReason::GreSequence),
                "{name}"
            );
            assert_eq!(q.data(), &want[..], "{name}: untouched on drop");
        }
    }
    for k in TunnelKind::ALL {
        for v6 in [false, true] {
            assert!(kinds.contains(&(k, v6)), "no vector for {k:?} v6={v6}");
        }
    }
}

#[test]
fn decap_of_scapy_frames() {
    let all = vectors();
    for v in all.list("decap") {
        let name = v.str("name");
        let t = tunnel(v);
        let outer = v.hex("outer").unwrap();
        let mut p = HeapPacket::from_frame(&outer);
        let r = decap_parse(&outer, &decap_config(&t))
            .and_then(|info| decap(&mut p, &info, &t, Some(&mut GreSeqState::default())));
        match (v.get("error"), v.hex("expect")) {
            (Json::Str(e), _) => {
                assert_eq!(r.map_err(|d| d.name()), Err(e.as_str()), "{name}");
                assert_eq!(p.data(), &outer[..], "{name}: untouched on drop");
            }
            (_, Some(want)) => {
                r.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(hexs(p.data()), hexs(&want), "{name}");
            }
            _ => panic!("{name}: neither error nor expect"),
        }
    }
}
