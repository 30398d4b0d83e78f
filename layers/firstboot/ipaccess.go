package firstboot

import (
	"context"
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"

	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
)

// The kubelet's and kube-proxy's systemd units. The image bakes them with
// IPAddressDeny=any and IPAddressAllow=localhost; first boot allows the
// node's own networks (nodeconfig.IPAllow) in runtime drop-ins, which
// systemd reads at the daemon-reload that first boot asks for before the
// units start.
const (
	KubeletUnit   = "kubelet.service"
	KubeProxyUnit = "kube-proxy.service"

	// RuntimeUnitDir is systemd's unit directory for this boot.
	RuntimeUnitDir = "/run/systemd/system"
	// IPAccessDropIn is the name of the drop-in first boot writes for
	// each unit.
	IPAccessDropIn = "50-nodebake-ipaccess.conf"
)

// IPAccessPath returns the path of the drop-in first boot writes for a unit.
func IPAccessPath(unit string) string {
	return path.Join(RuntimeUnitDir, unit+".d", IPAccessDropIn)
}

// ipAccessUnits are the units with an IP access drop-in.
func ipAccessUnits() []string { return []string{KubeletUnit, KubeProxyUnit} }

// ipAccessFiles renders the drop-ins that allow the node's networks.
func ipAccessFiles(cfg *nodeconfig.NodeConfig, facts nodeconfig.ImageFacts) ([]File, error) {
	allow, err := nodeconfig.IPAllowFor(cfg, facts)
	if err != nil {
		return nil, fmt.Errorf("rendering the units' allowed addresses: %w", err)
	}
	return []File{
		{Path: IPAccessPath(KubeletUnit), Mode: 0o644, Data: ipAccessDropIn(allow.Kubelet)},
		{Path: IPAccessPath(KubeProxyUnit), Mode: 0o644, Data: ipAccessDropIn(allow.KubeProxy)},
	}, nil
}

func ipAccessDropIn(allow []netip.Prefix) []byte {
	s := make([]string, len(allow))
	for i, p := range allow {
		s[i] = p.String()
	}
	return []byte(header +
		"# The unit blocks IP traffic with every address but loopback (IPAddressDeny=any);\n" +
		"# it may reach, and be reached from, these networks of this node too.\n" +
		"[Service]\nIPAddressAllow=" + strings.Join(s, " ") + "\n")
}

// reloadUnits has systemd read the drop-ins a commit changed, before the
// units start; it does nothing when no drop-in changed (a second run in
// the same boot) or when opts.Systemctl is not set (tests, --root).
func reloadUnits(ctx context.Context, opts Options, c *commit) error {
	if opts.Systemctl == nil || !slices.ContainsFunc(c.changes, func(ch change) bool {
		return path.Dir(path.Dir(ch.Path)) == RuntimeUnitDir
	}) {
		return nil
	}
	if err := opts.Systemctl(ctx, "daemon-reload"); err != nil {
		return fmt.Errorf("systemctl daemon-reload (to apply the units' allowed addresses): %w", err)
	}
	return nil
}
