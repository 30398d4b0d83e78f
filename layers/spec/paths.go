package spec

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nodebake/nodebake/layers/firstboot"
)

// Limits of paths in the image (Linux's).
const (
	maxPathLen = 4095
	maxNameLen = 255
)

// pathProblem says what is wrong with a path in the image (files[].path):
// it must be absolute and clean, without "..", no longer than Linux
// allows, and made of printable characters only. "" means nothing.
func pathProblem(p string) string {
	switch {
	case p == "":
		return "required"
	case !utf8.ValidString(p):
		return fmt.Sprintf("%q is not valid UTF-8", p)
	}
	if bad := hostileRune(p); bad != "" {
		return fmt.Sprintf("%q contains %s", p, bad)
	}
	switch {
	case !path.IsAbs(p):
		return fmt.Sprintf("%q is not an absolute path", p)
	case p == "/":
		return "must not be /"
	case strings.Contains("/"+p+"/", "/../"):
		return fmt.Sprintf("%q must not contain ..", p)
	case path.Clean(p) != p:
		return fmt.Sprintf("%q is not clean (want %s)", p, path.Clean(p))
	case len(p) > maxPathLen:
		return fmt.Sprintf("is %d bytes long; Linux allows at most %d", len(p), maxPathLen)
	}
	for _, name := range strings.Split(p[1:], "/") {
		if len(name) > maxNameLen {
			return fmt.Sprintf("has a name of %d bytes; Linux allows at most %d", len(name), maxNameLen)
		}
	}
	return ""
}

// hostileRune names the first character of s that has no place in a path
// or a name meant for people and config files: control characters (line
// breaks split the systemd and sysctl files that name paths), invisible
// formatting characters (bidirectional overrides hide what a name says),
// and spaces other than U+0020. "" means none.
func hostileRune(s string) string {
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			return "an invalid UTF-8 sequence"
		case unicode.IsControl(r):
			return fmt.Sprintf("the control character %U", r)
		case unicode.Is(unicode.Cf, r):
			return fmt.Sprintf("the invisible formatting character %U", r)
		case unicode.IsSpace(r) && r != ' ':
			return fmt.Sprintf("the space character %U", r)
		case !unicode.IsGraphic(r) && r != ' ':
			return fmt.Sprintf("the unprintable character %U", r)
		}
	}
	return ""
}

// linkProblem says what is wrong with a symlink's target.
func linkProblem(target string) string {
	switch {
	case !utf8.ValidString(target):
		return fmt.Sprintf("%q is not valid UTF-8", target)
	case len(target) > maxPathLen:
		return fmt.Sprintf("is %d bytes long; Linux allows at most %d", len(target), maxPathLen)
	}
	if bad := hostileRune(target); bad != "" {
		return fmt.Sprintf("%q contains %s", target, bad)
	}
	return ""
}

// sourceDir is the directory files[].source must stay inside: the spec's
// directory, else the working directory.
func (s *Spec) sourceDir() (string, error) {
	if s.Dir != "" {
		return s.Dir, nil
	}
	return os.Getwd()
}

// resolveSource resolves files[].source to the file it names, following
// symbolic links, and checks that it lies inside the spec's directory.
func (s *Spec) resolveSource(src string) (string, error) {
	if !utf8.ValidString(src) {
		return "", fmt.Errorf("%q is not valid UTF-8", src)
	}
	if bad := hostileRune(src); bad != "" {
		return "", fmt.Errorf("%q contains %s", src, bad)
	}
	dir, err := s.sourceDir()
	if err != nil {
		return "", fmt.Errorf("finding the spec's directory: %w", err)
	}
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("resolving the spec's directory: %w", err)
	}
	if !insideDir(s.ResolvePath(src), dir) {
		return "", fmt.Errorf("%s is outside the spec's directory %s", src, dir)
	}
	real, err := filepath.EvalSymlinks(s.ResolvePath(src))
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", src, err)
	}
	if !insideDir(real, realDir) {
		return "", fmt.Errorf("%s leads to %s, outside the spec's directory %s", src, real, realDir)
	}
	return real, nil
}

// insideDir reports whether the clean absolute path p is inside dir.
func insideDir(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// firstbootProblem says why a files entry cannot be at p (clean and
// absolute): the first-boot program writes there at every boot (see
// firstboot.OwnedFiles and OwnedDirs, with the names it stages them
// under), or p is a directory above such a file and the entry is not a
// directory (a file or symlink there would break, or redirect, first
// boot's writes). "" means nothing.
func firstbootProblem(p string, directory bool) string {
	if firstboot.Owns(p) {
		return fmt.Sprintf("%s is written by the first-boot program at every boot", p)
	}
	for _, d := range firstboot.OwnedDirs() {
		if p == d {
			return fmt.Sprintf("%s is the first-boot program's own directory", p)
		}
		if under(p, d) {
			return fmt.Sprintf("%s is inside %s, which the first-boot program owns", p, d)
		}
		if under(d, p) && !directory {
			return fmt.Sprintf("%s holds %s, which the first-boot program writes to; only a directory may be there", p, d)
		}
	}
	if directory {
		return ""
	}
	for _, f := range firstboot.OwnedFiles() {
		if under(f, p) {
			return fmt.Sprintf("%s holds %s, which the first-boot program writes; only a directory may be there", p, f)
		}
	}
	return ""
}

// under reports whether p is d or inside it.
func under(p, d string) bool {
	return p == d || strings.HasPrefix(p, strings.TrimSuffix(d, "/")+"/")
}
