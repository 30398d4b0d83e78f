#!/usr/bin/env bash
# Installs the Debian packages nodebake's build and tests use, on a Debian 12
# (bookworm) machine, as root. Most come from the host's own release; a few
# need newer versions from bookworm-backports, whose apt source is added from
# the host's own archive URI (the one its bookworm entry uses).
#
#   scripts/deps.sh PACKAGE... [-- BACKPORTS-PACKAGE...]
set -euo pipefail

prog="${0##*/}"
die() {
	printf '%s: error: %s\n' "$prog" "$*" >&2
	exit 1
}
[ "$(id -u)" = 0 ] || die "installs Debian packages and needs root"

# shellcheck source=lib/apt-sources.sh
. "$(dirname "$0")/lib/apt-sources.sh"

main=()
backports=()
while [ "$#" -gt 0 ]; do
	if [ "$1" = -- ]; then
		shift
		backports=("$@")
		break
	fi
	main+=("$1")
	shift
done

export DEBIAN_FRONTEND=noninteractive
if [ "${#backports[@]}" -gt 0 ]; then
	hs="$(host_suite)"
	[ -n "$hs" ] || die "cannot tell the host's Debian release (VERSION_CODENAME in /etc/os-release)"
	list=/etc/apt/sources.list.d/nodebake-backports.sources
	if ! apt_entries | awk -v s="$hs-backports" '$2 == s { found = 1 } END { exit !found }'; then
		uri="$(apt_entries | awk -v s="$hs" '$2 == s { print $1; exit }')"
		[ -n "$uri" ] || die "no $hs entry in the host's apt sources to take the archive URI from"
		cat >"$list" <<SRC
Types: deb
URIs: $uri
Suites: $hs-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	fi
fi
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${main[@]}" >/dev/null
if [ "${#backports[@]}" -gt 0 ]; then
	apt-get install -y -qq --no-install-recommends -t "$(host_suite)-backports" "${backports[@]}" >/dev/null
fi
