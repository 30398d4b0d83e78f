package spec

import "strings"

// Format is an output format.
type Format string

// Output formats.
const (
	// FormatRaw is the sparse raw disk image, <name>.raw.
	FormatRaw Format = "raw"
	// FormatRawZst is the raw image as one zstd stream, <name>.raw.zst.
	FormatRawZst Format = "raw.zst"
	// FormatQCOW2 is a qcow2 image (OpenStack, Proxmox, libvirt, Metal3).
	FormatQCOW2 Format = "qcow2"
	// FormatVHD is a fixed VHD with a whole-MiB size (Azure).
	FormatVHD Format = "vhd"
	// FormatVMDK is a stream-optimized VMDK (vSphere).
	FormatVMDK Format = "vmdk"
	// FormatGCE is a gzip'd tar holding disk.raw (Compute Engine import),
	// <name>.tar.gz.
	FormatGCE Format = "gce"
	// FormatNetboot is the network-boot bundle: kernel, initrd, the root
	// filesystem and an iPXE script, in <name>.netboot/.
	FormatNetboot Format = "netboot"
	// FormatUpdate is the update to the image's version for
	// systemd-sysupdate (output.verifiedBoot only): the root filesystem,
	// its dm-verity hash tree, the UKI and SHA256SUMS, in <name>.update/,
	// to be published at output.verifiedBoot.updates.source.
	FormatUpdate Format = "update"
)

// FormatInfo is what nodebake knows about an output format.
type FormatInfo struct {
	Format Format
	// Extension follows the image name in the output's name: <name>.qcow2.
	// For a directory format it is the directory's.
	Extension string
	// Directory formats write a directory of files (netboot).
	Directory bool
	// Ident names the output in identifiers: the raw file is the Image
	// itself, the others are QCOW2, RawZst, ... (the Packer plugin's
	// generated data calls their paths ImagePath, QCOW2Path, ...).
	Ident string
	// Summary says what the format is and what takes it, for help texts.
	Summary string
}

// FormatTable returns every output format, in the order outputs are
// listed. It is the one table of them: the spec, the build plan, the
// publisher, the CLI and the Packer plugin derive theirs from it.
func FormatTable() []FormatInfo {
	return []FormatInfo{
		{FormatRaw, ".raw", false, "Image", "the sparse raw disk image (bare metal, dd, qemu)"},
		{FormatRawZst, ".raw.zst", false, "RawZst", "the raw image as one zstd stream (the registry push format)"},
		{FormatQCOW2, ".qcow2", false, "QCOW2", "qcow2 (OpenStack, Proxmox, libvirt, Metal3)"},
		{FormatVHD, ".vhd", false, "VHD", "fixed VHD with a whole-MiB size (Azure)"},
		{FormatVMDK, ".vmdk", false, "VMDK", "stream-optimized VMDK (vSphere)"},
		{FormatGCE, ".tar.gz", false, "GCE", "a gzip'd tar holding disk.raw (Compute Engine image import)"},
		{FormatNetboot, ".netboot", true, "Netboot", "the network-boot bundle: kernel, initrd, root filesystem and iPXE script"},
		{FormatUpdate, ".update", true, "Update", "the A/B update for systemd-sysupdate: root, hash tree, UKI and SHA256SUMS (verifiedBoot only)"},
	}
}

// Formats returns every known output format, in table order.
func Formats() []Format {
	var out []Format
	for _, f := range FormatTable() {
		out = append(out, f.Format)
	}
	return out
}

// Info returns what the table says about f.
func (f Format) Info() (FormatInfo, bool) {
	for _, i := range FormatTable() {
		if i.Format == f {
			return i, true
		}
	}
	return FormatInfo{}, false
}

// FormatNames lists the formats for messages: "raw, raw.zst, ...".
func FormatNames() string {
	var s []string
	for _, f := range Formats() {
		s = append(s, string(f))
	}
	return strings.Join(s, ", ")
}
