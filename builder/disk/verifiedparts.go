package disk

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"
	"github.com/diskfs/go-diskfs/partition/gpt"
	"github.com/google/uuid"

	"github.com/nodebake/nodebake/builder/verity"
)

// VerifiedParts is the version a verified disk (Image.Verified) boots:
// what an update to that version consists of. ReadVerifiedParts reads it
// back from slot A and the ESP.
type VerifiedParts struct {
	// Name and Version come from slot A's label, <name>_<version>.
	Name, Version string
	// RootHash is the root hash (hex): slot A's two PARTUUIDs.
	RootHash string
	// Root is the root filesystem as verity covers it (whole 4096-byte
	// blocks); Hash the hash device (superblock and tree).
	Root, Hash *io.SectionReader
	// UKI is the UKI of the version, read from /EFI/Linux.
	UKI []byte

	f *os.File
}

// Limits of ReadVerifiedParts.
const (
	maxUKISize = maxInitrdSize + 512<<20
	// verity superblock fields (see builder/verity).
	veritySignature     = "verity\x00\x00"
	verityDataBlocksOff = 72
)

// ReadVerifiedParts opens the verified disk image at path and reads the
// parts of the version in slot A. Close it when done.
func ReadVerifiedParts(p string) (_ *VerifiedParts, err error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("reading verified disk parts: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading verified disk parts: %w", err)
	}
	t, err := gpt.Read(f, sectorSize, sectorSize)
	if err != nil {
		return nil, fmt.Errorf("reading the partition table of %s: %w", p, err)
	}
	// Slot A is the first root partition with a version label, its hash
	// tree the root-verity partition labelled <label>_verity.
	var esp, root, hash *gpt.Partition
	var arch string
	for _, part := range t.Partitions {
		if part == nil || part.Type == gpt.Unused {
			continue
		}
		typ := strings.ToUpper(string(part.Type))
		if typ == typeESP && esp == nil {
			esp = part
		}
		for a, info := range arches {
			if typ == info.rootType && root == nil && part.Name != EmptySlotLabel {
				root, arch = part, a
			}
		}
	}
	if esp == nil || root == nil {
		return nil, fmt.Errorf("reading verified disk parts of %s: no ESP and versioned root partition", p)
	}
	for _, part := range t.Partitions {
		if part != nil && strings.ToUpper(string(part.Type)) == verityTypes[arch] && part.Name == root.Name+VeritySuffix {
			hash = part
		}
	}
	if hash == nil {
		return nil, fmt.Errorf("reading verified disk parts of %s: no root-verity partition labelled %q", p, root.Name+VeritySuffix)
	}
	for _, part := range []*gpt.Partition{esp, root, hash} {
		if part.End < part.Start || int64(part.End+1)*sectorSize > fi.Size() {
			return nil, fmt.Errorf("reading verified disk parts of %s: partition %d lies outside the %d-byte image", p, part.Index, fi.Size())
		}
	}
	vp := &VerifiedParts{f: f}
	var ok bool
	vp.Name, vp.Version, ok = strings.Cut(root.Name, "_")
	if !ok || vp.Name == "" || vp.Version == "" {
		return nil, fmt.Errorf("reading verified disk parts of %s: root label %q is not <name>_<version>", p, root.Name)
	}
	du, err1 := uuid.Parse(root.GUID)
	hu, err2 := uuid.Parse(hash.GUID)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("reading verified disk parts of %s: PARTUUIDs %q and %q", p, root.GUID, hash.GUID)
	}
	vp.RootHash = hex.EncodeToString(du[:]) + hex.EncodeToString(hu[:])

	// The hash device's superblock says how much of the slot is data.
	hashStart := int64(hash.Start) * sectorSize
	hashLen := int64(hash.End-hash.Start+1) * sectorSize
	sb := make([]byte, verity.SuperblockSize)
	if _, err := f.ReadAt(sb, hashStart); err != nil {
		return nil, fmt.Errorf("reading the verity superblock of %s: %w", p, err)
	}
	if string(sb[:8]) != veritySignature {
		return nil, fmt.Errorf("reading verified disk parts of %s: partition %q holds no verity superblock", p, hash.Name)
	}
	blocks := binary.LittleEndian.Uint64(sb[verityDataBlocksOff:])
	rootStart := int64(root.Start) * sectorSize
	rootLen := int64(root.End-root.Start+1) * sectorSize
	if blocks == 0 || blocks > uint64(rootLen/verity.BlockSize) || verity.HashSize(blocks) > hashLen {
		return nil, fmt.Errorf("reading verified disk parts of %s: the verity superblock says %d data blocks, which the partitions do not hold", p, blocks)
	}
	vp.Root = io.NewSectionReader(f, rootStart, int64(blocks)*verity.BlockSize)
	vp.Hash = io.NewSectionReader(f, hashStart, verity.HashSize(blocks))

	// The UKI of this version, whatever its boot counter says.
	fs, err := fat32.Read(file.New(f, true), int64(esp.End-esp.Start+1)*sectorSize, int64(esp.Start)*sectorSize, sectorSize)
	if err != nil {
		return nil, fmt.Errorf("reading the ESP of %s: %w", p, err)
	}
	entries, err := fs.ReadDir(strings.TrimPrefix(UKIDir, "/")) // io/fs paths have no leading slash
	if err != nil {
		return nil, fmt.Errorf("reading %s on the ESP of %s: %w", UKIDir, p, err)
	}
	want := UKIName(vp.Name, vp.Version, 0)
	for _, e := range entries {
		name := e.Name()
		if i := strings.LastIndexByte(name, '+'); i >= 0 && strings.HasSuffix(name, ".efi") {
			name = name[:i] + ".efi"
		}
		if strings.EqualFold(name, want) {
			if vp.UKI, err = readFAT(fs, path.Join(UKIDir, e.Name()), maxUKISize); err != nil {
				return nil, err
			}
			break
		}
	}
	if vp.UKI == nil {
		return nil, fmt.Errorf("reading verified disk parts of %s: no UKI %s on the ESP", p, want)
	}
	return vp, nil
}

// Close closes the image.
func (vp *VerifiedParts) Close() error {
	if vp.f == nil {
		return nil
	}
	err := vp.f.Close()
	vp.f = nil
	return err
}
