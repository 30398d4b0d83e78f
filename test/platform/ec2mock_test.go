package platform

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot/platform"
	"github.com/nodebake/nodebake/test/harness"
)

// TestEC2MetadataMock runs the EC2 reader against the real
// amazon-ec2-metadata-mock with IMDSv2 required (-I): the same token
// dance, headers and answers that the unit tests' fake plays.
func TestEC2MetadataMock(t *testing.T) {
	harness.RequireSlow(t)
	mock := harness.EC2MetadataMock(t)
	nodeConfig := []byte("apiVersion: nodebake.io/v1alpha1\nkind: NodeConfig\nnodeName: worker01\n")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(nodeConfig)
	zw.Close()

	for _, tc := range []struct {
		name     string
		userData []byte
	}{
		{"plain", nodeConfig},
		{"gzip", gz.Bytes()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := startMock(t, mock, tc.userData)

			// The mock demands a token, so the reader's IMDSv2 path is
			// what gets the data.
			resp, err := http.Get(base + "/latest/user-data")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("GET without a token: %s, want 401 (IMDSv2 required)", resp.Status)
			}

			root := t.TempDir()
			dmi := filepath.Join(root, "sys", "class", "dmi", "id")
			if err := os.MkdirAll(dmi, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dmi, "sys_vendor"), []byte("Amazon EC2\n"), 0o444); err != nil {
				t.Fatal(err)
			}
			opts := platform.Options{Root: root, Endpoints: platform.Endpoints{EC2: base}, Timeout: 20 * time.Second, Log: harness.LogWriter(t, "platform: ")}
			start := time.Now()
			d, c, err := platform.Lookup(context.Background(), opts)
			elapsed := time.Since(start)
			if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			if d.Platform != platform.EC2 || c.Source != "ec2-imds user-data" || !bytes.Equal(c.Data, nodeConfig) {
				t.Fatalf("Lookup = %s, %q from %q; want the node config from ec2-imds user-data", d.Platform, c.Data, c.Source)
			}
			t.Logf("FIGURE ec2-metadata-mock %s: lookup %s", tc.name, elapsed.Round(time.Microsecond))
		})
	}

}

// startMock starts the mock on a free loopback port with IMDSv2 required
// and userData as the instance's user data, and returns its base URL.
func startMock(t *testing.T, mock string, userData []byte) string {
	t.Helper()
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
	addr := freeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(mock, "-I", "-n", host, "-p", port, "-c", cfgPath)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir) // it also reads $HOME/aemm-config.json
	cmd.Stdout, cmd.Stderr = harness.LogWriter(t, "mock: "), harness.LogWriter(t, "mock: ")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mock did not listen on %s within 30s", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "http://" + addr
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
