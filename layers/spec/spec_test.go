package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	kubeproxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
)

var update = flag.Bool("update", false, "rewrite golden files")

func loadMinimal(t *testing.T) *Spec {
	t.Helper()
	s, err := Load(filepath.Join("testdata", "minimal.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return s
}

func TestEffectiveGolden(t *testing.T) {
	s := loadMinimal(t)
	s.Default()
	got, err := s.Dump()
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "effective.golden.yaml")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("effective spec differs from %s (-want +got):\n%s", golden, diff)
	}
}

func TestExamplesValid(t *testing.T) {
	for _, name := range []string{"minimal.yaml", "worker.yaml", "effective.golden.yaml"} {
		t.Run(name, func(t *testing.T) {
			s, err := LoadAndValidate(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			if s.Dir == "" || !filepath.IsAbs(s.Dir) {
				t.Errorf("Dir = %q, want the absolute testdata directory", s.Dir)
			}
		})
	}
}

func TestDefaultIdempotentAndRoundTrip(t *testing.T) {
	for _, name := range []string{"minimal.yaml", "worker.yaml"} {
		t.Run(name, func(t *testing.T) {
			s, err := Load(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			s.Default()
			once := s.Clone()
			s.Default()
			if diff := cmp.Diff(once, s); diff != "" {
				t.Errorf("second Default changed the spec (-once +twice):\n%s", diff)
			}
			dump, err := s.Dump()
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse(dump)
			if err != nil {
				t.Fatalf("Parse(Dump()): %v\n%s", err, dump)
			}
			back.Default()
			back.Dir = s.Dir
			if diff := cmp.Diff(s, back); diff != "" {
				t.Errorf("Parse(Dump()) differs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultKeepsRemovals(t *testing.T) {
	s := loadMinimal(t)
	s.Kubelet.Settings = map[string]*string{"volume-plugin-dir": nil}
	s.Kubelet.Config = map[string]any{"authentication": map[string]any{"anonymous": nil}, "clusterDNS": nil}
	s.Default()
	s.Default()
	for _, f := range s.KubeletFlags() {
		if strings.HasPrefix(f, "--volume-plugin-dir=") {
			t.Errorf("removed flag still present: %s", f)
		}
	}
	b, err := s.KubeletConfigJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["clusterDNS"]; ok {
		t.Error("clusterDNS still present after removal")
	}
	auth := m["authentication"].(map[string]any)
	if _, ok := auth["anonymous"]; ok {
		t.Error("authentication.anonymous still present after removal")
	}
	if _, ok := auth["webhook"]; !ok {
		t.Error("authentication.webhook lost by the merge")
	}
}

func TestHash(t *testing.T) {
	s := loadMinimal(t)
	h1, err := s.Hash()
	if err != nil {
		t.Fatal(err)
	}
	if len(h1) != 64 {
		t.Fatalf("hash %q is not 64 hex digits", h1)
	}
	// Hashing does not modify the spec, and the effective spec hashes alike.
	if s.Name != "" {
		t.Error("Hash applied defaults to the spec itself")
	}
	d := s.Clone()
	d.Default()
	d.Dir = "/elsewhere"
	if h2, _ := d.Hash(); h2 != h1 {
		t.Errorf("defaulted spec hash %s != %s", h2, h1)
	}
	d.Output.RootCompressionLevel = 9
	if h3, _ := d.Hash(); h3 == h1 {
		t.Error("hash did not change with the spec")
	}
}

func TestKubeletConfigJSON(t *testing.T) {
	s := loadMinimal(t)
	b, err := s.KubeletConfigJSON()
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var kc kubeletv1beta1.KubeletConfiguration
	if err := dec.Decode(&kc); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	if kc.Kind != "KubeletConfiguration" || kc.APIVersion != "kubelet.config.k8s.io/v1beta1" ||
		kc.CgroupDriver != "systemd" || kc.Authorization.Mode != "Webhook" ||
		*kc.Authentication.Anonymous.Enabled || !*kc.Authentication.Webhook.Enabled ||
		kc.Authentication.X509.ClientCAFile != "/var/lib/kubernetes/ca-k8s-apiserver.pem" ||
		kc.ClusterDomain != "cluster.local" || !cmp.Equal(kc.ClusterDNS, []string{"10.32.0.254"}) ||
		!*kc.FailSwapOn || *kc.HealthzPort != 10248 || kc.RuntimeRequestTimeout.Duration.String() != "15m0s" ||
		*kc.SerializeImagePulls || kc.ReadOnlyPort != 0 || !*kc.SeccompDefault || kc.Address != "" {
		t.Errorf("unexpected kubelet config:\n%s", b)
	}
	if !strings.HasPrefix(string(b), "{\n  \"apiVersion\"") {
		t.Errorf("want indented JSON with sorted keys, got:\n%s", b)
	}

	b, err = s.KubeProxyConfigJSON()
	if err != nil {
		t.Fatal(err)
	}
	dec = json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var pc kubeproxyv1alpha1.KubeProxyConfiguration
	if err := dec.Decode(&pc); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	if pc.Mode != "ipvs" || pc.ClusterCIDR != "10.200.0.0/16" || !pc.IPTables.MasqueradeAll ||
		pc.IPVS.SyncPeriod.Duration.String() != "2s" || pc.IPVS.MinSyncPeriod.Duration != 0 ||
		pc.ClientConnection.Kubeconfig != "/var/lib/kube-proxy/kubeconfig" || pc.BindAddress != "" {
		t.Errorf("unexpected kube-proxy config:\n%s", b)
	}
}

func TestKubeProxyClusterCIDRFollowsKubernetes(t *testing.T) {
	s := loadMinimal(t)
	s.Kubernetes.ClusterCIDR = "10.244.0.0/16"
	b, err := s.KubeProxyConfigJSON()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"clusterCIDR": "10.244.0.0/16"`) {
		t.Errorf("clusterCIDR does not follow kubernetes.clusterCIDR:\n%s", b)
	}
	if err := s.Validate(); err != nil {
		t.Error(err)
	}
}

func TestFlags(t *testing.T) {
	s, err := Load(filepath.Join("testdata", "worker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"--config=/var/lib/kubelet/kubelet-config.yaml",
		"--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
		"--kubeconfig=/var/lib/kubelet/kubeconfig",
		"--register-node=false",
		"--v=2",
	}
	if diff := cmp.Diff(want, s.KubeletFlags()); diff != "" {
		t.Errorf("KubeletFlags (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"--config=/var/lib/kube-proxy/kubeproxy-config.yaml"}, s.KubeProxyFlags()); diff != "" {
		t.Errorf("KubeProxyFlags (-want +got):\n%s", diff)
	}
}

func TestNamedComponents(t *testing.T) {
	s := loadMinimal(t)
	s.Default()
	var got []string
	for _, c := range s.NamedComponents() {
		got = append(got, string(c.Key)+"="+c.Name+"@"+c.Version)
	}
	want := []string{
		"containerd=containerd@v2.2.0", "runc=runc@v1.3.4", "cniPlugins=cni-plugins@v1.8.0",
		"kubelet=kubelet@v1.35.4", "kubeProxy=kube-proxy@v1.35.4", "kubectl=kubectl@v1.35.4",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("NamedComponents (-want +got):\n%s", diff)
	}
	c, ok := s.Component("kube-proxy")
	if !ok || c.Key != "kubeProxy" || c.Catalogue.Name != "kube-proxy" {
		t.Errorf("Component(kube-proxy) = %+v, %v", c, ok)
	}
	if _, ok := s.Component("etcd"); ok {
		t.Error("Component(etcd) found")
	}
}

func TestArtifactURL(t *testing.T) {
	tests := []struct {
		name   string
		c      Component
		mirror string
		want   string
	}{
		{"upstream", Component{Version: "v1.3.4"}, "", "https://github.com/opencontainers/runc/releases/download/v1.3.4/runc.amd64"},
		{"mirror", Component{Version: "v1.3.4", From: FromRelease}, "http://mirror.local/up/", "http://mirror.local/up/github.com/opencontainers/runc/releases/download/v1.3.4/runc.amd64"},
		{"override", Component{Version: "v1.3.4", URL: "https://files.example/runc/{version}/runc.{arch}"}, "http://mirror.local", "https://files.example/runc/v1.3.4/runc.amd64"},
		{"not a release", Component{Version: "v1.3.4", From: FromGo}, "", ""},
	}
	for _, tt := range tests {
		if got := tt.c.ArtifactURL("runc", ArchAMD64, tt.mirror); got != tt.want {
			t.Errorf("%s: ArtifactURL = %q, want %q", tt.name, got, tt.want)
		}
	}
	s, err := Load(filepath.Join("testdata", "worker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s.Default()
	if got, want := s.ArtifactURL("kubeProxy"), "https://mirror.example/upstream/dl.k8s.io/release/v1.35.4/bin/linux/arm64/kube-proxy"; got != want {
		t.Errorf("Spec.ArtifactURL = %q, want %q", got, want)
	}
	algo, sum, ok := s.Components["kubelet"].Checksum(ArchARM64)
	if !ok || algo != "sha256" || sum != "44444444444444444444444444444444444444444444444444444444444444aa" {
		t.Errorf("Checksum = %s %s %v", algo, sum, ok)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"256MiB", 256 << 20, false},
		{"1GiB", 1 << 30, false},
		{"512KiB", 512 << 10, false},
		{"2TiB", 2 << 40, false},
		{"1048576", 1 << 20, false},
		{" 100 MiB ", 100 << 20, false},
		{"0", 0, false},
		{"", 0, true},
		{"MiB", 0, true},
		{"1.5GiB", 0, true},
		{"-1MiB", 0, true},
		{"10MB", 0, true},
		{"1G", 0, true},
		{"99999999999TiB", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	for sz, want := range map[Size]string{256 * MiB: "256MiB", GiB: "1GiB", 1536 * MiB: "1536MiB", 100: "100", 0: "0", 3 * KiB: "3KiB"} {
		if got := sz.String(); got != want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(sz), got, want)
		}
	}
}

func TestParseImageSource(t *testing.T) {
	const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		in      string
		want    ImageSource
		wantErr bool
	}{
		{"oci:build/base", ImageSource{Kind: ImageOCILayout, Path: "build/base"}, false},
		{"oci:/abs/dir@" + dg, ImageSource{Kind: ImageOCILayout, Path: "/abs/dir", Digest: dg}, false},
		{"tarball:img.tar", ImageSource{Kind: ImageTarball, Path: "img.tar"}, false},
		{"registry.k8s.io/pause:3.10.1", ImageSource{Kind: ImageRegistry, Ref: "registry.k8s.io/pause:3.10.1"}, false},
		{"localhost:5000/a/b@" + dg, ImageSource{Kind: ImageRegistry, Ref: "localhost:5000/a/b@" + dg, Digest: dg}, false},
		{"debian", ImageSource{Kind: ImageRegistry, Ref: "debian"}, false},
		{"", ImageSource{}, true},
		{"oci:", ImageSource{}, true},
		{"oci:dir@sha256:abc", ImageSource{}, true},
		{"tarball:", ImageSource{}, true},
		{"Upper/Case:tag", ImageSource{}, true},
		{"repo:tag with space", ImageSource{}, true},
		{"repo@sha256:xyz", ImageSource{}, true},
	}
	for _, tt := range tests {
		got, err := ParseImageSource(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseImageSource(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestLoadErrorNamesFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(p, []byte("apiVersion: nodebake.io/v1alpha1\nkind: WorkerImage\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	var ve *ValidationError
	if !errors.As(err, &ve) || !ve.Has("bogus") {
		t.Fatalf("Load error = %v, want a ValidationError naming bogus", err)
	}
	if want := p + ": bogus: unknown field (line 3)"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file error = %v", err)
	}
}

func TestMergeConfig(t *testing.T) {
	base := map[string]any{"a": map[string]any{"b": 1, "c": []any{1, 2}}, "d": "x"}
	over := map[string]any{"a": map[string]any{"c": []any{3}, "e": nil}, "f": map[string]any{"g": true}}
	got := MergeConfig(base, over)
	want := map[string]any{"a": map[string]any{"b": 1, "c": []any{3}, "e": nil}, "d": "x", "f": map[string]any{"g": true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("MergeConfig (-want +got):\n%s", diff)
	}
	got["a"].(map[string]any)["b"] = 2
	got["f"].(map[string]any)["g"] = false
	if base["a"].(map[string]any)["b"] != 1 || over["f"].(map[string]any)["g"] != true {
		t.Error("the result shares maps with its arguments")
	}
	if got := MergeConfig(nil, map[string]any{"x": 1}); got["x"] != 1 {
		t.Errorf("MergeConfig(nil, ...) = %v", got)
	}
}

// output.diskSize replaces the default varSize, survives Dump and Parse,
// and needs no varSize.
func TestDiskSize(t *testing.T) {
	s, err := Load(filepath.Join("testdata", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s.Output.DiskSize = 4 * GiB
	s.Default()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.Output.VarSize != 0 {
		t.Errorf("varSize defaulted to %s next to diskSize", s.Output.VarSize)
	}
	dump, err := s.Dump()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dump), "  diskSize: 4GiB\n") || strings.Contains(string(dump), "varSize") {
		t.Errorf("dump:\n%s", dump)
	}
	back, err := Parse(dump)
	if err != nil {
		t.Fatal(err)
	}
	back.Default()
	if back.Output.DiskSize != 4*GiB || back.Output.VarSize != 0 || back.Validate() != nil {
		t.Errorf("round trip: %+v, %v", back.Output, back.Validate())
	}
}
