#!/bin/sh
# Time and size of each publish format, nodebake's writer against the C tool
# that makes the same format, on a real worker image:
#   scripts/bench-formats.sh [out/worker.raw]
# Needs qemu-img, zstd, GNU tar and gzip. Prints one FIGURE line per format.
set -eu
raw="${1:-out/worker.raw}"
[ -f "$raw" ] || { echo "bench-formats: $raw not found (make image, or bin/nodebake build -o out images/worker.yaml)" >&2; exit 1; }
raw="$(cd "$(dirname "$raw")" && pwd)/$(basename "$raw")"
cd "$(dirname "$0")/.."
NODEBAKE_BENCH=1 NODEBAKE_BENCH_RAW="$raw" go test -count=1 -timeout 30m -v -run '^TestBenchFormats$' ./builder/publish/bench_test |
	grep -E '^(FIGURE|--- FAIL|FAIL|ok|[[:space:]]+bench_test)'
