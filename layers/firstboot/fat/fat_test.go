package fat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/layers/firstboot/internal/testimage"
)

func readImage(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testFiles() (testimage.Files, []byte) {
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 100_000) // many clusters
	for i := range big {
		big[i] = byte(rng.UintN(256))
	}
	files := testimage.Files{
		"openstack/latest/user_data":      []byte("apiVersion: nodebake.io/v1alpha1\n"),
		"openstack/latest/meta_data.json": []byte(`{"uuid": "x"}`),
		"user-data":                       []byte("#cloud-config\n"),
		"meta-data":                       []byte("instance-id: i-1\n"),
		"NODE.YML":                        []byte("short name"),
		"big.bin":                         big,
		"empty":                           nil,
		strings.Repeat("L", 100) + ".txt": []byte("long name"),
	}
	for i := range 100 { // a directory of several clusters
		files[fmt.Sprintf("many/a-rather-long-file-name-%03d.txt", i)] = []byte(fmt.Sprint(i))
	}
	return files, big
}

// TestMkfsVfat reads images made by mkfs.vfat and mcopy in each FAT
// variant.
func TestMkfsVfat(t *testing.T) {
	files, big := testFiles()
	tests := []struct {
		bits, kib int
		want      Type
	}{
		{12, 1440, FAT12},
		{16, 8192, FAT16},
		{32, 40960, FAT32},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("FAT", tt.bits), func(t *testing.T) {
			img := readImage(t, testimage.FAT(t, "CONFIG-2", tt.bits, tt.kib, files))
			f, err := Open(bytes.NewReader(img))
			if err != nil {
				t.Fatal(err)
			}
			if f.Type() != tt.want {
				t.Errorf("Type = %d, want %d", f.Type(), tt.want)
			}
			for p, want := range files {
				got, err := f.ReadFile(p, 1<<20)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("ReadFile(%q) = %d bytes, %v; want %d bytes", p, len(got), err, len(want))
				}
			}
			// FAT names are case-insensitive; the short alias works too.
			for _, p := range []string{"OPENSTACK/LATEST/USER_DATA", "node.yml", "USER-D~1"} {
				if _, err := f.ReadFile(p, 1<<20); err != nil {
					t.Errorf("ReadFile(%q): %v", p, err)
				}
			}
			if _, err := f.ReadFile("openstack/latest/vendor_data.json", 1<<20); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("missing file: %v, want fs.ErrNotExist", err)
			}
			if _, err := f.ReadFile("big.bin/x", 1<<20); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("path through a file: %v, want fs.ErrNotExist", err)
			}
			if _, err := f.ReadFile("big.bin", int64(len(big)-1)); !errors.Is(err, ErrTooLarge) {
				t.Errorf("over the limit: %v, want ErrTooLarge", err)
			}
			if _, err := f.ReadFile("many", 1<<20); err == nil || !strings.Contains(err.Error(), "directory") {
				t.Errorf("a directory: %v, want an error", err)
			}
			if _, err := f.ReadFile("many/../big.bin", 1<<20); err == nil {
				t.Error("a path with ..: no error")
			}
		})
	}
}

func TestOpenNotFAT(t *testing.T) {
	iso := make([]byte, 40*2048)
	copy(iso[16*2048+1:], "CD001")
	for name, img := range map[string][]byte{
		"empty": nil,
		"zeros": make([]byte, 4096),
		"iso":   iso,
	} {
		if _, err := Open(bytes.NewReader(img)); !errors.Is(err, ErrNotFAT) {
			t.Errorf("%s: %v, want ErrNotFAT", name, err)
		}
	}
}

// layout finds a file's directory entry and the FAT in a real image, so
// that the hostile cases can break exactly one thing.
type layout struct {
	f   *FS
	img []byte
}

// entryOffset returns the offset in the image of the root directory entry
// whose short name is short (11 bytes, space padded).
func (l layout) entryOffset(t *testing.T, short string) int64 {
	t.Helper()
	var start, n int64
	if l.f.typ == FAT32 {
		start, n = l.f.dataOffset+int64(l.f.rootCluster-2)*l.f.clusterBytes, l.f.clusterBytes
	} else {
		start, n = l.f.rootOffset, l.f.rootBytes
	}
	for off := start; off < start+n; off += 32 {
		if string(l.img[off:off+11]) == short {
			return off
		}
	}
	t.Fatalf("no entry %q in the root directory", short)
	return 0
}

func (l layout) setFAT(c, v uint32) {
	switch l.f.typ {
	case FAT12:
		off := l.f.fatOffset + int64(c) + int64(c)/2
		old := binary.LittleEndian.Uint16(l.img[off:])
		if c&1 == 1 {
			binary.LittleEndian.PutUint16(l.img[off:], old&0x000F|uint16(v)<<4)
		} else {
			binary.LittleEndian.PutUint16(l.img[off:], old&0xF000|uint16(v)&0xFFF)
		}
	case FAT16:
		binary.LittleEndian.PutUint16(l.img[l.f.fatOffset+2*int64(c):], uint16(v))
	default:
		binary.LittleEndian.PutUint32(l.img[l.f.fatOffset+4*int64(c):], v)
	}
}

func TestHostile(t *testing.T) {
	files := testimage.Files{"NODE.YML": bytes.Repeat([]byte("x"), 3000), "sub/a": []byte("a")}
	for _, bits := range []int{12, 16, 32} {
		kib := map[int]int{12: 1440, 16: 8192, 32: 40960}[bits]
		clean := readImage(t, testimage.FAT(t, "CIDATA", bits, kib, files))
		fresh := func(t *testing.T) layout {
			img := append([]byte(nil), clean...)
			f, err := Open(bytes.NewReader(img))
			if err != nil {
				t.Fatal(err)
			}
			return layout{f: f, img: img}
		}
		cluster := func(l layout, off int64) uint32 {
			d := l.img[off:]
			return uint32(binary.LittleEndian.Uint16(d[20:]))<<16 | uint32(binary.LittleEndian.Uint16(d[26:]))
		}
		tests := []struct {
			name   string
			break_ func(t *testing.T, l layout)
			path   string
			want   error
			msg    string
		}{
			{"cluster loop in a file", func(t *testing.T, l layout) {
				c := cluster(l, l.entryOffset(t, "NODE    YML"))
				l.setFAT(c+1, c) // the file's second cluster leads back to its first
			}, "NODE.YML", ErrCorrupt, "cluster loop"},
			{"chain ends early", func(t *testing.T, l layout) {
				c := cluster(l, l.entryOffset(t, "NODE    YML"))
				l.setFAT(c, 0x0FFFFFFF)
				binary.LittleEndian.PutUint32(l.img[l.entryOffset(t, "NODE    YML")+28:], 200_000)
			}, "NODE.YML", ErrCorrupt, "chain ends"},
			{"free cluster in a chain", func(t *testing.T, l layout) {
				c := cluster(l, l.entryOffset(t, "NODE    YML"))
				l.setFAT(c, 0)
				binary.LittleEndian.PutUint32(l.img[l.entryOffset(t, "NODE    YML")+28:], 200_000)
			}, "NODE.YML", ErrCorrupt, "out of range"},
			{"first cluster out of range", func(t *testing.T, l layout) {
				off := l.entryOffset(t, "NODE    YML")
				binary.LittleEndian.PutUint16(l.img[off+26:], 0xFFF0)
				binary.LittleEndian.PutUint16(l.img[off+20:], 0x0FF0)
			}, "NODE.YML", ErrCorrupt, "out of range"},
			{"directory cluster loop", func(t *testing.T, l layout) {
				c := cluster(l, l.entryOffset(t, "SUB        "))
				l.setFAT(c, c)
			}, "sub/a", ErrCorrupt, "cluster loop"},
			{"size over the limit", func(t *testing.T, l layout) {
				binary.LittleEndian.PutUint32(l.img[l.entryOffset(t, "NODE    YML")+28:], 0xFFFFFFFF)
			}, "NODE.YML", ErrTooLarge, "more than"},
			{"no data region", func(t *testing.T, l layout) {
				binary.LittleEndian.PutUint16(l.img[19:], 10) // total sectors
			}, "NODE.YML", ErrCorrupt, "no data region"},
			{"bad sectors per cluster", func(t *testing.T, l layout) {
				l.img[13] = 3
			}, "NODE.YML", ErrNotFAT, "sectors per cluster"},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("FAT%d/%s", bits, tt.name), func(t *testing.T) {
				l := fresh(t)
				tt.break_(t, l)
				f, err := Open(bytes.NewReader(l.img))
				if err == nil {
					_, err = f.ReadFile(tt.path, 1<<20)
				}
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
					t.Errorf("got %v, want %v mentioning %q", err, tt.want, tt.msg)
				}
			})
		}
	}
}

// TestLongNameChecksum: a long name whose checksum does not match its
// short entry (left behind by a tool that does not know long names) is
// ignored, and the short name still works.
func TestLongNameChecksum(t *testing.T) {
	img := readImage(t, testimage.FAT(t, "CIDATA", 12, 1440, testimage.Files{"user-data": []byte("u")}))
	f, err := Open(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	l := layout{f: f, img: img}
	off := l.entryOffset(t, "USER-D~1   ")
	img[off-32+13] ^= 0xFF // the checksum in the long name entry before it
	if _, err := f.ReadFile("user-data", 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("long name with a bad checksum: %v, want fs.ErrNotExist", err)
	}
	if got, err := f.ReadFile("USER-D~1", 10); err != nil || string(got) != "u" {
		t.Errorf("short name: %q, %v", got, err)
	}
}

// FuzzReadFile feeds corrupted images to the reader: it must return data
// within the limit or an error, never panic or run away.
func FuzzReadFile(f *testing.F) {
	b := make([]byte, 64*1024)
	b[0], b[1], b[2] = 0xEB, 0x3C, 0x90
	binary.LittleEndian.PutUint16(b[11:], 512)
	b[13] = 1
	binary.LittleEndian.PutUint16(b[14:], 1)
	b[16] = 1
	binary.LittleEndian.PutUint16(b[17:], 16)
	binary.LittleEndian.PutUint16(b[19:], 128)
	binary.LittleEndian.PutUint16(b[22:], 1)
	b[510], b[511] = 0x55, 0xAA
	f.Add(b, 0, byte(0))
	f.Add(b, 11, byte(2))
	f.Fuzz(func(t *testing.T, img []byte, at int, v byte) {
		if at >= 0 && at < len(img) {
			img[at] = v
		}
		fsys, err := Open(bytes.NewReader(img))
		if err != nil {
			return
		}
		for _, p := range []string{"user-data", "openstack/latest/user_data"} {
			if data, err := fsys.ReadFile(p, 4096); err == nil && len(data) > 4096 {
				t.Fatalf("%s: %d bytes over the limit", p, len(data))
			}
		}
	})
}
