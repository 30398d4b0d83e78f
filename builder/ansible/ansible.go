// Package ansible imports a worker set up the seed's way — Ansible roles
// (githubixx.containerd, githubixx.kubernetes-worker, githubixx.wireguard
// and a CA) driven by group_vars, host_vars and an inventory — into a
// nodebake spec and one node config per worker.
//
// Every variable of the tree lands in one bucket, and the report says
// which: mapped (it became a spec field, or was checked against the
// image), per node (the node configs carry it and first boot fills it in),
// no meaning in an immutable image (download directories, file owners,
// service state), or refused (the import fails, naming the variable, its
// file and the reason). Nothing is dropped without a line in the report.
//
// The variables are Jinja templates; package jinja evaluates the subset
// the roles use, and an expression that depends on the host (the node's
// wg0 address, cert-{{ inventory_hostname }}.pem) becomes a placeholder
// that must land where first boot fills the value in.
package ansible

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/nodebake/nodebake/builder/ansible/inventory"
	"github.com/nodebake/nodebake/layers/spec"
)

// PodCIDRVar is the host variable that gives a worker its pod CIDR. The
// seed's roles have none (its Cilium allocates pod networks); nodebake
// reads it to give each node config its podCIDR and the bridge pod network.
const PodCIDRVar = "pod_cidr"

// Defaults of Options.
const (
	DefaultWorkerGroup     = "k8s_worker"
	DefaultVPNGroup        = "vpn"
	DefaultControllerGroup = "k8s_controller"
	// DefaultAPIServerPort is the API server's port when the tree does not
	// say (k8s_apiserver_secure_port, the seed's 6443).
	DefaultAPIServerPort = 6443
	// DefaultNewestMinor is the newest Kubernetes minor release when this
	// was written (2026-12: v1.37).
	DefaultNewestMinor = 37
	// SupportedMinors is how many minor releases the Kubernetes project
	// maintains at a time: the three newest (each for about 14 months).
	SupportedMinors = 3
)

// Output file names, relative to Options.OutputDir.
const (
	SpecFile   = "spec.yaml"
	ReportFile = "import-report.txt"
	NodesDir   = "nodes"
	KeysDir    = "wireguard"
)

// Options says what to import and where to write it.
type Options struct {
	// GroupVars is a group_vars directory, or one GROUP.yml file.
	// Required.
	GroupVars string
	// HostVars is a host_vars directory (optional).
	HostVars string
	// Inventory is an INI or YAML inventory file. Without one there are no
	// node configs, and the worker is taken to be in the groups "all",
	// WorkerGroup and VPNGroup.
	Inventory string
	// Base is the spec the import starts from: the base OS, the
	// components' sources and checksums, the outputs (what an Ansible tree
	// does not say in nodebake's terms). Required.
	Base *spec.Spec
	// BaseName names the base spec in the report (its file).
	BaseName string
	// OutputDir receives SpecFile, ReportFile, NodesDir/NODE.yaml and, by
	// default, the WireGuard keys. Required.
	OutputDir string
	// CertDir is the CA's output (the seed's file names); default: the
	// value of k8s_ca_conf_directory.
	CertDir string
	// APIServer is the API server's https URL; default: the wg0 address
	// of the first host of ControllerGroup, as the seed's kubelet
	// kubeconfig playbook does, and k8s_apiserver_secure_port.
	APIServer string
	// KeyDir holds the WireGuard keys, HOST.key (private, 0600) and
	// HOST.pub: read when present, generated when not. Default:
	// OutputDir/KeysDir.
	KeyDir string
	// WorkerGroup, VPNGroup and ControllerGroup name the inventory groups.
	WorkerGroup, VPNGroup, ControllerGroup string
	// ConfigDrives also writes each node's config drive
	// (NodesDir/NODE.drive.img).
	ConfigDrives bool
	// UserData also writes each node's cloud user data: the node config,
	// gzip'd (NodesDir/NODE.user-data.gz).
	UserData bool
	// HomeDir is what expanduser turns ~ into (the user running Ansible).
	HomeDir string
	// Now is when the node configs' certificates must be valid.
	Now time.Time
	// Rand is the source of generated keys; default crypto/rand.
	Rand io.Reader
	// NewestMinor is the newest Kubernetes minor release, for the support
	// note; default DefaultNewestMinor.
	NewestMinor int
}

// Problem is one thing the import refuses: the variable (or host), where it
// is set, and why.
type Problem struct {
	Variable string
	Source   inventory.Source
	// Host is the host the problem is about, if any.
	Host string
	Msg  string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Source.File != "" {
		b.WriteString(p.Source.String() + ": ")
	}
	if p.Variable != "" {
		b.WriteString(p.Variable)
		if p.Host != "" {
			b.WriteString(" (" + p.Host + ")")
		}
		b.WriteString(": ")
	} else if p.Host != "" {
		b.WriteString(p.Host + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error is every problem that made the import refuse, in a stable order.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "the import refuses:\n  " + strings.Join(lines, "\n  ")
}

// Has reports whether a problem names the variable.
func (e *Error) Has(variable string) bool {
	for _, p := range e.Problems {
		if p.Variable == variable {
			return true
		}
	}
	return false
}

// Node is one worker's node config.
type Node struct {
	// Host is the inventory host; Name the node name (from its
	// certificate).
	Host, Name string
	// Config is the node config file, relative to OutputDir.
	Config string
	// Drive and UserData are the optional config drive and user data.
	Drive, UserData string
}

// Result is what an import wrote.
type Result struct {
	// Spec is the effective spec written to SpecFile.
	Spec *spec.Spec
	// Report is the report written to ReportFile.
	Report string
	Nodes  []Node
	// Files are every file written, relative to OutputDir when inside it.
	Files []string
}

func (o *Options) defaults() {
	if o.WorkerGroup == "" {
		o.WorkerGroup = DefaultWorkerGroup
	}
	if o.VPNGroup == "" {
		o.VPNGroup = DefaultVPNGroup
	}
	if o.ControllerGroup == "" {
		o.ControllerGroup = DefaultControllerGroup
	}
	if o.NewestMinor == 0 {
		o.NewestMinor = DefaultNewestMinor
	}
}

// problems collects refusals.
type problems []Problem

func (ps *problems) add(variable string, src inventory.Source, host, format string, args ...any) {
	*ps = append(*ps, Problem{Variable: variable, Source: src, Host: host, Msg: fmt.Sprintf(format, args...)})
}

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	out := append([]Problem(nil), ps...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Variable != out[j].Variable {
			return out[i].Variable < out[j].Variable
		}
		return out[i].Host < out[j].Host
	})
	// The same refusal reached twice (say, once per worker) is one.
	var dedup []Problem
	for i, p := range out {
		if i > 0 && p == out[i-1] {
			continue
		}
		dedup = append(dedup, p)
	}
	return &Error{Problems: dedup}
}
