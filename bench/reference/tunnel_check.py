#!/usr/bin/python3
"""Correctness of a measured overlay-tunnel path, checked by Scapy (an implementation nobody
here wrote). ferrobench writes this file into its scratch directory and runs it after a
one-pass capture of `ferrobench tunnel`.

  tunnel_check.py SPEC.json IN.pcap OUT.pcap

  encap: IN holds the plain frames, OUT what the program sent. Every OUT frame must be a
         tunnel packet to the peer exactly as SPEC says (Ethernet to the peer's MAC; outer
         IPv4/IPv6 from "local" to "remote", TTL/hop limit 64, valid IPv4 header checksum and
         lengths; the protocol, UDP port and UDP checksum rule, GRE flags and key, VNI, VSID,
         next protocol of the type), and carry one of the input frames (L2 types: the whole
         Ethernet frame, unchanged; L3 types: its IP packet, routed: TTL one less, the rest
         from the source address on unchanged).
  decap: IN holds the tunnel packets (made by ferrogate's dataplane code for the peer's side);
         Scapy first unwraps every one of them with the same rules, from "remote" to "local"
         (so the input itself is proven right), then every OUT frame must be one of the inner
         frames (L2: byte for byte; L3: to the next hop's MAC, TTL one less, the rest from the
         source address on unchanged).

SPEC.json: {"dir": "encap"|"decap", "type": label, "profile": gre|gre-teb|nvgre|vxlan|
vxlan-gpe|geneve|ipip|etherip, "l2": bool, "key": n or null, "dport": n or null,
"local", "remote": our and the peer's tunnel addresses, "peer_mac", "nexthop_mac"}.
Prints one JSON line {"frames", "inputs", "ok", "bad", "other", "entropy", "first_error"}
("other" = frames out that are not part of the path, e.g. neighbor discovery; "entropy" =
how many distinct outer UDP source ports, NVGRE FlowIDs and IPv6 flow labels were seen, by
kind, in the tunnel packets: what the underlay could balance on); exit 1 unless every path
frame matches and as many came out as went in.
"""
import json, sys
from collections import Counter
from scapy.all import rdpcap, Ether, IP, IPv6, UDP, GRE, in6_chksum, conf
from scapy.layers.vxlan import VXLAN
from scapy.contrib.geneve import GENEVE
from scapy.contrib.etherip import EtherIP

conf.verb = 0
spec, inp, out = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
prof, l2, key = spec["profile"], spec["l2"], spec["key"]
UDP_PORT = {"vxlan": 4789, "vxlan-gpe": 4790, "geneve": 6081}
PROTO = {"gre": 47, "gre-teb": 47, "nvgre": 47, "etherip": 97, "vxlan": 17, "vxlan-gpe": 17,
         "geneve": 17}


class Bad(Exception):
    pass


def need(cond, what):
    if not cond:
        raise Bad(what)


def ip_checksum_ok(ip):
    raw = bytes(ip)[: ip.ihl * 4]
    s = sum(int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s == 0xFFFF


def unwrap(frame, src, dst, entropy):
    """The inner bytes of tunnel packet `frame` (an Ethernet frame from the peer or to it),
    after checking every outer header against the spec; raises Bad."""
    e = Ether(frame)
    if IP in e and e.type == 0x0800:
        o = e[IP]
        need(ip_checksum_ok(o), "outer IPv4 header checksum")
        need(o.ttl == 64, f"outer TTL {o.ttl}")
        need(o.frag == 0 and not (o.flags & 1), "outer fragment")
        need(len(o.original) == o.len, f"outer length {o.len} vs {len(o.original)}")
        proto, l4 = o.proto, o.payload
    elif IPv6 in e and e.type == 0x86DD:
        o = e[IPv6]
        need(o.hlim == 64, f"outer hop limit {o.hlim}")
        need(len(o.original) == 40 + o.plen, "outer payload length")
        proto, l4 = o.nh, o.payload
        entropy.add(("flow_label", o.fl))
    else:
        raise Bad(f"not IP (type {e.type:#x})")
    need((o.src, o.dst) == (src, dst), f"outer {o.src} -> {o.dst}, want {src} -> {dst}")
    raw = l4.original
    if prof == "ipip":
        v = raw[0] >> 4
        need((proto, v) in ((4, 4), (41, 6)), f"IP-in-IP protocol {proto} for inner IPv{v}")
        return raw
    need(proto == PROTO[prof], f"outer protocol {proto}")
    if prof in ("gre", "gre-teb", "nvgre"):
        g = GRE(raw)
        need(g.chksum_present == 0 and g.seqnum_present == 0 and g.routing_present == 0,
             "GRE C/R/S flags")
        need(g.version == 0, "GRE version")
        if prof == "gre":
            need(g.proto in (0x0800, 0x86DD), f"GRE protocol {g.proto:#x}")
        else:
            need(g.proto == 0x6558, f"GRE protocol {g.proto:#x} (want 0x6558)")
        if prof == "nvgre":
            need(g.key_present == 1 and g.key >> 8 == key, f"NVGRE VSID {g.key >> 8}")
            entropy.add(("nvgre_flowid", g.key & 0xFF))
        elif key is None:
            need(g.key_present == 0, "GRE key present")
        else:
            need(g.key_present == 1 and g.key == key, f"GRE key {g.key}")
        return g.payload.original
    if prof == "etherip":
        h = EtherIP(raw)
        need(h.version == 3 and h.reserved == 0, "EtherIP header")
        return h.payload.original
    u = UDP(raw)
    need(u.dport == (spec["dport"] or UDP_PORT[prof]), f"UDP port {u.dport}")
    need(u.len == len(raw), f"UDP length {u.len} vs {len(raw)}")
    entropy.add(("udp_sport", u.sport))
    if isinstance(o, IP):
        need(u.chksum == 0, "UDP checksum over IPv4 should be 0 (RFC 7348)")
    else:
        # Verified over the datagram as sent (sums to zero when right): a computed checksum of
        # 0 is sent as 0xffff (RFC 768, RFC 8200 §8.1), which a recompute-and-compare misses.
        need(u.chksum != 0 and in6_chksum(17, l4, raw) == 0, "UDP checksum over IPv6")
    body = raw[8:]
    if prof == "vxlan":
        h = VXLAN(body)
        flags = int(h.flags)
        need(flags == 0x08 and h.vni == key, f"VXLAN flags {flags:#x} VNI {h.vni}")
        inner = body[8:]
    elif prof == "vxlan-gpe":
        h = VXLAN(body)
        flags = int(h.flags)
        need(flags & 0x0C == 0x0C and h.vni == key, f"VXLAN-GPE flags {flags:#x} VNI {h.vni}")
        inner = body[8:]
        want = 3 if l2 else (1 if inner[0] >> 4 == 4 else 2)
        need(h.NextProtocol == want, f"VXLAN-GPE next protocol {h.NextProtocol}")
    else:
        h = GENEVE(body)
        need(h.version == 0 and h.optionlen == 0 and h.vni == key, f"Geneve VNI {h.vni}")
        inner = body[8:]
        want = 0x6558 if l2 else (0x0800 if inner[0] >> 4 == 4 else 0x86DD)
        need(h.proto == want, f"Geneve protocol {h.proto:#x}")
    return inner


def ip_key(ip):
    """An IP packet without what routing changes (TTL, checksum): (TTL, rest)."""
    if ip[0] >> 4 == 4:
        n = int.from_bytes(ip[2:4], "big")
        return ip[8], ip[12:n]
    n = 40 + int.from_bytes(ip[4:6], "big")
    return ip[7], ip[:7] + ip[8:n]


def routed(ip):
    """What the IP packet must look like after one router: TTL - 1."""
    ttl, rest = ip_key(ip)
    return ttl - 1, rest


ins, outs = rdpcap(inp), rdpcap(out)
entropy, want, first_error = set(), Counter(), None
ok = bad = other = 0
if spec["dir"] == "encap":
    for p in ins:
        b = bytes(p)
        want[b if l2 else routed(b[14:])] += 1
    for i, p in enumerate(outs):
        b = bytes(p)
        if b[:6] != bytes.fromhex(spec["peer_mac"].replace(":", "")):
            other += 1
            continue
        try:
            inner = unwrap(b, spec["local"], spec["remote"], entropy)
            if not l2:
                need(inner[0] >> 4 != 4 or ip_checksum_ok(IP(inner)), "inner checksum")
            k = inner if l2 else ip_key(inner)
            need(want[k] > 0, "inner packet is none of the input's")
            want[k] -= 1
            ok += 1
        except Exception as ex:  # Bad, or Scapy could not dissect it
            bad += 1
            first_error = first_error or f"frame {i}: {ex}"
else:
    for i, p in enumerate(ins):
        try:
            inner = unwrap(bytes(p), spec["remote"], spec["local"], entropy)
        except Exception as ex:
            print(json.dumps({"frames": len(outs), "inputs": len(ins), "ok": 0, "bad": 0,
                              "other": 0, "entropy": {},
                              "first_error": f"input {i} is not a valid tunnel packet: {ex}"}))
            sys.exit(1)
        want[inner if l2 else routed(inner)] += 1
    nh = bytes.fromhex(spec["nexthop_mac"].replace(":", ""))
    for i, p in enumerate(outs):
        b = bytes(p)
        if not l2 and (b[:6] != nh or b[12:14] not in (b"\x08\x00", b"\x86\xdd")):
            other += 1
            continue
        try:
            if not l2:
                need(b[12:14] != b"\x08\x00" or ip_checksum_ok(IP(b[14:])), "IPv4 checksum")
            k = b if l2 else ip_key(b[14:])
            need(want[k] > 0, "frame is none of the inner frames")
            want[k] -= 1
            ok += 1
        except Exception as ex:
            bad += 1
            first_error = first_error or f"frame {i}: {ex}"
if ok + bad != len(ins):
    first_error = first_error or f"{len(ins)} frames in, {ok + bad} out"
print(json.dumps({"frames": len(outs), "inputs": len(ins), "ok": ok, "bad": bad, "other": other,
                  "entropy": Counter(k for k, _ in entropy), "first_error": first_error}))
sys.exit(0 if bad == 0 and ok == len(ins) else 1)
