package platform

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nodebake/nodebake/layers/firstboot/blockdev"
	"github.com/nodebake/nodebake/layers/firstboot/cmdline"
)

// DMIDir is where the kernel shows the SMBIOS strings.
const DMIDir = "/sys/class/dmi/id"

// HypervisorUUIDPath is Xen's domain UUID.
const HypervisorUUIDPath = "/sys/hypervisor/uuid"

// maxDMIValue bounds one DMI value read: SMBIOS strings are short.
const maxDMIValue = 1024

// DMI holds what the firmware reports, whitespace-trimmed. Files that are
// missing or unreadable (product_serial and product_uuid are root-only)
// leave their field empty.
type DMI struct {
	SysVendor       string
	ProductName     string
	ProductSerial   string
	ProductUUID     string
	BoardVendor     string
	BoardAssetTag   string
	ChassisAssetTag string
	BIOSVendor      string
	BIOSVersion     string
	// HypervisorUUID is /sys/hypervisor/uuid (Xen).
	HypervisorUUID string
}

// ReadDMI reads the DMI values under root.
func ReadDMI(root string) DMI {
	read := func(p string) string {
		f, err := os.Open(filepath.Join(root, p))
		if err != nil {
			return ""
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxDMIValue))
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	dmi := func(name string) string { return read(DMIDir + "/" + name) }
	return DMI{
		SysVendor:       dmi("sys_vendor"),
		ProductName:     dmi("product_name"),
		ProductSerial:   dmi("product_serial"),
		ProductUUID:     dmi("product_uuid"),
		BoardVendor:     dmi("board_vendor"),
		BoardAssetTag:   dmi("board_asset_tag"),
		ChassisAssetTag: dmi("chassis_asset_tag"),
		BIOSVendor:      dmi("bios_vendor"),
		BIOSVersion:     dmi("bios_version"),
		HypervisorUUID:  read(HypervisorUUIDPath),
	}
}

// probe is what detection looks at: read once, the block devices only
// when a platform asks, and then scanned once.
type probe struct {
	root   string
	params cmdline.Params
	dmi    DMI
	scan   func() ([]blockdev.Device, error)

	scanned bool
	devs    []blockdev.Device
	scanErr error
}

func newProbe(root string, params cmdline.Params, scan func() ([]blockdev.Device, error)) *probe {
	if scan == nil {
		scan = func() ([]blockdev.Device, error) { return blockdev.Scan(root) }
	}
	return &probe{root: root, params: params, dmi: ReadDMI(root), scan: scan}
}

// drive returns the first block device whose filesystem label is exactly
// one of labels (all spellings of one label, e.g. "cidata" and "CIDATA").
func (p *probe) drive(labels ...string) (blockdev.Device, bool, error) {
	if !p.scanned {
		p.devs, p.scanErr = p.scan()
		p.scanned = true
		if p.scanErr != nil {
			p.scanErr = fmt.Errorf("looking for config drives: %w", p.scanErr)
		}
	}
	for _, d := range p.devs {
		for _, l := range labels {
			if d.Label.Name == l {
				return d, true, p.scanErr
			}
		}
	}
	return blockdev.Device{}, false, p.scanErr
}

// The labels of config drives.
var (
	configDriveLabels = []string{"config-2", "CONFIG-2"}
	cidataLabels      = []string{"cidata", "CIDATA"}
)

func detectMetal(p *probe) string {
	if _, ok := p.params.Get(ParamURL); ok {
		return "kernel command line " + ParamURL + "="
	}
	return ""
}

// detectEC2 follows AWS's documented checks and cloud-init's: Nitro
// instances report "Amazon EC2" as the system (or board) vendor; Xen
// instances have a hypervisor UUID starting with "ec2", and a product UUID
// starting with "ec2" that equals the product serial (a random UUID starts
// with "ec2" once in 4096, so the UUID alone is not enough), and a BIOS
// version ending in ".amazon".
func detectEC2(p *probe) string {
	d := p.dmi
	switch {
	case strings.HasPrefix(d.SysVendor, "Amazon EC2"):
		return fmt.Sprintf("dmi sys_vendor %q", d.SysVendor)
	case strings.HasPrefix(d.BoardVendor, "Amazon EC2"):
		return fmt.Sprintf("dmi board_vendor %q", d.BoardVendor)
	case hasPrefixFold(d.HypervisorUUID, "ec2"):
		return HypervisorUUIDPath + " starts with ec2"
	case hasPrefixFold(d.ProductUUID, "ec2") && strings.EqualFold(d.ProductUUID, d.ProductSerial):
		return "dmi product_uuid and product_serial start with ec2"
	case strings.HasSuffix(strings.ToLower(d.BIOSVersion), ".amazon"):
		return fmt.Sprintf("dmi bios_version %q", d.BIOSVersion)
	}
	return ""
}

func detectGCE(p *probe) string {
	d := p.dmi
	switch {
	case d.ProductName == "Google Compute Engine" || d.ProductName == "Google":
		return fmt.Sprintf("dmi product_name %q", d.ProductName)
	case strings.HasPrefix(d.ProductSerial, "GoogleCloud-"):
		return "dmi product_serial starts with GoogleCloud-"
	}
	return ""
}

// azureAssetTag is the chassis asset tag of every Azure VM (the one DMI
// value cloud-init relies on; the vendor and product are Hyper-V's).
const azureAssetTag = "7783-7084-3265-9085-8269-3286-77"

func detectAzure(p *probe) string {
	if p.dmi.ChassisAssetTag == azureAssetTag {
		return "dmi chassis_asset_tag " + azureAssetTag
	}
	return ""
}

// openStackProducts are product names (or chassis asset tags) of OpenStack
// Nova VMs; openStackTags are chassis asset tags some OpenStack clouds set
// instead.
var (
	openStackProducts = []string{"OpenStack Nova", "OpenStack Compute"}
	openStackTags     = []string{"OpenTelekomCloud", "SAP CCloud VM", "HUAWEICLOUD", "Samsung Cloud Platform"}
)

// detectOpenStack: Nova VMs by DMI; Ironic and Metal3 bare metal, whose
// DMI is the hardware vendor's, by a config-2 drive.
func detectOpenStack(p *probe) string {
	d := p.dmi
	for _, s := range openStackProducts {
		if d.ProductName == s {
			return fmt.Sprintf("dmi product_name %q", s)
		}
		if d.ChassisAssetTag == s {
			return fmt.Sprintf("dmi chassis_asset_tag %q", s)
		}
	}
	for _, s := range openStackTags {
		if d.ChassisAssetTag == s {
			return fmt.Sprintf("dmi chassis_asset_tag %q", s)
		}
	}
	if dev, ok, _ := p.drive(configDriveLabels...); ok {
		return "a drive labelled " + dev.Label.Name + " (" + dev.Path + ")"
	}
	return ""
}

// detectNoCloud: a cidata drive, or "ds=nocloud" in the SMBIOS serial (as
// QEMU's -smbios type=1,serial=ds=nocloud sets it).
func detectNoCloud(p *probe) string {
	if s := p.dmi.ProductSerial; s == "ds=nocloud" || strings.HasPrefix(s, "ds=nocloud;") {
		return "dmi product_serial ds=nocloud"
	}
	if dev, ok, _ := p.drive(cidataLabels...); ok {
		return "a drive labelled " + dev.Label.Name + " (" + dev.Path + ")"
	}
	return ""
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
