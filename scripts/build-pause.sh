#!/usr/bin/env bash
# Build the Kubernetes pause image from its upstream source (build/pause/linux/pause.c,
# shipped inside the k8s.io/kubernetes module) as an OCI layout, so images can
# preload it and nodes start pods without a registry.
#
#   scripts/build-pause.sh [--k8s-version v1.35.4] [--tag 3.10.1] [--out build/images/pause]
set -euo pipefail
k8s_version=v1.35.4
tag=3.10.1
out=build/images/pause
while [ $# -gt 0 ]; do
	case "$1" in
	--k8s-version) k8s_version=$2; shift 2 ;;
	--tag) tag=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	*) echo "build-pause.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
cd "$(dirname "$0")/.."
nodebake=(${NODEBAKE:-go run ./builder/cmd/nodebake})
stamp="$out.stamp"
key="$k8s_version $tag $(sha256sum "$0" | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && [ -d "$out" ]; then
	echo "build-pause.sh: $out is up to date ($key)" >&2
	exit 0
fi
src=$(GOFLAGS= go mod download -json "k8s.io/kubernetes@$k8s_version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[ -f "$src/build/pause/linux/pause.c" ] || { echo "build-pause.sh: no pause.c in k8s.io/kubernetes@$k8s_version" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -Os -Wall -Werror -static -DVERSION="v$tag" -o "$work/pause" "$src/build/pause/linux/pause.c"
strip "$work/pause"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=posix \
	--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
	-C "$work" -cf "$work/pause.tar" pause
mkdir -p "$(dirname "$out")"
"${nodebake[@]}" image import --entrypoint /pause "$work/pause.tar" "$out"
echo "$key" > "$stamp"
