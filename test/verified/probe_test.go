package verified

import (
	"strings"

	"github.com/nodebake/nodebake/layers/spec"
)

// The probe: a unit and a script baked into the image through the spec's
// files. Once the system has started it writes "PROBE key=value" lines
// about the root, the verity device, the boot loader and Secure Boot to the
// second serial port, then powers off.
const (
	probeUnitPath   = "/etc/systemd/system/nodebake-verified-probe.service"
	probeWantsPath  = "/etc/systemd/system/multi-user.target.wants/nodebake-verified-probe.service"
	probeScriptPath = "/usr/local/lib/nodebake-probe/verified.sh"
)

const probeUnit = `[Unit]
Description=nodebake verified-boot test probe (reports on ttyS1)

[Service]
Type=exec
ExecStart=` + probeScriptPath + `
`

const probeScript = `#!/bin/sh
exec >/dev/ttyS1 2>&1
p() { printf 'PROBE %s\n' "$*"; }
one() { tr '\n' ' ' | sed 's/ *$//'; }
# efivar NAME-GUID: an EFI variable's value without its 4 attribute bytes,
# UTF-16 text shown as ASCII.
efivar() {
	f=/sys/firmware/efi/efivars/$1
	if [ -e "$f" ]; then cat "$f" | tail -c +5 | tr -d '\000'; else echo absent; fi
}
loader=4a67b082-0a4c-41cf-b6c7-440b29bb8c4f

p start uptime=$(cut -d' ' -f1 /proc/uptime)
p system=$(systemctl is-system-running --wait)
p running-uptime=$(cut -d' ' -f1 /proc/uptime)
p analyze=$(systemd-analyze 2>&1 | head -n 1)
p failed=$(systemctl list-units --failed --no-legend --plain | cut -d' ' -f1 | one)
p cmdline=$(cat /proc/cmdline)
p root.source=$(findmnt -n -o SOURCE /)
p root.fstype=$(findmnt -n -o FSTYPE /)
p root.options=$(findmnt -n -o OPTIONS /)
p verity.status=$(veritysetup status root 2>&1 | sed -n 's/^ *status: *//p')
p verity.roothash=$(veritysetup status root 2>&1 | sed -n 's/^ *root hash: *//p')
p dm.table=$(dmsetup table root 2>&1 | one)
p var.source=$(findmnt -n -o SOURCE /var)
p secureboot=$(od -An -tu1 -j4 /sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c 2>/dev/null | tr -d ' ')
p loader.entry=$(efivar LoaderEntrySelected-$loader)
p loader.bootcountpath=$(efivar LoaderBootCountPath-$loader)
p loader.info=$(efivar LoaderInfo-$loader)
p stub.info=$(efivar StubInfo-$loader)
p loader.vars=$(ls /sys/firmware/efi/efivars | sed -n "s/-$loader\$//p" | one)
p esp.uki=$(ls /efi/EFI/Linux 2>&1 | one)
p esp.mount=$(findmnt -n -o TARGET,SOURCE -t vfat | one)
for u in kubelet containerd systemd-bless-boot boot-complete.target; do
	p "$u.ActiveState=$(systemctl show -p ActiveState --value "$u")"
done
p os.image=$(. /etc/os-release; echo "$IMAGE_ID $IMAGE_VERSION")
p sysupdate.list=$(/usr/lib/systemd/systemd-sysupdate --offline list 2>&1 | one)
p sysupdate.version=$(/usr/lib/systemd/systemd-sysupdate --offline list "$(. /etc/os-release; echo "$IMAGE_VERSION")" 2>&1 | one)
p kubelet.ConditionResult=$(systemctl show -p ConditionResult --value kubelet)
p done
systemctl poweroff
`

// probeFiles are the spec files that install the probe.
func probeFiles() []spec.File {
	unit, script := probeUnit, probeScript
	return []spec.File{
		{Path: probeUnitPath, Content: &unit, Mode: "0644"},
		{Path: probeWantsPath, Link: "../nodebake-verified-probe.service", Mode: "0777"},
		{Path: probeScriptPath, Content: &script, Mode: "0755"},
	}
}

// parseProbe parses the "PROBE key=value" lines of one boot's report.
func parseProbe(log string) map[string]string {
	r := map[string]string{}
	for _, line := range strings.Split(strings.ReplaceAll(log, "\r", ""), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "PROBE ")
		if !ok {
			continue
		}
		k, v, _ := strings.Cut(rest, "=")
		r[k] = v
	}
	return r
}
