package iso9660

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

// TestGenisoimage reads images made by genisoimage with each naming
// scheme: Rock Ridge (with and without Joliet), Joliet alone, and plain
// ISO 9660 names.
func TestGenisoimage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 100_000) // spans many blocks
	for i := range big {
		big[i] = byte(rng.UintN(256))
	}
	long := strings.Repeat("n", 200) // a Rock Ridge name long enough to need a continuation area
	files := testimage.Files{
		"openstack/latest/user_data":      []byte("apiVersion: nodebake.io/v1alpha1\n"),
		"openstack/latest/meta_data.json": []byte(`{"uuid": "x"}`),
		"openstack/2012-08-10/user_data":  []byte("old"),
		"user-data":                       []byte("#cloud-config\n"),
		"big.bin":                         big,
	}
	for i := range 150 { // more records than fit in one 2048-byte sector
		files[fmt.Sprintf("many/file-%03d.txt", i)] = []byte(fmt.Sprint(i))
	}
	tests := []struct {
		name  string
		flags []string
		want  naming
		paths map[string][]byte
	}{
		{"rock ridge and joliet", []string{"-J", "-r"}, rockRidgeNames, map[string][]byte{
			"openstack/latest/user_data": files["openstack/latest/user_data"],
			"user-data":                  files["user-data"],
			"big.bin":                    big,
			"many/file-149.txt":          []byte("149"),
		}},
		{"rock ridge", []string{"-r"}, rockRidgeNames, map[string][]byte{
			"openstack/2012-08-10/user_data": []byte("old"),
			"user-data":                      files["user-data"],
		}},
		{"joliet", []string{"-J"}, jolietNames, map[string][]byte{
			"openstack/latest/user_data":      files["openstack/latest/user_data"],
			"openstack/latest/meta_data.json": files["openstack/latest/meta_data.json"],
			"user-data":                       files["user-data"],
			"many/file-000.txt":               []byte("0"),
		}},
		{"plain", []string{"-l"}, plainNames, map[string][]byte{
			"big.bin": big,
			"BIG.BIN": big,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := readImage(t, testimage.ISO(t, "config-2", files, tt.flags...))
			f, err := Open(bytes.NewReader(img))
			if err != nil {
				t.Fatal(err)
			}
			if f.names != tt.want {
				t.Errorf("naming = %d, want %d", f.names, tt.want)
			}
			for p, want := range tt.paths {
				got, err := f.ReadFile(p, 1<<20)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("ReadFile(%q) = %d bytes, %v; want %d bytes", p, len(got), err, len(want))
				}
			}
			if _, err := f.ReadFile("openstack/latest/vendor_data.json", 1<<20); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("missing file: %v, want fs.ErrNotExist", err)
			}
			if _, err := f.ReadFile("big.bin/x", 1<<20); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("path through a file: %v, want fs.ErrNotExist", err)
			}
			if _, err := f.ReadFile("big.bin", 99_999); !errors.Is(err, ErrTooLarge) {
				t.Errorf("over the limit: %v, want ErrTooLarge", err)
			}
			if _, err := f.ReadFile("many", 1<<20); err == nil || !strings.Contains(err.Error(), "directory") {
				t.Errorf("a directory: %v, want an error", err)
			}
			if _, err := f.ReadFile("../big.bin", 1<<20); err == nil {
				t.Error("a path with ..: no error")
			}
		})
	}

	t.Run("long rock ridge name", func(t *testing.T) {
		img := readImage(t, testimage.ISO(t, "cidata", testimage.Files{long: []byte("long")}, "-r"))
		f, err := Open(bytes.NewReader(img))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := f.ReadFile(long, 100); err != nil || string(got) != "long" {
			t.Errorf("ReadFile(200-character name) = %q, %v", got, err)
		}
		if _, err := f.ReadFile(long[:199], 100); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("prefix of a long name: %v, want fs.ErrNotExist", err)
		}
	})

	t.Run("truncated image", func(t *testing.T) {
		img := readImage(t, testimage.ISO(t, "cidata", testimage.Files{"big.bin": big}, "-r", "-no-pad"))
		f, err := Open(bytes.NewReader(img[:len(img)-60_000]))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.ReadFile("big.bin", 1<<20); !errors.Is(err, ErrCorrupt) {
			t.Errorf("file past the end: %v, want ErrCorrupt", err)
		}
	})
}

func TestOpenNotISO(t *testing.T) {
	for name, img := range map[string][]byte{
		"empty": nil,
		"zeros": make([]byte, 40*2048),
		"fat":   append([]byte{0xEB, 0x3C, 0x90}, make([]byte, 40*2048)...),
	} {
		if _, err := Open(bytes.NewReader(img)); !errors.Is(err, ErrNotISO9660) {
			t.Errorf("%s: %v, want ErrNotISO9660", name, err)
		}
	}
}

// builder makes hand-written ISO 9660 images for the hostile cases:
// block 16 holds the primary volume descriptor, 17 the terminator, 18 the
// root directory and later blocks whatever the test puts there.
type builder struct {
	img []byte
}

func newBuilder(blocks int) *builder {
	b := &builder{img: make([]byte, blocks*2048)}
	pvd := b.block(16)
	pvd[0] = 1
	copy(pvd[1:], "CD001")
	pvd[6] = 1
	putBoth32(pvd[80:], uint32(blocks))
	putBoth16(pvd[128:], 2048)
	term := b.block(17)
	term[0] = 255
	copy(term[1:], "CD001")
	term[6] = 1
	return b
}

func (b *builder) block(n int) []byte { return b.img[n*2048 : (n+1)*2048] }

// root sets the root directory record to a directory of size bytes at
// block 18.
func (b *builder) root(size uint32) {
	copy(b.block(16)[156:], rec("\x00", 18, size, 0x02, nil))
}

func putBoth16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

func putBoth32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

// rec encodes a directory record.
func rec(name string, extent, size uint32, flags byte, su []byte) []byte {
	n := 33 + len(name)
	if len(name)%2 == 0 {
		n++
	}
	r := make([]byte, n+len(su))
	r[0] = byte(len(r))
	putBoth32(r[2:], extent)
	putBoth32(r[10:], size)
	r[25] = flags
	r[32] = byte(len(name))
	copy(r[33:], name)
	copy(r[n:], su)
	return r
}

func sp() []byte { return []byte{'S', 'P', 7, 1, 0xBE, 0xEF, 0} }

func nm(name string) []byte {
	return append([]byte{'N', 'M', byte(5 + len(name)), 1, 0}, name...)
}

func ce(block, off, n uint32) []byte {
	e := make([]byte, 28)
	copy(e, "CE")
	e[2], e[3] = 28, 1
	putBoth32(e[4:], block)
	putBoth32(e[12:], off)
	putBoth32(e[20:], n)
	return e
}

// dir writes records into block n.
func (b *builder) dir(n int, recs ...[]byte) {
	copy(b.block(n), bytes.Join(recs, nil))
}

func TestHostile(t *testing.T) {
	tests := []struct {
		name  string
		build func() []byte
		path  string
		want  error  // for errors.Is
		msg   string // in the message
	}{
		{"continuation loop", func() []byte {
			b := newBuilder(24)
			b.root(2048)
			b.dir(18, rec("\x00", 18, 2048, 2, sp()), rec("\x01", 18, 2048, 2, nil),
				rec("X.;1", 20, 1, 0, ce(19, 0, 28)))
			copy(b.block(19), ce(19, 0, 28)) // points at itself
			return b.img
		}, "x", ErrCorrupt, "continuation"},
		{"continuation outside its block", func() []byte {
			b := newBuilder(24)
			b.root(2048)
			b.dir(18, rec("\x00", 18, 2048, 2, sp()), rec("X.;1", 20, 1, 0, ce(19, 2040, 28)))
			return b.img
		}, "x", ErrCorrupt, "CE entry"},
		{"name of NM entries too long", func() []byte {
			b := newBuilder(24)
			b.root(2048)
			var su []byte
			for range 6 {
				su = append(su, nm(strings.Repeat("a", 200))...)
			}
			b.dir(18, rec("\x00", 18, 2048, 2, sp()), rec("X.;1", 20, 1, 0, ce(19, 0, uint32(len(su)))))
			copy(b.block(19), su)
			copy(b.block(19)[len(su):], ce(19, 0, uint32(len(su)))) // and more, and more
			return b.img
		}, "x", ErrCorrupt, "longer than"},
		{"system use entry overruns its area", func() []byte {
			b := newBuilder(24)
			b.root(2048)
			b.dir(18, rec("\x00", 18, 2048, 2, sp()), rec("X.;1", 20, 1, 0, []byte{'N', 'M', 200, 1, 0, 'x'}))
			return b.img
		}, "x", ErrCorrupt, "system use entry"},
		{"record crosses a sector", func() []byte {
			b := newBuilder(24)
			b.root(4096)
			pad := rec("P.;1", 20, 1, 0, make([]byte, 200))
			var recs [][]byte
			recs = append(recs, rec("\x00", 18, 4096, 2, nil))
			for range 9 {
				recs = append(recs, pad)
			}
			b.dir(18, recs...)
			return b.img
		}, "x", ErrCorrupt, "directory record"},
		{"directory too large", func() []byte {
			b := newBuilder(24)
			b.root(MaxDirSize + 2048)
			return b.img
		}, "x", ErrCorrupt, "outside the volume"},
		{"extent outside the volume", func() []byte {
			b := newBuilder(24)
			b.root(2048)
			b.dir(18, rec("\x00", 18, 2048, 2, nil), rec("X.;1", 1000, 10, 0, nil))
			return b.img
		}, "x", ErrCorrupt, "outside the volume"},
		{"size runs past the volume", func() []byte {
			b := newBuilder(24)
			b.root(2048)
			b.dir(18, rec("\x00", 18, 2048, 2, nil), rec("X.;1", 20, 5*2048, 0, nil))
			return b.img
		}, "x", ErrCorrupt, "outside the volume"},
		{"both-endian fields disagree", func() []byte {
			b := newBuilder(24)
			b.root(2048)
			r := rec("X.;1", 20, 10, 0, nil)
			binary.BigEndian.PutUint32(r[14:], 11)
			b.dir(18, rec("\x00", 18, 2048, 2, nil), r)
			return b.img
		}, "x", ErrCorrupt, "disagrees"},
		{"interleaved file", func() []byte {
			b := newBuilder(24)
			b.root(2048)
			r := rec("X.;1", 20, 10, 0, nil)
			r[26] = 1
			b.dir(18, rec("\x00", 18, 2048, 2, nil), r)
			return b.img
		}, "x", ErrCorrupt, "interleaved"},
		{"name overruns its record", func() []byte {
			b := newBuilder(24)
			b.root(2048)
			r := rec("X.;1", 20, 10, 0, nil)
			r[32] = 100
			b.dir(18, rec("\x00", 18, 2048, 2, nil), r)
			return b.img
		}, "x", ErrCorrupt, "overruns"},
		{"relocated directory is hidden", func() []byte {
			b := newBuilder(24)
			b.root(2048)
			re := []byte{'R', 'E', 4, 1}
			b.dir(18, rec("\x00", 18, 2048, 2, sp()), rec("X.;1", 20, 1, 0, append(nm("x"), re...)))
			return b.img
		}, "x", fs.ErrNotExist, "file does not exist"},
		{"multi-extent file", func() []byte {
			b := newBuilder(24)
			b.root(2048)
			b.dir(18, rec("\x00", 18, 2048, 2, nil), rec("X.;1", 20, 10, 0x80, nil))
			return b.img
		}, "x", ErrTooLarge, "multi-extent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := tt.build()
			var err error
			f, err := Open(bytes.NewReader(img))
			if err == nil {
				_, err = f.ReadFile(tt.path, 1<<20)
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("got %v, want %v mentioning %q", err, tt.want, tt.msg)
			}
		})
	}
}

// TestBuilderSanity checks that the hand-written images are read when
// nothing is wrong with them, so that TestHostile's errors come from the
// defect each case plants.
func TestBuilderSanity(t *testing.T) {
	b := newBuilder(24)
	b.root(2048)
	b.dir(18, rec("\x00", 18, 2048, 2, sp()), rec("\x01", 18, 2048, 2, nil),
		rec("X.;1", 20, 5, 0, ce(19, 0, uint32(len(nm("x-name"))))), rec("Y.;1", 21, 3, 0, nil))
	copy(b.block(19), nm("x-name"))
	copy(b.block(20), "hello")
	copy(b.block(21), "bye")
	f, err := Open(bytes.NewReader(b.img))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := f.ReadFile("x-name", 10); err != nil || string(got) != "hello" {
		t.Errorf("name from a continuation area: %q, %v", got, err)
	}
	if got, err := f.ReadFile("y", 10); err != nil || string(got) != "bye" {
		t.Errorf("record without Rock Ridge name: %q, %v", got, err)
	}
}

// FuzzReadFile feeds corrupted images to the reader: it must return (data
// within the limit, or an error), never panic or run away.
func FuzzReadFile(f *testing.F) {
	b := newBuilder(24)
	b.root(2048)
	b.dir(18, rec("\x00", 18, 2048, 2, sp()), rec("X.;1", 20, 5, 0, ce(19, 0, 7)))
	copy(b.block(19), nm("x"))
	f.Add(b.img, 0, byte(0))
	f.Add(b.img, 18*2048+40, byte(0xFF))
	f.Fuzz(func(t *testing.T, img []byte, at int, v byte) {
		if at >= 0 && at < len(img) {
			img[at] = v
		}
		fsys, err := Open(bytes.NewReader(img))
		if err != nil {
			return
		}
		for _, p := range []string{"x", "openstack/latest/user_data", "user-data"} {
			if data, err := fsys.ReadFile(p, 4096); err == nil && len(data) > 4096 {
				t.Fatalf("%s: %d bytes over the limit", p, len(data))
			}
		}
	})
}
