package main

import (
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/nodebake/nodebake/builder/ansible"
	"github.com/nodebake/nodebake/layers/spec"
)

func newImportCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import",
		Short: "A spec and node configs from an existing setup: the seed's Ansible tree (ansible)",
	}
	cmd.AddCommand(newImportAnsibleCmd(e))
	return cmd
}

func newImportAnsibleCmd(e *env) *cobra.Command {
	var o ansible.Options
	var base string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "ansible --group-vars PATH --base SPEC -o DIR [flags]",
		Short: "A spec, a report and a node config per worker from the seed's Ansible tree",
		Long: "Import a worker set up the seed's way (githubixx.containerd, kubernetes-worker, wireguard\n" +
			"and a CA, driven by group_vars, host_vars and an inventory): write DIR/" + ansible.SpecFile + " (the base\n" +
			"spec with what the variables say), DIR/" + ansible.ReportFile + " (what became of every variable, what\n" +
			"first boot fills in, what needs a decision) and, with an inventory, DIR/" + ansible.NodesDir + "/NODE.yaml\n" +
			"for every worker. WireGuard keys are read from the key directory, or generated there\n" +
			"(HOST.key 0600, HOST.pub). Anything refused makes the import write nothing.",
		Example: "  nodebake import ansible --group-vars group_vars --host-vars host_vars -i hosts \\\n" +
			"    --base images/worker.yaml --certs ~/k8s/certs -o imported",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.GroupVars == "" || base == "" || o.OutputDir == "" {
				return usagef("want --group-vars PATH, --base SPEC and -o DIR")
			}
			// Validated as a whole first; the import starts from the spec as
			// written (not defaulted), so that the spec it writes stays as
			// short.
			if _, err := loadSpec(base); err != nil {
				return err
			}
			s, err := spec.Load(base)
			if err != nil {
				return err
			}
			o.Base, o.BaseName = s, base
			if home, err := os.UserHomeDir(); err == nil {
				o.HomeDir = home
			}
			o.Now = time.Now()
			res, err := ansible.Import(cmd.Context(), o)
			if err != nil {
				return err
			}
			if !quiet {
				_, err = e.stdout.Write([]byte(res.Report))
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.GroupVars, "group-vars", "", "the group_vars `PATH`: a directory, or one GROUP.yml file (required)")
	f.StringVar(&o.HostVars, "host-vars", "", "the host_vars `DIR`")
	f.StringVarP(&o.Inventory, "inventory", "i", "", "the inventory `FILE` (INI or YAML); without one, no node configs")
	f.StringVar(&base, "base", "", "the nodebake `SPEC` to start from: base OS, component sources, outputs (required; e.g. images/worker.yaml)")
	f.StringVarP(&o.OutputDir, "output", "o", "", "output `DIR` (required)")
	f.StringVar(&o.CertDir, "certs", "", "the CA's output `DIR` (default: k8s_ca_conf_directory)")
	f.StringVar(&o.APIServer, "apiserver", "", "the API server `URL` (default: the first controller's wg0 address)")
	f.StringVar(&o.KeyDir, "keys", "", "the WireGuard key `DIR` (default: DIR/"+ansible.KeysDir+")")
	f.StringVar(&o.WorkerGroup, "worker-group", ansible.DefaultWorkerGroup, "the workers' inventory `GROUP`")
	f.StringVar(&o.VPNGroup, "vpn-group", ansible.DefaultVPNGroup, "the WireGuard mesh's inventory `GROUP`")
	f.StringVar(&o.ControllerGroup, "controller-group", ansible.DefaultControllerGroup, "the controllers' inventory `GROUP`")
	f.BoolVar(&o.ConfigDrives, "config-drives", false, "also write each node's config drive ("+ansible.NodesDir+"/NODE.drive.img)")
	f.BoolVar(&o.UserData, "user-data", false, "also write each node's cloud user data, gzip'd ("+ansible.NodesDir+"/NODE.user-data.gz)")
	f.BoolVarP(&quiet, "quiet", "q", false, "do not print the report (it is written to DIR/"+ansible.ReportFile+")")
	return cmd
}
