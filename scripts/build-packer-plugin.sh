#!/usr/bin/env bash
# Builds one of HashiCorp's Packer plugins from the Go module proxy into a
# cache directory keyed by name and version, and prints the path of the
# binary. A binary already there is reused.
#
#   scripts/build-packer-plugin.sh NAME VERSION [DIR]
#
# NAME is the plugin's short name (amazon, googlecompute, vsphere, ...):
# the module github.com/hashicorp/packer-plugin-NAME at VERSION (an exact
# version; the proxy does not list them all). DIR defaults to build/tools
# (relative to the repository root). The binary is
# DIR/packer-plugin-NAME-VERSION/packer-plugin-NAME; install it with
# `packer plugins install --path BINARY github.com/hashicorp/NAME`.
#
# Every plugin built on packer-plugin-sdk replaces go-cty in its go.mod, so
# `go install` refuses it: the build goes through a throw-away wrapper
# module that requires the plugin and repeats that replace. With the plugin
# as the wrapper's only requirement, every dependency resolves to the
# version the plugin's go.mod pins.
set -euo pipefail

name="${1:?usage: build-packer-plugin.sh NAME VERSION [DIR]}"
version="${2:?usage: build-packer-plugin.sh NAME VERSION [DIR]}"
case "$name" in
*[!a-z0-9-]* | "" | -*)
	echo "build-packer-plugin.sh: plugin name $name: want lower-case letters, digits and dashes" >&2
	exit 2
	;;
esac
if ! [[ "$version" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
	echo "build-packer-plugin.sh: version $version: want vMAJOR.MINOR.PATCH" >&2
	exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${3:-$root/build/tools}"
module="github.com/hashicorp/packer-plugin-$name"
out="$dir/packer-plugin-$name-$version/packer-plugin-$name"

if [ -x "$out" ]; then
	echo "$out"
	exit 0
fi

# shellcheck source=lib/go-tool.sh
. "$root/scripts/lib/go-tool.sh"
go_tool_build "$out" "$module" "$version" 1.22 "$module" \
	'replace github.com/zclconf/go-cty => github.com/nywilken/go-cty v1.13.3'
echo "$out"
