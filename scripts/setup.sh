#!/usr/bin/env bash
# Prepares a Debian 12 machine to build, run and test ferrogate. Idempotent: installs only the
# packages that are missing, raises the hugepage reservation only when it is below the target,
# mounts hugetlbfs only when it is not mounted. Prints what it did; fails with a message naming
# what it could not do.
#
#   FERRO_HUGEPAGES   number of 2 MiB hugepages to reserve (default 1024 = 2 GiB)
set -euo pipefail

say() { echo "setup: $*"; }
die() { echo "setup: error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (installs packages, reserves hugepages, mounts hugetlbfs)"

PACKAGES=(
    dpdk dpdk-dev libdpdk-dev dpdk-doc libipsec-mb-dev pkg-config clang libclang-dev gcc make patch
    iproute2 iputils-ping ethtool tcpdump tshark python3-scapy python3-cryptography libpcap-dev
    strongswan strongswan-swanctl strongswan-charon strongswan-libcharon
    libstrongswan-standard-plugins libstrongswan-extra-plugins libcharon-extra-plugins
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    command -v apt-get >/dev/null || die "apt-get not found: a Debian-based system is required"
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture; answer once, non-interactively.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections || true
    apt-get update -q >/dev/null || die "apt-get update failed (is the Debian mirror reachable?)"
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install failed for: ${missing[*]}"
    # strongSwan's service is started by the tests in their own namespaces, not by systemd.
    if command -v systemctl >/dev/null && systemctl is-active -q strongswan-starter 2>/dev/null; then
        systemctl stop strongswan-starter || true
    fi
else
    say "packages already installed"
fi

pkg-config --exists libdpdk || die "pkg-config cannot find libdpdk after install"
say "DPDK $(pkg-config --modversion libdpdk), PMD plugins in $(ls -d "$(pkg-config --variable=libdir libdpdk)"/dpdk/pmds-* 2>/dev/null | head -1)"

# Hugepages (2 MiB). DPDK needs them for its mempools even with virtual devices.
want="${FERRO_HUGEPAGES:-1024}"
[[ "$want" =~ ^[0-9]+$ ]] || die "FERRO_HUGEPAGES must be a number of pages, got '$want'"
nr=/proc/sys/vm/nr_hugepages
[ -e "$nr" ] || die "this kernel has no hugepage support ($nr missing)"
have=$(cat "$nr")
if [ "$have" -lt "$want" ]; then
    echo "$want" > "$nr" 2>/dev/null || die "cannot write $nr (read-only /proc/sys in this container?)"
    got=$(cat "$nr")
    [ "$got" -ge "$want" ] || die "asked for $want hugepages, the kernel gave $got (memory fragmented? try fewer: FERRO_HUGEPAGES=$got)"
    say "reserved $got hugepages of 2 MiB (was $have)"
else
    say "hugepages: $have reserved (want $want)"
fi

if ! grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts; then
    mkdir -p /dev/hugepages
    mount -t hugetlbfs nodev /dev/hugepages || die "cannot mount hugetlbfs on /dev/hugepages"
    say "mounted hugetlbfs on /dev/hugepages"
else
    say "hugetlbfs mounted on /dev/hugepages"
fi

# Leftover runtime files of killed DPDK processes (not ours in --in-memory mode, but testpmd's).
find /dev/hugepages -maxdepth 1 -name 'ferro*map_*' -delete 2>/dev/null || true

command -v ip >/dev/null || die "iproute2 'ip' not found after install"
say "ready"
