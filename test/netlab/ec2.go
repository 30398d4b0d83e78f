package netlab

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodebake/nodebake/test/harness"
)

// ServeEC2Metadata runs the real amazon-ec2-metadata-mock (built once from
// the Go module proxy, harness.EC2MetadataMock) inside the lab at
// MetadataAddr:80, with IMDSv2 required and userData as the instance's
// user data, until the test ends. A guest with EC2's firmware strings
// (qemu.EC2Identity) gets its node config from it at first boot.
func (l *Lab) ServeEC2Metadata(t testing.TB, userData []byte) {
	t.Helper()
	mock := harness.EC2MetadataMock(t)
	dir := t.TempDir()
	cfg, err := json.Marshal(map[string]any{
		"userdata": map[string]any{"values": map[string]string{"userdata": base64.StdEncoding.EncodeToString(userData)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "aemm-config.json")
	if err := os.WriteFile(cfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := l.Command(ctx, mock, "-I", "-n", MetadataAddr, "-p", "80", "-c", cfgPath)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir) // it also reads $HOME/aemm-config.json
	cmd.Stdout, cmd.Stderr = harness.LogWriter(t, "ec2-metadata-mock: "), harness.LogWriter(t, "ec2-metadata-mock: ")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := l.Do(func() error {
			c, err := net.DialTimeout("tcp", MetadataAddr+":80", time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("netlab: the EC2 metadata mock did not listen in the lab within 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
