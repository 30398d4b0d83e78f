// Package pecoff reads the headers of a PE/COFF image (an EFI application:
// systemd-boot, systemd-stub, a Linux kernel with its EFI stub) and knows
// where each header field sits in the file, for the packages that assemble
// (builder/uki) and sign (builder/authenticode) such images. debug/pe in the
// standard library parses more, but does not say where fields are.
//
// Parse reads only the headers, bounded in size, and checks every offset and
// size against the file before returning; a value the format allows but
// nodebake never meets in an EFI image (PE32 with 64-bit fields, more than
// MaxSections sections, headers larger than MaxHeaderSize) is an error.
package pecoff

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Limits on what Parse accepts.
const (
	// MaxHeaderSize bounds the headers: DOS header, stub, PE signature,
	// COFF and optional header, section table.
	MaxHeaderSize = 1 << 20
	// MaxSections is the PE specification's limit on the number of
	// sections.
	MaxSections = 96
)

// Magic numbers and flags used by nodebake.
const (
	MagicPE32     = 0x10b
	MagicPE32Plus = 0x20b

	MachineAMD64 = 0x8664
	MachineARM64 = 0xaa64

	// DirSecurity is the index of the Certificate Table (Authenticode
	// signatures) among the data directories.
	DirSecurity = 4

	// DllCharacteristicsNXCompat marks an image that runs with data pages
	// not executable.
	DllCharacteristicsNXCompat = 0x0100

	ScnCntCode              = 0x00000020
	ScnCntInitializedData   = 0x00000040
	ScnMemRead              = 0x40000000
	SectionHeaderSize       = 40
	coffHeaderSize          = 20
	optionalHeaderFixedPE32 = 96  // up to NumberOfRvaAndSizes included
	optionalHeaderFixedPlus = 112 // the same for PE32+
)

// Section is one entry of the section table.
type Section struct {
	Name             string // without trailing NULs
	VirtualSize      uint32
	VirtualAddress   uint32
	SizeOfRawData    uint32
	PointerToRawData uint32
	Characteristics  uint32
	// HeaderOffset is the file offset of this section's header.
	HeaderOffset int64
}

// File is the parsed headers of an image.
type File struct {
	Size int64 // file size in bytes

	Machine              uint16
	NumberOfSections     uint16
	PointerToSymbolTable uint32
	NumberOfSymbols      uint32
	// COFFOffset is the file offset of the COFF file header (after "PE\0\0").
	COFFOffset int64
	// OptionalOffset is the file offset of the optional header.
	OptionalOffset       int64
	SizeOfOptionalHeader uint16

	Magic               uint16 // MagicPE32 or MagicPE32Plus
	SizeOfInitialized   uint32
	SectionAlignment    uint32
	FileAlignment       uint32
	SizeOfImage         uint32
	SizeOfHeaders       uint32
	CheckSum            uint32
	DllCharacteristics  uint16
	NumberOfRvaAndSizes uint32

	// SecurityOffset and SecuritySize are the Certificate Table data
	// directory entry: a file offset (not an RVA) and a size. Zero when
	// the image is not signed or has fewer than 5 data directories.
	SecurityOffset uint32
	SecuritySize   uint32

	Sections []Section
}

// Offsets of fields inside the optional header.
const (
	optSizeOfInitializedData = 8
	optSectionAlignment      = 32
	optFileAlignment         = 36
	optSizeOfImage           = 56
	optSizeOfHeaders         = 60
	optCheckSum              = 64
	optDllCharacteristics    = 70
)

// CheckSumOffset is the file offset of the optional header's CheckSum.
func (f *File) CheckSumOffset() int64 { return f.OptionalOffset + optCheckSum }

// SizeOfImageOffset is the file offset of SizeOfImage.
func (f *File) SizeOfImageOffset() int64 { return f.OptionalOffset + optSizeOfImage }

// SizeOfHeadersOffset is the file offset of SizeOfHeaders.
func (f *File) SizeOfHeadersOffset() int64 { return f.OptionalOffset + optSizeOfHeaders }

// SizeOfInitializedDataOffset is the file offset of SizeOfInitializedData.
func (f *File) SizeOfInitializedDataOffset() int64 {
	return f.OptionalOffset + optSizeOfInitializedData
}

// DllCharacteristicsOffset is the file offset of DllCharacteristics.
func (f *File) DllCharacteristicsOffset() int64 { return f.OptionalOffset + optDllCharacteristics }

// NumberOfSectionsOffset is the file offset of the COFF NumberOfSections.
func (f *File) NumberOfSectionsOffset() int64 { return f.COFFOffset + 2 }

// DataDirectoryOffset is the file offset of data directory entry i (8
// bytes: address and size).
func (f *File) DataDirectoryOffset(i int) int64 {
	fixed := int64(optionalHeaderFixedPE32)
	if f.Magic == MagicPE32Plus {
		fixed = optionalHeaderFixedPlus
	}
	return f.OptionalOffset + fixed + 8*int64(i)
}

// SectionTableOffset is the file offset of the first section header.
func (f *File) SectionTableOffset() int64 {
	return f.OptionalOffset + int64(f.SizeOfOptionalHeader)
}

// Section returns the first section with the given name.
func (f *File) Section(name string) (Section, bool) {
	for _, s := range f.Sections {
		if s.Name == name {
			return s, true
		}
	}
	return Section{}, false
}

// ErrNotPE is wrapped by errors about input that is not a PE image at all.
var ErrNotPE = errors.New("not a PE/COFF image")

// Parse reads the headers of the size-byte image r.
func Parse(r io.ReaderAt, size int64) (*File, error) {
	if size < 64 {
		return nil, fmt.Errorf("%w: %d bytes is too short for a DOS header", ErrNotPE, size)
	}
	hdr := make([]byte, min(size, MaxHeaderSize))
	if n, err := r.ReadAt(hdr, 0); n < len(hdr) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading the PE headers: %w", err)
	}
	if hdr[0] != 'M' || hdr[1] != 'Z' {
		return nil, fmt.Errorf("%w: no MZ signature", ErrNotPE)
	}
	le := binary.LittleEndian
	lfanew := int64(le.Uint32(hdr[0x3c:]))
	if lfanew < 64 || lfanew+4+coffHeaderSize > int64(len(hdr)) {
		return nil, fmt.Errorf("%w: PE header offset %#x outside the first %d bytes", ErrNotPE, lfanew, len(hdr))
	}
	if string(hdr[lfanew:lfanew+4]) != "PE\x00\x00" {
		return nil, fmt.Errorf("%w: no PE signature at %#x", ErrNotPE, lfanew)
	}
	f := &File{Size: size, COFFOffset: lfanew + 4}
	coff := hdr[f.COFFOffset:]
	f.Machine = le.Uint16(coff[0:])
	f.NumberOfSections = le.Uint16(coff[2:])
	f.PointerToSymbolTable = le.Uint32(coff[8:])
	f.NumberOfSymbols = le.Uint32(coff[12:])
	f.SizeOfOptionalHeader = le.Uint16(coff[16:])
	f.OptionalOffset = f.COFFOffset + coffHeaderSize
	if f.NumberOfSections == 0 || f.NumberOfSections > MaxSections {
		return nil, fmt.Errorf("PE image has %d sections, want 1 to %d", f.NumberOfSections, MaxSections)
	}
	tableEnd := f.OptionalOffset + int64(f.SizeOfOptionalHeader) + int64(f.NumberOfSections)*SectionHeaderSize
	if tableEnd > int64(len(hdr)) {
		return nil, fmt.Errorf("PE section table ends at %#x, past the first %d bytes of the file", tableEnd, len(hdr))
	}
	opt := hdr[f.OptionalOffset : f.OptionalOffset+int64(f.SizeOfOptionalHeader)]
	if len(opt) < 2 {
		return nil, fmt.Errorf("PE optional header is %d bytes, too short", len(opt))
	}
	f.Magic = le.Uint16(opt)
	fixed := optionalHeaderFixedPE32
	switch f.Magic {
	case MagicPE32:
	case MagicPE32Plus:
		fixed = optionalHeaderFixedPlus
	default:
		return nil, fmt.Errorf("%w: optional header magic %#x", ErrNotPE, f.Magic)
	}
	if len(opt) < fixed {
		return nil, fmt.Errorf("PE optional header is %d bytes, want at least %d", len(opt), fixed)
	}
	f.SizeOfInitialized = le.Uint32(opt[optSizeOfInitializedData:])
	f.SectionAlignment = le.Uint32(opt[optSectionAlignment:])
	f.FileAlignment = le.Uint32(opt[optFileAlignment:])
	f.SizeOfImage = le.Uint32(opt[optSizeOfImage:])
	f.SizeOfHeaders = le.Uint32(opt[optSizeOfHeaders:])
	f.CheckSum = le.Uint32(opt[optCheckSum:])
	f.DllCharacteristics = le.Uint16(opt[optDllCharacteristics:])
	f.NumberOfRvaAndSizes = le.Uint32(opt[fixed-4:])
	if f.NumberOfRvaAndSizes > 16 || fixed+8*int(f.NumberOfRvaAndSizes) > len(opt) {
		return nil, fmt.Errorf("PE optional header has %d data directories, more than its %d bytes or 16 hold", f.NumberOfRvaAndSizes, len(opt))
	}
	if f.NumberOfRvaAndSizes > DirSecurity {
		d := opt[fixed+8*DirSecurity:]
		f.SecurityOffset, f.SecuritySize = le.Uint32(d), le.Uint32(d[4:])
	}
	if !powerOfTwo(f.FileAlignment) || f.FileAlignment < 512 || f.FileAlignment > 64<<10 {
		return nil, fmt.Errorf("PE FileAlignment %#x is not a power of two from 512 to 64 KiB", f.FileAlignment)
	}
	if !powerOfTwo(f.SectionAlignment) || f.SectionAlignment < f.FileAlignment {
		return nil, fmt.Errorf("PE SectionAlignment %#x is not a power of two at least FileAlignment %#x", f.SectionAlignment, f.FileAlignment)
	}
	if int64(f.SizeOfHeaders) < tableEnd || int64(f.SizeOfHeaders) > size {
		return nil, fmt.Errorf("PE SizeOfHeaders %#x does not cover the section table (ends at %#x) or passes the end of the file (%d bytes)", f.SizeOfHeaders, tableEnd, size)
	}
	for i := range int(f.NumberOfSections) {
		off := f.SectionTableOffset() + int64(i)*SectionHeaderSize
		h := hdr[off : off+SectionHeaderSize]
		name := h[:8]
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		s := Section{
			Name:             string(name),
			VirtualSize:      le.Uint32(h[8:]),
			VirtualAddress:   le.Uint32(h[12:]),
			SizeOfRawData:    le.Uint32(h[16:]),
			PointerToRawData: le.Uint32(h[20:]),
			Characteristics:  le.Uint32(h[36:]),
			HeaderOffset:     off,
		}
		if s.SizeOfRawData > 0 && (int64(s.PointerToRawData) < int64(f.SizeOfHeaders) || int64(s.PointerToRawData)+int64(s.SizeOfRawData) > size) {
			return nil, fmt.Errorf("PE section %q: raw data %#x+%#x outside the file (headers end at %#x, file is %d bytes)", s.Name, s.PointerToRawData, s.SizeOfRawData, f.SizeOfHeaders, size)
		}
		f.Sections = append(f.Sections, s)
	}
	if f.SecuritySize > 0 && (int64(f.SecurityOffset) < int64(f.SizeOfHeaders) || int64(f.SecurityOffset)+int64(f.SecuritySize) > size) {
		return nil, fmt.Errorf("PE certificate table %#x+%#x lies outside the file", f.SecurityOffset, f.SecuritySize)
	}
	return f, nil
}

func powerOfTwo(v uint32) bool { return v != 0 && v&(v-1) == 0 }

// AlignUp rounds v up to a multiple of a (a power of two).
func AlignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }
