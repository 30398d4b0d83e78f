package qemu

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

func TestIdentitySMBIOS(t *testing.T) {
	tests := []struct {
		name string
		id   Identity
		want []string
	}{
		{"ec2", EC2Identity("i-0123456789abcdef0"), []string{
			"type=0,vendor=Amazon EC2,version=1.0",
			"type=1,manufacturer=Amazon EC2,product=m5.large",
			"type=2,asset=i-0123456789abcdef0",
		}},
		{"gce", GCEIdentity(), []string{
			"type=0,vendor=Google,version=Google",
			"type=1,manufacturer=Google,product=Google Compute Engine,serial=GoogleCloud-6E6F646562616B65",
			"type=2,manufacturer=Google,product=Google Compute Engine",
			"type=3,manufacturer=Google",
		}},
		{"azure", AzureIdentity(), []string{
			"type=0,vendor=Microsoft Corporation,version=Hyper-V UEFI Release v4.1",
			"type=1,manufacturer=Microsoft Corporation,product=Virtual Machine",
			"type=2,manufacturer=Microsoft Corporation,product=Virtual Machine",
			"type=3,manufacturer=Microsoft Corporation,asset=7783-7084-3265-9085-8269-3286-77",
		}},
		{"openstack", OpenStackIdentity(), []string{"type=1,manufacturer=OpenStack Foundation,product=OpenStack Nova"}},
		{"plain", PlainIdentity(), nil},
		{"commas escaped", Identity{ProductSerial: "ds=nocloud;s=http://10.0.2.2:8000/,x"}, []string{"type=1,serial=ds=nocloud;s=http://10.0.2.2:8000/,,x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.id.SMBIOS(); !slices.Equal(got, tt.want) {
				t.Errorf("SMBIOS() =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestEC2IdentityUUID(t *testing.T) {
	a, b := EC2Identity("i-0123456789abcdef0"), EC2Identity("i-0fedcba9876543210")
	shape := regexp.MustCompile(`^ec2[0-9a-f]{5}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	for _, id := range []Identity{a, b} {
		if !shape.MatchString(id.UUID) {
			t.Errorf("EC2 UUID %q: want a UUID starting with ec2", id.UUID)
		}
	}
	if a.UUID == b.UUID || a.UUID != EC2Identity("i-0123456789abcdef0").UUID {
		t.Errorf("EC2 UUIDs %s, %s: want one per instance ID, stable", a.UUID, b.UUID)
	}
	c := Config{Disk: "x", SMBIOS: []string{"type=11,value=io.systemd.credential:a=b"}}
	a.Apply(&c)
	if c.UUID != a.UUID || len(c.SMBIOS) != 4 || c.SMBIOS[0] != "type=11,value=io.systemd.credential:a=b" {
		t.Errorf("Apply gave UUID %q, SMBIOS %q", c.UUID, c.SMBIOS)
	}
	args := strings.Join(c.args(newPaths("/vm", c)), " ")
	if !strings.Contains(args, "-uuid "+a.UUID) || !strings.Contains(args, "-smbios type=2,asset=i-0123456789abcdef0") {
		t.Errorf("args lack the identity: %s", args)
	}
}
