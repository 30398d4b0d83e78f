package nodebake

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"

	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/spec"
)

// Spec returns the worker image spec the configuration describes: the
// spec_file, when set, with every value set in the configuration laid over
// it. workDir is the spec's Dir when there is no spec_file: relative paths
// resolve against it. Spec neither fills in defaults nor validates. Problems
// come back as a *spec.ValidationError whose paths are configuration
// (snake_case) paths.
func (c *Config) Spec(workDir string) (*spec.Spec, error) {
	s, errs, err := c.overlay(workDir)
	if err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, &spec.ValidationError{Errors: errs}
	}
	return s, nil
}

// overlay lays the configuration over the spec file (or an empty spec)
// and returns the result together with the values it could not take (bad
// JSON, bad sizes), which it leaves out. err is set when the spec file
// cannot be loaded.
func (c *Config) overlay(workDir string) (*spec.Spec, []spec.FieldError, error) {
	s := &spec.Spec{APIVersion: spec.APIVersion, Kind: spec.Kind, Dir: workDir}
	if c.SpecFile != "" {
		loaded, err := spec.Load(c.SpecFile)
		if err != nil {
			return nil, nil, fmt.Errorf("spec_file: %w", err)
		}
		s = loaded
	}
	var errs []spec.FieldError
	fail := func(path, format string, args ...any) {
		errs = append(errs, spec.FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
	}

	setString(&s.Name, c.Name)
	setString((*string)(&s.Arch), c.Arch)
	if c.SourceDateEpoch != nil {
		s.SourceDateEpoch = *c.SourceDateEpoch
	}

	setString(&s.Base.Image, c.Base.Image)
	setString(&s.Base.Digest, c.Base.Digest)

	k := &s.Kubernetes
	setString(&k.Version, c.Kubernetes.Version)
	setString(&k.ServiceCIDR, c.Kubernetes.ServiceCIDR)
	setString(&k.ClusterCIDR, c.Kubernetes.ClusterCIDR)
	setString((*string)(&k.PodNetwork), c.Kubernetes.PodNetwork)

	seen := map[spec.ComponentName]int{}
	for i, cc := range c.Components {
		p := fmt.Sprintf("component[%d].name", i)
		cat, ok := components.Find(cc.Name)
		switch {
		case cc.Name == "":
			fail(p, "required")
			continue
		case !ok:
			fail(p, "unknown component %q (known: %s)", cc.Name, components.KnownKeys())
			continue
		}
		if j, dup := seen[cat.Key]; dup {
			fail(p, "%s is already set by component[%d]", cat.Key, j)
			continue
		}
		seen[cat.Key] = i
		comp := s.Components[cat.Key]
		overlayComponent(&comp, cc)
		s.SetComponent(cat.Key, comp)
	}

	setString(&s.Sources.Mirror, c.Sources.Mirror)
	if c.Sources.Retries != nil {
		s.Sources.Retries = ptr(*c.Sources.Retries)
	}

	var err error
	s.Kubelet.Settings = overlaySettings(s.Kubelet.Settings, c.Kubelet)
	if s.Kubelet.Config, err = overlayConfig(s.Kubelet.Config, c.Kubelet.ConfigJSON); err != nil {
		fail("kubelet.config_json", "%v", err)
	}
	s.KubeProxy.Settings = overlaySettings(s.KubeProxy.Settings, c.KubeProxy)
	if s.KubeProxy.Config, err = overlayConfig(s.KubeProxy.Config, c.KubeProxy.ConfigJSON); err != nil {
		fail("kube_proxy.config_json", "%v", err)
	}

	if c.Containerd.SystemdCgroup != nil {
		s.Containerd.SystemdCgroup = ptr(*c.Containerd.SystemdCgroup)
	}
	setString(&s.Containerd.SandboxImage, c.Containerd.SandboxImage)

	for _, im := range c.Images {
		s.Images = append(s.Images, spec.Image{Ref: im.Ref, Image: im.Image, Digest: im.Digest})
	}
	for _, f := range c.Files {
		sf := spec.File{Path: f.Path, Source: f.Source, Link: f.Link, Directory: f.Directory, Mode: f.Mode, UID: f.UID, GID: f.GID}
		if f.Content != nil {
			sf.Content = ptr(*f.Content)
		}
		s.Files = append(s.Files, sf)
	}

	o := &s.Output
	if len(c.Output.Formats) > 0 {
		o.Formats = o.Formats[:0]
		for _, f := range c.Output.Formats {
			o.Formats = append(o.Formats, spec.Format(f))
		}
	}
	for _, sz := range []struct {
		path, value string
		dst         *spec.Size
	}{
		{"output.esp_size", c.Output.ESPSize, &o.ESPSize},
		{"output.var_size", c.Output.VarSize, &o.VarSize},
		{"output.disk_size", c.Output.DiskSize, &o.DiskSize},
	} {
		if sz.value == "" {
			continue
		}
		n, err := spec.ParseSize(sz.value)
		if err != nil {
			fail(sz.path, "%v", err)
			continue
		}
		*sz.dst = spec.Size(n)
	}
	// diskSize and varSize exclude each other: the one the configuration
	// sets replaces the other from the spec file.
	switch {
	case c.Output.DiskSize != "" && c.Output.VarSize == "":
		o.VarSize = 0
	case c.Output.VarSize != "" && c.Output.DiskSize == "":
		o.DiskSize = 0
	}
	if c.Output.RootCompressionLevel != nil {
		o.RootCompressionLevel = *c.Output.RootCompressionLevel
	}
	if len(c.Output.KernelArgs) > 0 {
		o.KernelArgs = append([]string(nil), c.Output.KernelArgs...)
	}
	if vc := c.Output.VerifiedBoot; vc != nil {
		v := &spec.VerifiedBoot{}
		if o.VerifiedBoot != nil {
			*v = *o.VerifiedBoot
		}
		v.Enabled = vc.Enabled
		setString(&v.Version, vc.Version)
		if vc.SlotSize != "" {
			if n, err := spec.ParseSize(vc.SlotSize); err != nil {
				fail("output.verified_boot.slot_size", "%v", err)
			} else {
				v.SlotSize = spec.Size(n)
			}
		}
		if vc.Tries != 0 {
			v.Tries = vc.Tries
		}
		if sg := vc.Signing; sg != nil {
			v.Signing = &spec.Signing{Key: sg.Key, Certificate: sg.Certificate}
		}
		if u := vc.Updates; u != nil {
			v.Updates = &spec.Updates{Source: u.Source, AllowHTTP: u.AllowHTTP, Timer: u.Timer}
		}
		o.VerifiedBoot = v
	}

	return s, errs, nil
}

func overlayComponent(dst *spec.Component, c ComponentConfig) {
	setString(&dst.Version, c.Version)
	setString((*string)(&dst.From), c.From)
	setString(&dst.URL, c.URL)
	setString(&dst.Image, c.Image)
	dst.SHA256 = overlaySums(dst.SHA256, c.SHA256)
	dst.SHA512 = overlaySums(dst.SHA512, c.SHA512)
}

func overlaySums(dst map[spec.Arch]string, over map[string]string) map[spec.Arch]string {
	if len(over) == 0 {
		return dst
	}
	dst = maps.Clone(dst)
	if dst == nil {
		dst = make(map[spec.Arch]string, len(over))
	}
	for k, v := range over {
		dst[spec.Arch(k)] = v
	}
	return dst
}

// overlaySettings sets the configured flags over dst and records the
// removed ones as nil values, the spec's removal marker.
func overlaySettings(dst map[string]*string, a AgentConfig) map[string]*string {
	if len(a.Settings) == 0 && len(a.RemoveSettings) == 0 {
		return dst
	}
	out := make(map[string]*string, len(dst)+len(a.Settings)+len(a.RemoveSettings))
	for k, v := range dst {
		if v != nil {
			v = ptr(*v)
		}
		out[k] = v
	}
	for k, v := range a.Settings {
		out[k] = ptr(v)
	}
	for _, k := range a.RemoveSettings {
		out[k] = nil
	}
	return out
}

// overlayConfig deep-merges a JSON object over dst the way the spec merges
// its configuration over the defaults: objects merge key by key, lists and
// scalars replace, and null is kept as the marker that removes a key.
func overlayConfig(dst map[string]any, js string) (map[string]any, error) {
	if strings.TrimSpace(js) == "" {
		return dst, nil
	}
	over, err := decodeJSONObject(js)
	if err != nil {
		return dst, err
	}
	return spec.MergeConfig(dst, over), nil
}

// decodeJSONObject decodes a JSON object into the types a YAML spec
// decodes to (integers as int), so that equal content gives an equal spec
// hash whichever way it was written.
func decodeJSONObject(js string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(js))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid JSON: more than one value")
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want a JSON object, got %s", describeJSON(v))
	}
	return normalizeJSON(m).(map[string]any), nil
}

func normalizeJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = normalizeJSON(e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = normalizeJSON(e)
		}
		return v
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return int(i)
		}
		f, err := v.Float64()
		if err != nil {
			return v.String()
		}
		return f
	}
	return v
}

func describeJSON(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func setString(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func ptr[T any](v T) *T { return &v }
