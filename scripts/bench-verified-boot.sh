#!/bin/sh
# Boot time of the worker image under QEMU (TCG unless KVM works): plain,
# as a verified disk (dm-verity root, UKI), and signed under enforced Secure
# Boot, booted in turns, medians of N rounds (default 3):
#   scripts/bench-verified-boot.sh [N]
# Needs what the slow tests need (the base built with the verity initrd,
# QEMU, OVMF; virt-fw-vars or Debian's snakeoil OVMF store). Set
# NODEBAKE_QEMU_LOCK to a lock file to share the machine with other guests,
# NODEBAKE_BASE_LAYOUT to build from another base. Prints FIGURE lines.
set -eu
cd "$(dirname "$0")/.."
NODEBAKE_SLOW=1 NODEBAKE_BENCH=1 NODEBAKE_BENCH_BOOTS="${1:-3}" go test -count=1 -timeout 90m -v -run '^TestBenchBoot$' ./test/verified |
	grep -E '^(FIGURE|--- FAIL|FAIL|ok|[[:space:]]+[a-z_]+_test.go)'
