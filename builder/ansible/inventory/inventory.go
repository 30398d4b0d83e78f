// Package inventory reads an Ansible tree the way Ansible does, within
// bounds: inventories (INI and YAML: groups, children, host ranges, inline
// variables), group_vars and host_vars files and directories, and the
// precedence that decides which value a host sees. Values are YAML 1.1
// typed as Ansible's reader types them; templates are left as text.
package inventory

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Limits of an inventory.
const (
	// MaxHosts is the most hosts an inventory may name (ranges expanded).
	MaxHosts = 10_000
	// MaxGroups is the most groups an inventory may name.
	MaxGroups = 1_000
	// MaxHostName is the longest host name: nodebake names a host's
	// WireGuard key files after it (HOST.key), which must fit in a file
	// name of 255 bytes. DNS names are at most 253.
	MaxHostName = 250
	// MaxHostPattern is the longest host pattern (a name with [a:b]
	// ranges) before it is expanded.
	MaxHostPattern = 1024
)

// Group is an inventory group.
type Group struct {
	Name string
	// Hosts are the hosts listed in the group itself, in order.
	Hosts []string
	// Children are the child groups, in order.
	Children []string
	// Vars are the group's inline variables ([NAME:vars], vars:).
	Vars   []Var
	Source Source
}

// Inventory is a parsed inventory.
type Inventory struct {
	File   string
	hosts  []string
	known  map[string]bool
	groups map[string]*Group
	order  []string
	// hostVars are the inline variables of each host, in order.
	hostVars map[string][]Var
	hostSrc  map[string]Source
}

func newInventory(file string) *Inventory {
	inv := &Inventory{File: file, known: map[string]bool{}, groups: map[string]*Group{}, hostVars: map[string][]Var{}, hostSrc: map[string]Source{}}
	inv.group("all", Source{File: file})
	inv.group("ungrouped", Source{File: file})
	return inv
}

// New returns an inventory of the given hosts, each in the groups named:
// what an import without an inventory file assumes.
func New(name string, hosts []string, groups ...string) *Inventory {
	inv := newInventory(name)
	for _, g := range groups {
		grp, _ := inv.group(g, Source{File: name})
		for _, h := range hosts {
			inv.addHost(h, Source{File: name})
			grp.Hosts = append(grp.Hosts, h)
		}
	}
	return inv
}

var (
	groupNameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)
	hostNameRE  = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$|^[0-9a-fA-F:]*:[0-9a-fA-F:.]*$`)
)

func (inv *Inventory) group(name string, src Source) (*Group, error) {
	if g, ok := inv.groups[name]; ok {
		return g, nil
	}
	if !groupNameRE.MatchString(name) {
		return nil, fileErrorf(src.File, src.Line, "%q is not a valid group name", name)
	}
	if len(inv.groups) >= MaxGroups {
		return nil, fileErrorf(src.File, src.Line, "more than %d groups", MaxGroups)
	}
	g := &Group{Name: name, Source: src}
	inv.groups[name] = g
	inv.order = append(inv.order, name)
	return g, nil
}

func (inv *Inventory) addHost(h string, src Source) error {
	if inv.known[h] {
		return nil
	}
	if len(inv.hosts) >= MaxHosts {
		return fileErrorf(src.File, src.Line, "more than %d hosts", MaxHosts)
	}
	inv.known[h] = true
	inv.hosts = append(inv.hosts, h)
	inv.hostSrc[h] = src
	return nil
}

// Hosts returns every host, in the order the inventory first names them.
func (inv *Inventory) Hosts() []string { return append([]string(nil), inv.hosts...) }

// HasHost reports whether the inventory names host.
func (inv *Inventory) HasHost(h string) bool { return inv.known[h] }

// HostSource returns where the inventory first names host.
func (inv *Inventory) HostSource(h string) Source { return inv.hostSrc[h] }

// HasGroup reports whether the inventory has a group.
func (inv *Inventory) HasGroup(name string) bool { _, ok := inv.groups[name]; return ok }

// Group returns a group, or nil.
func (inv *Inventory) Group(name string) *Group { return inv.groups[name] }

// Groups returns the names of every group, in the order first named.
func (inv *Inventory) Groups() []string { return append([]string(nil), inv.order...) }

// HostVars returns the host's inline variables.
func (inv *Inventory) HostVars(h string) []Var { return inv.hostVars[h] }

// Members returns the hosts of a group, its descendants' included, in
// inventory order (the group's own hosts first, then each child's), without
// repeats. "all" holds every host; "ungrouped" those in no other group.
func (inv *Inventory) Members(group string) []string {
	switch group {
	case "all":
		return inv.Hosts()
	case "ungrouped":
		var out []string
		for _, h := range inv.hosts {
			if gs := inv.groupsOf(h); len(gs) == 0 {
				out = append(out, h)
			}
		}
		return out
	}
	var out []string
	seen := map[string]bool{}
	visited := map[string]bool{}
	var walk func(string)
	walk = func(name string) {
		g := inv.groups[name]
		if g == nil || visited[name] {
			return
		}
		visited[name] = true
		for _, h := range g.Hosts {
			if !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
		}
		for _, c := range g.Children {
			walk(c)
		}
	}
	walk(group)
	return out
}

// groupsOf returns the groups a host is listed in directly, besides all and
// ungrouped.
func (inv *Inventory) groupsOf(h string) []string {
	var out []string
	for _, name := range inv.order {
		if name == "all" || name == "ungrouped" {
			continue
		}
		for _, x := range inv.groups[name].Hosts {
			if x == h {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// HostGroups returns every group a host belongs to, ancestors included,
// in the order Ansible applies their variables: by depth (all first), then
// by ansible_group_priority, then by name.
func (inv *Inventory) HostGroups(h string) []string {
	member := map[string]bool{"all": true}
	direct := inv.groupsOf(h)
	if len(direct) == 0 {
		member["ungrouped"] = true
	}
	parents := inv.parents()
	var up func(string)
	up = func(g string) {
		if member[g] {
			return
		}
		member[g] = true
		for _, p := range parents[g] {
			up(p)
		}
	}
	for _, g := range direct {
		up(g)
	}
	depth := inv.depths()
	var out []string
	for g := range member {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if depth[a] != depth[b] {
			return depth[a] < depth[b]
		}
		if pa, pb := inv.priority(a), inv.priority(b); pa != pb {
			return pa < pb
		}
		return a < b
	})
	return out
}

// parents maps each group to the groups that list it as a child.
func (inv *Inventory) parents() map[string][]string {
	p := map[string][]string{}
	for _, name := range inv.order {
		for _, c := range inv.groups[name].Children {
			p[c] = append(p[c], name)
		}
	}
	return p
}

// depths gives each group its depth: all 0, a group without a parent 1, a
// child one more than its deepest parent.
func (inv *Inventory) depths() map[string]int {
	parents := inv.parents()
	d := map[string]int{"all": 0}
	var depth func(string, int) int
	depth = func(g string, n int) int {
		if v, ok := d[g]; ok {
			return v
		}
		if n > len(inv.order) { // a cycle; refused when parsing
			return n
		}
		best := 1
		for _, p := range parents[g] {
			if p == "all" {
				continue
			}
			if v := depth(p, n+1) + 1; v > best {
				best = v
			}
		}
		d[g] = best
		return best
	}
	for _, g := range inv.order {
		depth(g, 0)
	}
	return d
}

// priority is a group's inline ansible_group_priority (default 1).
func (inv *Inventory) priority(group string) int {
	g := inv.groups[group]
	if g == nil {
		return 1
	}
	p := 1
	for _, v := range g.Vars {
		if v.Name == "ansible_group_priority" {
			switch x := v.Value.(type) {
			case int64:
				p = int(x)
			case string:
				if n, err := strconv.Atoi(x); err == nil {
					p = n
				}
			}
		}
	}
	return p
}

// checkCycles refuses a group that is its own ancestor.
func (inv *Inventory) checkCycles() error {
	const (
		white = iota
		grey
		black
	)
	state := map[string]int{}
	var visit func(string, []string) error
	visit = func(g string, path []string) error {
		switch state[g] {
		case grey:
			return fileErrorf(inv.File, inv.groups[g].Source.Line, "group %s is its own ancestor (%s)", g, strings.Join(append(path, g), " → "))
		case black:
			return nil
		}
		state[g] = grey
		for _, c := range inv.groups[g].Children {
			if err := visit(c, append(path, g)); err != nil {
				return err
			}
		}
		state[g] = black
		return nil
	}
	for _, g := range inv.order {
		if err := visit(g, nil); err != nil {
			return err
		}
	}
	return nil
}

// LoadInventory reads an inventory file: YAML when it parses as a YAML
// mapping of groups, INI otherwise.
func (l *Loader) LoadInventory(path string) (*Inventory, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading the inventory: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fileErrorf(path, 0, "the inventory must be a regular file (inventory directories and scripts are not read)")
	}
	data, err := readFile(path, &l.b)
	if err != nil {
		return nil, err
	}
	var inv *Inventory
	if looksLikeYAMLInventory(path, data) {
		inv, err = parseYAMLInventory(path, data)
	} else {
		inv, err = parseINI(path, data)
	}
	if err != nil {
		return nil, err
	}
	if err := inv.checkCycles(); err != nil {
		return nil, err
	}
	return inv, nil
}

// looksLikeYAMLInventory says whether a file is a YAML inventory: a .yml,
// .yaml or .json file, or one whose first meaningful line is a YAML
// mapping key and not an INI section.
func looksLikeYAMLInventory(path string, data []byte) bool {
	switch {
	case strings.HasSuffix(path, ".yml"), strings.HasSuffix(path, ".yaml"), strings.HasSuffix(path, ".json"):
		return true
	}
	for _, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "#") || strings.HasPrefix(t, ";") || t == "---" {
			continue
		}
		return strings.HasSuffix(t, ":") && !strings.HasPrefix(t, "[")
	}
	return false
}

// expandHosts expands a host pattern with ranges: web[01:03].example
// gives web01, web02, web03; [a:c] letters; [1:10:2] a step.
func expandHosts(file string, line int, pattern string, budget *int) ([]string, error) {
	if len(pattern) > MaxHostPattern {
		return nil, fileErrorf(file, line, "a host pattern of %d characters is longer than the limit of %d", len(pattern), MaxHostPattern)
	}
	open := strings.IndexByte(pattern, '[')
	if open < 0 {
		if !hostNameRE.MatchString(pattern) {
			return nil, fileErrorf(file, line, "%q is not a valid host name", pattern)
		}
		if len(pattern) > MaxHostName {
			return nil, fileErrorf(file, line, "host name %.40q... is %d characters long, more than the limit of %d (its WireGuard key files are named after it)", pattern, len(pattern), MaxHostName)
		}
		*budget--
		if *budget < 0 {
			return nil, fileErrorf(file, line, "more than %d hosts", MaxHosts)
		}
		return []string{pattern}, nil
	}
	end := strings.IndexByte(pattern[open:], ']')
	if end < 0 {
		return nil, fileErrorf(file, line, "%q: unclosed [ in a host range", pattern)
	}
	end += open
	head, spec, tail := pattern[:open], pattern[open+1:end], pattern[end+1:]
	parts := strings.Split(spec, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return nil, fileErrorf(file, line, "%q: a host range is [START:END] or [START:END:STEP]", pattern)
	}
	step := 1
	if len(parts) == 3 {
		n, err := strconv.Atoi(parts[2])
		if err != nil || n < 1 {
			return nil, fileErrorf(file, line, "%q: the range step must be a positive number", pattern)
		}
		step = n
	}
	var items []string
	lo, hi := parts[0], parts[1]
	if a, errA := strconv.Atoi(lo); errA == nil {
		b, errB := strconv.Atoi(hi)
		if errB != nil || a < 0 || b < a {
			return nil, fileErrorf(file, line, "%q: invalid numeric range", pattern)
		}
		n := (b-a)/step + 1
		if n > *budget {
			return nil, fileErrorf(file, line, "%q: more than %d hosts", pattern, MaxHosts)
		}
		width := 0
		if len(lo) > 1 && lo[0] == '0' {
			width = len(lo)
		}
		// Counted, not stepped to b: a + step may overflow.
		for k := 0; k < n; k++ {
			items = append(items, fmt.Sprintf("%0*d", width, a+k*step))
		}
	} else {
		if len(lo) != 1 || len(hi) != 1 || lo[0] > hi[0] || !isLetter(lo[0]) || !isLetter(hi[0]) {
			return nil, fileErrorf(file, line, "%q: invalid range (numbers, or single letters)", pattern)
		}
		for c := lo[0]; c <= hi[0]; c += byte(step) {
			items = append(items, string(c))
			if int(c)+step > 255 {
				break
			}
		}
	}
	var out []string
	for _, it := range items {
		rest, err := expandHosts(file, line, head+it+tail, budget)
		if err != nil {
			return nil, err
		}
		out = append(out, rest...)
	}
	return out, nil
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
