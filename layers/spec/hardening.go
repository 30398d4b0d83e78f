package spec

import (
	"crypto/tls"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The image is hardened by construction: the kubelet and kube-proxy
// settings that the CIS Kubernetes Benchmark's worker node checks look at
// are set by default (see DefaultKubeletConfig), and a spec may not undo
// them. Each refusal names the benchmark's check (CIS 1.11 numbering).

// StrongTLSCipherSuites are the kubelet's TLS 1.2 cipher suites by
// default: the CIS benchmark's strong ones (check 4.2.12) with forward
// secrecy. TLS 1.3 suites are always on and not configurable.
func StrongTLSCipherSuites() []string {
	return []string{
		"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
		"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
		"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
		"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
		"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
		"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
	}
}

// cisStrongCiphers are the suites CIS 4.2.12 accepts: the strong ones and
// two without forward secrecy.
func cisStrongCiphers() []string {
	return append(StrongTLSCipherSuites(), "TLS_RSA_WITH_AES_256_GCM_SHA384", "TLS_RSA_WITH_AES_128_GCM_SHA256")
}

// DefaultPodPidsLimit is the default limit of processes per pod (CIS 4.2.13).
const DefaultPodPidsLimit = 4096

// maxPIDs is the kernel's largest pid_max.
const maxPIDs = 4194304

// configValue returns the value at a dotted path of a configuration map
// and whether it is set (not null).
func configValue(m map[string]any, path string) (any, bool) {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = mm[k]; !ok || v == nil {
			return nil, false
		}
	}
	return v, true
}

// number returns a decoded YAML or JSON number as a float64.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case uint64:
		return float64(n), true
	case float64:
		return n, true
	}
	return 0, false
}

// hardeningRule is a setting a CIS worker node check looks at: the
// configuration field (a dotted path) and the flag that overrides it, and
// what the value must be.
type hardeningRule struct {
	field, flag string
	check       string
	// required: the setting must be present.
	required bool
	// ok checks a value set in the configuration; okFlag one set as a
	// flag. Either returns why it is not acceptable.
	ok     func(v any) string
	okFlag func(s string) string
}

func kubeletHardening() []hardeningRule {
	isFalse := func(what string) func(any) string {
		return func(v any) string {
			if b, _ := v.(bool); b {
				return "true " + what
			}
			return ""
		}
	}
	flagNotTrue := func(what string) func(string) string {
		return func(s string) string {
			if b, err := strconv.ParseBool(s); err == nil && b {
				return s + " " + what
			}
			return ""
		}
	}
	notFalse := func(what string) func(any) string {
		return func(v any) string {
			if b, ok := v.(bool); ok && !b {
				return "false " + what
			}
			return ""
		}
	}
	flagNotFalse := func(what string) func(string) string {
		return func(s string) string {
			if b, err := strconv.ParseBool(s); err == nil && !b {
				return s + " " + what
			}
			return ""
		}
	}
	return []hardeningRule{
		{field: "authentication.anonymous.enabled", flag: "anonymous-auth", check: "4.2.1",
			ok: isFalse("lets anonymous requests in"), okFlag: flagNotTrue("lets anonymous requests in")},
		{field: "authorization.mode", flag: "authorization-mode", check: "4.2.2",
			ok: func(v any) string {
				if s, _ := v.(string); s == "AlwaysAllow" {
					return "AlwaysAllow authorizes every request"
				}
				return ""
			},
			okFlag: func(s string) string {
				if slices.Contains(strings.Split(s, ","), "AlwaysAllow") {
					return "AlwaysAllow authorizes every request"
				}
				return ""
			}},
		{field: "authentication.x509.clientCAFile", flag: "client-ca-file", check: "4.2.3", required: true,
			ok: func(v any) string {
				if s, _ := v.(string); s == "" {
					return "an empty client CA file turns off client certificates"
				}
				return ""
			}},
		{field: "readOnlyPort", flag: "read-only-port", check: "4.2.4",
			ok: func(v any) string {
				if n, _ := number(v); n != 0 {
					return fmt.Sprintf("%v opens the unauthenticated read-only port; want 0", v)
				}
				return ""
			},
			okFlag: func(s string) string {
				if s != "0" {
					return s + " opens the unauthenticated read-only port; want 0"
				}
				return ""
			}},
		{field: "streamingConnectionIdleTimeout", flag: "streaming-connection-idle-timeout", check: "4.2.5",
			ok: func(v any) string {
				if d, err := time.ParseDuration(fmt.Sprint(v)); err == nil && d == 0 {
					return "0 keeps idle streaming connections open forever"
				}
				return ""
			},
			okFlag: func(s string) string {
				if d, err := time.ParseDuration(s); err == nil && d == 0 {
					return "0 keeps idle streaming connections open forever"
				}
				return ""
			}},
		{field: "makeIPTablesUtilChains", flag: "make-iptables-util-chains", check: "4.2.6",
			ok: notFalse("leaves the kubelet's iptables chains out"), okFlag: flagNotFalse("leaves the kubelet's iptables chains out")},
		{field: "eventRecordQPS", flag: "event-qps", check: "4.2.8",
			ok: func(v any) string {
				if n, _ := number(v); n < 0 {
					return fmt.Sprintf("%v drops events; want 0 or more", v)
				}
				return ""
			}},
		{field: "rotateCertificates", flag: "rotate-certificates", check: "4.2.10",
			ok: notFalse("turns client certificate rotation off"), okFlag: flagNotFalse("turns client certificate rotation off")},
		{field: "featureGates.RotateKubeletServerCertificate", check: "4.2.11",
			ok: notFalse("turns serving certificate rotation off")},
		{field: "tlsCipherSuites", flag: "tls-cipher-suites", check: "4.2.12", required: true,
			ok: func(v any) string {
				l, _ := v.([]any)
				var names []string
				for _, e := range l {
					s, _ := e.(string)
					names = append(names, s)
				}
				return cipherProblem(names)
			},
			okFlag: func(s string) string { return cipherProblem(strings.Split(s, ",")) }},
		{field: "podPidsLimit", flag: "pod-max-pids", check: "4.2.13", required: true,
			ok: func(v any) string {
				if n, _ := number(v); n < 1 || n > maxPIDs {
					return fmt.Sprintf("%v is no limit on a pod's processes; want 1..%d", v, maxPIDs)
				}
				return ""
			},
			okFlag: func(s string) string {
				if n, err := strconv.ParseInt(s, 10, 64); err != nil || n < 1 || n > maxPIDs {
					return fmt.Sprintf("%s is no limit on a pod's processes; want 1..%d", s, maxPIDs)
				}
				return ""
			}},
		{field: "seccompDefault", flag: "seccomp-default", check: "4.2.14", required: true,
			ok: notFalse("runs containers without the runtime's default seccomp profile"), okFlag: flagNotFalse("runs containers without the runtime's default seccomp profile")},
	}
}

// cipherProblem checks TLS cipher suite names: each known to Go (as the
// kubelet is), and each strong by CIS 4.2.12.
func cipherProblem(names []string) string {
	known := map[string]bool{}
	for _, c := range tls.CipherSuites() {
		known[c.Name] = true
	}
	for _, c := range tls.InsecureCipherSuites() {
		known[c.Name] = true
	}
	if len(names) == 0 {
		return "an empty list lets the kubelet use its defaults, which include weak suites"
	}
	for _, n := range names {
		n = strings.TrimSpace(n)
		switch {
		case !known[n] && n != "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" && n != "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305":
			return fmt.Sprintf("%q is not a TLS cipher suite the kubelet knows", n)
		case !slices.Contains(cisStrongCiphers(), n) && !isTLS13Suite(n):
			return fmt.Sprintf("%q is not a strong cipher suite (want some of %s)", n, strings.Join(StrongTLSCipherSuites(), ", "))
		}
	}
	return ""
}

func isTLS13Suite(name string) bool {
	for _, c := range tls.CipherSuites() {
		if c.Name == name {
			return slices.Equal(c.SupportedVersions, []uint16{tls.VersionTLS13})
		}
	}
	return false
}

// checkHardening applies rules to a configuration map and its flags.
func checkHardening(errs *errorList, p, flagsPath string, cfg map[string]any, flags map[string]*string, rules []hardeningRule) {
	for _, r := range rules {
		cite := fmt.Sprintf(" (the image keeps CIS check %s)", r.check)
		if r.flag != "" {
			if v := flags[r.flag]; v != nil && r.okFlag != nil {
				if why := r.okFlag(*v); why != "" {
					errs.add(field(flagsPath, r.flag), "%s%s", why, cite)
				}
				continue
			} else if v != nil {
				continue // a flag the rule does not check overrides the field
			}
		}
		v, ok := configValue(cfg, r.field)
		switch {
		case !ok && r.required:
			errs.add(p+"."+r.field, "required%s", cite)
		case ok:
			if why := r.ok(v); why != "" {
				errs.add(p+"."+r.field, "%s%s", why, cite)
			}
		}
	}
}

// numberRange is the range of a number in a configuration.
type numberRange struct {
	field    string
	min, max float64
}

// kubeletRanges are the kubelet's numbers and the ranges it accepts
// (its own validation would stop it at start otherwise).
func kubeletRanges() []numberRange {
	const i32 = math.MaxInt32
	return []numberRange{
		{"port", 1, 65535}, {"healthzPort", 0, 65535},
		{"maxPods", 1, i32}, {"podsPerCore", 0, i32}, {"maxOpenFiles", 0, math.MaxInt64},
		{"imageGCHighThresholdPercent", 0, 100}, {"imageGCLowThresholdPercent", 0, 100},
		{"iptablesDropBit", 0, 31}, {"iptablesMasqueradeBit", 0, 31},
		{"oomScoreAdj", -1000, 1000},
		{"eventBurst", 0, i32}, {"kubeAPIQPS", 0, i32}, {"kubeAPIBurst", 0, i32},
		{"registryPullQPS", 0, i32}, {"registryBurst", 0, i32},
		{"nodeStatusMaxImages", -1, i32}, {"nodeLeaseDurationSeconds", 1, i32},
		{"maxParallelImagePulls", 1, i32}, {"containerLogMaxFiles", 2, i32}, {"containerLogMaxWorkers", 1, i32},
	}
}

// kubeProxyRanges are kube-proxy's numbers and their ranges.
func kubeProxyRanges() []numberRange {
	const i32 = math.MaxInt32
	return []numberRange{
		{"oomScoreAdj", -1000, 1000},
		{"iptables.masqueradeBit", 0, 31},
		{"conntrack.maxPerCore", 0, i32}, {"conntrack.min", 0, i32},
		{"clientConnection.qps", 0, i32}, {"clientConnection.burst", 0, i32},
	}
}

func checkRanges(errs *errorList, p string, cfg map[string]any, ranges []numberRange) {
	for _, r := range ranges {
		v, ok := configValue(cfg, r.field)
		if !ok {
			continue
		}
		if n, isNum := number(v); isNum && (n < r.min || n > r.max) {
			errs.add(p+"."+r.field, "%v is out of range %v..%v", v, r.min, r.max)
		}
	}
}

// checkKubeletHardening refuses kubelet settings that undo the image's
// hardening and numbers out of range.
func (s *Spec) checkKubeletHardening(errs *errorList, p string, cfg map[string]any) {
	checkHardening(errs, p, "kubelet.settings", cfg, s.Kubelet.Settings, kubeletHardening())
	checkRanges(errs, p, cfg, kubeletRanges())
	hi, hiOK := configValue(cfg, "imageGCHighThresholdPercent")
	lo, loOK := configValue(cfg, "imageGCLowThresholdPercent")
	if h, _ := number(hi); hiOK && loOK {
		if l, _ := number(lo); l >= h {
			errs.add(p+".imageGCLowThresholdPercent", "%v must be below imageGCHighThresholdPercent %v", lo, hi)
		}
	}
}

// checkKubeProxyHardening: kube-proxy's metrics stay on loopback (CIS
// 4.3.1), and its numbers are in range.
func checkKubeProxyHardening(errs *errorList, p string, cfg map[string]any, flags map[string]*string) {
	const cite = " (the image keeps CIS check 4.3.1)"
	if v := flags["metrics-bind-address"]; v != nil {
		if why := loopbackProblem(*v); why != "" {
			errs.add(field("kubeProxy.settings", "metrics-bind-address"), "%s%s", why, cite)
		}
	} else if v, ok := configValue(cfg, "metricsBindAddress"); ok {
		if why := loopbackProblem(fmt.Sprint(v)); why != "" {
			errs.add(p+".metricsBindAddress", "%s%s", why, cite)
		}
	}
	checkRanges(errs, p, cfg, kubeProxyRanges())
}

// loopbackProblem checks that host:port binds to a loopback address.
func loopbackProblem(hostPort string) string {
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return fmt.Sprintf("%q is not host:port", hostPort)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Sprintf("%q: port %q is not 0..65535", hostPort, port)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return fmt.Sprintf("%q is not a loopback address: the metrics would be open to the network", hostPort)
	}
	return ""
}
