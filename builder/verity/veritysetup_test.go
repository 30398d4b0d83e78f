package verity

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/google/uuid"
)

// requireTool returns the path of a program, skipping the test when it is
// missing, or failing it when NODEBAKE_REQUIRE_TOOLS=1.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("NODEBAKE_REQUIRE_TOOLS") == "1" {
			t.Fatalf("%s is required (NODEBAKE_REQUIRE_TOOLS=1): %v", name, err)
		}
		t.Skipf("%s is not installed (Debian package cryptsetup-bin): %v", name, err)
	}
	return p
}

// writeRandomFile writes n random blocks to path.
func writeRandomFile(t testing.TB, path string, n int, rng *rand.Rand) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	block := make([]byte, BlockSize)
	for range n {
		for i := 0; i < BlockSize; i += 8 {
			v := rng.Uint64()
			for k := range 8 {
				block[i+k] = byte(v >> (8 * k))
			}
		}
		w.Write(block)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

var rootHashLine = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]{64})$`)

// veritysetupFormat runs veritysetup format and returns the root hash it
// printed.
func veritysetupFormat(t testing.TB, bin, data, hash string, salt []byte, id uuid.UUID) string {
	t.Helper()
	saltArg := hex.EncodeToString(salt)
	if len(salt) == 0 {
		saltArg = "-"
	}
	out, err := exec.Command(bin, "format", data, hash, "--salt="+saltArg, "--uuid="+id.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup format: %v\n%s", err, out)
	}
	m := rootHashLine.FindSubmatch(out)
	if m == nil {
		t.Fatalf("veritysetup format printed no root hash:\n%s", out)
	}
	return string(m[1])
}

// TestVeritysetup compares Format with veritysetup format on random data:
// the same root hash and a byte-identical hash device; then veritysetup
// verify accepts our hash device, also when it sits at an offset inside a
// larger file, and refuses it once a data byte is changed.
func TestVeritysetup(t *testing.T) {
	bin := requireTool(t, "veritysetup")
	rng := rand.New(rand.NewPCG(7, 11))
	sizes := []int{1, 2, 128, 129, 16385, 1 + rng.IntN(3000), 16386 + rng.IntN(5000)}
	for i, n := range sizes {
		t.Run(fmt.Sprintf("%d blocks", n), func(t *testing.T) {
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			writeRandomFile(t, data, n, rng)
			salt := make([]byte, []int{32, 0, 256, 1, 32, 17, 64}[i%7])
			for k := range salt {
				salt[k] = byte(rng.Uint32())
			}
			var id uuid.UUID
			for k := range id {
				id[k] = byte(rng.Uint32())
			}
			id[6], id[8] = id[6]&0x0f|0x40, id[8]&0x3f|0x80
			p := Params{Salt: salt, UUID: id}

			wantRoot := veritysetupFormat(t, bin, data, filepath.Join(dir, "hash.ref"), salt, id)
			want, err := os.ReadFile(filepath.Join(dir, "hash.ref"))
			if err != nil {
				t.Fatal(err)
			}

			f, err := os.Open(data)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			fi, _ := f.Stat()
			const off = 1 << 20
			out, err := os.Create(filepath.Join(dir, "hash.ours"))
			if err != nil {
				t.Fatal(err)
			}
			defer out.Close()
			tree, err := Format(context.Background(), f, fi.Size(), out, off, p)
			if err != nil {
				t.Fatal(err)
			}
			if tree.RootHashHex() != wantRoot {
				t.Errorf("root hash %s, veritysetup says %s", tree.RootHashHex(), wantRoot)
			}
			got, err := os.ReadFile(out.Name())
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got[off:], want) {
				t.Errorf("hash device (%d bytes) differs from veritysetup's (%d bytes)", len(got)-off, len(want))
			}
			if tree.HashSize != int64(len(want)) {
				t.Errorf("HashSize %d, veritysetup wrote %d bytes", tree.HashSize, len(want))
			}

			verify := func() ([]byte, error) {
				return exec.Command(bin, "verify", data, out.Name(), tree.RootHashHex(), "--hash-offset="+strconv.Itoa(off)).CombinedOutput()
			}
			if b, err := verify(); err != nil {
				t.Fatalf("veritysetup verify refused our hash device: %v\n%s", err, b)
			}
			// The check above must be able to fail: change one data byte.
			pos := rng.Int64N(fi.Size())
			buf := []byte{0}
			f.ReadAt(buf, pos)
			df, err := os.OpenFile(data, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			df.WriteAt([]byte{buf[0] ^ 0x01}, pos)
			df.Close()
			if b, err := verify(); err == nil {
				t.Errorf("veritysetup verify accepted the data after byte %d changed:\n%s", pos, b)
			}
		})
	}
}
