package gosource

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGo writes a go command that answers what Build asks: `mod download`
// with an upstream go.mod, `list -deps` with the packages, and `build -v`
// by naming the packages it compiles in three bursts (with a pause after
// each), a warning among them, then writing the binary.
func fakeGo(t *testing.T, deps, compiled []string) string {
	t.Helper()
	dir := t.TempDir()
	gomod := filepath.Join(dir, "upstream.go.mod")
	if err := os.WriteFile(gomod, []byte("module example.com/tool\n\ngo 1.24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	third := len(compiled) / 3
	burst := func(pkgs []string) string {
		return "printf '%s\\n' " + strings.Join(pkgs, " ") + " >&2; sleep 0.3\n"
	}
	script := `#!/bin/sh
case "$1" in
mod) printf '{"GoMod": "%s"}\n' "` + gomod + `" ;;
list) printf '%s\n' ` + strings.Join(deps, " ") + ` ;;
build)
	out=
	while [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done
	echo "go: downloading example.com/dep v1.0.0" >&2
	` + burst(compiled[:third]) + `	echo "# example.com/tool/internal" >&2
	echo "internal/x.go:1:2: warning: something" >&2
	` + burst(compiled[third:2*third]) + `	` + burst(compiled[2*third:]) + `	echo binary > "$out" ;;
*) echo "fake go: unexpected $*" >&2; exit 2 ;;
esac
`
	p := filepath.Join(dir, "go")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// syncBuffer is a log safe for the builder's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestBuildReportsProgress(t *testing.T) {
	var deps, compiled []string
	for i := range 300 {
		p := "example.com/tool/pkg" + string(rune('a'+i%26)) + "/n" + strings.Repeat("x", i%7) + string(rune('0'+i%10))
		p += "/" + strings.Repeat("y", i/26)
		deps = append(deps, p)
		if i%2 == 0 {
			compiled = append(compiled, p)
		}
	}
	var log syncBuffer
	var mu sync.Mutex
	var reports []Progress
	b := Builder{
		Go:  fakeGo(t, deps, compiled),
		Log: &log,
		Progress: func(p Progress) {
			mu.Lock()
			reports = append(reports, p)
			mu.Unlock()
		},
		ProgressInterval: 100 * time.Millisecond,
	}
	r := Recipe{Component: "tool", Module: "example.com/tool", Binaries: []Binary{{Name: "tool", Package: "example.com/tool/cmd/tool"}},
		LDFlags: func(string) []string { return nil }}
	out := t.TempDir()
	if err := b.Build(t.Context(), r, "v1.0.0", "amd64", out); err != nil {
		t.Fatalf("Build: %v (log %s)", err, log.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) < 2 {
		t.Fatalf("reports = %+v, want some while building and one at the end", reports)
	}
	last := reports[len(reports)-1]
	// A steady pace, not one line per package: at most one report per
	// interval, and the last.
	if max := int(last.Elapsed/b.ProgressInterval) + 1; len(reports) > max {
		t.Errorf("%d reports in %s at one per %s: more than %d", len(reports), last.Elapsed, b.ProgressInterval, max)
	}
	if !last.Done || last.Compiled != len(compiled) || last.Total != len(deps) || last.Component != "tool" || last.Version != "v1.0.0" {
		t.Errorf("last report = %+v, want Done with %d/%d packages", last, len(compiled), len(deps))
	}
	for i, p := range reports[:len(reports)-1] {
		if p.Done {
			t.Errorf("report %d says Done before the end", i)
		}
		if i > 0 && (p.Compiled < reports[i-1].Compiled || p.Elapsed < reports[i-1].Elapsed) {
			t.Errorf("report %d goes backwards: %+v after %+v", i, p, reports[i-1])
		}
	}
	var interim bool
	for _, p := range reports {
		if !p.Done && p.Compiled > 0 && p.Compiled < len(compiled) {
			interim = true
			if want := "building tool v1.0.0: "; !strings.HasPrefix(p.String(), want) || !strings.Contains(p.String(), " packages compiled, ") {
				t.Errorf("report %q", p)
			}
		}
	}
	if !interim {
		t.Errorf("no report while packages were being compiled: %+v", reports)
	}
	// The log keeps what the toolchain says, without the package names.
	l := log.String()
	for _, want := range []string{"go: downloading example.com/dep", "# example.com/tool/internal", "warning: something"} {
		if !strings.Contains(l, want) {
			t.Errorf("the log lacks %q:\n%s", want, l)
		}
	}
	if strings.Contains(l, compiled[0]+"\n") {
		t.Errorf("the log lists compiled packages:\n%s", l)
	}
	if b, err := os.ReadFile(filepath.Join(out, "tool")); err != nil || string(b) != "binary\n" {
		t.Errorf("binary = %q, %v", b, err)
	}
}

func TestProgressString(t *testing.T) {
	for _, tc := range []struct {
		p    Progress
		want string
	}{
		{Progress{Component: "kubelet", Version: "v1.35.4", Elapsed: 12 * time.Second}, "building kubelet v1.35.4: resolving modules, 12s"},
		{Progress{Component: "kubelet", Version: "v1.35.4", Compiled: 812, Total: 1403, Elapsed: 130 * time.Second}, "building kubelet v1.35.4: 812/1403 packages compiled, 2m10s"},
		{Progress{Component: "kubelet", Version: "v1.35.4", Compiled: 812, Total: 1403, Elapsed: 290 * time.Second, Done: true}, "built kubelet v1.35.4 in 4m50s (812 of 1403 packages compiled)"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestIsImportPath(t *testing.T) {
	for s, want := range map[string]bool{
		"k8s.io/kubernetes/pkg/kubelet":       true,
		"runtime/cgo":                         true,
		"fmt":                                 true,
		"# k8s.io/kubernetes/pkg/kubelet":     false,
		"pkg/kubelet/x.go:12:3: undefined: y": false,
		"go: downloading k8s.io/api v0.35.4":  false,
		"":                                    false,
		"-ldflags":                            false,
		"/usr/bin/ld: warning: something went wrong": false,
	} {
		if got := isImportPath(s); got != want {
			t.Errorf("isImportPath(%q) = %v, want %v", s, got, want)
		}
	}
}
