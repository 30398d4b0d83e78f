package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/gosource"
	"github.com/nodebake/nodebake/layers/resolve"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/test/harness"
)

// Cluster-wide settings of the test cluster.
const (
	// etcdVersion is the etcd of the pinned set.
	etcdVersion = "v3.6.6"
	// apiServerGuestIP is where guests reach the API server, through
	// QEMU's guestfwd or a lab's forward, at the port it listens on on
	// the host's loopback (controlPlane.port).
	apiServerGuestIP = "10.0.2.100"
	// serviceCIDR is the image's default service network; kubernetesSvcIP
	// its first address, the kubernetes service.
	serviceCIDR     = "10.32.0.0/16"
	kubernetesSvcIP = "10.32.0.1"
)

// binaries are the control plane's programs and kubectl.
type binaries struct {
	etcd, apiServer, controllerManager, scheduler, kubectl string
}

// controlPlaneBinaries builds (or takes from the nodebake cache) the
// control plane of the spec's Kubernetes version and the pinned etcd.
func controlPlaneBinaries(t *testing.T, s *spec.Spec) binaries {
	t.Helper()
	ctx := t.Context()
	from := resolve.New(s, harness.Cache(t), resolve.WithGo(gosource.Builder{Log: harness.LogWriter(t, "")})).BuildFromSource
	get := func(component, version, binary string) string {
		dir, err := from(ctx, component, version)
		if err != nil {
			t.Fatalf("building %s %s from source: %v", component, version, err)
		}
		return filepath.Join(dir, binary)
	}
	v := s.Kubernetes.Version
	b := binaries{
		etcd:              get("etcd", etcdVersion, "etcd"),
		apiServer:         get("kube-apiserver", v, "kube-apiserver"),
		controllerManager: get("kube-controller-manager", v, "kube-controller-manager"),
		scheduler:         get("kube-scheduler", v, "kube-scheduler"),
		kubectl:           get("kubectl", s.Components["kubectl"].Version, "kubectl"),
	}
	for _, p := range []string{b.etcd, b.apiServer, b.controllerManager, b.scheduler, b.kubectl} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("control plane binary: %v", err)
		}
	}
	return b
}

// controlPlane is etcd, the API server, the controller manager and the
// scheduler running on the host's loopback.
type controlPlane struct {
	dir    string // certificates, kubeconfigs, etcd data
	logDir string
	ca     *ca
	bins   binaries
	admin  string       // admin kubeconfig
	api    *http.Client // the API server's client as admin
	mu     sync.Mutex
	procs  []*proc
	// launch runs each process's start on one OS thread that lives until
	// stop (launcher).
	launch  chan func()
	workers map[string]pair // node certificates by node name
	proxy   pair            // kube-proxy's certificate
	// port is the API server's port: on the host's loopback, and at
	// apiServerGuestIP for the guests (the kubernetes service's endpoint
	// is the same address and port).
	port int
}

// hostAddr is where the API server listens on the host.
func (cp *controlPlane) hostAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(cp.port))
}

// guestURL is the API server's URL as guests reach it.
func (cp *controlPlane) guestURL() string {
	return "https://" + net.JoinHostPort(apiServerGuestIP, strconv.Itoa(cp.port))
}

// guestForward is the QEMU user network option that forwards
// apiServerGuestIP at the API server's port to the host's loopback.
func (cp *controlPlane) guestForward(t *testing.T) string {
	return harness.GuestForward(t, apiServerGuestIP, cp.port, cp.hostAddr())
}

// proc is a control plane process.
type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startControlPlane makes the cluster's PKI and starts the control plane,
// its API server on port (a free one: another cluster test may run on
// the same host). Processes are killed when the test ends; their logs
// stay in logDir.
func startControlPlane(t *testing.T, bins binaries, logDir string, port int, nodeNames []string) *controlPlane {
	t.Helper()
	cp := &controlPlane{dir: t.TempDir(), logDir: logDir, bins: bins, workers: map[string]pair{}, port: port}
	if l, err := net.Listen("tcp", cp.hostAddr()); err != nil {
		t.Fatalf("the API server needs %s, which is taken: %v", cp.hostAddr(), err)
	} else {
		l.Close()
	}
	cp.launcher()
	t.Cleanup(cp.stop)
	var err error
	if cp.ca, err = newCA("nodebake-e2e-ca"); err != nil {
		t.Fatal(err)
	}
	must := func(p pair, err error) pair {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := func(name, content string) string {
		t.Helper()
		p := filepath.Join(cp.dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile := file("ca.pem", cp.ca.certPEM)
	apiCert, apiKey, err := must(cp.ca.issue(certRequest{
		commonName: "kube-apiserver",
		ips:        []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(apiServerGuestIP), net.ParseIP(kubernetesSvcIP)},
		dnsNames:   []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
	})).write(cp.dir, "apiserver")
	if err != nil {
		t.Fatal(err)
	}
	saPriv, saPub, err := serviceAccountKey()
	if err != nil {
		t.Fatal(err)
	}
	saKey, saPubFile := file("sa-key.pem", saPriv), file("sa.pem", saPub)
	server := "https://" + cp.hostAddr()
	cp.admin = file("admin.kubeconfig", kubeconfig(server, cp.ca, "admin", must(cp.ca.issue(certRequest{commonName: "admin", organization: []string{"system:masters"}}))))
	cmKC := file("controller-manager.kubeconfig", kubeconfig(server, cp.ca, "system:kube-controller-manager",
		must(cp.ca.issue(certRequest{commonName: "system:kube-controller-manager"}))))
	schedKC := file("scheduler.kubeconfig", kubeconfig(server, cp.ca, "system:kube-scheduler",
		must(cp.ca.issue(certRequest{commonName: "system:kube-scheduler"}))))
	cp.proxy = must(cp.ca.issue(certRequest{commonName: "system:kube-proxy", organization: []string{"system:node-proxier"}}))
	for _, n := range nodeNames {
		cp.workers[n] = must(cp.ca.issue(certRequest{commonName: "system:node:" + n, organization: []string{"system:nodes"}, dnsNames: []string{n}}))
	}

	etcdClient, etcdPeer := freePort(t), freePort(t)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	cp.start(t, "etcd", bins.etcd,
		"--name=e2e", "--data-dir="+filepath.Join(cp.dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=e2e="+peerURL, "--initial-cluster-state=new",
		// A test cluster on a loaded machine: durability is not the point.
		"--unsafe-no-fsync")
	cp.waitHTTP(t, "etcd", etcdURL+"/health", nil, 2*time.Minute)

	cp.start(t, "kube-apiserver", bins.apiServer,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(port),
		"--advertise-address="+apiServerGuestIP,
		"--service-cluster-ip-range="+serviceCIDR,
		"--authorization-mode=Node,RBAC",
		"--anonymous-auth=false",
		"--client-ca-file="+caFile,
		"--tls-cert-file="+apiCert, "--tls-private-key-file="+apiKey,
		"--service-account-key-file="+saPubFile,
		"--service-account-signing-key-file="+saKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--allow-privileged=true",
		"--profiling=false")
	cp.api = cp.adminClient(t)
	cp.waitHTTP(t, "kube-apiserver", "https://"+cp.hostAddr()+"/readyz", cp.api, 5*time.Minute)

	cmPort, schedPort := freePort(t), freePort(t)
	cp.start(t, "kube-controller-manager", bins.controllerManager,
		"--kubeconfig="+cmKC,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(cmPort),
		"--leader-elect=false",
		"--root-ca-file="+caFile,
		"--service-account-private-key-file="+saKey,
		"--use-service-account-credentials=true",
		"--service-cluster-ip-range="+serviceCIDR,
		"--allocate-node-cidrs=false",
		"--profiling=false")
	cp.start(t, "kube-scheduler", bins.scheduler,
		"--kubeconfig="+schedKC,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(schedPort),
		"--leader-elect=false",
		"--profiling=false")
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	cp.waitHTTP(t, "kube-controller-manager", "https://127.0.0.1:"+strconv.Itoa(cmPort)+"/healthz", insecure, 3*time.Minute)
	cp.waitHTTP(t, "kube-scheduler", "https://127.0.0.1:"+strconv.Itoa(schedPort)+"/healthz", insecure, 3*time.Minute)
	return cp
}

// start starts a control plane process with its output in logDir/NAME.log.
func (cp *controlPlane) start(t *testing.T, name, bin string, args ...string) {
	t.Helper()
	log := filepath.Join(cp.logDir, name+".log")
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = cp.dir
	// Its own process group, so that a ^C to the test does not reach it
	// before the cleanup does.
	// Killed with the test binary if that dies before its cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	errc := make(chan error, 1)
	cp.launch <- func() { errc <- cmd.Start() }
	if err := <-errc; err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &proc{name: name, log: log, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	cp.mu.Lock()
	cp.procs = append(cp.procs, p)
	cp.mu.Unlock()
}

// launcher starts the goroutine that starts the processes, locked to its
// OS thread until stop. A process's parent-death signal (Pdeathsig) comes
// when the thread that started it ends, and a network lab (test/netlab)
// ends every thread it entered the lab's namespace on: started from any
// other thread, a process could be killed by a lab made after it.
func (cp *controlPlane) launcher() {
	cp.launch = make(chan func())
	go func() {
		// Never unlocked: the thread ends with the goroutine, once stop
		// has ended the processes.
		runtime.LockOSThread()
		for f := range cp.launch {
			f()
		}
	}()
}

// stop kills the processes, newest first.
func (cp *controlPlane) stop() {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	defer close(cp.launch)
	for i := len(cp.procs) - 1; i >= 0; i-- {
		p := cp.procs[i]
		if !p.exited() {
			p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				p.cmd.Process.Kill()
				<-p.done
			}
		}
	}
	cp.procs = nil
}

// check fails when a control plane process has ended.
func (cp *controlPlane) check() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for _, p := range cp.procs {
		if p.exited() {
			return fmt.Errorf("%s exited (%v):\n%s", p.name, p.err, tailFile(p.log, 30))
		}
	}
	return nil
}

// adminClient is an HTTPS client of the API server as admin.
func (cp *controlPlane) adminClient(t *testing.T) *http.Client {
	t.Helper()
	p, err := cp.ca.issue(certRequest{commonName: "e2e-probe", organization: []string{"system:masters"}})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := p.write(cp.dir, "admin-client")
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cp.ca.cert)
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: roots, Certificates: []tls.Certificate{cert},
	}}}
}

// waitHTTP waits until url answers 200.
func (cp *controlPlane) waitHTTP(t *testing.T, name, url string, c *http.Client, timeout time.Duration) {
	t.Helper()
	if c == nil {
		c = &http.Client{Timeout: 5 * time.Second}
	}
	start := time.Now()
	var last error
	for time.Since(start) < timeout {
		if err := cp.check(); err != nil {
			t.Fatalf("waiting for %s: %v", name, err)
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Logf("%s ready in %s", name, time.Since(start).Round(100*time.Millisecond))
				return
			}
			err = errors.New(resp.Status)
		}
		last = err
		select {
		case <-t.Context().Done():
			t.Fatalf("waiting for %s: %v", name, t.Context().Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	t.Fatalf("%s not ready at %s within %s (last: %v); its log:\n%s", name, url, timeout, last, tailFile(filepath.Join(cp.logDir, name+".log"), 40))
}

// kubectl runs kubectl as admin and returns its standard output.
func (cp *controlPlane) kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cp.bins.kubectl, append([]string{"--kubeconfig=" + cp.admin, "--request-timeout=60s"}, args...)...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
