#!/usr/bin/env bash
# Builds kube-bench (Aqua Security's CIS Kubernetes Benchmark runner) from
# the Go module proxy into a cache directory keyed by version, with its
# benchmark definitions (the module's cfg/ folder) next to it, and prints
# the directory. A build already there is reused.
#
#   scripts/build-kube-bench.sh [VERSION] [DIR]
#
# VERSION defaults to $KUBE_BENCH_VERSION, else v0.14.0; DIR defaults to
# build/tools (relative to the repository root). The result is
# DIR/kube-bench-VERSION/kube-bench (static, CGO_ENABLED=0) and
# DIR/kube-bench-VERSION/cfg/ (as the module ships it; the tests add the
# image's paths to a copy of cfg/config.yaml).
#
# The build goes through a throw-away wrapper module that requires
# kube-bench, so that its dependencies resolve exactly as its go.mod pins
# them (verified by the Go checksum database).
set -euo pipefail

version="${1:-${KUBE_BENCH_VERSION:-v0.14.0}}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${2:-$root/build/tools}"
out="$dir/kube-bench-$version"

if [ -x "$out/kube-bench" ] && [ -f "$out/cfg/config.yaml" ]; then
	echo "$out"
	exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work" "$out.tmp"' EXIT
cat >"$work/go.mod" <<MOD
module nodebake.invalid/kube-bench-wrapper

go 1.24

require github.com/aquasecurity/kube-bench $version
MOD
cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/aquasecurity/kube-bench"
GO
echo "building kube-bench $version (once; cached in $out)" >&2
rm -rf "$out.tmp"
mkdir -p "$out.tmp"
(
	cd "$work"
	GOFLAGS=-mod=mod go mod tidy >&2
	CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
		-ldflags "-s -w -X github.com/aquasecurity/kube-bench/cmd.KubeBenchVersion=$version" \
		-o "$out.tmp/kube-bench" github.com/aquasecurity/kube-bench >&2
	moddir="$(GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' github.com/aquasecurity/kube-bench)"
	cp -R "$moddir/cfg" "$out.tmp/cfg"
	chmod -R u+w "$out.tmp/cfg"
)
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out"
