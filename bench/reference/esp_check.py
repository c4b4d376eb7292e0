#!/usr/bin/python3
"""Correctness of a measured ESP path, checked by Scapy (an implementation nobody here wrote).
ferrobench writes this file into its scratch directory and runs it after a one-pass capture.

  esp_check.py out SA.json PLAIN.pcap OUT.pcap   Scapy decrypts every ESP frame the program
                                                sent and finds its inner packet among the plain
                                                input packets.
  esp_check.py in  SA.json ESP.pcap   OUT.pcap   Scapy decrypts every input ESP frame (so the
                                                input itself is proven valid for the SA) and
                                                finds every packet the program sent among them.

SA.json: {"crypt": Scapy crypt_algo, "key": hex, "auth": Scapy auth_algo or null,
          "auth_key": hex, "spi": n, "src": outer source, "dst": outer destination}
Packets are compared from the IPv4 source address on (like bench-reference/check_output.py):
TTL, checksum, ID and TOS may legitimately change on the way through a router.
Prints one JSON line {"frames", "ok", "bad", "first_error"}; exit 1 unless all frames match
and as many came out as went in.
"""
import json, sys
from collections import Counter
from scapy.all import rdpcap, IP
from scapy.layers.ipsec import SecurityAssociation, ESP

d, cfg, inp, out = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3], sys.argv[4]
kw = dict(spi=cfg["spi"], crypt_algo=cfg["crypt"], crypt_key=bytes.fromhex(cfg["key"]),
          tunnel_header=IP(src=cfg["src"], dst=cfg["dst"]))
if cfg.get("auth"):
    kw.update(auth_algo=cfg["auth"], auth_key=bytes.fromhex(cfg["auth_key"]))
sa = SecurityAssociation(ESP, **kw)


def key(ip_bytes):
    return bytes(ip_bytes)[12:]


def decrypt(frame):
    # Scapy's decrypt modifies its argument: give it a copy.
    return sa.decrypt(IP(bytes(frame[IP])))


ins = rdpcap(inp)
# Only IPv4 counts (ESP on the way out, the inner packets on the way in); anything else a
# program might emit on the port (ARP, ...) is not part of the measured path.
outs = [p for p in rdpcap(out) if IP in p and (d == "in" or p[IP].proto == 50)]
want, first_error = Counter(), None
if d == "out":
    want.update(key(p[IP]) for p in ins)
else:
    for p in ins:
        want[key(decrypt(p))] += 1
ok = bad = 0
for i, p in enumerate(outs):
    try:
        k = key(decrypt(p) if d == "out" else p[IP])
    except Exception as e:  # authentication failure, not ESP, malformed
        bad += 1
        first_error = first_error or f"frame {i}: {e!r}"
        continue
    if want[k] > 0:
        want[k] -= 1
        ok += 1
    else:
        bad += 1
        first_error = first_error or f"frame {i}: no such input packet"
if len(outs) != len(ins):
    first_error = first_error or f"{len(ins)} frames in, {len(outs)} out"
print(json.dumps({"frames": len(outs), "inputs": len(ins), "ok": ok, "bad": bad,
                  "first_error": first_error}))
sys.exit(0 if bad == 0 and ok == len(ins) else 1)
