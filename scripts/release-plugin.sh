#!/usr/bin/env bash
# Packages the Packer plugin for a release, named the way `packer init`
# looks for it (and as HashiCorp's goreleaser configurations name it):
#
#   packer-plugin-nodebake_vVERSION_xAPI_OS_ARCH.zip   one per target, holding
#     packer-plugin-nodebake_vVERSION_xAPI_OS_ARCH     the plugin binary
#   packer-plugin-nodebake_vVERSION_SHA256SUMS         sha256 of every zip
#
#   scripts/release-plugin.sh vX.Y.Z [OUTDIR]
#
# OUTDIR defaults to build/release/vX.Y.Z; it is replaced as a whole once
# everything is built (nothing half-written is left on failure). API is the
# plugin protocol version the binary reports (`describe`), x5.0 for
# packer-plugin-sdk v0.6. PLUGIN_TARGETS (default "linux_amd64
# linux_arm64") lists the OS_ARCH targets. Every binary embeds the
# nodebake-firstboot programs for amd64 and arm64 images, built first by
# scripts/build-firstboot.sh. The builds are reproducible: -trimpath, no
# VCS stamp, CGO_ENABLED=0, zips with a fixed time ($SOURCE_DATE_EPOCH,
# else 1980-01-01); the same sources and Go give the same bytes.
#
# Publishing: docs/packer-plugin.md ("Releases").
set -euo pipefail

version="${1:?usage: release-plugin.sh vX.Y.Z [OUTDIR]}"
if ! [[ "$version" =~ ^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$ ]]; then
	echo "release-plugin.sh: version $version: want vMAJOR.MINOR.PATCH (a release; Packer ignores binaries with other names)" >&2
	exit 2
fi
repo="$(cd "$(dirname "$0")/.." && pwd -P)"
out="${2:-$repo/build/release/$version}"
targets="${PLUGIN_TARGETS:-linux_amd64 linux_arm64}"
name=packer-plugin-nodebake
pkg=github.com/nodebake/nodebake/plugin/version

host="$(go env GOOS)_$(go env GOARCH)"
case " $targets " in
*" $host "*) ;;
*)
	echo "release-plugin.sh: the targets ($targets) must include this machine's $host: its binary reports the API version" >&2
	exit 2
	;;
esac
for t in $targets; do
	if ! [[ "$t" =~ ^[a-z0-9]+_[a-z0-9]+$ ]]; then
		echo "release-plugin.sh: target $t: want OS_ARCH" >&2
		exit 2
	fi
done

mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd -P)/$(basename "$out")"
work="$(mktemp -d "$(dirname "$out")/.release-plugin.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir "$work/bin" "$work/out"

for a in amd64 arm64; do
	"$repo/scripts/build-firstboot.sh" "$repo/plugin/embedded/nodebake-firstboot-linux-$a" "$a"
done

for t in $targets; do
	(
		cd "$repo/plugin"
		CGO_ENABLED=0 GOOS="${t%_*}" GOARCH="${t#*_}" GOFLAGS=-buildvcs=false \
			go build -trimpath -ldflags "-s -w -X $pkg.Version=${version#v} -X $pkg.VersionPrerelease=" \
			-o "$work/bin/$t" .
	)
done

describe="$("$work/bin/$host" describe)"
api="$(printf '%s' "$describe" | sed -n 's/.*"api_version":"\(x[0-9][0-9]*\.[0-9][0-9]*\)".*/\1/p')"
reported="$(printf '%s' "$describe" | sed -n 's/.*"version":"\([^"]*\)".*/\1/p')"
if [ -z "$api" ] || [ "$reported" != "${version#v}" ]; then
	echo "release-plugin.sh: the plugin describes itself as $describe; want version ${version#v} and an api_version" >&2
	exit 1
fi

sums="${name}_${version}_SHA256SUMS"
for t in $targets; do
	base="${name}_${version}_${api}_${t}"
	(cd "$repo/plugin" && go run ./internal/releasezip "$work/out/$base.zip" "$base" "$work/bin/$t")
done
(cd "$work/out" && sha256sum -- *.zip >"$sums")

rm -rf "$out.old"
if [ -e "$out" ]; then mv "$out" "$out.old"; fi
mv "$work/out" "$out"
rm -rf "$out.old"
ls -1 "$out"
