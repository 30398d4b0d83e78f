package pecoff_test

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/builder/internal/pecoff"
	"github.com/nodebake/nodebake/builder/internal/pecoff/pecofftest"
	"github.com/nodebake/nodebake/builder/internal/testbase"
)

func sample() []byte {
	return pecofftest.Image{DllCharacteristics: 0x160, SpareHeaders: 2, Sections: []pecofftest.Section{
		{Name: ".text", Data: bytes.Repeat([]byte{0xcc}, 700)},
		{Name: ".sbat", Data: []byte("sbat,1\n")},
	}}.Bytes()
}

// sameAsDebugPE checks Parse against the standard library's reading.
func sameAsDebugPE(t *testing.T, b []byte) {
	t.Helper()
	f, err := pecoff.Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	std, err := pe.NewFile(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	oh := std.OptionalHeader.(*pe.OptionalHeader64)
	if f.Machine != std.Machine || int(f.NumberOfSections) != len(std.Sections) || f.SizeOfHeaders != oh.SizeOfHeaders ||
		f.FileAlignment != oh.FileAlignment || f.SectionAlignment != oh.SectionAlignment || f.SizeOfImage != oh.SizeOfImage ||
		f.CheckSum != oh.CheckSum || f.DllCharacteristics != oh.DllCharacteristics || f.NumberOfRvaAndSizes != oh.NumberOfRvaAndSizes ||
		f.SecurityOffset != oh.DataDirectory[pecoff.DirSecurity].VirtualAddress || f.SecuritySize != oh.DataDirectory[pecoff.DirSecurity].Size {
		t.Errorf("Parse = %+v, debug/pe = %+v", f, oh)
	}
	for i, s := range std.Sections {
		g := f.Sections[i]
		if g.Name != s.Name || g.VirtualSize != s.VirtualSize || g.VirtualAddress != s.VirtualAddress ||
			g.SizeOfRawData != s.Size || g.PointerToRawData != s.Offset || g.Characteristics != s.Characteristics {
			t.Errorf("section %d: Parse %+v, debug/pe %+v", i, g, s.SectionHeader)
		}
	}
	le := binary.LittleEndian
	if le.Uint32(b[f.CheckSumOffset():]) != oh.CheckSum || le.Uint32(b[f.SizeOfImageOffset():]) != oh.SizeOfImage ||
		le.Uint32(b[f.SizeOfHeadersOffset():]) != oh.SizeOfHeaders || le.Uint16(b[f.DllCharacteristicsOffset():]) != oh.DllCharacteristics ||
		le.Uint16(b[f.NumberOfSectionsOffset():]) != uint16(len(std.Sections)) ||
		le.Uint32(b[f.DataDirectoryOffset(5):]) != oh.DataDirectory[5].VirtualAddress {
		t.Error("a field offset does not point at its field")
	}
}

func TestParse(t *testing.T) { sameAsDebugPE(t, sample()) }

func TestParseReal(t *testing.T) {
	for _, f := range testbase.Find(t, testbase.StubAMD64, testbase.SystemdBootX64, testbase.KernelPattern) {
		t.Run(f.Path, func(t *testing.T) { sameAsDebugPE(t, f.Data) })
	}
}

func TestParseHostile(t *testing.T) {
	le := binary.LittleEndian
	const opt = pecofftest.Lfanew + 24
	const table = opt + 240
	set32 := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint32(b[off:], v); return b }
	}
	set16 := func(off int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint16(b[off:], v); return b }
	}
	tests := []struct {
		name   string
		modify func([]byte) []byte
		want   string
	}{
		{"short", func(b []byte) []byte { return b[:40] }, "too short"},
		{"no MZ", func(b []byte) []byte { b[0] = 'X'; return b }, "no MZ"},
		{"lfanew past the file", set32(0x3c, 1<<30), "PE header offset"},
		{"lfanew inside the DOS header", set32(0x3c, 8), "PE header offset"},
		{"no PE signature", func(b []byte) []byte { b[pecofftest.Lfanew] = 'X'; return b }, "no PE signature"},
		{"no sections", set16(pecofftest.Lfanew+6, 0), "0 sections"},
		{"too many sections", set16(pecofftest.Lfanew+6, 97), "97 sections"},
		{"section table past the headers read", set16(pecofftest.Lfanew+20, 0xffff), "section table ends"},
		{"bad magic", set16(opt, 0x30b), "magic"},
		{"optional header too short", set16(pecofftest.Lfanew+20, 50), "optional header is 50 bytes"},
		{"17 data directories", set32(opt+108, 17), "17 data directories"},
		{"file alignment not a power of two", set32(opt+36, 0x300), "FileAlignment"},
		{"section alignment below file alignment", set32(opt+32, 0x100), "SectionAlignment"},
		{"SizeOfHeaders below the section table", set32(opt+60, 0x100), "SizeOfHeaders"},
		{"SizeOfHeaders past the file", set32(opt+60, 1<<30), "SizeOfHeaders"},
		{"section raw data past the file", set32(table+20, 1<<30), "outside the file"},
		{"section raw data inside the headers", set32(table+20, 0x10), "outside the file"},
		{"section raw size past the file", set32(table+16, 0xffffffff), "outside the file"},
		{"certificate table past the file", func(b []byte) []byte {
			le.PutUint32(b[opt+112+32:], 0x400)
			le.PutUint32(b[opt+112+36:], 1<<30)
			return b
		}, "certificate table"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.modify(sample())
			_, err := pecoff.Parse(bytes.NewReader(b), int64(len(b)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// FuzzParse checks that Parse never panics and that what it accepts lies
// inside the file.
func FuzzParse(f *testing.F) {
	f.Add(sample())
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := pecoff.Parse(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		if int64(p.SizeOfHeaders) > int64(len(b)) || p.SectionTableOffset()+int64(len(p.Sections))*pecoff.SectionHeaderSize > int64(p.SizeOfHeaders) {
			t.Fatalf("accepted headers outside the file: %+v", p)
		}
		for _, s := range p.Sections {
			if int64(s.PointerToRawData)+int64(s.SizeOfRawData) > int64(len(b)) {
				t.Fatalf("accepted a section outside the file: %+v", s)
			}
		}
	})
}
