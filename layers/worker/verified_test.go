package worker

import (
	"io"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/layers/entry"
	"github.com/nodebake/nodebake/layers/firstboot"
)

func TestVerifiedBoot(t *testing.T) {
	render := func(extra string) map[string]entry.Entry {
		t.Helper()
		s := load(t, minimal+"output:\n  verifiedBoot:\n    enabled: true\n    version: \"1\"\n"+extra)
		out := map[string]entry.Entry{}
		for _, e := range VerifiedBoot(s) {
			if _, dup := out[e.Path]; dup {
				t.Errorf("%s rendered twice", e.Path)
			}
			out[e.Path] = e
		}
		return out
	}
	content := func(e entry.Entry) string {
		t.Helper()
		rc, err := e.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return string(b)
	}
	unit := SystemdUnitDir + "/" + HealthUnit

	// Without updates: only the health check, required by
	// boot-complete.target and run only on counted boots.
	got := render("")
	if len(got) != 2 {
		t.Errorf("%d entries without updates, want the health unit and its link: %v", len(got), got)
	}
	h := content(got[unit])
	for _, w := range []string{
		"ConditionPathExists=/sys/firmware/efi/efivars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f\n",
		"Before=boot-complete.target\n", "After=nodebake-firstboot.service kubelet.service\n", "FailureAction=reboot\n",
		"ExecStart=" + firstboot.ProgramPath + " health --timeout 600s\n", "RequiredBy=boot-complete.target\n", "Type=oneshot\n",
	} {
		if !strings.Contains(h, w) {
			t.Errorf("%s lacks %q:\n%s", HealthUnit, w, h)
		}
	}
	if l := got[SystemdUnitDir+"/boot-complete.target.requires/"+HealthUnit]; l.Linkname != "../"+HealthUnit {
		t.Errorf("boot-complete.target does not require %s: %+v", HealthUnit, l)
	}

	// Updates without a timer: the service, not enabled.
	got = render("    updates: {source: https://u.example/w}\n")
	if u := content(got[SystemdUnitDir+"/"+UpdateUnit]); !strings.Contains(u, "ExecStart="+SysupdateProgram+" update --reboot\n") ||
		!strings.Contains(u, "After=boot-complete.target\n") {
		t.Errorf("%s:\n%s", UpdateUnit, u)
	}
	for p := range got {
		if strings.Contains(p, "timer") || strings.Contains(p, ".wants/") {
			t.Errorf("without updates.timer the image has %s", p)
		}
	}

	// With a timer: enabled on the spec's schedule.
	got = render("    updates: {source: https://u.example/w, timer: \"Sat *-*-* 03:00\"}\n")
	timer := content(got[SystemdUnitDir+"/"+UpdateTimer])
	if !strings.Contains(timer, "OnCalendar=Sat *-*-* 03:00\n") {
		t.Errorf("%s:\n%s", UpdateTimer, timer)
	}
	if l := got[SystemdUnitDir+"/timers.target.wants/"+UpdateTimer]; l.Linkname != "../"+UpdateTimer {
		t.Errorf("the timer is not enabled: %+v", l)
	}
}
