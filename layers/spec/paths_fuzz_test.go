package spec

import (
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/nodebake/nodebake/layers/firstboot"
)

// FuzzPathProblem: whatever the input, a path pathProblem accepts is
// absolute, clean, without "..", of valid UTF-8 with only printable
// characters (U+0020 the only space), and within Linux's limits; and
// firstbootProblem refuses every path the first-boot program owns.
func FuzzPathProblem(f *testing.F) {
	for _, s := range []string{"/etc/motd", "/etc/a\nb", "/etc/\u202e", "/a/../b", "//x", "/x/", "rel", "/", "",
		"/etc/a\u00a0b", "/etc/\xff", "/run/nodebake/node-ready", "/var/lib/kubernetes/x", "/var/lib/kubelet/.kubeconfig.nodebake-new",
		"/" + strings.Repeat("a", 300)} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, p string, directory bool) {
		if pathProblem(p) != "" {
			return
		}
		switch {
		case !path.IsAbs(p) || path.Clean(p) != p || p == "/":
			t.Fatalf("accepted %q: not absolute and clean", p)
		case strings.Contains(p+"/", "/../"):
			t.Fatalf("accepted %q with ..", p)
		case !utf8.ValidString(p) || len(p) > maxPathLen:
			t.Fatalf("accepted %q: invalid UTF-8 or too long", p)
		}
		for _, r := range p {
			if r != ' ' && (!unicode.IsGraphic(r) || unicode.IsSpace(r) || unicode.Is(unicode.Cf, r)) {
				t.Fatalf("accepted %q with %U", p, r)
			}
		}
		for _, name := range strings.Split(p[1:], "/") {
			if len(name) > maxNameLen {
				t.Fatalf("accepted %q with a name of %d bytes", p, len(name))
			}
		}
		if firstboot.Owns(p) && firstbootProblem(p, directory) == "" {
			t.Fatalf("%q is first boot's, and firstbootProblem lets it be", p)
		}
		for _, d := range firstboot.OwnedDirs() {
			if under(p, d) && firstbootProblem(p, directory) == "" {
				t.Fatalf("%q is in %s, and firstbootProblem lets it be", p, d)
			}
		}
	})
}

// FuzzResolveSource: whatever files[].source says, what resolveSource
// accepts is a path inside the spec's directory once every symbolic link
// is followed, in a directory with links that lead out.
func FuzzResolveSource(f *testing.F) {
	dir, outside := f.TempDir(), f.TempDir()
	must := func(err error) {
		if err != nil {
			f.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "sub", "in"), []byte("x"), 0o644))
	must(os.WriteFile(filepath.Join(outside, "out"), []byte("x"), 0o644))
	must(os.Symlink(outside, filepath.Join(dir, "sub", "away")))
	must(os.Symlink("../..", filepath.Join(dir, "sub", "up")))
	must(os.Symlink("in", filepath.Join(dir, "sub", "same")))
	must(os.Symlink(filepath.Join(outside, "out"), filepath.Join(dir, "abs")))
	for _, s := range []string{"sub/in", "sub/away/out", "sub/up/etc/passwd", "sub/same", "abs", "../x", "/etc/passwd", ".", "sub/../sub/in",
		filepath.Join(dir, "sub", "in"), filepath.Join(outside, "out"), "sub/up" + dir + "/sub/in"} {
		f.Add(s)
	}
	realDir, err := filepath.EvalSymlinks(dir)
	must(err)
	s := &Spec{Dir: dir}
	f.Fuzz(func(t *testing.T, src string) {
		real, err := s.resolveSource(src)
		if err != nil {
			return
		}
		if !insideDir(real, realDir) {
			t.Fatalf("resolveSource(%q) = %s, outside %s", src, real, realDir)
		}
		again, err := filepath.EvalSymlinks(real)
		if err != nil || again != real {
			t.Fatalf("resolveSource(%q) = %s, which still resolves to %s (%v)", src, real, again, err)
		}
	})
}
