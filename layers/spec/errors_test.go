package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/layers/failure"
)

func minimalYAML(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "minimal.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// wantPaths checks that err is a *ValidationError listing every path (and
// each message fragment, when given as "path~fragment").
func wantPaths(t *testing.T, err error, want []string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error = %v (%T), want *ValidationError", err, err)
	}
	for _, w := range want {
		p, frag, _ := strings.Cut(w, "~")
		found := false
		for _, fe := range ve.Errors {
			if fe.Path == p && strings.Contains(fe.Msg, frag) {
				found = true
			}
		}
		if !found {
			t.Errorf("no error for %s containing %q in:\n%v", p, frag, err)
		}
	}
	if lines := strings.Count(err.Error(), "\n") + 1; lines != len(ve.Errors) {
		t.Errorf("Error() has %d lines for %d problems:\n%v", lines, len(ve.Errors), err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"bad YAML", "apiVersion: x\n  kind: [\n", []string{"~line 2"}},
		{"tab indentation", "apiVersion: x\n\tkind: y\n", []string{"~line 2"}},
		{"empty", "# nothing\n", []string{"~empty"}},
		{"two documents", "apiVersion: a\n---\nkind: b\n", []string{"~single YAML document"}},
		{"not a mapping", "- a\n- b\n", []string{"~expected a mapping"}},
		{"unknown top-level field", "apiVersion: a\nkubernets:\n  version: v1.35.4\n", []string{"kubernets~unknown field (did you mean kubernetes?) (line 2)"}},
		{"unknown nested field", "kubernetes:\n  version: v1.35.4\n  serviceCidr: 10.0.0.0/16\n", []string{"kubernetes.serviceCidr~did you mean serviceCIDR"}},
		{"unknown component", "components:\n  etcd: {version: v3.6.6}\n", []string{"components.etcd~unknown component (line 2; known: containerd, runc"}},
		{"misspelt component", "components:\n  kubeproxy: {from: go}\n", []string{"components.kubeproxy~unknown component (did you mean kubeProxy?) (line 2"}},
		{"unknown component field", "components:\n  runc: {version: v1.3.4, sha265: {}}\n", []string{"components.runc.sha265~did you mean sha256"}},
		{"unknown file field", "files:\n  - path: /a\n    contents: x\n", []string{"files[0].contents~unknown field (did you mean content?) (line 3)"}},
		{"duplicate key", "name: a\nname: b\n", []string{"name~duplicate key (first at line 1, again at line 2)"}},
		{"wrong scalar type", "sourceDateEpoch: yesterday\n", []string{`sourceDateEpoch~expected an integer, got string "yesterday" (line 1)`}},
		{"list for a string", "name: [a, b]\n", []string{"name~expected a string, got a list"}},
		{"mapping for a list", "files:\n  path: /a\n", []string{"files~expected a list, got a mapping"}},
		{"scalar for a struct", "base: oci:x\n", []string{"base~expected a mapping"}},
		{"bool type", "containerd:\n  systemdCgroup: maybe\n", []string{"containerd.systemdCgroup~expected a boolean"}},
		{"bad size", "output:\n  espSize: 256MB\n", []string{`output.espSize~invalid size "256MB"`}},
		{"settings value list", "kubelet:\n  settings:\n    v: [1]\n", []string{"kubelet.settings.v~expected a string"}},
		{"duplicate config key", "kubelet:\n  config:\n    maxPods: 1\n    maxPods: 2\n", []string{"kubelet.config.maxPods~duplicate key"}},
		{"dotted key quoted", "kubelet:\n  config:\n    evictionHard:\n      memory.available: 1Gi\n      memory.available: 2Gi\n", []string{`kubelet.config.evictionHard["memory.available"]~duplicate key`}},
		{"all at once", "kubernets: {}\nname: [x]\nfiles:\n  - pth: /a\noutput:\n  varSize: lots\n", []string{
			"kubernets~unknown field", "name~expected a string", "files[0].pth~unknown field", "output.varSize~invalid size",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", s)
			}
			wantPaths(t, err, tt.want)
		})
	}
}

func TestParseLenientScalars(t *testing.T) {
	s, err := Parse([]byte("files:\n  - path: /a\n    content: x\n    mode: 0640\n  - path: /b\n    content: y\n    mode: 755\noutput:\n  espSize: 268435456\n"))
	if err != nil {
		t.Fatal(err)
	}
	s.Default()
	if s.Files[0].Mode != "0640" || s.Files[1].Mode != "0755" {
		t.Errorf("modes = %q, %q; want 0640, 0755", s.Files[0].Mode, s.Files[1].Mode)
	}
	if s.Output.ESPSize != 256*MiB {
		t.Errorf("espSize = %v, want 256MiB", s.Output.ESPSize)
	}
}

func TestValidateErrors(t *testing.T) {
	hex64 := strings.Repeat("a", 64)
	tests := []struct {
		name   string
		extra  string // YAML appended to the minimal spec
		mutate func(s *Spec)
		want   []string
	}{
		{name: "missing apiVersion and kind", mutate: func(s *Spec) { s.APIVersion, s.Kind = "", "Worker" },
			want: []string{"apiVersion~required", "kind~must be WorkerImage"}},
		{name: "bad name", mutate: func(s *Spec) { s.Name = "Worker_1" }, want: []string{"name~invalid name"}},
		{name: "bad arch", mutate: func(s *Spec) { s.Arch = "riscv64" }, want: []string{"arch~unsupported"}},
		{name: "negative epoch", mutate: func(s *Spec) { s.SourceDateEpoch = -1 }, want: []string{"sourceDateEpoch"}},
		{name: "missing base image", mutate: func(s *Spec) { s.Base.Image = "" }, want: []string{"base.image~required"}},
		{name: "bad base image", mutate: func(s *Spec) { s.Base.Image = "oci:" }, want: []string{"base.image"}},
		{name: "bad base digest", mutate: func(s *Spec) { s.Base.Digest = "sha256:abc" }, want: []string{"base.digest~invalid digest"}},
		{name: "base digest mismatch", mutate: func(s *Spec) {
			s.Base.Image = "oci:dir@sha256:" + hex64
			s.Base.Digest = "sha256:" + strings.Repeat("b", 64)
		}, want: []string{"base.digest~does not match"}},
		{name: "bad version strings", mutate: func(s *Spec) {
			s.Kubernetes.Version = "1.35.4"
			setComponent(s, "runc", func(c *Component) { c.Version = "v1.3" })
			setComponent(s, "cniPlugins", func(c *Component) { c.Version = "v1.8.0+build" })
			setComponent(s, "kubectl", func(c *Component) { c.Version = "latest" })
		}, want: []string{"kubernetes.version~invalid version", "components.runc.version", "components.cniPlugins.version", "components.kubectl.version",
			// kubelet and kube-proxy inherit the bad version
			"components.kubelet.version", "components.kubeProxy.version"}},
		{name: "missing component version", mutate: func(s *Spec) { setComponent(s, "containerd", func(c *Component) { c.Version = "" }) },
			want: []string{"components.containerd.version~required"}},
		{name: "containerd 1.x", mutate: func(s *Spec) { setComponent(s, "containerd", func(c *Component) { c.Version = "v1.7.29" }) },
			want: []string{"components.containerd.version~config (version 3) needs containerd 2.x"}},
		{name: "checksum wrong length", mutate: func(s *Spec) { s.Components["runc"].SHA256[ArchAMD64] = "abc" },
			want: []string{"components.runc.sha256.amd64~3 characters, want 64"}},
		{name: "checksum not hex", mutate: func(s *Spec) { s.Components["kubectl"].SHA512[ArchAMD64] = strings.Repeat("g", 128) },
			want: []string{"components.kubectl.sha512.amd64~not hexadecimal"}},
		{name: "checksum unknown arch", mutate: func(s *Spec) { s.Components["runc"].SHA256["386"] = hex64 },
			want: []string{"components.runc.sha256.386~unknown architecture"}},
		{name: "missing checksum for arch", mutate: func(s *Spec) { s.Arch = ArchARM64 },
			want: []string{"components.containerd.sha256.arm64~required for from: release", "components.kubelet.sha256.arm64", "components.kubectl.sha256.arm64"}},
		{name: "from go with url and image", mutate: func(s *Spec) {
			setComponent(s, "kubelet", func(c *Component) { c.From = FromGo })
			setComponent(s, "kubelet", func(c *Component) { c.URL = "https://example.invalid/kubelet" })
			setComponent(s, "kubelet", func(c *Component) { c.Image = "repo/kubelet:v1" })
		}, want: []string{"components.kubelet.url~not used with from: go", "components.kubelet.image~not used with from: go"}},
		{name: "from oci without image", mutate: func(s *Spec) { setComponent(s, "runc", func(c *Component) { c.From = FromOCI }) },
			want: []string{"components.runc.image~required for from: oci"}},
		{name: "unknown from", mutate: func(s *Spec) { setComponent(s, "runc", func(c *Component) { c.From = "apt" }) }, want: []string{"components.runc.from~unknown source"}},
		{name: "bad url override", mutate: func(s *Spec) { setComponent(s, "runc", func(c *Component) { c.URL = "ftp://x/runc" }) }, want: []string{"components.runc.url~invalid URL"}},
		{name: "kubelet newer than kubernetes", mutate: func(s *Spec) { setComponent(s, "kubelet", func(c *Component) { c.Version = "v1.36.0" }) },
			want: []string{"components.kubelet.version~newer than kubernetes.version"}},
		{name: "kube-proxy too old", mutate: func(s *Spec) { setComponent(s, "kubeProxy", func(c *Component) { c.Version = "v1.31.9" }) },
			want: []string{"components.kubeProxy.version~more than 3 minor versions older"}},
		{name: "bad CIDR", mutate: func(s *Spec) {
			s.Kubernetes.ServiceCIDR = "10.32.0.0/33"
			s.Kubernetes.ClusterCIDR = "10.200.1.0/16"
		}, want: []string{"kubernetes.serviceCIDR~invalid CIDR", "kubernetes.clusterCIDR~host bits set"}},
		{name: "overlapping CIDRs", mutate: func(s *Spec) { s.Kubernetes.ClusterCIDR = "10.32.128.0/17" },
			want: []string{"kubernetes.clusterCIDR~overlaps kubernetes.serviceCIDR"}},
		{name: "bad pod network", mutate: func(s *Spec) { s.Kubernetes.PodNetwork = "flannel" }, want: []string{"kubernetes.podNetwork"}},
		{name: "clusterDNS outside serviceCIDR", mutate: func(s *Spec) { s.Kubernetes.ServiceCIDR = "10.96.0.0/16" },
			want: []string{"kubelet.config.clusterDNS[0]~outside kubernetes.serviceCIDR 10.96.0.0/16"}},
		{name: "clusterDNS not an IP", extra: "kubelet:\n  config:\n    clusterDNS: [10.32.0.10, dns.local]\n",
			want: []string{"kubelet.config.clusterDNS[1]~invalid IP address"}},
		{name: "cgroupDriver conflict", extra: "kubelet:\n  config:\n    cgroupDriver: cgroupfs\n",
			want: []string{`kubelet.config.cgroupDriver~is "cgroupfs" but containerd.systemdCgroup is true`}},
		{name: "cgroupDriver conflict reversed", extra: "containerd:\n  systemdCgroup: false\n",
			want: []string{"kubelet.config.cgroupDriver~containerd.systemdCgroup is false"}},
		{name: "unknown kubelet.config field", extra: "kubelet:\n  config:\n    maxpods: 10\n",
			want: []string{"kubelet.config.maxpods~unknown field (did you mean maxPods?)"}},
		{name: "unknown nested kubelet.config field", extra: "kubelet:\n  config:\n    authentication:\n      anonymous:\n        enabeld: true\n",
			want: []string{"kubelet.config.authentication.anonymous.enabeld~unknown field"}},
		{name: "wrong type in kubelet.config", extra: "kubelet:\n  config:\n    failSwapOn: \"no\"\n    maxPods: many\n    clusterDNS: 10.32.0.254\n    runtimeRequestTimeout: soon\n    evictionHard: [1]\n",
			want: []string{`kubelet.config.failSwapOn~expected a boolean, got string "no"`, "kubelet.config.maxPods~expected an integer",
				"kubelet.config.clusterDNS~expected a list", "kubelet.config.runtimeRequestTimeout~invalid duration", "kubelet.config.evictionHard~expected an object"}},
		{name: "wrong type deep in kubelet.config", extra: "kubelet:\n  config:\n    registerWithTaints:\n      - key: a\n        effect: NoSchedule\n        timeAdded: 5\n",
			want: []string{"kubelet.config.registerWithTaints[0].timeAdded"}},
		{name: "per-node kubelet fields", extra: "kubelet:\n  config:\n    address: 10.0.0.1\n    tlsCertFile: /x.pem\n  settings:\n    node-ip: 10.0.0.1\n",
			want: []string{"kubelet.config.address~set per node at first boot", "kubelet.config.tlsCertFile~set per node", "kubelet.settings.node-ip~set per node"}},
		{name: "removed kubelet flag", extra: "kubelet:\n  settings:\n    container-runtime: remote\n    --v: \"2\"\n",
			want: []string{"kubelet.settings.container-runtime~removed", "kubelet.settings.--v~invalid flag name"}},
		{name: "wrong config kind", extra: "kubelet:\n  config:\n    kind: KubeletConfig\n",
			want: []string{"kubelet.config.kind~must be KubeletConfiguration"}},
		{name: "per-node kube-proxy fields", extra: "kubeProxy:\n  config:\n    bindAddress: 10.0.0.1\n    healthzBindAddress: 10.0.0.1:10256\n",
			want: []string{"kubeProxy.config.bindAddress~set per node", "kubeProxy.config.healthzBindAddress~set per node"}},
		{name: "kube-proxy mode and CIDR", extra: "kubeProxy:\n  config:\n    mode: userspace\n    clusterCIDR: 10.201.0.0/16\n    ipvs:\n      syncPeriodd: 1s\n",
			want: []string{"kubeProxy.config.mode~unsupported mode", "kubeProxy.config.clusterCIDR~differs from kubernetes.clusterCIDR", "kubeProxy.config.ipvs.syncPeriodd~unknown field"}},
		{name: "bad mirror and retries", mutate: func(s *Spec) { s.Sources.Mirror = "mirror.local"; s.Sources.Retries = ptr(11) },
			want: []string{"sources.mirror~invalid URL", "sources.retries~out of range"}},
		{name: "bad sandbox image", mutate: func(s *Spec) { s.Containerd.SandboxImage = "registry.k8s.io/pause" },
			want: []string{"containerd.sandboxImage~needs a tag or digest"}},
		{name: "bad preload images", extra: "images:\n  - ref: a/b:1\n    image: tarball:b.tar\n  - ref: a/b:1\n    image: \"oci:\"\n  - image: x:1\n",
			want: []string{"images[1].ref~already preloaded by images[0]", "images[1].image", "images[2].ref~required"}},
		{name: "bad file mode", extra: "files:\n  - {path: /a, content: x, mode: \"0888\"}\n  - {path: /b, content: x, mode: rw}\n  - {path: /c, link: /a, mode: \"0755\"}\n",
			want: []string{"files[0].mode~invalid mode", "files[1].mode~invalid mode", "files[2].mode~symlink"}},
		{name: "relative and unclean file paths", extra: "files:\n  - {path: etc/motd, content: x}\n  - {path: /etc/../x, content: x}\n  - {path: /etc//y, content: x}\n  - {path: /, directory: true}\n  - {content: x}\n",
			want: []string{"files[0].path~not an absolute path", "files[1].path~must not contain ..", "files[2].path~not clean", "files[3].path~must not be /", "files[4].path~required"}},
		{name: "duplicate file paths", extra: "files:\n  - {path: /etc/motd, content: x}\n  - {path: /etc/motd, content: y}\n",
			want: []string{"files[1].path~/etc/motd is already set by files[0]"}},
		{name: "file content source count", extra: "files:\n  - {path: /a}\n  - {path: /b, content: x, link: /a}\n  - {path: /c, source: no-such-file}\n",
			want: []string{"files[0]~one of content, source, link or directory is required", "files[1]~only one of", "files[2].source~cannot read"}},
		{name: "file over managed path", extra: "files:\n  - {path: /etc/containerd/config.toml, content: x}\n  - {path: /opt/cni/bin/bridge, content: x}\n  - {path: /usr/local/bin, content: x}\n  - {path: /var/lib/kubelet/kubelet-config.yaml, content: x}\n",
			want: []string{"files[0].path~is managed by the image", "files[1].path~/opt/cni/bin", "files[2].path~manages", "files[3].path~managed"}},
		{name: "file below a file", extra: "files:\n  - {path: /etc/x, content: x}\n  - {path: /etc/x/y, content: y}\n",
			want: []string{"files[1].path~not a directory"}},
		{name: "bad uid", extra: "files:\n  - {path: /a, content: x, uid: -1, gid: 4294967295}\n",
			want: []string{"files[0].uid~out of range", "files[0].gid~out of range"}},
		{name: "bad output", extra: "output:\n  formats: [raw, qcow3, raw]\n  espSize: 64MiB\n  varSize: 1000000\n  rootCompressionLevel: 23\n",
			want: []string{"output.formats[1]~unknown format", "output.formats[2]~listed twice", "output.espSize~smaller than the minimum 100MiB", "output.varSize~not a multiple of 1MiB", "output.rootCompressionLevel~out of range"}},
		{name: "verified boot without a version", extra: "name: Worker_1\noutput:\n  verifiedBoot: {enabled: true, tries: 10, slotSize: 1000000}\n",
			want: []string{"name~with output.verifiedBoot", "output.verifiedBoot.version~required", "output.verifiedBoot.tries~out of range 1..9", "output.verifiedBoot.slotSize~not a multiple of 1MiB"}},
		{name: "verified boot name and version", extra: "name: a-very-long-image-name\noutput:\n  verifiedBoot: {enabled: true, version: \"1_2+3\"}\n",
			want: []string{"name~longer than 16", "output.verifiedBoot.version~want letters, digits"}},
		{name: "verified boot label too long", extra: "name: worker\noutput:\n  verifiedBoot: {enabled: true, version: 1.35.4-20260101-000000000000}\n",
			want: []string{"output.verifiedBoot.version~longer than 36"}},
		{name: "verified boot formats and kernel args", extra: "output:\n  formats: [raw, netboot, update]\n  kernelArgs: [roothash=00, panic=0]\n  verifiedBoot: {enabled: true, version: \"1\", slotSize: 1TiB}\n",
			mutate: func(s *Spec) { s.Output.VerifiedBoot.SlotSize = 2 * TiB },
			want:   []string{"output.formats[1]~not with output.verifiedBoot", "output.kernelArgs[0]~roothash is set by nodebake", "output.kernelArgs[1]~panic is set", "output.verifiedBoot.slotSize~larger than the maximum"}},
		{name: "update format without verified boot", extra: "output:\n  formats: [update]\n  verifiedBoot: {enabled: false}\n",
			want: []string{"output.formats[0]~needs output.verifiedBoot.enabled"}},
		{name: "verified boot updates", extra: "output:\n  verifiedBoot:\n    enabled: true\n    version: \"1\"\n    updates: {source: \"http://updates.example/worker\", timer: \"daily; rm -rf /\"}\n",
			want: []string{"output.verifiedBoot.updates.source~plain http", "output.verifiedBoot.updates.timer~calendar expression"}},
		{name: "verified boot update source", extra: "output:\n  verifiedBoot:\n    enabled: true\n    version: \"1\"\n    updates: {source: \"https://user@updates.example/w?x=1\"}\n",
			want: []string{"output.verifiedBoot.updates.source~without user, query"}},
		{name: "verified boot signing", extra: "output:\n  verifiedBoot:\n    enabled: true\n    version: \"1\"\n    signing: {key: no-such.key}\n",
			want: []string{"output.verifiedBoot.signing.key~no-such.key", "output.verifiedBoot.signing.certificate~required"}},
		{name: "file over verified boot paths", extra: "output: {verifiedBoot: {enabled: true, version: \"1\"}}\nfiles:\n  - {path: /usr/lib/os-release, content: x}\n  - {path: /usr/lib/sysupdate.d/10-x.transfer, content: x}\n",
			want: []string{"files[0].path~managed", "files[1].path~manages"}},
		{name: "disk and var size", extra: "output:\n  diskSize: 4GiB\n  varSize: 1GiB\n",
			want: []string{"output.diskSize~set either diskSize (the image's size, /var takes the rest) or varSize, not both"}},
		{name: "disk size too small", extra: "output:\n  diskSize: 512MiB\n", want: []string{"output.diskSize~smaller than the minimum 1GiB"}},
		{name: "disk size too large", extra: "output:\n  diskSize: 4TiB\n", want: []string{"output.diskSize~larger than the maximum 2040GiB"}},
		{name: "disk size not MiB", extra: "output:\n  diskSize: 2097153KiB\n", want: []string{"output.diskSize~not a multiple of 1MiB"}},
		{name: "many problems at once", extra: "name: Bad\nkubelet:\n  config:\n    cgroupDriver: cgroupfs\n    authentication: {anonymous: {enabeld: true}}\nfiles:\n  - {path: rel, content: x}\n  - {path: rel, content: x}\n",
			mutate: func(s *Spec) {
				setComponent(s, "containerd", func(c *Component) { c.Version = "v1.7.0" })
				setComponent(s, "runc", func(c *Component) { c.SHA256 = nil })
			},
			want: []string{"name", "kubelet.config.cgroupDriver", "kubelet.config.authentication.anonymous.enabeld", "files[0].path", "files[1].path",
				"components.containerd.version", "components.runc.sha256.amd64"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(minimalYAML(t) + tt.extra))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			s.Dir = "testdata"
			if tt.mutate != nil {
				tt.mutate(s)
			}
			before, _ := s.Dump()
			err = s.Validate()
			if err == nil {
				t.Fatal("Validate succeeded")
			}
			wantPaths(t, err, tt.want)
			if after, _ := s.Dump(); string(after) != string(before) {
				t.Error("Validate modified the spec")
			}
		})
	}
}

// TestErrorsAreInvalidInput checks that every way a spec can be wrong is
// of kind failure.Invalid, with the *ValidationError still reachable.
func TestErrorsAreInvalidInput(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("kind: WorkerImage\nbogus: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	invalid := &Spec{}
	_, parseErr := Parse([]byte("a: [\n"))
	_, loadErr := Load(bad)
	_, lvErr := LoadAndValidate(bad)
	_, missingErr := LoadAndValidate(filepath.Join(t.TempDir(), "none.yaml"))
	for name, err := range map[string]error{
		"parse": parseErr, "load": loadErr, "load and validate": lvErr,
		"validate": invalid.Validate(), "missing file": missingErr,
	} {
		if failure.KindOf(err) != failure.Invalid {
			t.Errorf("%s: %v is of kind %v, want invalid input", name, err, failure.KindOf(err))
		}
		var ve *ValidationError
		if name != "missing file" && !errors.As(err, &ve) {
			t.Errorf("%s: %v carries no *ValidationError", name, err)
		}
	}
}

// setComponent changes the spec's component with key k.
func setComponent(s *Spec, k ComponentName, change func(*Component)) {
	c := s.Components[k]
	change(&c)
	s.Components[k] = c
}
