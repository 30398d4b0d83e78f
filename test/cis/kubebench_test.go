package cis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/mod/semver"
	"gopkg.in/yaml.v3"

	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/worker"
)

// benchmarkFor picks kube-bench's benchmark for a Kubernetes version from
// its cfg/config.yaml: the one version_mapping gives the newest Kubernetes
// minor version at or below it (kube-bench maps each minor version it
// knows; a newer Kubernetes is covered by the newest benchmark until
// kube-bench adds one). The benchmark must cover worker nodes.
func benchmarkFor(configYAML []byte, version string) (string, error) {
	var cfg struct {
		VersionMapping map[string]string   `yaml:"version_mapping"`
		TargetMapping  map[string][]string `yaml:"target_mapping"`
	}
	if err := yaml.Unmarshal(configYAML, &cfg); err != nil {
		return "", fmt.Errorf("reading kube-bench's config.yaml: %w", err)
	}
	want := semver.MajorMinor(version)
	if want == "" {
		return "", fmt.Errorf("%q is not a Kubernetes version", version)
	}
	minor := regexp.MustCompile(`^\d+\.\d+$`)
	best, bench := "", ""
	for k, b := range cfg.VersionMapping {
		v := "v" + k
		if !minor.MatchString(k) || semver.Compare(v, want) > 0 {
			continue
		}
		if best == "" || semver.Compare(v, best) > 0 {
			best, bench = v, b
		}
	}
	if bench == "" {
		return "", fmt.Errorf("kube-bench maps no Kubernetes version at or below %s", want)
	}
	if !slices.Contains(cfg.TargetMapping[bench], "node") {
		return "", fmt.Errorf("kube-bench's %s (for Kubernetes %s) has no node target", bench, strings.TrimPrefix(best, "v"))
	}
	return bench, nil
}

// imagePaths are where the image keeps what kube-bench's node checks
// look at, by the keys of its cfg/config.yaml (node.COMPONENT.KEY). They
// go first in their lists: kube-bench takes the first file that exists.
func imagePaths() map[string][]string {
	return map[string][]string{
		"kubelet.cafile":     {firstboot.CACertPath},
		"kubelet.confs":      {firstboot.KubeletConfigPath},
		"kubelet.kubeconfig": {firstboot.KubeletKubeconfigPath},
		"kubelet.svc":        {worker.SystemdUnitDir + "/" + firstboot.KubeletUnit},
		"proxy.confs":        {firstboot.KubeProxyConfigPath},
		"proxy.kubeconfig":   {firstboot.KubeProxyKubeconfigPath},
		"proxy.svc":          {worker.SystemdUnitDir + "/" + firstboot.KubeProxyUnit},
	}
}

// withImagePaths returns kube-bench's cfg/config.yaml with the image's
// paths first in the node section's lists; the rest is kept as it is.
func withImagePaths(configYAML []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(configYAML, &doc); err != nil {
		return nil, fmt.Errorf("reading kube-bench's config.yaml: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, fmt.Errorf("kube-bench's config.yaml is not one YAML document")
	}
	node := mappingValue(doc.Content[0], "node")
	if node == nil {
		return nil, fmt.Errorf("kube-bench's config.yaml has no node section")
	}
	paths := imagePaths()
	for _, key := range slices.Sorted(func(yield func(string) bool) {
		for k := range paths {
			if !yield(k) {
				return
			}
		}
	}) {
		component, list, _ := strings.Cut(key, ".")
		c := mappingValue(node, component)
		if c == nil {
			return nil, fmt.Errorf("kube-bench's config.yaml has no node.%s", component)
		}
		l := mappingValue(c, list)
		if l == nil {
			l = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			c.Content = append(c.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: list}, l)
		}
		if l.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("kube-bench's node.%s is not a list", key)
		}
		var add []*yaml.Node
		for _, p := range paths[key] {
			add = append(add, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p})
		}
		l.Content = append(add, l.Content...)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func mappingValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// benchResult is kube-bench's JSON report, as much as the test reads.
type benchResult struct {
	Controls []struct {
		Version string `json:"version"`
		Type    string `json:"node_type"`
		Tests   []struct {
			Section string `json:"section"`
			Results []struct {
				ID     string `json:"test_number"`
				Desc   string `json:"test_desc"`
				Status string `json:"status"`
				Reason string `json:"reason"`
				Actual string `json:"actual_value"`
			} `json:"results"`
		} `json:"tests"`
	} `json:"Controls"`
	Totals struct {
		Pass int `json:"total_pass"`
		Fail int `json:"total_fail"`
		Warn int `json:"total_warn"`
		Info int `json:"total_info"`
	} `json:"Totals"`
}

// check is one check's outcome.
type check struct{ id, desc, status, reason string }

func parseBench(b []byte) (benchResult, []check, error) {
	var r benchResult
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil {
		return r, nil, fmt.Errorf("decoding kube-bench's JSON report: %w", err)
	}
	var out []check
	for _, c := range r.Controls {
		for _, t := range c.Tests {
			for _, res := range t.Results {
				out = append(out, check{res.ID, res.Desc, res.Status, res.Reason})
			}
		}
	}
	slices.SortFunc(out, func(a, b check) int { return compareIDs(a.id, b.id) })
	return r, out, nil
}

// compareIDs orders check numbers like 4.2.9 < 4.2.10.
func compareIDs(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, errX := strconv.Atoi(as[i])
		y, errY := strconv.Atoi(bs[i])
		if errX != nil || errY != nil {
			if c := strings.Compare(as[i], bs[i]); c != 0 {
				return c
			}
			continue
		}
		if x != y {
			return x - y
		}
	}
	return len(as) - len(bs)
}
