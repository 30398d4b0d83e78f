package uki

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"io"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/builder/internal/pecoff"
	"github.com/nodebake/nodebake/builder/internal/pecoff/pecofftest"
)

// fakePE builds a synthetic image with room for spare more section
// headers; it stands in for systemd-stub and the kernel in the fast tests
// (the real ones are used by TestRealStub).
func fakePE(dll uint16, spare int, sections ...pecofftest.Section) []byte {
	return pecofftest.Image{DllCharacteristics: dll, SpareHeaders: spare, Sections: sections}.Bytes()
}

const stubSBAT = "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\nsystemd-stub,1,The systemd Developers,systemd,257,https://systemd.io/\n"

func fakeStub(spare int) []byte {
	return fakePE(0x160, spare,
		sec(".text", bytes.Repeat([]byte{0xcc}, 3000)),
		sec(".sbat", []byte(stubSBAT)),
		sec(".reloc", []byte{1, 2, 3, 4, 5, 6, 7, 8}),
	)
}

func fakeKernel(nx bool, sbat string) []byte {
	var dll uint16
	if nx {
		dll = pecoff.DllCharacteristicsNXCompat
	}
	secs := []pecofftest.Section{sec(".text", bytes.Repeat([]byte{0x90}, 5000))}
	if sbat != "" {
		secs = append(secs, sec(".sbat", []byte(sbat)))
	}
	return fakePE(dll, 0, secs...)
}

func sectionReader(b []byte) *io.SectionReader {
	return io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b)))
}

func build(t *testing.T, in Input) []byte {
	t.Helper()
	var out bytes.Buffer
	n, err := Write(&out, in)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(out.Len()) {
		t.Fatalf("Write returned %d, wrote %d bytes", n, out.Len())
	}
	if size, err := Size(in); err != nil || size != n {
		t.Fatalf("Size = %d, %v; Write wrote %d", size, err, n)
	}
	return out.Bytes()
}

func TestLayout(t *testing.T) {
	stub := fakeStub(8)
	kernel := fakeKernel(true, "")
	initrd := bytes.Repeat([]byte("initrd"), 100001)
	in := Input{
		Stub: stub, Kernel: kernel, Initrd: sectionReader(initrd),
		Cmdline:   "  root=/dev/mapper/root\tro \n console=ttyS0 ",
		OSRelease: []byte("ID=debian\nIMAGE_ID=worker\nIMAGE_VERSION=1.2.3\n"),
		Uname:     "6.12.118+deb13-amd64",
	}
	out := build(t, in)
	f, err := pe.NewFile(bytes.NewReader(out))
	if err != nil {
		t.Fatalf("debug/pe cannot read the UKI: %v", err)
	}
	stubPE, _ := pe.NewFile(bytes.NewReader(stub))
	oh := f.OptionalHeader.(*pe.OptionalHeader64)
	stubOH := stubPE.OptionalHeader.(*pe.OptionalHeader64)

	wantSBAT := "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n" +
		"systemd-stub,1,The systemd Developers,systemd,257,https://systemd.io/\n" +
		"uki,1,UKI,uki,1,https://uapi-group.org/specifications/specs/unified_kernel_image/\n\x00"
	want := []struct {
		name  string
		data  []byte
		flags uint32
	}{
		{".text", bytes.Repeat([]byte{0xcc}, 3000), 0x40000040},
		{".sbat", []byte(wantSBAT), 0x40000040},
		{".reloc", []byte{1, 2, 3, 4, 5, 6, 7, 8}, 0x40000040},
		{".osrel", in.OSRelease, 0x40000040},
		{".cmdline", []byte("root=/dev/mapper/root ro console=ttyS0"), 0x40000040},
		{".uname", []byte(in.Uname), 0x40000040},
		{".linux", kernel, 0x40000020},
		{".initrd", initrd, 0x40000040},
	}
	if len(f.Sections) != len(want) {
		t.Fatalf("%d sections, want %d", len(f.Sections), len(want))
	}
	var prev *pe.Section
	var added uint32
	for i, w := range want {
		s := f.Sections[i]
		if s.Name != w.name {
			t.Errorf("section %d is %q, want %q", i, s.Name, w.name)
		}
		if s.VirtualSize != uint32(len(w.data)) {
			t.Errorf("%s: VirtualSize %d, want the exact content length %d", s.Name, s.VirtualSize, len(w.data))
		}
		data, err := s.Data()
		if err != nil {
			t.Fatalf("%s: %v", s.Name, err)
		}
		if !bytes.Equal(data[:s.VirtualSize], w.data) {
			t.Errorf("%s: content differs from the input", s.Name)
		}
		if !allZero(data[s.VirtualSize:]) {
			t.Errorf("%s: the raw data after VirtualSize is not zero padding", s.Name)
		}
		if s.Characteristics != w.flags {
			t.Errorf("%s: characteristics %#x, want %#x", s.Name, s.Characteristics, w.flags)
		}
		if s.Offset%0x200 != 0 || s.Size%0x200 != 0 {
			t.Errorf("%s: raw data %#x+%#x not aligned to FileAlignment", s.Name, s.Offset, s.Size)
		}
		if i >= 3 {
			added += s.VirtualSize
			if s.Size != uint32(pecoff.AlignUp(uint64(len(w.data)), 0x200)) {
				t.Errorf("%s: SizeOfRawData %#x, want the length aligned up", s.Name, s.Size)
			}
			if s.Offset != prev.Offset+prev.Size {
				t.Errorf("%s: raw data at %#x, want right after %s (%#x)", s.Name, s.Offset, prev.Name, prev.Offset+prev.Size)
			}
			if wantVA := uint32(pecoff.AlignUp(uint64(prev.VirtualAddress+prev.VirtualSize), 0x1000)); s.VirtualAddress != wantVA {
				t.Errorf("%s: VirtualAddress %#x, want %#x", s.Name, s.VirtualAddress, wantVA)
			}
		}
		prev = s
	}
	last := f.Sections[len(f.Sections)-1]
	if int(last.Offset+last.Size) != len(out) {
		t.Errorf("file is %d bytes, the last section ends at %d", len(out), last.Offset+last.Size)
	}
	if wantImage := uint32(pecoff.AlignUp(uint64(last.VirtualAddress+last.VirtualSize), 0x1000)); oh.SizeOfImage != wantImage {
		t.Errorf("SizeOfImage %#x, want %#x", oh.SizeOfImage, wantImage)
	}
	if oh.CheckSum != 0 {
		t.Errorf("CheckSum %#x, want 0", oh.CheckSum)
	}
	if oh.SizeOfInitializedData != stubOH.SizeOfInitializedData+added {
		t.Errorf("SizeOfInitializedData %#x, want the stub's %#x plus %#x", oh.SizeOfInitializedData, stubOH.SizeOfInitializedData, added)
	}
	if oh.DllCharacteristics != 0x160 || oh.SizeOfHeaders != stubOH.SizeOfHeaders || oh.Subsystem != 10 {
		t.Errorf("DllCharacteristics %#x, SizeOfHeaders %#x, Subsystem %d changed", oh.DllCharacteristics, oh.SizeOfHeaders, oh.Subsystem)
	}
	if f.FileHeader.TimeDateStamp != 0x5eed {
		t.Errorf("the stub's time stamp was changed to %#x", f.FileHeader.TimeDateStamp)
	}
	// Everything before the first section and not a header we set is the
	// stub's.
	if !bytes.Equal(out[:0x80], stub[:0x80]) {
		t.Error("the DOS header and stub changed")
	}
	if again := build(t, in); !bytes.Equal(again, out) {
		t.Error("two builds of the same input differ")
	}
}

func TestSBATMerge(t *testing.T) {
	kernelSBAT := "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\nlinux,1,The Linux Developers,linux,6.12,https://linux.org\n"
	extra := "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\nnodebake.uki,1,nodebake,uki,1,https://example.invalid/\n"
	out := build(t, Input{Stub: fakeStub(8), Kernel: fakeKernel(true, kernelSBAT), OSRelease: []byte("ID=x\n"), SBAT: extra})
	f, err := pe.NewFile(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	s := f.Section(".sbat")
	data, _ := s.Data()
	want := "sbat,1,SBAT Version,sbat,1,https://github.com/rhboot/shim/blob/main/SBAT.md\n" +
		"systemd-stub,1,The systemd Developers,systemd,257,https://systemd.io/\n" +
		"linux,1,The Linux Developers,linux,6.12,https://linux.org\n" +
		"nodebake.uki,1,nodebake,uki,1,https://example.invalid/\n\x00"
	if got := string(data[:s.VirtualSize]); got != want {
		t.Errorf(".sbat = %q, want %q", got, want)
	}
	if f.Section(".initrd") != nil || f.Section(".cmdline") != nil || f.Section(".uname") != nil {
		t.Error("empty inputs added sections")
	}
}

func TestNXCompat(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stub      uint16
		kernelNX  bool
		wantFlags uint16
	}{
		{"kernel with NX_COMPAT keeps it", 0x160, true, 0x160},
		{"kernel without NX_COMPAT clears it", 0x160, false, 0x060},
		{"stub without NX_COMPAT stays so", 0x060, true, 0x060},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stub := fakePE(tc.stub, 8, sec(".text", []byte{1}), sec(".sbat", []byte(stubSBAT)))
			out := build(t, Input{Stub: stub, Kernel: fakeKernel(tc.kernelNX, ""), OSRelease: []byte("ID=x\n")})
			f, err := pe.NewFile(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.OptionalHeader.(*pe.OptionalHeader64).DllCharacteristics; got != tc.wantFlags {
				t.Errorf("DllCharacteristics %#x, want %#x", got, tc.wantFlags)
			}
		})
	}
}

func TestInvalid(t *testing.T) {
	good := func() Input {
		return Input{Stub: fakeStub(8), Kernel: fakeKernel(true, ""), OSRelease: []byte("ID=x\n"), Cmdline: "ro"}
	}
	patch := func(b []byte, off int, v uint32) []byte {
		b = bytes.Clone(b)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	stub := fakeStub(8)
	sp, err := pecoff.Parse(bytes.NewReader(stub), int64(len(stub)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		modify func(*Input)
		want   string
	}{
		{"no stub", func(in *Input) { in.Stub = nil }, "no stub"},
		{"no kernel", func(in *Input) { in.Kernel = nil }, "no kernel"},
		{"no os-release", func(in *Input) { in.OSRelease = nil }, "no os-release"},
		{"stub not PE", func(in *Input) { in.Stub = bytes.Repeat([]byte{'x'}, 4096) }, "not a PE"},
		{"kernel not PE", func(in *Input) { in.Kernel = bytes.Repeat([]byte{'x'}, 4096) }, "kernel: not a PE"},
		{"signed stub", func(in *Input) {
			in.Stub = patch(in.Stub, int(sp.DataDirectoryOffset(pecoff.DirSecurity)), uint32(len(in.Stub)-8))
			in.Stub = patch(in.Stub, int(sp.DataDirectoryOffset(pecoff.DirSecurity))+4, 8)
		}, "stub is signed"},
		{"stub with symbol table", func(in *Input) { in.Stub = patch(in.Stub, int(sp.COFFOffset)+8, 0x400) }, "symbol table"},
		{"stub with trailing bytes", func(in *Input) { in.Stub = append(bytes.Clone(in.Stub), 1, 2, 3) }, "follow the last section"},
		{"misaligned stub section", func(in *Input) {
			in.Stub = patch(in.Stub, int(sp.Sections[2].HeaderOffset)+16, 8)
		}, "not aligned"},
		{"no room for headers", func(in *Input) { in.Stub = fakeStub(0) }, "no room in the stub's headers"},
		{"SBAT does not fit", func(in *Input) {
			in.SBAT = "sbat,1,SBAT Version,sbat,1,x\n" + strings.Repeat("x,1,x,x,1,x\n", 60)
		}, "does not fit the stub's .sbat"},
		{"bad SBAT", func(in *Input) { in.SBAT = "uki,1,UKI\n" }, "does not start with an sbat"},
		{"NUL in command line", func(in *Input) { in.Cmdline = "ro\x00quiet" }, "command line contains a NUL"},
		{"space in uname", func(in *Input) { in.Uname = "6.1 x" }, "white space"},
		{"huge command line", func(in *Input) { in.Cmdline = strings.Repeat("a", MaxTextSize+1) }, "more than"},
		{"stub already a UKI", func(in *Input) {
			in.Stub = fakePE(0x160, 8, sec(".text", []byte{1}), sec(".sbat", []byte(stubSBAT)), sec(".linux", []byte{1}))
		}, "already has a .linux"},
		{"stub without .sbat", func(in *Input) {
			in.Stub = fakePE(0x160, 8, sec(".text", []byte{1}))
		}, "no .sbat"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := good()
			tc.modify(&in)
			_, err := Write(io.Discard, in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Write: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestKernelRelease(t *testing.T) {
	k := make([]byte, 0x1000)
	copy(k[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(k[0x20e:], 0x300)
	copy(k[0x500:], "6.12.118+deb13-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian 6.12.118-1\x00")
	if got, err := KernelRelease(k); err != nil || got != "6.12.118+deb13-amd64" {
		t.Errorf("KernelRelease = %q, %v", got, err)
	}
	copy(k[0x500:], "6.12 bogus\x00")
	if _, err := KernelRelease(k); err == nil {
		t.Error("KernelRelease accepted a version string without (builder) #")
	}
	if _, err := KernelRelease(fakeKernel(true, "")); err == nil {
		t.Error("KernelRelease accepted a kernel without HdrS")
	}
}

func sec(name string, data []byte) pecofftest.Section {
	return pecofftest.Section{Name: name, Data: data}
}
