# Shared shell functions: the host's Debian apt sources. Sourced by scripts.

# apt_entries prints "URI SUITE" for every enabled binary ("deb") suite in the
# host's apt sources, deb822 files first, then the one-line format.
apt_entries() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk '
			function flush(  n, i, s, u) {
				if (types ~ /(^| )deb( |$)/ && enabled !~ /^[Nn][Oo]$/ && uris != "") {
					split(uris, u, " ")
					n = split(suites, s, " ")
					for (i = 1; i <= n; i++) print u[1], s[i]
				}
				types = uris = suites = enabled = ""; field = ""
			}
			/^[[:space:]]*#/ { next }
			/^[[:space:]]*$/ { flush(); next }
			/^[[:space:]]/ { if (field == "uris") uris = uris " " $0; else if (field == "suites") suites = suites " " $0; next }
			{
				key = tolower($0); sub(/:.*/, "", key)
				val = $0; sub(/^[^:]*:[[:space:]]*/, "", val)
				field = key
				if (key == "types") types = val
				else if (key == "uris") uris = val
				else if (key == "suites") suites = val
				else if (key == "enabled") enabled = val
			}
			END { flush() }
		' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk '$1 == "deb" && NF >= 3 { print $2, $3 }'
	done
}

# host_suite prints the codename of the build host's Debian release.
host_suite() {
	local codename=""
	if [ -r /etc/os-release ]; then
		# shellcheck disable=SC1091 # the host's file
		codename="$(. /etc/os-release && printf '%s' "${VERSION_CODENAME:-}")"
	fi
	printf '%s' "$codename"
}
