package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"

	"gopkg.in/yaml.v3"
)

// Dump returns the spec as YAML with two-space indentation and sorted map
// keys. After Default it is the effective spec; Parse reads it back.
func (s *Spec) Dump() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("encoding spec: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encoding spec: %w", err)
	}
	return b.Bytes(), nil
}

// Hash returns the hex sha256 of the Dump of the defaulted spec. Equal
// effective specs have equal hashes; the build derives disk and partition
// GUIDs from it. Dir is not part of it.
func (s *Spec) Hash() (string, error) {
	d := s.defaulted()
	// The formats say which files are published, not what the image
	// holds: the same image, whatever formats it is published in.
	d.Output.Formats = nil
	// Nor does the signing key: a signed image has the same root as the
	// unsigned one (only systemd-boot and the UKI carry signatures).
	if d.Output.VerifiedBoot != nil {
		d.Output.VerifiedBoot.Signing = nil
	}
	b, err := d.Dump()
	if err != nil {
		return "", fmt.Errorf("hashing spec: %w", err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// defaulted returns a defaulted deep copy of s.
func (s *Spec) defaulted() *Spec {
	d := s.Clone()
	d.Default()
	return d
}

// Clone returns a deep copy of s.
func (s *Spec) Clone() *Spec {
	d := *s
	d.Components = s.Components.clone()
	if s.Sources.Retries != nil {
		d.Sources.Retries = ptr(*s.Sources.Retries)
	}
	d.Kubelet.Settings = cloneSettings(s.Kubelet.Settings)
	d.KubeProxy.Settings = cloneSettings(s.KubeProxy.Settings)
	if s.Kubelet.Config != nil {
		d.Kubelet.Config = deepCopy(s.Kubelet.Config).(map[string]any)
	}
	if s.KubeProxy.Config != nil {
		d.KubeProxy.Config = deepCopy(s.KubeProxy.Config).(map[string]any)
	}
	if s.Containerd.SystemdCgroup != nil {
		d.Containerd.SystemdCgroup = ptr(*s.Containerd.SystemdCgroup)
	}
	d.Images = slices.Clone(s.Images)
	d.Files = slices.Clone(s.Files)
	for i := range d.Files {
		if c := d.Files[i].Content; c != nil {
			d.Files[i].Content = ptr(*c)
		}
	}
	d.Output.Formats = slices.Clone(s.Output.Formats)
	d.Output.KernelArgs = slices.Clone(s.Output.KernelArgs)
	if v := s.Output.VerifiedBoot; v != nil {
		c := *v
		if v.Signing != nil {
			sg := *v.Signing
			c.Signing = &sg
		}
		if v.Updates != nil {
			u := *v.Updates
			c.Updates = &u
		}
		d.Output.VerifiedBoot = &c
	}
	return &d
}

func cloneSettings(m map[string]*string) map[string]*string {
	if m == nil {
		return nil
	}
	out := make(map[string]*string, len(m))
	for k, v := range m {
		if v != nil {
			v = ptr(*v)
		}
		out[k] = v
	}
	return out
}
