package e2e

import (
	"strings"

	"github.com/nodebake/nodebake/layers/spec"
)

// The diagnostics probe: a unit and a script baked into the test's image
// through the spec's files. It only reads: every 30 s it writes the state
// of the node's units, network and WireGuard, and the kubelet's last log
// lines, to the second serial port (the VM's report log), so that a
// failing run shows what happened inside the guests.
const (
	diagUnitPath   = "/etc/systemd/system/nodebake-e2e-diag.service"
	diagWantsPath  = "/etc/systemd/system/multi-user.target.wants/nodebake-e2e-diag.service"
	diagScriptPath = "/usr/local/lib/nodebake-e2e/diag.sh"
)

const diagUnit = `[Unit]
Description=nodebake end-to-end test diagnostics (on ttyS1)
DefaultDependencies=no

[Service]
Type=exec
ExecStart=` + diagScriptPath + `
`

const diagScript = `#!/bin/sh
# nodebake end-to-end test diagnostics: the node's state on ttyS1 every 30 s.
exec >/dev/ttyS1 2>&1
while :; do
	echo "DIAG begin uptime=$(cut -d' ' -f1 /proc/uptime) hostname=$(hostname)"
	echo "system: $(systemctl is-system-running)"
	echo "failed: $(systemctl list-units --failed --no-legend --plain | cut -d' ' -f1 | tr '\n' ' ')"
	for u in nodebake-firstboot systemd-networkd systemd-network-generator containerd nodebake-preload kubelet kube-proxy; do
		echo "unit $u: $(systemctl show -p ActiveState,SubState,Result,NRestarts,ConditionResult $u | tr '\n' ' ')"
	done
	networkctl list --no-pager --no-legend 2>&1
	ip -br addr
	ip route
	wg show wg0 2>&1 | grep -E 'peer|endpoint|handshake|transfer'
	ls /run/systemd/network /run/credentials/@system 2>&1 | tr '\n' ' '; echo
	echo "blame: $(systemd-analyze blame --no-pager 2>/dev/null | head -8 | tr -s ' ' | tr '\n' ';')"
	journalctl -b --no-pager -n 12 -o cat -u kubelet -u kube-proxy -u containerd -u nodebake-preload 2>&1 | cut -c1-400
	echo "DIAG end"
	sleep 30
done
`

// diagFiles are the spec files that install the diagnostics probe.
func diagFiles() []spec.File {
	unit, script := diagUnit, diagScript
	return []spec.File{
		{Path: diagUnitPath, Content: &unit, Mode: "0644"},
		{Path: diagWantsPath, Link: "../nodebake-e2e-diag.service", Mode: "0777"},
		{Path: diagScriptPath, Content: &script, Mode: "0755"},
	}
}

// lastDiag returns the last complete diagnostics block of a report log.
func lastDiag(report string) string {
	report = strings.ReplaceAll(report, "\r", "")
	end := strings.LastIndex(report, "DIAG end")
	if end < 0 {
		return lastLines(report, 40)
	}
	begin := strings.LastIndex(report[:end], "DIAG begin")
	if begin < 0 {
		return report[:end]
	}
	return report[begin:end]
}

// diagLine returns the line of a diagnostics block that starts with prefix.
func diagLine(block, prefix string) string {
	for _, l := range strings.Split(block, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}
