#!/bin/sh
# Renders the plugin's documentation from docs/ and the field documentation
# that `go generate` wrote into docs-partials/:
#
#   PLUGIN/.web-docs/README.md                              (Packer's integration layout)
#   PLUGIN/.web-docs/components/builder/nodebake/README.md
#   DOCS/packer-plugin.md                                   (the repository's docs)
#
#   plugin/scripts/render-docs.sh PACKER-SDC [PLUGIN [DOCS]]
#
# PLUGIN defaults to the plugin module, DOCS to docs/ at the repository root.
set -eu
sdc=$1
here=$(cd "$(dirname "$0")/.." && pwd -P)
plugin=${2:-$here}
docs=${3:-$here/../docs}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$sdc" renderdocs -src "$plugin/docs" -partials "$plugin/docs-partials" -dst "$tmp/docs" >"$tmp/log" 2>&1 || {
	cat "$tmp/log" >&2
	exit 1
}

web="$plugin/.web-docs"
mkdir -p "$web/components/builder/nodebake" "$docs"
cp "$tmp/docs/README.md" "$web/README.md"
cp "$tmp/docs/builders/nodebake.mdx" "$web/components/builder/nodebake/README.md"
{
	printf '%s\n\n' '<!-- Generated from plugin/docs by make plugin-generate; DO NOT EDIT. -->'
	printf '# The nodebake Packer plugin\n\n'
	cat "$tmp/docs/README.md"
	printf '\n## The `nodebake` builder\n\n'
	# One heading level down, inside this page.
	sed -e 's/^##/###/' "$tmp/docs/builders/nodebake.mdx"
} >"$docs/packer-plugin.md"
