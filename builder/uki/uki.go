// Package uki assembles a Unified Kernel Image (UAPI.5): systemd's EFI stub
// (linuxx64.efi.stub) with the kernel, the initrd, the kernel command line,
// os-release, the kernel release and the SBAT metadata added as PE sections,
// in pure Go. The layout follows ukify (systemd 257) rule for rule, so for the
// same inputs the output is byte-identical to
//
//	ukify build --stub STUB --linux KERNEL --initrd INITRD --cmdline TEXT \
//	  --os-release @FILE --uname RELEASE --output OUT
//
// and the same inputs always give the same bytes.
//
// # Layout
//
//   - The stub's headers and sections are kept; its CheckSum is set to 0,
//     and NX_COMPAT is cleared when the kernel does not have it (the stub
//     and the kernel must agree once firmware enforces it).
//   - New sections are added in ukify's order (.osrel, .cmdline, .uname,
//     .linux, .initrd); an empty input adds no section. Each new header
//     goes after the last one and must fit below SizeOfHeaders (rounded up
//     to FileAlignment; the trixie stub has room for 24). Each section's
//     virtual address follows the previous section's end, aligned to
//     SectionAlignment; its raw data starts at the end of the file, aligned
//     to FileAlignment, and is zero-padded to FileAlignment; its
//     VirtualSize is the exact length of the content (the stub reads
//     min(VirtualSize, SizeOfRawData) bytes). .linux is code
//     (0x40000020), the others initialized data (0x40000040).
//     SizeOfInitializedData grows by each VirtualSize, SizeOfImage covers
//     the last section.
//   - .sbat is the stub's SBAT, the kernel's and nodebake's UKI line
//     (Input.SBAT, default DefaultSBAT), merged like ukify does, written
//     over the stub's own .sbat section, which it must fit.
//
// The stub must be an unsigned PE32+ image whose sections are already
// aligned to FileAlignment and which has no COFF symbol table (what systemd
// 254 and later ship); ukify would realign or strip such stubs, this
// package refuses them.
package uki

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nodebake/nodebake/builder/internal/pecoff"
)

// Section names.
const (
	SectionOSRelease = ".osrel"
	SectionCmdline   = ".cmdline"
	SectionUname     = ".uname"
	SectionLinux     = ".linux"
	SectionInitrd    = ".initrd"
	SectionSBAT      = ".sbat"
)

// SBAT header line and the UKI's own line (ukify's defaults).
const (
	sbatHeader = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md"
	// DefaultSBAT is the SBAT metadata ukify adds for a UKI.
	DefaultSBAT = sbatHeader + "\nuki,1,UKI,uki,1,https://uapi-group.org/specifications/specs/unified_kernel_image/\n"
)

// Limits on the inputs.
const (
	MaxStubSize    = 16 << 20
	MaxKernelSize  = 512 << 20
	MaxTextSize    = 64 << 10 // command line, os-release, uname, SBAT
	maxImageOffset = 1<<32 - 1
)

// Input is what goes into a UKI.
type Input struct {
	// Stub is systemd-stub (linuxx64.efi.stub of systemd-boot-efi).
	Stub []byte
	// Kernel is the kernel image, a PE (a Linux kernel with its EFI stub).
	Kernel []byte
	// Initrd is the initrd; nil for none.
	Initrd *io.SectionReader
	// Cmdline is the kernel command line. As ukify does with a command line
	// given as text, runs of white space become single spaces and the ends
	// are trimmed.
	Cmdline string
	// OSRelease is the os-release file of the image. systemd-boot ignores
	// a UKI without one, so it is required.
	OSRelease []byte
	// Uname is the kernel release (uname -r), for .uname; empty for none.
	// KernelRelease reads it from an x86 kernel.
	Uname string
	// SBAT is the SBAT metadata to add for the UKI itself, starting with
	// the "sbat,1,..." header line; empty means DefaultSBAT.
	SBAT string
}

// section is one section to add.
type section struct {
	name string
	data []byte            // small sections
	big  *io.SectionReader // or the initrd
	size uint64
}

// Layout is the planned image: the patched stub and the sections to
// append, with their offsets.
type layout struct {
	head     []byte // the stub, patched
	sections []placed
	size     int64
}

type placed struct {
	section
	rawOffset, rawSize uint64
}

// Write assembles the UKI and writes it to w, returning its size in bytes.
func Write(w io.Writer, in Input) (int64, error) {
	l, err := plan(in)
	if err != nil {
		return 0, err
	}
	cw := &countWriter{w: w}
	if _, err := cw.Write(l.head); err != nil {
		return cw.n, fmt.Errorf("uki: writing: %w", err)
	}
	for _, s := range l.sections {
		if err := zeros(cw, int64(s.rawOffset)-cw.n); err != nil {
			return cw.n, fmt.Errorf("uki: writing: %w", err)
		}
		if s.big != nil {
			n, err := io.Copy(cw, io.NewSectionReader(s.big, 0, int64(s.size)))
			if err == nil && uint64(n) != s.size {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				return cw.n, fmt.Errorf("uki: copying %s: %w", s.name, err)
			}
		} else if _, err := cw.Write(s.data); err != nil {
			return cw.n, fmt.Errorf("uki: writing: %w", err)
		}
		if err := zeros(cw, int64(s.rawOffset+s.rawSize)-cw.n); err != nil {
			return cw.n, fmt.Errorf("uki: writing: %w", err)
		}
	}
	if cw.n != l.size {
		return cw.n, fmt.Errorf("uki: wrote %d bytes, planned %d", cw.n, l.size)
	}
	return cw.n, nil
}

// Size returns the size of the UKI Write would write.
func Size(in Input) (int64, error) {
	l, err := plan(in)
	if err != nil {
		return 0, err
	}
	return l.size, nil
}

func plan(in Input) (*layout, error) {
	switch {
	case len(in.Stub) == 0:
		return nil, errors.New("uki: no stub")
	case len(in.Stub) > MaxStubSize:
		return nil, fmt.Errorf("uki: stub is %d bytes, more than %d", len(in.Stub), MaxStubSize)
	case len(in.Kernel) == 0:
		return nil, errors.New("uki: no kernel")
	case len(in.Kernel) > MaxKernelSize:
		return nil, fmt.Errorf("uki: kernel is %d bytes, more than %d", len(in.Kernel), MaxKernelSize)
	case len(in.OSRelease) == 0:
		return nil, errors.New("uki: no os-release (systemd-boot skips a UKI without .osrel)")
	}
	cmdline := strings.Join(strings.Fields(in.Cmdline), " ")
	for name, v := range map[string]string{"command line": cmdline, "os-release": string(in.OSRelease), "uname": in.Uname, "SBAT": in.SBAT} {
		if len(v) > MaxTextSize {
			return nil, fmt.Errorf("uki: %s is %d bytes, more than %d", name, len(v), MaxTextSize)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("uki: %s contains a NUL byte", name)
		}
	}
	if strings.ContainsAny(in.Uname, " \t\r\n") {
		return nil, fmt.Errorf("uki: uname %q contains white space", in.Uname)
	}

	stub, err := pecoff.Parse(bytes.NewReader(in.Stub), int64(len(in.Stub)))
	if err != nil {
		return nil, fmt.Errorf("uki: stub: %w", err)
	}
	if err := checkStub(stub); err != nil {
		return nil, fmt.Errorf("uki: stub: %w", err)
	}
	kernel, err := pecoff.Parse(bytes.NewReader(in.Kernel), int64(len(in.Kernel)))
	if err != nil {
		return nil, fmt.Errorf("uki: kernel: %w", err)
	}
	sbat, err := mergeSBAT(in.Stub, stub, in.Kernel, kernel, in.SBAT)
	if err != nil {
		return nil, err
	}

	var add []section
	text := func(name, v string) {
		if v != "" {
			add = append(add, section{name: name, data: []byte(v), size: uint64(len(v))})
		}
	}
	text(SectionOSRelease, string(in.OSRelease))
	text(SectionCmdline, cmdline)
	text(SectionUname, in.Uname)
	add = append(add, section{name: SectionLinux, data: in.Kernel, size: uint64(len(in.Kernel))})
	if in.Initrd != nil && in.Initrd.Size() > 0 {
		add = append(add, section{name: SectionInitrd, big: in.Initrd, size: uint64(in.Initrd.Size())})
	}

	le := binary.LittleEndian
	head := bytes.Clone(in.Stub)
	fileAlign, sectAlign := uint64(stub.FileAlignment), uint64(stub.SectionAlignment)
	sizeOfHeaders := pecoff.AlignUp(uint64(stub.SizeOfHeaders), fileAlign)
	le.PutUint32(head[stub.SizeOfHeadersOffset():], uint32(sizeOfHeaders))

	// .sbat goes over the stub's section of that name.
	sb, _ := stub.Section(SectionSBAT)
	if uint64(len(sbat)) > uint64(sb.SizeOfRawData) {
		return nil, fmt.Errorf("uki: the merged SBAT (%d bytes) does not fit the stub's .sbat section (%d bytes)", len(sbat), sb.SizeOfRawData)
	}
	raw := head[sb.PointerToRawData : sb.PointerToRawData+sb.SizeOfRawData]
	clear(raw[copy(raw, sbat):])
	le.PutUint32(head[sb.HeaderOffset+8:], uint32(len(sbat)))

	last := stub.Sections[len(stub.Sections)-1]
	lastVA, lastVSize := uint64(last.VirtualAddress), uint64(last.VirtualSize)
	headerOff := uint64(last.HeaderOffset)
	fileEnd := uint64(len(in.Stub))
	initialized := uint64(stub.SizeOfInitialized)
	dll := stub.DllCharacteristics
	if kernel.DllCharacteristics&pecoff.DllCharacteristicsNXCompat == 0 {
		dll &^= pecoff.DllCharacteristicsNXCompat
	}
	l := &layout{}
	for _, s := range add {
		headerOff += pecoff.SectionHeaderSize
		if headerOff+pecoff.SectionHeaderSize > sizeOfHeaders {
			return nil, fmt.Errorf("uki: no room in the stub's headers (%d bytes) for the %s section header", sizeOfHeaders, s.name)
		}
		p := placed{section: s, rawOffset: pecoff.AlignUp(fileEnd, fileAlign), rawSize: pecoff.AlignUp(s.size, fileAlign)}
		va := pecoff.AlignUp(lastVA+lastVSize, sectAlign)
		if p.rawOffset+p.rawSize > maxImageOffset || va+s.size > maxImageOffset || s.size > maxImageOffset {
			return nil, fmt.Errorf("uki: the %s section (%d bytes) would end past 4 GiB, which PE cannot address", s.name, s.size)
		}
		flags := uint32(pecoff.ScnMemRead | pecoff.ScnCntInitializedData)
		if s.name == SectionLinux {
			flags = pecoff.ScnMemRead | pecoff.ScnCntCode
		}
		h := head[headerOff : headerOff+pecoff.SectionHeaderSize]
		if !allZero(h) {
			return nil, fmt.Errorf("uki: the stub's header space at %#x, where the %s section header goes, is not empty", headerOff, s.name)
		}
		copy(h[0:8], s.name)
		le.PutUint32(h[8:], uint32(s.size))
		le.PutUint32(h[12:], uint32(va))
		le.PutUint32(h[16:], uint32(p.rawSize))
		le.PutUint32(h[20:], uint32(p.rawOffset))
		le.PutUint32(h[36:], flags)
		l.sections = append(l.sections, p)
		lastVA, lastVSize = va, s.size
		fileEnd = p.rawOffset + p.rawSize
		initialized += s.size
	}
	if initialized > maxImageOffset {
		return nil, fmt.Errorf("uki: %d bytes of initialized data do not fit PE's 32-bit field", initialized)
	}
	le.PutUint16(head[stub.NumberOfSectionsOffset():], uint16(len(stub.Sections)+len(add)))
	le.PutUint32(head[stub.SizeOfInitializedDataOffset():], uint32(initialized))
	le.PutUint32(head[stub.CheckSumOffset():], 0)
	le.PutUint16(head[stub.DllCharacteristicsOffset():], dll)
	le.PutUint32(head[stub.SizeOfImageOffset():], uint32(pecoff.AlignUp(lastVA+lastVSize, sectAlign)))
	l.head = head
	l.size = int64(fileEnd)
	return l, nil
}

// checkStub refuses stubs this package does not adjust the way ukify would.
func checkStub(f *pecoff.File) error {
	if f.Magic != pecoff.MagicPE32Plus {
		return fmt.Errorf("optional header magic %#x, want PE32+ (%#x)", f.Magic, pecoff.MagicPE32Plus)
	}
	if f.Machine != pecoff.MachineAMD64 && f.Machine != pecoff.MachineARM64 {
		return fmt.Errorf("machine %#x is neither x86-64 nor arm64", f.Machine)
	}
	if f.SecurityOffset != 0 || f.SecuritySize != 0 {
		return errors.New("the stub is signed; sign the UKI instead")
	}
	if f.PointerToSymbolTable != 0 || f.NumberOfSymbols != 0 {
		return errors.New("the stub has a COFF symbol table (systemd 254 and later strip it)")
	}
	end := uint64(f.SizeOfHeaders)
	for _, s := range f.Sections {
		if s.PointerToRawData%f.FileAlignment != 0 || s.SizeOfRawData%f.FileAlignment != 0 {
			return fmt.Errorf("section %q raw data %#x+%#x is not aligned to FileAlignment %#x", s.Name, s.PointerToRawData, s.SizeOfRawData, f.FileAlignment)
		}
		if s.SizeOfRawData > 0 {
			end = max(end, uint64(s.PointerToRawData)+uint64(s.SizeOfRawData))
		}
	}
	if end != uint64(f.Size) {
		return fmt.Errorf("%d bytes follow the last section's raw data (the stub ends at %d)", f.Size-int64(end), f.Size)
	}
	if _, ok := f.Section(SectionSBAT); !ok {
		return errors.New("no .sbat section")
	}
	for _, name := range []string{SectionOSRelease, SectionCmdline, SectionUname, SectionLinux, SectionInitrd} {
		if _, ok := f.Section(name); ok {
			return fmt.Errorf("the stub already has a %s section", name)
		}
	}
	return nil
}

// mergeSBAT merges the SBAT metadata of the stub, of the kernel (if it has
// a .sbat section) and of the UKI itself, like ukify's merge_sbat: the
// header line once, then every other line of each in that order, each line
// ended by a newline, then a NUL.
func mergeSBAT(stubData []byte, stub *pecoff.File, kernelData []byte, kernel *pecoff.File, extra string) (string, error) {
	if extra == "" {
		extra = DefaultSBAT
	}
	var lines []string
	add := func(what, text string) error {
		split := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
		if !strings.HasPrefix(split[0], "sbat,") {
			return fmt.Errorf("uki: the %s SBAT metadata does not start with an sbat, line", what)
		}
		lines = append(lines, split[1:]...)
		return nil
	}
	for _, pe := range []struct {
		what string
		data []byte
		f    *pecoff.File
	}{{"stub's", stubData, stub}, {"kernel's", kernelData, kernel}} {
		s, ok := pe.f.Section(SectionSBAT)
		if !ok {
			continue
		}
		raw := bytes.TrimRight(pe.data[s.PointerToRawData:s.PointerToRawData+s.SizeOfRawData], "\x00")
		if err := add(pe.what, string(raw)); err != nil {
			return "", err
		}
	}
	if err := add("UKI's", extra); err != nil {
		return "", err
	}
	return sbatHeader + "\n" + strings.Join(lines, "\n") + "\n\x00", nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

var zeroBlock [4096]byte

func zeros(w io.Writer, n int64) error {
	for n > 0 {
		k := min(n, int64(len(zeroBlock)))
		if _, err := w.Write(zeroBlock[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// KernelRelease reads the kernel release (what uname -r prints) from the
// version string of an x86 Linux kernel image (bzImage), like ukify does
// when --uname is not given.
func KernelRelease(kernel []byte) (string, error) {
	if len(kernel) < 0x210 || string(kernel[0x202:0x206]) != "HdrS" {
		return "", errors.New("uki: the kernel has no x86 real-mode header (HdrS)")
	}
	off := 0x200 + int(binary.LittleEndian.Uint16(kernel[0x20e:]))
	if off >= len(kernel) {
		return "", fmt.Errorf("uki: the kernel version string offset %#x is outside the kernel", off)
	}
	text := kernel[off:min(off+128, len(kernel))]
	if i := bytes.IndexByte(text, 0); i >= 0 {
		text = text[:i]
	}
	release, rest, ok := strings.Cut(string(text), " (")
	if !ok || release == "" || !strings.Contains(rest, ") #") {
		return "", fmt.Errorf("uki: cannot parse the kernel version string %q", text)
	}
	for _, c := range release {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune("._+-", c)) {
			return "", fmt.Errorf("uki: kernel release %q has a character other than a-z 0-9 . _ + -", release)
		}
	}
	return release, nil
}
