package ansible

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/nodebake/nodebake/builder/ansible/inventory"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/spec"
)

// noInventoryHost stands for every worker when there is no inventory.
const noInventoryHost = "(every worker)"

// entry is one variable's line in the report.
type entry struct {
	name    string
	bucket  Bucket
	role    string
	summary string
	lines   []string
}

// perNodeLine is one per-node value in the report: what the tree says and
// what fills it in.
type perNodeLine struct {
	what     string // variable[key]
	template string
	fill     string
}

// importer is one import in progress.
type importer struct {
	opts Options
	tree *inventory.Tree
	ev   *evaluator
	// hasInv: an inventory was given.
	hasInv      bool
	workers     []string
	vpn         []string
	controllers []string
	// base is opts.Base defaulted: what nodebake would build without the
	// import.
	base *spec.Spec

	probs     problems
	entries   map[string]*entry
	decisions []string
	perNode   []perNodeLine
	notes     []string // the inputs section
	// image holds each image variable as the first worker sees it.
	image map[string]imageValue
	// out is the spec being built.
	out *spec.Spec
	// fieldVar maps spec field paths to the variable that set them, for
	// validation errors.
	fieldVar map[string]string
	nodes    []nodeResult
	// minor is the Kubernetes minor version the spec builds (0: unknown).
	minor    int
	certsDir string
	apiSrv   string
}

type imageValue struct {
	value  any
	source inventory.Source
}

// Import reads the Ansible tree opts names, writes the spec, the report and
// (with an inventory) a node config per worker into opts.OutputDir, and
// returns what it wrote. When anything is refused it writes nothing and
// returns an *Error naming every refused variable. Those, missing options
// and unreadable or malformed inputs (an *inventory.FileError names the
// file) are of kind failure.Invalid; failures to write are internal.
func Import(ctx context.Context, opts Options) (*Result, error) {
	opts.defaults()
	switch {
	case opts.GroupVars == "":
		return nil, failure.Errorf(failure.Invalid, "importing from Ansible: no group_vars given")
	case opts.Base == nil:
		return nil, failure.Errorf(failure.Invalid, "importing from Ansible: no base spec given")
	case opts.OutputDir == "":
		return nil, failure.Errorf(failure.Invalid, "importing from Ansible: no output directory given")
	case opts.Now.IsZero():
		return nil, failure.Errorf(failure.Invalid, "importing from Ansible: no time to check the certificates at (Options.Now)")
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.KeyDir == "" {
		opts.KeyDir = filepath.Join(opts.OutputDir, KeysDir)
	}
	im := &importer{opts: opts, entries: map[string]*entry{}, image: map[string]imageValue{}, fieldVar: map[string]string{}}
	if err := im.load(); err != nil {
		return nil, failure.New(failure.Invalid, err)
	}
	base := opts.Base.Clone()
	base.Default()
	im.base = base

	im.mapImage()
	im.buildSpec()
	st := &stager{}
	defer st.abort()
	if im.hasInv {
		if err := im.nodeConfigs(ctx, st); err != nil {
			return nil, err
		}
	}
	im.classifyAll()
	if err := im.probs.err(); err != nil {
		return nil, failure.New(failure.Invalid, err)
	}
	res, err := im.write(st)
	if err != nil {
		return nil, err
	}
	if err := st.commit(); err != nil {
		return nil, fmt.Errorf("importing from Ansible: %w", err)
	}
	return res, nil
}

// load reads the tree and finds the workers, the VPN and the controllers.
func (im *importer) load() error {
	o := im.opts
	var l inventory.Loader
	gv, err := l.LoadVars(o.GroupVars)
	if err != nil {
		return err
	}
	tree := &inventory.Tree{GroupVars: gv}
	if o.HostVars != "" {
		if tree.HostVars, err = l.LoadVars(o.HostVars); err != nil {
			return err
		}
	}
	im.note("group_vars: %s (%d files)", o.GroupVars, len(gv.Files))
	if tree.HostVars != nil {
		im.note("host_vars:  %s (%d files)", o.HostVars, len(tree.HostVars.Files))
	}
	for _, d := range []*inventory.VarsDir{gv, tree.HostVars} {
		if d == nil {
			continue
		}
		for _, ig := range d.Ignored {
			im.note("  not read (as Ansible does not): %s: %s", ig.Path, ig.Reason)
		}
	}
	if o.Inventory != "" {
		if tree.Inventory, err = l.LoadInventory(o.Inventory); err != nil {
			return err
		}
		im.hasInv = true
		inv := tree.Inventory
		im.workers = inv.Members(o.WorkerGroup)
		im.vpn = inv.Members(o.VPNGroup)
		im.controllers = inv.Members(o.ControllerGroup)
		im.note("inventory:  %s (%d hosts; %s: %s; %s: %d hosts; %s: %s)", o.Inventory, len(inv.Hosts()),
			o.WorkerGroup, strings.Join(im.workers, ", "), o.VPNGroup, len(im.vpn), o.ControllerGroup, listOrNone(im.controllers))
		if len(im.workers) == 0 {
			return &Error{Problems: []Problem{{Source: inventory.Source{File: o.Inventory}, Msg: fmt.Sprintf("the inventory has no hosts in the worker group %s", o.WorkerGroup)}}}
		}
		for _, t := range gv.Targets() {
			if !inv.HasGroup(t) {
				im.note("  group_vars for %s: the inventory has no such group; not applied (as Ansible does)", t)
			}
		}
		if tree.HostVars != nil {
			for _, t := range tree.HostVars.Targets() {
				if !inv.HasHost(t) {
					im.note("  host_vars for %s: the inventory has no such host; not applied (as Ansible does)", t)
				}
			}
		}
	} else {
		tree.Inventory = inventory.New("(no inventory)", []string{noInventoryHost}, o.WorkerGroup, o.VPNGroup)
		im.workers = []string{noInventoryHost}
		im.note("inventory:  none: the workers are taken to be in the groups all, %s and %s; no node configs", o.WorkerGroup, o.VPNGroup)
		for _, t := range gv.Targets() {
			if t != "all" && t != o.WorkerGroup && t != o.VPNGroup {
				im.note("  group_vars for %s: without an inventory, not applied to workers", t)
			}
		}
	}
	im.tree = tree
	im.ev = newEvaluator(tree, im.hasInv, o.HomeDir)
	return nil
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

func (im *importer) note(format string, args ...any) {
	im.notes = append(im.notes, fmt.Sprintf(format, args...))
}

// decide records something the user should look at.
func (im *importer) decide(variable, format string, args ...any) {
	im.decisions = append(im.decisions, variable+": "+fmt.Sprintf(format, args...))
}

// refuse records a refusal about a variable, located where the first
// worker (or whoever sets it) gets it from.
func (im *importer) refuse(variable, format string, args ...any) {
	im.probs.add(variable, im.sourceOf(variable), "", format, args...)
	im.setEntry(variable, Refused, fmt.Sprintf(format, args...))
}

// sourceOf is where a variable's value comes from for the first worker, or
// the first place the tree sets it.
func (im *importer) sourceOf(variable string) inventory.Source {
	if v, ok := im.image[variable]; ok {
		return v.source
	}
	for _, w := range im.workers {
		if s := im.ev.scope(w, true); s.has(variable) {
			return s.source(variable)
		}
	}
	if all := im.tree.AllVars()[variable]; len(all) > 0 {
		return all[0].Source
	}
	return inventory.Source{}
}

// setEntry sets a variable's bucket and summary; a refusal is never
// overwritten.
func (im *importer) setEntry(name string, b Bucket, summary string) *entry {
	e := im.entries[name]
	if e == nil {
		e = &entry{name: name, role: lookupKnown(name).role}
		im.entries[name] = e
	}
	if e.bucket == Refused {
		if b == Refused && !strings.Contains(e.summary, summary) {
			e.summary += "; " + summary
		}
		return e
	}
	e.bucket, e.summary = b, summary
	return e
}

func (im *importer) line(name, format string, args ...any) {
	e := im.entries[name]
	if e == nil {
		e = im.setEntry(name, Mapped, "")
	}
	e.lines = append(e.lines, fmt.Sprintf(format, args...))
}

// evalErr turns an evaluation error into a refusal of the variable.
func (im *importer) evalErr(name string, src inventory.Source, host string, err error) {
	msg := err.Error()
	if errors.Is(err, errUndefined) {
		msg = "not defined"
	}
	im.probs.add(name, src, host, "%s", msg)
	im.setEntry(name, Refused, msg)
}
