#!/usr/bin/python3
"""ESP interop with Scapy as the peer (tunnel mode, IPv4 outer and inner).

  esp_interop.py gen    CFG.json DIR   writes DIR/plain.pcap (cleartext from the protected
                                       network, to be encrypted by ferrogate) and DIR/esp.pcap
                                       (Scapy-encrypted ESP for ferrogate to decrypt)
  esp_interop.py verify CFG.json DIR   decrypts ferrogate's DIR/out_tx.pcap with Scapy and
                                       compares with what was sent; compares DIR/in_tx.pcap
                                       (ferrogate's decryption) with Scapy's inner packets.
                                       Prints one JSON line; exit 1 on any mismatch.

CFG.json: {"crypt": Scapy crypt_algo, "auth": Scapy auth_algo or null, "key": hex,
           "auth_key": hex or "", "spi_out": n, "spi_in": n, "count": n, "gw_in_mac": "..",
           "gw_out_mac": ".."}
Addresses: host net 10.1.0.0/24 behind port "in" (host 10.1.0.2), remote net 10.2.0.0/24
behind the peer; gateway tunnel end 172.16.0.1, peer 172.16.0.2.
"""
import json, sys
from scapy.all import Ether, IP, UDP, Raw, wrpcap, rdpcap
from scapy.layers.ipsec import SecurityAssociation, ESP

cfg = json.load(open(sys.argv[2]))
d = sys.argv[3]
HOST_MAC, PEER_MAC = "02:00:00:00:01:02", "02:00:00:00:02:02"

def sa(spi, src, dst):
    kw = dict(spi=spi, crypt_algo=cfg["crypt"], crypt_key=bytes.fromhex(cfg["key"]),
              tunnel_header=IP(src=src, dst=dst, ttl=64))
    if cfg.get("auth"):
        kw.update(auth_algo=cfg["auth"], auth_key=bytes.fromhex(cfg["auth_key"]))
    return SecurityAssociation(ESP, **kw)

def plain(i, src, dst, ttl=64):
    return IP(src=src, dst=dst, ttl=ttl, id=i) / UDP(sport=1000 + i, dport=7) / Raw(bytes([i % 251]) * (20 + 37 * i % 900))

n = cfg["count"]
# ours → peer: what ferrogate encrypts with spi_out (peer decrypts); peer → ours: spi_in.
to_peer = sa(cfg["spi_out"], "172.16.0.1", "172.16.0.2")
from_peer = sa(cfg["spi_in"], "172.16.0.2", "172.16.0.1")

if sys.argv[1] == "gen":
    wrpcap(f"{d}/plain.pcap", [Ether(src=HOST_MAC, dst=cfg["gw_in_mac"]) / plain(i, "10.1.0.2", "10.2.0.2") for i in range(n)])
    wrpcap(f"{d}/esp.pcap", [Ether(src=PEER_MAC, dst=cfg["gw_out_mac"]) / from_peer.encrypt(plain(i, "10.2.0.2", "10.1.0.2"), seq_num=i + 1) for i in range(n)])
    sys.exit(0)

bad = []
out = [p for p in rdpcap(f"{d}/out_tx.pcap") if IP in p and p[IP].proto == 50]
for i, p in enumerate(out):
    try:
        inner = to_peer.decrypt(IP(bytes(p[IP])))
    except Exception as e:  # authentication failure or malformed
        bad.append(f"out {i}: scapy cannot decrypt: {e}")
        continue
    want = IP(bytes(plain(i, "10.1.0.2", "10.2.0.2", ttl=63)))
    if bytes(inner) != bytes(want):
        bad.append(f"out {i}: inner differs")
back = [p for p in rdpcap(f"{d}/in_tx.pcap") if IP in p and p[IP].src == "10.2.0.2"]
for i, p in enumerate(back):
    want = IP(bytes(plain(i, "10.2.0.2", "10.1.0.2", ttl=63)))
    if bytes(p[IP]) != bytes(want):
        bad.append(f"in {i}: decrypted packet differs")
print(json.dumps({"encrypted_ok": len(out), "decrypted_ok": len(back), "errors": bad[:5]}))
sys.exit(1 if bad or len(out) != n or len(back) != n else 0)
