package authenticode

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestLoadSigner(t *testing.T) {
	k := testKeys()[0]
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := write("db.key", k.keyPEM, 0o600)
	cert := write("db.crt", k.certPEM, 0o644)
	s, err := LoadSigner(key, cert)
	if err != nil {
		t.Fatalf("LoadSigner: %v", err)
	}
	if !s.Certificate().Equal(k.cert) {
		t.Error("LoadSigner loaded another certificate")
	}

	fifo := filepath.Join(dir, "fifo.key")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, key, cert, want string
	}{
		{"key readable by the group", write("group.key", k.keyPEM, 0o640), cert, "mode 0640"},
		{"key readable by all", write("world.key", k.keyPEM, 0o644), cert, "chmod 600"},
		{"key is a directory", dir, cert, "not a regular file"},
		{"key is a named pipe", fifo, cert, "not a regular file"},
		{"key missing", filepath.Join(dir, "none.key"), cert, "no such file"},
		{"key too large", write("big.key", make([]byte, maxPEMSize+1), 0o600), cert, "larger than"},
		{"key is the certificate", write("cert-as.key", k.certPEM, 0o600), cert, "CERTIFICATE"},
		{"certificate is the key", key, write("key-as.crt", k.keyPEM, 0o600), "certificate"},
		{"certificate missing", key, filepath.Join(dir, "none.crt"), "no such file"},
	}
	if os.Geteuid() == 0 {
		other := write("other.key", k.keyPEM, 0o600)
		if err := os.Chown(other, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct{ name, key, cert, want string }{"key of another user", other, cert, "belongs to uid 4242"})
	}
	for _, tt := range tests {
		done := make(chan error, 1)
		go func() { _, err := LoadSigner(tt.key, tt.cert); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("%s: LoadSigner = %v, want an error about %q", tt.name, err, tt.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: LoadSigner hangs", tt.name)
		}
	}
}
