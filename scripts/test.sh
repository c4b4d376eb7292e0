#!/usr/bin/env bash
# Every test of the project: unit and property tests, the in-process control-loop test, and the
# end-to-end / interop tests that start the real daemon on DPDK virtual devices with network
# namespaces, Scapy, tshark and the Linux kernel as peers. Needs root and hugepages
# (it runs scripts/setup.sh first, which prepares both).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "scripts/test.sh: run as root (the end-to-end tests create namespaces and use hugepages)" >&2
    exit 1
fi
# Idempotent: installs what is missing, reserves hugepages; quick when all is in place.
scripts/setup.sh
# One optimised build serves the binaries the end-to-end tests start and the tests themselves.
cargo build --profile ci --workspace --bins
cargo test --profile ci --workspace -- --test-threads="${FERRO_TEST_THREADS:-2}"
