#!/bin/sh
# Time of nodebake's dm-verity hash tree against `veritysetup format` on the
# same data file (random data in the page cache, best of five runs each):
#   scripts/bench-verity.sh [MiB]     (default 200)
# Needs veritysetup (Debian package cryptsetup-bin). Prints one FIGURE line.
set -eu
cd "$(dirname "$0")/.."
NODEBAKE_BENCH=1 NODEBAKE_BENCH_VERITY_MIB="${1:-200}" go test -count=1 -timeout 10m -v -run '^TestBenchVeritysetup$' ./builder/verity |
	grep -E '^(FIGURE|--- FAIL|FAIL|ok|[[:space:]]+[a-z_]+_test.go)'
