package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nodebake/nodebake/builder/ansible"
	"github.com/nodebake/nodebake/layers/spec"
)

const importUsage = `Usage: nodebake import ansible [flags]   a spec and a node config per worker from an Ansible tree`

func runImport(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stdout, importUsage)
		if len(args) == 0 {
			return usagef("missing subcommand")
		}
		return nil
	}
	if args[0] != "ansible" {
		return usagef("unknown subcommand %q (want ansible)", args[0])
	}
	fs := newFlags(e, "import ansible", "",
		"Import a worker set up the seed's way (githubixx.containerd, kubernetes-worker, wireguard\n"+
			"and a CA, driven by group_vars, host_vars and an inventory): write DIR/"+ansible.SpecFile+" (the base\n"+
			"spec with what the variables say), DIR/"+ansible.ReportFile+" (what became of every variable, what\n"+
			"first boot fills in, what needs a decision) and, with an inventory, DIR/"+ansible.NodesDir+"/NODE.yaml\n"+
			"for every worker. WireGuard keys are read from the key directory, or generated there\n"+
			"(HOST.key 0600, HOST.pub). Anything refused makes the import write nothing.")
	var o ansible.Options
	fs.StringVar(&o.GroupVars, "group-vars", "", "the group_vars `PATH`: a directory, or one GROUP.yml file (required)")
	fs.StringVar(&o.HostVars, "host-vars", "", "the host_vars `DIR`")
	fs.StringVar(&o.Inventory, "i", "", "the inventory `FILE` (INI or YAML); without one, no node configs")
	base := fs.String("base", "", "the nodebake `SPEC` to start from: base OS, component sources, outputs (required; e.g. images/worker.yaml)")
	fs.StringVar(&o.OutputDir, "o", "", "output `DIR` (required)")
	fs.StringVar(&o.CertDir, "certs", "", "the CA's output `DIR` (default: k8s_ca_conf_directory)")
	fs.StringVar(&o.APIServer, "apiserver", "", "the API server `URL` (default: the first controller's wg0 address)")
	fs.StringVar(&o.KeyDir, "keys", "", "the WireGuard key `DIR` (default: DIR/"+ansible.KeysDir+")")
	fs.StringVar(&o.WorkerGroup, "worker-group", ansible.DefaultWorkerGroup, "the workers' inventory `GROUP`")
	fs.StringVar(&o.VPNGroup, "vpn-group", ansible.DefaultVPNGroup, "the WireGuard mesh's inventory `GROUP`")
	fs.StringVar(&o.ControllerGroup, "controller-group", ansible.DefaultControllerGroup, "the controllers' inventory `GROUP`")
	fs.BoolVar(&o.ConfigDrives, "config-drives", false, "also write each node's config drive ("+ansible.NodesDir+"/NODE.drive.img)")
	fs.BoolVar(&o.UserData, "user-data", false, "also write each node's cloud user data, gzip'd ("+ansible.NodesDir+"/NODE.user-data.gz)")
	quiet := fs.Bool("q", false, "do not print the report (it is written to DIR/"+ansible.ReportFile+")")
	if err := parse(e, fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	if o.GroupVars == "" || *base == "" || o.OutputDir == "" {
		return usagef("want --group-vars PATH, --base SPEC and -o DIR")
	}
	// Validated as a whole first; the import starts from the spec as
	// written (not defaulted), so that the spec it writes stays as short.
	if _, err := loadSpec(*base); err != nil {
		return err
	}
	s, err := spec.Load(*base)
	if err != nil {
		return err
	}
	o.Base, o.BaseName = s, *base
	if home, err := os.UserHomeDir(); err == nil {
		o.HomeDir = home
	}
	o.Now = time.Now()
	res, err := ansible.Import(ctx, o)
	if err != nil {
		return err
	}
	if !*quiet {
		fmt.Fprint(e.stdout, res.Report)
	}
	return nil
}
