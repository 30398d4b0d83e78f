package spec

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	utilsysctl "k8s.io/component-helpers/node/util/sysctl"
)

// Sysctl is a kernel setting, named as sysctl.d names it
// ("vm.overcommit_memory").
type Sysctl struct {
	Key   string
	Value int
}

// KubeletKernelSettings are the kernel settings the kubelet checks when
// it starts (setupKernelTunables in its container manager): with
// protectKernelDefaults it refuses to run unless each has this value,
// without it it sets them itself. The image sets them at boot, so either
// way the kubelet finds them as it wants them. Names and values are the
// kubelet's own constants.
func KubeletKernelSettings() []Sysctl {
	out := []Sysctl{
		{utilsysctl.VMOvercommitMemory, utilsysctl.VMOvercommitMemoryAlways},
		{utilsysctl.VMPanicOnOOM, utilsysctl.VMPanicOnOOMInvokeOOMKiller},
		{utilsysctl.KernelPanic, utilsysctl.KernelPanicRebootTimeout},
		{utilsysctl.KernelPanicOnOops, utilsysctl.KernelPanicOnOopsAlways},
		{utilsysctl.RootMaxKeys, utilsysctl.RootMaxKeysSetting},
		{utilsysctl.RootMaxBytes, utilsysctl.RootMaxBytesSetting},
	}
	for i := range out {
		out[i].Key = sysctlKey(out[i].Key)
	}
	return out
}

// sysctlKey writes a sysctl name with dots ("vm/overcommit_memory" ->
// "vm.overcommit_memory"), as sysctl.d(5) allows either.
func sysctlKey(k string) string { return strings.ReplaceAll(strings.TrimSpace(k), "/", ".") }

// sysctlDirs are the directories systemd-sysctl reads (sysctl.d(5)), and
// sysctlConf the classic file it reads as well.
func sysctlDirs() []string {
	return []string{"/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d"}
}

const sysctlConf = "/etc/sysctl.conf"

// isSysctlFile reports whether systemd-sysctl reads a file at p.
func isSysctlFile(p string) bool {
	return p == sysctlConf || (slices.Contains(sysctlDirs(), path.Dir(p)) && strings.HasSuffix(p, ".conf"))
}

// maxSysctlFile bounds how much of a spec's sysctl file is read.
const maxSysctlFile = 1 << 20

// parseSysctl returns the settings of sysctl.d content, later lines
// overriding earlier ones; values are as written.
func parseSysctl(content string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(content, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		k = strings.TrimPrefix(strings.TrimSpace(k), "-")
		out[sysctlKey(k)] = strings.TrimSpace(v)
	}
	return out
}

// fileContent returns what a files entry puts in the image, bounded.
func (s *Spec) fileContent(f File) (string, error) {
	switch {
	case f.Content != nil:
		return *f.Content, nil
	case f.Source != "":
		real, err := s.resolveSource(f.Source)
		if err != nil {
			return "", err
		}
		b, err := nodeconfig.ReadRegularFile(real, maxSysctlFile)
		if err != nil {
			return "", fmt.Errorf("reading %s: %w", f.Source, err)
		}
		return string(b), nil
	}
	return "", nil
}

// checkKubeletHost checks kubelet settings that need support from the
// host the image makes: the kernel settings protectKernelDefaults wants,
// the cgroups the container runtime and the node allocatable use, the
// CPU and memory managers' reservations.
func (s *Spec) checkKubeletHost(errs *errorList, p string, cfg map[string]any) {
	if v, _ := configValue(cfg, "protectKernelDefaults"); v == true {
		want := map[string]int{}
		for _, k := range KubeletKernelSettings() {
			want[k.Key] = k.Value
		}
		for i, f := range s.Files {
			if !isSysctlFile(f.Path) {
				continue
			}
			fp := index("files", i)
			if f.Link != "" {
				errs.add(fp+".link", "a link at %s would replace a sysctl file, and kubelet.config.protectKernelDefaults needs the image's kernel settings", f.Path)
				continue
			}
			content, err := s.fileContent(f)
			if err != nil {
				continue // reported with the file
			}
			got := parseSysctl(content)
			for _, k := range sortedKeys(got) {
				w, ok := want[k]
				if !ok {
					continue
				}
				if n, err := strconv.Atoi(got[k]); err != nil || n != w {
					errs.add(fp, "sets %s = %s, but kubelet.config.protectKernelDefaults makes the kubelet refuse to start unless it is %d", k, got[k], w)
				}
			}
		}
	}

	// Node allocatable enforcement needs its cgroups (the kubelet refuses
	// to start otherwise).
	// The kubelet enforces the pods' allocatable by default.
	enforce := []any{"pods"}
	if l, ok := configValue(cfg, "enforceNodeAllocatable"); ok {
		enforce, _ = l.([]any)
	}
	{
		for _, need := range []struct{ key, cgroup string }{
			{"system-reserved", "systemReservedCgroup"}, {"system-reserved-compressible", "systemReservedCgroup"},
			{"kube-reserved", "kubeReservedCgroup"}, {"kube-reserved-compressible", "kubeReservedCgroup"},
		} {
			if slices.Contains(enforce, any(need.key)) {
				if v, ok := configValue(cfg, need.cgroup); !ok || v == "" {
					errs.add(p+".enforceNodeAllocatable", "enforces %s but %s.%s names no cgroup", need.key, p, need.cgroup)
				}
			}
		}
		if len(enforce) > 0 && !slices.Contains(enforce, any("none")) {
			if v, ok := configValue(cfg, "cgroupsPerQOS"); ok && v == false {
				errs.add(p+".cgroupsPerQOS", "false, but enforceNodeAllocatable needs the QoS cgroups")
			}
		}
	}
	// The static CPU manager hands out whole CPUs and needs some reserved.
	if v, _ := configValue(cfg, "cpuManagerPolicy"); v == "static" {
		_, kube := configValue(cfg, "kubeReserved.cpu")
		_, sys := configValue(cfg, "systemReserved.cpu")
		_, cpus := configValue(cfg, "reservedSystemCPUs")
		if !kube && !sys && !cpus {
			errs.add(p+".cpuManagerPolicy", "static needs CPUs reserved (kubeReserved.cpu, systemReserved.cpu or reservedSystemCPUs); the kubelet refuses to start without")
		}
	}
	if v, _ := configValue(cfg, "memoryManagerPolicy"); v == "Static" {
		if _, ok := configValue(cfg, "reservedMemory"); !ok {
			errs.add(p+".memoryManagerPolicy", "Static needs reservedMemory; the kubelet refuses to start without")
		}
	}
	// The image has no swap.
	if v, _ := configValue(cfg, "memorySwap.swapBehavior"); v == "LimitedSwap" {
		errs.add(p+".memorySwap.swapBehavior", "LimitedSwap needs swap, and the image has none")
	}
}
