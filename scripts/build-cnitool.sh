#!/usr/bin/env bash
# Builds cnitool (the CNI project's own command that runs a network
# configuration list's plugins as a container runtime does) from the Go
# module proxy into a cache directory keyed by version, and prints the path
# of the binary. A binary already there is reused. The tests bake it into a
# test image to attach a network namespace to the pod network with the
# image's own CNI configuration.
#
#   scripts/build-cnitool.sh [VERSION] [DIR]
#
# VERSION defaults to $CNITOOL_VERSION, else v1.3.0 (the libcni of the
# pinned CNI plugins v1.8.0); DIR defaults to build/tools (relative to the
# repository root). The binary is DIR/cnitool-VERSION/cnitool.
set -euo pipefail

version="${1:-${CNITOOL_VERSION:-v1.3.0}}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${2:-$root/build/tools}"
out="$dir/cnitool-$version/cnitool"

if [ -x "$out" ]; then
	echo "$out"
	exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat >"$work/go.mod" <<MOD
module nodebake.invalid/cnitool-wrapper

go 1.21

require github.com/containernetworking/cni $version
MOD
cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/containernetworking/cni/cnitool"
GO
echo "building cnitool $version (once; cached as $out)" >&2
(
	cd "$work"
	GOFLAGS=-mod=mod go mod tidy >&2
	mkdir -p "$(dirname "$out")"
	CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$out.tmp" github.com/containernetworking/cni/cnitool >&2
)
mv -f "$out.tmp" "$out"
echo "$out"
