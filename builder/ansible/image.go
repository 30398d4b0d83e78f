package ansible

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/nodebake/nodebake/builder/ansible/inventory"
	"github.com/nodebake/nodebake/builder/ansible/jinja"
	"github.com/nodebake/nodebake/layers/components"
	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/layers/worker"
)

// imageVarNames returns the variables that go into the spec, sorted.
func imageVarNames() []string {
	var out []string
	for name, k := range catalog() {
		if k.how == imageVar {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// mapImage evaluates the image variables as every worker sees them (the
// node's own name and address as placeholders), refuses those that differ
// between workers (one image serves them all), and maps them onto the spec.
func (im *importer) mapImage() {
	im.out = im.opts.Base.Clone()
	for _, name := range imageVarNames() {
		im.evalImageVar(name)
	}
	im.mapVersion()
	im.mapInterface()
	im.mapDirs()
	im.mapBinaries()
	im.mapCertificates()
	im.mapKubeletSettings()
	im.mapKubeletConfig()
	im.mapProxySettings()
	im.mapProxyConfig()
	im.mapCIDRs()
	im.mapContainerd()
}

// evalImageVar evaluates one variable for every worker and keeps the first
// worker's value when all agree.
func (im *importer) evalImageVar(name string) {
	type seen struct {
		host    string
		defined bool
		value   any
		err     error
		src     inventory.Source
	}
	var first *seen
	for _, w := range im.workers {
		sc := im.ev.scope(w, true)
		cur := seen{host: w, defined: sc.has(name)}
		if cur.defined {
			cur.src = sc.source(name)
			cur.value, cur.err = sc.eval(name)
		}
		if first == nil {
			first = &cur
			continue
		}
		same := cur.defined == first.defined && (cur.err == nil) == (first.err == nil)
		if same && cur.err != nil {
			same = cur.err.Error() == first.err.Error()
		}
		if same && cur.defined && cur.err == nil {
			same = sameValue(flatten(cur.value), flatten(first.value))
		}
		if !same {
			im.probs.add(name, first.src, "", "differs between workers: %s gets %s, %s gets %s; one image serves every worker, so every worker must see the same value",
				first.host, seenWhat(first.defined, first.value, first.err, first.src), w, seenWhat(cur.defined, cur.value, cur.err, cur.src))
			im.setEntry(name, Refused, "differs between workers")
			return
		}
	}
	if first == nil || !first.defined {
		return
	}
	if first.err != nil {
		im.evalErr(name, first.src, "", first.err)
		return
	}
	im.image[name] = imageValue{value: first.value, source: first.src}
}

func seenWhat(defined bool, v any, err error, src inventory.Source) string {
	switch {
	case !defined:
		return "nothing (not defined)"
	case err != nil:
		return "an error (" + err.Error() + ")"
	}
	s := show(v)
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s + " from " + src.String()
}

// flatten makes placeholders comparable: a Str becomes its sentinel text.
func flatten(v any) any {
	switch v := v.(type) {
	case jinja.Str:
		return v.Replace(sentinel)
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = flatten(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = flatten(e)
		}
		return out
	}
	return v
}

// str returns an image variable as a plain string, refusing other types.
func (im *importer) str(name string) (string, bool) {
	iv, ok := im.image[name]
	if !ok {
		return "", false
	}
	s, isStr := iv.value.(string)
	if !isStr {
		if hasPlaceholder(iv.value) {
			im.refuse(name, "depends on the host (%s), which no part of the image can", show(iv.value))
		} else {
			im.refuse(name, "wrong type: want a string, got %s", jinja.Describe(iv.value))
		}
		return "", false
	}
	return s, true
}

var releaseRE = regexp.MustCompile(`^v?(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)

// mapVersion maps k8s_release onto kubernetes.version and says whether the
// version is supported.
func (im *importer) mapVersion() {
	const name = "k8s_release"
	iv, ok := im.image[name]
	if !ok {
		return
	}
	s, isStr := iv.value.(string)
	if !isStr {
		hint := ""
		if _, isNum := iv.value.(float64); isNum {
			hint = " (quote it: \"1.23.3\"; YAML reads 1.23 as a number)"
		}
		im.refuse(name, "wrong type: want a version string like \"1.23.3\", got %s%s", jinja.Describe(iv.value), hint)
		return
	}
	m := releaseRE.FindStringSubmatch(s)
	if m == nil {
		im.refuse(name, "%q is not a Kubernetes release like 1.23.3", s)
		return
	}
	version := "v" + strings.TrimPrefix(s, "v")
	minor, _ := strconv.Atoi(m[2])
	major, _ := strconv.Atoi(m[1])
	baseVersion := im.base.Kubernetes.Version
	if version != baseVersion {
		// Release components that follow kubernetes.version are pinned by
		// checksums of the base's version.
		var pinned []string
		for _, c := range im.opts.Base.NamedComponents() {
			if c.Catalogue.Version != components.VersionKubernetes {
				continue
			}
			eff, _ := im.base.Component(string(c.Key))
			if c.Version == "" && eff.From == spec.FromRelease && (len(c.SHA256) > 0 || len(c.SHA512) > 0) {
				pinned = append(pinned, "components."+string(c.Key))
			}
		}
		if len(pinned) > 0 {
			im.refuse(name, "%s differs from the base spec's kubernetes.version %s, whose release checksums in %s pin %s: give a base spec with checksums for %s, or from: go",
				version, baseVersion, strings.Join(pinned, ", "), baseVersion, version)
			return
		}
	}
	im.out.Kubernetes.Version = version
	im.minor = minor
	im.fieldVar["kubernetes.version"] = name
	e := im.setEntry(name, Mapped, "→ kubernetes.version "+version)
	_ = e
	newest := im.opts.NewestMinor
	oldest := newest - SupportedMinors + 1
	switch {
	case major != 1 || minor < oldest:
		behind := newest - minor
		im.line(name, "out of support: Kubernetes maintains its three newest minor releases (1.%d, 1.%d, 1.%d in 2026-12)", oldest, oldest+1, newest)
		im.decide(name, "Kubernetes %s is out of support: the project maintains only its three newest minor releases (1.%d to 1.%d in 2026-12), and 1.%d is %d minor releases behind 1.%d. The spec builds %s as the tree asks; raise k8s_release (or kubernetes.version) to 1.%d or newer, one minor release at a time for a running cluster",
			version, oldest, newest, minor, behind, newest, version, oldest)
	case minor > newest:
		im.line(name, "newer than the newest release nodebake knows of (1.%d)", newest)
		im.decide(name, "%s is newer than 1.%d, the newest release nodebake knows of: check that it exists and that the image's components support it", version, newest)
	default:
		im.line(name, "supported: Kubernetes maintains 1.%d to 1.%d (2026-12)", oldest, newest)
	}
	if baseVersion != "" && version != baseVersion {
		im.line(name, "the base spec had %s", baseVersion)
	}
}

// mapInterface checks k8s_interface: the interface the control plane and
// kubelet listen on must be the one first boot configures.
func (im *importer) mapInterface() {
	const name = "k8s_interface"
	s, ok := im.str(name)
	if !ok {
		return
	}
	if s != firstboot.WireGuardInterface {
		im.refuse(name, "%q: first boot configures %s, and kubelet and kube-proxy bind to its address; k8s_interface must be %s", s, firstboot.WireGuardInterface, firstboot.WireGuardInterface)
		return
	}
	im.setEntry(name, Mapped, "checked: "+s+" is the interface first boot configures (wg0's address is filled in per node)")
}

// mapDirs checks the directories the roles install into against the
// image's layout.
func (im *importer) mapDirs() {
	for _, d := range []struct {
		name, want, what string
		refuse           bool
	}{
		{"k8s_conf_dir", firstboot.CertDir, "first boot writes the CA and the node's certificate and key there", true},
		{"k8s_bin_dir", components.BinDir, "the image installs kubelet, kube-proxy and kubectl there", false},
		{"k8s_worker_kubelet_conf_dir", path.Dir(firstboot.KubeletConfigPath), "first boot writes kubelet's configuration and kubeconfig there", false},
		{"k8s_worker_kubeproxy_conf_dir", path.Dir(firstboot.KubeProxyConfigPath), "first boot writes kube-proxy's configuration and kubeconfig there", false},
	} {
		s, ok := im.str(d.name)
		if !ok {
			continue
		}
		switch {
		case path.Clean(s) == d.want:
			im.setEntry(d.name, Mapped, "checked: "+d.want+" is the image's ("+d.what+")")
		case d.refuse:
			im.refuse(d.name, "%s: the image uses %s (%s); set it to %s", s, d.want, d.what, d.want)
		default:
			im.setEntry(d.name, Mapped, "checked: differs from the image's "+d.want)
			im.decide(d.name, "%s is not used: the image uses %s (%s)", s, d.want, d.what)
		}
	}
}

// crictlKey is the spec key of crictl (the catalogue's), which the
// containerd role's k8s flavor installs.
func crictlKey() spec.ComponentName {
	if c, ok := components.Find("crictl"); ok {
		return c.Key
	}
	return "crictl"
}

// k8sComponents maps the roles' binary names (the upstream names) onto the
// spec's components: the catalogue's components whose version follows
// kubernetes.version (kubelet, kube-proxy, kubectl).
func k8sComponents() map[string]spec.ComponentName {
	out := map[string]spec.ComponentName{}
	for _, c := range components.Catalogue() {
		if c.Version == components.VersionKubernetes {
			out[c.Name] = c.Key
		}
	}
	return out
}

// k8sComponentNames returns the upstream names of k8sComponents, in
// catalogue order.
func k8sComponentNames() []string {
	var out []string
	for _, c := range components.Catalogue() {
		if c.Version == components.VersionKubernetes {
			out = append(out, c.Name)
		}
	}
	return out
}

func (im *importer) mapBinaries() {
	const name = "k8s_worker_binaries"
	iv, ok := im.image[name]
	if !ok {
		return
	}
	list, isList := iv.value.([]any)
	if !isList {
		im.refuse(name, "wrong type: want a list of binaries, got %s", jinja.Describe(iv.value))
		return
	}
	have := map[string]bool{}
	var mapped []string
	for _, it := range list {
		s, isStr := it.(string)
		if !isStr {
			im.refuse(name, "wrong type: want names like kubelet, got %s", jinja.Describe(it))
			return
		}
		c, known := k8sComponents()[s]
		if !known {
			im.refuse(name, "%q: the image bakes %s (as components of the spec); add other binaries through the spec's files", s, strings.Join(k8sComponentNames(), ", "))
			return
		}
		have[s] = true
		mapped = append(mapped, "components."+string(c))
	}
	sort.Strings(mapped)
	im.setEntry(name, Mapped, "→ "+strings.Join(mapped, ", ")+" (at kubernetes.version unless the base spec pins them)")
	for _, b := range k8sComponentNames() {
		if !have[b] {
			im.decide(name, "%s is not in the list, but the image bakes it anyway (components.%s)", b, k8sComponents()[b])
		}
	}
}

func (im *importer) mapCertificates() {
	const name = "k8s_worker_certificates"
	iv, ok := im.image[name]
	if !ok {
		return
	}
	list, isList := iv.value.([]any)
	if !isList {
		im.refuse(name, "wrong type: want a list of file names, got %s", jinja.Describe(iv.value))
		return
	}
	im.setEntry(name, PerNode, "the node configs carry the certificates a worker needs; first boot writes them")
	for _, it := range list {
		s, isStr := it.(string)
		if !isStr {
			im.refuse(name, "wrong type: want file names, got %s", jinja.Describe(it))
			return
		}
		switch s {
		case nodeconfig.CACertFileName:
			im.line(name, "%s: per node: kubernetes.caCert of each node config (from the CA directory); first boot writes %s", s, firstboot.CACertPath)
		case nodeconfig.KubeProxyCertFileName, nodeconfig.KubeProxyKeyFileName:
			im.line(name, "%s: per node: kubernetes.kubeProxy of each node config; first boot writes kube-proxy's kubeconfig from it", s)
		case "ca-k8s-apiserver-key.pem":
			im.line(name, "%s: not put on workers", s)
			im.decide(name, "%s (the CA's private key) is not put on workers: whoever holds it can sign any identity in the cluster; it stays with the CA", s)
		case "cert-k8s-apiserver.pem", "cert-k8s-apiserver-key.pem":
			im.line(name, "%s: not put on workers", s)
			im.decide(name, "%s (the API server's own certificate or key) is not put on workers: a worker authenticates with its own cert-NODE.pem", s)
		default:
			im.line(name, "%s: not carried over", s)
			im.decide(name, "%s is not carried over: a node config holds the CA, the node's and kube-proxy's certificates; add other files through the spec's files (the same on every node)", s)
		}
	}
}

// flagValue turns one flag of a settings variable into a string.
func (im *importer) flagValue(name, flag string, v any) (string, bool) {
	s, ok := plainString(v)
	if !ok {
		im.refuse(name, "%s: wrong type: a flag's value is a string, number or boolean, not %s", flag, jinja.Describe(v))
	}
	return s, ok
}

// settingNote says how a flag compares with the base spec's.
func settingNote(base map[string]*string, k, v string) string {
	b, ok := base[k]
	switch {
	case !ok || b == nil:
		return " (added: nodebake has no default)"
	case *b == v:
		return " (nodebake's default)"
	}
	return " (nodebake's default: " + *b + ")"
}

func (im *importer) mapKubeletSettings() {
	const name = "k8s_worker_kubelet_settings"
	iv, ok := im.image[name]
	if !ok {
		return
	}
	m, isMap := iv.value.(map[string]any)
	if !isMap {
		im.refuse(name, "wrong type: want a mapping of kubelet flags to values, got %s", jinja.Describe(iv.value))
		return
	}
	im.setEntry(name, Mapped, "→ kubelet.settings (flags)")
	base := im.base.Kubelet.Settings
	settings := cloneSettings(im.out.Kubelet.Settings)
	for _, k := range sortedKeys(m) {
		v := m[k]
		if hasPlaceholder(v) {
			switch {
			case k == "node-ip" && isPlaceholder(v, phNodeIP):
				im.line(name, "%s = %s: per node: first boot passes --node-ip with the node's wg0 address (%s)", k, show(v), firstboot.KubeletEnvPath)
				im.perNodeLine(name, k, v, "the node's wg0 address, from wireguard.address of its node config (kubelet gets --node-ip through "+firstboot.KubeletEnvPath+")")
			case k == "hostname-override" && isPlaceholder(v, phNodeName):
				im.line(name, "%s = %s: per node: first boot sets the hostname to the node name, so kubelet registers under it without the flag", k, show(v))
				im.perNodeLine(name, k, v, "the node name (nodeName of its node config, which first boot makes the hostname)")
			default:
				im.refuse(name, "%s = %s depends on the host, and first boot fills in no --%s (only --node-ip)", k, show(v), k)
			}
			continue
		}
		s, ok := im.flagValue(name, k, v)
		if !ok {
			continue
		}
		switch k {
		case "config", "kubeconfig":
			want := firstboot.KubeletConfigPath
			if k == "kubeconfig" {
				want = firstboot.KubeletKubeconfigPath
			}
			if s != want {
				im.refuse(name, "%s = %s: first boot writes kubelet's %s to %s", k, s, k, want)
				continue
			}
			im.line(name, "%s = %s%s; first boot writes it per node", k, s, settingNote(base, k, s))
			if k == "config" {
				continue // spec.KubeletConfigPath is what the image's unit names
			}
		case "container-runtime":
			if s != "remote" {
				im.refuse(name, "container-runtime = %s: kubelet reaches only remote runtimes (dockershim left it in Kubernetes 1.24); the image runs containerd", s)
				continue
			}
			im.line(name, "container-runtime = remote: not carried over: kubelet dropped the flag in Kubernetes 1.27 (remote was its only value left); kubelet reaches containerd through container-runtime-endpoint")
			if im.minor > 0 && im.minor < 24 {
				im.decide(name, "container-runtime = remote is not carried over (the spec refuses the flag, which kubelet dropped in 1.27), but the kubelet of Kubernetes 1.%d needs it: its default is docker until 1.24. An image of 1.%d would not reach containerd; raise k8s_release to 1.24 or newer", im.minor, im.minor)
			}
			continue
		default:
			im.line(name, "%s = %s%s", k, s, settingNote(base, k, s))
		}
		settings[k] = &s
	}
	for _, k := range sortedKeys(base) {
		if _, set := m[k]; !set && base[k] != nil {
			im.decide(name, "kept nodebake's --%s=%s, which the variable does not set%s", k, *base[k], whyDefault(k))
		}
	}
	im.out.Kubelet.Settings = settings
	im.fieldVar["kubelet.settings"] = name
}

// whyDefault explains a default nodebake adds to the seed's settings.
func whyDefault(k string) string {
	why := ""
	switch k {
	case "volume-plugin-dir":
		why = "kubelet's default is under /usr, which is read-only in the image"
	case "seccompDefault":
		why = "RuntimeDefault seccomp for every pod, which the seed's comment recommends"
	case "readOnlyPort":
		why = "the unauthenticated read-only port stays closed, as kubelet's own default"
	case "tlsMinVersion":
		why = "no TLS 1.0 or 1.1 on the kubelet's port"
	case "protectKernelDefaults":
		why = "the kubelet checks that the kernel settings it needs are the image's, and refuses to start otherwise"
	}
	if check, required, ok := spec.KubeletHardeningCheck(k); ok {
		if why != "" {
			why += "; "
		}
		why += "CIS check " + check + "; a spec may set another value the check accepts"
		if required {
			why += ", not drop it"
		}
	}
	if why == "" {
		return ""
	}
	return " (" + why + ")"
}

func cloneSettings(m map[string]*string) map[string]*string {
	out := map[string]*string{}
	for k, v := range m {
		if v != nil {
			c := *v
			v = &c
		}
		out[k] = v
	}
	return out
}

func (im *importer) perNodeLine(variable, key string, v any, fill string) {
	what := variable
	if key != "" {
		what += "[" + key + "]"
	}
	tmpl := im.rawLine(variable, key)
	if tmpl == "" {
		tmpl = show(v)
	}
	im.perNode = append(im.perNode, perNodeLine{what: what, template: tmpl, fill: fill})
}

// baseConfig returns the base spec's effective kubelet or kube-proxy
// configuration as a mapping.
func baseConfig(b []byte, err error) map[string]any {
	m := map[string]any{}
	if err == nil {
		_ = json.Unmarshal(b, &m)
	}
	return m
}

// perNodeField says what first boot fills into a configuration field.
type perNodeField struct {
	path string
	// want is the value the tree must give, with placeholders as
	// sentinels.
	want string
	fill string
}

// mapConfig maps a configuration document variable (kubelet's or
// kube-proxy's) onto the spec.
func (im *importer) mapConfig(name, specPath, kind, apiVersion string, base map[string]any, fixed map[string]string, perNode []perNodeField) map[string]any {
	iv, ok := im.image[name]
	if !ok {
		return nil
	}
	cfg, err := decodeYAMLText(name, iv.value)
	if err != nil {
		im.refuse(name, "%v", err)
		return nil
	}
	im.setEntry(name, Mapped, "→ "+specPath)
	for _, tm := range []struct{ key, want string }{{"kind", kind}, {"apiVersion", apiVersion}} {
		if v, set := cfg[tm.key]; set && !strMatches(v, tm.want) {
			im.refuse(name, "%s is %s; nodebake builds %s %s", tm.key, show(v), apiVersion, kind)
		}
	}
	pn := map[string]perNodeField{}
	for _, f := range perNode {
		pn[f.path] = f
	}
	for _, l := range leaves(cfg, "") {
		if l.path == "kind" || l.path == "apiVersion" {
			continue
		}
		if f, isPerNode := pn[l.path]; isPerNode {
			switch {
			case strMatches(l.value, f.want):
				im.line(name, "%s = %s: per node: %s", l.path, show(l.value), f.fill)
				im.perNodeLine(name, l.path, l.value, f.fill)
			case hasPlaceholder(l.value):
				im.refuse(name, "%s = %s: first boot sets it to %s", l.path, show(l.value), strings.NewReplacer(sentinel(phNodeIP), "<wg0 address>", sentinel(phNodeName), "<node name>").Replace(f.want))
			default:
				im.line(name, "%s = %s: not carried over: first boot sets it per node", l.path, show(l.value))
				im.decide(name, "%s = %s is not carried over: first boot sets it to %s on every node", l.path, show(l.value),
					strings.NewReplacer(sentinel(phNodeIP), "the node's wg0 address", sentinel(phNodeName), "<node name>").Replace(f.want))
			}
			deletePath(cfg, l.path)
			continue
		}
		if hasPlaceholder(l.value) {
			im.refuse(name, "%s = %s depends on the host, and first boot does not fill it in", l.path, show(l.value))
			deletePath(cfg, l.path)
			continue
		}
		if want, isFixed := fixed[l.path]; isFixed {
			if !strMatches(l.value, want) {
				im.refuse(name, "%s = %s: first boot writes that file to %s", l.path, show(l.value), want)
				continue
			}
		}
		bv, inBase := lookupPath(base, l.path)
		switch {
		case !inBase:
			im.line(name, "%s = %s (added: nodebake has no default)", l.path, show(l.value))
		case sameValue(bv, l.value):
			im.line(name, "%s = %s (nodebake's default)", l.path, show(l.value))
		default:
			im.line(name, "%s = %s (nodebake's default: %s)", l.path, show(l.value), show(bv))
		}
	}
	for _, l := range leaves(base, "") {
		if l.path == "kind" || l.path == "apiVersion" || l.path == "clusterCIDR" {
			continue
		}
		if _, isPerNode := pn[l.path]; isPerNode {
			continue
		}
		if _, set := lookupPath(cfg, l.path); !set {
			im.decide(name, "kept nodebake's %s: %s, which the variable does not set%s%s", l.path, show(l.value), whyDefault(l.path), im.versionNote(l.path, l.value))
		}
	}
	im.fieldVar[specPath] = name
	return cfg
}

// versionNote warns when a kept default needs a newer Kubernetes.
func (im *importer) versionNote(path string, v any) string {
	if path == "seccompDefault" && v == true && im.minor > 0 && im.minor < 25 {
		return fmt.Sprintf("; the kubelet of Kubernetes 1.%d accepts it only with --feature-gates=SeccompDefault=true (on by default from 1.25): add that flag, or set seccompDefault: false", im.minor)
	}
	return ""
}

func (im *importer) mapKubeletConfig() {
	const name = "k8s_worker_kubelet_conf_yaml"
	base := baseConfig(im.base.KubeletConfigJSON())
	cfg := im.mapConfig(name, "kubelet.config", spec.KubeletConfigKind, spec.KubeletConfigAPIVersion, base,
		map[string]string{"authentication.x509.clientCAFile": firstboot.CACertPath},
		[]perNodeField{
			{"address", sentinel(phNodeIP), "the node's wg0 address (first boot fills it into " + firstboot.KubeletConfigPath + ")"},
			{"healthzBindAddress", sentinel(phNodeIP), "the node's wg0 address (first boot)"},
			{"tlsCertFile", firstboot.NodeCertPath(sentinel(phNodeName)), "the node's certificate, which first boot writes from kubernetes.nodeCert of its node config"},
			{"tlsPrivateKeyFile", firstboot.NodeKeyPath(sentinel(phNodeName)), "the node's key, which first boot writes from kubernetes.nodeKey of its node config"},
		})
	if cfg == nil {
		return
	}
	im.out.Kubelet.Config = mergeInto(deepCopyMap(im.out.Kubelet.Config), cfg)
}

func (im *importer) mapProxySettings() {
	const name = "k8s_worker_kubeproxy_settings"
	iv, ok := im.image[name]
	if !ok {
		return
	}
	m, isMap := iv.value.(map[string]any)
	if !isMap {
		im.refuse(name, "wrong type: want a mapping of kube-proxy flags to values, got %s", jinja.Describe(iv.value))
		return
	}
	im.setEntry(name, Mapped, "→ kubeProxy.settings (flags)")
	base := im.base.KubeProxy.Settings
	settings := cloneSettings(im.out.KubeProxy.Settings)
	for _, k := range sortedKeys(m) {
		v := m[k]
		if hasPlaceholder(v) {
			switch {
			case (k == "bind-address" || k == "healthz-bind-address") && hasPlaceholder(v) && strings.HasPrefix(flatten(v).(string), sentinel(phNodeIP)):
				im.line(name, "%s = %s: per node: first boot sets the address in kube-proxy's configuration", k, show(v))
				im.perNodeLine(name, k, v, "the node's wg0 address (first boot writes bindAddress and healthzBindAddress into "+firstboot.KubeProxyConfigPath+")")
			case k == "hostname-override" && isPlaceholder(v, phNodeName):
				im.line(name, "%s = %s: per node: first boot sets the hostname to the node name", k, show(v))
				im.perNodeLine(name, k, v, "the node name (the hostname first boot sets)")
			default:
				im.refuse(name, "%s = %s depends on the host, and first boot does not fill it in", k, show(v))
			}
			continue
		}
		s, ok := im.flagValue(name, k, v)
		if !ok {
			continue
		}
		if k == "config" {
			if s != firstboot.KubeProxyConfigPath {
				im.refuse(name, "config = %s: first boot writes kube-proxy's configuration to %s", s, firstboot.KubeProxyConfigPath)
			} else {
				im.line(name, "config = %s%s; first boot writes it per node", s, settingNote(base, k, s))
			}
			continue
		}
		im.line(name, "%s = %s%s", k, s, settingNote(base, k, s))
		settings[k] = &s
	}
	for _, k := range sortedKeys(base) {
		if _, set := m[k]; !set && base[k] != nil {
			im.decide(name, "kept nodebake's --%s=%s, which the variable does not set", k, *base[k])
		}
	}
	im.out.KubeProxy.Settings = settings
	im.fieldVar["kubeProxy.settings"] = name
}

func (im *importer) mapProxyConfig() {
	const name = "k8s_worker_kubeproxy_conf_yaml"
	base := baseConfig(im.base.KubeProxyConfigJSON())
	cfg := im.mapConfig(name, "kubeProxy.config", spec.KubeProxyConfigKind, spec.KubeProxyConfigAPIVersion, base,
		map[string]string{"clientConnection.kubeconfig": firstboot.KubeProxyKubeconfigPath},
		[]perNodeField{
			{"bindAddress", sentinel(phNodeIP), "the node's wg0 address (first boot fills it into " + firstboot.KubeProxyConfigPath + ")"},
			{"healthzBindAddress", sentinel(phNodeIP) + ":" + firstboot.KubeProxyHealthzPort, "the node's wg0 address and port " + firstboot.KubeProxyHealthzPort + " (first boot)"},
		})
	if cfg == nil {
		return
	}
	if v, set := cfg["clusterCIDR"]; set {
		if s, isStr := v.(string); isStr {
			im.clusterCIDR(name, s, "its clusterCIDR")
		} else {
			im.refuse(name, "clusterCIDR: wrong type: want a CIDR, got %s", jinja.Describe(v))
		}
		delete(cfg, "clusterCIDR")
	}
	out := deepCopyMap(im.out.KubeProxy.Config)
	delete(out, "clusterCIDR") // follows kubernetes.clusterCIDR
	im.out.KubeProxy.Config = mergeInto(out, cfg)
}

// clusterCIDR sets kubernetes.clusterCIDR, refusing a second, different
// value.
func (im *importer) clusterCIDR(name, cidr, what string) {
	if prev, ok := im.fieldVar["kubernetes.clusterCIDR"]; ok {
		if !sameCIDR(im.out.Kubernetes.ClusterCIDR, cidr) {
			im.refuse(name, "%s %s differs from %s's %s", what, cidr, prev, im.out.Kubernetes.ClusterCIDR)
		} else {
			im.line(name, "%s %s: the same as %s's", what, cidr, prev)
		}
		return
	}
	im.out.Kubernetes.ClusterCIDR = cidr
	im.fieldVar["kubernetes.clusterCIDR"] = name
	note := "(nodebake's default)"
	if cidr != im.base.Kubernetes.ClusterCIDR {
		note = "(nodebake's default: " + im.base.Kubernetes.ClusterCIDR + ")"
	}
	im.line(name, "%s %s → kubernetes.clusterCIDR %s; kubeProxy.config.clusterCIDR follows it", what, cidr, note)
}

func sameCIDR(a, b string) bool {
	pa, errA := netip.ParsePrefix(strings.TrimSpace(a))
	pb, errB := netip.ParsePrefix(strings.TrimSpace(b))
	if errA != nil || errB != nil {
		return a == b
	}
	return pa.Masked() == pb.Masked()
}

// mapCIDRs reads the control plane's view of the service and cluster
// networks, when the tree has it: k8s_apiserver_settings and
// k8s_controller_manager_settings, as the first controller sees them.
func (im *importer) mapCIDRs() {
	sc := im.controlPlaneScope()
	svcSet := false
	for _, src := range []struct{ variable, key, field string }{
		{"k8s_controller_manager_settings", "cluster-cidr", "cluster"},
		{"k8s_apiserver_settings", "service-cluster-ip-range", "service"},
		{"k8s_controller_manager_settings", "service-cluster-ip-range", "service"},
	} {
		if sc == nil || !sc.has(src.variable) {
			continue
		}
		v, ok, err := sc.evalKey(src.variable, src.key)
		if err != nil {
			im.evalErr(src.variable, sc.source(src.variable), "", fmt.Errorf("%s: %w", src.key, err))
			continue
		}
		if !ok {
			continue
		}
		s, isStr := v.(string)
		if !isStr {
			im.refuse(src.variable, "%s: wrong type: want a CIDR, got %s", src.key, jinja.Describe(v))
			continue
		}
		im.setEntry(src.variable, Mapped, "read for the cluster's networks; its other keys are the control plane's")
		if src.field == "cluster" {
			im.clusterCIDR(src.variable, s, "--"+src.key)
			continue
		}
		if svcSet {
			if !sameCIDR(im.out.Kubernetes.ServiceCIDR, s) {
				im.refuse(src.variable, "--%s %s differs from %s", src.key, s, im.out.Kubernetes.ServiceCIDR)
			}
			continue
		}
		svcSet = true
		im.out.Kubernetes.ServiceCIDR = s
		im.fieldVar["kubernetes.serviceCIDR"] = src.variable
		note := "(nodebake's default)"
		if s != im.base.Kubernetes.ServiceCIDR {
			note = "(nodebake's default: " + im.base.Kubernetes.ServiceCIDR + ")"
		}
		im.line(src.variable, "--%s %s → kubernetes.serviceCIDR %s", src.key, s, note)
	}
	if !svcSet {
		im.decide("kubernetes.serviceCIDR", "no variable a worker reads names the service network (the control plane's k8s_apiserver_settings[\"service-cluster-ip-range\"] does); the spec keeps %s, and kubelet's clusterDNS must lie inside it", im.base.Kubernetes.ServiceCIDR)
	}
}

// controlPlaneScope is the first controller's view, else the workers'.
func (im *importer) controlPlaneScope() *scope {
	if len(im.controllers) > 0 {
		return im.ev.scope(im.controllers[0], false)
	}
	return im.ev.scope(im.workers[0], true)
}

// mapContainerd checks the containerd role's variables against what the
// image bakes; differences are decisions.
func (im *importer) mapContainerd() {
	check := func(name, want, what string) {
		s, ok := im.str(name)
		if !ok {
			return
		}
		if path.Clean(s) == want {
			im.setEntry(name, Mapped, "checked: "+want+" is the image's ("+what+")")
			return
		}
		im.setEntry(name, Mapped, "checked: differs from the image's "+want)
		im.decide(name, "%s is not used: the image has %s at %s", s, what, want)
	}
	check("containerd_binary_directory", components.BinDir, "containerd, its shim and ctr")
	check("containerd_config_directory", path.Dir(worker.ContainerdConfig), "containerd's config.toml (version 3)")
	check("containerd_runc_binary_directory", components.SbinDir, "runc, which containerd's config names")
	check("containerd_cni_binary_directory", components.CNIBinDir, "the CNI plugins")
	check("containerd_cni_netconfig_directory", worker.CNIConfDir, "the CNI configuration directory")

	if s, ok := im.str("containerd_flavor"); ok {
		switch s {
		case "k8s", "base":
			im.setEntry("containerd_flavor", Mapped, "checked: the image bakes containerd, runc and the CNI plugins whichever flavor")
			if s == "k8s" {
				im.decide("containerd_flavor", "the k8s flavor also installs crictl and critest; the image has %s, and bakes crictl when the spec lists components.%s (with its version and checksums); critest is not baked", worker.CrictlConfigPath, crictlKey())
			}
		default:
			im.refuse("containerd_flavor", "%q: the role knows k8s and base", s)
		}
	}
	if s, ok := im.str("containerd_version"); ok {
		v := "v" + strings.TrimPrefix(s, "v")
		have := im.base.Components["containerd"].Version
		if v == have {
			im.setEntry("containerd_version", Mapped, "checked: the base spec bakes containerd "+have)
		} else {
			im.setEntry("containerd_version", Mapped, "checked: differs from the base spec's containerd "+have)
			im.decide("containerd_version", "%s is not used: the image bakes containerd %s (components.containerd of the base spec); its configuration (version 3) needs containerd 2.x", s, have)
		}
	}
	dir, hasDir := im.str("containerd_crictl_config_directory")
	file, hasFile := im.str("containerd_crictl_config_file")
	switch {
	case hasDir && hasFile:
		p := path.Join(dir, file)
		for _, n := range []string{"containerd_crictl_config_directory", "containerd_crictl_config_file"} {
			if p == worker.CrictlConfigPath {
				im.setEntry(n, Mapped, "checked: with the other, "+p+", the image's crictl configuration")
			} else {
				im.setEntry(n, Mapped, "checked: differs from the image's "+worker.CrictlConfigPath)
				im.decide(n, "crictl's configuration is %s in the image, not %s", worker.CrictlConfigPath, p)
			}
		}
	case hasDir || hasFile:
		n := "containerd_crictl_config_file"
		if hasDir {
			n = "containerd_crictl_config_directory"
		}
		im.setEntry(n, Mapped, "checked: alone it makes the role write no crictl configuration; the image has "+worker.CrictlConfigPath)
	}
	if iv, ok := im.image["containerd_crictl_config_file_content"]; ok {
		const n = "containerd_crictl_config_file_content"
		got, err := decodeYAMLText(n, iv.value)
		want, _ := inventory.DecodeYAML("image", []byte(worker.CrictlConfig))
		wm, _ := want.(map[string]any)
		switch {
		case err != nil:
			im.refuse(n, "%v", err)
		default:
			im.setEntry(n, Mapped, "checked against the image's "+worker.CrictlConfigPath)
			for _, k := range sortedKeys(got) {
				if wv, has := wm[k]; has && sameValue(wv, got[k]) {
					im.line(n, "%s = %s (the image's)", k, show(got[k]))
				} else {
					im.line(n, "%s = %s: not carried over", k, show(got[k]))
					im.decide(n, "%s = %s is not carried over: the image's %s says %s", k, show(got[k]), worker.CrictlConfigPath, strings.TrimSpace(strings.ReplaceAll(worker.CrictlConfig, "\n", "; ")))
				}
			}
		}
	}
	for _, n := range []string{"containerd_cni_netconfig_file", "containerd_cni_netconfig_file_content"} {
		if _, ok := im.image[n]; ok {
			im.setEntry(n, Mapped, "not carried over")
			im.decide(n, "not carried over: pods get their network from first boot (the bridge pod network, with %s per worker) or from a network add-on such as the seed's Cilium; the image bakes no fixed CNI configuration", PodCIDRVar)
		}
	}
	if _, ok := im.image["containerd_config"]; ok {
		im.setEntry("containerd_config", Mapped, "not carried over: the image writes containerd's configuration")
		im.decide("containerd_config", "not carried over: the image writes %s for containerd 2.x (version 3): runc at %s/runc with SystemdCgroup = containerd.systemdCgroup, CNI in %s and %s, sandbox = containerd.sandboxImage; anything else needs a spec change", worker.ContainerdConfig, components.SbinDir, components.CNIBinDir, worker.CNIConfDir)
	}
	if _, ok := im.image["containerd_service_settings"]; ok {
		im.setEntry("containerd_service_settings", Mapped, "not carried over: the image bakes upstream's containerd.service")
		im.decide("containerd_service_settings", "not carried over: the image's containerd.service is upstream's (Delegate=yes, KillMode=process, OOMScoreAdjust=-999, no limits on files and processes); add a drop-in through the spec's files for anything else")
	}
	if s, ok := im.str("containerd_os"); ok {
		if s != "linux" {
			im.refuse("containerd_os", "%q: the image is Linux", s)
		} else {
			im.setEntry("containerd_os", Mapped, "checked: linux")
		}
	}
	if s, ok := im.str("containerd_arch"); ok {
		if spec.Arch(s) != im.base.Arch {
			im.refuse("containerd_arch", "%q: the base spec builds for %s (arch)", s, im.base.Arch)
		} else {
			im.setEntry("containerd_arch", Mapped, "checked: the base spec builds for "+s)
		}
	}
}

// deepCopyMap copies a configuration mapping.
func deepCopyMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	b, err := json.Marshal(m)
	if err != nil {
		return map[string]any{}
	}
	var out map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if dec.Decode(&out) != nil {
		return map[string]any{}
	}
	return numbersToGo(out).(map[string]any)
}

// numbersToGo turns json.Number into int64 or float64.
func numbersToGo(v any) any {
	switch v := v.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case []any:
		for i := range v {
			v[i] = numbersToGo(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = numbersToGo(v[k])
		}
	}
	return v
}
