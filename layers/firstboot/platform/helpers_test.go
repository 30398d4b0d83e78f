package platform

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// secret stands for the private keys a node config holds: no log line and
// no error may ever contain it.
const secret = "PRIVATE-KEY-MATERIAL-3f9a"

// nodeConfig is a stand-in node config that holds the secret.
var nodeConfig = []byte("apiVersion: nodebake.io/v1alpha1\nkind: NodeConfig\nnodeName: worker01\n# " + secret + "\n")

// machine is a fake root: DMI values, the kernel command line and block
// devices.
type machine struct {
	t    testing.TB
	root string
}

func newMachine(t testing.TB, dmi map[string]string, cmdline string) *machine {
	t.Helper()
	m := &machine{t: t, root: t.TempDir()}
	for name, v := range dmi {
		p := DMIDir + "/" + name
		if name == "hypervisor_uuid" {
			p = HypervisorUUIDPath
		}
		m.write(p, v+"\n")
	}
	if cmdline != "" {
		m.write("/proc/cmdline", cmdline+"\n")
	}
	return m
}

func (m *machine) write(p, content string) {
	m.t.Helper()
	full := filepath.Join(m.root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		m.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		m.t.Fatal(err)
	}
}

// drive attaches an image file as the block device name (e.g. "sr0").
func (m *machine) drive(name, image string) {
	m.t.Helper()
	m.write("/sys/class/block/"+name+"/uevent", "MAJOR=11\nMINOR=0\nDEVNAME="+name+"\nDEVTYPE=disk\n")
	m.write("/sys/class/block/"+name+"/size", "1000\n")
	if err := os.MkdirAll(filepath.Join(m.root, "dev"), 0o755); err != nil {
		m.t.Fatal(err)
	}
	if err := os.Symlink(image, filepath.Join(m.root, "dev", name)); err != nil {
		m.t.Fatal(err)
	}
}

// syncBuffer is a log that the retry loop and the test may share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// options are fast test options for machine m: short backoffs and time
// limits, all endpoints at base.
func (m *machine) options(base string, log *syncBuffer) Options {
	o := Options{
		Root: m.root,
		Endpoints: Endpoints{
			EC2: base, GCE: base, AzureIMDS: base, AzureWireServer: base, OpenStack: base,
		},
		Timeout:        3 * time.Second,
		AttemptTimeout: 500 * time.Millisecond,
		MinBackoff:     5 * time.Millisecond,
		MaxBackoff:     40 * time.Millisecond,
		MaxSize:        64 << 10,
	}
	if log != nil {
		o.Log = log
	}
	return o
}

// noSecret fails the test when a log or error holds the secret.
func noSecret(t testing.TB, what, s string) {
	t.Helper()
	if strings.Contains(s, secret) {
		t.Errorf("%s contains user data: %q", what, s)
	}
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bomb is a gzip stream that inflates to n zero bytes.
func bomb(t testing.TB, n int) []byte {
	return gz(t, make([]byte, n))
}

// The DMI values each platform sets, as platforms.md records them.
var (
	dmiNitro = map[string]string{
		"sys_vendor": "Amazon EC2", "product_name": "m6i.large", "board_vendor": "Amazon EC2",
		"board_asset_tag": "i-0123456789abcdef0", "bios_vendor": "Amazon EC2", "bios_version": "1.0",
		"product_uuid": "ec2e1916-9099-7caf-fd21-012345abcdef", "chassis_asset_tag": "Amazon EC2",
	}
	dmiXenEC2 = map[string]string{
		"sys_vendor": "Xen", "product_name": "HVM domU", "bios_vendor": "Xen", "bios_version": "4.2.amazon",
		"hypervisor_uuid": "ec2f12a3-2d1c-4cdb-9a1c-0123456789ab",
	}
	dmiGCE = map[string]string{
		"sys_vendor": "Google", "product_name": "Google Compute Engine", "board_vendor": "Google",
		"product_serial": "GoogleCloud-0123456789ABCDEF", "bios_vendor": "Google", "bios_version": "Google",
	}
	dmiAzure = map[string]string{
		"sys_vendor": "Microsoft Corporation", "product_name": "Virtual Machine",
		"chassis_asset_tag": azureAssetTag, "bios_vendor": "Microsoft Corporation", "bios_version": "Hyper-V UEFI Release v4.1",
	}
	dmiHyperV = map[string]string{
		"sys_vendor": "Microsoft Corporation", "product_name": "Virtual Machine", "chassis_asset_tag": "None",
	}
	dmiOpenStack = map[string]string{
		"sys_vendor": "OpenStack Foundation", "product_name": "OpenStack Nova", "bios_vendor": "SeaBIOS",
	}
	dmiOTC = map[string]string{
		"sys_vendor": "QEMU", "product_name": "Standard PC (Q35 + ICH9, 2009)", "chassis_asset_tag": "OpenTelekomCloud",
	}
	dmiQEMU = map[string]string{
		"sys_vendor": "QEMU", "product_name": "Standard PC (Q35 + ICH9, 2009)", "bios_vendor": "EFI Development Kit II / OVMF",
		"bios_version": "0.0.0", "product_uuid": "ec21a8f0-0000-4000-8000-000000000001", "chassis_asset_tag": "",
	}
	dmiBareMetal = map[string]string{
		"sys_vendor": "Dell Inc.", "product_name": "PowerEdge R650", "bios_vendor": "Dell Inc.", "bios_version": "1.6.5",
	}
)
