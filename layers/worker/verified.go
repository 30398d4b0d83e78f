package worker

import (
	"strconv"

	"github.com/nodebake/nodebake/layers/entry"
	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/health"
	"github.com/nodebake/nodebake/layers/spec"
)

// The units of a verified image (output.verifiedBoot).
const (
	// HealthUnit gates boot-complete.target on a counted boot (a new
	// version's tries): systemd-bless-boot marks the version good only
	// when it succeeds; when it fails, the machine reboots.
	HealthUnit = "nodebake-healthy.service"
	// UpdateUnit installs the next version with systemd-sysupdate and
	// reboots into it; UpdateTimer starts it on the spec's schedule.
	UpdateUnit  = "nodebake-update.service"
	UpdateTimer = "nodebake-update.timer"
	// SysupdateProgram is systemd-sysupdate (package systemd-container),
	// which is not on PATH.
	SysupdateProgram = "/usr/lib/systemd/systemd-sysupdate"
	// HealthTimeout bounds the health check of a counted boot.
	HealthTimeout = health.DefaultTimeout
	// loaderBootCountPath is the EFI variable systemd-boot sets when the
	// entry it boots has tries left.
	loaderBootCountPath = "/sys/firmware/efi/efivars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
)

// VerifiedBoot returns the units a verified image adds: the health check
// (required by boot-complete.target), the update service and its timer
// (enabled only when the spec's updates.timer is set). s must be defaulted,
// valid and have verified boot enabled.
func VerifiedBoot(s *spec.Spec) []entry.Entry {
	out := []entry.Entry{
		entry.File(SystemdUnitDir+"/"+HealthUnit, 0o644, []byte(healthUnit())),
		entry.Symlink(SystemdUnitDir+"/boot-complete.target.requires/"+HealthUnit, "../"+HealthUnit),
	}
	u := s.Output.VerifiedBoot.Updates
	if u == nil {
		return out
	}
	out = append(out, entry.File(SystemdUnitDir+"/"+UpdateUnit, 0o644, []byte(updateUnit)))
	if u.Timer != "" {
		out = append(out,
			entry.File(SystemdUnitDir+"/"+UpdateTimer, 0o644, []byte(updateTimer(u.Timer))),
			entry.Symlink(SystemdUnitDir+"/timers.target.wants/"+UpdateTimer, "../"+UpdateTimer))
	}
	return out
}

// healthUnit runs on a boot systemd-boot counts, that is the first boots
// of a newly installed version (the image as built has no counter, so a
// node that never got its node config does not reboot in a loop).
func healthUnit() string {
	timeout := int(HealthTimeout.Seconds())
	return `[Unit]
Description=nodebake: is this boot of a new version healthy (node config applied, kubelet running)?
# Only boots systemd-boot counts: a new version's tries.
ConditionPathExists=` + loaderBootCountPath + `
After=nodebake-firstboot.service kubelet.service
Before=boot-complete.target
# Unhealthy: boot-complete.target fails, systemd-bless-boot does not mark
# the version good, and the machine reboots, using up a try. When the
# tries are used up, systemd-boot boots the previous version.
FailureAction=reboot

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=` + firstboot.ProgramPath + ` health --timeout ` + strconv.Itoa(timeout) + `s
TimeoutStartSec=` + strconv.Itoa(timeout+60) + `
StandardOutput=journal+console
StandardError=journal+console

[Install]
RequiredBy=boot-complete.target
`
}

// updateUnit installs the newest published version into the other slot
// and reboots into it (systemd-sysupdate reboots only when it installed a
// version newer than the running one). Start it after draining the node.
const updateUnit = `[Unit]
Description=nodebake: install the next image version and reboot into it
Documentation=man:systemd-sysupdate(8)
Wants=network-online.target
After=network-online.target
# Not while a new version's boot is still being judged.
After=boot-complete.target

[Service]
Type=oneshot
ExecStart=` + SysupdateProgram + ` update --reboot
`

func updateTimer(onCalendar string) string {
	return `[Unit]
Description=nodebake: look for a newer image version and install it

[Timer]
OnCalendar=` + onCalendar + `

[Install]
WantedBy=timers.target
`
}
