package disk

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"os"
	"strings"

	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/uuid"
)

const (
	// MiB is one mebibyte.
	MiB = int64(1) << 20
	// DefaultESPSize is an ESP size known to give a valid FAT32.
	DefaultESPSize = 256 * MiB

	sectorSize     = 512
	partitionAlign = MiB // first partition offset, partition alignment and GPT tail

	minESPSize = 33 * MiB // FAT32 needs at least 65525 clusters
	maxESPSize = 4096 * MiB

	// Partition type GUIDs (UEFI spec and the Discoverable Partitions
	// Specification).
	typeESP       = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	typeRootAMD64 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
	typeRootARM64 = "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"
	typeVar       = "4D21B016-B534-45C2-A9FB-5C16E091FD2D"

	// attrReadOnly is GPT attribute bit 60, "read-only" for the
	// Discoverable Partitions Specification.
	attrReadOnly = uint64(1) << 60
)

// archInfo holds what depends on the architecture.
type archInfo struct {
	rootType   string
	loaderName string // removable-media path under /EFI/BOOT
	bootName   string // systemd-boot's own name under /EFI/systemd
}

var arches = map[string]archInfo{
	"amd64": {rootType: typeRootAMD64, loaderName: "BOOTX64.EFI", bootName: "systemd-bootx64.efi"},
	"arm64": {rootType: typeRootARM64, loaderName: "BOOTAA64.EFI", bootName: "systemd-bootaa64.efi"},
}

// ids are the identifiers derived from the seed.
type ids struct {
	disk, esp, root, vr uuid.UUID
	volumeID            uint32
}

func deriveIDs(seed []byte) ids {
	return ids{
		disk:     seededUUID(seed, "disk-guid"),
		esp:      seededUUID(seed, "esp-partuuid"),
		root:     seededUUID(seed, "root-partuuid"),
		vr:       seededUUID(seed, "var-partuuid"),
		volumeID: binary.LittleEndian.Uint32(seededHash(seed, "esp-volume-id")[:4]),
	}
}

func seededHash(seed []byte, purpose string) []byte {
	h := sha256.New()
	h.Write(seed)
	h.Write([]byte(purpose))
	return h.Sum(nil)
}

// seededUUID is sha256(seed || purpose) shaped as an RFC 4122 version 4 UUID.
func seededUUID(seed []byte, purpose string) uuid.UUID {
	var u uuid.UUID
	copy(u[:], seededHash(seed, purpose))
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u
}

// formatVolumeID formats a FAT volume serial the way blkid does.
func formatVolumeID(v uint32) string {
	return fmt.Sprintf("%04X-%04X", v>>16, v&0xffff)
}

// layout is the byte layout of the image.
type layout struct {
	size       int64
	partitions []Partition
}

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

func newLayout(img Image, rootSize int64, id ids) layout {
	espStart := partitionAlign
	rootStart := espStart + img.ESPSize
	rootLen := roundUp(rootSize, partitionAlign)
	varStart := rootStart + rootLen
	varSize := img.VarSize
	if img.DiskSize > 0 && img.DiskSize-varStart-partitionAlign >= img.VarSize {
		varSize = img.DiskSize - varStart - partitionAlign // /var takes the rest
	}
	size := varStart + varSize + partitionAlign // the last MiB holds the backup GPT
	part := func(n int, name, typ string, id uuid.UUID, start, length int64, attrs uint64) Partition {
		return Partition{
			Number:     n,
			Name:       name,
			TypeGUID:   typ,
			PartUUID:   id.String(),
			FirstLBA:   uint64(start / sectorSize),
			LastLBA:    uint64((start+length)/sectorSize - 1),
			Attributes: attrs,
		}
	}
	return layout{
		size: size,
		partitions: []Partition{
			part(1, "esp", typeESP, id.esp, espStart, img.ESPSize, 0),
			part(2, "root", arches[img.Arch].rootType, id.root, rootStart, rootLen, attrReadOnly),
			part(3, "var", typeVar, id.vr, varStart, varSize, 0),
		},
	}
}

func (l layout) offset(n int) int64 { return int64(l.partitions[n-1].FirstLBA) * sectorSize }

func (l layout) result(id ids, rootSize int64, cmdline string) Result {
	return Result{
		Size:         l.size,
		RootSize:     rootSize,
		DiskGUID:     id.disk.String(),
		ESPPartUUID:  id.esp.String(),
		RootPartUUID: id.root.String(),
		VarPartUUID:  id.vr.String(),
		ESPVolumeID:  formatVolumeID(id.volumeID),
		Cmdline:      cmdline,
		Partitions:   append([]Partition(nil), l.partitions...),
	}
}

// writeGPT writes the protective MBR and both GPT copies.
func writeGPT(f *os.File, l layout, id ids) error {
	t := &gpt.Table{
		LogicalSectorSize:  sectorSize,
		PhysicalSectorSize: sectorSize,
		ProtectiveMBR:      true,
		GUID:               strings.ToUpper(id.disk.String()),
	}
	for _, p := range l.partitions {
		t.Partitions = append(t.Partitions, &gpt.Partition{
			Index:      p.Number,
			Start:      p.FirstLBA,
			End:        p.LastLBA,
			Type:       gpt.Type(p.TypeGUID),
			Name:       p.Name,
			GUID:       strings.ToUpper(p.PartUUID),
			Attributes: p.Attributes,
		})
	}
	if err := t.Write(f, l.size); err != nil {
		return fmt.Errorf("writing partition table: %w", err)
	}
	return nil
}

// ValidESPSize reports whether go-diskfs v1.9.4 makes a valid FAT32 of
// size bytes (with 512-byte sectors). For some sizes that version's
// closed-form FAT length leaves the FAT two entries short of the cluster
// count (upstream issue #418: fsck.fat and mtools reject those: 64, 129,
// 194, 259, 505..507, 762, 763, 1018..1020 MiB, ...). A FAT32 also needs
// at least 65525 clusters (33 MiB).
func ValidESPSize(size int64) bool {
	if size <= 0 || size%sectorSize != 0 || size > 8<<30 {
		return false
	}
	_, clusters, fatEntries := fat32Layout(size)
	return clusters >= 65525 && fatEntries >= clusters+2
}

// fat32Geometry returns the cluster size and the number of data clusters
// of the FAT32 go-diskfs v1.9.4 makes on size bytes.
func fat32Geometry(size int64) (clusterBytes, clusters int64) {
	clusterBytes, clusters, _ = fat32Layout(size)
	return clusterBytes, clusters
}

// fat32Layout mirrors fat32.Create of go-diskfs v1.9.4 (512-byte sectors,
// up to 8 GiB): 32 reserved sectors, two FATs, 512-byte clusters up to
// 260 MiB and 4 KiB clusters above, and a FAT length computed in closed
// form and kept in a uint16.
func fat32Layout(size int64) (clusterBytes, clusters, fatEntries int64) {
	const reserved = 32
	clusterBytes = 512
	if size > 260*MiB {
		clusterBytes = 4096
	}
	spc := clusterBytes / sectorSize
	total := size / sectorSize
	denom := sectorSize*spc + 8
	fatSectors := int64(uint16((4*(total-reserved) + denom - 1) / denom))
	data := total - reserved - 2*fatSectors
	if data <= 0 {
		return clusterBytes, 0, fatSectors * sectorSize / 4
	}
	return clusterBytes, data / spc, fatSectors * sectorSize / 4
}
