# shellcheck shell=bash
# go_tool_build OUT MODULE VERSION GOVERSION PACKAGE [GO.MOD LINE...]
#
# Builds the command PACKAGE of MODULE at VERSION from the Go module proxy
# into OUT (static, stripped, -trimpath), through a throw-away wrapper
# module that requires MODULE, so that its dependencies resolve exactly as
# its go.mod pins them; extra go.mod lines (a replace) are added as given.
# OUT is written under a temporary name and renamed at the end; progress
# goes to stderr.
go_tool_build() {
	local out="$1" module="$2" version="$3" gover="$4" pkg="$5"
	shift 5
	local work
	work="$(mktemp -d)"
	# shellcheck disable=SC2064
	trap "rm -rf '$work'" RETURN
	{
		printf 'module nodebake.invalid/%s-wrapper\n\ngo %s\n\nrequire %s %s\n' "$(basename "$out")" "$gover" "$module" "$version"
		for line in "$@"; do printf '\n%s\n' "$line"; done
	} >"$work/go.mod"
	printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$pkg" >"$work/tools.go"
	echo "building $(basename "$out") $version (once; cached as $out)" >&2
	(
		cd "$work"
		GOFLAGS=-mod=mod go mod tidy >&2
		mkdir -p "$(dirname "$out")"
		CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$out.tmp" "$pkg" >&2
	)
	mv -f "$out.tmp" "$out"
}
