package cmdline

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func TestGet(t *testing.T) {
	tests := []struct {
		in, name string
		want     string
		ok       bool
	}{
		{"root=/dev/vda ro nodebake.platform=ec2 quiet", "nodebake.platform", "ec2", true},
		{"nodebake.platform=ec2 nodebake.platform=gce", "nodebake.platform", "gce", true},
		{`nodebake.url="https://h/a b" x`, "nodebake.url", "https://h/a b", true},
		{"nodebake.platform", "nodebake.platform", "", false},
		{"nodebake.platform=", "nodebake.platform", "", true},
		{"xnodebake.platform=ec2", "nodebake.platform", "", false},
		{"ro -- nodebake.platform=ec2", "nodebake.platform", "", false},
		{"ro\tnodebake.timeout=30s\n", "nodebake.timeout", "30s", true},
		{"", "nodebake.platform", "", false},
	}
	for _, tt := range tests {
		got, ok := Parse(tt.in).Get(tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Parse(%q).Get(%q) = %q, %v; want %q, %v", tt.in, tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestFields(t *testing.T) {
	got := Parse(`a "b c"d  e -- f`).Fields()
	if want := []string{"a", "b cd", "e"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Fields = %q, want %q", got, want)
	}
}

func TestRead(t *testing.T) {
	root := t.TempDir()
	p, err := Read(root)
	if err != nil || len(p.Fields()) != 0 {
		t.Fatalf("missing file: %v, %v; want an empty command line", p.Fields(), err)
	}
	if err := os.MkdirAll(filepath.Join(root, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		if err := os.WriteFile(filepath.Join(root, Path), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("console=ttyS0 nodebake.platform=azure\n")
	p, err = Read(root)
	if v, _ := p.Get("nodebake.platform"); err != nil || v != "azure" {
		t.Errorf("Read: %q, %v", v, err)
	}
	write(strings.Repeat("x", MaxSize+1))
	if _, err := Read(root); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("oversized command line: %v, want an error", err)
	}
}

// A named pipe in place of the command line is refused at once, not read
// (opening it for reading would block until a writer came).
func TestReadNotRegular(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "proc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, Path), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(root); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("named pipe: %v, want not a regular file", err)
	}
	if err := os.Remove(filepath.Join(root, Path)); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, Path), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(root); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v, want not a regular file", err)
	}
}
