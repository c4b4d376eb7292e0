#!/usr/bin/python3
"""A TCP stream with a checksum at both ends (no Scapy needed).

  tcpstream.py recv PORT MAX_S              accepts one connection, reads to EOF, prints JSON
                                            {"bytes", "sha256"}
  tcpstream.py send HOST PORT BYTES SEED    sends BYTES pseudo-random bytes (from SEED), prints
                                            {"bytes", "sha256"}
"""
import hashlib, json, random, socket, sys, time

def recv(port, maxs):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(1)
    s.settimeout(maxs)
    print("ready", flush=True, file=sys.stderr)
    c, _ = s.accept()
    c.settimeout(maxs)
    h, n, end = hashlib.sha256(), 0, time.time() + maxs
    while time.time() < end:
        d = c.recv(65536)
        if not d:
            break
        h.update(d)
        n += len(d)
    print(json.dumps({"bytes": n, "sha256": h.hexdigest()}))

def send(host, port, total, seed):
    rnd = random.Random(seed)
    s = socket.create_connection((host, port), timeout=30)
    h, n = hashlib.sha256(), 0
    while n < total:
        d = rnd.randbytes(min(65536, total - n))
        s.sendall(d)
        h.update(d)
        n += len(d)
    s.shutdown(socket.SHUT_WR)
    s.settimeout(30)
    while s.recv(65536):
        pass
    s.close()
    print(json.dumps({"bytes": n, "sha256": h.hexdigest()}))

if __name__ == "__main__":
    if sys.argv[1] == "recv":
        recv(int(sys.argv[2]), float(sys.argv[3]))
    else:
        send(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
