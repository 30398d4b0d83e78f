package cis

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"

	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/spec"
)

// Where the test bakes kube-bench and the probe (through the spec's files).
const (
	benchDir        = "/opt/kube-bench"
	toolDir         = "/opt/nodebake-cis"
	probeUnitPath   = "/etc/systemd/system/nodebake-cis-probe.service"
	probeWantsPath  = "/etc/systemd/system/multi-user.target.wants/nodebake-cis-probe.service"
	probeScriptPath = toolDir + "/probe.sh"
	connectPath     = toolDir + "/connect"
	// deniedAddr is an address the probe adds to the guest's loopback: in
	// neither unit's IPAddressAllow= list.
	deniedAddr = "198.51.100.7"
	// settle is how long the kubelet must stay up before the probe looks.
	settle = 60
)

const probeUnit = `[Unit]
Description=nodebake CIS test probe (reports on ttyS1)

[Service]
Type=exec
ExecStart=` + probeScriptPath + `
`

// probeScript reports, as "CIS key=value" lines on ttyS1: the units'
// state and IP filters once the kubelet has been up for a while, the
// kernel settings, connections to the kubelet's and kube-proxy's ports
// from an allowed and a denied address (and the denied address's control),
// then kube-bench's report (JSON and text, base64) for benchmark; then it
// powers the guest off.
func probeScript(benchmark string) string {
	var sysctls []string
	for _, k := range spec.KubeletKernelSettings() {
		sysctls = append(sysctls, k.Key)
	}
	return `#!/bin/bash
exec >/dev/ttyS1 2>&1
p() { printf 'CIS %s\n' "$*"; }
up() { cut -d' ' -f1 /proc/uptime; }
p start uptime=$(up)
systemctl is-system-running --wait >/dev/null
p system=$(systemctl is-system-running)
p failed=$(systemctl list-units --failed --no-legend --plain | cut -d' ' -f1 | tr '\n' ' ')
for i in $(seq 1 300); do
	[ "$(systemctl is-active kubelet)" = active ] && [ "$(systemctl is-active kube-proxy)" = active ] && break
	sleep 1
done
p active.uptime=$(up)
sleep ` + fmt.Sprint(settle) + `
for u in kubelet kube-proxy nodebake-firstboot; do
	for prop in ActiveState SubState Result NRestarts IPAddressDeny IPAddressAllow DropInPaths NeedDaemonReload ExecMainStartTimestampMonotonic ExecMainExitTimestampMonotonic ActiveEnterTimestampMonotonic; do
		p "$u.$prop=$(systemctl show -p "$prop" --value "$u")"
	done
done
for k in ` + strings.Join(sysctls, " ") + `; do
	p "sysctl.$k=$(sysctl -n "$k" 2>&1)"
done
if grep -q '"protectKernelDefaults": true' ` + firstboot.KubeletConfigPath + `; then p protectKernelDefaults=true; else p protectKernelDefaults=false; fi
mkdir -p /var/lib/nodebake-cis
cd /var/lib/nodebake-cis
wg=$(ip -4 -o addr show dev wg0 | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p' | head -n 1)
p wg0=$wg
p listening=$(ss -ltnH | awk '{print $4}' | sort | tr '\n' ' ')
C=` + connectPath + `
D=` + deniedAddr + `
ip addr add $D/32 dev lo
# The kubelet's own port.
p kubelet.allowed=$($C -from "$wg" -to "$wg:10250")
p kubelet.denied=$($C -from $D -to "$wg:10250")
p control=$($C -from $D -listen "$wg")
# Each unit's filter, in its cgroup: a listener started there is reached
# from an allowed address only, and a connection from there reaches an
# allowed address only (listeners outside the units on $wg and $D).
# "sh -c $join UNIT CMD..." moves itself into UNIT's cgroup, then becomes
# CMD (same process: its sockets are made in the cgroup).
join='echo $$ >"/sys/fs/cgroup/system.slice/$0/cgroup.procs" && exec "$@"'
$C -serve "$wg:10296" & out_allowed=$!
$C -serve "$D:10297" & out_denied=$!
port=10297
for u in kubelet kube-proxy; do
	port=$((port + 1))
	sh -c "$join" "$u.service" $C -serve "$wg:$port" & srv=$!
	sleep 2
	p "$u.cgroup=$(cat /proc/$srv/cgroup)"
	p "$u.in.allowed=$($C -from "$wg" -to "$wg:$port")"
	p "$u.in.denied=$($C -from $D -to "$wg:$port")"
	p "$u.out.allowed=$(sh -c "$join" "$u.service" $C -from "$wg" -to "$wg:10296")"
	p "$u.out.denied=$(sh -c "$join" "$u.service" $C -from "$wg" -to "$D:10297")"
	kill $srv
	wait $srv 2>/dev/null
done
p control.out=$($C -from "$wg" -to "$D:10297")
kill $out_allowed $out_denied
ip addr del $D/32 dev lo
journalctl -u kubelet -n 40 --no-pager >kubelet.log 2>&1
journalctl -u kube-proxy -n 40 --no-pager >kube-proxy.log 2>&1
kb() { ` + benchDir + `/kube-bench run --targets node --benchmark ` + benchmark + ` --config-dir ` + benchDir + `/cfg --config ` + benchDir + `/cfg/config.yaml "$@"; }
p kube-bench.start=$(up)
kb --json >report.json 2>stderr-json.log
p kube-bench.json.rc=$?
kb >report.txt 2>stderr-text.log
p kube-bench.text.rc=$?
p kube-bench.end=$(up)
for f in report.json report.txt stderr-json.log kubelet.log kube-proxy.log; do
	echo "CIS-FILE-BEGIN $f"
	base64 -w 76 "$f"
	echo "CIS-FILE-END $f"
done
p done
systemctl poweroff
`
}

// probeFiles are the spec files of the probe and kube-bench; sources are
// relative to the spec's directory, where the test stages them.
func probeFiles(benchmark string, benchFiles []string, config string) []spec.File {
	unit, script := probeUnit, probeScript(benchmark)
	files := []spec.File{
		{Path: probeUnitPath, Content: &unit, Mode: "0644"},
		{Path: probeWantsPath, Link: "../nodebake-cis-probe.service", Mode: "0777"},
		{Path: probeScriptPath, Content: &script, Mode: "0755"},
		{Path: connectPath, Source: "connect", Mode: "0755"},
		{Path: benchDir + "/kube-bench", Source: "kube-bench", Mode: "0755"},
		{Path: benchDir + "/cfg/config.yaml", Content: &config, Mode: "0644"},
	}
	for _, f := range benchFiles {
		files = append(files, spec.File{Path: benchDir + "/cfg/" + f, Source: "cfg/" + f, Mode: "0644"})
	}
	return files
}

// report is what the probe said: its key=value lines and its files.
type report struct {
	values map[string]string
	files  map[string][]byte
}

var fileBlock = regexp.MustCompile(`(?s)CIS-FILE-BEGIN (\S+)\r?\n(.*?)CIS-FILE-END (\S+)`)

func parseReport(log string) (report, error) {
	r := report{values: map[string]string{}, files: map[string][]byte{}}
	for _, m := range fileBlock.FindAllStringSubmatch(log, -1) {
		if m[1] != m[3] {
			return r, fmt.Errorf("file block %s ends as %s", m[1], m[3])
		}
		b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(m[2]), ""))
		if err != nil {
			return r, fmt.Errorf("decoding %s: %w", m[1], err)
		}
		r.files[m[1]] = b
	}
	for _, line := range strings.Split(fileBlock.ReplaceAllString(log, ""), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "CIS ")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(rest, "=")
		r.values[k] = v
	}
	return r, nil
}
