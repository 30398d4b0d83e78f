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

# shellcheck source=lib/go-tool.sh
. "$root/scripts/lib/go-tool.sh"
go_tool_build "$out" github.com/containernetworking/cni "$version" 1.21 github.com/containernetworking/cni/cnitool
echo "$out"
