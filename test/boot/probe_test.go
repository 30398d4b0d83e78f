package boot

import (
	"strings"

	"github.com/nodebake/nodebake/layers/spec"
)

// The probe: a unit and a script baked into the image under test through
// the spec's files. It writes "PROBE key=value" lines to the second serial
// port once the system has finished starting, writes a marker to /var and
// reboots; on the next boot it reports the marker and powers off.
const (
	probeUnitPath   = "/etc/systemd/system/nodebake-probe.service"
	probeWantsPath  = "/etc/systemd/system/multi-user.target.wants/nodebake-probe.service"
	probeScriptPath = "/usr/local/lib/nodebake-probe/probe.sh"
)

// The unit is Type=exec and not ordered after multi-user.target (it is
// part of it: that would be an ordering cycle); the script waits for the
// boot to finish itself.
const probeUnit = `[Unit]
Description=nodebake test probe (reports on ttyS1)

[Service]
Type=exec
ExecStart=` + probeScriptPath + `
`

const probeScript = `#!/bin/sh
# nodebake test probe: reports what the booted image looks like on ttyS1 as
# "PROBE key=value" lines, reboots once, then powers off.
exec >/dev/ttyS1 2>&1
p() { printf 'PROBE %s\n' "$*"; }
one() { tr '\n' ' ' | sed 's/ *$//'; }

p start uptime=$(cut -d' ' -f1 /proc/uptime)
p bootid=$(cat /proc/sys/kernel/random/boot_id)
state=$(systemctl is-system-running --wait)
p system=$state
p running-uptime=$(cut -d' ' -f1 /proc/uptime)
p failed=$(systemctl list-units --failed --no-legend --plain | cut -d' ' -f1 | one)
p machine-id=$(cat /etc/machine-id)

p root.fstype=$(findmnt -n -o FSTYPE /)
p root.options=$(findmnt -n -o OPTIONS /)
p root.source=$(findmnt -n -o SOURCE /)
p etc.fstype=$(findmnt -n -o FSTYPE --target /etc)
p var.fstype=$(findmnt -n -o FSTYPE /var)
p var.source=$(findmnt -n -o SOURCE /var)
if mountpoint -q /var; then p var.mountpoint=yes; else p var.mountpoint=no; fi
p swaps=$(tail -n +2 /proc/swaps | wc -l)

p containerd=$(systemctl is-active containerd)
p kubelet.version=$(/usr/local/bin/kubelet --version 2>&1 | one)
for u in kubelet kube-proxy; do
	for prop in ActiveState SubState Result ConditionResult NRestarts; do
		p "$u.$prop=$(systemctl show -p "$prop" --value "$u")"
	done
done
p crictl.version=$(crictl --version 2>&1 | one)
# crictl info prints the CRI status as JSON; report the RuntimeReady
# condition's status, or what crictl said instead.
info=$(crictl --timeout 20s info 2>&1)
ready=$(printf '%s\n' "$info" | tr -d ' \n' | grep -o '{[^{}]*"type":"RuntimeReady"[^{}]*}' | grep -o '"status":[a-z]*' | sed 's/"status":/RuntimeReady=/')
p "crictl.info=${ready:-$(printf '%s' "$info" | head -c 200 | one)}"
p runc.version=$(runc --version 2>&1 | head -n 1)
p runc.path=$(command -v runc)
for b in bridge host-local loopback portmap; do
	if [ -x "/opt/cni/bin/$b" ]; then p "cni.$b=ok"; else p "cni.$b=missing"; fi
done
for m in overlay br_netfilter ip_vs wireguard; do
	if grep -q "^$m " /proc/modules; then
		p "module.$m=loaded"
	elif [ -d "/sys/module/$m" ]; then
		p "module.$m=builtin"
	else
		p "module.$m=missing"
	fi
done
p sysctl.net.ipv4.ip_forward=$(sysctl -n net.ipv4.ip_forward 2>&1)
p sysctl.net.bridge.bridge-nf-call-iptables=$(sysctl -n net.bridge.bridge-nf-call-iptables 2>&1)
if [ -f /run/nodebake/status.json ]; then
	p status=$(one < /run/nodebake/status.json)
else
	p status=absent
fi
p analyze=$(systemd-analyze 2>&1 | head -n 1)
p critical-chain=$(systemd-analyze critical-chain --no-pager multi-user.target 2>&1 | tail -n +3 | sed 's/^[^a-zA-Z0-9]*//' | head -n 12 | tr '\n' ';')
p blame=$(systemd-analyze blame --no-pager 2>&1 | head -n 8 | sed 's/^ *//' | tr '\n' ';')

marker=/var/lib/nodebake-probe/marker
if [ -f "$marker" ]; then
	p marker=$(cat "$marker")
	p done
	systemctl poweroff
else
	mkdir -p "${marker%/*}"
	cat /proc/sys/kernel/random/boot_id > "$marker"
	sync
	p reboot
	systemctl reboot
fi
`

// probeFiles are the spec files that install the probe.
func probeFiles() []spec.File {
	unit, script := probeUnit, probeScript
	return []spec.File{
		{Path: probeUnitPath, Content: &unit, Mode: "0644"},
		{Path: probeWantsPath, Link: "../nodebake-probe.service", Mode: "0777"},
		{Path: probeScriptPath, Content: &script, Mode: "0755"},
	}
}

// probeReport is what one boot of the probe reported.
type probeReport map[string]string

// parseProbe splits a report log into boots (each begins with "PROBE
// start") and parses each boot's "PROBE key=value" lines.
// A line "PROBE word" without "=" is stored with an empty value.
func parseProbe(log string) []probeReport {
	var boots []probeReport
	cur := probeReport{}
	for _, line := range strings.Split(strings.ReplaceAll(log, "\r", ""), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "PROBE ")
		if !ok {
			continue
		}
		if rest == "start" || strings.HasPrefix(rest, "start ") {
			if len(cur) > 0 {
				boots = append(boots, cur)
				cur = probeReport{}
			}
			cur["start"] = ""
			if _, up, ok := strings.Cut(rest, "uptime="); ok {
				cur["start.uptime"] = up
			}
			continue
		}
		k, v, _ := strings.Cut(rest, "=")
		cur[k] = v
	}
	if len(cur) > 0 {
		boots = append(boots, cur)
	}
	return boots
}
