package ansible

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/nodebake/nodebake/builder/ansible/inventory"
	"github.com/nodebake/nodebake/builder/ansible/jinja"
	"github.com/nodebake/nodebake/layers/firstboot"
)

// The placeholders of per-node values: what first boot fills in.
const (
	// phNodeName is the node's name (inventory_hostname in a template the
	// image shares).
	phNodeName jinja.Placeholder = "node name"
	// phNodeIP is the node's wg0 address (the address fact of
	// k8s_interface).
	phNodeIP jinja.Placeholder = "wg0 address"
)

// Bounds of evaluation.
const (
	// maxEvalDepth bounds how deeply variables may refer to each other.
	maxEvalDepth = 64
	// maxRendered bounds the text all templates of an import render
	// together (each one is bounded by jinja.MaxLength).
	maxRendered = 64 << 20
)

// evaluator holds every scope of one import and the evaluation in progress.
type evaluator struct {
	tree    *inventory.Tree
	hasInv  bool
	filters map[string]jinja.Filter
	scopes  map[scopeKey]*scope
	// active are the variables being evaluated, innermost last.
	active []activeVar
	// rendered counts the bytes templates rendered.
	rendered int
}

type scopeKey struct {
	host string
	// image: inventory_hostname is a placeholder (the view of a template
	// every worker shares); otherwise it is host.
	image bool
}

type activeVar struct {
	key  scopeKey
	name string
}

// scope is the variables as one host sees them.
type scope struct {
	ev    *evaluator
	key   scopeKey
	vars  map[string]inventory.Resolved
	cache map[string]any
	// refs records, per variable evaluated, the variables it referred to.
	refs map[string]map[string]bool
}

func newEvaluator(tree *inventory.Tree, hasInventory bool, home string) *evaluator {
	ev := &evaluator{tree: tree, hasInv: hasInventory, scopes: map[scopeKey]*scope{}}
	ev.filters = map[string]jinja.Filter{
		"expanduser": func(in any, args []any) (any, error) { return expandUser(in, args, home) },
	}
	return ev
}

// expandUser is Ansible's expanduser filter: a leading ~ becomes the home
// directory of the user running the import.
func expandUser(in any, args []any, home string) (any, error) {
	if len(args) > 0 {
		return nil, fmt.Errorf("expanduser takes no arguments")
	}
	s, ok := in.(string)
	if !ok {
		return nil, fmt.Errorf("expanduser needs a plain string, not %s", jinja.Describe(in))
	}
	if s != "~" && !strings.HasPrefix(s, "~/") {
		if strings.HasPrefix(s, "~") {
			return nil, fmt.Errorf("expanduser of %q: only ~ (the current user's home) is expanded", s)
		}
		return s, nil
	}
	if home == "" {
		return nil, fmt.Errorf("expanduser of %q: no home directory is known", s)
	}
	return strings.TrimSuffix(home, "/") + s[1:], nil
}

// scope returns the scope of a host.
func (ev *evaluator) scope(host string, image bool) *scope {
	k := scopeKey{host, image}
	if s := ev.scopes[k]; s != nil {
		return s
	}
	s := &scope{ev: ev, key: k, vars: ev.tree.Vars(host), cache: map[string]any{}, refs: map[string]map[string]bool{}}
	ev.scopes[k] = s
	return s
}

// has reports whether a variable is defined for the scope's host.
func (s *scope) has(name string) bool { _, ok := s.vars[name]; return ok }

// source returns where the scope's value of a variable comes from.
func (s *scope) source(name string) inventory.Source { return s.vars[name].Source }

// errUndefined marks a reference to a variable nobody defined.
var errUndefined = errors.New("undefined")

// eval returns a variable's value, templated.
func (s *scope) eval(name string) (any, error) {
	if v, ok := s.cache[name]; ok {
		return v, nil
	}
	r, ok := s.vars[name]
	if !ok {
		return nil, fmt.Errorf("%s is not defined: %w", name, errUndefined)
	}
	for i, a := range s.ev.active {
		if a.key == s.key && a.name == name {
			var chain []string
			for _, b := range s.ev.active[i:] {
				chain = append(chain, b.name)
			}
			return nil, fmt.Errorf("%s refers to itself (%s → %s)", name, strings.Join(chain, " → "), name)
		}
	}
	if len(s.ev.active) >= maxEvalDepth {
		return nil, fmt.Errorf("variables refer to each other more than %d levels deep", maxEvalDepth)
	}
	s.ev.active = append(s.ev.active, activeVar{s.key, name})
	v, err := s.template(name, r.Value, 0)
	s.ev.active = s.ev.active[:len(s.ev.active)-1]
	if err != nil {
		return nil, err
	}
	s.cache[name] = v
	return v, nil
}

// evalKey returns one key of a mapping variable, templated, without
// templating the rest of the mapping. ok is false when the variable or the
// key is not set.
func (s *scope) evalKey(name, key string) (v any, ok bool, err error) {
	r, defined := s.vars[name]
	if !defined {
		return nil, false, nil
	}
	m, isMap := r.Value.(map[string]any)
	if !isMap {
		return nil, false, fmt.Errorf("want a mapping, got %s", describeRaw(r.Value))
	}
	raw, has := m[key]
	if !has {
		return nil, false, nil
	}
	s.ev.active = append(s.ev.active, activeVar{s.key, name})
	defer func() { s.ev.active = s.ev.active[:len(s.ev.active)-1] }()
	v, err = s.template(name, raw, 0)
	return v, true, err
}

// template templates every string of a raw value.
func (s *scope) template(owner string, v any, depth int) (any, error) {
	if depth > inventory.MaxDepth {
		return nil, fmt.Errorf("nested more than %d levels deep", inventory.MaxDepth)
	}
	switch v := v.(type) {
	case string:
		if !jinja.HasTemplate(v) {
			return v, nil
		}
		out, err := jinja.Render(v, s.env(owner))
		if err != nil {
			return nil, err
		}
		switch r := out.(type) {
		case string:
			s.ev.rendered += len(r)
		case jinja.Str:
			for _, p := range r {
				s.ev.rendered += len(p.Text)
			}
		}
		if s.ev.rendered > maxRendered {
			return nil, fmt.Errorf("the templates render more than %d MiB in all", maxRendered>>20)
		}
		return out, nil
	case inventory.Unsafe:
		return string(v), nil
	case inventory.Vault:
		return nil, fmt.Errorf("the value is encrypted with Ansible Vault; nodebake does not read vaults")
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			x, err := s.template(owner, e, depth+1)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			out[i] = x
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		for _, k := range sortedKeys(v) {
			x, err := s.template(owner, v[k], depth+1)
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", k, err)
			}
			out[k] = x
		}
		return out, nil
	}
	return v, nil
}

// env is the template environment of the scope; owner is the variable
// whose value is being templated.
func (s *scope) env(owner string) *jinja.Env {
	return &jinja.Env{
		Lookup: func(name string) (any, error) {
			if r, isVar := s.vars[name]; isVar {
				s.ref(owner, name)
				v, err := s.eval(name)
				if err != nil {
					return nil, fmt.Errorf("%s (%s): %w", name, r.Source, err)
				}
				return v, nil
			}
			v, err := s.lookup(name)
			if errors.Is(err, errUndefined) {
				return nil, fmt.Errorf("refers to %s, which is not defined", name)
			}
			return v, err
		},
		Filters: s.ev.filters,
	}
}

func (s *scope) ref(owner, name string) {
	if s.refs[owner] == nil {
		s.refs[owner] = map[string]bool{}
	}
	s.refs[owner][name] = true
}

// lookup resolves a name in a template: a variable, inventory_hostname,
// hostvars, groups, or a gathered fact.
func (s *scope) lookup(name string) (any, error) {
	if _, ok := s.vars[name]; ok {
		return s.eval(name)
	}
	switch name {
	case "inventory_hostname":
		if s.key.image {
			return jinja.Str{{Placeholder: phNodeName}}, nil
		}
		return s.key.host, nil
	case "inventory_hostname_short":
		if s.key.image {
			return nil, fmt.Errorf("inventory_hostname_short is not known for a template every worker shares; first boot fills in only the node name")
		}
		short, _, _ := strings.Cut(s.key.host, ".")
		return short, nil
	case "hostvars":
		return hostvars{s}, nil
	case "groups":
		if !s.ev.hasInv {
			return nil, fmt.Errorf("groups needs an inventory")
		}
		out := map[string]any{}
		for _, g := range s.ev.tree.Inventory.Groups() {
			var hosts []any
			for _, h := range s.ev.tree.Inventory.Members(g) {
				hosts = append(hosts, h)
			}
			out[g] = hosts
		}
		return out, nil
	case "ansible_facts":
		return factsObj{s}, nil
	}
	if iface, ok := strings.CutPrefix(name, "ansible_"); ok && iface != "" {
		return fact{s: s, name: iface}, nil
	}
	return nil, fmt.Errorf("%s is not defined: %w", name, errUndefined)
}

// hostvars is Ansible's hostvars: hostvars[HOST] is that host's variables.
type hostvars struct{ s *scope }

func (h hostvars) Describe() string { return "hostvars" }

func (h hostvars) Attr(name string) (any, error) { return h.Index(name) }

func (h hostvars) Index(key any) (any, error) {
	switch k := key.(type) {
	case jinja.Str:
		if ph := k.Placeholders(); len(k) == 1 && len(ph) == 1 && ph[0] == phNodeName {
			return hostObj{h.s}, nil
		}
		return nil, fmt.Errorf("hostvars[%s]: only inventory_hostname or a host's name can pick a host", k)
	case string:
		if k == h.s.key.host {
			return hostObj{h.s}, nil
		}
		if !h.s.ev.hasInv || !h.s.ev.tree.Inventory.HasHost(k) {
			return nil, fmt.Errorf("hostvars[%q]: no such host in the inventory", k)
		}
		return hostObj{h.s.ev.scope(k, false)}, nil
	}
	return nil, fmt.Errorf("hostvars[...] needs a host name, not %s", jinja.Describe(key))
}

// hostObj is one host's variables, facts included.
type hostObj struct{ s *scope }

func (h hostObj) Describe() string { return "the variables of a host" }

func (h hostObj) Attr(name string) (any, error) {
	v, err := h.s.lookup(name)
	if err != nil && errors.Is(err, errUndefined) {
		return nil, fmt.Errorf("refers to hostvars[...][%q], which is not defined", name)
	}
	return v, err
}

// factsObj is ansible_facts: ansible_facts[IFACE] is an interface's facts.
type factsObj struct{ s *scope }

func (f factsObj) Describe() string { return "ansible_facts" }

func (f factsObj) Attr(name string) (any, error) { return fact{s: f.s, name: name}, nil }

// fact is a fact Ansible gathers on the host. Only an interface's IPv4
// address is known to nodebake, and only for wg0: first boot fills it in
// (from the node config), and for a named host it is its WireGuard address.
type fact struct {
	s    *scope
	name string
	path []string
}

func (f fact) Describe() string {
	return "the fact ansible_" + strings.Join(append([]string{f.name}, f.path...), ".") + " (gathered on the host by Ansible)"
}

func (f fact) Attr(name string) (any, error) {
	p := append(append([]string(nil), f.path...), name)
	switch {
	case len(p) == 1 && p[0] == "ipv4":
		return fact{s: f.s, name: f.name, path: p}, nil
	case len(p) == 2 && p[0] == "ipv4" && p[1] == "address":
	default:
		return nil, fmt.Errorf("%s is gathered on the host and not known when the image is built; first boot fills in only wg0's address", fact{name: f.name, path: p}.Describe())
	}
	if f.name != firstboot.WireGuardInterface {
		return nil, fmt.Errorf("ansible_%s.ipv4.address is the address of %s; first boot configures and fills in only %s's address", f.name, f.name, firstboot.WireGuardInterface)
	}
	if f.s.key.image {
		return jinja.Str{{Placeholder: phNodeIP}}, nil
	}
	// A named host's wg0 address is its WireGuard address.
	addrs, err := wireguardAddresses(f.s)
	if err != nil {
		return nil, fmt.Errorf("ansible_%s.ipv4.address of %s: %w", f.name, f.s.key.host, err)
	}
	for _, a := range addrs {
		if a.Addr().Is4() {
			return a.Addr().String(), nil
		}
	}
	return nil, fmt.Errorf("ansible_%s.ipv4.address of %s: it has no IPv4 WireGuard address", f.name, f.s.key.host)
}

// wireguardAddresses returns a host's WireGuard addresses: wireguard_address
// and wireguard_addresses, as the role puts them on wg0. A bare address is
// a /32 (/128).
func wireguardAddresses(s *scope) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, name := range []string{"wireguard_address", "wireguard_addresses"} {
		if !s.has(name) {
			continue
		}
		v, err := s.eval(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		var items []any
		switch x := v.(type) {
		case string:
			if name == "wireguard_addresses" {
				return nil, fmt.Errorf("%s: want a list of addresses, got %s", name, jinja.Describe(v))
			}
			items = []any{x}
		case []any:
			if name == "wireguard_address" {
				return nil, fmt.Errorf("%s: want one address, got a list (use wireguard_addresses)", name)
			}
			items = x
		default:
			return nil, fmt.Errorf("%s: want an address like 10.8.0.101/24, got %s", name, jinja.Describe(v))
		}
		for _, it := range items {
			str, ok := it.(string)
			if !ok {
				return nil, fmt.Errorf("%s: want an address like 10.8.0.101/24, got %s", name, jinja.Describe(it))
			}
			p, err := parseAddress(str)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// parseAddress parses ADDRESS/BITS, or a bare address as a host route.
func parseAddress(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p, nil
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.Prefix{}, fmt.Errorf("%q is not an address like 10.8.0.101/24", s)
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// describeRaw names the kind of a raw (untemplated) value.
func describeRaw(v any) string {
	switch v := v.(type) {
	case inventory.Unsafe:
		return jinja.Describe(string(v))
	case inventory.Vault:
		return "a vault-encrypted value"
	}
	return jinja.Describe(v)
}
