package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/test/e2e/internal/probe"
)

// node is the part of a Node object the test reads.
type node struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Status struct {
		Conditions []struct {
			Type    string `json:"type"`
			Status  string `json:"status"`
			Reason  string `json:"reason"`
			Message string `json:"message"`
		} `json:"conditions"`
		Addresses []struct {
			Type    string `json:"type"`
			Address string `json:"address"`
		} `json:"addresses"`
		NodeInfo struct {
			KubeletVersion   string `json:"kubeletVersion"`
			KubeProxyVersion string `json:"kubeProxyVersion"`
			BootID           string `json:"bootID"`
			OSImage          string `json:"osImage"`
			KernelVersion    string `json:"kernelVersion"`
			ContainerRuntime string `json:"containerRuntimeVersion"`
		} `json:"nodeInfo"`
	} `json:"status"`
}

// ready reports whether the node's Ready condition is True.
func (n node) ready() bool {
	for _, c := range n.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

// address returns the node's address of a type (InternalIP, Hostname).
func (n node) address(typ string) string {
	for _, a := range n.Status.Addresses {
		if a.Type == typ {
			return a.Address
		}
	}
	return ""
}

// pod is the part of a Pod object the test reads.
type pod struct {
	Metadata struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
	Status struct {
		Phase      string `json:"phase"`
		PodIP      string `json:"podIP"`
		Reason     string `json:"reason"`
		Message    string `json:"message"`
		Conditions []struct {
			Type               string `json:"type"`
			Status             string `json:"status"`
			LastTransitionTime string `json:"lastTransitionTime"`
		} `json:"conditions"`
		ContainerStatuses []struct {
			Ready        bool `json:"ready"`
			RestartCount int  `json:"restartCount"`
			State        struct {
				Waiting *struct {
					Reason  string `json:"reason"`
					Message string `json:"message"`
				} `json:"waiting"`
				Running *struct {
					StartedAt string `json:"startedAt"`
				} `json:"running"`
				Terminated *struct {
					ExitCode int    `json:"exitCode"`
					Reason   string `json:"reason"`
					Message  string `json:"message"`
				} `json:"terminated"`
			} `json:"state"`
		} `json:"containerStatuses"`
	} `json:"status"`
}

// ready reports whether the pod runs with every container ready.
func (p pod) ready() bool {
	if p.Status.Phase != "Running" || len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, c := range p.Status.ContainerStatuses {
		if !c.Ready {
			return false
		}
	}
	return true
}

// readySince is when the pod's Ready condition last became true; the zero
// time when it is not true.
func (p pod) readySince() time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" && c.Status == "True" {
			t, err := time.Parse(time.RFC3339, c.LastTransitionTime)
			if err == nil {
				return t
			}
		}
	}
	return time.Time{}
}

// startedAt is when the running container started ("" when none runs).
func (p pod) startedAt() string {
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Running != nil {
			return c.State.Running.StartedAt
		}
	}
	return ""
}

// url is where the pod's web server answers.
func (p pod) url() string { return "http://" + net.JoinHostPort(p.Status.PodIP, "80") + "/" }

// terminationMessage is the first container's termination message.
func (p pod) terminationMessage() string {
	for _, c := range p.Status.ContainerStatuses {
		if c.State.Terminated != nil {
			return c.State.Terminated.Message
		}
	}
	return ""
}

// describe says where the pod is, in one line.
func (p pod) describe() string {
	s := fmt.Sprintf("%s on %q: %s", p.Metadata.Name, p.Spec.NodeName, p.Status.Phase)
	if p.Status.Reason != "" {
		s += " (" + p.Status.Reason + ")"
	}
	for _, c := range p.Status.ContainerStatuses {
		switch {
		case c.State.Waiting != nil:
			s += fmt.Sprintf("; waiting: %s %s", c.State.Waiting.Reason, c.State.Waiting.Message)
		case c.State.Terminated != nil:
			s += fmt.Sprintf("; exit %d %s: %q", c.State.Terminated.ExitCode, c.State.Terminated.Reason, c.State.Terminated.Message)
		}
	}
	return s
}

func (cp *controlPlane) nodes(ctx context.Context) ([]node, error) {
	var l struct {
		Items []node `json:"items"`
	}
	return l.Items, cp.get(ctx, "/api/v1/nodes", &l)
}

func (cp *controlPlane) pods(ctx context.Context, selector string) ([]pod, error) {
	var l struct {
		Items []pod `json:"items"`
	}
	return l.Items, cp.get(ctx, "/api/v1/namespaces/default/pods?labelSelector="+url.QueryEscape(selector), &l)
}

// maxResponse bounds what the test reads from the API server in one
// request.
const maxResponse = 64 << 20

// get reads an API path as admin and decodes the JSON answer into v. The
// test polls the API server this way rather than through kubectl: a
// kubectl run every two seconds costs the host's cores, which the TCG
// guests need.
func (cp *controlPlane) get(ctx context.Context, path string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+cp.hostAddr()+path, nil)
	if err != nil {
		return err
	}
	resp, err := cp.api.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxResponse)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(body, 1024))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: decoding: %w", path, err)
	}
	return nil
}

// nodeNames returns the sorted names of the nodes.
func nodeNames(ns []node) []string {
	var names []string
	for _, n := range ns {
		names = append(names, n.Metadata.Name)
	}
	slices.Sort(names)
	return names
}

// podSpec is a one-shot pod of the test image that runs probe steps.
type podSpec struct {
	name     string
	nodeName string // pins the pod, bypassing the scheduler
	steps    [][]string
	// mounts are host paths mounted at the same path in the container.
	mounts []mount
}

// mount is a host path the pod mounts; a writable one is created when
// missing.
type mount struct {
	path     string
	readOnly bool
}

// webImage is the test image's reference in the nodes' containerd.
const webImage = "nodebake.test/web:1"

// manifest renders a one-shot pod as JSON.
func (p podSpec) manifest() string {
	c := map[string]any{
		"name": "web", "image": webImage, "imagePullPolicy": "Never", "args": probe.Args(p.steps...),
	}
	spec := map[string]any{
		"restartPolicy":                 "Never",
		"nodeName":                      p.nodeName,
		"automountServiceAccountToken":  false,
		"enableServiceLinks":            false,
		"terminationGracePeriodSeconds": 5,
		"containers":                    []any{c},
	}
	var volumes, mounts []any
	for i, m := range p.mounts {
		typ := "DirectoryOrCreate"
		if m.readOnly {
			typ = "Directory"
		}
		name := fmt.Sprintf("host%d", i)
		volumes = append(volumes, map[string]any{"name": name, "hostPath": map[string]any{"path": m.path, "type": typ}})
		mounts = append(mounts, map[string]any{"name": name, "mountPath": m.path, "readOnly": m.readOnly})
	}
	if len(volumes) > 0 {
		spec["volumes"] = volumes
		c["volumeMounts"] = mounts
	}
	b, _ := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"name": p.name, "labels": map[string]any{"app": "e2e-job"}},
		"spec":     spec,
	})
	return string(b)
}

// webDeployment is two replicas of the test image's server, one per node.
func webDeployment() string {
	labels := map[string]any{"app": "web"}
	b, _ := json.Marshal(map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web"},
		"spec": map[string]any{
			"replicas": 2,
			"selector": map[string]any{"matchLabels": labels},
			"template": map[string]any{
				"metadata": map[string]any{"labels": labels},
				"spec": map[string]any{
					"automountServiceAccountToken":  false,
					"enableServiceLinks":            false,
					"terminationGracePeriodSeconds": 5,
					"affinity": map[string]any{"podAntiAffinity": map[string]any{
						"requiredDuringSchedulingIgnoredDuringExecution": []any{map[string]any{
							"labelSelector": map[string]any{"matchLabels": labels},
							"topologyKey":   "kubernetes.io/hostname",
						}},
					}},
					"containers": []any{map[string]any{
						"name": "web", "image": webImage, "imagePullPolicy": "Never",
						"args":  []any{"serve"},
						"ports": []any{map[string]any{"containerPort": 80}},
						"readinessProbe": map[string]any{
							"httpGet":       map[string]any{"path": "/", "port": 80},
							"periodSeconds": 5,
						},
					}},
				},
			},
		},
	})
	return string(b)
}

// webService is a ClusterIP service in front of the web deployment.
func webService() string {
	b, _ := json.Marshal(map[string]any{
		"apiVersion": "v1", "kind": "Service",
		"metadata": map[string]any{"name": "web"},
		"spec": map[string]any{
			"selector": map[string]any{"app": "web"},
			"ports":    []any{map[string]any{"port": 80, "targetPort": 80}},
		},
	})
	return string(b)
}

// TestPodReadySince reads the Ready condition the way waitWeb relies on.
func TestPodReadySince(t *testing.T) {
	for _, tc := range []struct {
		name, json string
		want       time.Time
	}{
		{"ready", `{"status":{"conditions":[{"type":"Initialized","status":"True","lastTransitionTime":"2026-01-01T00:00:00Z"},{"type":"Ready","status":"True","lastTransitionTime":"2026-01-02T03:04:05Z"}]}}`,
			time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"not ready", `{"status":{"conditions":[{"type":"Ready","status":"False","lastTransitionTime":"2026-01-02T03:04:05Z"}]}}`, time.Time{}},
		{"no conditions", `{"status":{}}`, time.Time{}},
	} {
		var p pod
		if err := json.Unmarshal([]byte(tc.json), &p); err != nil {
			t.Fatal(err)
		}
		if got := p.readySince(); !got.Equal(tc.want) {
			t.Errorf("%s: readySince = %v, want %v", tc.name, got, tc.want)
		}
	}
}
