#!/usr/bin/env bash
# Builds the first-boot program the way every nodebake image bakes it: a
# static (CGO_ENABLED=0), stripped, reproducible Linux binary of
# layers/firstboot/cmd/nodebake-firstboot. The same sources and Go give the
# same bytes. `make bin`, the Packer plugin's embedded copies and the tests
# build it with this script.
#
#   scripts/build-firstboot.sh OUT [GOARCH]
#
# GOARCH is the image's architecture (amd64 or arm64), default the host's.
set -euo pipefail

out="${1:?usage: build-firstboot.sh OUT [GOARCH]}"
arch="${2:-$(go env GOARCH)}"
case "$arch" in
amd64 | arm64) ;;
*)
	echo "build-firstboot.sh: architecture $arch: want amd64 or arm64" >&2
	exit 2
	;;
esac
repo="$(cd "$(dirname "$0")/.." && pwd -P)"
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd -P)/$(basename "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
(
	cd "$repo"
	CGO_ENABLED=0 GOOS=linux GOARCH="$arch" GOFLAGS=-buildvcs=false \
		go build -trimpath -ldflags "-s -w" -o "$tmp" ./layers/firstboot/cmd/nodebake-firstboot
)
mv -f "$tmp" "$out"
trap - EXIT
