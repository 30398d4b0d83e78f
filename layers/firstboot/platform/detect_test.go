package platform

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot/internal/testimage"
)

func TestDetectDMI(t *testing.T) {
	tests := []struct {
		name    string
		dmi     map[string]string
		want    Name
		because string
	}{
		{"ec2 nitro", dmiNitro, EC2, `sys_vendor "Amazon EC2"`},
		{"ec2 nitro board only", map[string]string{"board_vendor": "Amazon EC2"}, EC2, "board_vendor"},
		{"ec2 xen", dmiXenEC2, EC2, "/sys/hypervisor/uuid"},
		{"ec2 xen product uuid and serial", map[string]string{"sys_vendor": "Xen",
			"product_uuid": "EC2F12A3-2D1C-4CDB-9A1C-0123456789AB", "product_serial": "ec2f12a3-2d1c-4cdb-9a1c-0123456789ab"}, EC2, "product_uuid"},
		{"ec2 xen bios version", map[string]string{"sys_vendor": "Xen", "bios_version": "4.11.amazon"}, EC2, "bios_version"},
		{"gce", dmiGCE, GCE, "product_name"},
		{"gce by serial", map[string]string{"product_serial": "GoogleCloud-ABC"}, GCE, "GoogleCloud-"},
		{"azure", dmiAzure, Azure, "chassis_asset_tag"},
		{"hyper-v is not azure", dmiHyperV, None, "no platform"},
		{"openstack nova", dmiOpenStack, OpenStack, "OpenStack Nova"},
		{"openstack compute in the asset tag", map[string]string{"chassis_asset_tag": "OpenStack Compute"}, OpenStack, "chassis_asset_tag"},
		{"open telekom cloud", dmiOTC, OpenStack, "OpenTelekomCloud"},
		{"nocloud serial", map[string]string{"sys_vendor": "QEMU", "product_serial": "ds=nocloud;i=x"}, NoCloud, "ds=nocloud"},
		{"nocloud-net is not read", map[string]string{"sys_vendor": "QEMU", "product_serial": "ds=nocloud-net;s=http://10.0.2.2/"}, None, "no platform"},
		// A random product UUID starts with ec2 once in 4096: not EC2
		// unless the serial equals it.
		{"plain qemu", dmiQEMU, None, "no platform"},
		{"bare metal", dmiBareMetal, None, "no platform"},
		{"nothing readable", nil, None, "no platform"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t, tt.dmi, "root=PARTUUID=x ro")
			d, err := Detect(Options{Root: m.root})
			if err != nil {
				t.Fatal(err)
			}
			if d.Platform != tt.want || !strings.Contains(d.Reason, tt.because) {
				t.Errorf("Detect = %s (%s), want %s because of %q", d.Platform, d.Reason, tt.want, tt.because)
			}
			if d.Timeout != DefaultTimeout {
				t.Errorf("Timeout = %s, want the default %s", d.Timeout, DefaultTimeout)
			}
		})
	}
}

func TestReadDMI(t *testing.T) {
	m := newMachine(t, dmiNitro, "")
	m.write(HypervisorUUIDPath, "  ec2abc \n")
	got := ReadDMI(m.root)
	want := DMI{SysVendor: "Amazon EC2", ProductName: "m6i.large", ProductUUID: "ec2e1916-9099-7caf-fd21-012345abcdef",
		BoardVendor: "Amazon EC2", BoardAssetTag: "i-0123456789abcdef0", ChassisAssetTag: "Amazon EC2",
		BIOSVendor: "Amazon EC2", BIOSVersion: "1.0", HypervisorUUID: "ec2abc"}
	if got != want {
		t.Errorf("ReadDMI = %+v\nwant %+v", got, want)
	}
	if os.Geteuid() != 0 {
		// product_serial is root-only on a real machine: an unreadable
		// file is an empty value, not an error.
		if err := os.Chmod(filepath.Join(m.root, DMIDir, "product_uuid"), 0); err != nil {
			t.Fatal(err)
		}
		if ReadDMI(m.root).ProductUUID != "" {
			t.Error("an unreadable product_uuid gave a value")
		}
	}
}

func TestDetectDrives(t *testing.T) {
	iso := func(label string, files testimage.Files) string {
		return testimage.ISO(t, label, files, "-J", "-r")
	}
	tests := []struct {
		name   string
		dmi    map[string]string
		drives map[string]string
		want   Name
	}{
		{"ironic bare metal with config-2", dmiBareMetal, map[string]string{"sda5": iso("config-2", testimage.Files{"openstack/latest/user_data": nodeConfig})}, OpenStack},
		{"upper-case CONFIG-2", dmiQEMU, map[string]string{"vdb": testimage.FAT(t, "CONFIG-2", 12, 1440, testimage.Files{"x": nil})}, OpenStack},
		{"nocloud cidata", dmiQEMU, map[string]string{"sr0": iso("cidata", testimage.Files{"user-data": nodeConfig})}, NoCloud},
		{"nocloud CIDATA", dmiQEMU, map[string]string{"vdb": testimage.FAT(t, "CIDATA", 12, 1440, testimage.Files{"user-data": nodeConfig})}, NoCloud},
		{"mixed-case label is not cidata", dmiQEMU, map[string]string{"sr0": iso("CiData", testimage.Files{"user-data": nodeConfig})}, None},
		{"other labels", dmiQEMU, map[string]string{"vdb": iso("NODEBAKE", testimage.Files{"node.yaml": nodeConfig})}, None},
		{"the cloud's DMI wins over a drive", dmiNitro, map[string]string{"sr0": iso("cidata", testimage.Files{"user-data": nodeConfig})}, EC2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t, tt.dmi, "")
			for name, img := range tt.drives {
				m.drive(name, img)
			}
			d, err := Detect(Options{Root: m.root})
			if err != nil {
				t.Fatal(err)
			}
			if d.Platform != tt.want {
				t.Errorf("Detect = %s (%s), want %s", d.Platform, d.Reason, tt.want)
			}
		})
	}
}

func TestDetectCmdline(t *testing.T) {
	tests := []struct {
		cmdline string
		dmi     map[string]string
		want    Name
		timeout time.Duration
		err     string
	}{
		{"nodebake.platform=gce", dmiNitro, GCE, DefaultTimeout, ""},
		{"nodebake.platform=none", dmiNitro, None, DefaultTimeout, ""},
		{"nodebake.platform=metal nodebake.url=https://h/n", dmiNitro, Metal, DefaultTimeout, ""},
		{"nodebake.url=https://h/n nodebake.sha256=00", dmiNitro, Metal, DefaultTimeout, ""},
		{"nodebake.platform=ec2 nodebake.timeout=90s", dmiQEMU, EC2, 90 * time.Second, ""},
		{"nodebake.timeout=120", dmiQEMU, None, 120 * time.Second, ""},
		{"nodebake.platform=aws", dmiQEMU, None, 0, `nodebake.platform="aws": unknown platform (known: metal, ec2, gce, azure, openstack, nocloud, none)`},
		{"nodebake.platform=", dmiQEMU, None, 0, "unknown platform"},
		{"nodebake.timeout=soon", dmiQEMU, None, 0, `nodebake.timeout="soon": want a duration`},
		{"nodebake.timeout=0s", dmiQEMU, None, 0, "want more than 0"},
		{"nodebake.timeout=-5s", dmiQEMU, None, 0, "want more than 0"},
		{"nodebake.timeout=24h", dmiQEMU, None, 0, "at most 30m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.cmdline, func(t *testing.T) {
			m := newMachine(t, tt.dmi, tt.cmdline)
			d, err := Detect(Options{Root: m.root})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Detect: %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d.Platform != tt.want || d.Timeout != tt.timeout {
				t.Errorf("Detect = %s (%s), timeout %s; want %s, %s", d.Platform, d.Reason, d.Timeout, tt.want, tt.timeout)
			}
		})
	}
}

// TestTable checks the table's shape: every platform can be named on the
// command line, names are unique, and every platform has sources.
func TestTable(t *testing.T) {
	seen := map[Name]bool{}
	for _, p := range table() {
		if seen[p.name] || p.name == None {
			t.Errorf("platform %q named twice or reserved", p.name)
		}
		seen[p.name] = true
		if p.detect == nil || len(p.sources) == 0 {
			t.Errorf("platform %q has no detect function or no sources", p.name)
		}
	}
	want := []Name{Metal, EC2, GCE, Azure, OpenStack, NoCloud, None}
	if got := Names(); !reflect.DeepEqual(got, want) {
		t.Errorf("Names = %v, want %v", got, want)
	}
	m := newMachine(t, dmiGCE, "")
	d, _ := Detect(Options{Root: m.root})
	if got := d.Sources(); !reflect.DeepEqual(got, []string{"gce-metadata nodebake-node", "gce-metadata user-data"}) {
		t.Errorf("GCE sources = %q", got)
	}
}

func TestReadNoPlatform(t *testing.T) {
	m := newMachine(t, dmiQEMU, "")
	d, c, err := Lookup(context.Background(), Options{Root: m.root})
	if d.Platform != None || !errors.Is(err, ErrNoPlatform) || c.Data != nil {
		t.Errorf("Lookup on plain QEMU = %s, %v; want none and ErrNoPlatform", d.Platform, err)
	}
	if err := d.Report(context.Background(), nil); err != nil {
		t.Errorf("Report without a platform: %v", err)
	}
}

// BenchmarkDetect measures detection where no cloud matches (plain QEMU,
// which also looks at the block devices for config-2 and cidata labels)
// and where the first DMI check matches (EC2).
func BenchmarkDetect(b *testing.B) {
	for _, bc := range []struct {
		name string
		dmi  map[string]string
	}{{"plain-qemu", dmiQEMU}, {"ec2", dmiNitro}, {"azure", dmiAzure}} {
		b.Run(bc.name, func(b *testing.B) {
			m := newMachine(b, bc.dmi, "BOOT_IMAGE=/vmlinuz root=PARTUUID=x ro console=ttyS0")
			// Two disks that carry no config drive label, as a plain
			// QEMU node has (its own disk and a data disk).
			disk := filepath.Join(b.TempDir(), "disk.img")
			if err := os.WriteFile(disk, make([]byte, 40*2048), 0o644); err != nil {
				b.Fatal(err)
			}
			m.drive("vda", disk)
			m.drive("vdb", disk)
			b.ResetTimer()
			for b.Loop() {
				d, err := Detect(Options{Root: m.root})
				if err != nil {
					b.Fatal(err)
				}
				_ = d
			}
		})
	}
}
