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

# shellcheck source=lib/go-tool.sh
. "$root/scripts/lib/go-tool.sh"
go_tool_build "$out" github.com/aws/amazon-ec2-metadata-mock "$version" 1.23 github.com/aws/amazon-ec2-metadata-mock/cmd/ec2-metadata-mock
echo "$out"
