#!/usr/bin/env bash
# Builds the nodebake base root filesystem: a minimal Debian tree with a kernel,
# an initrd that mounts a read-only squashfs root by PARTUUID, systemd and the
# tools a Kubernetes worker needs, written by mmdebstrap as a tar that keeps
# owners, modes and extended attributes. Then imports that tar as an OCI image
# layout for the builder.
#
#   scripts/build-base.sh [--suite trixie|bookworm] [--arch amd64] [--out DIR]
#                         [--no-import] [--force]
#
# Recipe: this script, images/base/packages-<suite>.txt, images/base/dpkg.cfg,
# images/base/hooks/* and the initramfs-tools files a hook installs
# (images/base/initramfs-tools/). A run whose recipe hash matches the stamp
# next to an existing tar does nothing (--force rebuilds).
#
# Outputs in DIR (default build/base, relative to the current directory):
#   <suite>-<arch>.tar       the root filesystem
#   <suite>-<arch>.packages  installed packages: name, version, architecture
#   <suite>-<arch>.stamp     recipe hash of the tar above
#   <suite>-<arch>/          OCI image layout (unless --no-import)
#
# Environment:
#   SOURCE_DATE_EPOCH  timestamp for every file in the tar and in the initrd;
#                      default 1754697600 (2025-08-09T00:00:00Z, the day
#                      Debian 13 "trixie" was released). Part of the recipe.
#   DEBIAN_MIRROR      Debian archive URI; default: the one the host's apt uses
#                      for its own release (/etc/apt/sources.list.d/*.sources,
#                      then /etc/apt/sources.list).
#   DEBIAN_SECURITY_MIRROR  security archive URI, or "none"; default: the URI
#                      of the host's <release>-security entry. Skipped with a
#                      warning when it cannot be reached.
#   NODEBAKE           command that runs the nodebake CLI;
#                      default "go run ./builder/cmd/nodebake" in the repository.
#   TMPDIR             where mmdebstrap assembles the tree (default /tmp; it
#                      needs about 1 GiB and must allow device nodes).
#
# Must run as root: mmdebstrap's root mode chroots, mounts /proc and /dev and
# creates device nodes. Installs mmdebstrap with apt-get when it is missing.
set -euo pipefail

readonly DEFAULT_SOURCE_DATE_EPOCH=1754697600
# Bump to force a rebuild everywhere when something outside the hashed files
# changes what the build produces.
readonly RECIPE_FORMAT=1

prog="${0##*/}"
log() { printf '%s: %s\n' "$prog" "$*" >&2; }
warn() { printf '%s: warning: %s\n' "$prog" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "$prog" "$*" >&2
	exit 1
}
usage() {
	echo "usage: $0 [--suite trixie|bookworm] [--arch amd64] [--out DIR] [--no-import] [--force]" >&2
	exit 2
}

all_args="$*"
suite=trixie
arch=amd64
out=build/base
import=1
force=0
while [ "$#" -gt 0 ]; do
	case "$1" in
	--suite) [ "$#" -ge 2 ] || usage; suite="$2"; shift 2 ;;
	--suite=*) suite="${1#*=}"; shift ;;
	--arch) [ "$#" -ge 2 ] || usage; arch="$2"; shift 2 ;;
	--arch=*) arch="${1#*=}"; shift ;;
	--out) [ "$#" -ge 2 ] || usage; out="$2"; shift 2 ;;
	--out=*) out="${1#*=}"; shift ;;
	--no-import) import=0; shift ;;
	--force) force=1; shift ;;
	-h | --help) usage ;;
	*) log "unknown argument: $1"; usage ;;
	esac
done

case "$suite" in
trixie | bookworm) ;;
*) die "--suite: unsupported suite \"$suite\" (want trixie or bookworm)" ;;
esac
case "$arch" in
amd64) ;;
*) die "--arch: unsupported architecture \"$arch\" (want amd64; the package lists name linux-image-amd64)" ;;
esac
[ -n "$out" ] || die "--out: empty directory name"

export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$DEFAULT_SOURCE_DATE_EPOCH}"
case "$SOURCE_DATE_EPOCH" in
'' | *[!0-9]*) die "SOURCE_DATE_EPOCH: want seconds since 1970, got \"$SOURCE_DATE_EPOCH\"" ;;
esac

if [ "$(id -u)" -ne 0 ]; then
	die "must run as root: mmdebstrap's root mode chroots into the new tree, mounts /proc and /dev there and creates device nodes (try: sudo $0 $all_args)"
fi

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
recipe="$repo/images/base"
packages_file="$recipe/packages-$suite.txt"
[ -f "$packages_file" ] || die "no package list for suite $suite: $packages_file"
[ -f "$recipe/dpkg.cfg" ] || die "missing $recipe/dpkg.cfg"
[ -d "$recipe/hooks" ] || die "missing $recipe/hooks"

case "$out" in
/*) ;;
*) out="$PWD/$out" ;;
esac
mkdir -p "$out"

name="$suite-$arch"
tar_file="$out/$name.tar"
stamp_file="$out/$name.stamp"
manifest_file="$out/$name.packages"
layout_dir="$out/$name"
import_stamp_file="$out/$name.import.stamp"

# One build per output directory at a time.
exec 9>"$out/.$name.lock"
flock -n 9 || die "another build of $name is running in $out"

# recipe_hash prints the sha256 of everything that decides the tree: the
# parameters and the recipe files (not the README).
recipe_hash() {
	{
		printf 'format %s\nsuite %s\narch %s\nsource-date-epoch %s\n' \
			"$RECIPE_FORMAT" "$suite" "$arch" "$SOURCE_DATE_EPOCH"
		(
			cd "$repo"
			find scripts/build-base.sh "images/base/packages-$suite.txt" images/base/dpkg.cfg \
				images/base/hooks images/base/initramfs-tools -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
			# The hooks only run when executable.
			find images/base/hooks images/base/initramfs-tools -type f -perm -u+x -print | LC_ALL=C sort
		)
	} | sha256sum | cut -d' ' -f1
}

# package_list prints the package list as mmdebstrap's comma-separated
# --include value: comments and blank lines dropped.
package_list() {
	sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$packages_file" | paste -sd, -
}

# apt_entries and host_suite: the host's apt sources.
# shellcheck source=lib/apt-sources.sh
. "$repo/scripts/lib/apt-sources.sh"

# reachable URL succeeds when URL can be downloaded.
reachable() {
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL --max-time 30 -o /dev/null "$1" 2>/dev/null
	elif command -v wget >/dev/null 2>&1; then
		wget -q -T 30 -O /dev/null "$1" 2>/dev/null
	else
		local d rc=0
		d="$(mktemp -d)"
		/usr/lib/apt/apt-helper -o APT::Sandbox::User=root download-file "$1" "$d/f" >/dev/null 2>&1 || rc=$?
		rm -rf "$d"
		return "$rc"
	fi
}

# choose_mirrors sets mirror and security_mirror.
choose_mirrors() {
	local entries hs
	entries="$(apt_entries | sed 's#/*[[:space:]]# #')"
	hs="$(host_suite)"
	mirror="${DEBIAN_MIRROR:-}"
	if [ -z "$mirror" ]; then
		if [ -n "$hs" ]; then
			mirror="$(awk -v s="$hs" '$2 == s { print $1; exit }' <<<"$entries")"
		fi
		if [ -z "$mirror" ]; then
			# No entry for the host's own release (or no codename): take the
			# first plain suite that is not -security, -updates, ...
			mirror="$(awk '$2 !~ /[-\/]/ { print $1; exit }' <<<"$entries")"
		fi
		[ -n "$mirror" ] || die "no Debian mirror found in the host's apt sources (/etc/apt/sources.list.d/*.sources, /etc/apt/sources.list); set DEBIAN_MIRROR=URI"
	fi
	mirror="${mirror%/}"
	security_mirror="${DEBIAN_SECURITY_MIRROR:-}"
	if [ -z "$security_mirror" ] && [ -n "$hs" ]; then
		security_mirror="$(awk -v s="$hs-security" '$2 == s { print $1; exit }' <<<"$entries")"
	fi
	security_mirror="${security_mirror%/}"
}

build() {
	if ! command -v mmdebstrap >/dev/null 2>&1; then
		log "mmdebstrap is missing; installing it with apt-get"
		apt-get update
		DEBIAN_FRONTEND=noninteractive apt-get install -y mmdebstrap
	fi

	choose_mirrors
	reachable "$mirror/dists/$suite/InRelease" ||
		die "cannot reach $mirror/dists/$suite/InRelease; set DEBIAN_MIRROR to a Debian archive this machine can reach"

	local keyring="" signed=""
	keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	if [ -f "$keyring" ]; then signed="[signed-by=$keyring] "; fi

	local -a sources=("deb ${signed}$mirror $suite main")
	if reachable "$mirror/dists/$suite-updates/InRelease"; then
		sources+=("deb ${signed}$mirror $suite-updates main")
	else
		warn "$suite-updates is not reachable at $mirror; building without it"
	fi
	if [ "$security_mirror" = none ]; then
		warn "DEBIAN_SECURITY_MIRROR=none: building without security updates"
	elif [ -z "$security_mirror" ]; then
		warn "the host's apt sources have no $(host_suite)-security entry; building without security updates (set DEBIAN_SECURITY_MIRROR=URI)"
	elif reachable "$security_mirror/dists/$suite-security/InRelease"; then
		sources+=("deb ${signed}$security_mirror $suite-security main")
	else
		warn "$suite-security is not reachable at $security_mirror; building WITHOUT security updates"
	fi

	local include
	include="$(package_list)"
	[ -n "$include" ] || die "$packages_file lists no packages"

	# A failed build must not leave a tar that looks finished: write to
	# temporary names, remove them on any exit, rename only at the end.
	rm -f "$stamp_file" "$import_stamp_file"
	tmp_tar="$out/.$name.tar.tmp"
	tmp_manifest="$out/.$name.packages.tmp"
	trap 'rm -f "$tmp_tar" "$tmp_manifest" "$stamp_file.tmp"' EXIT
	rm -f "$tmp_tar" "$tmp_manifest"

	local s
	for s in "${sources[@]}"; do log "source: ${s/"$signed"/}"; done
	log "building $name with SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH; this takes several minutes"
	local start=$SECONDS
	# essential: Essential:yes packages only, so no apt; the package list comes
	# on top, without Recommends. force-unsafe-io skips fsync while unpacking
	# (the hook drops it from the image's dpkg config). --skip=cleanup/apt: the
	# tidy hook removes apt's lists, cache and configuration itself.
	NODEBAKE_BASE_MANIFEST="$tmp_manifest" mmdebstrap \
		--mode=root \
		--variant=essential \
		--architectures="$arch" \
		--format=tar \
		--include="$include" \
		--aptopt='APT::Install-Recommends "false"' \
		--dpkgopt="$recipe/dpkg.cfg" \
		--dpkgopt=force-unsafe-io \
		--hook-dir="$recipe/hooks" \
		--skip=cleanup/apt \
		"$suite" "$tmp_tar" "${sources[@]}"

	[ -s "$tmp_manifest" ] || die "mmdebstrap finished but the verify hook wrote no package list"
	# Read the whole tar back: a truncated or corrupt file fails here.
	local listing
	listing="$(tar -tf "$tmp_tar")" || die "cannot read back $tmp_tar"
	grep -q '^\./boot/vmlinuz-' <<<"$listing" || die "$tmp_tar has no ./boot/vmlinuz-*"
	grep -q '^\./boot/initrd\.img-' <<<"$listing" || die "$tmp_tar has no ./boot/initrd.img-*"

	mv -f "$tmp_manifest" "$manifest_file"
	mv -f "$tmp_tar" "$tar_file"
	printf '%s\n' "$hash" >"$stamp_file.tmp"
	mv -f "$stamp_file.tmp" "$stamp_file"
	trap - EXIT
	log "built $tar_file in $((SECONDS - start)) s"
}

import_layout() {
	local -a nodebake
	# NODEBAKE is a command line, split on blanks on purpose.
	read -r -a nodebake <<<"${NODEBAKE:-go run ./builder/cmd/nodebake}"
	rm -f "$import_stamp_file"
	log "importing $tar_file as an OCI image layout in $layout_dir"
	(
		cd "$repo"
		"${nodebake[@]}" base import --arch "$arch" --source-date-epoch "$SOURCE_DATE_EPOCH" \
			"$tar_file" "$layout_dir"
	) || die "importing $tar_file failed (use --no-import to build the tar only)"
	printf '%s\n' "$hash" >"$import_stamp_file.tmp"
	mv -f "$import_stamp_file.tmp" "$import_stamp_file"
}

hash="$(recipe_hash)"
if [ "$force" -eq 0 ] && [ -f "$tar_file" ] && [ -f "$manifest_file" ] &&
	[ "$(cat "$stamp_file" 2>/dev/null)" = "$hash" ]; then
	log "$tar_file is up to date (recipe ${hash:0:12}); --force rebuilds it"
else
	build
fi

if [ "$import" -eq 1 ]; then
	if [ "$force" -eq 0 ] && [ -d "$layout_dir" ] &&
		[ "$(cat "$import_stamp_file" 2>/dev/null)" = "$hash" ]; then
		log "$layout_dir is up to date"
	else
		import_layout
	fi
fi

log "$name: $(du -h --apparent-size "$tar_file" | cut -f1) tar, $(wc -l <"$manifest_file") packages, recipe ${hash:0:12}"
