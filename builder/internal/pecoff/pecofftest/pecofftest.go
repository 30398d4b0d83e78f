// Package pecofftest builds small synthetic PE32+ images for tests: they
// stand in for systemd-stub, systemd-boot and the kernel in the fast tests
// of the packages that assemble and sign EFI images, whose slower tests
// use the real binaries of the Debian base.
package pecofftest

import (
	"encoding/binary"

	"github.com/nodebake/nodebake/builder/internal/pecoff"
)

// Section is a section of a synthetic image.
type Section struct {
	Name string
	Data []byte
}

// Image describes a synthetic PE32+ x86-64 EFI application.
type Image struct {
	// DllCharacteristics of the optional header.
	DllCharacteristics uint16
	// SpareHeaders is the number of section headers that fit in the
	// headers besides the image's own (more when rounding SizeOfHeaders
	// up to FileAlignment leaves room).
	SpareHeaders int
	Sections     []Section
	// Tail is appended after the last section's raw data.
	Tail []byte
}

// Layout constants of every synthetic image.
const (
	Lfanew           = 0x80
	FileAlignment    = 0x200
	SectionAlignment = 0x1000
	TimeDateStamp    = 0x5eed
	optSize          = 240
	tableOffset      = Lfanew + 4 + 20 + optSize
)

// Bytes returns the image.
func (im Image) Bytes() []byte {
	le := binary.LittleEndian
	headers := int(pecoff.AlignUp(uint64(tableOffset+40*(len(im.Sections)+im.SpareHeaders)), FileAlignment))
	b := make([]byte, headers)
	copy(b, "MZ")
	le.PutUint32(b[0x3c:], Lfanew)
	copy(b[Lfanew:], "PE\x00\x00")
	coff := b[Lfanew+4:]
	le.PutUint16(coff[0:], pecoff.MachineAMD64)
	le.PutUint16(coff[2:], uint16(len(im.Sections)))
	le.PutUint32(coff[4:], TimeDateStamp)
	le.PutUint16(coff[16:], optSize)
	le.PutUint16(coff[18:], 0x22e)
	opt := b[Lfanew+24:]
	le.PutUint16(opt[0:], pecoff.MagicPE32Plus)
	le.PutUint32(opt[8:], 0x1234) // SizeOfInitializedData
	le.PutUint32(opt[16:], 0x1000)
	le.PutUint64(opt[24:], 0x140000000)
	le.PutUint32(opt[32:], SectionAlignment)
	le.PutUint32(opt[36:], FileAlignment)
	le.PutUint32(opt[60:], uint32(headers))
	le.PutUint32(opt[64:], 0xdeadbeef) // CheckSum
	le.PutUint16(opt[68:], 10)         // EFI application
	le.PutUint16(opt[70:], im.DllCharacteristics)
	le.PutUint32(opt[108:], 16)
	va := uint64(SectionAlignment)
	for i, s := range im.Sections {
		rsize := pecoff.AlignUp(uint64(len(s.Data)), FileAlignment)
		sh := b[tableOffset+40*i:]
		copy(sh, s.Name)
		le.PutUint32(sh[8:], uint32(len(s.Data)))
		le.PutUint32(sh[12:], uint32(va))
		le.PutUint32(sh[16:], uint32(rsize))
		le.PutUint32(sh[20:], uint32(len(b)))
		le.PutUint32(sh[36:], 0x40000040)
		b = append(b, s.Data...)
		b = append(b, make([]byte, rsize-uint64(len(s.Data)))...)
		va = pecoff.AlignUp(va+uint64(len(s.Data)), SectionAlignment)
	}
	le.PutUint32(b[Lfanew+24+56:], uint32(va)) // SizeOfImage
	return append(b, im.Tail...)
}
