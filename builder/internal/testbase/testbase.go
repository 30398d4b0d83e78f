// Package testbase gives tests real files of the project's Debian base: the
// root filesystem tar that scripts/build-base.sh writes to
// build/base/<suite>-<arch>.tar (systemd's EFI stub and systemd-boot, the
// kernel, the initrd, os-release). Tests that check nodebake's output
// against these real inputs use it; when the tar has not been built they
// are skipped, except under NODEBAKE_SLOW=1 (make test-slow builds the base
// first), where a missing base is a failure.
package testbase

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// EnvTar names a base tar to use instead of the default.
const EnvTar = "NODEBAKE_BASE_TAR"

// DefaultTar is the base tar relative to the repository root.
const DefaultTar = "build/base/trixie-amd64.tar"

// Well-known paths in the base.
const (
	StubAMD64       = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub"
	SystemdBootX64  = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	KernelPattern   = "/boot/vmlinuz-*"
	InitrdPattern   = "/boot/initrd.img-*"
	OSRelease       = "/usr/lib/os-release"
	maxFileSize     = 1 << 30
	maxTarEntryName = 4096
)

// File is one regular file found in the base.
type File struct {
	Path string // absolute path in the base
	Data []byte
}

// tarPath returns the base tar's path, or "" when there is none.
func tarPath(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvTar); p != "" {
		return p
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, DefaultTar)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Find returns, for each pattern (an absolute path, possibly with
// path.Match wildcards), the single regular file of the base it matches.
// It skips the test when the base tar does not exist (fails under
// NODEBAKE_SLOW=1), and fails it when a pattern matches no file or more
// than one.
func Find(t testing.TB, patterns ...string) []File {
	t.Helper()
	p := tarPath(t)
	f, err := os.Open(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || p == "" {
			if os.Getenv("NODEBAKE_SLOW") == "1" {
				t.Fatalf("the base root filesystem %s is missing (scripts/build-base.sh; or set %s)", p, EnvTar)
			}
			t.Skipf("the base root filesystem %s is missing (scripts/build-base.sh builds it; or set %s)", p, EnvTar)
		}
		t.Fatal(err)
	}
	defer f.Close()
	found := make([][]File, len(patterns))
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", p, err)
		}
		if h.Typeflag != tar.TypeReg || len(h.Name) > maxTarEntryName {
			continue
		}
		name := "/" + strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		for i, pat := range patterns {
			if ok, _ := path.Match(pat, name); !ok {
				continue
			}
			if h.Size > maxFileSize {
				t.Fatalf("%s in %s is %d bytes, more than %d", name, p, h.Size, maxFileSize)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("reading %s from %s: %v", name, p, err)
			}
			found[i] = append(found[i], File{Path: name, Data: data})
			break
		}
	}
	out := make([]File, len(patterns))
	for i, fs := range found {
		if len(fs) != 1 {
			t.Fatalf("%s: %d regular files in %s match %s, want exactly one", t.Name(), len(fs), p, patterns[i])
		}
		out[i] = fs[0]
	}
	return out
}
