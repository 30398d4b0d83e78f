package boot

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseProbe(t *testing.T) {
	log := "garbage\r\nPROBE start uptime=9.5\r\nPROBE system=running\r\nPROBE failed=\r\n" +
		"PROBE root.options=ro,relatime\r\nPROBE reboot\r\nboot noise\nPROBE start uptime=7.1\nPROBE marker=abc\nPROBE done\n"
	want := []probeReport{
		{"start": "", "start.uptime": "9.5", "system": "running", "failed": "", "root.options": "ro,relatime", "reboot": ""},
		{"start": "", "start.uptime": "7.1", "marker": "abc", "done": ""},
	}
	if diff := cmp.Diff(want, parseProbe(log)); diff != "" {
		t.Errorf("parseProbe (-want +got):\n%s", diff)
	}
	if got := parseProbe(""); len(got) != 0 {
		t.Errorf("parseProbe(empty) = %v", got)
	}
}

func TestParseListing(t *testing.T) {
	out := `Parallel unsquashfs: Using 2 processors
drwxr-xr-x 0/0                   123 2025-08-09 00:00 squashfs-root
drwxr-xr-x 0/0                    40 2025-08-09 00:00 squashfs-root/usr
-rwsr-xr-x 0/0                 59704 2025-08-09 00:00 squashfs-root/usr/bin/mount
-rwxr-sr-x 0/42                72184 2025-08-09 00:00 squashfs-root/usr/bin/chage
lrwxrwxrwx 0/0                     7 2025-08-09 00:00 squashfs-root/bin -> usr/bin
crw-rw-rw- 0/0                  1,  3 2025-08-09 00:00 squashfs-root/dev/null
`
	want := map[string]listEntry{
		"/":              {"drwxr-xr-x", "0/0"},
		"/usr":           {"drwxr-xr-x", "0/0"},
		"/usr/bin/mount": {"-rwsr-xr-x", "0/0"},
		"/usr/bin/chage": {"-rwxr-sr-x", "0/42"},
		"/bin":           {"lrwxrwxrwx", "0/0"},
		"/dev/null":      {"crw-rw-rw-", "0/0"},
	}
	if diff := cmp.Diff(want, parseListing(out)); diff != "" {
		t.Errorf("parseListing (-want +got):\n%s", diff)
	}
}

func TestModeString(t *testing.T) {
	tests := []struct {
		mode int64
		want string
	}{
		{0o755, "rwxr-xr-x"},
		{0o4755, "rwsr-xr-x"},
		{0o2755, "rwxr-sr-x"},
		{0o4644, "rwSr--r--"},
		{0o1777, "rwxrwxrwt"},
		{0o1776, "rwxrwxrwT"},
		{0o600, "rw-------"},
	}
	for _, tt := range tests {
		if got := modeString(tt.mode); got != tt.want {
			t.Errorf("modeString(%o) = %s, want %s", tt.mode, got, tt.want)
		}
	}
}

func TestSgdiskParsing(t *testing.T) {
	list := `Disk w.raw: 4194304 sectors, 2.0 GiB
Sector size (logical): 512 bytes
Disk identifier (GUID): 0B0E2F3A-0000-4000-8000-000000000001
Partition table holds up to 128 entries

Number  Start (sector)    End (sector)  Size       Code  Name
   1            2048          526335   256.0 MiB   EF00  esp
   2          526336         2623487   1024.0 MiB  8304  root-x86-64
   3         2623488         4192255   766.0 MiB   8310  var
`
	m := sectorRE.FindStringSubmatch(list)
	if m == nil || m[1] != "512" {
		t.Errorf("sector size: %v", m)
	}
	var nums []string
	for _, pm := range partRE.FindAllStringSubmatch(list, -1) {
		nums = append(nums, pm[1])
	}
	if diff := cmp.Diff([]string{"1", "2", "3"}, nums); diff != "" {
		t.Errorf("partition numbers (-want +got):\n%s", diff)
	}
	p := partition{First: 2048, Last: 526335}
	if p.offset(512) != 1<<20 || p.size(512) != 256<<20 {
		t.Errorf("offset %d size %d", p.offset(512), p.size(512))
	}
}
