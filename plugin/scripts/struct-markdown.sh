#!/bin/sh
# Runs `packer-sdc struct-markdown` on $GOFILE (set by go generate) and
# writes the field documentation under docs-partials/ in the plugin module.
#
# packer-sdc finds a plugin's root as the nearest directory above the file
# whose name starts with packer-plugin-; this module's directory is named
# plugin/, so the file is handed over through a temporary
# packer-plugin-nodebake symlink to the module root.
set -eu
: "${GOFILE:?run through go generate}"
root=$(cd "$(dirname "$0")/.." && pwd -P)
pkg=$(pwd -P)
rel=${pkg#"$root"/}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ln -s "$root" "$tmp/packer-plugin-nodebake"
packer-sdc struct-markdown "$tmp/packer-plugin-nodebake/$rel/$GOFILE"
