package inventory

// Tree is an Ansible tree: an inventory with its group_vars and host_vars.
type Tree struct {
	Inventory *Inventory
	// GroupVars and HostVars may be nil.
	GroupVars *VarsDir
	HostVars  *VarsDir
}

// Resolved is a variable as one host sees it: the value that wins, and
// where lower-precedence values of it were set.
type Resolved struct {
	Var
	Overridden []Source
}

// Vars returns the variables a host sees, by name, with Ansible's
// precedence (lowest first): the inventory's inline group variables (all,
// then the host's groups by depth, priority and name), group_vars files
// in the same group order, the inventory's inline host variables, and
// host_vars files. A later value replaces an earlier one whole (Ansible's
// default hash_behaviour).
func (t *Tree) Vars(host string) map[string]Resolved {
	out := map[string]Resolved{}
	set := func(v Var) {
		r, ok := out[v.Name]
		var over []Source
		if ok {
			over = append(r.Overridden, r.Source)
		}
		out[v.Name] = Resolved{Var: v, Overridden: over}
	}
	groups := t.Inventory.HostGroups(host)
	for _, g := range groups {
		if grp := t.Inventory.Group(g); grp != nil {
			for _, v := range grp.Vars {
				set(v)
			}
		}
	}
	if t.GroupVars != nil {
		for _, g := range groups {
			for _, f := range t.GroupVars.For(g) {
				for _, v := range f.Vars {
					set(v)
				}
			}
		}
	}
	for _, v := range t.Inventory.HostVars(host) {
		set(v)
	}
	if t.HostVars != nil {
		for _, f := range t.HostVars.For(host) {
			for _, v := range f.Vars {
				set(v)
			}
		}
	}
	return out
}

// AllVars returns every variable the tree sets anywhere, by name, each
// with the places it is set (files and inventory lines).
func (t *Tree) AllVars() map[string][]Var {
	out := map[string][]Var{}
	add := func(v Var) { out[v.Name] = append(out[v.Name], v) }
	for _, g := range t.Inventory.Groups() {
		for _, v := range t.Inventory.Group(g).Vars {
			add(v)
		}
	}
	for _, d := range []*VarsDir{t.GroupVars, t.HostVars} {
		if d == nil {
			continue
		}
		for _, f := range d.Files {
			for _, v := range f.Vars {
				add(v)
			}
		}
	}
	for _, h := range t.Inventory.Hosts() {
		for _, v := range t.Inventory.HostVars(h) {
			add(v)
		}
	}
	return out
}
