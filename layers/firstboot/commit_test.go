package firstboot

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig/nodeconfigtest"
)

// faultOps wraps the real file calls: the call numbered at (from 1) fails,
// or, with crash, stops the goroutine there as a power cut would; every
// call is logged.
type faultOps struct {
	at    int
	crash bool
	calls int
	log   []string
	root  string
}

var errInjected = errors.New("injected failure")

// unsynced is osFileOps without fsync: the order of durable writes cannot
// be observed in a test, and a fault sweep would spend minutes waiting for
// the disk. The real calls run in every other test.
func unsynced() fileOps {
	ops := osFileOps()
	ops.writeFile = func(name string, data []byte, mode os.FileMode, chown bool, gid int) error {
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := f.Write(data); err != nil {
			return err
		}
		if chown {
			if err := f.Chown(0, gid); err != nil {
				return err
			}
		}
		return f.Chmod(mode)
	}
	ops.syncDir = func(string) error { return nil }
	return ops
}

// fastOptions are options with unsynced file calls.
func fastOptions(root string) Options {
	opts := options(root)
	ops := unsynced()
	opts.fileOps = &ops
	return opts
}

func (f *faultOps) ops() *fileOps {
	real := unsynced()
	step := func(op, p string) error {
		f.calls++
		rel, _ := filepath.Rel(f.root, p)
		f.log = append(f.log, fmt.Sprintf("%d %s /%s", f.calls, op, rel))
		if f.calls != f.at {
			return nil
		}
		if f.crash {
			runtime.Goexit()
		}
		return errInjected
	}
	return &fileOps{
		writeFile: func(name string, data []byte, mode os.FileMode, chown bool, gid int) error {
			if err := step("write", name); err != nil {
				return err
			}
			return real.writeFile(name, data, mode, chown, gid)
		},
		rename: func(o, n string) error {
			if err := step("rename", n); err != nil {
				return err
			}
			return real.rename(o, n)
		},
		link: func(o, n string) error {
			if err := step("link", o); err != nil {
				return err
			}
			return real.link(o, n)
		},
		remove: func(n string) error {
			if err := step("remove", n); err != nil {
				return err
			}
			return real.remove(n)
		},
		syncDir: func(d string) error {
			if err := step("sync", d); err != nil {
				return err
			}
			return real.syncDir(d)
		},
	}
}

// nodeFiles is the snapshot of what a config wrote: everything but the
// inputs, the status and node-ready. Staged files and backups are not part
// of it: they are returned as leftovers.
func nodeFiles(t *testing.T, root string) map[string]entry {
	t.Helper()
	files, _ := nodeFilesAndLeftovers(t, root)
	return files
}

func nodeFilesAndLeftovers(t *testing.T, root string) (map[string]entry, []string) {
	t.Helper()
	s := snapshot(t, root)
	for _, p := range []string{StatusPath, ReadyPath, FactsPath, SystemCredentialsDir + "/" + CredentialName} {
		delete(s, p)
	}
	var leftovers []string
	for p := range s {
		if base := filepath.Base(p); strings.HasPrefix(base, ".") && (strings.HasSuffix(base, stagedSuffix) || strings.HasSuffix(base, backupSuffix)) {
			leftovers = append(leftovers, p)
			delete(s, p)
		}
	}
	return s, leftovers
}

func same(a, b map[string]entry) bool { return maps.Equal(a, b) }

// commitScenario is a node that ran config A and then gets config B.
type commitScenario struct {
	name        string
	a, b        []byte
	factsB      string // the image facts for B, if they differ
	fresh       bool   // B is the first config (nothing ran before)
	oldFiles    map[string]entry
	newFiles    map[string]entry
	hasOldReady bool
}

func commitScenarios(t *testing.T) []*commitScenario {
	p := newPKI(t)
	a := p.config()
	b := p.config()
	b.WireGuard.Address = "10.8.0.210/24"
	b.WireGuard.Peers = b.WireGuard.Peers[:1]
	b.Kubernetes.APIServer = "https://10.8.0.2:6443"
	b.Kubernetes.PodCIDR = "10.200.7.0/24"
	scenarios := []*commitScenario{
		{name: "first boot", b: marshal(t, a), fresh: true},
		{name: "new config", a: marshal(t, a), b: marshal(t, b)},
		{name: "pod network dropped", a: marshal(t, a), b: marshal(t, b), factsB: strings.Replace(factsJSON, `"bridge"`, `"none"`, 1)},
	}
	for _, sc := range scenarios {
		// The old set: what A left (nothing at the first boot).
		root := sc.setup(t)
		sc.oldFiles = nodeFiles(t, root)
		_, err := os.Stat(filepath.Join(root, ReadyPath))
		sc.hasOldReady = err == nil
		// The new set: what B leaves when nothing fails.
		if _, err := Run(context.Background(), fastOptions(root)); err != nil {
			t.Fatalf("%s: B: %v", sc.name, err)
		}
		sc.newFiles = nodeFiles(t, root)
		if same(sc.oldFiles, sc.newFiles) {
			t.Fatalf("%s: A and B write the same files", sc.name)
		}
	}
	return scenarios
}

// setup returns a root where A ran (unless fresh) and B is the config.
func (sc *commitScenario) setup(t *testing.T) string {
	t.Helper()
	root := newRootIn(t, nodeconfigtest.MemDir(t), sc.a)
	if !sc.fresh {
		if _, err := Run(context.Background(), fastOptions(root)); err != nil {
			t.Fatalf("%s: A: %v", sc.name, err)
		}
	}
	writeFile(t, root, SystemCredentialsDir+"/"+CredentialName, sc.b)
	if sc.factsB != "" {
		writeFile(t, root, FactsPath, []byte(sc.factsB))
	}
	return root
}

// TestCommitFaults makes each file call of a run fail in turn: the node's
// files are then entirely the old set or entirely the new one, node-ready
// exists only after a run that succeeded, and a run without the fault
// writes the new set.
func TestCommitFaults(t *testing.T) {
	for _, sc := range commitScenarios(t) {
		t.Run(sc.name, func(t *testing.T) {
			count := &faultOps{root: "/"}
			root := sc.setup(t)
			count.root = root
			opts := options(root)
			opts.fileOps = count.ops()
			if _, err := Run(context.Background(), opts); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d file calls:\n%s", count.calls, strings.Join(count.log, "\n"))
			for at := 1; at <= count.calls; at++ {
				root := sc.setup(t)
				f := &faultOps{at: at, root: root}
				opts := options(root)
				opts.fileOps = f.ops()
				st, err := Run(context.Background(), opts)
				what := f.log[at-1]
				files, leftovers := nodeFilesAndLeftovers(t, root)
				// Only a backup that could not be removed after the commit
				// is left, for the next run to remove.
				if len(leftovers) > 1 || len(leftovers) == 1 && what != fmt.Sprintf("%d remove %s", at, leftovers[0]) {
					t.Errorf("failing call %s: left %v", what, leftovers)
				}
				isOld, isNew := same(files, sc.oldFiles), same(files, sc.newFiles)
				if !isOld && !isNew {
					t.Errorf("failing call %s: the files are neither the old set nor the new one: %v / %v",
						what, written(sc.oldFiles, files), written(sc.newFiles, files))
				}
				_, statErr := os.Stat(filepath.Join(root, ReadyPath))
				ready := statErr == nil
				switch {
				case err == nil && (!ready || !isNew):
					t.Errorf("failing call %s: success without node-ready or the new set", what)
				case err != nil && ready && !(strings.HasSuffix(what, ReadyPath) && strings.Contains(what, "remove")):
					t.Errorf("failing call %s: node-ready after a failure (%v)", what, err)
				case err != nil && !strings.Contains(err.Error(), "injected failure"):
					t.Errorf("failing call %s: the error does not tell the cause: %v", what, err)
				case err != nil && strings.Contains(err.Error(), root):
					t.Errorf("failing call %s: the message names the root: %v", what, err)
				}
				if err != nil && st.OK {
					t.Errorf("failing call %s: status OK", what)
				}
				// The next run, without faults, writes the new set.
				if _, err := Run(context.Background(), fastOptions(root)); err != nil {
					t.Fatalf("failing call %s: the run after: %v", what, err)
				}
				if files, leftovers := nodeFilesAndLeftovers(t, root); !same(files, sc.newFiles) || len(leftovers) > 0 {
					t.Errorf("failing call %s: the run after did not write the new set alone (left %v)", what, leftovers)
				}
			}
		})
	}
}

// TestCommitCrash stops a run at each file call as a power cut would (no
// rollback in the process): the next run first finds the old set or the
// new one whole again, then writes the new set.
func TestCommitCrash(t *testing.T) {
	for _, sc := range commitScenarios(t) {
		t.Run(sc.name, func(t *testing.T) {
			root := sc.setup(t)
			count := &faultOps{root: root}
			opts := options(root)
			opts.fileOps = count.ops()
			if _, err := Run(context.Background(), opts); err != nil {
				t.Fatal(err)
			}
			for at := 1; at <= count.calls; at++ {
				root := sc.setup(t)
				f := &faultOps{at: at, crash: true, root: root}
				opts := options(root)
				opts.fileOps = f.ops()
				done := make(chan bool)
				go func() {
					finished := false
					defer func() { done <- finished }()
					Run(context.Background(), opts)
					finished = true
				}()
				if <-done {
					t.Fatalf("call %d: the run did not stop", at)
				}
				what := f.log[at-1]
				// A reboot empties /run.
				if err := os.RemoveAll(filepath.Join(root, "run", "systemd")); err != nil {
					t.Fatal(err)
				}
				os.RemoveAll(filepath.Join(root, "run", "nodebake"))
				w := newWriter(fastOptions(root))
				if err := w.recover(); err != nil {
					t.Fatalf("crash at %s: recovering: %v", what, err)
				}
				files, leftovers := nodeFilesAndLeftovers(t, root)
				if len(leftovers) > 0 {
					t.Errorf("crash at %s: left %v after recovery", what, leftovers)
				}
				if !same(files, runFree(sc.oldFiles)) && !same(files, runFree(sc.newFiles)) {
					t.Errorf("crash at %s: after recovery the files are neither set: %v / %v",
						what, written(runFree(sc.oldFiles), files), written(runFree(sc.newFiles), files))
				}
				if _, err := Run(context.Background(), fastOptions(root)); err != nil {
					t.Fatalf("crash at %s: the run after: %v", what, err)
				}
				if !same(nodeFiles(t, root), sc.newFiles) {
					t.Errorf("crash at %s: the run after did not write the new set", what)
				}
			}
		})
	}
}

// runFree is a set of files without those under /run, which a reboot loses.
func runFree(files map[string]entry) map[string]entry {
	out := map[string]entry{}
	for p, e := range files {
		if !strings.HasPrefix(p, "/run/") {
			out[p] = e
		}
	}
	return out
}

// TestReadyNotRemovable: when node-ready cannot be removed, the run stops
// before touching anything.
func TestReadyNotRemovable(t *testing.T) {
	p := newPKI(t)
	root := newRoot(t, marshal(t, p.config()))
	if _, err := Run(context.Background(), options(root)); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	other := p.config()
	other.WireGuard.Address = "10.8.0.99/24"
	writeFile(t, root, SystemCredentialsDir+"/"+CredentialName, marshal(t, other))
	before[SystemCredentialsDir+"/"+CredentialName] = snapshot(t, root)[SystemCredentialsDir+"/"+CredentialName]
	// A directory with content cannot be removed by remove(2).
	ready := filepath.Join(root, ReadyPath)
	if err := os.Remove(ready); err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, ReadyPath+"/x", nil)
	delete(before, ReadyPath)
	before[ReadyPath+"/x"] = snapshot(t, root)[ReadyPath+"/x"]
	_, err := Run(context.Background(), options(root))
	var probs nodeconfig.Problems
	if !errors.As(err, &probs) || probs[0].Field != "status" || !strings.HasPrefix(probs[0].Message, "removing /run/nodebake/node-ready: ") {
		t.Fatalf("got %v", err)
	}
	if w := written(before, snapshot(t, root)); len(w) != 1 || w[0] != StatusPath {
		t.Errorf("changed %v, want only the status", w)
	}
}

// TestJournalConfined: a commit journal naming a file first boot does not
// write is refused, not followed.
func TestJournalConfined(t *testing.T) {
	p := newPKI(t)
	root := newRoot(t, marshal(t, p.config()))
	writeFile(t, root, CommitJournalPath, []byte(`{"files": [{"path": "/etc/shadow", "backup": false}]}`))
	writeFile(t, root, "/etc/shadow", []byte("root:x:1::::::\n"))
	_, err := Run(context.Background(), options(root))
	if err == nil || !strings.Contains(err.Error(), `names "/etc/shadow", which first boot does not write`) {
		t.Fatalf("got %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "/etc/shadow")); err != nil {
		t.Error(err)
	}
}

// TestHostnameFailureRollsBack: the hostname is set once every file is in
// place; if that fails, the files go back to the old set.
func TestHostnameFailureRollsBack(t *testing.T) {
	for _, sc := range commitScenarios(t) {
		t.Run(sc.name, func(t *testing.T) {
			root := sc.setup(t)
			opts := fastOptions(root)
			opts.SetHostname = func(string) error { return errors.New("no such luck") }
			_, err := Run(context.Background(), opts)
			var probs nodeconfig.Problems
			if !errors.As(err, &probs) || probs[0].Field != "nodeName" || !strings.Contains(probs[0].Message, "setting the hostname: no such luck") {
				t.Fatalf("got %v", err)
			}
			files, leftovers := nodeFilesAndLeftovers(t, root)
			if !same(files, sc.oldFiles) || len(leftovers) > 0 {
				t.Errorf("not the old set: %v, left %v", written(sc.oldFiles, files), leftovers)
			}
			if _, err := os.Stat(filepath.Join(root, ReadyPath)); !os.IsNotExist(err) {
				t.Error("node-ready exists")
			}
		})
	}
}
