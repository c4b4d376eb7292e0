#!/usr/bin/python3
"""Stacked encapsulation with Scapy as the peer: GRE, VXLAN and EtherIP between the tunnel
endpoints, each protected by ESP (AES-GCM-128, tunnel mode) by a policy on protocol 47,
UDP or protocol 97.

  stack_interop.py gen    CFG.json DIR   writes DIR/lan.pcap (a routed packet into gre1),
                                         DIR/l2.pcap (frames on VLAN 10 -> vxlan, VLAN 20 ->
                                         etherip) and DIR/wan.pcap (the peer's ESP-protected
                                         GRE, VXLAN and EtherIP, then one GRE packet in clear)
  stack_interop.py verify CFG.json DIR   decrypts ferrogate's DIR/wan_tx.pcap and checks the
                                         tunnel packets inside; checks DIR/lan_tx.pcap and
                                         DIR/l2_tx.pcap hold the peer's inner packets/frames.
                                         Prints one JSON line; exit 1 on any mismatch.

CFG.json: {"key": hex (16 + 4 salt), "spi_out": n, "spi_in": n, "count": n,
           "mac": {"lan": .., "l2": .., "wan": ..}}
"""
import json, sys
from scapy.all import Ether, Dot1Q, IP, UDP, GRE, ICMP, Raw, wrpcap, rdpcap
from scapy.layers.vxlan import VXLAN
from scapy.layers.ipsec import SecurityAssociation, ESP

cfg = json.load(open(sys.argv[2]))
d = sys.argv[3]
n = cfg["count"]
US, PEER = "172.16.0.1", "172.16.0.2"
HOST_MAC, PEER_MAC = "02:00:00:00:01:02", "02:00:00:00:03:02"
ETHERIP = b"\x30\x00"  # RFC 3378: version 3, reserved 0


def sa(spi, src, dst):
    return SecurityAssociation(ESP, spi=spi, crypt_algo="AES-GCM",
                               crypt_key=bytes.fromhex(cfg["key"]),
                               tunnel_header=IP(src=src, dst=dst, ttl=64))


to_peer = sa(cfg["spi_out"], US, PEER)
from_peer = sa(cfg["spi_in"], PEER, US)


def routed(i, src, dst, ttl=64):
    return IP(src=src, dst=dst, ttl=ttl, id=i) / UDP(sport=2000 + i, dport=9) / Raw(bytes([i]) * (30 + 11 * i))


def frame(i, kind):
    """An overlay frame (no tag) carrying IP, distinct per kind and index."""
    return Ether(src="02:aa:00:00:00:%02x" % i, dst="02:bb:00:00:00:%02x" % i) / \
        IP(src="192.168.%d.1" % kind, dst="192.168.%d.2" % kind, id=i) / UDP(sport=3000 + i, dport=9) / Raw(b"%c" % (65 + i) * (40 + i))


def tagged(f, vlan):
    e = Ether(bytes(f))
    return Ether(src=e.src, dst=e.dst) / Dot1Q(vlan=vlan) / e.payload


if sys.argv[1] == "gen":
    wrpcap(f"{d}/lan.pcap", [Ether(src=HOST_MAC, dst=cfg["mac"]["lan"]) / routed(i, "10.1.0.2", "10.2.0.2") for i in range(n)])
    l2 = []
    for i in range(n):
        l2 += [tagged(frame(i, 10), 10), tagged(frame(i, 20), 20)]
    wrpcap(f"{d}/l2.pcap", l2)
    wan, seq = [], 1
    for i in range(n):
        for inner in (IP(src=PEER, dst=US, proto=47) / GRE(key_present=1, key=5, proto=0x0800) / routed(i, "10.2.0.2", "10.1.0.2"),
                      IP(src=PEER, dst=US) / UDP(sport=50000 + i, dport=4789, chksum=0) / VXLAN(vni=77, flags=0x08) / frame(i, 10),
                      IP(src=PEER, dst=US, proto=97) / Raw(ETHERIP + bytes(frame(i, 20)))):
            wan.append(Ether(src=PEER_MAC, dst=cfg["mac"]["wan"]) / from_peer.encrypt(IP(bytes(inner)), seq_num=seq))
            seq += 1
    # A ping to the gateway's own address on gre1, through the protected tunnel: the host
    # stack answers on the tunnel interface, and the reply goes back through GRE and ESP.
    echo = IP(src=PEER, dst=US, proto=47) / GRE(key_present=1, key=5, proto=0x0800) / \
        IP(src="192.168.255.2", dst="192.168.255.1") / ICMP(type=8, id=7, seq=1) / Raw(b"ping-through-gre")
    wan.append(Ether(src=PEER_MAC, dst=cfg["mac"]["wan"]) / from_peer.encrypt(IP(bytes(echo)), seq_num=seq))
    # GRE in clear where the policy demands ESP: must be refused.
    wan.append(Ether(src=PEER_MAC, dst=cfg["mac"]["wan"]) / IP(src=PEER, dst=US, proto=47) / GRE(key_present=1, key=5, proto=0x0800) / routed(99, "10.2.0.2", "10.1.0.2"))
    wrpcap(f"{d}/wan.pcap", wan)
    sys.exit(0)

bad = []
out = [p for p in rdpcap(f"{d}/wan_tx.pcap") if IP in p]
seen = {"gre": [], "vxlan": [], "etherip": []}
for k, p in enumerate(out):
    if p[IP].proto != 50 or p[IP].src != US or p[IP].dst != PEER:
        bad.append(f"wan out {k}: not ESP {US}->{PEER}: {p.summary()}")
        continue
    try:
        inner = to_peer.decrypt(IP(bytes(p[IP])))
    except Exception as e:
        bad.append(f"wan out {k}: scapy cannot decrypt: {e}")
        continue
    if inner.src != US or inner.dst != PEER:
        bad.append(f"wan out {k}: tunnel endpoints {inner.src}->{inner.dst}")
    if inner.proto == 47:
        g = inner[GRE]
        if g.key_present != 1 or g.key != 5 or g.proto != 0x0800:
            bad.append(f"wan out {k}: GRE key/proto {g.key} {g.proto:#x}")
        if ICMP in g and g[ICMP].type == 0:
            e = g[IP]
            if (e.src, e.dst, e[ICMP].id, bytes(e[ICMP].payload)) != ("192.168.255.1", "192.168.255.2", 7, b"ping-through-gre"):
                bad.append(f"wan out {k}: echo reply {e.summary()}")
            seen["echo"] = True
            continue
        seen["gre"].append(bytes(g.payload))
    elif inner.proto == 17:
        u = inner[UDP]
        if u.dport != 4789 or u.chksum != 0 or VXLAN not in inner or inner[VXLAN].vni != 77:
            bad.append(f"wan out {k}: VXLAN header {u.dport} {u.chksum}")
        else:
            seen["vxlan"].append(bytes(inner[VXLAN].payload))
    elif inner.proto == 97:
        raw = bytes(inner.payload)
        if raw[:2] != ETHERIP:
            bad.append(f"wan out {k}: EtherIP header {raw[:2].hex()}")
        seen["etherip"].append(raw[2:])
    else:
        bad.append(f"wan out {k}: inner protocol {inner.proto}")
want = {
    "gre": [bytes(IP(bytes(routed(i, "10.1.0.2", "10.2.0.2", ttl=63)))) for i in range(n)],
    "vxlan": [bytes(frame(i, 10)) for i in range(n)],
    "etherip": [bytes(frame(i, 20)) for i in range(n)],
}
for kind in want:
    if seen[kind] != want[kind]:
        bad.append(f"{kind}: {len(seen[kind])} inner packets, {sum(a == b for a, b in zip(seen[kind], want[kind]))} as expected of {n}")

if not seen.get("echo"):
    bad.append("no echo reply from 192.168.255.1 through gre1")
lan = [bytes(p[IP]) for p in rdpcap(f"{d}/lan_tx.pcap") if IP in p and p[IP].src == "10.2.0.2"]
if lan != [bytes(IP(bytes(routed(i, "10.2.0.2", "10.1.0.2", ttl=63)))) for i in range(n)]:
    bad.append(f"lan: {len(lan)} packets from the peer's GRE, not the {n} expected")
l2 = rdpcap(f"{d}/l2_tx.pcap")
for vlan, kind in ((10, 10), (20, 20)):
    got = [p for p in l2 if Dot1Q in p and p[Dot1Q].vlan == vlan]
    exp = [bytes(tagged(frame(i, kind), vlan)) for i in range(n)]
    if [bytes(p) for p in got] != exp:
        bad.append(f"l2 vlan {vlan}: {len(got)} frames, not the {n} expected")
print(json.dumps({"errors": bad, "out": {k: (len(v) if isinstance(v, list) else v) for k, v in seen.items()}}))
sys.exit(1 if bad else 0)
