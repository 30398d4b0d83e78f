package slot

import (
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{Label("nodebake", "1.2", false), "nodebake_1.2"},
		{Label("nodebake", "1.2", true), "nodebake_1.2_verity"},
		{UKIName("nodebake", "1.2", 3), "nodebake_1.2+3.efi"},
		{UKIName("nodebake", "1.2", 0), "nodebake_1.2.efi"},
	} {
		if tt.got != tt.want {
			t.Errorf("%q, want %q", tt.got, tt.want)
		}
	}
}

func TestCheckName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"worker", true},
		{"w0-a", true},
		{strings.Repeat("a", MaxNameLength), true},
		{strings.Repeat("a", MaxNameLength+1), false},
		{"", false},
		{"0worker", false},
		{"-worker", false},
		{"Worker", false},
		{"work_er", false},
		{"work.er", false},
		{"wörker", false},
		{"work\x00er", false},
	} {
		if err := CheckName(tt.name); (err == nil) != tt.ok {
			t.Errorf("CheckName(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func TestCheckVersion(t *testing.T) {
	longest := strings.Repeat("1", MaxLabelLength-len("worker__verity"))
	for _, tt := range []struct {
		version string
		ok      bool
	}{
		{"1", true},
		{"1.35.4-2", true},
		{"v1.35.4~rc1^2", true},
		{"A1", true},
		{longest, true},
		{longest + "1", false},
		{"", false},
		{".1", false},
		{"-1", false},
		{"~1", false},
		{"1_2", false},
		{"1+3", false},
		{"../1", false},
		{"1 2", false},
		{"1\n2", false},
		{"1é", false},
	} {
		if err := CheckVersion("worker", tt.version); (err == nil) != tt.ok {
			t.Errorf("CheckVersion(%q) = %v, want ok %v", tt.version, err, tt.ok)
		}
	}
}
