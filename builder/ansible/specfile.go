package ansible

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/nodebake/nodebake/builder/ansible/inventory"
	"github.com/nodebake/nodebake/layers/spec"
)

// specHeader opens the written spec.
const specHeader = "# Imported from an Ansible tree by nodebake import ansible: the base spec with\n" +
	"# what the tree's variables say. What became what is in " + ReportFile + ".\n"

// buildSpec completes the spec: the pod network, then defaults, then
// validation, whose problems are refusals of the variables that set the
// fields.
func (im *importer) buildSpec() {
	im.podNetwork()
	s := im.out.Clone()
	s.Default()
	if err := s.Validate(); err != nil {
		var ve *spec.ValidationError
		if !errors.As(err, &ve) {
			im.probs.add("", inventory.Source{}, "", "validating the spec: %v", err)
			return
		}
		for _, fe := range ve.Errors {
			v := im.varOfField(fe.Path)
			if v == "" {
				im.probs.add("", inventory.Source{File: im.opts.BaseName}, "", "the base spec: %s", fe.Error())
				continue
			}
			im.refuse(v, "%s", fe.Error())
		}
	}
	im.out = s
}

// varOfField finds the variable that set a spec field (or a field under
// it).
func (im *importer) varOfField(p string) string {
	best := ""
	for f := range im.fieldVar {
		if (p == f || strings.HasPrefix(p, f+".") || strings.HasPrefix(p, f+"[")) && len(f) > len(best) {
			best = f
		}
	}
	if best == "" {
		// Kubelet, kube-proxy and kubectl follow kubernetes.version.
		if strings.HasPrefix(p, "components.kube") {
			return im.fieldVar["kubernetes.version"]
		}
		return ""
	}
	return im.fieldVar[best]
}

// podNetwork picks the pod network: bridge when every worker has a
// pod_cidr, the base spec's when none has.
func (im *importer) podNetwork() {
	if !im.hasInv {
		return
	}
	var with, without []string
	for _, w := range im.workers {
		if im.ev.scope(w, false).has(PodCIDRVar) {
			with = append(with, w)
		} else {
			without = append(without, w)
		}
	}
	switch {
	case len(with) == 0:
		if im.base.Kubernetes.PodNetwork == spec.PodNetworkBridge {
			im.probs.add(PodCIDRVar, inventory.Source{File: im.opts.BaseName}, "", "the base spec's pod network is bridge, which needs a pod CIDR per worker, and no worker has %s", PodCIDRVar)
		}
	case len(without) > 0:
		im.probs.add(PodCIDRVar, im.ev.scope(with[0], false).source(PodCIDRVar), "", "set for %s but not for %s: the bridge pod network needs a pod CIDR on every worker", strings.Join(with, ", "), strings.Join(without, ", "))
		im.setEntry(PodCIDRVar, Refused, "set for some workers only")
	default:
		if im.base.Kubernetes.PodNetwork != spec.PodNetworkBridge {
			im.decide(PodCIDRVar, "every worker has a pod CIDR, so the spec's kubernetes.podNetwork is bridge: first boot gives each node a bridge CNI on its pod CIDR and routes the other workers' pod CIDRs over wg0 (the base spec had %s)", im.base.Kubernetes.PodNetwork)
		}
		im.out.Kubernetes.PodNetwork = spec.PodNetworkBridge
		im.fieldVar["kubernetes.podNetwork"] = PodCIDRVar
	}
}

// specYAML writes the effective spec for OutputDir: relative paths are
// rebased onto it, and the result reads back to the same spec.
func (im *importer) specYAML() ([]byte, *spec.Spec, error) {
	outAbs, err := filepath.Abs(im.opts.OutputDir)
	if err != nil {
		return nil, nil, fmt.Errorf("writing the spec: %w", err)
	}
	s := im.out.Clone()
	if err := rebase(s, im.opts.Base.Dir, outAbs); err != nil {
		return nil, nil, err
	}
	s.Dir = outAbs
	body, err := s.Dump()
	if err != nil {
		return nil, nil, err
	}
	data := append([]byte(specHeader), body...)
	// The round trip: what is written parses, validates and dumps the same.
	back, err := spec.Parse(data)
	if err != nil {
		return nil, nil, fmt.Errorf("the written spec does not read back: %w", err)
	}
	back.Dir = outAbs
	back.Default()
	if err := back.Validate(); err != nil {
		return nil, nil, fmt.Errorf("the written spec does not validate: %w", err)
	}
	again, err := back.Dump()
	if err != nil || !bytes.Equal(again, body) {
		return nil, nil, fmt.Errorf("the written spec does not read back to itself")
	}
	return data, back, nil
}

// rebase rewrites the spec's relative paths (written relative to from) to
// be relative to to.
func rebase(s *spec.Spec, from, to string) error {
	if from == "" {
		from = "."
	}
	fromAbs, err := filepath.Abs(from)
	if err != nil {
		return err
	}
	move := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		abs := filepath.Join(fromAbs, p)
		rel, err := filepath.Rel(to, abs)
		// A relative path that climbs to the root says less than the
		// absolute one.
		up := strings.Count(rel+"/", "../")
		if err != nil || up > 0 && up >= strings.Count(filepath.Clean(to), string(filepath.Separator)) {
			return abs
		}
		return rel
	}
	image := func(ref string) string {
		src, err := spec.ParseImageSource(ref)
		if err != nil {
			return ref
		}
		switch src.Kind {
		case spec.ImageOCILayout:
			out := "oci:" + move(src.Path)
			if src.Digest != "" {
				out += "@" + src.Digest
			}
			return out
		case spec.ImageTarball:
			return "tarball:" + move(src.Path)
		}
		return ref
	}
	s.Base.Image = image(s.Base.Image)
	for k, c := range s.Components {
		if c.Image != "" {
			c.Image = image(c.Image)
			s.Components[k] = c
		}
	}
	for i := range s.Images {
		s.Images[i].Image = image(s.Images[i].Image)
	}
	for i := range s.Files {
		if s.Files[i].Source != "" {
			s.Files[i].Source = move(s.Files[i].Source)
		}
	}
	return nil
}

// specChanges lists what the import changed against the base spec: every
// leaf of the effective spec that differs, by path.
func specChanges(base, out *spec.Spec) ([]string, error) {
	a, err := specLeaves(base)
	if err != nil {
		return nil, err
	}
	b, err := specLeaves(out)
	if err != nil {
		return nil, err
	}
	paths := map[string]bool{}
	for p := range a {
		paths[p] = true
	}
	for p := range b {
		paths[p] = true
	}
	var lines []string
	for _, p := range sortedSet(paths) {
		av, inA := a[p]
		bv, inB := b[p]
		switch {
		case strings.HasPrefix(p, "base.") || strings.HasPrefix(p, "images") || strings.HasPrefix(p, "files"):
			// Paths are rebased; the same sources.
		case !inA:
			lines = append(lines, fmt.Sprintf("%s: %s (added)", p, bv))
		case !inB:
			lines = append(lines, fmt.Sprintf("%s: removed (was %s)", p, av))
		case av != bv:
			lines = append(lines, fmt.Sprintf("%s: %s (was %s)", p, bv, av))
		}
	}
	return lines, nil
}

// specLeaves flattens an effective spec into path → YAML scalar text.
func specLeaves(s *spec.Spec) (map[string]string, error) {
	d := s.Clone()
	d.Default()
	d.Dir = ""
	b, err := d.Dump()
	if err != nil {
		return nil, err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, err
	}
	out := map[string]string{}
	var walk func(p string, n *yaml.Node)
	walk = func(p string, n *yaml.Node) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(p, c)
			}
		case yaml.MappingNode:
			if len(n.Content) == 0 {
				out[p] = "{}"
			}
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if p != "" {
					k = p + "." + k
				}
				walk(k, n.Content[i+1])
			}
		case yaml.SequenceNode:
			var items []string
			for _, c := range n.Content {
				if c.Kind != yaml.ScalarNode {
					for i, c2 := range n.Content {
						walk(fmt.Sprintf("%s[%d]", p, i), c2)
					}
					return
				}
				items = append(items, c.Value)
			}
			out[p] = "[" + strings.Join(items, ", ") + "]"
		default:
			out[p] = n.Value
		}
	}
	walk("", &root)
	return out, nil
}
