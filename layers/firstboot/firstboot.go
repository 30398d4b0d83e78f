// Package firstboot is the first-boot program's library: it finds the
// node's config (kernel command line, systemd credential, config drive, or
// the platform the node runs on: see package platform), validates it against the image's facts, and writes wg0 for
// systemd-networkd, the certificates, kubeconfigs and per-node kubelet and
// kube-proxy configs, all or nothing. Standard library only, so that the
// program is a small static binary.
package firstboot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/firstboot/platform"
)

// Paths in the image, read or written by Run (under Options.Root).
const (
	// FactsPath is the image facts the image build bakes (JSON
	// nodeconfig.ImageFacts).
	FactsPath = "/usr/lib/nodebake/firstboot.json"
	// ProgramPath is where the image build installs the program.
	ProgramPath = "/usr/lib/nodebake/nodebake-firstboot"

	StatusPath              = "/run/nodebake/status.json"
	ReadyPath               = "/run/nodebake/node-ready"
	KubeletEnvPath          = "/run/nodebake/kubelet.env"
	NetdevPath              = "/run/systemd/network/50-nodebake-wg0.netdev"
	NetworkPath             = "/run/systemd/network/50-nodebake-wg0.network"
	CertDir                 = "/var/lib/kubernetes"
	CACertPath              = CertDir + "/" + nodeconfig.CACertFileName
	KubeletKubeconfigPath   = "/var/lib/kubelet/kubeconfig"
	KubeletConfigPath       = "/var/lib/kubelet/kubelet-config.yaml"
	KubeProxyKubeconfigPath = "/var/lib/kube-proxy/kubeconfig"
	KubeProxyConfigPath     = "/var/lib/kube-proxy/kubeproxy-config.yaml"
	CNIConfigPath           = "/var/lib/cni/net.d/10-nodebake-bridge.conflist"
	// CommitJournalPath lists the files of a commit in progress (see
	// write.go); it is on /var so that it survives a crash.
	CommitJournalPath = "/var/lib/nodebake/commit.json"

	// CmdlineParam names the node config's path on the kernel command line.
	CmdlineParam = "nodebake.config"
	// CredentialName is the systemd credential holding the node config.
	CredentialName = "nodebake.node"
	// SystemCredentialsDir is where systemd puts system credentials.
	SystemCredentialsDir = "/run/credentials/@system"
	// DriveLabel is the filesystem label of a config drive, which holds
	// DriveFile at its root.
	DriveLabel = "NODEBAKE"
	DriveFile  = "node.yaml"

	// NetworkGroup may read the wg0 .netdev (it holds the private key).
	NetworkGroup = "systemd-network"

	// WireGuardInterface is the interface first boot configures, and whose
	// address kubelet and kube-proxy bind to.
	WireGuardInterface = "wg0"
	// KubeProxyHealthzPort is the port of kube-proxy's healthzBindAddress.
	KubeProxyHealthzPort = "10256"
)

// NodeCertPath and NodeKeyPath are the kubelet's certificate and key.
func NodeCertPath(node string) string { return CertDir + "/" + nodeconfig.NodeCertFileName(node) }

// NodeKeyPath is the kubelet's private key.
func NodeKeyPath(node string) string { return CertDir + "/" + nodeconfig.NodeKeyFileName(node) }

// Options configures Run.
type Options struct {
	// Root prefixes every path read and written; "" means "/".
	Root string
	// Now is the time certificates are checked at.
	Now time.Time
	// Elapsed, if set, gives the run time recorded in the status file.
	Elapsed func() time.Duration
	// CredentialsDir is $CREDENTIALS_DIRECTORY; SystemCredentialsDir is
	// searched too.
	CredentialsDir string
	// DriveWait is how long to keep looking for a config drive when no
	// other source is found (devices may still be appearing).
	DriveWait time.Duration
	// SetHostname, if set, sets the hostname to the node name.
	SetHostname func(name string) error
	// Systemctl, if set, runs systemctl with args: first boot asks
	// systemd to reload its units after writing their drop-ins.
	Systemctl func(ctx context.Context, args ...string) error
	// Chown makes written files owned by root (and the .netdev's group
	// NetworkGroup from /etc/group); it needs privileges.
	Chown bool
	// Clock, if set, is the system clock first boot waits for when the
	// node config's only problems are certificates not valid at Now (see
	// clock.go); nil never waits.
	Clock Clock
	// OnClockWait, if set, is called when first boot starts waiting for
	// the clock.
	OnClockWait func(ClockWait)
	// Platform configures the platform sources (their endpoints and time
	// limits; package platform's defaults when zero). Root, Log, Cmdline
	// and Devices are filled in by Run.
	Platform platform.Options
	// OnPlatformWait, if set, is called before first boot asks the
	// platform's service (or sends it the report), with the longest that
	// may take.
	OnPlatformWait func(limit time.Duration, what string)
	// Log receives progress lines: the platform found, retries, the
	// platform's report. They name sources, statuses and sizes, never the
	// content of a node config. May be nil.
	Log io.Writer

	// fileOps, if set, replaces the calls that change files (tests inject
	// failures with it).
	fileOps *fileOps
}

// Status is what Run reports, also written as JSON to StatusPath.
type Status struct {
	OK bool `json:"ok"`
	// Source is where the node config came from, e.g.
	// "config-drive /dev/vdb" or "ec2-imds user-data"; on failure, the
	// platform source that failed.
	Source   string `json:"source,omitempty"`
	NodeName string `json:"nodeName,omitempty"`
	// Platform is the platform detected ("ec2", ..., "none") and
	// PlatformReason what decided it; both are empty when a local source
	// (command line, credential, NODEBAKE drive) was found first and no
	// detection ran. DetectMicros is the time detection took.
	Platform       string `json:"platform,omitempty"`
	PlatformReason string `json:"platformReason,omitempty"`
	DetectMicros   int64  `json:"detectMicros,omitempty"`
	// Report is how the platform was told the outcome, on platforms that
	// want to know (Azure's ready report): "Ready", "NotReady", or why it
	// could not be sent.
	Report string `json:"report,omitempty"`
	// Error and Field are the first problem; Problems lists them all.
	Error          string               `json:"error,omitempty"`
	Field          string               `json:"field,omitempty"`
	Problems       []nodeconfig.Problem `json:"problems,omitempty"`
	Files          []string             `json:"files,omitempty"`
	DurationMicros int64                `json:"durationMicros"`
	// Clock says how first boot dealt with certificates not valid at the
	// system time; absent when they were valid.
	Clock *ClockStatus `json:"clock,omitempty"`
}

// Run does the first boot's work. node-ready is removed before anything
// else is touched, and written last, only when everything else succeeded.
// On failure the files of the previous config are left as they were (or
// none, at the first boot), only the status file says what went wrong, and
// the error is nodeconfig.Problems, whose first entry is the line to show.
// Every path in a message is as the image sees it (without Root). On a
// platform that wants to know (Azure), the outcome is reported last, and
// recorded in the status (Status.Report).
func Run(ctx context.Context, opts Options) (Status, error) {
	if opts.Root == "" {
		opts.Root = "/"
	}
	w := newWriter(opts)
	var st Status
	var det platform.Detection
	err := run(ctx, opts, w, &st, &det)
	if err != nil {
		st.Problems = asProblems(err)
		st.Error, st.Field = st.Problems[0].Message, st.Problems[0].Field
		st.Files = nil
		err = nodeconfig.Problems(st.Problems)
	} else {
		st.OK = true
	}
	if opts.Elapsed != nil {
		st.DurationMicros = opts.Elapsed().Microseconds()
	}
	if werr := w.writeStatus(st); werr != nil {
		p := nodeconfig.Problem{Field: "status", Message: werr.Error()}
		if err == nil { // and so no node-ready
			st.OK, st.Error, st.Field, st.Problems = false, p.Message, p.Field, []nodeconfig.Problem{p}
			report(ctx, opts, w, &st, det, nodeconfig.Problems{p})
			return st, nodeconfig.Problems{p}
		}
		err = append(err.(nodeconfig.Problems), p)
		report(ctx, opts, w, &st, det, err)
		return st, err
	}
	if err != nil {
		report(ctx, opts, w, &st, det, err)
		return st, err
	}
	if rerr := w.writeReady(); rerr != nil {
		p := nodeconfig.Problem{Field: "status", Message: rerr.Error()}
		st.OK, st.Error, st.Field, st.Problems = false, p.Message, p.Field, []nodeconfig.Problem{p}
		_ = w.writeStatus(st) // the error above is the one to show
		report(ctx, opts, w, &st, det, nodeconfig.Problems{p})
		return st, nodeconfig.Problems{p}
	}
	report(ctx, opts, w, &st, det, nil)
	return st, nil
}

// report tells the platform how the run ended (failure nil: Ready), where
// the platform wants to know, after node-ready is written so that the
// kubelet need not wait for it, and records the outcome in the status.
// The outcome of the run stays what it was: a report that cannot be sent
// is logged and noted in the status.
func report(ctx context.Context, opts Options, w *writer, st *Status, det platform.Detection, failure error) {
	if !det.Reports() {
		return
	}
	if failure != nil {
		// The first problem is the line the console shows; it holds no
		// node config content.
		failure = errors.New(asProblems(failure)[0].String())
	}
	state := "Ready"
	if failure != nil {
		state = "NotReady"
	}
	if opts.OnPlatformWait != nil {
		opts.OnPlatformWait(det.Timeout, "reporting "+state+" to "+string(det.Platform))
	}
	if err := det.Report(ctx, failure); err != nil {
		st.Report = fmt.Sprintf("%s not sent: %v", state, err)
	} else {
		st.Report = state
	}
	logf(opts, "platform %s: report %s", det.Platform, st.Report)
	if err := w.writeStatus(*st); err != nil {
		logf(opts, "recording the report in %s: %v", StatusPath, err)
	}
}

// fail wraps err as a problem with field.
func fail(field string, err error) error {
	return nodeconfig.Problems{{Field: field, Message: err.Error()}}
}

func asProblems(err error) []nodeconfig.Problem {
	var probs nodeconfig.Problems
	if errors.As(err, &probs) && len(probs) > 0 {
		return probs
	}
	return []nodeconfig.Problem{{Field: "firstboot", Message: err.Error()}}
}

func run(ctx context.Context, opts Options, w *writer, st *Status, det *platform.Detection) error {
	if err := w.ops.remove(w.real(ReadyPath)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fail("status", errorAt("removing", ReadyPath, err))
	}
	if err := os.MkdirAll(w.real(filepath.Dir(StatusPath)), 0o755); err != nil {
		return fail("status", errorAt("creating", filepath.Dir(StatusPath), err))
	}
	if err := w.recover(); err != nil {
		return fail("write", err)
	}
	facts, err := loadFacts(opts.Root)
	if err != nil {
		return fail("facts", err)
	}
	data, source, err := findConfig(ctx, opts, st, det)
	if err != nil {
		return nodeconfig.ReadProblem(err)
	}
	st.Source = source
	cfg, err := nodeconfig.Load(data, facts, opts.Now)
	if err != nil {
		if cfg, err = waitForClock(ctx, opts, st, data, facts, err); err != nil {
			return err
		}
	}
	st.NodeName = cfg.NodeName
	kubeletTmpl, err := readImageFile(opts.Root, facts.KubeletConfigTemplate)
	if err != nil {
		return fail("facts", fmt.Errorf("reading the kubelet config template: %w", err))
	}
	proxyTmpl, err := readImageFile(opts.Root, facts.KubeProxyConfigTemplate)
	if err != nil {
		return fail("facts", fmt.Errorf("reading the kube-proxy config template: %w", err))
	}
	files, err := Render(cfg, facts, kubeletTmpl, proxyTmpl)
	if err != nil {
		return fail("facts", err)
	}
	var remove []string
	if facts.PodNetwork != nodeconfig.PodNetworkBridge {
		remove = append(remove, CNIConfigPath)
	}
	c, err := w.begin(files, remove)
	if err != nil {
		return fail("write", err)
	}
	if err := c.apply(); err != nil {
		return fail("write", err)
	}
	if opts.SetHostname != nil {
		if err := opts.SetHostname(cfg.NodeName); err != nil {
			return fail("nodeName", errors.Join(fmt.Errorf("setting the hostname: %w", err), c.rollback()))
		}
	}
	if err := reloadUnits(ctx, opts, c); err != nil {
		return fail("systemd", errors.Join(err, c.rollback()))
	}
	if err := c.finish(); err != nil {
		return fail("write", err)
	}
	for _, f := range files {
		st.Files = append(st.Files, f.Path)
	}
	return nil
}

// readImageFile reads a file the image holds (facts, templates): a regular
// file within the node config's size limit.
func readImageFile(root, p string) ([]byte, error) {
	b, err := nodeconfig.ReadRegularFile(filepath.Join(root, p), nodeconfig.MaxSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return b, nil
}

func loadFacts(root string) (nodeconfig.ImageFacts, error) {
	b, err := readImageFile(root, FactsPath)
	if err != nil {
		return nodeconfig.ImageFacts{}, fmt.Errorf("reading the image facts: %w", err)
	}
	f, err := nodeconfig.ParseImageFacts(b)
	if err != nil {
		return nodeconfig.ImageFacts{}, fmt.Errorf("%s: %w", FactsPath, err)
	}
	return f, nil
}
