package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/nodebake/nodebake/layers/configdrive"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/layers/worker"
)

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

const nodeUsage = `Usage: nodebake node config [flags]          assemble and validate a node config (YAML on stdout or -o)
       nodebake node check [--spec SPEC] NODE.yaml  validate a node config against an image's spec
       nodebake node drive -o DRIVE.img NODE.yaml  write a config drive (FAT, label NODEBAKE) holding node.yaml`

func runNode(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(e.stdout, nodeUsage)
		if len(args) == 0 {
			return usagef("missing subcommand")
		}
		return nil
	}
	switch args[0] {
	case "config":
		return runNodeConfig(e, args[1:])
	case "check":
		return runNodeCheck(e, args[1:])
	case "drive":
		return runNodeDrive(e, args[1:])
	}
	return usagef("unknown subcommand %q (want config, check or drive)", args[0])
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

func runNodeConfig(e *env, args []string) error {
	fs := newFlags(e, "node config", "",
		"Assemble a node config from the certificate authority's output (the seed's file names:\n"+
			"ca-k8s-apiserver.pem, cert-NODE.pem, cert-NODE-key.pem, cert-kube-proxy.pem,\n"+
			"cert-kube-proxy-key.pem) and the node's WireGuard settings; validate it as the\n"+
			"first-boot step will, and write it as YAML.")
	var o nodeconfig.AssembleOptions
	var peers stringList
	fs.StringVar(&o.NodeName, "node", "", "node `NAME` (required)")
	fs.StringVar(&o.CertDir, "certs", "", "`DIR` holding the CA's output under the seed's names")
	fs.StringVar(&o.CACertFile, "ca", "", "CA certificate `FILE` (default DIR/ca-k8s-apiserver.pem)")
	fs.StringVar(&o.NodeCertFile, "cert", "", "node certificate `FILE` (default DIR/cert-NODE.pem)")
	fs.StringVar(&o.NodeKeyFile, "key", "", "node key `FILE` (default DIR/cert-NODE-key.pem)")
	fs.StringVar(&o.KubeProxyCertFile, "kube-proxy-cert", "", "kube-proxy client certificate `FILE`")
	fs.StringVar(&o.KubeProxyKeyFile, "kube-proxy-key", "", "kube-proxy client key `FILE`")
	fs.StringVar(&o.KubeProxyKubeconfigFile, "kube-proxy-kubeconfig", "", "kube-proxy kubeconfig `FILE` (instead of cert and key)")
	fs.StringVar(&o.APIServer, "apiserver", "", "API server `URL` (https://HOST:6443)")
	fs.StringVar(&o.PodCIDR, "pod-cidr", "", "the node's pod `CIDR` (needed with the bridge pod network)")
	fs.StringVar(&o.WireGuardAddress, "wg-address", "", "wg0 address `CIDR` (e.g. 10.8.0.203/24)")
	fs.StringVar(&o.WireGuardKeyFile, "wg-key", "", "WireGuard private key `FILE` (as wg genkey writes it)")
	fs.IntVar(&o.ListenPort, "wg-port", nodeconfig.DefaultListenPort, "WireGuard listen `PORT`")
	fs.Var(&peers, "peer", "a WireGuard `PEER`: publicKey=KEY,endpoint=HOST:PORT,allowedIPs=CIDR,CIDR,persistentKeepalive=25 (repeatable)")
	specPath := fs.String("spec", "", "check against this image `SPEC` (service and pod CIDRs); default: the defaults")
	out := fs.String("o", "", "write to `FILE` instead of stdout")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	o.Peers = peers
	cfg, err := nodeconfig.Assemble(o)
	if err != nil {
		return failure.New(failure.Invalid, err)
	}
	facts, err := factsFor(*specPath)
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
	if *out == "" {
		_, err = e.stdout.Write(b)
		return err
	}
	return writeFileAtomic(*out, b, 0o600)
}

func runNodeCheck(e *env, args []string) error {
	fs := newFlags(e, "node check", "NODE.yaml", "Validate a node config as the first-boot step will (now, against the spec's CIDRs).")
	specPath := fs.String("spec", "", "the image `SPEC` (default: the defaults)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("want exactly one node config")
	}
	facts, err := factsFor(*specPath)
	if err != nil {
		return err
	}
	// The same bounded read and checks as the first-boot program's.
	b, err := nodeconfig.ReadFile(fs.Arg(0))
	if err != nil {
		return failure.Errorf(failure.Invalid, "%s: %w", fs.Arg(0), nodeconfig.ReadProblem(err))
	}
	cfg, err := nodeconfig.Load(b, facts, time.Now())
	if err != nil {
		return failure.Errorf(failure.Invalid, "%s: %w", fs.Arg(0), err)
	}
	fmt.Fprintf(e.stdout, "%s: valid node config for %s\n", fs.Arg(0), cfg.NodeName)
	return nil
}

func runNodeDrive(e *env, args []string) error {
	fs := newFlags(e, "node drive", "NODE.yaml",
		"Write a config drive: a FAT image labelled NODEBAKE holding node.yaml, to attach to a\n"+
			"worker as a second disk. The node config is parsed (not validated against a clock) first.")
	out := fs.String("o", "", "drive image `FILE` (required)")
	if err := parse(e, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *out == "" {
		return usagef("want -o FILE and one node config")
	}
	b, err := nodeconfig.ReadFile(fs.Arg(0))
	if err != nil {
		return failure.Errorf(failure.Invalid, "%s: %w", fs.Arg(0), nodeconfig.ReadProblem(err))
	}
	if _, err := nodeconfig.Parse(b); err != nil {
		return failure.Errorf(failure.Invalid, "%s: %w", fs.Arg(0), err)
	}
	return configdrive.Write(*out, b)
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
