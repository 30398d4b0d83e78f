package disk

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/google/uuid"

	"github.com/nodebake/nodebake/builder/authenticode"
	"github.com/nodebake/nodebake/builder/uki"
	"github.com/nodebake/nodebake/builder/verity"
)

// Verified asks Write for a verified, A/B-updatable disk instead of the
// default layout. Such a disk holds, in this order:
//
//  1. the ESP: systemd-boot as the removable-media loader (and under
//     /EFI/systemd), /loader/loader.conf, and one Unified Kernel Image
//     /EFI/Linux/<Name>_<Version>[+<Tries>].efi (Boot Loader Specification
//     type 2; "+3" is systemd's boot counter). There is no type 1 entry and
//     no loose kernel or initrd.
//  2. root slot A: the root filesystem, labelled <Name>_<Version>.
//  3. its dm-verity hash tree (Discoverable Partitions type root-verity),
//     labelled <Name>_<Version>_verity.
//  4. root slot B, and 5. its verity partition: empty, labelled "_empty",
//     where systemd-sysupdate writes the next version.
//  6. /var, as in the default layout.
//
// The PARTUUIDs of slot A's partitions are the first and the last 128 bits
// of the root hash, systemd's convention: the kernel command line in the UKI
// ("root=/dev/mapper/root ro rootfstype=squashfs roothash=<hex> panic=10")
// is then enough for the initrd to find both. Root and verity partitions
// carry the GPT read-only flag (bit 60). The salt and UUID of the hash tree,
// the disk GUID and every other PARTUUID derive from Image.Seed.
type Verified struct {
	// Name is the image's name: IMAGE_ID in the UKI's os-release, the
	// first part of the slot labels and of the UKI's file name. Lower-case
	// letters, digits and '-', starting with a letter.
	Name string
	// Version is the image's version (IMAGE_VERSION): letters, digits and
	// ".~^-", starting with a letter or digit. The slot labels
	// (<Name>_<Version>_verity, at most 36 characters) carry it, so that
	// systemd-sysupdate can tell the installed versions apart.
	Version string
	// SlotSize is the size of each root slot in bytes, a multiple of 1 MiB,
	// chosen for the largest root a later version may have; 0 means the
	// root filesystem's size plus half again, rounded up to 1 MiB. Each
	// verity partition is sized for a root that fills its slot.
	SlotSize int64
	// Tries is the number of boot attempts the UKI gets before
	// systemd-boot prefers another entry (boot counting, 0..9); 0 names the
	// UKI without a counter.
	Tries int
	// Stub is systemd-stub (linuxx64.efi.stub); the UKI is built on it.
	Stub File
	// OSRelease is the os-release of the root filesystem; the UKI's copy
	// gets IMAGE_ID=Name and IMAGE_VERSION=Version (see OSRelease).
	OSRelease []byte
	// Uname is the kernel release for the UKI's .uname section; empty
	// reads it from an x86 kernel's header.
	Uname string
	// Signer, when not nil, signs systemd-boot and the UKI for UEFI Secure
	// Boot. The key stays in memory; nothing of it is written to the disk.
	Signer *authenticode.Signer
	// Workers is the number of goroutines hashing the verity tree; 0 means
	// GOMAXPROCS.
	Workers int
}

const (
	// typeRootVerityAMD64 and typeRootVerityARM64 are the Discoverable
	// Partitions Specification's root-verity types.
	typeRootVerityAMD64 = "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5"
	typeRootVerityARM64 = "DF3300CE-D69F-4C92-978C-9BFB0F38D820"

	// EmptySlotLabel is the label of a free slot, the one systemd-sysupdate
	// writes a new version into.
	EmptySlotLabel = "_empty"
	// VeritySuffix ends the label of a verity partition.
	VeritySuffix = "_verity"
	// MaxLabelLength is the length of a GPT partition name in UTF-16 code
	// units.
	MaxLabelLength = 36
	// UKIDir is where systemd-boot looks for type 2 entries on the ESP.
	UKIDir = "/EFI/Linux"
	// MaxTries bounds Verified.Tries.
	MaxTries = 9
	// PanicTimeout is the kernel's panic= in seconds: a corrupted root
	// block panics the kernel (see the initrd's verity script), and the
	// machine reboots after this long, so boot counting can fall back.
	PanicTimeout = 10

	maxNameLength   = 16
	maxOSReleaseLen = 64 << 10
	// maxInitrdSize bounds the initrd read into memory for the UKI.
	maxInitrdSize = 1 << 30
)

var verityTypes = map[string]string{"amd64": typeRootVerityAMD64, "arm64": typeRootVerityARM64}

// Label returns the GPT label of slot partitions holding version: the root
// <name>_<version>, its verity partition <name>_<version>_verity.
func Label(name, version string, verityPart bool) string {
	l := name + "_" + version
	if verityPart {
		l += VeritySuffix
	}
	return l
}

// UKIName returns the file name of the UKI of version under UKIDir, with
// systemd-boot's boot counter "+tries" unless tries is 0.
func UKIName(name, version string, tries int) string {
	n := name + "_" + version
	if tries > 0 {
		n += "+" + strconv.Itoa(tries)
	}
	return n + ".efi"
}

// OSRelease returns base (an os-release file) with IMAGE_ID=name and
// IMAGE_VERSION=version in place of any it had. systemd-boot sorts UKIs by
// IMAGE_ID and then IMAGE_VERSION, and systemd-sysupdate reads the running
// version from IMAGE_VERSION.
func OSRelease(base []byte, name, version string) ([]byte, error) {
	if len(base) > maxOSReleaseLen {
		return nil, fmt.Errorf("os-release is %d bytes, more than %d", len(base), maxOSReleaseLen)
	}
	if bytes.IndexByte(base, 0) >= 0 {
		return nil, fmt.Errorf("os-release contains a NUL byte")
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(string(base), "\n") {
		key, _, _ := strings.Cut(strings.TrimSpace(line), "=")
		key = strings.TrimSpace(key)
		if key == "IMAGE_ID" || key == "IMAGE_VERSION" || line == "" {
			continue
		}
		b.WriteString(line)
		if !strings.HasSuffix(line, "\n") {
			b.WriteByte('\n')
		}
	}
	fmt.Fprintf(&b, "IMAGE_ID=%s\nIMAGE_VERSION=%s\n", name, version)
	return []byte(b.String()), nil
}

// checkVerified adds the problems of v to p.
func checkVerified(p *problems, img Image) {
	v := img.Verified
	switch {
	case v.Name == "":
		p.add("Verified.Name", "empty")
	case len(v.Name) > maxNameLength:
		p.add("Verified.Name", "%q is longer than %d characters", v.Name, maxNameLength)
	case v.Name[0] < 'a' || v.Name[0] > 'z' || strings.ContainsFunc(v.Name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-')
	}):
		p.add("Verified.Name", "%q: want lower-case letters, digits and '-', starting with a letter", v.Name)
	}
	switch {
	case v.Version == "":
		p.add("Verified.Version", "empty")
	case !isAlnum(rune(v.Version[0])) || strings.ContainsFunc(v.Version, func(r rune) bool {
		return !isAlnum(r) && !strings.ContainsRune(".~^-", r)
	}):
		p.add("Verified.Version", "%q: want letters, digits and \".~^-\", starting with a letter or digit", v.Version)
	case len(utf16.Encode([]rune(Label(v.Name, v.Version, true)))) > MaxLabelLength:
		p.add("Verified.Version", "the verity partition label %q is longer than %d characters", Label(v.Name, v.Version, true), MaxLabelLength)
	}
	if v.SlotSize < 0 || v.SlotSize%MiB != 0 {
		p.add("Verified.SlotSize", "%d bytes is not 0 or a positive multiple of 1 MiB", v.SlotSize)
	}
	if v.Tries < 0 || v.Tries > MaxTries {
		p.add("Verified.Tries", "%d is outside 0..%d", v.Tries, MaxTries)
	}
	checkFile(p, "Verified.Stub", v.Stub, false)
	if v.Stub.Size > uki.MaxStubSize {
		p.add("Verified.Stub.Size", "%d bytes, more than %d", v.Stub.Size, uki.MaxStubSize)
	}
	if len(v.OSRelease) == 0 {
		p.add("Verified.OSRelease", "empty; systemd-boot skips a UKI without os-release")
	} else if _, err := OSRelease(v.OSRelease, "x", "1"); err != nil {
		p.add("Verified.OSRelease", "%v", err)
	}
	if strings.ContainsFunc(v.Uname, func(r rune) bool { return r <= ' ' || r == 0x7f }) || len(v.Uname) > 256 {
		p.add("Verified.Uname", "%q is not a kernel release", v.Uname)
	}
	if v.Workers < 0 {
		p.add("Verified.Workers", "%d, want 0 (GOMAXPROCS) or more", v.Workers)
	}
	if img.Kernel.Size > uki.MaxKernelSize {
		p.add("Kernel.Size", "%d bytes, more than %d for a UKI", img.Kernel.Size, uki.MaxKernelSize)
	}
	if img.Initrd.Size > maxInitrdSize {
		p.add("Initrd.Size", "%d bytes, more than %d for a UKI", img.Initrd.Size, int64(maxInitrdSize))
	}
	for i, w := range img.Cmdline {
		if strings.HasPrefix(w, "roothash=") || strings.HasPrefix(w, "panic=") {
			p.add(fmt.Sprintf("Cmdline[%d]", i), "%q: roothash= and panic= are set by the disk writer for a verified root", w)
		}
	}
}

func isAlnum(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// ukiEstimate is the size the validation assumes for the UKI: its parts
// and room for the PE headers, text sections and alignment.
func ukiEstimate(img Image) int64 {
	return img.Verified.Stub.Size + img.Kernel.Size + img.Initrd.Size + 256<<10
}

// verifiedCmdline is the kernel command line of a verified root.
func verifiedCmdline(img Image, rootHash string) string {
	words := append([]string{"root=/dev/mapper/root", "ro", "rootfstype=squashfs",
		"roothash=" + rootHash, "panic=" + strconv.Itoa(PanicTimeout)}, img.Cmdline...)
	return strings.Join(words, " ")
}

// verifiedLoaderConf is /loader/loader.conf for type 2 entries: no menu,
// no editor, no entries systemd-boot would add on its own. Without a
// default, systemd-boot boots the first entry in its order: the newest
// version whose tries are not used up.
func verifiedLoaderConf() []byte {
	return []byte("timeout 0\neditor no\nauto-entries no\nauto-firmware no\n")
}

// verifiedESPContents lists the ESP files of a verified disk, sorted by
// path; bootloader and ukiFile are the (possibly signed) images.
func verifiedESPContents(img Image, bootloader, ukiFile File) []espFile {
	a := arches[img.Arch]
	files := []espFile{
		{"Bootloader", File{Path: "/EFI/BOOT/" + a.loaderName, Open: bootloader.Open, Size: bootloader.Size}},
		{"Bootloader", File{Path: "/EFI/systemd/" + a.bootName, Open: bootloader.Open, Size: bootloader.Size}},
		{"UKI", File{Path: UKIDir + "/" + UKIName(img.Verified.Name, img.Verified.Version, img.Verified.Tries), Open: ukiFile.Open, Size: ukiFile.Size}},
		{"loader.conf", BytesFile(loaderConfPath, verifiedLoaderConf())},
	}
	for i, f := range img.ExtraESP {
		files = append(files, espFile{fmt.Sprintf("ExtraESP[%d]", i), f})
	}
	sortESP(files)
	return files
}

// slotSize returns the size of each root slot for a root of rootSize bytes.
func slotSize(v *Verified, rootSize int64) (int64, error) {
	if v.SlotSize == 0 {
		return roundUp(rootSize+rootSize/2, partitionAlign), nil
	}
	if v.SlotSize < roundUp(rootSize, verity.BlockSize) {
		return 0, fmt.Errorf("the root filesystem (%d bytes) does not fit Verified.SlotSize (%d bytes)", rootSize, v.SlotSize)
	}
	return v.SlotSize, nil
}

// veritySlotSize returns the size of a verity partition for a root slot of
// slot bytes: the hash tree of a root that fills the slot, rounded up to
// 1 MiB.
func veritySlotSize(slot int64) int64 {
	return roundUp(verity.HashSize(uint64(slot/verity.BlockSize)), partitionAlign)
}

// verifiedIDs are the seed-derived identifiers a verified disk adds.
type verifiedIDs struct {
	salt                   []byte
	treeUUID               uuid.UUID
	emptyRoot, emptyVerity uuid.UUID
}

func deriveVerifiedIDs(seed []byte) verifiedIDs {
	return verifiedIDs{
		salt:        seededHash(seed, "verity-salt"),
		treeUUID:    seededUUID(seed, "verity-uuid"),
		emptyRoot:   seededUUID(seed, "root-b-partuuid"),
		emptyVerity: seededUUID(seed, "root-verity-b-partuuid"),
	}
}

// Slot is one root slot of a verified disk.
type Slot struct {
	// Label is the GPT label of the root partition: <name>_<version>, or
	// EmptySlotLabel.
	Label string
	// Root and Verity are the partition numbers of the root filesystem and
	// its hash tree.
	Root, Verity int
	// RootHash is the dm-verity root hash in hex; empty for an empty slot.
	RootHash string
}

// VerifiedResult describes what Write added for Image.Verified.
type VerifiedResult struct {
	// RootHash is the root hash of slot A, the one on the command line.
	RootHash string
	// HashSize is the size of slot A's hash device (superblock and tree).
	HashSize int64
	// Slots are slot A (the image's root) and slot B (empty).
	Slots []Slot
	// UKI is the UKI's path on the ESP, UKISize its size in bytes (signed
	// when Verified.Signer was set).
	UKI     string
	UKISize int64
	// Signed reports whether systemd-boot and the UKI are signed.
	Signed bool
}

// writeVerified fills f with a verified disk (see Verified).
func writeVerified(ctx context.Context, f *os.File, img Image) (Result, error) {
	v := img.Verified
	id := deriveIDs(img.Seed)
	vid := deriveVerifiedIDs(img.Seed)
	rootOffset := partitionAlign + img.ESPSize

	// 1. Root filesystem of slot A.
	rootSize, err := img.WriteRoot(ctx, io.NewOffsetWriter(f, rootOffset))
	if err != nil {
		return Result{}, fmt.Errorf("writing root filesystem: %w", err)
	}
	if rootSize <= 0 {
		return Result{}, fmt.Errorf("writing root filesystem: WriteRoot returned size %d, want > 0", rootSize)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	slot, err := slotSize(v, rootSize)
	if err != nil {
		return Result{}, fmt.Errorf("laying out the root slots: %w", err)
	}
	l := newVerifiedLayout(img, slot, veritySlotSize(slot), id, vid)
	// Cut anything past the root, then extend with holes: the root's
	// padding to whole verity blocks reads as zeros.
	if err := f.Truncate(rootOffset + rootSize); err != nil {
		return Result{}, fmt.Errorf("truncating image after root filesystem: %w", err)
	}
	if err := f.Truncate(l.size); err != nil {
		return Result{}, fmt.Errorf("sizing image to %d bytes: %w", l.size, err)
	}

	// 2. The hash tree of slot A, over the root padded to 4096 bytes.
	dataSize := roundUp(rootSize, verity.BlockSize)
	tree, err := verity.Format(ctx, io.NewSectionReader(f, rootOffset, dataSize), dataSize, f, l.offset(3), verity.Params{
		Salt: vid.salt, UUID: vid.treeUUID, Workers: v.Workers,
	})
	if err != nil {
		return Result{}, fmt.Errorf("computing the dm-verity hash tree of the root: %w", err)
	}
	dataUUID, hashUUID := tree.PartitionUUIDs()
	l.partitions[1].PartUUID = dataUUID.String()
	l.partitions[2].PartUUID = hashUUID.String()
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	// 3. UKI and bootloader, signed when asked.
	cmdline := verifiedCmdline(img, tree.RootHashHex())
	ukiData, err := buildUKI(img, cmdline)
	if err != nil {
		return Result{}, err
	}
	loader, err := readFile("Bootloader", img.Bootloader, 64<<20)
	if err != nil {
		return Result{}, err
	}
	if v.Signer != nil {
		if ukiData, err = sign(v.Signer, ukiData, "UKI"); err != nil {
			return Result{}, err
		}
		if loader, err = sign(v.Signer, loader, "systemd-boot"); err != nil {
			return Result{}, err
		}
	}
	files := verifiedESPContents(img, BytesFile("", loader), BytesFile("", ukiData))
	if err := fillESP(ctx, f, img, l, id, files); err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}

	// 4. Partition table.
	if err := writeGPT(f, l, id); err != nil {
		return Result{}, err
	}
	res := l.result(id, rootSize, cmdline)
	res.RootPartUUID = l.partitions[1].PartUUID // from the root hash, not the seed
	res.Verified = &VerifiedResult{
		RootHash: tree.RootHashHex(),
		HashSize: tree.HashSize,
		Slots: []Slot{
			{Label: l.partitions[1].Name, Root: 2, Verity: 3, RootHash: tree.RootHashHex()},
			{Label: EmptySlotLabel, Root: 4, Verity: 5},
		},
		UKI:     UKIDir + "/" + UKIName(v.Name, v.Version, v.Tries),
		UKISize: int64(len(ukiData)),
		Signed:  v.Signer != nil,
	}
	return res, nil
}

// newVerifiedLayout lays out a verified disk; slot A's PARTUUIDs are
// filled in once the root hash is known.
func newVerifiedLayout(img Image, slot, veritySlot int64, id ids, vid verifiedIDs) layout {
	v := img.Verified
	a := arches[img.Arch]
	vt := verityTypes[img.Arch]
	espStart := partitionAlign
	var parts []Partition
	next := espStart
	add := func(name, typ string, u uuid.UUID, length int64, attrs uint64) {
		parts = append(parts, Partition{
			Number:     len(parts) + 1,
			Name:       name,
			TypeGUID:   typ,
			PartUUID:   u.String(),
			FirstLBA:   uint64(next / sectorSize),
			LastLBA:    uint64((next+length)/sectorSize - 1),
			Attributes: attrs,
		})
		next += length
	}
	add("esp", typeESP, id.esp, img.ESPSize, 0)
	add(Label(v.Name, v.Version, false), a.rootType, uuid.Nil, slot, attrReadOnly)
	add(Label(v.Name, v.Version, true), vt, uuid.Nil, veritySlot, attrReadOnly)
	add(EmptySlotLabel, a.rootType, vid.emptyRoot, slot, attrReadOnly)
	add(EmptySlotLabel, vt, vid.emptyVerity, veritySlot, attrReadOnly)
	add("var", typeVar, id.vr, img.VarSize, 0)
	return layout{size: next + partitionAlign, partitions: parts}
}

// buildUKI assembles the UKI in memory.
func buildUKI(img Image, cmdline string) ([]byte, error) {
	v := img.Verified
	stub, err := readFile("Verified.Stub", v.Stub, uki.MaxStubSize)
	if err != nil {
		return nil, err
	}
	kernel, err := readFile("Kernel", img.Kernel, uki.MaxKernelSize)
	if err != nil {
		return nil, err
	}
	initrd, err := readFile("Initrd", img.Initrd, maxInitrdSize)
	if err != nil {
		return nil, err
	}
	osrel, err := OSRelease(v.OSRelease, v.Name, v.Version)
	if err != nil {
		return nil, fmt.Errorf("building the UKI: %w", err)
	}
	uname := v.Uname
	if uname == "" {
		if uname, err = uki.KernelRelease(kernel); err != nil {
			return nil, fmt.Errorf("building the UKI: reading the kernel release (set Verified.Uname): %w", err)
		}
	}
	var buf bytes.Buffer
	if _, err := uki.Write(&buf, uki.Input{
		Stub:      stub,
		Kernel:    kernel,
		Initrd:    io.NewSectionReader(bytes.NewReader(initrd), 0, int64(len(initrd))),
		Cmdline:   cmdline,
		OSRelease: osrel,
		Uname:     uname,
	}); err != nil {
		return nil, fmt.Errorf("building the UKI: %w", err)
	}
	return buf.Bytes(), nil
}

func sign(s *authenticode.Signer, image []byte, what string) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := s.Sign(&buf, bytes.NewReader(image), int64(len(image))); err != nil {
		return nil, fmt.Errorf("signing %s: %w", what, err)
	}
	return buf.Bytes(), nil
}

// readFile reads a File whole, checking its Size and a bound.
func readFile(field string, f File, limit int64) (b []byte, err error) {
	if f.Size > limit {
		return nil, fmt.Errorf("reading %s: %d bytes, more than %d", field, f.Size, limit)
	}
	r, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", field, err)
	}
	defer func() {
		if cerr := r.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing %s: %w", field, cerr)
		}
	}()
	b, err = io.ReadAll(io.LimitReader(r, f.Size+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", field, err)
	}
	if int64(len(b)) != f.Size {
		return nil, fmt.Errorf("reading %s: content has %d bytes, Size says %d", field, len(b), f.Size)
	}
	return b, nil
}
