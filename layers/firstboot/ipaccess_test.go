package firstboot

import (
	"context"
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
)

// TestIPAccessDropIns: each unit's drop-in allows exactly the networks of
// nodeconfig.IPAllow, in systemd's syntax, under the unit's runtime drop-in
// directory.
func TestIPAccessDropIns(t *testing.T) {
	p := newPKI(t)
	proxyKC, err := nodeconfig.NewKubeconfig("https://192.0.2.7:443", p.ca.CertPEM, nodeconfig.KubeProxyUser, p.proxyCert, p.proxyKey).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name               string
		edit               func(*nodeconfig.NodeConfig)
		kubelet, kubeProxy string
	}{
		{"API server on wg0", nil,
			"IPAddressAllow=10.8.0.0/24 10.200.0.0/16", "IPAddressAllow=10.8.0.0/24"},
		{"API server elsewhere", func(c *nodeconfig.NodeConfig) { c.Kubernetes.APIServer = "https://198.51.100.9:6443" },
			"IPAddressAllow=10.8.0.0/24 10.200.0.0/16 198.51.100.9/32", "IPAddressAllow=10.8.0.0/24 198.51.100.9/32"},
		{"kube-proxy's own API server", func(c *nodeconfig.NodeConfig) {
			c.Kubernetes.KubeProxy = nodeconfig.KubeProxy{Kubeconfig: string(proxyKC)}
		}, "IPAddressAllow=10.8.0.0/24 10.200.0.0/16", "IPAddressAllow=10.8.0.0/24 192.0.2.7/32"},
		{"IPv6", func(c *nodeconfig.NodeConfig) {
			c.WireGuard.Address = "fd00:8::cb/64"
			c.WireGuard.Peers = c.WireGuard.Peers[:0]
			c.Kubernetes.APIServer = "https://[fd00:9::1]:6443"
		}, "IPAddressAllow=10.200.0.0/16 fd00:8::/64 fd00:9::1/128", "IPAddressAllow=fd00:8::/64 fd00:9::1/128"},
	}
	facts, err := nodeconfig.ParseImageFacts([]byte(factsJSON))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := p.config()
			if tt.edit != nil {
				tt.edit(cfg)
			}
			files, err := ipAccessFiles(cfg, facts)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{IPAccessPath(KubeletUnit): tt.kubelet, IPAccessPath(KubeProxyUnit): tt.kubeProxy}
			if len(files) != len(want) {
				t.Fatalf("%d files, want %d", len(files), len(want))
			}
			for _, f := range files {
				w, ok := want[f.Path]
				if !ok {
					t.Fatalf("unexpected file %s", f.Path)
				}
				lines := strings.Split(strings.TrimSpace(string(f.Data)), "\n")
				var directives []string
				for _, l := range lines {
					if !strings.HasPrefix(l, "#") {
						directives = append(directives, l)
					}
				}
				if got := strings.Join(directives, "\n"); got != "[Service]\n"+w {
					t.Errorf("%s:\n%s\nwant [Service]\n%s", f.Path, got, w)
				}
			}
		})
	}
	if got, want := IPAccessPath(KubeletUnit), "/run/systemd/system/kubelet.service.d/50-nodebake-ipaccess.conf"; got != want {
		t.Errorf("IPAccessPath = %s, want %s", got, want)
	}
}

// recordSystemctl records systemctl calls and what the node looked like at
// each: the drop-ins must be in place, node-ready not yet.
type recordSystemctl struct {
	t     *testing.T
	root  string
	calls []string
	fail  error
}

func (r *recordSystemctl) run(_ context.Context, args ...string) error {
	r.calls = append(r.calls, strings.Join(args, " "))
	for _, u := range ipAccessUnits() {
		if _, err := os.Stat(filepath.Join(r.root, IPAccessPath(u))); err != nil {
			r.t.Errorf("systemctl %s ran before the drop-in of %s was in place: %v", strings.Join(args, " "), u, err)
		}
	}
	if _, err := os.Stat(filepath.Join(r.root, ReadyPath)); !os.IsNotExist(err) {
		r.t.Errorf("systemctl %s ran after node-ready was written", strings.Join(args, " "))
	}
	return r.fail
}

// TestReloadUnits: systemd is asked to reload once the drop-ins are in
// place and before node-ready, and only when a drop-in changed.
func TestReloadUnits(t *testing.T) {
	p := newPKI(t)
	root := newRoot(t, marshal(t, p.config()))
	rec := &recordSystemctl{t: t, root: root}
	opts := options(root)
	opts.Systemctl = rec.run
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.calls, []string{"daemon-reload"}) {
		t.Errorf("systemctl calls %q, want one daemon-reload", rec.calls)
	}
	// Again in the same boot: nothing changed, nothing to reload.
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if len(rec.calls) != 1 {
		t.Errorf("a run that changed nothing called systemctl: %q", rec.calls)
	}
	// The next boot: /run is empty again.
	if err := os.RemoveAll(filepath.Join(root, "run", "systemd")); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if len(rec.calls) != 2 {
		t.Errorf("systemctl calls after the drop-ins were gone: %q, want a second daemon-reload", rec.calls)
	}
}

// TestReloadFailureRollsBack: when systemd cannot reload, the node's files
// go back to the old set and node-ready stays away: the units would start
// without their allowed addresses.
func TestReloadFailureRollsBack(t *testing.T) {
	for _, sc := range commitScenarios(t) {
		t.Run(sc.name, func(t *testing.T) {
			root := sc.setup(t)
			// The first boot of every scenario and the last of the others
			// ran in another boot: /run is empty.
			if err := os.RemoveAll(filepath.Join(root, "run", "systemd", "system")); err != nil {
				t.Fatal(err)
			}
			old := nodeFiles(t, root)
			rec := &recordSystemctl{t: t, root: root, fail: errors.New("Failed to reload daemon: no such luck")}
			opts := fastOptions(root)
			opts.Systemctl = rec.run
			_, err := Run(context.Background(), opts)
			var probs nodeconfig.Problems
			if !errors.As(err, &probs) || probs[0].Field != "systemd" || !strings.Contains(probs[0].Message, "systemctl daemon-reload") || !strings.Contains(probs[0].Message, "no such luck") {
				t.Fatalf("got %v", err)
			}
			files, leftovers := nodeFilesAndLeftovers(t, root)
			if !same(files, old) || len(leftovers) > 0 {
				t.Errorf("not the old set: %v, left %v", written(old, files), leftovers)
			}
			if _, err := os.Stat(filepath.Join(root, ReadyPath)); !os.IsNotExist(err) {
				t.Error("node-ready exists")
			}
		})
	}
}

// TestOwned: every file a run writes is first boot's by Owns, and so are
// their staging names; the image's own files and the inputs are not.
func TestOwned(t *testing.T) {
	p := newPKI(t)
	root := newRoot(t, marshal(t, p.config()))
	before := snapshot(t, root)
	if _, err := Run(context.Background(), options(root)); err != nil {
		t.Fatal(err)
	}
	for _, f := range written(before, snapshot(t, root)) {
		if !Owns(f) {
			t.Errorf("first boot wrote %s, which Owns does not claim", f)
		}
		for _, s := range StagingNames(f) {
			if !Owns(s) || path.Dir(s) != path.Dir(f) {
				t.Errorf("staging name %s of %s: Owns %v", s, f, Owns(s))
			}
		}
	}
	for _, f := range []string{FactsPath, ProgramPath, "/etc/group", SystemCredentialsDir + "/" + CredentialName,
		"/var/lib/kubelet", "/run/systemd/system/kubelet.service.d/99-admin.conf", "/etc/systemd/system/kubelet.service"} {
		if Owns(f) {
			t.Errorf("Owns(%s) is true", f)
		}
	}
	if !Owns(CommitJournalPath) || !Owns(stagedName(CommitJournalPath)) || !Owns(NodeKeyPath("any-node")) {
		t.Error("the journal, its temporary name or a node key is not owned")
	}
}
