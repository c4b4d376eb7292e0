#!/usr/bin/python3
"""ESP interop with Scapy as the peer: every case is one SA pair (an algorithm in one mode)
between ferrogate and a Scapy "peer gateway", all driven through one daemon run on net_pcap.

  esp_interop.py gen    SPEC.json DIR   writes DIR/plain.pcap (cleartext from the hosts behind
                                        ferrogate, for ferrogate to encrypt) and DIR/esp.pcap
                                        (ESP made by the peer, for ferrogate to decrypt)
  esp_interop.py verify SPEC.json DIR   decrypts ferrogate's DIR/out_tx.pcap with the peer's
                                        SAs and compares with what was sent; compares
                                        DIR/in_tx.pcap (ferrogate's decryption) with the
                                        peer's cleartext. Prints one JSON object; exit 1 on
                                        any mismatch or missing packet.
  esp_interop.py stream SPEC.json DIR SEQS
                                        writes DIR/esp.pcap: for each comma-separated SEQ
                                        ("seq" for the first case, "k/seq" for case k) in
                                        order, the peer sends packet `seq` (UDP source port
                                        2000 + seq); a leading "!" makes it a forgery (ICV
                                        corrupted). DIR/plain.pcap is empty.
  esp_interop.py tshark SPEC.json DIR   has tshark decrypt DIR/out_tx.pcap with ferrogate's
                                        outbound keys (cases with a "tshark" entry) and
                                        checks the inner packet fields it shows, the ICV
                                        check, and that there is no expert info or malformed
                                        packet. Prints one JSON object; exit 1 on a mismatch.

SPEC.json: {"count": n, "gw_in_mac", "gw_out_mac", "host_mac", "peer_mac",
            "cases": [{"k", "mode", "crypt", "auth", "key", "auth_key", "spi_out", "spi_in",
                       "esn": bool, "initial_seq": n, "tshark": [enc, auth] or null}]}
  crypt: a Scapy crypt_algo name, or "AES-GMAC" (see GmacSA: Scapy 2.5 has no GMAC).
  mode:  4in4 | 6in4 | 4in6 | 6in6 (tunnel: inner "in" outer) | tr4 | tr6 (transport).

Addresses for case k (ferrogate = "gw", Scapy = "peer"):
  hosts behind gw   10.1.k.2        fd01:0:0:k::2     (port "in")
  hosts behind peer 10.2.k.2        fd02:0:0:k::2
  gw / peer on WAN  172.16.0.1/.2   fd10::1 / fd10::2 (port "out")
Tunnel cases: the host sends UDP to the remote host (ferrogate encrypts, the peer decrypts)
and the remote host sends UDP to the host (the peer encrypts, ferrogate decrypts).
Transport cases (ferrogate acting as a host, RFC 4301 §4.1): the remote host sends ICMP echo
requests to the gateway's WAN address in transport-mode ESP (ferrogate decrypts, its host
stack answers) and the echo replies come back in transport-mode ESP (the peer decrypts).
"""
import ipaddress
import json
import os
import struct
import subprocess
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from scapy.all import Ether, IP, IPv6, UDP, ICMP, Raw, wrpcap, rdpcap
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6EchoReply
from scapy.layers.ipsec import ESP, SecurityAssociation, split_for_transport

GW4, PEER4, GW6, PEER6 = "172.16.0.1", "172.16.0.2", "fd10::1", "fd10::2"
HASHES = {"HMAC-SHA1-96": (hashes.SHA1, 12), "SHA2-256-128": (hashes.SHA256, 16),
          "SHA2-384-192": (hashes.SHA384, 24), "SHA2-512-256": (hashes.SHA512, 32)}


def inner_v6(c):
    return c["mode"] in ("6in4", "6in6", "tr6")


def outer_v6(c):
    return c["mode"] in ("4in6", "6in6", "tr6")


def tunnel(c):
    return not c["mode"].startswith("tr")


def host(c):
    return f"fd01:0:0:{c['k']:x}::2" if inner_v6(c) else f"10.1.{c['k']}.2"


def remote(c):
    return f"fd02:0:0:{c['k']:x}::2" if inner_v6(c) else f"10.2.{c['k']}.2"


def gw_wan(c):
    return GW6 if outer_v6(c) else GW4


def peer_wan(c):
    return PEER6 if outer_v6(c) else PEER4


def ip(c, src, dst, hops=64, ident=0):
    if inner_v6(c):
        return IPv6(src=src, dst=dst, hlim=hops)
    return IP(src=src, dst=dst, ttl=hops, id=ident)


def body(c, i):
    # Sizes sweep every padding length of every suite (4- and 16-octet alignment).
    n = 1 + (37 * i + 11 * c["k"]) % 600
    return bytes((c["k"] + i + j) & 0xFF for j in range(n))


def to_remote(c, i, hops=64):
    """Cleartext the host behind ferrogate sends (tunnel cases)."""
    return ip(c, host(c), remote(c), hops, ident=i) / UDP(sport=1000 + i, dport=7) / Raw(body(c, i))


def from_remote(c, i, hops=64):
    """Cleartext the remote host sends through the peer (tunnel cases)."""
    return ip(c, remote(c), host(c), hops, ident=0x100 + i) / UDP(sport=2000 + i, dport=9) / Raw(body(c, i + 50))


def echo(c, i, reply=False):
    """An echo request from the remote host to the gateway (or the reply we expect)."""
    src, dst = remote(c), gw_wan(c)
    if reply:
        src, dst = dst, src
    data = body(c, i)
    if inner_v6(c):
        cls = ICMPv6EchoReply if reply else ICMPv6EchoRequest
        return IPv6(src=src, dst=dst, hlim=64) / cls(id=c["k"], seq=i, data=data)
    return IP(src=src, dst=dst, ttl=64, id=0x200 + i) / ICMP(type=0 if reply else 8, id=c["k"], seq=i) / Raw(data)


def l3(pkt):
    """The IP layer of a frame, re-parsed on its own."""
    if IPv6 in pkt:
        return IPv6(bytes(pkt[IPv6]))
    return IP(bytes(pkt[IP]))


class GmacSA:
    """ENCR_NULL_AUTH_AES_GMAC (RFC 4543) over the Python `cryptography` library's AES-GCM:
    the whole ESP packet (SPI, sequence number or, with ESN, SPI || high || low, IV, payload,
    padding, pad length, next header) is the AAD of a GCM with an empty plaintext; the
    16-octet tag is the ICV. Scapy 2.5 has no GMAC, so this class stands in for it with the
    same encrypt/decrypt interface (tunnel and transport, ESN)."""

    def __init__(self, spi, key, tunnel_header=None, esn_en=False, esn=0, seq_num=1):
        self.spi, self.key, self.salt = spi, key[:-4], key[-4:]
        self.tunnel_header, self.esn_en, self.esn, self.seq_num = tunnel_header, esn_en, esn, seq_num

    def _aad(self, seq, rest):
        if self.esn_en:
            return struct.pack("!LLL", self.spi, self.esn, seq) + rest
        return struct.pack("!LL", self.spi, seq) + rest

    def encrypt(self, pkt, seq_num=None):
        seq = self.seq_num if seq_num is None else seq_num
        if seq_num is None:
            self.seq_num += 1
        if self.tunnel_header is not None:
            hdr = self.tunnel_header.copy()
            nh = 41 if isinstance(pkt, IPv6) else 4
            payload = bytes(pkt)
        else:
            hdr, nh, payload = split_for_transport(pkt, 50)
            payload = bytes(payload)
        iv = os.urandom(8)
        pad = -(len(payload) + 2) % 4
        clear = iv + payload + bytes(range(1, pad + 1)) + bytes([pad, nh])
        tag = AESGCM(self.key).encrypt(self.salt + iv, b"", self._aad(seq & 0xFFFFFFFF, clear))
        out = hdr / ESP(spi=self.spi, seq=seq & 0xFFFFFFFF, data=clear + tag)
        if isinstance(out, IP):
            del out.len, out.chksum
            out.proto = 50
        else:
            del out.plen
        return out.__class__(bytes(out))

    def decrypt(self, pkt):
        e = pkt[ESP]
        if e.spi != self.spi:
            raise TypeError(f"spi {e.spi:#x} is not {self.spi:#x}")
        clear, tag = e.data[:-16], e.data[-16:]
        try:
            AESGCM(self.key).decrypt(self.salt + clear[:8], tag, self._aad(e.seq, clear))
        except InvalidTag as err:
            raise ValueError(f"GMAC ICV mismatch: {err!r}")
        nh, pad = clear[-1], clear[-2]
        if clear[-2 - pad:-2] != bytes(range(1, pad + 1)):
            raise ValueError("bad padding")
        payload = clear[8:-2 - pad]
        if self.tunnel_header is not None:
            return (IPv6 if nh == 41 else IP)(payload)
        outer = pkt.copy()
        outer[ESP].underlayer.remove_payload()
        if isinstance(outer, IP):
            outer.proto = nh
            del outer.len, outer.chksum
        else:
            outer.nh = nh
            del outer.plen
        return outer.__class__(bytes(outer / Raw(payload)))


class EsnHmacSA:
    """AES-CBC/NULL with an HMAC under ESN. Scapy 2.5 leaves the ESN high half out of the ESP
    ICV (its AuthAlgo.sign/verify ignore esn for ESP), so the ICV is computed here per
    RFC 4303 §2.2.1 (HMAC over the ESP packet followed by the high 32 bits) with the
    `cryptography` library, and Scapy does the encryption and framing."""

    def __init__(self, c, **kw):
        self.alg, self.icv = HASHES[c["auth"]]
        self.akey = bytes.fromhex(c["auth_key"])
        self.inner = SecurityAssociation(ESP, crypt_algo=c["crypt"], crypt_key=bytes.fromhex(c["key"]), **kw)

    def _mac(self, data, high):
        h = hmac.HMAC(self.akey, self.alg())
        h.update(data + struct.pack("!L", high))
        return h.finalize()[: self.icv]

    def encrypt(self, pkt, seq_num, esn):
        p = self.inner.encrypt(pkt, seq_num=seq_num)
        p[ESP].data += self._mac(bytes(p[ESP]), esn)
        if isinstance(p, IP):
            del p.len, p.chksum
        else:
            del p.plen
        return p.__class__(bytes(p))

    def decrypt(self, pkt, esn):
        e = pkt[ESP]
        if self._mac(bytes(e)[: -self.icv], esn) != bytes(e)[-self.icv:]:
            raise ValueError("HMAC ICV mismatch")
        q = pkt.copy()
        q[ESP].data = q[ESP].data[: -self.icv]
        return self.inner.decrypt(q, verify=False)


def make_sa(c, spi, src, dst):
    hdr = None
    if tunnel(c):
        hdr = IPv6(src=src, dst=dst, hlim=64) if outer_v6(c) else IP(src=src, dst=dst, ttl=64)
    key = bytes.fromhex(c["key"])
    if c["crypt"] == "AES-GMAC":
        return GmacSA(spi, key, tunnel_header=hdr, esn_en=c.get("esn", False))
    kw = dict(spi=spi, tunnel_header=hdr)
    if c.get("esn") and c.get("auth"):
        return EsnHmacSA(c, **kw)
    kw.update(crypt_algo=c["crypt"], crypt_key=key, esn_en=c.get("esn", False))
    if c.get("auth"):
        kw.update(auth_algo=c["auth"], auth_key=bytes.fromhex(c["auth_key"]))
    return SecurityAssociation(ESP, **kw)


def seal(sa, pkt, seq):
    """Encrypt with the full (64-bit under ESN) sequence number `seq`."""
    lo, hi = seq & 0xFFFFFFFF, seq >> 32
    if isinstance(sa, EsnHmacSA):
        sa.inner.seq_num = lo
        return sa.encrypt(pkt, None, hi)
    # Scapy takes `seq_num or self.seq_num` and `esn or self.esn`: set both on the SA so
    # that low half 0 (at 2^32) and high half 0 are taken as given.
    sa.seq_num, sa.esn = lo, hi
    return sa.encrypt(pkt)


def unseal(sa, pkt, seq):
    hi = seq >> 32
    if isinstance(sa, EsnHmacSA):
        return sa.decrypt(pkt, hi)
    sa.esn = hi
    return sa.decrypt(pkt)


def peer_out(c):
    """The peer's outbound SA (ferrogate's inbound, spi_in)."""
    return make_sa(c, c["spi_in"], peer_wan(c), gw_wan(c))


def peer_in(c):
    """The peer's inbound SA (ferrogate's outbound, spi_out)."""
    return make_sa(c, c["spi_out"], gw_wan(c), peer_wan(c))


def gen(spec, d):
    n, cases = spec["count"], spec["cases"]
    plain, esp = [], []
    sas = {c["k"]: peer_out(c) for c in cases}
    for i in range(n):
        # Interleave the cases so that consecutive packets belong to different SAs.
        for c in cases:
            first = c.get("initial_seq", 1)
            if tunnel(c):
                plain.append(Ether(src=spec["host_mac"], dst=spec["gw_in_mac"]) / to_remote(c, i))
                clear = from_remote(c, i)
            else:
                clear = echo(c, i)
            esp.append(Ether(src=spec["peer_mac"], dst=spec["gw_out_mac"]) / seal(sas[c["k"]], clear, first + i))
    if plain:
        wrpcap(f"{d}/plain.pcap", plain)
    wrpcap(f"{d}/esp.pcap", esp)


def verify(spec, d):
    n, cases = spec["count"], spec["cases"]
    by_spi = {c["spi_out"]: c for c in cases}
    bad, unexpected = [], 0
    ok = {c["k"]: {"encrypted_ok": 0, "decrypted_ok": 0} for c in cases}
    seqs = {c["k"]: [] for c in cases}
    sas = {c["k"]: peer_in(c) for c in cases}
    for f in rdpcap(f"{d}/out_tx.pcap"):
        p = l3(f)
        if ESP not in p:
            unexpected += 1
            continue
        c = by_spi.get(p[ESP].spi)
        if c is None:
            bad.append(f"ESP with unknown SPI {p[ESP].spi:#x}")
            continue
        tag = f"{c['mode']} {c['crypt']}/{c['auth']} spi {c['spi_out']:#x}"
        first = c.get("initial_seq", 1)
        # The full sequence number: the next expected one (packets of an SA leave in order).
        seq = first + len(seqs[c["k"]])
        seqs[c["k"]].append(p[ESP].seq)
        if p[ESP].seq != seq & 0xFFFFFFFF:
            bad.append(f"{tag}: sequence {p[ESP].seq}, expected {seq & 0xFFFFFFFF}")
        if (p.src, p.dst) != ((gw_wan(c), peer_wan(c)) if tunnel(c) else (gw_wan(c), remote(c))):
            bad.append(f"{tag}: outer {p.src} -> {p.dst}")
        try:
            inner = unseal(sas[c["k"]], p, seq)
        except Exception as e:  # ICV mismatch, bad padding, malformed
            bad.append(f"{tag}: the peer cannot decrypt seq {seq:#x}: {e!r}")
            continue
        if tunnel(c):
            i = inner[UDP].sport - 1000 if UDP in inner else -1
            same = 0 <= i < n and bytes(inner) == bytes(to_remote(c, i, hops=63))
        else:
            # The reply's IP header (identification, TTL, flags) is the host stack's choice:
            # compare addresses and the whole ICMP message.
            icmp = ICMPv6EchoReply if inner_v6(c) else ICMP
            i = inner[icmp].seq if icmp in inner else -1
            same = False
            if 0 <= i < n:
                want = echo(c, i, reply=True)
                want = want.__class__(bytes(want))
                same = ((inner.src, inner.dst) == (want.src, want.dst)
                        and bytes(inner[icmp]) == bytes(want[icmp]))
        if not same:
            bad.append(f"{tag}: decrypted packet {i} differs: {bytes(inner)[:64].hex()}")
            continue
        ok[c["k"]]["encrypted_ok"] += 1
    by_pair = {(remote(c), host(c)): c for c in cases if tunnel(c)}
    try:
        back = rdpcap(f"{d}/in_tx.pcap")
    except FileNotFoundError:
        back = []
    for f in back:
        p = l3(f)
        c = by_pair.get((p.src, p.dst))
        if c is None or UDP not in p:
            unexpected += 1
            continue
        i = p[UDP].sport - 2000
        want = from_remote(c, i, hops=63)
        if not 0 <= i < n or bytes(p) != bytes(want.__class__(bytes(want))):
            bad.append(f"{c['mode']} {c['crypt']}/{c['auth']}: decrypted packet {i} differs")
            continue
        ok[c["k"]]["decrypted_ok"] += 1
    for c in cases:
        if not tunnel(c):
            # Each echo reply proves that the request was decrypted.
            ok[c["k"]]["decrypted_ok"] = ok[c["k"]]["encrypted_ok"]
        for what in ("encrypted_ok", "decrypted_ok"):
            if ok[c["k"]][what] != n:
                bad.append(f"{c['mode']} {c['crypt']}/{c['auth']}: {what} {ok[c['k']][what]} of {n}")
    print(json.dumps({"cases": len(cases), "errors": bad[:40], "n_errors": len(bad),
                      "unexpected": unexpected, "per_case": ok}))
    return 1 if bad or unexpected else 0


def stream(spec, d, seqs):
    cases = {c["k"]: c for c in spec["cases"]}
    sas = {k: peer_out(c) for k, c in cases.items()}
    frames = []
    for s in seqs.split(","):
        forged = s.startswith("!")
        k, _, seq = s.lstrip("!").rpartition("/")
        c, seq = cases[int(k or spec["cases"][0]["k"])], int(seq)
        p = seal(sas[c["k"]], from_remote(c, seq), seq)
        if forged:
            p[ESP].data = p[ESP].data[:-1] + bytes([p[ESP].data[-1] ^ 0x80])
        frames.append(Ether(src=spec["peer_mac"], dst=spec["gw_out_mac"]) / p)
    wrpcap(f"{d}/esp.pcap", frames)
    wrpcap(f"{d}/plain.pcap", [])


TSHARK_FIELDS = ["esp.spi", "esp.sequence", "esp.icv_good", "ip.src", "ip.dst", "ip.ttl",
                 "ipv6.src", "ipv6.dst", "ipv6.hlim", "udp.srcport", "udp.dstport",
                 "udp.payload", "icmp.type", "icmp.seq", "icmpv6.type",
                 "icmpv6.echo.sequence_number", "data.data", "_ws.expert", "_ws.malformed"]


def tshark(spec, d):
    """tshark (Wireshark's ESP dissector, with its own crypto) decrypts what ferrogate sent."""
    n, cases = spec["count"], [c for c in spec["cases"] if c.get("tshark")]
    uat = []
    for c in cases:
        enc, auth = c["tshark"]
        dst = peer_wan(c) if tunnel(c) else remote(c)
        akey = "0x" + c["auth_key"] if c["auth_key"] else ""
        ekey = "0x" + c["key"] if c["key"] else ""
        rec = f'"{"IPv6" if outer_v6(c) else "IPv4"}","{gw_wan(c)}","{dst}","0x{c["spi_out"]:08x}","{enc}","{ekey}","{auth}","{akey}"'
        uat += ["-o", f"uat:esp_sa:{rec}"]
    cmd = ["tshark", "-n", "-r", f"{d}/out_tx.pcap", "-o", "esp.enable_encryption_decode:TRUE",
           "-o", "esp.enable_authentication_check:TRUE", *uat, "-T", "fields",
           "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in TSHARK_FIELDS:
        cmd += ["-e", f]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(json.dumps({"errors": [f"tshark failed: {r.stderr[-500:]}"], "n_errors": 1}))
        return 1
    by_spi = {c["spi_out"]: c for c in cases}
    seen = {c["k"]: 0 for c in cases}
    index = {c["k"]: 0 for c in cases}
    bad, frames = [], 0
    norm = lambda a: str(ipaddress.ip_address(a))
    for line in r.stdout.splitlines():
        v = dict(zip(TSHARK_FIELDS, line.split("\t")))
        frames += 1
        if v.get("_ws.expert") or v.get("_ws.malformed"):
            bad.append(f"frame {frames}: expert info or malformed: {line[:200]}")
        if not v.get("esp.spi"):
            continue
        c = by_spi.get(int(v["esp.spi"], 16))
        if c is None:
            continue
        i = index[c["k"]]
        index[c["k"]] += 1
        tag = f"{c['mode']} {c['crypt']}/{c['auth']} spi {c['spi_out']:#x} packet {i}"
        ips4 = [norm(a) for a in v["ip.src"].split(",") if a] + [norm(a) for a in v["ip.dst"].split(",") if a]
        ips6 = [norm(a) for a in v["ipv6.src"].split(",") if a] + [norm(a) for a in v["ipv6.dst"].split(",") if a]
        want = {"esp.sequence": str(c.get("initial_seq", 1) + i), "esp.icv_good": "1"}
        h, r_ = norm(host(c)), norm(remote(c))
        g, p = norm(gw_wan(c)), norm(peer_wan(c))
        if tunnel(c):
            want.update({"udp.srcport": str(1000 + i), "udp.dstport": "7",
                         "udp.payload": body(c, i).hex()})
            outer, inner = ([g, p], [h, r_])
            # ip.src,ip.dst lists hold the outer then the inner address of each family.
            if c["mode"] == "4in4":
                want_ips = ([g, h, p, r_], [])
                want["ip.ttl"] = "64,63"
            elif c["mode"] == "6in6":
                want_ips = ([], [g, h, p, r_])
                want["ipv6.hlim"] = "64,63"
            elif c["mode"] == "6in4":
                want_ips = (outer, inner)
                want["ipv6.hlim"] = "63"
            else:
                want_ips = (inner, outer)
                want["ip.ttl"] = "63"
        else:
            want["data.data"] = body(c, i).hex()
            want_ips = ([], [g, r_]) if outer_v6(c) else ([g, r_], [])
            if outer_v6(c):
                want.update({"icmpv6.type": "129", "icmpv6.echo.sequence_number": str(i)})
            else:
                want.update({"icmp.type": "0", "icmp.seq": str(i)})
        diff = {k: (v.get(k), w) for k, w in want.items() if v.get(k) != w}
        if (ips4, ips6) != want_ips:
            diff["addresses"] = ((ips4, ips6), want_ips)
        if diff:
            bad.append(f"{tag}: " + "; ".join(f"{k}: got {str(a)[:80]} want {str(b)[:80]}" for k, (a, b) in diff.items()))
        else:
            seen[c["k"]] += 1
    for c in cases:
        if seen[c["k"]] != n:
            bad.append(f"{c['mode']} {c['crypt']}/{c['auth']}: tshark showed {seen[c['k']]} of {n} inner packets")
    print(json.dumps({"frames": frames, "cases": len(cases), "decrypted": sum(seen.values()),
                      "errors": bad[:40], "n_errors": len(bad)}))
    return 1 if bad else 0


if __name__ == "__main__":
    spec = json.load(open(sys.argv[2]))
    if sys.argv[1] == "gen":
        gen(spec, sys.argv[3])
        sys.exit(0)
    if sys.argv[1] == "stream":
        stream(spec, sys.argv[3], sys.argv[4])
        sys.exit(0)
    if sys.argv[1] == "tshark":
        sys.exit(tshark(spec, sys.argv[3]))
    sys.exit(verify(spec, sys.argv[3]))
