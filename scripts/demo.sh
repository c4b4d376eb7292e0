#!/usr/bin/env bash
# The demo: ferrogate on net_af_packet over veth pairs into two network namespaces playing
# hosts A and B. A pings B through the gateway (the TTL B sees is one lower than A sent), then
# `ferroctl show stats` shows the workers' counters. Everything is torn down on exit.
#
#   A 10.0.1.2 --veth-- [a 10.0.1.1 | ferrogate | b 10.0.2.1] --veth-- 10.0.2.2 B
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "scripts/demo.sh: run as root (it creates namespaces and uses hugepages)" >&2
    exit 1
fi
cargo build --release --bins -q
BIN=$PWD/target/release
W=$(mktemp -d /tmp/ferrogate-demo.XXXXXX)
NA=fgdemoA NB=fgdemoB VA=fgdemoA0 VB=fgdemoB0
SOCK=$W/ferrogate.sock
PID=
cleanup() {
    [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    ip netns del $NA 2>/dev/null || true
    ip netns del $NB 2>/dev/null || true
    ip link del $VA 2>/dev/null || true
    ip link del $VB 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT
cleanup_stale() { ip netns del $NA 2>/dev/null || true; ip netns del $NB 2>/dev/null || true; ip link del $VA 2>/dev/null || true; ip link del $VB 2>/dev/null || true; }
cleanup_stale

for side in A B; do
    ns=fgdemo$side; v=fgdemo${side}0
    ip netns add $ns
    ip -n $ns link set lo up
    ip link add $v type veth peer name eth0 netns $ns
    sysctl -qw net.ipv6.conf.$v.disable_ipv6=1
    ip link set $v up
    ip netns exec $ns ethtool -K eth0 tx off >/dev/null
done
ip -n $NA addr add 10.0.1.2/24 dev eth0 && ip -n $NA link set eth0 up && ip -n $NA route add default via 10.0.1.1
ip -n $NB addr add 10.0.2.2/24 dev eth0 && ip -n $NB link set eth0 up && ip -n $NB route add default via 10.0.2.1

cat > $W/ferrogate.toml <<CFG
[system]
socket = "$SOCK"
file_prefix = "fgdemo"
worker_idle_sleep_us = 100

[[ports]]
name = "a"
devargs = "net_af_packet0,iface=$VA"
[[ports]]
name = "b"
devargs = "net_af_packet1,iface=$VB"

[[workers]]
lcore = 1
rx = ["a:0", "b:0"]

[[interfaces]]
name = "a"
port = "a"
addresses = ["10.0.1.1/24"]
[[interfaces]]
name = "b"
port = "b"
addresses = ["10.0.2.1/24"]
CFG

echo "== starting ferrogate (config $W/ferrogate.toml)"
$BIN/ferrogate --config $W/ferrogate.toml > $W/ferrogate.log 2>&1 &
PID=$!
for _ in $(seq 100); do
    $BIN/ferroctl --socket $SOCK ping >/dev/null 2>&1 && break
    kill -0 $PID 2>/dev/null || { cat $W/ferrogate.log; exit 1; }
    sleep 0.2
done
ctl() { $BIN/ferroctl --socket $SOCK "$@"; }

echo "== A pings B through the gateway with TTL 64; B captures what arrives"
ip netns exec $NB timeout 10 tcpdump -l -n -v -c 1 -i eth0 'icmp[icmptype] == icmp-echo' 2>/dev/null > $W/cap.txt &
CAP=$!
sleep 1
ip netns exec $NA ping -n -c 3 -i 0.3 -t 64 10.0.2.2
wait $CAP || true
echo "== TTL seen in B (sent with 64):"
grep -o 'ttl [0-9]*' $W/cap.txt | head -1
echo
echo "== ferroctl show interfaces"; ctl show interfaces
echo "== ferroctl show neighbors"; ctl show neighbors
echo "== ferroctl show routes"; ctl show routes
echo "== ferroctl show stats"; ctl show stats
echo "== ferroctl show errors"; ctl show errors
