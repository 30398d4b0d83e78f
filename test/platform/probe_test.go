package platform

import (
	"encoding/base64"
	"strings"

	"github.com/nodebake/nodebake/layers/spec"
)

// The probe: a unit and a bash script baked into the image under test
// through the spec's files, with cnitool and the test CA. Ordered after
// first boot, it waits for the boot to finish, reports what the node
// looks like as "PLAT key=value" lines on ttyS1 (multi-line values as
// base64) and powers the guest off. The base has no curl: bash's /dev/tcp
// is the client.
const (
	probeUnitPath   = "/etc/systemd/system/nodebake-platform-probe.service"
	probeWantsPath  = "/etc/systemd/system/multi-user.target.wants/nodebake-platform-probe.service"
	probeScriptPath = "/usr/local/lib/nodebake-platform-probe/probe.sh"
	cnitoolPath     = "/usr/local/lib/nodebake-platform-probe/cnitool"
	testCAPath      = "/etc/ssl/certs/nodebake-platform-test-ca.pem"
	// podCheckCredential, given as an SMBIOS type 11 credential, asks the
	// probe to attach a pod to the bridge network and try the metadata
	// addresses from it.
	podCheckCredential = "nodebake-probe.pod-check"
	// markerPath is the marker the probe leaves on /var on the first boot
	// of a disk.
	markerPath = "/var/lib/nodebake-platform-probe/marker"
)

const probeUnit = `[Unit]
Description=nodebake platform test probe (reports on ttyS1)
After=nodebake-firstboot.service

[Service]
Type=exec
ExecStart=` + probeScriptPath + `
`

const probeScript = `#!/bin/bash
# nodebake platform test probe: what first boot did and what runs, as
# "PLAT key=value" lines on ttyS1; then power off.
exec >/dev/ttyS1 2>&1
p() { printf 'PLAT %s\n' "$*"; }
one() { tr '\n' ' ' | sed 's/ *$//'; }
b64() { base64 -w0; }
up() { cut -d' ' -f1 /proc/uptime; }
p start.uptime=$(up)
p bootid=$(cat /proc/sys/kernel/random/boot_id)
p system=$(timeout 600 systemctl is-system-running --wait)
p failed=$(systemctl list-units --failed --no-legend --plain | cut -d' ' -f1 | one)
p status=$(b64 < /run/nodebake/status.json)
if [ -e /run/nodebake/node-ready ]; then p node-ready=yes; else p node-ready=no; fi
for u in nodebake-firstboot nodebake-grow-var nodebake-metadata-guard; do
	p "unit.$u=$(systemctl show -p ActiveState,Result,ExecMainStatus,ExecMainStartTimestampMonotonic,ExecMainExitTimestampMonotonic "$u" | one)"
	p "journal.$u=$(journalctl -b -o cat -u "$u" | b64)"
done
p makefs=$(systemctl show -p ActiveState,ExecMainStartTimestampMonotonic,ExecMainExitTimestampMonotonic 'systemd-makefs@dev-disk-by\x2dpartlabel-var.service' | one)
p growfs=$(systemctl show -p ActiveState,ExecMainStartTimestampMonotonic,ExecMainExitTimestampMonotonic 'systemd-growfs@var.service' | one)

# The kubelet: active and running, and still so (no restart) 15 s later,
# when a crash loop (RestartSec=5) would show.
if [ -e /run/nodebake/node-ready ]; then
	for i in $(seq 120); do
		[ "$(systemctl show -p SubState --value kubelet)" = running ] && break
		sleep 1
	done
	p kubelet.running-uptime=$(up)
	sleep 15
fi
for prop in ActiveState SubState NRestarts ConditionResult Result; do
	p "kubelet.$prop=$(systemctl show -p "$prop" --value kubelet)"
done
pid=$(systemctl show -p MainPID --value kubelet)
if [ "$pid" != 0 ]; then p kubelet.args=$(tr '\0' ' ' < "/proc/$pid/cmdline"); fi
p kubelet.journal=$(journalctl -b -o cat -u kubelet | tail -n 5 | b64)
p wg0=$(ip -4 -o addr show dev wg0 2>/dev/null | awk '{print $4}')
p hostname=$(hostname)
p addr=$(ip -4 -o addr show scope global | grep -v wg0 | awk '{print $4}' | head -n 1)

# /var: its filesystem, its partition, the disk.
p var.fs.bytes=$(df -B1 --output=size /var | tail -n 1 | tr -d ' ')
p var.source=$(findmnt -n -o SOURCE /var)
if part=$(readlink -f /dev/disk/by-partlabel/var) && [ -b "$part" ]; then
	part=${part#/dev/}
	disk=$(basename "$(dirname "$(readlink -f "/sys/class/block/$part")")")
	p var.partition=$part
	p var.partition.bytes=$(( $(cat "/sys/class/block/$part/size") * 512 ))
	p disk=$disk
	p disk.bytes=$(( $(cat "/sys/class/block/$disk/size") * 512 ))
fi
p var.files=$(cd /var/lib && sha256sum kubelet/kubeconfig kubelet/kubelet-config.yaml kubernetes/* kube-proxy/* 2>&1 | b64)
if [ -f ` + markerPath + ` ]; then p marker=$(cat ` + markerPath + `); fi
if mountpoint -q /var && [ ! -f ` + markerPath + ` ]; then
	mkdir -p "$(dirname ` + markerPath + `)"
	cat /proc/sys/kernel/random/boot_id > ` + markerPath + `
	sync
fi

# The metadata guard.
p guard.forward=$(iptables -S FORWARD | one)
p guard.v4=$(iptables -S NODEBAKE-METADATA | b64)
p guard.v6=$(ip6tables -S NODEBAKE-METADATA | b64)

# tcp HOST PORT [NETNS]: connects, sends a GET /probe and reports the
# exit status (124: no answer within 8 s) and the first line back.
tcp() {
	local rc
	timeout 8 ${3:+ip netns exec "$3"} bash -c 'exec 3<>"/dev/tcp/$0/$1" || exit 1
		printf "GET /probe HTTP/1.0\r\nHost: %s\r\n\r\n" "$0" >&3
		head -n 1 <&3' "$1" "$2" >/run/nodebake-platform-probe.tcp 2>&1
	rc=$?
	printf 'rc=%s %s' "$rc" "$(tr -d '\r' < /run/nodebake-platform-probe.tcp | head -n 1)"
}

if [ -e /run/credentials/@system/` + podCheckCredential + ` ] && [ -e /run/nodebake/node-ready ]; then
	# A pod on the bridge network, attached as the container runtime would
	# attach it: the image's own CNI configuration, run by cnitool.
	ip netns add probe-pod
	p pod.add=$(CNI_PATH=/opt/cni/bin NETCONFPATH=/var/lib/cni/net.d ` + cnitoolPath + ` add nodebake /run/netns/probe-pod 2>&1 | b64)
	p pod.addr=$(ip netns exec probe-pod ip -4 -o addr show dev eth0 | awk '{print $4}')
	p pod.route=$(ip netns exec probe-pod ip -4 route show default)
	p pod.metadata80=$(tcp 169.254.169.254 80 probe-pod)
	p pod.wireserver80=$(tcp 168.63.129.16 80 probe-pod)
	p pod.metadata53=$(tcp 169.254.169.254 53 probe-pod)
	p host.metadata80=$(tcp 169.254.169.254 80)
	p host.wireserver80=$(tcp 168.63.129.16 80)
	p guard.counters=$(iptables -L NODEBAKE-METADATA -v -n -x | b64)
	CNI_PATH=/opt/cni/bin NETCONFPATH=/var/lib/cni/net.d ` + cnitoolPath + ` del nodebake /run/netns/probe-pod
	ip netns del probe-pod
fi
p done.uptime=$(up)
p done
systemctl poweroff
`

// probeFiles are the spec files that install the probe, cnitool (its
// source relative to the spec's directory) and the test CA.
func probeFiles(cnitool, caPEM string) []spec.File {
	unit, script := probeUnit, probeScript
	return []spec.File{
		{Path: probeUnitPath, Content: &unit, Mode: "0644"},
		{Path: probeWantsPath, Link: "../nodebake-platform-probe.service", Mode: "0777"},
		{Path: probeScriptPath, Content: &script, Mode: "0755"},
		{Path: cnitoolPath, Source: cnitool, Mode: "0755"},
		{Path: testCAPath, Content: &caPEM, Mode: "0644"},
	}
}

// report is what the probe reported.
type report map[string]string

// parseReport reads the probe's "PLAT key=value" lines.
func parseReport(log string) report {
	r := report{}
	for _, line := range strings.Split(strings.ReplaceAll(log, "\r", ""), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "PLAT "); ok {
			k, v, _ := strings.Cut(rest, "=")
			r[k] = v
		}
	}
	return r
}

// decoded returns a base64 value of the report.
func (r report) decoded(key string) string {
	b, err := base64.StdEncoding.DecodeString(r[key])
	if err != nil {
		return "(not base64: " + err.Error() + ")"
	}
	return string(b)
}

// props parses "A=1 B=2" as systemctl show writes it on one line.
func (r report) props(key string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(r[key]) {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	return m
}
