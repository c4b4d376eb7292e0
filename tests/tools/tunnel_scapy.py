#!/usr/bin/python3
"""Overlay tunnels with Scapy (and tshark) as the oracles, for tests/tests/tunnel_*.rs.

  tunnel_scapy.py gen    SPEC.json DIR   writes DIR/under_in.pcap (tunnel packets from the peer,
                                         built by Scapy, for ferrogate to decapsulate),
                                         DIR/lan_in.pcap (IP packets routed into the L3
                                         tunnels), DIR/l2_in.pcap (VLAN-tagged frames for the
                                         L2 tunnels' cross-connects) and prints one JSON object:
                                         per tunnel the packets and inner bytes it must count
                                         {"decap": n, "decap_bytes": b, "encap": n, "encap_bytes": b}
  tunnel_scapy.py verify SPEC.json DIR   checks ferrogate's DIR/under_tx.pcap (encapsulated),
                                         DIR/lan_tx.pcap (decapsulated, routed) and
                                         DIR/l2_tx.pcap (decapsulated, tagged) with Scapy and
                                         the encapsulated frames again with tshark's dissection;
                                         prints one JSON object {"tunnels": {name: {"decap_ok":
                                         n, "encap_ok": n}}, "tshark_ok": n, "errors": [...]};
                                         exit 1 on any error.
  tunnel_scapy.py malformed SPEC.json DIR
                                         writes DIR/under_in.pcap: one frame per malformed
                                         case of the spec's "cases", then a good packet for
                                         each tunnel in "good" (see malformed()); empty
                                         DIR/lan_in.pcap and DIR/l2_in.pcap
  tunnel_scapy.py mtu SPEC.json DIR     writes the MTU case of the spec's "mtu_case" {"l3": tunnel,
                                         "l2": tunnel}: DIR/lan_in.pcap, DIR/l2_in.pcap (see
                                         mtu_packets(), mtu_frames())
  tunnel_scapy.py mtu-verify SPEC.json DIR
                                         reads the ICMP errors in DIR/lan_tx.pcap and the
                                         tunnel output in DIR/under_tx.pcap (fragments
                                         reassembled by Scapy); prints what it found as JSON

Every frame carries a marker "FGT|<tunnel>|<d or e>|<i>|" in its payload (for ARP, in the
Ethernet trailer), so each output frame is matched to the input it came from whatever the
order, and a frame delivered by the wrong tunnel is caught by its outer header or VLAN.

SPEC.json (written by tests/tests/tunnel_common): {"gw_under", "gw_lan", "gw_l2", "peer_mac",
"host_mac": MACs; "local4", "remote4", "local6", "remote6": outer endpoints; "host4", "host6":
the host behind port "lan"; "count": frames per inner type; "tunnels": [{"name", "profile",
"v6" (outer family), "key", "port", "ttl", "tos" (null = preserve), "df", "mtu",
"gre_checksum", "gre_sequence", "geneve_options" (hex), "l2", "vlan" (L2: cross-connect VLAN),
"net" (L3: inner networks 10.2.<net>.0/24, fd02:<net>::/64), "families" (L3: inner IP
versions carried), "count" (optional)}]}; per mode: "strangers" (gen), "cases" and "good"
(malformed), "mtu_case" (mtu, mtu-verify).
"""
import json, struct, subprocess, sys
from scapy.all import (Ether, ARP, IP, IPv6, UDP, GRE, Raw, wrpcap, rdpcap, checksum,
                       in6_chksum, conf)
from scapy.layers.inet import defragment
from scapy.layers.vxlan import VXLAN
from scapy.contrib.geneve import GENEVE
from scapy.contrib.etherip import EtherIP

conf.verb = 0
spec = json.load(open(sys.argv[2]))
d = sys.argv[3]
N = spec["count"]
TUNNELS = {t["name"]: t for t in spec["tunnels"]}
DPORT = {"vxlan": 4789, "vxlan-gpe": 4790, "geneve": 6081}
# Local host side of the L2 tunnels, and the remote side.
L2_LOCAL, L2_REMOTE = "02:aa:00:00:00:01", "02:bb:00:00:00:01"


def marker(t, dr, i):
    return b"FGT|%s|%s|%d|" % (t["name"].encode(), dr.encode(), i)


def ident(raw):
    """(tunnel, direction, index) from the marker in a frame, or None."""
    k = raw.find(b"FGT|")
    if k < 0:
        return None
    parts = raw[k:].split(b"|")
    try:
        return parts[1].decode(), parts[2].decode(), int(parts[3])
    except (IndexError, ValueError):
        return None


def kind(t):
    p = t["profile"]
    return "ipip" if p.startswith("ip") else p


def udp_port(t):
    return t["port"] or DPORT[t["profile"]]


# --- inner packets ------------------------------------------------------------------------
# Frame i of a kind: i % 3 == 0 DSCP 0 and DF, 1 EF and no DF, 2 AF11 with ECT(0) and DF.
TOS = [0x00, 0xB8, 0x2A]


def ip4(t, dr, i, src, dst):
    return (IP(src=src, dst=dst, ttl=64, tos=TOS[i % 3], id=0x100 + i, flags="DF" if i % 3 != 1 else 0)
            / UDP(sport=1000 + i, dport=40000) / Raw(marker(t, dr, i) + bytes(range(20 + 7 * i))))


def ip6(t, dr, i, src, dst):
    return (IPv6(src=src, dst=dst, hlim=64, tc=TOS[i % 3], fl=0x12345 + i)
            / UDP(sport=2000 + i, dport=40000) / Raw(marker(t, dr, i) + bytes(range(30 + 5 * i))))


def l3_inner(t, dr, i):
    """The inner IP packet number i of tunnel t in direction dr ('e' from the host, 'd' to
    the host); IPv4 first, then IPv6, for the families the tunnel carries."""
    net = t["net"]
    fam = t["families"][0] if i < count(t) else t["families"][1]
    if dr == "e":
        return (ip4(t, dr, i, spec["host4"], "10.2.%d.2" % net) if fam == 4
                else ip6(t, dr, i, spec["host6"], "fd02:%x::2" % net))
    return (ip4(t, dr, i, "10.2.%d.2" % net, spec["host4"]) if fam == 4
            else ip6(t, dr, i, "fd02:%x::2" % net, spec["host6"]))


def l2_inner(t, dr, i):
    """Inner Ethernet frame i of an L2 tunnel: IPv4/UDP, IPv6/UDP, ARP request."""
    src, dst = (L2_LOCAL, L2_REMOTE) if dr == "e" else (L2_REMOTE, L2_LOCAL)
    e = Ether(src=src, dst=dst)
    if i % 3 == 0:
        return e / ip4(t, dr, i, "192.168.%d.1" % t["vlan"], "192.168.%d.2" % t["vlan"])
    if i % 3 == 1:
        return e / ip6(t, dr, i, "fd03::1", "fd03::2")
    return (Ether(src=src, dst="ff:ff:ff:ff:ff:ff") / ARP(hwsrc=src, psrc="192.168.%d.1" % t["vlan"],
                                                          pdst="192.168.%d.2" % t["vlan"])
            / Raw(marker(t, dr, i)))


def count(t):
    """Frames per inner type for tunnel t (the spec's "count" unless the tunnel has one)."""
    return t.get("count") or N


def n_frames(t):
    return count(t) * (1 if t["l2"] else len(t["families"]))


def inner(t, dr, i):
    return l2_inner(t, dr, i) if t["l2"] else l3_inner(t, dr, i)


def inner_tos(pkt):
    """TOS / traffic class and IPv4 DF of an inner packet (through Ethernet); (0, None) for
    non-IP."""
    if IP in pkt:
        return pkt[IP].tos, bool(pkt[IP].flags & 2)
    if IPv6 in pkt:
        return pkt[IPv6].tc, None
    return 0, None


# --- encapsulation by the peer (Scapy) ------------------------------------------------------
def peer_encap(t, i, inr):
    """The peer's tunnel packet (from remote to local) carrying inner packet/frame inr, with
    an outer CE mark on frame kind 2 (RFC 6040: the inner ECT(0) becomes CE)."""
    k, p = kind(t), t["profile"]
    in_tos, _ = inner_tos(inr)
    outer_tos = 0x03 if (i % 3 == 2 and in_tos & 3) else 0
    payload_proto = (0x6558 if isinstance(inr, Ether) else 0x0800 if isinstance(inr, IP) else 0x86DD)
    if k in ("gre", "gre-teb", "nvgre"):
        key = t["key"]
        if k == "nvgre":
            key = (t["key"] << 8) | (i * 37 & 0xFF)
        h = GRE(proto=payload_proto, key_present=int(key is not None), key=key,
                chksum_present=int(t["gre_checksum"]), seqnum_present=int(t["gre_sequence"]),
                sequence_number=(1000 + i) if t["gre_sequence"] else None)
        l4, proto = h / inr, 47
    elif k == "vxlan":
        l4, proto = UDP(sport=50000 + i, dport=udp_port(t)) / VXLAN(flags=0x08, vni=t["key"]) / inr, 17
    elif k == "vxlan-gpe":
        nxt = {0x6558: 3, 0x0800: 1, 0x86DD: 2}[payload_proto]
        l4, proto = UDP(sport=50000 + i, dport=udp_port(t)) / VXLAN(flags=0x0C, NextProtocol=nxt, vni=t["key"]) / inr, 17
    elif k == "geneve":
        opts = bytes.fromhex(t["geneve_options"] or "")
        g = GENEVE(vni=t["key"], proto=payload_proto, critical=int(critical(opts)),
                   optionlen=len(opts) // 4)
        l4, proto = UDP(sport=50000 + i, dport=udp_port(t)) / g / Raw(opts) / inr, 17
    elif k == "etherip":
        l4, proto = EtherIP() / inr, 97
    else:  # ipip
        l4, proto = inr, 4 if isinstance(inr, IP) else 41
    if UDP in l4 and isinstance(l4, UDP) and not t["v6"] and i % 2 == 0:
        l4.chksum = 0  # RFC 7348: zero UDP checksum over IPv4 (odd frames carry one)
    if t["v6"]:
        outer = IPv6(src=spec["remote6"], dst=spec["local6"], hlim=64, tc=outer_tos, nh=proto)
    else:
        outer = IP(src=spec["remote4"], dst=spec["local4"], ttl=64, tos=outer_tos, proto=proto, id=i)
    return Ether(src=spec["peer_mac"], dst=spec["gw_under"]) / outer / l4


def critical(opts):
    """True if a Geneve option in opts has the critical bit (type bit 7)."""
    k = 0
    while k + 4 <= len(opts):
        if opts[k + 2] & 0x80:
            return True
        k += 4 + (opts[k + 3] & 0x1F) * 4
    return False


def ecn_decap(tos, outer):
    """RFC 6040 §4.2 (the inputs never carry the drop combination)."""
    i, o = tos & 3, outer & 3
    if i == 0:
        return tos
    if o == 3:
        return tos | 3
    if i == 2 and o == 1:
        return (tos & ~3) | 1
    return tos


def decapsulated(t, i, inr, outer_tos):
    """What ferrogate must emit for a decapsulated inner packet/frame."""
    q = inr.copy()
    q = q.__class__(bytes(q))
    if t["l2"]:
        if IP in q:
            q[IP].tos = ecn_decap(q[IP].tos, outer_tos)
            del q[IP].chksum
        elif IPv6 in q:
            q[IPv6].tc = ecn_decap(q[IPv6].tc, outer_tos)
        b = bytes(q)
        return b[:12] + struct.pack("!HH", 0x8100, t["vlan"]) + b[12:]
    if IP in q:
        q[IP].tos = ecn_decap(q[IP].tos, outer_tos)
        q[IP].ttl -= 1
        del q[IP].chksum
        return bytes(Ether(src=spec["gw_lan"], dst=spec["host_mac"]) / q)
    q[IPv6].tc = ecn_decap(q[IPv6].tc, outer_tos)
    q[IPv6].hlim -= 1
    return bytes(Ether(src=spec["gw_lan"], dst=spec["host_mac"], type=0x86DD) / q)


def host_frame(t, i, inr):
    """The frame that carries inner packet/frame inr into ferrogate for encapsulation."""
    if t["l2"]:
        b = bytes(inr)
        return b[:12] + struct.pack("!HH", 0x8100, t["vlan"]) + b[12:]
    return bytes(Ether(src=spec["host_mac"], dst=spec["gw_lan"]) / inr)


def strangers():
    """Tunnel packets like a configured tunnel's but with a key / VNI nobody has: the spec's
    "strangers" [{"name", "like": tunnel, "key", "count"}]. None of them may come out."""
    out = []
    for s in spec.get("strangers", []):
        t = dict(TUNNELS[s["like"]], name=s["name"], key=s["key"], count=s["count"])
        out.append(t)
    return out


def gen():
    under, lan, l2 = [], [], []
    counts = {}
    maxn = max(n_frames(t) for t in spec["tunnels"] + strangers())
    for i in range(maxn):  # interleaved: every tunnel in every burst
        for t in strangers():
            if i < n_frames(t):
                under.append(peer_encap(t, i, inner(t, "d", i)))
                counts.setdefault(t["name"], {"stranger": 0})["stranger"] += 1
        for t in spec["tunnels"]:
            if i >= n_frames(t):
                continue
            c = counts.setdefault(t["name"], {"decap": 0, "decap_bytes": 0, "encap": 0, "encap_bytes": 0})
            inr = inner(t, "d", i)
            under.append(peer_encap(t, i, inr))
            c["decap"] += 1
            c["decap_bytes"] += len(inr)
            e = inner(t, "e", i)
            (l2 if t["l2"] else lan).append(Ether(host_frame(t, i, e)))
            c["encap"] += 1
            # Routed into an L3 tunnel: TTL - 1 before encapsulation (same length).
            c["encap_bytes"] += len(e)
    wrpcap(f"{d}/under_in.pcap", under)
    wrpcap(f"{d}/lan_in.pcap", lan)
    wrpcap(f"{d}/l2_in.pcap", l2)
    print(json.dumps(counts))


# --- verification ---------------------------------------------------------------------------
errors = []


def err(msg):
    if len(errors) < 40:
        errors.append(msg)


def expected_outer_tos(t, in_tos):
    dscp = (t["tos"] if t["tos"] is not None else in_tos) & 0xFC
    return dscp | (in_tos & 3)


def check_encap(t, i, f, seqs):
    """Check one encapsulated frame of tunnel t (carrying input i) field by field with Scapy;
    True if everything matches."""
    n0 = len(errors)
    where = f"{t['name']} e{i}"
    inr = inner(t, "e", i)
    want_inner = decap_expected_inner(t, inr)
    in_tos, in_df = inner_tos(inr)
    e = Ether(f)
    if e.dst != spec["peer_mac"] or e.src != spec["gw_under"]:
        err(f"{where}: outer MACs {e.src} -> {e.dst}")
    k = kind(t)
    ip = e.payload
    proto_want = {"gre": 47, "gre-teb": 47, "nvgre": 47, "vxlan": 17, "vxlan-gpe": 17,
                  "geneve": 17, "etherip": 97}.get(k) or (4 if IP in inr and not t["l2"] else 41)
    if t["v6"]:
        if not isinstance(ip, IPv6):
            return err(f"{where}: outer is not IPv6") or False
        if (ip.src, ip.dst) != (spec["local6"], spec["remote6"]):
            err(f"{where}: outer {ip.src} -> {ip.dst}")
        if ip.hlim != t["ttl"] or ip.tc != expected_outer_tos(t, in_tos) or ip.nh != proto_want:
            err(f"{where}: hlim {ip.hlim} tc {ip.tc:#x} nh {ip.nh}")
        if ip.plen != len(f) - 14 - 40:
            err(f"{where}: plen {ip.plen}")
        l4 = bytes(ip.payload)
    else:
        if not isinstance(ip, IP):
            return err(f"{where}: outer is not IPv4") or False
        hdr = f[14:34]
        if ip.ihl != 5 or checksum(hdr) != 0:
            err(f"{where}: IPv4 header checksum {ip.chksum:#x} invalid")
        if (ip.src, ip.dst) != (spec["local4"], spec["remote4"]):
            err(f"{where}: outer {ip.src} -> {ip.dst}")
        df = {"set": True, "clear": False}.get(t["df"], True if in_df is None else in_df)
        if ip.ttl != t["ttl"] or ip.tos != expected_outer_tos(t, in_tos) or ip.proto != proto_want:
            err(f"{where}: ttl {ip.ttl} tos {ip.tos:#x} proto {ip.proto}")
        if bool(ip.flags & 2) != df or ip.frag != 0 or (df and ip.id != 0):
            err(f"{where}: flags {ip.flags} frag {ip.frag} id {ip.id} (DF wanted {df})")
        if ip.len != len(f) - 14:
            err(f"{where}: total length {ip.len}")
        l4 = bytes(ip.payload)

    if proto_want == 17:
        u = UDP(l4)
        if u.dport != udp_port(t) or not 49152 <= u.sport <= 65535 or u.len != len(l4):
            err(f"{where}: UDP {u.sport}->{u.dport} len {u.len}")
        if t["v6"]:
            if u.chksum == 0 or in6_chksum(17, ip, l4) != 0:
                err(f"{where}: UDP checksum over IPv6 {u.chksum:#x} invalid")
        elif u.chksum != 0:
            err(f"{where}: UDP checksum over IPv4 {u.chksum:#x}, want 0")
        th = l4[8:]
    else:
        th = l4
    if k in ("gre", "gre-teb", "nvgre"):
        g = GRE(th)
        csum, seq = t["gre_checksum"], t["gre_sequence"]
        keyed = t["key"] is not None or k == "nvgre"
        proto = 0x6558 if t["l2"] else (0x0800 if IP in inr else 0x86DD)
        if (g.chksum_present, g.key_present, g.seqnum_present, g.routing_present, g.flags,
                g.version, g.recursion_control, g.strict_route_source) != (int(csum), int(keyed), int(seq), 0, 0, 0, 0, 0):
            err(f"{where}: GRE flags {th[:2].hex()}")
        if g.proto != proto:
            err(f"{where}: GRE protocol {g.proto:#x}")
        if csum and checksum(th) != 0:
            err(f"{where}: GRE checksum {g.chksum:#x} invalid")
        if k == "nvgre":
            if g.key >> 8 != t["key"]:
                err(f"{where}: NVGRE VSID {g.key >> 8}")
        elif keyed and g.key != t["key"]:
            err(f"{where}: GRE key {g.key}")
        if seq:
            seqs.setdefault(t["name"], []).append(g.sequence_number)
        hl = 4 + 4 * (int(csum) + int(keyed) + int(seq))
        payload = th[hl:]
    elif k == "vxlan":
        if th[:8] != struct.pack("!BBBBI", 0x08, 0, 0, 0, t["key"] << 8):
            err(f"{where}: VXLAN header {th[:8].hex()}")
        v = VXLAN(th[:8])
        if v.vni != t["key"] or v.flags != 0x08:
            err(f"{where}: Scapy reads VNI {v.vni} flags {v.flags}")
        payload = th[8:]
    elif k == "vxlan-gpe":
        nxt = 3 if t["l2"] else (1 if IP in inr else 2)
        v = VXLAN(th[:8])
        if th[:4] != bytes([0x0C, 0, 0, nxt]) or v.vni != t["key"] or th[7] != 0:
            err(f"{where}: VXLAN-GPE header {th[:8].hex()}")
        payload = th[8:]
    elif k == "geneve":
        opts = bytes.fromhex(t["geneve_options"] or "")
        g = GENEVE(th)
        proto = 0x6558 if t["l2"] else (0x0800 if IP in inr else 0x86DD)
        if (g.version, g.optionlen, g.oam, g.critical, g.reserved, g.proto, g.vni, g.reserved2) != (
                0, len(opts) // 4, 0, int(critical(opts)), 0, proto, t["key"], 0):
            err(f"{where}: Geneve header {th[:8].hex()}")
        if th[8:8 + len(opts)] != opts:
            err(f"{where}: Geneve options {th[8:8 + len(opts)].hex()}, want {opts.hex()}")
        payload = th[8 + len(opts):]
    elif k == "etherip":
        eh = EtherIP(th[:2])
        if eh.version != 3 or eh.reserved != 0:
            err(f"{where}: EtherIP header {th[:2].hex()}")
        payload = th[2:]
    else:
        payload = th
    if payload != want_inner:
        err(f"{where}: inner differs:\n got  {payload.hex()}\n want {want_inner.hex()}")
    return len(errors) == n0


def decap_expected_inner(t, inr):
    """The inner packet ferrogate encapsulates: the routed IP packet (TTL - 1), or the frame
    without its VLAN tag."""
    if t["l2"]:
        return bytes(inr)
    q = inr.__class__(bytes(inr))
    if IP in q:
        q[IP].ttl -= 1
        del q[IP].chksum
    else:
        q[IPv6].hlim -= 1
    return bytes(q)


TSHARK = ["tshark", "-n", "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]


def tshark_fields(path, fields, extra=()):
    cmd = TSHARK + list(extra) + ["-r", path, "-T", "fields", "-E", "separator=\t", "-E", "occurrence=a",
                                  "-E", "aggregator=,"]
    for x in fields:
        cmd += ["-e", x]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [dict(zip(fields, line.split("\t"))) for line in out.splitlines()]


def tshark_expect(t, i):
    """(protocol stack prefix, {field: integer value}) tshark must show for encap frame i of
    t. (tshark 4.0 dissects the VXLAN-GPE header but leaves it out of frame.protocols.)"""
    inr = inner(t, "e", i)
    k = kind(t)
    stack = ["eth", "ethertype", "ipv6" if t["v6"] else "ip"]
    f = {}
    if k in ("gre", "gre-teb", "nvgre"):
        stack.append("gre")
        f["gre.proto"] = 0x6558 if t["l2"] else 0x0800 if IP in inr else 0x86DD
        f["gre.flags.key"] = int(t["key"] is not None or k == "nvgre")
        if t["key"] is not None and k != "nvgre":
            f["gre.key"] = t["key"]
        if t["gre_checksum"]:
            f["gre.checksum.status"] = 1
        f["gre.flags.sequence_number"] = int(t["gre_sequence"])
    elif k in ("vxlan", "vxlan-gpe", "geneve"):
        stack += ["udp"] + (["geneve"] if k == "geneve" else ["vxlan"] if k == "vxlan" else [])
        f["udp.dstport"] = udp_port(t)
        if k == "geneve":
            f["geneve.vni"] = t["key"]
            f["geneve.proto_type"] = 0x6558 if t["l2"] else 0x0800 if IP in inr else 0x86DD
            f["geneve.flags.critical"] = int(critical(bytes.fromhex(t["geneve_options"])))
        else:
            f["vxlan.vni"] = t["key"]
            f["vxlan.flag_i" if k == "vxlan" else "vxlan.i_bit"] = 1
        if k == "vxlan-gpe":
            f["vxlan.next_proto"] = 3 if t["l2"] else 1 if IP in inr else 2
    elif k == "etherip":
        stack.append("etherip")
        f["etherip.ver"] = 3
    if t["l2"]:
        stack += ["eth", "ethertype"]
        stack += ["ip", "udp"] if IP in inr else ["ipv6", "udp"] if IPv6 in inr else ["arp"]
    else:
        stack += ["ip", "udp"] if IP in inr else ["ipv6", "udp"]
    return ":".join(stack), f


def tshark_int(v):
    """A tshark field value as an integer (decimal, hex, True/False); None if absent."""
    v = v.split(",")[0]
    if v in ("", None):
        return None
    if v in ("True", "False"):
        return int(v == "True")
    return int(v, 0)


def verify():
    tun_ok = {n: {"decap_ok": 0, "encap_ok": 0} for n in TUNNELS}
    # Decapsulated: exact bytes, on the right port.
    for port, l2 in (("lan", False), ("l2", True)):
        for f in rdpcap(f"{d}/{port}_tx.pcap"):
            raw = bytes(f)
            m = ident(raw)
            if not m or m[1] != "d" or m[0] not in TUNNELS:
                err(f"{port}: unexpected frame {raw[:64].hex()}")
                continue
            t, i = TUNNELS[m[0]], m[2]
            if t["l2"] != l2:
                err(f"{port}: {t['name']} d{i} came out of the wrong port")
                continue
            inr = inner(t, "d", i)
            want = decapsulated(t, i, inr, peer_encap(t, i, inr).payload.tos if not t["v6"]
                                else peer_encap(t, i, inr).payload.tc)
            if raw != want:
                err(f"{port}: {t['name']} d{i} differs:\n got  {raw.hex()}\n want {want.hex()}")
            else:
                tun_ok[t["name"]]["decap_ok"] += 1
    # Encapsulated: Scapy field by field, then tshark.
    frames = rdpcap(f"{d}/under_tx.pcap")
    seqs = {}
    which = []
    for n, f in enumerate(frames):
        raw = bytes(f)
        m = ident(raw)
        if not m or m[1] != "e" or m[0] not in TUNNELS:
            err(f"under: unexpected frame {n + 1} {raw[:64].hex()}")
            which.append(None)
            continue
        t, i = TUNNELS[m[0]], m[2]
        which.append((t, i))
        if check_encap(t, i, raw, seqs):
            tun_ok[t["name"]]["encap_ok"] += 1
    for name, s in seqs.items():
        if s != list(range(len(s))):
            err(f"{name}: GRE sequence numbers {s}, want 0, 1, 2, ...")
    fields = ["frame.number", "frame.protocols", "ip.checksum.status", "udp.checksum.status",
              "gre.proto", "gre.flags.key", "gre.flags.sequence_number", "gre.checksum.status",
              "gre.key", "udp.dstport", "vxlan.vni", "vxlan.flag_i", "vxlan.i_bit",
              "vxlan.next_proto", "geneve.vni", "geneve.proto_type", "geneve.flags.critical",
              "etherip.ver", "_ws.malformed", "_ws.expert.severity"]
    extra = [a for t in spec["tunnels"] if t["port"] for a in
             ("-d", "udp.port==%d,%s" % (t["port"], {"vxlan": "vxlan", "vxlan-gpe": "vxlan_gpe",
                                                      "geneve": "geneve"}[t["profile"]]))]
    rows = tshark_fields(f"{d}/under_tx.pcap", fields, extra)
    tshark_ok = 0
    if len(rows) != len(frames):
        err(f"tshark read {len(rows)} frames, Scapy {len(frames)}")
    for row, w in zip(rows, which):
        if w is None:
            continue
        t, i = w
        where = f"tshark frame {row['frame.number']} ({t['name']} e{i})"
        stack, want = tshark_expect(t, i)
        bad = []
        if not row["frame.protocols"].startswith(stack):
            bad.append(f"protocols {row['frame.protocols']}, want {stack}...")
        for k, v in want.items():
            if tshark_int(row[k]) != v:
                bad.append(f"{k} = {row[k]!r}, want {v}")
        # Every IPv4 header checksum (outer and inner) good; UDP checksums good or absent.
        if any(s != "1" for s in row["ip.checksum.status"].split(",") if s):
            bad.append(f"ip.checksum.status {row['ip.checksum.status']}")
        if any(s not in ("1", "3") for s in row["udp.checksum.status"].split(",") if s):
            bad.append(f"udp.checksum.status {row['udp.checksum.status']}")
        if row["_ws.malformed"] or row["_ws.expert.severity"]:
            bad.append(f"malformed {row['_ws.malformed']!r} expert {row['_ws.expert.severity']!r}")
        if bad:
            err(f"{where}: " + "; ".join(bad))
        else:
            tshark_ok += 1
    print(json.dumps({"tunnels": tun_ok, "tshark_ok": tshark_ok, "errors": errors}))
    sys.exit(1 if errors else 0)


# --- malformed input ------------------------------------------------------------------------
UDP_KINDS = ("vxlan", "vxlan-gpe", "geneve")


def body_of(t, inr=None, **over):
    """What follows the outer IP header (and UDP, for UDP kinds) in the packet the peer of
    tunnel t sends, with settings `over` changed (e.g. key=99, gre_checksum=True)."""
    t = dict(t, **over)
    f = peer_encap(t, 0, inr if inr is not None else inner(t, "d", 0))
    l4 = bytes(f.payload.payload)
    return l4[8:] if kind(t) in UDP_KINDS else l4


def wrap(t, body, proto=None, outer_tos=0, udp_len_extra=0, udp_csum=None):
    """The outer frame of tunnel t around `body`, every length and checksum consistent
    (UDP checksum 0 over IPv4, computed over IPv6) unless told otherwise."""
    if kind(t) in UDP_KINDS:
        u = UDP(sport=50000, dport=udp_port(t), len=8 + len(body) + udp_len_extra)
        if udp_csum is not None:
            u.chksum = udp_csum
        elif not t["v6"]:
            u.chksum = 0
        l4, proto = u / Raw(body), 17
    else:
        l4 = Raw(body)
        proto = proto or {"gre": 47, "gre-teb": 47, "nvgre": 47, "etherip": 97}.get(kind(t), 4)
    if t["v6"]:
        outer = IPv6(src=spec["remote6"], dst=spec["local6"], hlim=64, tc=outer_tos, nh=proto)
    else:
        outer = IP(src=spec["remote4"], dst=spec["local4"], ttl=64, tos=outer_tos, proto=proto)
    return bytearray(bytes(Ether(src=spec["peer_mac"], dst=spec["gw_under"]) / outer / l4))


def setb(b, at, v):
    b = bytearray(b)
    b[at] = v
    return bytes(b)


def bad_case(name, t):
    """Frame for malformed case `name`, built from tunnel t's proper packet. The inner packets
    carry the marker of a tunnel named "bad-<case>", so any of them that came out is caught."""
    t = dict(t, name="bad-" + name)
    b = body_of(t)
    eth = Ether(src=L2_REMOTE, dst=L2_LOCAL) / ip4(t, "d", 0, "192.168.1.1", "192.168.1.2")
    ip4in = ip4(t, "d", 0, "10.2.99.2", spec["host4"])
    ip6in = ip6(t, "d", 0, "fd02:99::2", spec["host6"])
    gre_flags = lambda f: struct.pack("!H", struct.unpack("!H", b[:2])[0] | f) + b[2:]
    if name == "ipv4-truncated":
        return wrap(t, b)[:14 + 12]
    if name == "ipv6-truncated":
        return wrap(t, b)[:14 + 30]
    if name == "ipv4-bad-version":
        return setb(wrap(t, b), 14, 0x65)
    if name == "ipv6-bad-version":
        return setb(wrap(t, b), 14, 0x40)
    if name == "ipv4-bad-checksum":
        f = wrap(t, b)
        return setb(f, 24, f[24] ^ 0xFF)
    if name == "ipv4-fragment":
        f = Ether(bytes(wrap(t, b)))
        f[IP].flags = "MF"
        del f[IP].chksum
        return bytes(f)
    if name == "udp-truncated":
        return bytes(wrap(dict(t, profile="gre"), struct.pack("!HH", 50000, udp_port(t)), proto=17))
    if name == "udp-bad-length":
        return wrap(t, b, udp_len_extra=8)
    if name == "udp-bad-checksum":
        return wrap(t, b, udp_csum=0x1234)
    if name == "udp6-zero-checksum":
        return wrap(t, b, udp_csum=0)
    if name == "gre-truncated":
        return wrap(t, b[:2])
    if name == "gre-key-truncated":
        return wrap(t, struct.pack("!HH", 0x2000, 0x0800))
    if name == "gre-routing-bit":
        return wrap(t, gre_flags(0x4000))
    if name == "gre-strict-route-bit":
        return wrap(t, gre_flags(0x0800))
    if name == "gre-recursion-bit":
        return wrap(t, gre_flags(0x0400))
    if name == "gre-version-1":
        return wrap(t, gre_flags(0x0001))
    if name == "gre-bad-checksum":
        c = body_of(t, gre_checksum=True)
        return wrap(t, c[:4] + bytes([c[4] ^ 0xFF]) + c[5:])
    if name == "gre-arp-protocol":
        return wrap(t, b[:2] + b"\x08\x06" + b[4:])
    if name == "gre-inner-bad-version":
        return wrap(t, b[:2] + b"\x08\x00" + bytes(ip6in))
    if name == "gre-inner-truncated":
        q = bytes(ip4in)
        return wrap(t, b[:4] + q[:2] + struct.pack("!H", len(q) + 100) + q[4:])
    if name == "gre-unknown-key":
        return wrap(t, body_of(t, key=99))
    if name == "gre-no-sequence":
        return wrap(t, body_of(t, gre_sequence=False))
    if name == "gre-ipv6-into-ipv4-only":
        return wrap(t, body_of(t, ip6in))
    if name == "nvgre-checksum-bit":
        return wrap(t, body_of(t, gre_checksum=True))
    if name == "vxlan-truncated":
        return wrap(t, b[:4])
    if name == "vxlan-i-flag-clear":
        return wrap(t, setb(b, 0, 0))
    if name == "vxlan-unknown-vni":
        return wrap(t, body_of(t, key=99))
    if name == "vxlan-no-xconnect":
        return wrap(t, b)
    if name == "vxlan-ce-over-not-ect":
        return wrap(t, body_of(t, l2_inner(t, "d", 2)), outer_tos=3)
    if name == "vxlan-inner-truncated":
        return wrap(t, b[:8 + 10])
    if name == "gpe-version-1":
        return wrap(t, setb(b, 0, b[0] | 0x10))
    if name == "gpe-oam":
        return wrap(t, setb(b, 0, b[0] | 0x01))
    if name == "gpe-nsh":
        return wrap(t, setb(b, 3, 4))
    if name == "gpe-i-flag-clear":
        return wrap(t, setb(b, 0, b[0] & ~0x08))
    if name == "gpe-ethernet-into-ip":
        return wrap(t, body_of(t, eth))
    if name == "geneve-truncated":
        return wrap(t, b[:4])
    if name == "geneve-version-1":
        return wrap(t, setb(b, 0, b[0] | 0x40))
    if name == "geneve-options-beyond":
        return wrap(t, setb(b, 0, b[0] | 0x3F))
    if name == "geneve-unknown-critical":
        return wrap(t, body_of(t, geneve_options="0103810100000001"))
    if name == "geneve-option-overrun":
        # An 8-byte options area whose only option claims 12 bytes of data.
        return wrap(t, body_of(t, geneve_options="0103010300000001"))
    if name == "geneve-oam":
        return wrap(t, setb(b, 1, b[1] | 0x80))
    if name == "geneve-arp-protocol":
        return wrap(t, b[:2] + b"\x08\x06" + b[4:])
    if name == "geneve-ethernet-into-ip":
        return wrap(t, body_of(t, eth))
    if name == "etherip-version-2":
        return wrap(t, setb(b, 0, 0x20))
    if name == "etherip-reserved-bits":
        return wrap(t, setb(b, 1, 0x01))
    if name == "etherip-truncated":
        return wrap(t, b[:1])
    if name == "ipip-ipv6-in-protocol-4":
        return wrap(t, bytes(ip6in), proto=4)
    if name == "ipip-ipv4-in-protocol-41":
        return wrap(t, bytes(ip4in), proto=41)
    raise SystemExit(f"unknown case {name}")


def malformed():
    """under_in.pcap: every case of the spec's "cases" [{"case", "tunnel"}], then one good
    packet from the peer of each tunnel in "good" (it must still come out)."""
    frames = [bytes(bad_case(c["case"], TUNNELS[c["tunnel"]])) for c in spec["cases"]]
    frames += [bytes(peer_encap(TUNNELS[n], 0, inner(TUNNELS[n], "d", 0))) for n in spec["good"]]
    wrpcap(f"{d}/under_in.pcap", [Ether(f) for f in frames])
    wrpcap(f"{d}/lan_in.pcap", [], linktype=1)
    wrpcap(f"{d}/l2_in.pcap", [], linktype=1)
    print(json.dumps({"frames": len(frames)}))


# --- MTU ------------------------------------------------------------------------------------
def mtu_packets(t):
    """(label, inner IP packet) from the host into L3 tunnel t (MTU m), in the order sent:
    oversized with DF (IPv4) and IPv6 alternating — only the first of each may be answered
    under an ICMP rate of 2 — then packets of exactly m that pass whole, then oversized IPv4
    without DF that must be fragmented inside the tunnel."""
    m, net = t["mtu"], t["net"]
    dst4, dst6 = "10.2.%d.2" % net, "fd02:%x::2" % net

    def v4(size, df, i):
        h = IP(src=spec["host4"], dst=dst4, ttl=64, id=0x4000 + i, flags="DF" if df else 0) / UDP(sport=3000 + i, dport=40000)
        return h / Raw((marker(t, "e", i) + bytes(range(256)) * 8)[:size - 28])

    def v6(size, i):
        h = IPv6(src=spec["host6"], dst=dst6, hlim=64) / UDP(sport=3000 + i, dport=40000)
        return h / Raw((marker(t, "e", i) + bytes(range(256)) * 8)[:size - 48])

    return [("v4-df-%d" % (m + 1), v4(m + 1, True, 0)), ("v6-%d" % (m + 1), v6(m + 1, 1)),
            ("v4-df-1400", v4(1400, True, 2)), ("v6-1400", v6(1400, 3)),
            ("v4-df-1500", v4(1500, True, 4)), ("v6-1500", v6(1500, 5)),
            ("v4-df-%d" % m, v4(m, True, 6)), ("v6-%d" % m, v6(m, 7)),
            ("v4-1400", v4(1400, False, 8)), ("v4-1500", v4(1500, False, 9))]


def mtu_frames(t):
    """(label, tagged frame) for L2 tunnel t (MTU m): an inner IP packet of m passes, one of
    m + 120 is dropped (no ICMP: a bridged frame has no IP context)."""
    out = []
    for size in (t["mtu"], t["mtu"] + 120):
        inr = Ether(src=L2_LOCAL, dst=L2_REMOTE) / IP(src="192.168.1.1", dst="192.168.1.2", id=size) / UDP(sport=1, dport=40000) / Raw(b"\x5a" * (size - 28))
        b = bytes(inr)
        out.append(("l2-%d" % size, b[:12] + struct.pack("!HH", 0x8100, t["vlan"]) + b[12:]))
    return out


def routed(pkt):
    """The packet as forwarded: TTL / hop limit - 1."""
    q = pkt.__class__(bytes(pkt))
    if isinstance(q, IP):
        q.ttl -= 1
        del q.chksum
    else:
        q.hlim -= 1
    return q.__class__(bytes(q))


def mtu_gen():
    t3, t2 = TUNNELS[spec["mtu_case"]["l3"]], TUNNELS[spec["mtu_case"]["l2"]]
    wrpcap(f"{d}/lan_in.pcap", [Ether(src=spec["host_mac"], dst=spec["gw_lan"]) / p for _, p in mtu_packets(t3)])
    wrpcap(f"{d}/l2_in.pcap", [Ether(f) for _, f in mtu_frames(t2)])
    wrpcap(f"{d}/under_in.pcap", [], linktype=1)
    print(json.dumps({"lan": len(mtu_packets(t3)), "l2": len(mtu_frames(t2))}))


def mtu_verify():
    """ICMP errors on lan_tx (type, MTU, which packet they quote), the tunnel output on
    under_tx (whole packets exact, fragments reassembled by Scapy into the routed original)."""
    t3, t2 = TUNNELS[spec["mtu_case"]["l3"]], TUNNELS[spec["mtu_case"]["l2"]]
    m = t3["mtu"]
    sent = mtu_packets(t3)
    res = {"icmp4": [], "icmp6": [], "whole": [], "fragments": 0, "reassembled": [], "l2": []}
    for f in rdpcap(f"{d}/lan_tx.pcap"):
        raw = bytes(f)
        e = Ether(raw)
        if (e.src, e.dst) != (spec["gw_lan"], spec["host_mac"]):
            err(f"lan: MACs {e.src} -> {e.dst}")
        if IP in e and e[IP].proto == 1:
            ip = e[IP]
            icmp = bytes(ip.payload)
            if (ip.src, ip.dst) != ("10.1.0.1", spec["host4"]) or checksum(raw[14:34]) != 0 or checksum(icmp) != 0:
                err(f"lan: ICMP {ip.src} -> {ip.dst}, IP or ICMP checksum invalid")
            if icmp[:2] != b"\x03\x04":
                err(f"lan: ICMP type/code {icmp[:2].hex()}, want 3/4")
            quote = icmp[8:]
            who = [lb for lb, p in sent if isinstance(p, IP) and quote and bytes(routed(p))[:len(quote)] == quote]
            res["icmp4"].append({"mtu": struct.unpack("!H", icmp[6:8])[0], "quotes": who, "quoted": len(quote)})
        elif IPv6 in e and e[IPv6].nh == 58:
            ip = e[IPv6]
            icmp = bytes(ip.payload)
            if (ip.src, ip.dst) != ("fd00:1::1", spec["host6"]) or in6_chksum(58, ip, icmp) != 0:
                err(f"lan: ICMPv6 {ip.src} -> {ip.dst} or checksum invalid")
            if icmp[:2] != b"\x02\x00":
                err(f"lan: ICMPv6 type/code {icmp[:2].hex()}, want 2/0")
            quote = icmp[8:]
            who = [lb for lb, p in sent if isinstance(p, IPv6) and quote and bytes(routed(p))[:len(quote)] == quote]
            res["icmp6"].append({"mtu": struct.unpack("!I", icmp[4:8])[0], "quotes": who, "quoted": len(quote)})
        else:
            err(f"lan: unexpected frame {raw[:64].hex()}")
    frags = []
    for f in rdpcap(f"{d}/under_tx.pcap"):
        raw = bytes(f)
        e = Ether(raw)
        ip = e.payload
        if not isinstance(ip, IP) or checksum(raw[14:34]) != 0 or ip.ttl != t3["ttl"]:
            err(f"under: outer header {raw[:34].hex()}")
            continue
        if ip.proto == 17:  # the L2 tunnel
            inner_f = bytes(ip.payload)[16:]
            lb = [lb for lb, fr in mtu_frames(t2) if fr[:12] + fr[16:] == inner_f]
            res["l2"] += lb or [None]
            continue
        gre = bytes(ip.payload)
        if ip.proto != 47 or gre[:2] != b"\x00\x00":
            err(f"under: not plain GRE {raw[:40].hex()}")
            continue
        q = IP(gre[4:]) if gre[2:4] == b"\x08\x00" else IPv6(gre[4:])
        if isinstance(q, IP) and (q.flags.MF or q.frag):
            res["fragments"] += 1
            if len(gre) - 4 > m or checksum(gre[4:24]) != 0 or ip.flags.DF:
                err(f"under: fragment of {len(gre) - 4} bytes (MTU {m}), header checksum or outer DF wrong")
            frags.append(q)
            continue
        lb = [lb for lb, p in sent if bytes(routed(p)) == bytes(q)]
        if not lb:
            err(f"under: whole packet matches nothing sent: {bytes(q)[:48].hex()}")
        res["whole"] += lb
    for r in defragment(frags):
        if r.flags.MF or r.frag:
            err(f"under: fragments of id {r.id:#x} do not reassemble")
            continue
        for lb, p in sent:
            w = routed(p)
            if isinstance(p, IP) and w.id == r.id:
                got = (r.src, r.dst, r.ttl, r.tos, r.proto, bytes(r.payload))
                if got != (w.src, w.dst, w.ttl, w.tos, w.proto, bytes(w.payload)):
                    err(f"under: {lb} reassembled differs")
                else:
                    res["reassembled"].append(lb)
    res["errors"] = errors
    print(json.dumps(res))
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    {"gen": gen, "verify": verify, "malformed": malformed, "mtu": mtu_gen,
     "mtu-verify": mtu_verify}[sys.argv[1]]()
