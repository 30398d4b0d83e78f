package qemu

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Identity is what a machine's firmware reports about it in SMBIOS, as
// Linux shows it under /sys/class/dmi/id (the file names are in the field
// comments). Empty fields keep QEMU's defaults: sys_vendor "QEMU", say.
type Identity struct {
	// Type 0: bios_vendor, bios_version.
	BIOSVendor, BIOSVersion string
	// Type 1: sys_vendor, product_name, product_serial.
	SysVendor, ProductName, ProductSerial string
	// UUID is product_uuid. Apply gives it to QEMU's -uuid (Config.UUID),
	// from which systemd also derives the machine id.
	UUID string
	// Type 2: board_vendor, board_name, board_asset_tag.
	BoardVendor, BoardName, BoardAssetTag string
	// Type 3: chassis_vendor, chassis_asset_tag.
	ChassisVendor, ChassisAssetTag string
}

// AzureChassisAssetTag is the chassis asset tag of every Azure VM, the
// value cloud-init detects Azure by.
const AzureChassisAssetTag = "7783-7084-3265-9085-8269-3286-77"

// EC2Identity is an EC2 Nitro instance (platforms.md): sys_vendor "Amazon
// EC2", the instance ID as board_asset_tag, and a product_uuid that starts
// with "ec2", derived from the instance ID.
func EC2Identity(instanceID string) Identity {
	return Identity{
		BIOSVendor:    "Amazon EC2",
		BIOSVersion:   "1.0",
		SysVendor:     "Amazon EC2",
		ProductName:   "m5.large",
		UUID:          derivedUUID("ec2", instanceID),
		BoardAssetTag: instanceID,
	}
}

// GCEIdentity is a Google Compute Engine VM: product_name "Google Compute
// Engine", vendor "Google", and a product_serial "GoogleCloud-…".
func GCEIdentity() Identity {
	return Identity{
		BIOSVendor:    "Google",
		BIOSVersion:   "Google",
		SysVendor:     "Google",
		ProductName:   "Google Compute Engine",
		ProductSerial: "GoogleCloud-6E6F646562616B65",
		BoardVendor:   "Google",
		BoardName:     "Google Compute Engine",
		ChassisVendor: "Google",
	}
}

// AzureIdentity is an Azure (Hyper-V) VM: its chassis asset tag, with
// "Microsoft Corporation" and "Virtual Machine" as every Hyper-V guest
// reports them.
func AzureIdentity() Identity {
	return Identity{
		BIOSVendor:      "Microsoft Corporation",
		BIOSVersion:     "Hyper-V UEFI Release v4.1",
		SysVendor:       "Microsoft Corporation",
		ProductName:     "Virtual Machine",
		BoardVendor:     "Microsoft Corporation",
		BoardName:       "Virtual Machine",
		ChassisVendor:   "Microsoft Corporation",
		ChassisAssetTag: AzureChassisAssetTag,
	}
}

// OpenStackIdentity is an OpenStack Nova VM: product_name "OpenStack Nova"
// from manufacturer "OpenStack Foundation", as Nova's libvirt driver sets
// them.
func OpenStackIdentity() Identity {
	return Identity{
		SysVendor:   "OpenStack Foundation",
		ProductName: "OpenStack Nova",
	}
}

// PlainIdentity is a plain QEMU machine: QEMU's own defaults.
func PlainIdentity() Identity { return Identity{} }

// derivedUUID returns a UUID that starts with prefix (hex digits),
// derived from seed.
func derivedUUID(prefix, seed string) string {
	h := sha256.Sum256([]byte(seed))
	s := prefix + hex.EncodeToString(h[:])[:32-len(prefix)]
	return s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:32]
}

// SMBIOS returns the -smbios values (for Config.SMBIOS) that report id,
// one per SMBIOS type that has a field set.
func (id Identity) SMBIOS() []string {
	var out []string
	add := func(typ string, kv ...string) {
		var parts []string
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] != "" {
				parts = append(parts, kv[i]+"="+strings.ReplaceAll(kv[i+1], ",", ",,"))
			}
		}
		if len(parts) > 0 {
			out = append(out, "type="+typ+","+strings.Join(parts, ","))
		}
	}
	add("0", "vendor", id.BIOSVendor, "version", id.BIOSVersion)
	add("1", "manufacturer", id.SysVendor, "product", id.ProductName, "serial", id.ProductSerial)
	add("2", "manufacturer", id.BoardVendor, "product", id.BoardName, "asset", id.BoardAssetTag)
	add("3", "manufacturer", id.ChassisVendor, "asset", id.ChassisAssetTag)
	return out
}

// Apply makes c report id: its SMBIOS values are appended to c.SMBIOS,
// and its UUID, when set, becomes c.UUID.
func (id Identity) Apply(c *Config) {
	c.SMBIOS = append(c.SMBIOS, id.SMBIOS()...)
	if id.UUID != "" {
		c.UUID = id.UUID
	}
}
