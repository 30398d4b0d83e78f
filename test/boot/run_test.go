package boot

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig/nodeconfigtest"
	"github.com/nodebake/nodebake/test/harness"
	"github.com/nodebake/nodebake/test/qemu"
)

// firstbootConfigured is the line the first-boot program prints on the
// console when it has configured the node from the credential (systemd
// passes it to the unit: /run/credentials/nodebake-firstboot.service/).
var firstbootConfigured = regexp.MustCompile(`nodebake-firstboot: node (\S+) configured from credential /run/credentials/\S+/nodebake\.node \((\d+) files\)`)

// runTimeout bounds QEMU start to first boot's line: the firmware, the
// boot and first boot under TCG on a busy 2-core host took up to 6 minutes
// here.
const runTimeout = 10 * time.Minute

// TestNodebakeRun boots the worker image with the real `nodebake run` and
// a node config: the console comes out on nodebake's stdout, the
// first-boot program configures the node from the credential, and a
// SIGTERM stops QEMU and cleans up, leaving the image as it was.
func TestNodebakeRun(t *testing.T) {
	harness.RequireSlow(t)
	for _, tool := range []string{"qemu-system-x86_64"} {
		harness.RequireTool(t, tool)
	}
	s := harness.WorkerSpec(t)
	res := harness.BuildImage(t, s, t.TempDir())
	before := fileSHA256(t, res.ImagePath)

	bin := t.TempDir()
	cli := harness.GoBuild(t, "./builder/cmd/nodebake", bin)
	p, err := nodeconfigtest.NewPKI()
	if err != nil {
		t.Fatal(err)
	}
	node := filepath.Join(t.TempDir(), "worker01.yaml")
	if err := os.WriteFile(node, nodeconfigtest.YAML(p.Config()), 0o600); err != nil {
		t.Fatal(err)
	}

	work := t.TempDir() // nodebake run's work directory goes here
	cmd := exec.CommandContext(t.Context(), cli, "run", res.ImagePath, "--node-config", node, "--uuid", vmUUID)
	cmd.Env = append(os.Environ(), "TMPDIR="+work)
	// A terminal that stays open: QEMU's stdio chardev reads it. An
	// *os.File, so that Wait does not wait on a copy from it.
	stdin, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdinW.Close()
	cmd.Stdin = stdin
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stdin.Close()
	// Should the test fail before the SIGTERM, nothing stays behind: the
	// kernel stops QEMU with nodebake (parent-death signal).
	defer cmd.Process.Kill()

	var (
		mu      sync.Mutex
		console strings.Builder
	)
	seen := make(chan []string, 1)
	scanDone := make(chan struct{})
	go func() {
		defer close(scanDone)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		found := false
		for sc.Scan() {
			mu.Lock()
			console.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if m := firstbootConfigured.FindStringSubmatch(sc.Text()); m != nil && !found {
				found = true
				seen <- m
			}
		}
	}()
	tail := func() string {
		mu.Lock()
		defer mu.Unlock()
		lines := strings.Split(strings.TrimRight(console.String(), "\n"), "\n")
		return strings.Join(lines[max(0, len(lines)-40):], "\n")
	}

	select {
	case m := <-seen:
		figure(t, "nodebake run (%s): QEMU start -> first boot configured node %s (%s files): %s",
			qemu.Accel(), m[1], m[2], time.Since(start).Round(100*time.Millisecond))
		if m[1] != "worker01" {
			t.Errorf("first boot configured node %q, want worker01", m[1])
		}
	case <-scanDone:
		t.Fatalf("nodebake run ended before first boot configured the node: %v\nstderr: %s\nconsole:\n%s", cmd.Wait(), stderr.String(), tail())
	case <-time.After(runTimeout):
		t.Fatalf("first boot did not configure the node within %s\nstderr: %s\nconsole:\n%s", runTimeout, stderr.String(), tail())
	}
	if !strings.Contains(stderr.String(), "nodebake run: booting "+res.ImagePath+" (raw) on a snapshot") {
		t.Errorf("nodebake run did not say what it boots: %q", stderr.String())
	}

	// Stop it as a service manager or a terminal would.
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-scanDone
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Errorf("nodebake run after SIGTERM: %v, want exit status 130 (interrupted)\nstderr: %s", err, stderr.String())
	}
	t.Logf("nodebake run stopped %s after SIGTERM", time.Since(sent).Round(10*time.Millisecond))
	if ents, err := os.ReadDir(work); err != nil || len(ents) != 0 {
		t.Errorf("nodebake run left %v in its work directory (%v)", ents, err)
	}
	if after := fileSHA256(t, res.ImagePath); after != before {
		t.Errorf("the image changed: sha256 %s before, %s after", before, after)
	}
	if out, _ := exec.Command("pgrep", "-f", res.ImagePath).Output(); len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("a process with the image still runs: %s", out)
	}
}
