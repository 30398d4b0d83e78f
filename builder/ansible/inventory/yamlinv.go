package inventory

import (
	"sort"

	"gopkg.in/yaml.v3"
)

// parseYAMLInventory reads a YAML inventory: a mapping of groups, each
// with hosts (a mapping of host patterns to their variables), vars and
// children (a mapping of groups).
//
//	all:
//	  children:
//	    vpn:
//	      hosts:
//	        worker01: {wireguard_address: 10.8.0.111/24}
func parseYAMLInventory(file string, data []byte) (*Inventory, error) {
	root, err := parseYAMLDoc(file, data)
	if err != nil {
		return nil, err
	}
	inv := newInventory(file)
	if root == nil {
		return inv, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fileErrorf(file, root.Line, "a YAML inventory is a mapping of group names")
	}
	p := &yamlInv{inv: inv, c: &converter{file: file}, budget: MaxHosts}
	if err := p.groups(root, nil, 0); err != nil {
		return nil, err
	}
	return inv, nil
}

type yamlInv struct {
	inv    *Inventory
	c      *converter
	budget int
}

// groups reads a mapping of group names to group definitions; parent, when
// set, gets them as children.
func (p *yamlInv) groups(m *yaml.Node, parent *Group, depth int) error {
	if depth > MaxDepth {
		return fileErrorf(p.c.file, m.Line, "groups nested more than %d levels deep", MaxDepth)
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		name, err := p.c.key(k)
		if err != nil {
			return err
		}
		if first, dup := seen[name]; dup {
			return fileErrorf(p.c.file, k.Line, "duplicate group %q (first at line %d)", name, first)
		}
		seen[name] = k.Line
		g, err := p.inv.group(name, Source{p.c.file, k.Line})
		if err != nil {
			return err
		}
		if parent != nil {
			if name == "all" {
				return fileErrorf(p.c.file, k.Line, "the group all cannot be a child")
			}
			if !contains(parent.Children, name) {
				parent.Children = append(parent.Children, name)
			}
		}
		if err := p.group(g, v, depth); err != nil {
			return err
		}
	}
	return nil
}

func (p *yamlInv) group(g *Group, n *yaml.Node, depth int) error {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return fileErrorf(p.c.file, n.Line, "group %s: want a mapping with hosts, vars and children", g.Name)
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key, err := p.c.key(k)
		if err != nil {
			return err
		}
		if seen[key] {
			return fileErrorf(p.c.file, k.Line, "group %s: duplicate key %q", g.Name, key)
		}
		seen[key] = true
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		isNull := v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null"
		switch key {
		case "hosts":
			if isNull {
				continue
			}
			if v.Kind != yaml.MappingNode {
				return fileErrorf(p.c.file, v.Line, "group %s: hosts must be a mapping of host names", g.Name)
			}
			if err := p.hosts(g, v); err != nil {
				return err
			}
		case "vars":
			if isNull {
				continue
			}
			vars, err := p.vars(v, "group "+g.Name)
			if err != nil {
				return err
			}
			g.Vars = append(g.Vars, vars...)
		case "children":
			if isNull {
				continue
			}
			if v.Kind != yaml.MappingNode {
				return fileErrorf(p.c.file, v.Line, "group %s: children must be a mapping of group names", g.Name)
			}
			if err := p.groups(v, g, depth+1); err != nil {
				return err
			}
		default:
			return fileErrorf(p.c.file, k.Line, "group %s: unknown key %q (want hosts, vars or children)", g.Name, key)
		}
	}
	return nil
}

func (p *yamlInv) hosts(g *Group, m *yaml.Node) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		pattern, err := p.c.key(k)
		if err != nil {
			return err
		}
		hosts, err := expandHosts(p.c.file, k.Line, pattern, &p.budget)
		if err != nil {
			return err
		}
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		var vars []Var
		if !(v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null") {
			if vars, err = p.vars(v, "host "+pattern); err != nil {
				return err
			}
		}
		for _, h := range hosts {
			if err := p.inv.addHost(h, Source{p.c.file, k.Line}); err != nil {
				return err
			}
			if !contains(g.Hosts, h) {
				g.Hosts = append(g.Hosts, h)
			}
			p.inv.hostVars[h] = append(p.inv.hostVars[h], vars...)
		}
	}
	return nil
}

// vars reads a mapping of variables, in name order (a YAML mapping has no
// order Ansible keeps).
func (p *yamlInv) vars(n *yaml.Node, what string) ([]Var, error) {
	if n.Kind != yaml.MappingNode {
		return nil, fileErrorf(p.c.file, n.Line, "%s: variables must be a mapping", what)
	}
	m, err := p.c.mapping(n, 1)
	if err != nil {
		return nil, err
	}
	lines := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if name, err := p.c.key(n.Content[i]); err == nil {
			lines[name] = n.Content[i].Line
		}
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []Var
	for _, name := range names {
		line := lines[name]
		if line == 0 {
			line = n.Line
		}
		if !varNameRE.MatchString(name) {
			return nil, fileErrorf(p.c.file, line, "%s: %q is not a valid variable name", what, name)
		}
		out = append(out, Var{Name: name, Value: m[name], Source: Source{p.c.file, line}})
	}
	return out, nil
}
