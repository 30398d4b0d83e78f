#!/usr/bin/env bash
# Builds Packer from the Go module proxy into a cache directory keyed by
# version, and prints the path of the binary. A binary already there is
# reused.
#
#   plugin/scripts/build-packer.sh [VERSION] [DIR]
#
# VERSION defaults to $PACKER_VERSION, else v1.15.0; DIR defaults to
# build/tools (relative to the repository root). The binary is
# DIR/packer-VERSION/packer.
#
# Packer's go.mod replaces go-cty, so `go install packer@VERSION` is refused:
# the build goes through a throw-away wrapper module that requires Packer
# and repeats that replace.
set -euo pipefail

version="${1:-${PACKER_VERSION:-v1.15.0}}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="${2:-$root/build/tools}"
out="$dir/packer-$version/packer"

if [ -x "$out" ]; then
	echo "$out"
	exit 0
fi

# shellcheck source=../../scripts/lib/go-tool.sh
. "$root/scripts/lib/go-tool.sh"
go_tool_build "$out" github.com/hashicorp/packer "$version" 1.24.12 github.com/hashicorp/packer \
	'replace github.com/zclconf/go-cty => github.com/nywilken/go-cty v1.13.3'
echo "$out"
