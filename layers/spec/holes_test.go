package spec

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/layers/firstboot"
)

// specCase is a spec made of the minimal one plus YAML (and an edit) and
// what Validate must say about it: want lists "path~fragment" problems,
// and an empty want means the spec is valid.
type specCase struct {
	name   string
	extra  string
	mutate func(s *Spec)
	want   []string
}

func runSpecCases(t *testing.T, dir string, tests []specCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(minimalYAML(t) + tt.extra))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			s.Dir = dir
			if tt.mutate != nil {
				tt.mutate(s)
			}
			err = s.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate succeeded")
			}
			wantPaths(t, err, tt.want)
		})
	}
}

// TestPerNodeSettings: every setting that differs per node is refused,
// as a configuration field and as a flag.
func TestPerNodeSettings(t *testing.T) {
	var tests []specCase
	for _, f := range firstboot.KubeletNodeFields() {
		tests = append(tests,
			specCase{name: "kubelet field " + f, extra: fmt.Sprintf("kubelet:\n  config:\n    %s: x\n", f), want: []string{"kubelet.config." + f + "~set per node at first boot"}},
			specCase{name: "kubelet flag " + flagName(f), extra: fmt.Sprintf("kubelet:\n  settings:\n    %s: x\n", flagName(f)), want: []string{"kubelet.settings." + flagName(f) + "~set per node at first boot"}})
	}
	for _, f := range firstboot.KubeProxyNodeFields() {
		tests = append(tests,
			specCase{name: "kube-proxy field " + f, extra: fmt.Sprintf("kubeProxy:\n  config:\n    %s: x\n", f), want: []string{"kubeProxy.config." + f + "~set per node at first boot"}},
			specCase{name: "kube-proxy flag " + flagName(f), extra: fmt.Sprintf("kubeProxy:\n  settings:\n    %s: x\n", flagName(f)), want: []string{"kubeProxy.settings." + flagName(f) + "~set per node at first boot"}})
	}
	tests = append(tests,
		specCase{name: "node-ip", extra: "kubelet:\n  settings:\n    node-ip: 10.0.0.1\n", want: []string{"kubelet.settings.node-ip~set per node"}},
		specCase{name: "kubelet hostname-override", extra: "kubelet:\n  settings:\n    hostname-override: worker\n", want: []string{"kubelet.settings.hostname-override~names one node"}},
		specCase{name: "kubelet providerID", extra: "kubelet:\n  config:\n    providerID: aws:///i-1\n  settings:\n    provider-id: aws:///i-1\n",
			want: []string{"kubelet.config.providerID~names one node", "kubelet.settings.provider-id~names one node"}},
		specCase{name: "kubelet podCIDR", extra: "kubelet:\n  config:\n    podCIDR: 10.200.1.0/24\n  settings:\n    pod-cidr: 10.200.1.0/24\n",
			want: []string{"kubelet.config.podCIDR~names one node", "kubelet.settings.pod-cidr~names one node"}},
		specCase{name: "kube-proxy hostname", extra: "kubeProxy:\n  config:\n    hostnameOverride: worker\n  settings:\n    hostname-override: worker\n",
			want: []string{"kubeProxy.config.hostnameOverride~names one node", "kubeProxy.settings.hostname-override~names one node"}},
	)
	runSpecCases(t, "testdata", tests)
	for field, flag := range map[string]string{"healthzBindAddress": "healthz-bind-address", "providerID": "provider-id", "podCIDR": "pod-cidr", "tlsPrivateKeyFile": "tls-private-key-file", "address": "address"} {
		if got := flagName(field); got != flag {
			t.Errorf("flagName(%s) = %s, want %s", field, got, flag)
		}
	}
}

func TestNumberRanges(t *testing.T) {
	runSpecCases(t, "testdata", []specCase{
		{name: "epoch at the squashfs limit", mutate: func(s *Spec) { s.SourceDateEpoch = MaxSourceDateEpoch }},
		{name: "epoch past squashfs", mutate: func(s *Spec) { s.SourceDateEpoch = MaxSourceDateEpoch + 1 }, want: []string{"sourceDateEpoch~out of range 0..4294967295"}},
		{name: "negative epoch", mutate: func(s *Spec) { s.SourceDateEpoch = -1 }, want: []string{"sourceDateEpoch~out of range"}},
		{name: "sizes at their maximum", extra: "output:\n  espSize: 4GiB\n  varSize: 1TiB\n"},
		{name: "sizes too large", extra: "output:\n  espSize: 8GiB\n  varSize: 2TiB\n",
			want: []string{"output.espSize~larger than the maximum 4GiB", "output.varSize~larger than the maximum 1TiB"}},
		{name: "huge sizes", mutate: func(s *Spec) { s.Output.VarSize = Size(1 << 62) }, want: []string{"output.varSize~larger than the maximum"}},
		{name: "compression", extra: "output:\n  rootCompressionLevel: -3\n", want: []string{"output.rootCompressionLevel~out of range 1..22"}},
		{name: "retries", mutate: func(s *Spec) { s.Sources.Retries = ptr(-1) }, want: []string{"sources.retries~out of range 0..10"}},
		{name: "kubelet ports", extra: "kubelet:\n  config:\n    port: 0\n    healthzPort: 70000\n",
			want: []string{"kubelet.config.port~out of range 1..65535", "kubelet.config.healthzPort~out of range 0..65535"}},
		{name: "kubelet numbers", extra: "kubelet:\n  config:\n    maxPods: 0\n    oomScoreAdj: -1001\n    iptablesMasqueradeBit: 32\n    imageGCHighThresholdPercent: 50\n    imageGCLowThresholdPercent: 50\n",
			want: []string{"kubelet.config.maxPods~out of range", "kubelet.config.oomScoreAdj~out of range -1000..1000", "kubelet.config.iptablesMasqueradeBit~out of range 0..31",
				"kubelet.config.imageGCLowThresholdPercent~must be below imageGCHighThresholdPercent 50"}},
		{name: "kube-proxy numbers", extra: "kubeProxy:\n  config:\n    oomScoreAdj: 2000\n    iptables:\n      masqueradeBit: 40\n",
			want: []string{"kubeProxy.config.oomScoreAdj~out of range", "kubeProxy.config.iptables.masqueradeBit~out of range 0..31"}},
	})
}

func TestSizeZeroRefused(t *testing.T) {
	for _, y := range []string{"output:\n  varSize: 0\n", "output:\n  espSize: 0MiB\n"} {
		_, err := Parse([]byte(y))
		if err == nil {
			t.Errorf("Parse(%q) accepted a size of 0", y)
			continue
		}
		field := strings.TrimSpace(strings.Split(strings.Split(y, "\n")[1], ":")[0])
		wantPaths(t, err, []string{"output." + field + "~a size of 0 is not a size"})
	}
}

func TestIgnoredFieldsRefused(t *testing.T) {
	hex64, hex128 := strings.Repeat("a", 64), strings.Repeat("b", 128)
	runSpecCases(t, "testdata", []specCase{
		{name: "image with from: release", mutate: func(s *Spec) { setComponent(s, "runc", func(c *Component) { c.Image = "repo/runc:1" }) },
			want: []string{"components.runc.image~not used with from: release"}},
		{name: "checksums with from: oci", mutate: func(s *Spec) {
			setComponent(s, "runc", func(c *Component) {
				c.From, c.Image = FromOCI, "registry.example/runc:v1.3.4"
				c.SHA512 = map[Arch]string{ArchAMD64: hex128}
			})
		}, want: []string{"components.runc.sha256~not used with from: oci", "components.runc.sha512~not used with from: oci"}},
		{name: "sha512 with from: go", mutate: func(s *Spec) {
			setComponent(s, "kubectl", func(c *Component) { c.From = FromGo })
		}, want: []string{"components.kubectl.sha512~not used with from: go"}},
		// A sha256 on a from: go component is another matter (a pin of the
		// build's result); it is not refused here.
		{name: "sha256 with from: go", mutate: func(s *Spec) {
			setComponent(s, "kubelet", func(c *Component) { c.From = FromGo; c.SHA256 = map[Arch]string{ArchAMD64: hex64} })
		}},
	})
}

func TestFilePathsCleanAndConfined(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	for _, f := range []string{"inside.txt", "sub/inner.txt"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "outdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/inner.txt", filepath.Join(dir, "fine")); err != nil {
		t.Fatal(err)
	}
	file := func(path, rest string) string { return fmt.Sprintf("files:\n  - {path: %q, %s}\n", path, rest) }
	runSpecCases(t, dir, []specCase{
		{name: "sources inside", extra: "files:\n  - {path: /etc/a, source: inside.txt}\n  - {path: /etc/b, source: sub/inner.txt}\n  - {path: /etc/c, source: fine}\n" +
			fmt.Sprintf("  - {path: /etc/d, source: %q}\n", filepath.Join(dir, "inside.txt"))},
		{name: "source with ..", extra: "files:\n  - {path: /etc/a, source: ../../etc/passwd}\n", want: []string{"files[0].source~outside the spec's directory"}},
		{name: "absolute source outside", extra: fmt.Sprintf("files:\n  - {path: /etc/a, source: %q}\n", filepath.Join(outside, "secret")),
			want: []string{"files[0].source~outside the spec's directory"}},
		{name: "source through a symlink", extra: "files:\n  - {path: /etc/a, source: escape}\n  - {path: /etc/b, source: outdir/secret}\n",
			want: []string{"files[0].source~leads to", "files[1].source~outside the spec's directory"}},
		{name: "source is the directory", extra: "files:\n  - {path: /etc/a, source: .}\n", want: []string{"files[0].source~outside"}},
		{name: "newline in path", extra: file("/etc/a\nb", "content: x"), want: []string{"files[0].path~control character U+000A"}},
		{name: "NUL in path", extra: file("/etc/a\x00b", "content: x"), want: []string{"files[0].path~control character U+0000"}},
		{name: "escape in path", extra: file("/etc/\x1b[31mred", "content: x"), want: []string{"files[0].path~control character U+001B"}},
		{name: "bidi override", extra: file("/etc/\u202etxt.exe", "content: x"), want: []string{"files[0].path~invisible formatting character U+202E"}},
		{name: "zero-width space", extra: file("/etc/a\u200bb", "content: x"), want: []string{"files[0].path~U+200B"}},
		{name: "no-break space", extra: file("/etc/a\u00a0b", "content: x"), want: []string{"files[0].path~space character U+00A0"}},
		{name: "line separator", extra: file("/etc/a\u2028b", "content: x"), want: []string{"files[0].path~U+2028"}},
		{name: "long name", extra: file("/etc/"+strings.Repeat("n", 256), "content: x"), want: []string{"files[0].path~name of 256 bytes"}},
		{name: "long path", extra: file(strings.Repeat("/abcdefgh", 512), "content: x"), want: []string{"files[0].path~Linux allows at most 4095"}},
		{name: "dot dot", extra: file("/etc/..", "content: x"), want: []string{"files[0].path~must not contain .."}},
		{name: "hostile link target", extra: file("/etc/l", "link: \"/etc/a\\nb\""), want: []string{"files[0].link~control character"}},
		{name: "hostile source name", extra: file("/etc/a", "source: \"in\\rside.txt\""), want: []string{"files[0].source~control character U+000D"}},
		{name: "plain space is fine", extra: file("/etc/a b", "content: x")},
		{name: "unicode name is fine", extra: file("/etc/motd-ünïcode", "content: x")},
	})
}

// TestFirstbootPathsRefused: nothing may be placed where the first-boot
// program writes, under the names it stages files by, in its directories,
// or (other than a directory) above them. The cases come from its own
// lists.
func TestFirstbootPathsRefused(t *testing.T) {
	var tests []specCase
	for _, f := range firstboot.OwnedFiles() {
		tests = append(tests, specCase{name: f, extra: fmt.Sprintf("files:\n  - {path: %s, content: x}\n", f), want: []string{"files[0].path"}})
		for _, s := range firstboot.StagingNames(f) {
			tests = append(tests, specCase{name: s, extra: fmt.Sprintf("files:\n  - {path: %s, content: x}\n", s), want: []string{"files[0].path~first-boot program"}})
		}
		tests = append(tests, specCase{name: "symlink at the directory of " + f,
			extra: fmt.Sprintf("files:\n  - {path: %s, link: /tmp}\n", filepath.Dir(f)), want: []string{"files[0].path~first-boot program"}})
	}
	for _, d := range firstboot.OwnedDirs() {
		tests = append(tests,
			specCase{name: d, extra: fmt.Sprintf("files:\n  - {path: %s, directory: true}\n", d), want: []string{"files[0].path~first-boot program's own directory"}},
			specCase{name: "inside " + d, extra: fmt.Sprintf("files:\n  - {path: %s/cert-evil.pem, content: x}\n", d), want: []string{"files[0].path~first-boot program"}},
			specCase{name: "deep inside " + d, extra: fmt.Sprintf("files:\n  - {path: %s/a/b, content: x}\n", d), want: []string{"files[0].path~which the first-boot program owns"}},
		)
	}
	tests = append(tests,
		specCase{name: "a node's key", extra: fmt.Sprintf("files:\n  - {path: %s, content: x}\n", firstboot.NodeKeyPath("worker01")), want: []string{"files[0].path~first-boot program"}},
		specCase{name: "a file where its directory is", extra: "files:\n  - {path: /run/nodebake, content: x}\n", want: []string{"files[0].path~only a directory"}},
		specCase{name: "a directory above is fine", extra: "files:\n  - {path: /run/nodebake, directory: true}\n  - {path: /var/lib/kubelet, directory: true}\n"},
		specCase{name: "a neighbour is fine", extra: "files:\n  - {path: /run/nodebake-other, content: x}\n  - {path: /etc/systemd/system/kubelet.service.d/10-admin.conf, content: \"[Service]\\n\"}\n"},
	)
	runSpecCases(t, "testdata", tests)
}

func TestKernelArgs(t *testing.T) {
	args := func(a ...string) func(*Spec) { return func(s *Spec) { s.Output.KernelArgs = a } }
	runSpecCases(t, "testdata", []specCase{
		{name: "fine", mutate: args("console=ttyS0,115200", "quiet", "nodebake.config=/dev/vdb", "systemd.log_level=debug", "ipv6.disable=1")},
		{name: "end of parameters", mutate: args("quiet", "--", "x"), want: []string{"output.kernelArgs[1]~ends the kernel's parameters"}},
		{name: "init", mutate: args("init=/bin/sh", "rdinit=/bin/sh"), want: []string{"output.kernelArgs[0]~would replace the init", "output.kernelArgs[1]~would replace the init"}},
		{name: "root", mutate: args("root=/dev/sda1", "rootflags=rw", "rw"), want: []string{"output.kernelArgs[0]~set by nodebake", "output.kernelArgs[1]~set by nodebake", "output.kernelArgs[2]~set by nodebake"}},
		{name: "run levels", mutate: args("single", "emergency", "systemd.unit=rescue.target", "1"),
			want: []string{"output.kernelArgs[0]~passed to init", "output.kernelArgs[1]~passed to init", "output.kernelArgs[2]~another target", "output.kernelArgs[3]~passed to init"}},
		{name: "quoting", mutate: args(`a="b c"`, "x'y", "a b", "tab\tx", "nl\nx", "ünï", ""),
			want: []string{"output.kernelArgs[0]~not one kernel argument", "output.kernelArgs[1]", "output.kernelArgs[2]", "output.kernelArgs[3]", "output.kernelArgs[4]", "output.kernelArgs[5]", "output.kernelArgs[6]~empty"}},
		{name: "too long", mutate: args(strings.Repeat("a", 600), strings.Repeat("b", 600)), want: []string{"output.kernelArgs~at most 1024"}},
	})
}

func TestClusterDNS(t *testing.T) {
	dns := func(ips ...string) string {
		return "kubelet:\n  config:\n    clusterDNS: [" + strings.Join(ips, ", ") + "]\n"
	}
	runSpecCases(t, "testdata", []specCase{
		{name: "fine", extra: dns("10.32.0.10", "10.32.255.254")},
		{name: "network address", extra: dns("10.32.0.0"), want: []string{"kubelet.config.clusterDNS[0]~the network address of kubernetes.serviceCIDR 10.32.0.0/16"}},
		{name: "broadcast address", extra: dns("10.32.255.255"), want: []string{"kubelet.config.clusterDNS[0]~the broadcast address"}},
		{name: "kubernetes service", extra: dns("10.32.0.1"), want: []string{"kubelet.config.clusterDNS[0]~the kubernetes Service's address"}},
		{name: "IPv6 network address", mutate: func(s *Spec) { s.Kubernetes.ServiceCIDR = "fd00:32::/108" }, extra: dns("fd00:32::"), want: []string{"kubelet.config.clusterDNS[0]~network address"}},
		{name: "IPv6 last address is fine", mutate: func(s *Spec) { s.Kubernetes.ServiceCIDR = "fd00:32::/108" }, extra: dns("fd00:32::f:ffff")},
	})
}

// TestHardeningKept: a spec cannot undo what the CIS worker node checks
// look at; the defaults pass them.
func TestHardeningKept(t *testing.T) {
	cfg := func(y string) string { return "kubelet:\n  config:\n" + y }
	flag := func(y string) string { return "kubelet:\n  settings:\n" + y }
	runSpecCases(t, "testdata", []specCase{
		{name: "anonymous", extra: cfg("    authentication: {anonymous: {enabled: true}}\n"), want: []string{"kubelet.config.authentication.anonymous.enabled~CIS check 4.2.1"}},
		{name: "anonymous flag", extra: flag("    anonymous-auth: \"true\"\n"), want: []string{"kubelet.settings.anonymous-auth~CIS check 4.2.1"}},
		{name: "AlwaysAllow", extra: cfg("    authorization: {mode: AlwaysAllow}\n"), want: []string{"kubelet.config.authorization.mode~4.2.2"}},
		{name: "AlwaysAllow flag", extra: flag("    authorization-mode: Node,AlwaysAllow\n"), want: []string{"kubelet.settings.authorization-mode~4.2.2"}},
		{name: "no client CA", extra: cfg("    authentication: {x509: {clientCAFile: null}}\n"), want: []string{"kubelet.config.authentication.x509.clientCAFile~required (the image keeps CIS check 4.2.3)"}},
		{name: "read-only port", extra: cfg("    readOnlyPort: 10255\n"), want: []string{"kubelet.config.readOnlyPort~4.2.4"}},
		{name: "read-only port flag", extra: flag("    read-only-port: \"10255\"\n"), want: []string{"kubelet.settings.read-only-port~4.2.4"}},
		{name: "idle timeout", extra: cfg("    streamingConnectionIdleTimeout: 0s\n"), want: []string{"kubelet.config.streamingConnectionIdleTimeout~4.2.5"}},
		{name: "iptables chains", extra: cfg("    makeIPTablesUtilChains: false\n"), want: []string{"kubelet.config.makeIPTablesUtilChains~4.2.6"}},
		{name: "event QPS", extra: cfg("    eventRecordQPS: -1\n"), want: []string{"kubelet.config.eventRecordQPS~4.2.8"}},
		{name: "certificate rotation", extra: cfg("    rotateCertificates: false\n    featureGates: {RotateKubeletServerCertificate: false}\n"),
			want: []string{"kubelet.config.rotateCertificates~4.2.10", "kubelet.config.featureGates.RotateKubeletServerCertificate~4.2.11"}},
		{name: "weak cipher", extra: cfg("    tlsCipherSuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_3DES_EDE_CBC_SHA]\n"),
			want: []string{`kubelet.config.tlsCipherSuites~"TLS_RSA_WITH_3DES_EDE_CBC_SHA" is not a strong cipher suite`}},
		{name: "unknown cipher", extra: flag("    tls-cipher-suites: TLS_ROT13\n"), want: []string{`kubelet.settings.tls-cipher-suites~"TLS_ROT13" is not a TLS cipher suite`}},
		{name: "no ciphers", extra: cfg("    tlsCipherSuites: null\n"), want: []string{"kubelet.config.tlsCipherSuites~required (the image keeps CIS check 4.2.12)"}},
		{name: "strong subset is fine", extra: cfg("    tlsCipherSuites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, TLS_AES_128_GCM_SHA256]\n")},
		{name: "no PID limit", extra: cfg("    podPidsLimit: -1\n"), want: []string{"kubelet.config.podPidsLimit~no limit"}},
		{name: "PID limit removed", extra: cfg("    podPidsLimit: null\n"), want: []string{"kubelet.config.podPidsLimit~4.2.13"}},
		{name: "PID limit flag", extra: flag("    pod-max-pids: \"0\"\n"), want: []string{"kubelet.settings.pod-max-pids~4.2.13"}},
		{name: "seccomp", extra: cfg("    seccompDefault: false\n"), want: []string{"kubelet.config.seccompDefault~4.2.14"}},
		{name: "kube-proxy metrics", extra: "kubeProxy:\n  config:\n    metricsBindAddress: 0.0.0.0:10249\n", want: []string{"kubeProxy.config.metricsBindAddress~4.3.1"}},
		{name: "kube-proxy metrics flag", extra: "kubeProxy:\n  settings:\n    metrics-bind-address: \"10.8.0.1:10249\"\n", want: []string{"kubeProxy.settings.metrics-bind-address~not a loopback address"}},
		{name: "kube-proxy metrics on loopback", extra: "kubeProxy:\n  config:\n    metricsBindAddress: \"[::1]:10249\"\n"},
	})
}

// TestHostSupport: a kubelet setting that needs the host's support gets
// it from the image, or the spec is refused with the reason.
func TestHostSupport(t *testing.T) {
	sysctlFile := func(path, content string) string {
		return fmt.Sprintf("files:\n  - path: %s\n    content: %q\n", path, content)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "99-mine.conf"), []byte("# mine\n kernel/panic = 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	runSpecCases(t, dir, []specCase{
		{name: "sysctl file that agrees", extra: sysctlFile("/etc/sysctl.d/99-mine.conf", "vm.overcommit_memory = 1\nvm.swappiness=10\n")},
		{name: "sysctl file that contradicts", extra: sysctlFile("/etc/sysctl.d/99-mine.conf", "vm.swappiness=10\nvm.overcommit_memory = 0\n-kernel.panic_on_oops=0\n"),
			want: []string{"files[0]~sets vm.overcommit_memory = 0", "files[0]~sets kernel.panic_on_oops = 0"}},
		{name: "sysctl.conf", extra: sysctlFile("/etc/sysctl.conf", "kernel.keys.root_maxkeys = 200\n"), want: []string{"files[0]~kernel.keys.root_maxkeys"}},
		{name: "sysctl file from a source", extra: "files:\n  - {path: /usr/lib/sysctl.d/99-mine.conf, source: 99-mine.conf}\n", want: []string{"files[0]~sets kernel.panic = 0"}},
		{name: "sysctl masked", extra: "files:\n  - {path: /etc/sysctl.d/50-x.conf, link: /dev/null}\n", want: []string{"files[0].link~protectKernelDefaults"}},
		{name: "not a sysctl file", extra: sysctlFile("/etc/sysctl.d/README", "vm.overcommit_memory = 0\n")},
		{name: "without protectKernelDefaults the kubelet sets them itself", extra: "kubelet:\n  config:\n    protectKernelDefaults: false\n" +
			sysctlFile("/etc/sysctl.d/99-mine.conf", "vm.overcommit_memory = 0\n")},
		{name: "system-reserved without a cgroup", extra: "kubelet:\n  config:\n    enforceNodeAllocatable: [pods, system-reserved]\n",
			want: []string{"kubelet.config.enforceNodeAllocatable~system-reserved but kubelet.config.systemReservedCgroup names no cgroup"}},
		{name: "enforcement without QoS cgroups", extra: "kubelet:\n  config:\n    cgroupsPerQOS: false\n", want: []string{"kubelet.config.cgroupsPerQOS~QoS"}},
		{name: "static CPU manager without reservation", extra: "kubelet:\n  config:\n    cpuManagerPolicy: static\n", want: []string{"kubelet.config.cpuManagerPolicy~CPUs reserved"}},
		{name: "static CPU manager with reservation", extra: "kubelet:\n  config:\n    cpuManagerPolicy: static\n    systemReserved: {cpu: 500m}\n"},
		{name: "static memory manager", extra: "kubelet:\n  config:\n    memoryManagerPolicy: Static\n", want: []string{"kubelet.config.memoryManagerPolicy~reservedMemory"}},
		{name: "swap", extra: "kubelet:\n  config:\n    failSwapOn: false\n    memorySwap: {swapBehavior: LimitedSwap}\n", want: []string{"kubelet.config.memorySwap.swapBehavior~no"}},
		{name: "cgroup driver", extra: "kubelet:\n  config:\n    cgroupDriver: cgroupfs\n", want: []string{"kubelet.config.cgroupDriver~containerd.systemdCgroup is true"}},
	})
	if got := KubeletKernelSettings(); len(got) != 6 || got[0] != (Sysctl{"vm.overcommit_memory", 1}) {
		t.Errorf("KubeletKernelSettings = %v", got)
	}
}

// TestHostileSpecFiles: spec files that are too large, not regular, nested
// deeply or expanding through aliases are refused with an error, at once.
func TestHostileSpecFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var laughs strings.Builder
	laughs.WriteString(minimalYAML(t) + "kubelet:\n  config:\n    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&laughs, "    a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	var indent strings.Builder
	indent.WriteString(minimalYAML(t) + "kubelet:\n  config:\n")
	for i := range 500 {
		indent.WriteString(strings.Repeat(" ", 4+i) + "k:\n")
	}
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := mkfifo(fifo); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, path, want string }{
		{"too large", write("large.yaml", minimalYAML(t)+"# "+strings.Repeat("x", MaxSize)+"\n"), "larger than the limit"},
		{"named pipe", fifo, "not a regular file"},
		{"directory", dir, "not a regular file"},
		{"deep flow nesting", write("deep.yaml", minimalYAML(t)+"kubelet:\n  config:\n    x: "+strings.Repeat("[", 200_000)+strings.Repeat("]", 200_000)+"\n"), "depth"},
		{"deep block nesting", write("indent.yaml", indent.String()), "nested too deeply"},
		{"alias expansion", write("laughs.yaml", laughs.String()), "through aliases"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := LoadAndValidate(tt.path)
			if err == nil {
				t.Fatalf("accepted: %+v", s.Kubelet.Config)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %.300s, want it to say %q", err, tt.want)
			}
		})
	}
}

// TestManyFiles: a spec of tens of thousands of files is checked in time
// proportional to its size (the checks across files look entries up
// rather than compare every pair), and each entry below a file is named.
func TestManyFiles(t *testing.T) {
	var b strings.Builder
	b.WriteString("files:\n  - {path: /srv/f, content: x}\n")
	const n = 50_000
	for i := range n {
		fmt.Fprintf(&b, "  - {path: /srv/d%d/f, content: x}\n", i)
	}
	b.WriteString("  - {path: /srv/f/below, content: x}\n")
	runSpecCases(t, "testdata", []specCase{{name: "50000 files", extra: b.String(),
		want: []string{fmt.Sprintf("files[%d].path~/srv/f/below is below files[0] (/srv/f), which is not a directory", n+1)}}})
}

// TestStringsThatAreNotWhatTheyMustBe: values that go into other files
// (flag values into the units' command lines) carry no control
// characters; the cluster domain is a DNS domain.
func TestStringsThatAreNotWhatTheyMustBe(t *testing.T) {
	runSpecCases(t, "testdata", []specCase{
		{name: "flag value with a line break", extra: "kubelet:\n  settings:\n    v: \"2\\nExecStartPre=/bin/sh -c evil\"\n",
			want: []string{"kubelet.settings.v~control character U+000A"}},
		{name: "kube-proxy flag value with a NUL", extra: "kubeProxy:\n  settings:\n    v: \"2\\0\"\n", want: []string{"kubeProxy.settings.v~control character U+0000"}},
		{name: "flag value too long", mutate: func(s *Spec) { s.Kubelet.Settings = map[string]*string{"node-labels": ptr(strings.Repeat("a", 5000))} },
			want: []string{"kubelet.settings.node-labels~at most 4096"}},
		{name: "flag value with spaces and dollars is fine", extra: "kubelet:\n  settings:\n    node-labels: \"a=b c, d=$HOME 100%\"\n"},
		{name: "cluster domain", extra: "kubelet:\n  config:\n    clusterDomain: \"cluster.local\\n\"\n", want: []string{"kubelet.config.clusterDomain~not a DNS domain"}},
		{name: "cluster domain with upper case", extra: "kubelet:\n  config:\n    clusterDomain: Cluster.Local\n", want: []string{"kubelet.config.clusterDomain~not a DNS domain"}},
	})
}
