#!/usr/bin/env bash
# The demo: ferrogate on its embedded default configuration (`ferrogate --print-default`):
# virtual devices only — DPDK's net_af_packet on two veth pairs into network namespaces — and
# a VXLAN tunnel (VNI 42) to the Linux kernel's own VXLAN device, cross-connected to the
# whole "lan" port. A host on the lan side and the kernel VTEP share the overlay subnet
# 192.168.42.0/24: they ping each other through the tunnel, a capture on the underlay shows
# the VXLAN packets, and ferroctl shows the tunnel's counters. Everything is torn down on exit.
#
#   host 192.168.42.1 --fg-lan0-- [lan | ferrogate | wan 10.99.0.1] --fg-wan0-- 10.99.0.2 peer
#                                  (lan frames <-> VXLAN 42)            kernel vx0 192.168.42.2
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "scripts/demo.sh: run as root (it creates namespaces and uses hugepages)" >&2
    exit 1
fi
cargo build --release --bins -q
BIN=$PWD/target/release
W=$(mktemp -d /tmp/ferrogate-demo.XXXXXX)
HOST=fgdemo-host PEER=fgdemo-peer
SOCK=/run/ferrogate/ferrogate.sock
PID=
teardown() {
    ip netns del $HOST 2>/dev/null || true
    ip netns del $PEER 2>/dev/null || true
    ip link del fg-lan0 2>/dev/null || true
    ip link del fg-wan0 2>/dev/null || true
}
cleanup() {
    [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    teardown
    rm -rf "$W"
}
trap cleanup EXIT
teardown

# Two namespaces, each with a veth whose root-namespace end the daemon opens by name.
for pair in "$HOST fg-lan0" "$PEER fg-wan0"; do
    set -- $pair
    ip netns add "$1"
    # IPv4 only, so the capture below shows the pings rather than IPv6 housekeeping.
    ip netns exec "$1" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$1" link set lo up
    ip link add "$2" type veth peer name eth0 netns "$1"
    sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1"
    ip link set "$2" up
    # Let the hosts fill their own checksums (veth offload would leave them to "hardware").
    ip netns exec "$1" ethtool -K eth0 tx off >/dev/null
    ip -n "$1" link set eth0 up
done
# The overlay host; its MTU leaves room for the 50 bytes of VXLAN over the 1500 underlay.
ip -n $HOST addr add 192.168.42.1/24 dev eth0
ip -n $HOST link set eth0 mtu 1450
# The peer: underlay address and the kernel's VXLAN device (VNI 42) towards ferrogate.
ip -n $PEER addr add 10.99.0.2/24 dev eth0
ip -n $PEER link add vx0 type vxlan id 42 local 10.99.0.2 remote 10.99.0.1 dstport 4789 dev eth0
ip -n $PEER addr add 192.168.42.2/24 dev vx0
ip -n $PEER link set vx0 up

echo "== starting ferrogate on its embedded default configuration"
if [ -e /etc/ferrogate/ferrogate.toml ]; then
    # An installed configuration would win; run the embedded one explicitly.
    $BIN/ferrogate --print-default > "$W/default.toml"
    ARGS=(--config "$W/default.toml")
else
    ARGS=()
fi
$BIN/ferrogate "${ARGS[@]}" > "$W/ferrogate.log" 2>&1 &
PID=$!
for _ in $(seq 150); do
    $BIN/ferroctl --socket $SOCK ping >/dev/null 2>&1 && break
    kill -0 $PID 2>/dev/null || { cat "$W/ferrogate.log"; exit 1; }
    sleep 0.2
done
ctl() { $BIN/ferroctl --socket $SOCK "$@"; }

echo "== the underlay capture (peer side) will show the VXLAN packets"
ip netns exec $PEER timeout 10 tcpdump -l -n -v -c 2 -i eth0 'udp port 4789' 2>/dev/null > "$W/cap.txt" &
CAP=$!
sleep 1
echo "== overlay host 192.168.42.1 pings the kernel VTEP's 192.168.42.2 through VXLAN 42"
# The first request also waits for ARP over the tunnel and the gateway's ARP for the peer.
ip netns exec $HOST ping -n -c 4 -i 0.3 -W 2 192.168.42.2
echo "== and the other way"
ip netns exec $PEER ping -n -c 2 -i 0.3 -W 2 192.168.42.1
wait $CAP || true
echo "== underlay capture:"
cat "$W/cap.txt"
echo
echo "== ferroctl show tunnels"; ctl show tunnels
echo "== ferroctl show tunnels vx42"; ctl show tunnels vx42
echo "== ferroctl show xconnects"; ctl show xconnects
echo "== ferroctl show stats"; ctl show stats
echo "== ferroctl show errors"; ctl show errors
