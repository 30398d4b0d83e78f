package netlab

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodebake/nodebake/test/harness"
	"github.com/nodebake/nodebake/test/netlab/dhcp4"
	"github.com/nodebake/nodebake/test/qemu"
)

// hostLinks lists the interfaces of the host's own namespace.
func hostLinks(t *testing.T) []string {
	t.Helper()
	ifs, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	slices.Sort(names)
	return names
}

func netnsList(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	return string(out)
}

// inLab runs a bash command line inside the lab: bash's /dev/tcp is the
// client the guest probes use too.
func inLab(t *testing.T, l *Lab, script string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	out, err := l.Command(ctx, "bash", "-c", script).CombinedOutput()
	return string(out), err
}

// TestLab sets a lab up, checks what is in it and what a client inside
// reaches, and checks that its removal leaves nothing behind: no
// namespace, no interface, no process, no open socket.
func TestLab(t *testing.T) {
	Require(t)
	before := hostLinks(t)
	var (
		name  string
		ln    net.Listener
		sleep *exec.Cmd
	)
	t.Run("in the lab", func(t *testing.T) {
		l := New(t, WithAddrs(netip.MustParseAddr("10.99.0.7")))
		name = l.Name()
		t.Logf("lab %s created in %s", name, l.CreatedIn)
		if !strings.Contains(netnsList(t), name) {
			t.Fatalf("ip netns list lacks %s", name)
		}
		out, err := exec.Command("ip", "-n", name, "-o", "-4", "addr", "show", "dev", bridge).CombinedOutput()
		if err != nil {
			t.Fatalf("ip addr: %v: %s", err, out)
		}
		for _, want := range []string{"10.77.0.1/24", "169.254.169.254/32", "168.63.129.16/32", "10.99.0.7/32"} {
			if !strings.Contains(string(out), " "+want+" ") {
				t.Errorf("the bridge lacks %s:\n%s", want, out)
			}
		}
		if l.Gateway() != netip.MustParseAddr("10.77.0.1") || l.Subnet() != netip.MustParsePrefix(DefaultSubnet) {
			t.Errorf("gateway %s, subnet %s", l.Gateway(), l.Subnet())
		}

		// Test servers at the platforms' real addresses, reached from
		// inside the lab.
		for _, addr := range []string{MetadataAddr, WireServerAddr} {
			l.ServeHTTP(t, addr+":80", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "served at %s for %s", addr, r.URL.Path)
			}))
			got, err := inLab(t, l, `exec 3<>/dev/tcp/`+addr+`/80 && printf 'GET /latest/meta-data/ HTTP/1.0\r\n\r\n' >&3 && cat <&3`)
			if err != nil || !strings.Contains(got, "served at "+addr+" for /latest/meta-data/") {
				t.Errorf("GET http://%s/latest/meta-data/ in the lab: %v\n%s", addr, err, got)
			}
		}
		// Nothing has a route out.
		if got, err := inLab(t, l, `exec 3<>/dev/tcp/192.0.2.1/80`); err == nil || !strings.Contains(got, "unreachable") {
			t.Errorf("a connect to 192.0.2.1 from the lab: err %v, %q; want network unreachable", err, got)
		}
		got, err := inLab(t, l, `cat /proc/sys/net/ipv4/ip_forward; ip -4 route show table main`)
		if lines := strings.Split(strings.TrimSpace(got), "\n"); err != nil || len(lines) != 2 || lines[0] != "0" || !strings.HasPrefix(lines[1], "10.77.0.0/24 dev lab0 ") {
			t.Errorf("the lab forwards or routes out (want forwarding 0 and only the subnet's route): %v\n%s", err, got)
		}

		cfg := qemu.Config{UUID: "6e6f6465-6261-6b65-2d74-6573742d0001"}
		mac := l.Attach(t, &cfg)
		if cfg.NetNS != name || cfg.Tap != "tap0" || mac.String() != qemu.NICMAC(cfg.UUID, 0) || !slices.Contains(cfg.NICOptions, "mac="+mac.String()) {
			t.Errorf("Attach set NetNS %q, Tap %q, NICOptions %q and returned %s", cfg.NetNS, cfg.Tap, cfg.NICOptions, mac)
		}
		if out, err := exec.Command("ip", "-n", name, "-o", "link", "show", "dev", "tap0").CombinedOutput(); err != nil || !strings.Contains(string(out), "master "+bridge) {
			t.Errorf("tap0 is not on the bridge: %v\n%s", err, out)
		}
		if other := (qemu.Config{}); l.Attach(t, &other).String() == mac.String() || other.Tap != "tap1" {
			t.Errorf("a second guest got tap %q and the first one's MAC", other.Tap)
		}

		// What cleanup must end: a socket and a process in the lab.
		var err2 error
		if ln, err2 = l.Listen("tcp", "10.77.0.1:8080"); err2 != nil {
			t.Fatal(err2)
		}
		sleep = l.Command(context.Background(), "sleep", "600")
		if err := sleep.Start(); err != nil {
			t.Fatal(err)
		}
	})
	if name == "" {
		return
	}
	if strings.Contains(netnsList(t), name) {
		t.Errorf("namespace %s is still listed after cleanup", name)
	}
	if after := hostLinks(t); !slices.Equal(before, after) {
		t.Errorf("the host's interfaces changed: %q -> %q", before, after)
	}
	if _, err := ln.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("a listener of the lab still accepts after cleanup: %v", err)
	}
	if sleep != nil {
		done := make(chan error, 1)
		go func() { done <- sleep.Wait() }()
		select {
		case err := <-done:
			if err == nil {
				t.Error("the process left in the lab exited cleanly: want it killed")
			}
		case <-time.After(10 * time.Second):
			sleep.Process.Kill()
			t.Error("the process left in the lab still runs after cleanup")
		}
	}
}

// TestRemoveStale removes a lab whose test process is gone.
func TestRemoveStale(t *testing.T) {
	Require(t)
	// 999999999 is above any pid_max: no process has that id.
	stale := nsPrefix + "999999999-deadbeef"
	if out, err := exec.Command("ip", "netns", "add", stale).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", stale).Run() })
	New(t)
	if strings.Contains(netnsList(t), stale) {
		t.Errorf("stale lab %s was not removed", stale)
	}
}

// guestTap opens a lab's tap device the way QEMU does, to play a guest's
// NIC in tests that boot none.
func guestTap(t *testing.T, l *Lab, tap string) *os.File {
	t.Helper()
	var f *os.File
	err := l.Do(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(tap)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s: %w", tap, err)
		}
		f = os.NewFile(uintptr(fd), tap)
		return nil
	})
	if err != nil {
		t.Fatalf("opening %s: %v", tap, err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// dhcpFrame wraps a DHCP message from a client without an address in
// Ethernet, IPv4 and UDP headers, broadcast.
func dhcpFrame(src net.HardwareAddr, m *dhcp4.Message) []byte {
	bcast := netip.MustParseAddr("255.255.255.255")
	return udpFrame(src, net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, netip.IPv4Unspecified(), bcast, dhcp4.ClientPort, dhcp4.ServerPort, m.Marshal())
}

// udpFrame builds an Ethernet frame with a UDP datagram (no UDP checksum,
// which IPv4 allows).
func udpFrame(srcMAC, dstMAC net.HardwareAddr, from, to netip.Addr, srcPort, dstPort int, payload []byte) []byte {
	f := make([]byte, 14+20+8, 14+20+8+len(payload))
	copy(f[0:6], dstMAC)
	copy(f[6:12], srcMAC)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	copy(ip[12:16], from.AsSlice())
	copy(ip[16:20], to.AsSlice())
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := f[34:42]
	binary.BigEndian.PutUint16(udp[0:], uint16(srcPort))
	binary.BigEndian.PutUint16(udp[2:], uint16(dstPort))
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	return append(f, payload...)
}

// exchange sends a DHCP message from the guest's NIC and reads frames
// until the reply with its transaction id arrives; it resends every
// second, as DHCP clients do (the bridge forwards from a new port only
// once the kernel has seen its carrier, up to a second after the tap
// opens). It returns the reply and the frame's IPv4 destination.
func exchange(t *testing.T, f *os.File, mac net.HardwareAddr, m *dhcp4.Message) (*dhcp4.Message, netip.Addr) {
	t.Helper()
	buf := make([]byte, 2048)
	for try := 0; try < 20; try++ {
		if _, err := f.Write(dhcpFrame(mac, m)); err != nil {
			t.Fatalf("sending %s: %v", m.Type(), err)
		}
		f.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, err := f.Read(buf)
			if errors.Is(err, os.ErrDeadlineExceeded) {
				break
			}
			if err != nil {
				t.Fatalf("reading the tap for a DHCP reply: %v", err)
			}
			fr := buf[:n]
			if n < 42 || binary.BigEndian.Uint16(fr[12:]) != 0x0800 || fr[14+9] != 17 {
				continue
			}
			ihl := int(fr[14]&0xf) * 4
			udp := fr[14+ihl:]
			if len(udp) < 8 || binary.BigEndian.Uint16(udp[2:]) != dhcp4.ClientPort {
				continue
			}
			r, err := dhcp4.Parse(udp[8:])
			if err != nil {
				t.Fatalf("a DHCP reply that does not parse: %v", err)
			}
			if r.XID == m.XID {
				return r, netip.AddrFrom4([4]byte(fr[14+16 : 14+20]))
			}
		}
	}
	t.Fatalf("no reply to %s in 20 tries", m.Type())
	return nil, netip.Addr{}
}

// TestDHCPOverTap plays a guest's DHCP client on a tap of the lab: the
// real kernel path of the lab's server (a socket bound to the bridge,
// broadcast replies through the bridge to the tap). The real client
// counterpart is systemd-networkd in the guest of the boot test.
func TestDHCPOverTap(t *testing.T) {
	azure := []byte{168, 63, 129, 16}
	l := New(t, WithNTP(), WithDNSServers(netip.MustParseAddr("10.77.0.1")), WithDHCPOption(245, azure))
	var cfg qemu.Config
	mac := l.Attach(t, &cfg)
	tap := guestTap(t, l, cfg.Tap)
	clientID := append([]byte{1}, mac...)

	discover := &dhcp4.Message{Op: 1, XID: 0x1234, HardwareAddr: mac, Options: map[dhcp4.Option][]byte{
		dhcp4.OptMessageType: {byte(dhcp4.Discover)},
		dhcp4.OptClientID:    clientID,
	}}
	start := time.Now()
	offer, dst := exchange(t, tap, mac, discover)
	if offer.Type() != dhcp4.Offer || !l.Subnet().Contains(offer.YourAddr) || dst != netip.MustParseAddr("255.255.255.255") {
		t.Fatalf("offer %s of %s to %s", offer.Type(), offer.YourAddr, dst)
	}
	gw := []byte{10, 77, 0, 1}
	for code, want := range map[dhcp4.Option][]byte{
		dhcp4.OptRouter: gw, dhcp4.OptNTP: gw, dhcp4.OptDNS: gw, dhcp4.OptServerID: gw, 245: azure,
	} {
		if got := offer.Options[code]; !bytes.Equal(got, want) {
			t.Errorf("option %d = %v, want %v", code, got, want)
		}
	}
	request := &dhcp4.Message{Op: 1, XID: 0x1235, HardwareAddr: mac, Options: map[dhcp4.Option][]byte{
		dhcp4.OptMessageType:   {byte(dhcp4.Request)},
		dhcp4.OptClientID:      clientID,
		dhcp4.OptServerID:      gw,
		dhcp4.OptRequestedAddr: offer.YourAddr.AsSlice(),
	}}
	ack, _ := exchange(t, tap, mac, request)
	if ack.Type() != dhcp4.Ack || ack.YourAddr != offer.YourAddr {
		t.Fatalf("reply %s for %s, want an ACK for %s", ack.Type(), ack.YourAddr, offer.YourAddr)
	}
	lease, err := l.WaitLease(t.Context(), mac, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if lease.Addr != offer.YourAddr || lease.Bound.Before(start) {
		t.Errorf("lease %+v", lease)
	}
	t.Logf("DISCOVER to lease over the tap: %s", lease.Bound.Sub(start))

	// A packet from the guest to an address outside the lab, sent to the
	// gateway as a guest's default route would: dropped, and counted.
	drops, err := l.OutsideDrops()
	if err != nil {
		t.Fatal(err)
	}
	gwMAC, _ := net.ParseMAC(bridgeMAC)
	for i := 0; i < 3; i++ {
		if _, err := tap.Write(udpFrame(mac, gwMAC, lease.Addr, netip.MustParseAddr("192.0.2.1"), 40000, 9, []byte("out?"))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := l.OutsideDrops()
		if err != nil {
			t.Fatal(err)
		}
		if n >= drops+3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("OutsideDrops went from %d to %d after 3 packets to 192.0.2.1, want +3", drops, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestNTPInLab queries the lab's NTP server with ntpdig (NTPsec's SNTP
// client, which only reads the time unless told to set it) from inside
// the lab: the real client counterpart of the server's unit tests.
func TestNTPInLab(t *testing.T) {
	Require(t)
	harness.RequireTool(t, "ntpdig")
	l := New(t, WithNTP())
	out, err := inLabOutput(t, l, "ntpdig", "-j", "-t", "5", l.Gateway().String())
	if err != nil {
		t.Fatalf("ntpdig: %v\n%s", err, out)
	}
	var r struct {
		Offset  float64 `json:"offset"`
		Stratum int     `json:"stratum"`
		Leap    string  `json:"leap"`
		IP      string  `json:"ip"`
	}
	if err := json.Unmarshal(bytes.TrimSpace(out), &r); err != nil {
		t.Fatalf("ntpdig's output %q: %v", out, err)
	}
	if r.Stratum != 1 || r.IP != l.Gateway().String() || math.Abs(r.Offset) > 0.5 {
		t.Errorf("ntpdig says %+v: want stratum 1 at %s with the host's time", r, l.Gateway())
	}
	if n := l.NTP().Requests(); n < 1 {
		t.Errorf("the server counted %d requests", n)
	}
}

func inLabOutput(t *testing.T, l *Lab, name string, args ...string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := l.Command(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return append(out, stderr.Bytes()...), err
	}
	return out, nil
}

// TestForwardTCP reaches a server on the host's loopback from inside the
// lab through a forward.
func TestForwardTCP(t *testing.T) {
	l := New(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "host side") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	l.ForwardTCP(t, "10.77.0.1:6443", ln.Addr().String())
	got, err := inLab(t, l, `exec 3<>/dev/tcp/10.77.0.1/6443 && printf 'GET / HTTP/1.0\r\n\r\n' >&3 && cat <&3`)
	if err != nil || !strings.Contains(got, "host side") {
		t.Errorf("through the forward: %v\n%s", err, got)
	}
}

// TestServeEC2Metadata: inside the lab, the metadata address answers as
// EC2's IMDSv2 does: 401 for user data without a session token, the
// instance's user data with one.
func TestServeEC2Metadata(t *testing.T) {
	harness.RequireSlow(t)
	l := New(t)
	userData := "apiVersion: nodebake.io/v1alpha1\nkind: NodeConfig\n"
	l.ServeEC2Metadata(t, []byte(userData))
	// One HTTP/1.0 request per connection, from a shell in the lab.
	const script = `req() { exec 3<>/dev/tcp/` + MetadataAddr + `/80 && printf "$1 $2 HTTP/1.0\r\n$3\r\n" >&3 && cat <&3; exec 3<&-; }
req GET /latest/user-data "" | head -1
token=$(req PUT /latest/api/token "X-aws-ec2-metadata-token-ttl-seconds: 60\r\n" | sed '1,/^\r$/d')
echo "--"
req GET /latest/user-data "X-aws-ec2-metadata-token: $token\r\n" | sed '1,/^\r$/d'`
	out, err := inLab(t, l, script)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	noToken, withToken, _ := strings.Cut(out, "--\n")
	if !strings.Contains(noToken, " 401 ") {
		t.Errorf("user data without a token: %q, want 401 (IMDSv2 required)", noToken)
	}
	if withToken != userData {
		t.Errorf("user data with a token: %q, want %q", withToken, userData)
	}
}
