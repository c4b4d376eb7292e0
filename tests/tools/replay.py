#!/usr/bin/python3
"""Send the frames of a capture out of an interface, as captured (an attacker replaying).

  replay.py IFACE PCAP   prints JSON {"sent": n, "esp_seqs": [...]}
"""
import json, sys
from scapy.all import rdpcap, sendp
from scapy.layers.ipsec import ESP

frames = rdpcap(sys.argv[2])
sendp(frames, iface=sys.argv[1], verbose=False)
print(json.dumps({"sent": len(frames), "esp_seqs": [f[ESP].seq for f in frames if ESP in f]}))
