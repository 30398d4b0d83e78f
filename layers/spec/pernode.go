package spec

import (
	"strings"
	"unicode"

	"github.com/nodebake/nodebake/layers/firstboot"
)

// Settings that differ per node. A spec describes every node of an image
// alike, so it must not set them: the first-boot program fills in some
// (firstboot.KubeletNodeFields and friends), the others name one node.

const (
	perNode      = "set per node at first boot"
	namesOneNode = "names one node, and every node of the image would claim it (a node's name and addresses come from its node config)"
)

// perNodeSettings maps configuration fields and flags to why a spec must
// not set them.
type perNodeSettings struct {
	fields map[string]string
	flags  map[string]string
}

// kubeletPerNode: the fields first boot fills in, the flag it sets, and
// the node's identity: its name (first boot makes it the hostname), the
// cloud's id for it and its pod range.
func kubeletPerNode() perNodeSettings {
	return newPerNodeSettings(firstboot.KubeletNodeFields(), []string{"providerID", "podCIDR"},
		firstboot.KubeletNodeFlags(), []string{"hostname-override"})
}

// kubeProxyPerNode: the fields first boot fills in and the node's name.
func kubeProxyPerNode() perNodeSettings {
	return newPerNodeSettings(firstboot.KubeProxyNodeFields(), []string{"hostnameOverride"}, nil, nil)
}

// newPerNodeSettings makes the table; every field's flag (its name in
// kebab case, as the kubelet and kube-proxy name their flags) is refused
// like the field.
func newPerNodeSettings(filled, identity, filledFlags, identityFlags []string) perNodeSettings {
	s := perNodeSettings{fields: map[string]string{}, flags: map[string]string{}}
	for _, group := range []struct {
		fields, flags []string
		why           string
	}{{filled, filledFlags, perNode}, {identity, identityFlags, namesOneNode}} {
		for _, f := range group.fields {
			s.fields[f] = group.why
			s.flags[flagName(f)] = group.why
		}
		for _, f := range group.flags {
			s.flags[f] = group.why
		}
	}
	return s
}

// flagName turns a configuration field's name into its flag's:
// healthzBindAddress -> healthz-bind-address, providerID -> provider-id.
func flagName(field string) string {
	var b strings.Builder
	rs := []rune(field)
	for i, r := range rs {
		if unicode.IsUpper(r) && i > 0 && !unicode.IsUpper(rs[i-1]) {
			b.WriteByte('-')
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}
