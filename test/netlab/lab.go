// Package netlab gives QEMU guests of a test a network of their own: a
// network namespace the test creates and removes, a bridge in it that
// holds the guests' gateway and the cloud platforms' service addresses
// (169.254.169.254, 168.63.129.16, and any other a test asks for), a tap
// device per guest, a DHCP server, optionally an NTP server, and test
// servers that run inside the namespace at those real addresses.
//
// Nothing in the namespace has a route out of it and it does not forward:
// a guest reaches the lab and nothing else. QEMU itself runs inside the
// namespace (qemu.Config.NetNS, set by Attach), so the guest's only
// network is the lab.
//
//	lab := netlab.New(t, netlab.WithNTP())
//	lab.ServeHTTP(t, netlab.MetadataAddr+":80", imds)
//	cfg := qemu.Config{Disk: image, UUID: uuid}
//	mac := lab.Attach(t, &cfg)
//	vm, err := qemu.Start(ctx, cfg)
//	...
//	lease, err := lab.WaitLease(ctx, mac, 5*time.Minute)
//
// Servers are sockets created inside the namespace (Listen, ListenPacket,
// Do) and served from ordinary goroutines; helper programs run under
// `ip netns exec` (Command). Everything is closed, leftover processes in
// the namespace are ended and the namespace is removed in t.Cleanup, also
// when the test fails. Labs whose test process died are removed by the
// next New.
//
// It needs root, iproute2's ip and /dev/net/tun.
package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodebake/nodebake/layers/firstboot/platform"
	"github.com/nodebake/nodebake/test/harness"
	"github.com/nodebake/nodebake/test/netlab/dhcp4"
	"github.com/nodebake/nodebake/test/netlab/ntp"
	"github.com/nodebake/nodebake/test/qemu"
)

// The cloud platforms' service addresses; every lab has both.
const (
	// MetadataAddr is the instance metadata service of EC2, GCE, Azure
	// and OpenStack.
	MetadataAddr = platform.MetadataIPv4
	// WireServerAddr is Azure's wireserver (and DNS resolver).
	WireServerAddr = platform.WireServerIPv4
)

// DefaultSubnet is the guests' subnet unless WithSubnet says otherwise;
// the gateway is its first address.
const DefaultSubnet = "10.77.0.0/24"

// Names inside and for the namespace.
const (
	// nsPrefix starts the name of every lab's namespace, followed by the
	// test process's id and a random suffix.
	nsPrefix = "nodebake-lab-"
	// netnsDir is where ip netns keeps the namespaces' names.
	netnsDir = "/run/netns"
	// bridge holds the lab's addresses; the guests' taps join it.
	bridge = "lab0"
	// bridgeMAC is fixed so the bridge keeps it when taps join.
	bridgeMAC = "02:6e:62:6c:61:62"
)

// options are what New's options set.
type options struct {
	subnet  netip.Prefix
	addrs   []netip.Addr
	dns     []netip.Addr
	ntpSrvs []netip.Addr
	ntp     bool
	routes  []netip.Prefix
	extra   map[dhcp4.Option][]byte
	noDHCP  bool
}

// Option configures a lab.
type Option func(*options)

// WithSubnet sets the guests' IPv4 subnet (default 10.77.0.0/24); the
// gateway is its first address.
func WithSubnet(p netip.Prefix) Option { return func(o *options) { o.subnet = p } }

// WithAddrs adds addresses to the lab's side (as /32), besides the gateway,
// MetadataAddr and WireServerAddr.
func WithAddrs(addrs ...netip.Addr) Option {
	return func(o *options) { o.addrs = append(o.addrs, addrs...) }
}

// WithDNSServers hands out these DNS servers (DHCP option 6). The lab runs
// no DNS server itself; a test may serve one with ListenPacket.
func WithDNSServers(addrs ...netip.Addr) Option {
	return func(o *options) { o.dns = append(o.dns, addrs...) }
}

// WithNTP runs an SNTP server on the gateway (UDP 123) for the whole
// lab, serving the host's time, and hands it out (DHCP option 42). NTP
// returns it.
func WithNTP() Option { return func(o *options) { o.ntp = true } }

// WithNTPServers hands out these NTP servers (DHCP option 42), after the
// gateway when WithNTP is also given. Nothing need answer there: a lab
// whose time source is silent.
func WithNTPServers(addrs ...netip.Addr) Option {
	return func(o *options) { o.ntpSrvs = append(o.ntpSrvs, addrs...) }
}

// WithRoutesOnly gives guests routes to these prefixes through the
// gateway (DHCP option 121) instead of a default route: for a guest whose
// default route is another NIC.
func WithRoutesOnly(prefixes ...netip.Prefix) Option {
	return func(o *options) { o.routes = append(o.routes, prefixes...) }
}

// WithDHCPOption hands out a further DHCP option as it is (Azure's
// wireserver address is option 245, say).
func WithDHCPOption(code dhcp4.Option, value []byte) Option {
	return func(o *options) {
		if o.extra == nil {
			o.extra = map[dhcp4.Option][]byte{}
		}
		o.extra[code] = slices.Clone(value)
	}
}

// WithoutDHCP runs no DHCP server: guests configure themselves (ip= on
// the kernel command line, a .network credential).
func WithoutDHCP() Option { return func(o *options) { o.noDHCP = true } }

// Lab is a test's network namespace with its servers. Use New.
type Lab struct {
	name    string
	nsPath  string
	subnet  netip.Prefix
	gateway netip.Addr
	dhcp    *dhcp4.Server
	ntp     *ntp.Server
	logf    func(format string, args ...any)
	// CreatedIn is how long New took, for the tests' figures.
	CreatedIn time.Duration

	// done ends with the lab: processes started by Command are killed
	// then, even one that had not yet entered the namespace when the
	// namespace's processes were listed.
	done    context.Context
	end     context.CancelFunc
	mu      sync.Mutex
	closed  bool
	closers []io.Closer
	taps    int
	wg      sync.WaitGroup
}

// Require skips the test unless labs can be made here (root, ip,
// /dev/net/tun), or fails it when NODEBAKE_REQUIRE_TOOLS=1.
func Require(t testing.TB) {
	t.Helper()
	harness.RequireTool(t, "ip")
	var missing string
	switch {
	case os.Geteuid() != 0:
		missing = "root (network namespaces and tap devices)"
	case !exists("/dev/net/tun"):
		missing = "/dev/net/tun"
	}
	if missing == "" {
		return
	}
	if os.Getenv(harness.EnvRequireTools) == "1" {
		t.Fatalf("a network lab needs %s (%s=1)", missing, harness.EnvRequireTools)
	}
	t.Skipf("a network lab needs %s", missing)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// New creates a lab for the test, or skips the test when labs cannot be
// made here (see Require). The lab is removed in t.Cleanup.
func New(t testing.TB, opts ...Option) *Lab {
	t.Helper()
	Require(t)
	start := time.Now()
	o := options{subnet: netip.MustParsePrefix(DefaultSubnet)}
	for _, opt := range opts {
		opt(&o)
	}
	if !o.subnet.Addr().Is4() || o.subnet.Bits() < 8 || o.subnet.Bits() > 30 || o.subnet != o.subnet.Masked() {
		t.Fatalf("netlab: subnet %s: want an IPv4 subnet from /8 to /30 without host bits", o.subnet)
	}
	for _, a := range o.addrs {
		if !a.Is4() {
			t.Fatalf("netlab: address %s: want IPv4", a)
		}
	}
	removeStale(t)
	suffix := make([]byte, 4)
	rand.Read(suffix)
	l := &Lab{
		name:    nsPrefix + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(suffix),
		subnet:  o.subnet,
		gateway: o.subnet.Addr().Next(),
		logf:    func(format string, args ...any) { t.Logf("netlab: "+format, args...) },
	}
	l.done, l.end = context.WithCancel(context.Background())
	l.nsPath = filepath.Join(netnsDir, l.name)
	if out, err := exec.Command("ip", "netns", "add", l.name).CombinedOutput(); err != nil {
		t.Fatalf("netlab: creating network namespace %s: %v: %s", l.name, err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if err := l.close(); err != nil {
			t.Errorf("netlab: removing the lab: %v", err)
		}
	})
	if err := l.setup(o); err != nil {
		t.Fatalf("netlab: setting up %s: %v", l.name, err)
	}
	l.CreatedIn = time.Since(start)
	return l
}

// setup configures the namespace and starts the lab's own servers.
func (l *Lab) setup(o options) error {
	var b strings.Builder
	fmt.Fprintf(&b, "link set lo up\n")
	fmt.Fprintf(&b, "link add %s address %s type bridge\n", bridge, bridgeMAC)
	fmt.Fprintf(&b, "addr add %s/%d dev %s\n", l.gateway, l.subnet.Bits(), bridge)
	addrs := append([]netip.Addr{netip.MustParseAddr(MetadataAddr), netip.MustParseAddr(WireServerAddr)}, o.addrs...)
	for _, a := range addrs {
		if a == l.gateway {
			continue
		}
		fmt.Fprintf(&b, "addr add %s/32 dev %s\n", a, bridge)
	}
	fmt.Fprintf(&b, "link set %s up\n", bridge)
	if err := l.ip(b.String(), "-batch", "-"); err != nil {
		return err
	}
	// A new namespace does not forward; say so, so that nothing a guest
	// sends to an address outside the lab goes anywhere.
	if err := l.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("0\n"), 0o644)
	}); err != nil {
		return fmt.Errorf("turning forwarding off: %w", err)
	}
	ntpServers := slices.Clone(o.ntpSrvs)
	if o.ntp {
		srv, err := l.serveNTP(l.gateway)
		if err != nil {
			return err
		}
		l.ntp = srv
		ntpServers = append([]netip.Addr{l.gateway}, ntpServers...)
	}
	if o.noDHCP {
		return nil
	}
	cfg := dhcp4.Config{
		ServerAddr: l.gateway,
		Subnet:     l.subnet,
		DNS:        o.dns,
		NTP:        ntpServers,
		Options:    o.extra,
		Log:        l.logf,
	}
	if len(o.routes) == 0 {
		cfg.Router = l.gateway
	}
	for _, p := range o.routes {
		cfg.Routes = append(cfg.Routes, dhcp4.Route{Dest: p, Gateway: l.gateway})
	}
	srv, err := dhcp4.NewServer(cfg)
	if err != nil {
		return err
	}
	var conn net.PacketConn
	err = l.Do(func() error {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				if serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, bridge); serr != nil {
					return
				}
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
			})
			return errors.Join(err, serr)
		}}
		var err error
		conn, err = lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", dhcp4.ServerPort))
		return err
	})
	if err != nil {
		return fmt.Errorf("listening for DHCP on %s: %w", bridge, err)
	}
	l.dhcp = srv
	l.serve(conn, func() error { return srv.Serve(conn) })
	return nil
}

// ip runs ip -n NAME with args, stdin as its input.
func (l *Lab) ip(stdin string, args ...string) error {
	cmd := exec.Command("ip", append([]string{"-n", l.name}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// serve runs fn in the background until the lab closes c.
func (l *Lab) serve(c io.Closer, fn func() error) {
	l.track(c)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		if err := fn(); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
			l.logf("server stopped: %v", err)
		}
	}()
}

// track closes c when the lab is removed, or at once when it is gone.
func (l *Lab) track(c io.Closer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return
	}
	l.closers = append(l.closers, c)
}

// Name returns the network namespace's name (for ip netns exec).
func (l *Lab) Name() string { return l.name }

// Gateway returns the guests' gateway: the lab's first address.
func (l *Lab) Gateway() netip.Addr { return l.gateway }

// Subnet returns the guests' subnet.
func (l *Lab) Subnet() netip.Prefix { return l.subnet }

// NTP returns the lab's NTP server (WithNTP), or nil.
func (l *Lab) NTP() *ntp.Server { return l.ntp }

// Do runs fn on an OS thread inside the lab's namespace: sockets fn
// creates belong to the lab, and may then be used from any goroutine. fn
// must not start goroutines that create sockets: those run outside.
func (l *Lab) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: when this goroutine returns, the
		// runtime ends it instead of reusing a thread in another namespace.
		runtime.LockOSThread()
		f, err := os.Open(l.nsPath)
		if err != nil {
			errc <- fmt.Errorf("opening network namespace %s: %w", l.name, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering network namespace %s: %w", l.name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Listen listens on a stream address inside the lab ("tcp",
// "169.254.169.254:80"). The lab closes the listener when it is removed.
func (l *Lab) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := l.Do(func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listening on %s %s in the lab: %w", network, address, err)
	}
	l.track(ln)
	return ln, nil
}

// ListenPacket listens on a datagram address inside the lab ("udp",
// "10.77.0.1:53"). The lab closes the socket when it is removed.
func (l *Lab) ListenPacket(network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := l.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, address)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listening on %s %s in the lab: %w", network, address, err)
	}
	l.track(pc)
	return pc, nil
}

// Command returns a command that runs the program inside the lab (ip
// netns exec). Any of its processes still in the lab when the lab is
// removed are killed.
func (l *Lab) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	ctx, cancel := context.WithCancel(ctx)
	context.AfterFunc(l.done, cancel)
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.name, name}, args...)...)
}

// ServeHTTP serves h at address inside the lab (MetadataAddr+":80", say)
// until the lab is removed, and returns its URL.
func (l *Lab) ServeHTTP(t testing.TB, address string, h http.Handler) string {
	t.Helper()
	ln, err := l.Listen("tcp", address)
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	l.serve(srv, func() error { return srv.Serve(ln) })
	return "http://" + ln.Addr().String()
}

// ServeNTP runs an SNTP server at addr:123 inside the lab until the lab is
// removed. WithNTP runs one at the gateway already.
func (l *Lab) ServeNTP(t testing.TB, addr netip.Addr) *ntp.Server {
	t.Helper()
	srv, err := l.serveNTP(addr)
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	return srv
}

func (l *Lab) serveNTP(addr netip.Addr) (*ntp.Server, error) {
	pc, err := l.ListenPacket("udp4", netip.AddrPortFrom(addr, ntp.Port).String())
	if err != nil {
		return nil, err
	}
	srv := &ntp.Server{Log: l.logf}
	l.serve(pc, func() error { return srv.Serve(pc) })
	return srv, nil
}

// ForwardTCP listens on address inside the lab and forwards each
// connection to target, dialled from the host (an API server on the
// host's loopback, say), until the lab is removed.
func (l *Lab) ForwardTCP(t testing.TB, address, target string) {
	t.Helper()
	ln, err := l.Listen("tcp", address)
	if err != nil {
		t.Fatalf("netlab: %v", err)
	}
	l.serve(ln, func() error {
		for {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			l.track(c)
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				defer c.Close()
				// This goroutine is not locked to a lab thread: the dial
				// leaves from the host's namespace.
				up, err := net.DialTimeout("tcp", target, 10*time.Second)
				if err != nil {
					l.logf("forwarding %s to %s: %v", c.RemoteAddr(), target, err)
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				go func() { io.Copy(c, up); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
				<-done
				<-done
			}()
		}
	})
}

// Attach adds a tap device for one guest to the lab and points cfg at it:
// QEMU runs in the lab's namespace (cfg.NetNS) with the tap as the
// guest's only NIC (cfg.Tap, replacing the user network). It returns the
// NIC's MAC address: derived from cfg.UUID when set, else from the lab
// and the tap, unless cfg.NICOptions names one already.
func (l *Lab) Attach(t testing.TB, cfg *qemu.Config) net.HardwareAddr {
	t.Helper()
	l.mu.Lock()
	tap := "tap" + strconv.Itoa(l.taps)
	l.taps++
	l.mu.Unlock()
	cmds := fmt.Sprintf("tuntap add dev %s mode tap\nlink set %s master %s\nlink set %s up\n", tap, tap, bridge, tap)
	if err := l.ip(cmds, "-batch", "-"); err != nil {
		t.Fatalf("netlab: adding %s: %v", tap, err)
	}
	var mac string
	for _, o := range cfg.NICOptions {
		if v, ok := strings.CutPrefix(o, "mac="); ok {
			mac = v
		}
	}
	if mac == "" {
		if cfg.UUID != "" {
			mac = qemu.NICMAC(cfg.UUID, 0)
		} else {
			h := sha256.Sum256([]byte(l.name + "/" + tap))
			mac = fmt.Sprintf("52:54:00:%02x:%02x:%02x", h[0], h[1], h[2])
		}
		cfg.NICOptions = append(cfg.NICOptions, "mac="+mac)
	}
	hw, err := net.ParseMAC(mac)
	if err != nil {
		t.Fatalf("netlab: the guest's MAC address %q: %v", mac, err)
	}
	cfg.NetNS, cfg.Tap = l.name, tap
	return hw
}

// OutsideDrops returns how many packets the lab has dropped because they
// were addressed outside it (the kernel's Ip InAddrErrors counter in the
// namespace: a namespace that does not forward drops them silently, with
// no ICMP error). A test that tries an outside address from a guest can
// check that the packets arrived and went nowhere.
func (l *Lab) OutsideDrops() (int64, error) {
	var snmp []byte
	err := l.Do(func() error {
		// thread-self: /proc/self/net is the namespace of the process's
		// main thread, not of this one.
		var err error
		snmp, err = os.ReadFile("/proc/thread-self/net/snmp")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("reading the lab's IP counters: %w", err)
	}
	return snmpCounter(snmp, "Ip", "InAddrErrors")
}

// snmpCounter finds a counter in /proc/net/snmp: a header line "Proto:
// names..." followed by a value line "Proto: values...".
func snmpCounter(snmp []byte, proto, name string) (int64, error) {
	lines := strings.Split(string(snmp), "\n")
	for i := 0; i+1 < len(lines); i++ {
		head, ok := strings.CutPrefix(lines[i], proto+": ")
		vals, ok2 := strings.CutPrefix(lines[i+1], proto+": ")
		if !ok || !ok2 {
			continue
		}
		names, values := strings.Fields(head), strings.Fields(vals)
		if j := slices.Index(names, name); j >= 0 && j < len(values) {
			return strconv.ParseInt(values[j], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s %s counter in /proc/net/snmp", proto, name)
}

// Leases returns the DHCP leases the lab has given (none WithoutDHCP).
func (l *Lab) Leases() []dhcp4.Lease {
	if l.dhcp == nil {
		return nil
	}
	return l.dhcp.Leases()
}

// WaitLease waits at most timeout for the lab's DHCP server to lease an
// address to the NIC with the given MAC address, and returns the lease
// (its Bound time is when the server acknowledged it). It ends early when
// ctx does, with ctx's cause: pass a VM's Watch context to end it when the
// guest crashes.
func (l *Lab) WaitLease(ctx context.Context, mac net.HardwareAddr, timeout time.Duration) (dhcp4.Lease, error) {
	if l.dhcp == nil {
		return dhcp4.Lease{}, errors.New("waiting for a DHCP lease: the lab runs no DHCP server")
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, le := range l.dhcp.Leases() {
			if bytes.Equal(le.HardwareAddr, mac) {
				return le, nil
			}
		}
		select {
		case <-ctx.Done():
			return dhcp4.Lease{}, fmt.Errorf("waiting for a DHCP lease to %s: %w", mac, context.Cause(ctx))
		case <-deadline.C:
			return dhcp4.Lease{}, fmt.Errorf("waiting for a DHCP lease to %s: none within %s", mac, timeout)
		case <-tick.C:
		}
	}
}

// close stops the lab's servers, ends processes left in the namespace
// and removes it.
func (l *Lab) close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.end()
	closers := l.closers
	l.closers = nil
	l.mu.Unlock()
	for _, c := range slices.Backward(closers) {
		c.Close()
	}
	l.wg.Wait()
	return removeNamespace(l.name, l.logf)
}

// removeNamespace kills the processes inside a lab's namespace and
// removes it.
func removeNamespace(name string, logf func(string, ...any)) error {
	var errs []error
	if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			pid, err := strconv.Atoi(f)
			if err != nil || pid <= 1 || pid == os.Getpid() {
				continue
			}
			logf("process %d was still running in %s: killing it", pid, name)
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("killing process %d in %s: %w", pid, name, err))
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		errs = append(errs, fmt.Errorf("ip netns del %s: %w: %s", name, err, bytes.TrimSpace(out)))
	}
	if exists(filepath.Join(netnsDir, name)) {
		errs = append(errs, fmt.Errorf("network namespace %s is still there", name))
	}
	return errors.Join(errs...)
}

// removeStale removes the labs of test processes that no longer run (a
// test binary killed by its timeout runs no cleanups).
func removeStale(t testing.TB) {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), nsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 || exists("/proc/"+pidStr) {
			continue
		}
		t.Logf("netlab: removing %s, left by process %d, which is gone", e.Name(), pid)
		if err := removeNamespace(e.Name(), t.Logf); err != nil {
			t.Logf("netlab: %v", err)
		}
	}
}
