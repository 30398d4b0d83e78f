package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/nodebake/nodebake/layers/configdrive"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/layers/worker"
)

func newNodeCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Per-node configuration: assemble a node config, check it, write a config drive (config, check, drive)",
	}
	cmd.AddCommand(newNodeConfigCmd(e), newNodeCheckCmd(e), newNodeDriveCmd(e))
	return cmd
}

// factsFor returns the image facts a node config is checked against: those
// an image built from the spec bakes, or from the defaults.
func factsFor(specPath string) (nodeconfig.ImageFacts, error) {
	s := &spec.Spec{}
	if specPath != "" {
		var err error
		if s, err = loadSpec(specPath); err != nil {
			return nodeconfig.ImageFacts{}, err
		}
	}
	s.Default()
	return worker.ImageFacts(s), nil
}

func newNodeConfigCmd(e *env) *cobra.Command {
	var o nodeconfig.AssembleOptions
	var specPath, out string
	cmd := &cobra.Command{
		Use:   "config --node NAME --certs DIR ... [-o FILE]",
		Short: "Assemble and validate a node config (YAML on stdout or -o)",
		Long: "Assemble a node config from the certificate authority's output (the seed's file names:\n" +
			"ca-k8s-apiserver.pem, cert-NODE.pem, cert-NODE-key.pem, cert-kube-proxy.pem,\n" +
			"cert-kube-proxy-key.pem) and the node's WireGuard settings; validate it as the\n" +
			"first-boot step will, and write it as YAML.",
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			cfg, err := nodeconfig.Assemble(o)
			if err != nil {
				return failure.New(failure.Invalid, err)
			}
			facts, err := factsFor(specPath)
			if err != nil {
				return err
			}
			if err := nodeconfig.Validate(cfg, facts, time.Now()); err != nil {
				return failure.New(failure.Invalid, err)
			}
			b, err := nodeconfig.Marshal(cfg)
			if err != nil {
				return err
			}
			if out == "" {
				_, err = e.stdout.Write(b)
				return err
			}
			return writeFileAtomic(out, b, 0o600)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.NodeName, "node", "", "node `NAME` (required)")
	f.StringVar(&o.CertDir, "certs", "", "`DIR` holding the CA's output under the seed's names")
	f.StringVar(&o.CACertFile, "ca", "", "CA certificate `FILE` (default DIR/ca-k8s-apiserver.pem)")
	f.StringVar(&o.NodeCertFile, "cert", "", "node certificate `FILE` (default DIR/cert-NODE.pem)")
	f.StringVar(&o.NodeKeyFile, "key", "", "node key `FILE` (default DIR/cert-NODE-key.pem)")
	f.StringVar(&o.KubeProxyCertFile, "kube-proxy-cert", "", "kube-proxy client certificate `FILE`")
	f.StringVar(&o.KubeProxyKeyFile, "kube-proxy-key", "", "kube-proxy client key `FILE`")
	f.StringVar(&o.KubeProxyKubeconfigFile, "kube-proxy-kubeconfig", "", "kube-proxy kubeconfig `FILE` (instead of cert and key)")
	f.StringVar(&o.APIServer, "apiserver", "", "API server `URL` (https://HOST:6443)")
	f.StringVar(&o.PodCIDR, "pod-cidr", "", "the node's pod `CIDR` (needed with the bridge pod network)")
	f.StringVar(&o.WireGuardAddress, "wg-address", "", "wg0 address `CIDR` (e.g. 10.8.0.203/24)")
	f.StringVar(&o.WireGuardKeyFile, "wg-key", "", "WireGuard private key `FILE` (as wg genkey writes it)")
	f.IntVar(&o.ListenPort, "wg-port", nodeconfig.DefaultListenPort, "WireGuard listen `PORT`")
	f.StringArrayVar(&o.Peers, "peer", nil, "a WireGuard `PEER`: publicKey=KEY,endpoint=HOST:PORT,allowedIPs=CIDR,CIDR,persistentKeepalive=25 (repeatable)")
	f.StringVar(&specPath, "spec", "", "check against this image `SPEC` (service and pod CIDRs); default: the defaults")
	f.StringVarP(&out, "output", "o", "", "write to `FILE` instead of stdout")
	return cmd
}

func newNodeCheckCmd(e *env) *cobra.Command {
	var specPath string
	cmd := &cobra.Command{
		Use:   "check NODE.yaml [--spec SPEC]",
		Short: "Validate a node config against an image's spec",
		Long:  "Validate a node config as the first-boot step will (now, against the spec's CIDRs).",
		Args:  exactArgs(1, "exactly one node config"),
		RunE: func(_ *cobra.Command, args []string) error {
			facts, err := factsFor(specPath)
			if err != nil {
				return err
			}
			// The same bounded read and checks as the first-boot program's.
			b, err := nodeconfig.ReadFile(args[0])
			if err != nil {
				return failure.Errorf(failure.Invalid, "%s: %w", args[0], nodeconfig.ReadProblem(err))
			}
			cfg, err := nodeconfig.Load(b, facts, time.Now())
			if err != nil {
				return failure.Errorf(failure.Invalid, "%s: %w", args[0], err)
			}
			fmt.Fprintf(e.stdout, "%s: valid node config for %s\n", args[0], cfg.NodeName)
			return nil
		},
	}
	cmd.Flags().StringVar(&specPath, "spec", "", "the image `SPEC` (default: the defaults)")
	return cmd
}

func newNodeDriveCmd(_ *env) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "drive NODE.yaml -o DRIVE.img",
		Short: "Write a config drive (FAT, label " + firstboot.DriveLabel + ") holding the node config",
		Long: "Write a config drive: a FAT image labelled " + firstboot.DriveLabel + " holding " + firstboot.DriveFile + ", to attach to a\n" +
			"worker as a second disk. The node config is parsed (not validated against a clock) first.",
		Args: exactArgs(1, "one node config"),
		RunE: func(_ *cobra.Command, args []string) error {
			if out == "" {
				return usagef("want -o DRIVE.img")
			}
			b, err := readNodeConfig(args[0])
			if err != nil {
				return err
			}
			return configdrive.Write(out, b)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "drive image `FILE` (required)")
	return cmd
}

// readNodeConfig reads a node config with the first-boot program's bound
// and parses it (without validating it against a clock or an image).
func readNodeConfig(p string) ([]byte, error) {
	b, err := nodeconfig.ReadFile(p)
	if err != nil {
		return nil, failure.Errorf(failure.Invalid, "%s: %w", p, nodeconfig.ReadProblem(err))
	}
	if _, err := nodeconfig.Parse(b); err != nil {
		return nil, failure.Errorf(failure.Invalid, "%s: %w", p, err)
	}
	return b, nil
}

// writeFileAtomic writes data to a temporary file next to path and renames it.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
