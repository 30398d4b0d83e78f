package ansible

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nodebake/nodebake/builder/ansible/inventory"
)

// nodeVarSummary says what a per-host WireGuard variable becomes.
func nodeVarSummary(name string) string {
	return map[string]string{
		"wireguard_address":              "wg0's address: wireguard.address of the worker's node config, and its allowed IPs (/32) as everyone's peer",
		"wireguard_addresses":            "wg0's address: wireguard.address of the worker's node config, and its allowed IPs (/32, /128) as everyone's peer",
		"wireguard_port":                 "wireguard.listenPort of the worker's node config, and the port of its endpoint as a peer",
		"wireguard_endpoint":             "where peers reach the host: the endpoint of its peer entries (\"\": none, as the role does)",
		"wireguard_persistent_keepalive": "persistentKeepalive of its peer entries (when it has an endpoint, as the role does)",
		"wireguard_allowed_ips":          "the allowed IPs of its peer entries, instead of its addresses",
		"wireguard_private_key":          "wireguard.privateKey of the worker's node config; its public key goes to every peer",
		"wireguard_unmanaged_peers":      "extra peers of the worker's node config",
		"wireguard_interface":            "checked: wg0, the interface first boot configures",
		PodCIDRVar:                       "kubernetes.podCIDR of the worker's node config, and an allowed IP of its peer entries (routed over wg0)",
	}[name]
}

// classifyAll gives every variable of the tree its bucket.
func (im *importer) classifyAll() {
	usedBy := map[string]map[string]bool{}
	for _, sc := range im.ev.scopes {
		for owner, names := range sc.refs {
			for n := range names {
				if usedBy[n] == nil {
					usedBy[n] = map[string]bool{}
				}
				usedBy[n][owner] = true
			}
		}
	}
	all := im.tree.AllVars()
	defer func() {
		for _, name := range sortedKeys(usedBy) {
			if im.entries[name] != nil {
				im.line(name, "used by %s", strings.Join(sortedSet(usedBy[name]), ", "))
			}
		}
	}()
	for _, name := range sortedKeys(all) {
		if im.entries[name] != nil {
			continue
		}
		k := lookupKnown(name)
		workersSeeing := im.workersSeeing(name)
		switch k.how {
		case noMeaning:
			im.setEntry(name, NoMeaning, k.reason)
		case workerRefused:
			if len(workersSeeing) == 0 {
				im.setEntry(name, NoMeaning, "set only for hosts that are not workers")
				continue
			}
			for _, w := range workersSeeing {
				im.probs.add(name, im.ev.scope(w, false).source(name), w, "%s", k.reason)
			}
			im.setEntry(name, Refused, k.reason)
		case imageVar:
			im.setEntry(name, NoMeaning, "not applied to any worker (set only for other hosts or groups)")
		case nodeVar:
			im.classifyNodeVar(name)
		case specialVar:
			switch name {
			case "k8s_config_directory":
				im.setEntry(name, PerNode, "the kubeconfigs Ansible made per host are not used: first boot writes kubelet's and kube-proxy's kubeconfigs from each node config's certificates and API server")
			case "k8s_ca_conf_directory":
				im.setEntry(name, Mapped, "the CA's output directory (read for node configs; none were made without an inventory)")
			default:
				im.setEntry(name, NoMeaning, reasonOtherRole)
			}
		default:
			if len(usedBy[name]) > 0 {
				im.setEntry(name, Mapped, "a helper variable")
				continue
			}
			if s := suggestKnown(name); s != "" && len(name) >= 6 {
				im.probs.add(name, all[name][0].Source, "", "not a variable nodebake knows (did you mean %s?)", s)
				im.setEntry(name, Refused, "unknown: did you mean "+s+"?")
				continue
			}
			refused := false
			for _, p := range workerRolePrefixes() {
				if strings.HasPrefix(name, p) {
					im.probs.add(name, all[name][0].Source, "", "not a variable of %s that nodebake knows (it knows the seed's version of the role)", roleOf(p))
					im.setEntry(name, Refused, "unknown variable of "+roleOf(p))
					refused = true
				}
			}
			if !refused {
				im.setEntry(name, NoMeaning, "not a variable of the roles a worker runs (containerd, kubernetes-worker, wireguard): nodebake does not read it")
			}
		}
	}
}

// workersSeeing returns the workers a variable applies to.
func (im *importer) workersSeeing(name string) []string {
	var out []string
	for _, w := range im.workers {
		if im.ev.scope(w, false).has(name) {
			out = append(out, w)
		}
	}
	return out
}

func (im *importer) classifyNodeVar(name string) {
	if !im.hasInv {
		im.setEntry(name, PerNode, "per host: without an inventory no node configs were made")
		return
	}
	im.setEntry(name, PerNode, nodeVarSummary(name))
	n := 0
	for _, h := range im.vpn {
		sc := im.ev.scope(h, false)
		if !sc.has(name) {
			continue
		}
		v, err := sc.eval(name)
		if err != nil {
			continue
		}
		shown := show(v)
		if name == "wireguard_private_key" {
			shown = "(secret)"
		}
		im.line(name, "%s: %s", h, shown)
		n++
	}
	if name != "wireguard_interface" && n > 0 {
		im.perNode = append(im.perNode, perNodeLine{what: name, template: "per host", fill: nodeVarSummary(name)})
	}
}

// rawLine finds how the tree writes one key of a variable, to show the
// template as written: the line of a YAML text that sets it, or a
// mapping's value.
func (im *importer) rawLine(name, path string) string {
	sc := im.ev.scope(im.workers[0], true)
	r, ok := sc.vars[name]
	if !ok {
		return ""
	}
	text, ok := r.Value.(string)
	if !ok {
		if m, isMap := r.Value.(map[string]any); isMap {
			if s, isStr := m[path].(string); isStr {
				return s
			}
		}
		return ""
	}
	key := path[strings.LastIndex(path, ".")+1:]
	for _, l := range strings.Split(text, "\n") {
		if t := strings.TrimSpace(l); strings.HasPrefix(t, key+":") {
			return t
		}
	}
	return ""
}

// report writes the report.
func (im *importer) report(specChanged []string, files []string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("nodebake import ansible: report")
	w("")
	w("Inputs")
	for _, n := range im.notes {
		indent := "              "
		if strings.HasPrefix(n, "  ") {
			indent = "      "
		}
		w("%s", wrap("  ", n, indent))
	}
	if im.opts.Base != nil {
		w("  base spec:  %s", orDefault(im.opts.BaseName, "(given)"))
	}
	if im.certsDir != "" {
		w("  CA output:  %s", im.certsDir)
	}
	w("")

	counts := map[Bucket]int{}
	for _, e := range im.entries {
		counts[e.bucket]++
	}
	w("Summary")
	w("  %d variables: %d mapped, %d per node, %d with no meaning in an immutable image, %d refused",
		len(im.entries), counts[Mapped], counts[PerNode], counts[NoMeaning], counts[Refused])
	w("  spec: %s (kubernetes %s, pod network %s)", SpecFile, im.out.Kubernetes.Version, im.out.Kubernetes.PodNetwork)
	if im.hasInv {
		var names []string
		for _, n := range im.nodes {
			names = append(names, n.name)
		}
		w("  node configs: %d (%s)", len(im.nodes), strings.Join(names, ", "))
	} else {
		w("  node configs: none (no inventory)")
	}
	w("  decisions to look at: %d", len(dedup(im.decisions)))
	w("")

	w("What the spec changes against the base spec")
	if len(specChanged) == 0 {
		w("  nothing: the spec is the base spec")
	}
	for _, c := range specChanged {
		w("  %s", c)
	}
	w("")

	w("Variables (every variable of the tree: what became of it)")
	all := im.tree.AllVars()
	for _, name := range sortedKeys(im.entries) {
		e := im.entries[name]
		w("  %s", name)
		w("%s", wrap("    "+string(e.bucket)+": ", e.summary, "      "))
		if srcs := all[name]; len(srcs) > 0 {
			w("%s", wrap("      set in ", sourceList(srcs), "        "))
		}
		for _, l := range e.lines {
			w("%s", wrap("      - ", l, "        "))
		}
	}
	w("")

	w("What differs per node (the node configs carry it; first boot fills it in)")
	if len(im.perNode) == 0 {
		w("  nothing")
	}
	for _, p := range im.perNode {
		w("  %s", p.what)
		if p.template != "per host" {
			w("      in the tree: %s", p.template)
		}
		w("%s", wrap("      filled in: ", p.fill, "        "))
	}
	w("")

	w("Needs a decision")
	ds := dedup(im.decisions)
	if len(ds) == 0 {
		w("  nothing")
	}
	for i, d := range ds {
		prefix := fmt.Sprintf("  %d. ", i+1)
		w("%s", wrap(prefix, d, strings.Repeat(" ", len(prefix))))
	}
	w("")

	w("Node configs")
	if len(im.nodes) == 0 {
		w("  none")
	}
	for _, n := range im.nodes {
		w("  %s (host %s)", n.name, n.host)
		wg := n.cfg.WireGuard
		w("      wg0 %s, listen port %d, private key: %s", wg.Address, wg.ListenPort, n.keyNote)
		w("%s", wrap("      peers: ", fmt.Sprintf("%d: %s", len(n.peers), strings.Join(n.peers, ", ")), "        "))
		if len(n.omitted) > 0 {
			w("%s", wrap("      not peers: ", strings.Join(n.omitted, ", ")+" (neither side has an endpoint, as the role leaves them out)", "        "))
		}
		w("      API server %s", n.cfg.Kubernetes.APIServer)
		if n.cfg.Kubernetes.PodCIDR != "" {
			w("      pod CIDR %s", n.cfg.Kubernetes.PodCIDR)
		}
		w("      files: %s", strings.Join(n.files, ", "))
	}
	w("")
	w("Files written (in %s)", "the output directory")
	for _, f := range files {
		w("  %s", f)
	}
	return b.String()
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func dedup(l []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range l {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func sourceList(vs []inventory.Var) string {
	var parts []string
	seen := map[string]bool{}
	for _, v := range vs {
		s := v.Source.String()
		if !seen[s] {
			seen[s] = true
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ", ")
}

// wrap writes text after a first-line prefix, wrapped at 100 columns with
// later lines indented.
func wrap(first, text, indent string) string {
	const width = 100
	if len(first)+len(text) <= width {
		return first + text
	}
	words := strings.Fields(text)
	var b strings.Builder
	line := first
	empty := true
	for _, wd := range words {
		if !empty && len(line)+1+len(wd) > width {
			b.WriteString(strings.TrimRight(line, " ") + "\n")
			line, empty = indent, true
		}
		if !empty {
			line += " "
		}
		line += wd
		empty = false
	}
	b.WriteString(strings.TrimRight(line, " "))
	return b.String()
}

// write stages the spec and the report and returns the result.
func (im *importer) write(st *stager) (*Result, error) {
	data, written, err := im.specYAML()
	if err != nil {
		return nil, err
	}
	changes, err := specChanges(im.base, im.out)
	if err != nil {
		return nil, err
	}
	specPath := filepath.Join(im.opts.OutputDir, SpecFile)
	if _, err := st.add(specPath, data, 0o644); err != nil {
		return nil, err
	}
	var files []string
	for _, f := range st.files {
		files = append(files, im.rel(f.final))
	}
	files = append(files, ReportFile)
	sort.Strings(files)
	rep := im.report(changes, files)
	if _, err := st.add(filepath.Join(im.opts.OutputDir, ReportFile), []byte(rep), 0o644); err != nil {
		return nil, err
	}
	res := &Result{Spec: written, Report: rep, Files: files}
	for _, n := range im.nodes {
		node := Node{Host: n.host, Name: n.name, Config: n.files[0]}
		for _, f := range n.files[1:] {
			if strings.HasSuffix(f, ".drive.img") {
				node.Drive = f
			} else {
				node.UserData = f
			}
		}
		res.Nodes = append(res.Nodes, node)
	}
	return res, nil
}
