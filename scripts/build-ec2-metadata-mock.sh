#!/usr/bin/env bash
# Builds amazon-ec2-metadata-mock (the real EC2 instance metadata service
# double that AWS publishes) from the Go module proxy into a cache directory
# keyed by version, and prints the path of the binary. A binary already
# there is reused.
#
#   scripts/build-ec2-metadata-mock.sh [VERSION] [DIR]
#
# VERSION defaults to $EC2_METADATA_MOCK_VERSION, else v1.13.0; DIR defaults
# to build/tools (relative to the repository root). The binary is
# DIR/ec2-metadata-mock-VERSION/ec2-metadata-mock.
#
# The build goes through a throw-away wrapper module that requires the
# mock, so that its dependencies resolve exactly as its go.mod pins them.
set -euo pipefail

version="${1:-${EC2_METADATA_MOCK_VERSION:-v1.13.0}}"
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${2:-$root/build/tools}"
out="$dir/ec2-metadata-mock-$version/ec2-metadata-mock"

if [ -x "$out" ]; then
	echo "$out"
	exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat >"$work/go.mod" <<MOD
module nodebake.invalid/ec2-metadata-mock-wrapper

go 1.23

require github.com/aws/amazon-ec2-metadata-mock $version
MOD
cat >"$work/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock"
GO
echo "building ec2-metadata-mock $version (once; cached as $out)" >&2
(
	cd "$work"
	GOFLAGS=-mod=mod go mod tidy >&2
	mkdir -p "$(dirname "$out")"
	CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$out.tmp" github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock >&2
)
mv -f "$out.tmp" "$out"
echo "$out"
