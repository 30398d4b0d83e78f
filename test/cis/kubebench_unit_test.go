package cis

import (
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/nodebake/nodebake/layers/firstboot"
)

// configFixture is the shape of kube-bench's cfg/config.yaml, cut short.
const configFixture = `---
master:
  components: [apiserver]
node:
  components: [kubelet, proxy]
  kubelet:
    cafile:
      - "/etc/kubernetes/pki/ca.crt"
    confs:
      - "/var/lib/kubelet/config.yaml"
      - "/var/lib/kubelet/kubeconfig"
    kubeconfig: ["/etc/kubernetes/kubelet.conf"]
    svc: ["/etc/systemd/system/kubelet.service"]
  proxy:
    optional: true
    confs: [/etc/kubernetes/proxy]
    kubeconfig: ["/etc/kubernetes/kubelet-kubeconfig"]
version_mapping:
  "1.28": "cis-1.10"
  "1.29": "cis-1.11"
  "1.32": "cis-1.11"
  "1.4": "cis-old"
  "eks-1.0.1": "eks-1.0.1"
target_mapping:
  "cis-1.10": [master, node]
  "cis-1.11": [master, node, policies]
  "cis-old": [master]
`

func TestBenchmarkFor(t *testing.T) {
	for _, tt := range []struct{ version, want, err string }{
		{"v1.35.4", "cis-1.11", ""},
		{"v1.32.0", "cis-1.11", ""},
		{"v1.28.9", "cis-1.10", ""},
		{"v1.10.0", "", "cis-old (for Kubernetes 1.4) has no node target"},
		{"v1.3.0", "", "no Kubernetes version at or below v1.3"},
		{"1.35", "", "not a Kubernetes version"},
	} {
		got, err := benchmarkFor([]byte(configFixture), tt.version)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: got %q, %v; want an error with %q", tt.version, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: got %q, %v; want %s", tt.version, got, err, tt.want)
		}
	}
}

func TestWithImagePaths(t *testing.T) {
	b, err := withImagePaths([]byte(configFixture))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Node struct {
			Kubelet map[string]any `yaml:"kubelet"`
			Proxy   map[string]any `yaml:"proxy"`
		} `yaml:"node"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{
		"kubelet.cafile": firstboot.CACertPath, "kubelet.confs": firstboot.KubeletConfigPath,
		"kubelet.kubeconfig": firstboot.KubeletKubeconfigPath, "kubelet.svc": "/etc/systemd/system/kubelet.service",
		"proxy.confs": firstboot.KubeProxyConfigPath, "proxy.kubeconfig": firstboot.KubeProxyKubeconfigPath,
		"proxy.svc": "/etc/systemd/system/kube-proxy.service",
	} {
		c, l, _ := strings.Cut(key, ".")
		comp := cfg.Node.Kubelet
		if c == "proxy" {
			comp = cfg.Node.Proxy
		}
		list, _ := comp[l].([]any)
		if len(list) == 0 || list[0] != want {
			t.Errorf("node.%s = %v, want %s first", key, list, want)
		}
	}
	if conf, _ := cfg.Node.Kubelet["confs"].([]any); len(conf) != 3 || conf[1] != "/var/lib/kubelet/config.yaml" {
		t.Errorf("node.kubelet.confs = %v: the shipped paths must stay, after the image's", conf)
	}
	if !strings.Contains(string(b), "version_mapping:") || !strings.Contains(string(b), "eks-1.0.1") {
		t.Error("the rest of the file was not kept")
	}
	if _, err := withImagePaths([]byte("master: {}\n")); err == nil {
		t.Error("a config without a node section was accepted")
	}
}

func TestParseReport(t *testing.T) {
	log := "noise\r\nCIS start uptime=3.1\r\nCIS kubelet.ActiveState=active\nCIS-FILE-BEGIN report.json\naGVs\nbG8=\nCIS-FILE-END report.json\nCIS done\n"
	r, err := parseReport(log)
	if err != nil {
		t.Fatal(err)
	}
	if r.values["kubelet.ActiveState"] != "active" || string(r.files["report.json"]) != "hello" {
		t.Errorf("values %v, files %q", r.values, r.files)
	}
	if _, ok := r.values["done"]; !ok {
		t.Error("no done")
	}
	if _, err := parseReport("CIS-FILE-BEGIN a\nxx\nCIS-FILE-END b\n"); err == nil {
		t.Error("mismatched file block accepted")
	}
}

func TestParseBench(t *testing.T) {
	const j = `{"Controls":[{"id":"4","version":"cis-1.11","node_type":"node","tests":[{"section":"4.2","results":[
{"test_number":"4.2.10","status":"PASS"},{"test_number":"4.2.9","status":"WARN","reason":"r"},{"test_number":"4.1.1","status":"PASS"}]}]}],
"Totals":{"total_pass":2,"total_fail":0,"total_warn":1,"total_info":0}}`
	r, checks, err := parseBench([]byte(j))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range checks {
		ids = append(ids, c.id)
	}
	if strings.Join(ids, " ") != "4.1.1 4.2.9 4.2.10" || r.Totals.Pass != 2 || r.Totals.Warn != 1 || checks[1].reason != "r" {
		t.Errorf("checks %v, totals %+v", checks, r.Totals)
	}
}
