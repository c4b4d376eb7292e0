#!/usr/bin/python3
"""Generate reference tunnel frames with Scapy for dataplane/tests/tunnel_vectors.rs.

Run with the system Python that has Scapy (not a virtualenv's):

    /usr/bin/python3 dataplane/tests/data/make_tunnel_vectors.py > dataplane/tests/data/tunnel_vectors.json

The Rust tests only read the JSON; they never run Python.

Every field the encapsulator chooses (IP id, TTL, TOS, DF, UDP source port, IPv6 flow label,
NVGRE FlowID) is pinned here. Three of them are derived from the inner flow hash, and the
functions below mirror the documented formulas of `dataplane::tunnel` (udp_src_port,
outer_flow_label, nvgre_flow_id); everything else about the frames is Scapy's own building
(lengths, checksums, header layouts).

"encap" vectors: encap(inner) must produce "outer" byte for byte, and decap(outer) must give
back "inner".
"decap" vectors: decap(outer) must give "expect" (hex of the inner packet after RFC 6040
ECN folding), or fail with the drop reason named in "error".
"""

import json
import sys

from scapy.all import ARP, IP, IPv6, TCP, UDP, Dot1Q, Ether, GRE, Raw, ICMP
from scapy.layers.vxlan import VXLAN
from scapy.contrib.geneve import GENEVE, GeneveOptions
from scapy.contrib.etherip import EtherIP

V4_LOCAL, V4_REMOTE = "192.0.2.1", "198.51.100.7"
V6_LOCAL, V6_REMOTE = "2001:db8:ffff::1", "2001:db8:eeee::7"


def udp_src_port(h, lo, hi):
    if lo > hi:
        lo, hi = hi, lo
    span = hi - lo + 1
    h = (h ^ (h << 16)) & 0xFFFFFFFF
    return lo + ((h * span) >> 32)


def outer_flow_label(h):
    return (h ^ (h >> 20)) & 0xFFFFF


def nvgre_flow_id(h):
    b = h.to_bytes(4, "big")
    return b[0] ^ b[1] ^ b[2] ^ b[3]


# --- inner packets -------------------------------------------------------------------------

INNER_V4 = bytes(
    IP(src="10.1.1.1", dst="10.2.2.2", tos=0xB8 | 0b10, flags="DF", id=0x1234, ttl=63)
    / UDP(sport=1234, dport=80)
    / Raw(b"hello through the tunnel")
)
INNER_V4_NODF_NOTECT = bytes(
    IP(src="10.1.1.1", dst="10.2.2.2", tos=0x20, id=0x4321, ttl=9)
    / ICMP(type=8, id=7, seq=1)
    / Raw(b"ping")
)
INNER_V6 = bytes(
    IPv6(src="2001:db8:1::1", dst="2001:db8:2::2", tc=0x28 | 0b01, fl=0x12345, hlim=63)
    / TCP(sport=40000, dport=443, seq=1, flags="S")
    / Raw(b"v6 inner")
)
MAC_A, MAC_B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
INNER_ETH_V4 = bytes(Ether(dst=MAC_B, src=MAC_A) / IP(INNER_V4))
INNER_ETH_VLAN_V6 = bytes(Ether(dst=MAC_B, src=MAC_A) / Dot1Q(vlan=100) / IPv6(INNER_V6))
INNER_ETH_ARP = bytes(
    Ether(dst="ff:ff:ff:ff:ff:ff", src=MAC_A)
    / ARP(op=1, hwsrc=MAC_A, psrc="10.3.3.1", pdst="10.3.3.2")
)


def ip_tos_df(inner, payload):
    """(TOS, DF) the encapsulator reads from the inner packet, as Scapy decodes it."""
    if payload in ("ipv4", "ipv6", "ip"):
        pkt = IP(inner) if inner[0] >> 4 == 4 else IPv6(inner)
    else:
        pkt = Ether(inner)
        if IP in pkt:
            pkt = pkt[IP]
        elif IPv6 in pkt:
            pkt = pkt[IPv6]
        else:
            return 0, None
    if isinstance(pkt, IP):
        return pkt.tos, bool(pkt.flags.DF)
    return pkt.tc, None


def outer_fields(cfg, inner):
    tos_in, df_in = ip_tos_df(inner, cfg["payload"])
    ecn = tos_in & 3
    if cfg["tos"] == "preserve":
        tos = (tos_in & 0xFC) | ecn
    else:
        tos = (cfg["tos"] & 0xFC) | ecn
    df = {"set": True, "clear": False, "propagate": True if df_in is None else df_in}[cfg["df"]]
    return tos, df


def build(cfg, inner):
    """The encapsulated frame for `cfg`, built by Scapy."""
    kind = cfg["kind"]
    v6 = cfg["family"] == "v6"
    h = cfg["inner_hash"]
    is_v6_inner = cfg["payload"] != "ethernet" and inner[0] >> 4 == 6
    ethertype = 0x6558 if cfg["payload"] == "ethernet" else (0x86DD if is_v6_inner else 0x0800)
    if kind in ("gre", "gre-teb", "nvgre"):
        g = dict(proto=ethertype)
        if kind == "nvgre":
            g.update(key_present=1, key=((cfg["key"] << 8) | nvgre_flow_id(h)))
        else:
            if cfg["key"] is not None:
                g.update(key_present=1, key=cfg["key"])
            if cfg["gre_checksum"]:
                g.update(chksum_present=1, offset=0)
            if cfg["gre_sequence"]:
                g.update(seqnum_present=1, sequence_number=cfg["seq"])
        l4 = GRE(**g) / Raw(inner)
        proto = 47
    elif kind in ("vxlan", "vxlan-gpe", "geneve"):
        if kind == "vxlan":
            t = VXLAN(flags=0x08, vni=cfg["key"])
        elif kind == "vxlan-gpe":
            np = {0x0800: 1, 0x86DD: 2, 0x6558: 3}[ethertype]
            t = VXLAN(flags=0x0C, reserved0=0, NextProtocol=np, vni=cfg["key"])
        else:
            opts = [GeneveOptions(classid=c, type=ty, data=d) for (c, ty, d) in cfg["_opts"]]
            optlen = sum(4 + len(d) for (_, _, d) in cfg["_opts"]) // 4
            crit = 1 if any(ty & 0x80 for (_, ty, _) in cfg["_opts"]) else 0
            t = GENEVE(optionlen=optlen, critical=crit, proto=ethertype, vni=cfg["key"],
                       options=opts)
        sport = udp_src_port(h, cfg["sport_min"], cfg["sport_max"])
        u = UDP(sport=sport, dport=cfg["dst_port"])
        if not v6 or cfg["udp6_zero_checksum"]:
            u.chksum = 0
        l4 = u / t / Raw(inner)
        proto = 17
    elif kind == "ipip":
        l4 = Raw(inner)
        proto = 41 if is_v6_inner else 4
    elif kind == "etherip":
        l4 = EtherIP(version=3, reserved=0) / Raw(inner)
        proto = 97
    else:
        raise ValueError(kind)
    tos, df = outer_fields(cfg, inner)
    if v6:
        outer = IPv6(src=V6_LOCAL, dst=V6_REMOTE, tc=tos, fl=outer_flow_label(h),
                     hlim=cfg["ttl"], nh=proto) / l4
    else:
        outer = IP(src=V4_LOCAL, dst=V4_REMOTE, tos=tos, ttl=cfg["ttl"],
                   id=0 if df else cfg["ip_id"], flags="DF" if df else 0, proto=proto) / l4
    return bytes(outer)


def cfg(name, kind, family, inner, payload, **kw):
    c = dict(
        name=name, kind=kind, family=family, payload=payload, key=None,
        sport_min=49152, sport_max=65535,
        dst_port={"vxlan": 4789, "vxlan-gpe": 4790, "geneve": 6081}.get(kind, 0),
        gre_checksum=False, gre_sequence=False, seq=None, udp6_zero_checksum=False,
        ttl=64, tos="preserve", df="propagate", ip_id=0, inner_hash=0x9E3779B9, _opts=[],
    )
    c.update(kw)
    c["local"] = V6_LOCAL if family == "v6" else V4_LOCAL
    c["remote"] = V6_REMOTE if family == "v6" else V4_REMOTE
    c["inner"] = inner
    return c


GENEVE_OPTS = [
    (0x0102, 0x80, bytes([1, 2, 3, 4])),          # critical, known to the receiver
    (0xFFFF, 0x01, b""),                          # non-critical, empty
    (0x0001, 0x02, bytes(range(8))),              # non-critical, two words
]

ENCAP = [
    cfg("gre4-ipv4", "gre", "v4", INNER_V4, "ip"),
    cfg("gre4-ipv6-csum-key-seq", "gre", "v4", INNER_V6, "ip", key=0xDEADBEEF,
        gre_checksum=True, gre_sequence=True, seq=41),
    cfg("gre6-ipv4-key", "gre", "v6", INNER_V4, "ip", key=7, ttl=200),
    cfg("gre4-ipv4-dfclear-fixedtos", "gre", "v4", INNER_V4, "ip", df="clear", ip_id=0xBEEF,
        tos=0x48, ttl=17),
    cfg("gre4-ipv4-noinnerdf-propagate", "gre", "v4", INNER_V4_NODF_NOTECT, "ip",
        ip_id=0x0102, gre_checksum=True),
    cfg("gre6-ipv6-seq", "gre", "v6", INNER_V6, "ip", gre_sequence=True, seq=0xFFFFFFFF),
    cfg("greteb4-eth-v4-key", "gre-teb", "v4", INNER_ETH_V4, "ethernet", key=0x01020304),
    cfg("greteb6-arp", "gre-teb", "v6", INNER_ETH_ARP, "ethernet"),
    cfg("greteb4-vlan-v6-csum", "gre-teb", "v4", INNER_ETH_VLAN_V6, "ethernet",
        gre_checksum=True, df="set"),
    cfg("nvgre4-eth-v4", "nvgre", "v4", INNER_ETH_V4, "ethernet", key=5000),
    cfg("nvgre6-vlan-v6", "nvgre", "v6", INNER_ETH_VLAN_V6, "ethernet", key=0xABCDEF,
        inner_hash=0x12345678),
    cfg("vxlan4-eth-v4", "vxlan", "v4", INNER_ETH_V4, "ethernet", key=5000),
    cfg("vxlan4-arp-pinned-sport", "vxlan", "v4", INNER_ETH_ARP, "ethernet", key=1,
        sport_min=4242, sport_max=4242),
    cfg("vxlan6-vlan-v6", "vxlan", "v6", INNER_ETH_VLAN_V6, "ethernet", key=0xFFFFFF,
        inner_hash=0xCAFEF00D),
    cfg("vxlan6-eth-v4-zero-csum", "vxlan", "v6", INNER_ETH_V4, "ethernet", key=77,
        udp6_zero_checksum=True),
    cfg("vxlan4-custom-port-range", "vxlan", "v4", INNER_ETH_V4, "ethernet", key=10,
        dst_port=8472, sport_min=30000, sport_max=30999, inner_hash=0xFFFFFFFF),
    cfg("gpe4-eth", "vxlan-gpe", "v4", INNER_ETH_V4, "ethernet", key=300),
    cfg("gpe4-ipv4", "vxlan-gpe", "v4", INNER_V4, "ip", key=301),
    cfg("gpe6-ipv6", "vxlan-gpe", "v6", INNER_V6, "ipv6", key=302),
    cfg("geneve4-eth-opts", "geneve", "v4", INNER_ETH_V4, "ethernet", key=0x123456,
        _opts=GENEVE_OPTS),
    cfg("geneve6-ipv4", "geneve", "v6", INNER_V4, "ip", key=9),
    cfg("geneve4-ipv6-opts", "geneve", "v4", INNER_V6, "ipv6", key=10, _opts=GENEVE_OPTS[1:]),
    cfg("geneve6-arp", "geneve", "v6", INNER_ETH_ARP, "ethernet", key=11),
    cfg("ipip-4in4", "ipip", "v4", INNER_V4, "ipv4"),
    cfg("ipip-6in4", "ipip", "v4", INNER_V6, "ipv6"),
    cfg("ipip-4in6", "ipip", "v6", INNER_V4, "ipv4"),
    cfg("ipip-6in6", "ipip", "v6", INNER_V6, "ipv6", tos=0xE0),
    cfg("ipip-any-4in4-dfclear", "ipip", "v4", INNER_V4_NODF_NOTECT, "ip", ip_id=0xFFFF),
    cfg("etherip4-eth-v4", "etherip", "v4", INNER_ETH_V4, "ethernet"),
    cfg("etherip6-arp", "etherip", "v6", INNER_ETH_ARP, "ethernet"),
]


def with_ecn(inner_ip_bytes, ecn):
    """The inner IP packet with its ECN field set to `ecn` (checksum recomputed by Scapy)."""
    if inner_ip_bytes[0] >> 4 == 4:
        p = IP(inner_ip_bytes)
        p.tos = (p.tos & 0xFC) | ecn
        del p.chksum
        return bytes(p)
    p = IPv6(inner_ip_bytes)
    p.tc = (p.tc & 0xFC) | ecn
    return bytes(p)


def v4_outer(l4, proto, tos=0):
    return bytes(IP(src=V4_REMOTE, dst=V4_LOCAL, tos=tos, ttl=60, id=0, flags="DF",
                    proto=proto) / l4)


def v6_outer(l4, nh, tc=0):
    return bytes(IPv6(src=V6_REMOTE, dst=V6_LOCAL, tc=tc, hlim=60, nh=nh) / l4)


CE, ECT0, ECT1 = 3, 2, 1
INNER_V4_ECT0 = INNER_V4  # ECN field 0b10
INNER_ETH = Ether(dst=MAC_B, src=MAC_A)


def dcfg(name, kind, family, outer, payload, expect=None, error=None, **kw):
    c = cfg(name, kind, family, b"", payload, **kw)
    del c["inner"]
    c["outer"] = outer
    c["expect"] = expect
    c["error"] = error
    return c


DECAP = [
    # RFC 6040: outer CE over ECT(0) inner -> inner CE, IPv4 checksum fixed.
    dcfg("ipip4-ce-over-ect0", "ipip", "v4", v4_outer(Raw(INNER_V4_ECT0), 4, tos=CE), "ipv4",
         expect=with_ecn(INNER_V4_ECT0, CE)),
    # Outer ECT(1) over ECT(0) -> ECT(1).
    dcfg("gre6-ect1-over-ect0", "gre", "v6",
         v6_outer(GRE(proto=0x0800) / Raw(INNER_V4_ECT0), 47, tc=ECT1), "ip",
         expect=with_ecn(INNER_V4_ECT0, ECT1)),
    # Through Ethernet + VLAN to an inner IPv6 (ECT(1)): outer CE -> CE.
    dcfg("vxlan4-ce-through-vlan", "vxlan", "v4",
         v4_outer(UDP(sport=50000, dport=4789, chksum=0) / VXLAN(flags=0x08, vni=5000)
                  / Raw(INNER_ETH_VLAN_V6), 17, tos=CE), "ethernet", key=5000,
         expect=bytes(INNER_ETH / Dot1Q(vlan=100) / IPv6(with_ecn(INNER_V6, CE)))),
    # Outer CE over a Not-ECT inner: drop.
    dcfg("gre4-ce-over-notect", "gre", "v4",
         v4_outer(GRE(proto=0x0800) / Raw(INNER_V4_NODF_NOTECT), 47, tos=CE), "ip",
         error="ecn-ce-on-not-ect"),
    # Outer CE over a non-IP (ARP) frame: drop.
    dcfg("etherip4-ce-over-arp", "etherip", "v4",
         v4_outer(EtherIP() / Raw(INNER_ETH_ARP), 97, tos=CE), "ethernet",
         error="ecn-ce-on-not-ect"),
    # Outer Ethernet padding after the outer packet is trimmed away.
    dcfg("ipip6-trailing-bytes", "ipip", "v6", v6_outer(Raw(INNER_V6), 41) + b"\0" * 6, "ipv6",
         expect=INNER_V6),
    # Inner IPv4 followed by junk inside the outer payload: trimmed to the inner length.
    dcfg("gre4-inner-shorter-than-outer", "gre", "v4",
         v4_outer(GRE(proto=0x0800) / Raw(INNER_V4 + b"junk"), 47), "ip", expect=INNER_V4),
    # Malformed headers, each with its reason.
    dcfg("gre-routing-bit", "gre", "v4",
         v4_outer(GRE(routing_present=1, proto=0x0800, chksum=0, offset=0) / Raw(INNER_V4), 47),
         "ip", error="gre-routing-bit"),
    dcfg("gre-version-1", "gre", "v4",
         v4_outer(GRE(version=1, proto=0x0800) / Raw(INNER_V4), 47), "ip",
         error="gre-bad-version"),
    dcfg("gre-strict-source-route", "gre", "v4",
         v4_outer(GRE(strict_route_source=1, proto=0x0800) / Raw(INNER_V4), 47), "ip",
         error="gre-reserved-bits"),
    dcfg("gre-recursion-high-bit", "gre", "v4",
         v4_outer(GRE(recursion_control=4, proto=0x0800) / Raw(INNER_V4), 47), "ip",
         error="gre-reserved-bits"),
    # RFC 2784 §2.3: bits 6-12 are ignored on receipt.
    dcfg("gre-ignored-bits", "gre", "v4",
         v4_outer(GRE(recursion_control=3, flags=0x1F, proto=0x0800) / Raw(INNER_V4), 47), "ip",
         expect=INNER_V4),
    dcfg("gre-bad-checksum", "gre", "v4",
         v4_outer(GRE(chksum_present=1, chksum=0x1234, offset=0, proto=0x0800)
                  / Raw(INNER_V4), 47), "ip", error="gre-bad-checksum"),
    dcfg("gre-mpls-protocol", "gre", "v4",
         v4_outer(GRE(proto=0x8847) / Raw(INNER_V4), 47), "ip", error="gre-bad-protocol"),
    dcfg("nvgre-with-seq", "nvgre", "v4",
         v4_outer(GRE(key_present=1, key=5000 << 8, seqnum_present=1, sequence_number=1,
                      proto=0x6558) / Raw(INNER_ETH_ARP), 47), "ethernet", key=5000,
         error="nvgre-bad-header"),
    dcfg("vxlan-i-clear", "vxlan", "v4",
         v4_outer(UDP(sport=50000, dport=4789, chksum=0) / VXLAN(flags=0x00, vni=5)
                  / Raw(INNER_ETH_ARP), 17), "ethernet", key=5, error="vxlan-i-flag-clear"),
    dcfg("vxlan6-bad-udp-checksum", "vxlan", "v6",
         v6_outer(UDP(sport=50000, dport=4789, chksum=0x1234) / VXLAN(flags=0x08, vni=5)
                  / Raw(INNER_ETH_ARP), 17), "ethernet", key=5, error="udp-bad-checksum"),
    dcfg("vxlan6-zero-udp-checksum-refused", "vxlan", "v6",
         v6_outer(UDP(sport=50000, dport=4789, chksum=0) / VXLAN(flags=0x08, vni=5)
                  / Raw(INNER_ETH_ARP), 17), "ethernet", key=5, error="udp-bad-checksum"),
    dcfg("gpe-nsh", "vxlan-gpe", "v4",
         v4_outer(UDP(sport=50000, dport=4790, chksum=0)
                  / VXLAN(flags=0x0C, NextProtocol=4, vni=5) / Raw(INNER_ETH_ARP), 17),
         "ethernet", key=5, error="vxlan-gpe-bad-next-protocol"),
    dcfg("gpe-version-1", "vxlan-gpe", "v4",
         v4_outer(UDP(sport=50000, dport=4790, chksum=0)
                  / VXLAN(flags=0x1C, NextProtocol=3, vni=5) / Raw(INNER_ETH_ARP), 17),
         "ethernet", key=5, error="vxlan-gpe-bad-version"),
    dcfg("gpe-oam", "vxlan-gpe", "v4",
         v4_outer(UDP(sport=50000, dport=4790, chksum=0)
                  / VXLAN(flags=0x0D, NextProtocol=3, vni=5) / Raw(INNER_ETH_ARP), 17),
         "ethernet", key=5, error="vxlan-gpe-oam"),
    dcfg("geneve-unknown-critical", "geneve", "v4",
         v4_outer(UDP(sport=50000, dport=6081, chksum=0)
                  / GENEVE(optionlen=2, critical=1, proto=0x6558, vni=5,
                           options=[GeneveOptions(classid=0x0103, type=0x81,
                                                  data=b"\0\0\0\0")])
                  / Raw(INNER_ETH_ARP), 17), "ethernet", key=5, error="geneve-critical-option"),
    dcfg("geneve-oam", "geneve", "v4",
         v4_outer(UDP(sport=50000, dport=6081, chksum=0)
                  / GENEVE(optionlen=0, oam=1, proto=0x6558, vni=5) / Raw(INNER_ETH_ARP), 17),
         "ethernet", key=5, error="geneve-oam"),
    dcfg("geneve-version-1", "geneve", "v4",
         v4_outer(UDP(sport=50000, dport=6081, chksum=0)
                  / GENEVE(version=1, optionlen=0, proto=0x6558, vni=5)
                  / Raw(INNER_ETH_ARP), 17), "ethernet", key=5, error="geneve-bad-version"),
    dcfg("geneve-options-beyond", "geneve", "v4",
         v4_outer(UDP(sport=50000, dport=6081, chksum=0)
                  / GENEVE(optionlen=40, proto=0x6558, vni=5) / Raw(INNER_ETH_ARP), 17),
         "ethernet", key=5, error="geneve-options-beyond"),
    dcfg("geneve-bad-tlv", "geneve", "v4",
         v4_outer(UDP(sport=50000, dport=6081, chksum=0)
                  / GENEVE(optionlen=1, proto=0x6558, vni=5,
                           options=[GeneveOptions(classid=1, type=1, length=3, data=b"")])
                  / Raw(INNER_ETH_ARP), 17), "ethernet", key=5, error="geneve-bad-option"),
    dcfg("geneve-mpls", "geneve", "v4",
         v4_outer(UDP(sport=50000, dport=6081, chksum=0)
                  / GENEVE(optionlen=0, proto=0x8847, vni=5) / Raw(INNER_ETH_ARP), 17),
         "ethernet", key=5, error="geneve-bad-protocol"),
    dcfg("etherip-version-4", "etherip", "v4",
         v4_outer(EtherIP(version=4) / Raw(INNER_ETH_ARP), 97), "ethernet",
         error="etherip-bad-version"),
    dcfg("ipip-4in4-carrying-v6", "ipip", "v4", v4_outer(Raw(INNER_V6), 4), "ipv4",
         error="ipip-bad-inner"),
    dcfg("ipip-6in4-on-4in4-tunnel", "ipip", "v4", v4_outer(Raw(INNER_V6), 41), "ipv4",
         error="ipip-bad-inner"),
    dcfg("ipip-inner-truncated", "ipip", "v4", v4_outer(Raw(INNER_V4[:-3]), 4), "ipv4",
         error="inner-truncated"),
    dcfg("vxlan-inner-truncated", "vxlan", "v4",
         v4_outer(UDP(sport=50000, dport=4789, chksum=0) / VXLAN(flags=0x08, vni=5)
                  / Raw(INNER_ETH_ARP[:10]), 17), "ethernet", key=5, error="inner-truncated"),
    dcfg("udp-other-port", "vxlan", "v4",
         v4_outer(UDP(sport=50000, dport=53, chksum=0) / Raw(b"\0" * 30), 17), "ethernet",
         key=5, error="tunnel-no-match"),
]


def out(c):
    d = {k: v for k, v in c.items() if not k.startswith("_")}
    d["geneve_options"] = b"".join(
        bytes(GeneveOptions(classid=cl, type=ty, data=da)) for (cl, ty, da) in c["_opts"]
    ).hex()
    for k in ("inner", "outer", "expect"):
        if isinstance(d.get(k), (bytes, bytearray)):
            d[k] = d[k].hex()
    return d


def main():
    encap = []
    for c in ENCAP:
        c["outer"] = build(c, c["inner"])
        encap.append(out(c))
    decap = [out(c) for c in DECAP]
    json.dump({"encap": encap, "decap": decap}, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
