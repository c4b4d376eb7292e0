#!/usr/bin/python3
"""Sequence-numbered UDP streams for end-to-end tests (no Scapy needed).

  udpstream.py recv PORT IDLE_S MAX_S        -> prints JSON {"count", "missing", "dups", "max_seq"}
  udpstream.py send DST PORT COUNT RATE [FLOWS]

The sender spreads datagrams over FLOWS source ports (one socket each) so RSS / fanout can
spread them; each datagram carries an 8-byte sequence number and padding to 64 bytes.
"""
import json, socket, struct, sys, time

def recv(port, idle, maxs):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind(("0.0.0.0", port))
    print("ready", flush=True, file=sys.stderr)
    seen, dups = set(), 0
    start = time.time(); last = None
    s.settimeout(0.2)
    while time.time() - start < maxs:
        try:
            d, _ = s.recvfrom(2048)
        except socket.timeout:
            if last is not None and time.time() - last > idle:
                break
            continue
        last = time.time()
        (seq,) = struct.unpack("!Q", d[:8])
        if seq in seen:
            dups += 1
        seen.add(seq)
    mx = max(seen) if seen else -1
    missing = sorted(set(range(mx + 1)) - seen)
    print(json.dumps({"count": len(seen), "missing": missing[:100], "n_missing": len(missing), "dups": dups, "max_seq": mx}))

def send(dst, port, count, rate, flows):
    socks = []
    for i in range(flows):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 0))
        socks.append(s)
    gap = 1.0 / rate
    t0 = time.time()
    for seq in range(count):
        socks[seq % flows].sendto(struct.pack("!Q", seq) + b"\x5a" * 56, (dst, port))
        target = t0 + (seq + 1) * gap
        while time.time() < target:
            pass
    print(json.dumps({"sent": count, "secs": round(time.time() - t0, 3)}))

if __name__ == "__main__":
    if sys.argv[1] == "recv":
        recv(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
    else:
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]) if len(sys.argv) > 6 else 1)
