package netlab

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/test/harness"
	"github.com/nodebake/nodebake/test/netlab/ntp"
	"github.com/nodebake/nodebake/test/qemu"
)

// The lab probe: a unit and a bash script baked into the image under test
// through the spec's files. The base has no curl or wget; bash's /dev/tcp
// and /dev/udp are the clients. It reports "LAB key=value" lines on ttyS1
// and powers the guest off.
const (
	labProbeUnitPath  = "/etc/systemd/system/nodebake-lab-probe.service"
	labProbeWantsPath = "/etc/systemd/system/multi-user.target.wants/nodebake-lab-probe.service"
	labProbePath      = "/usr/local/lib/nodebake-lab-probe/probe.sh"
)

const labProbeUnit = `[Unit]
Description=nodebake network lab probe (reports on ttyS1)

[Service]
Type=exec
ExecStart=` + labProbePath + `
`

const labProbeScript = `#!/bin/bash
# nodebake network lab probe: what the guest's clock, firmware and network
# say, as "LAB key=value" lines on ttyS1; then power off.
exec >/dev/ttyS1 2>&1
p() { printf 'LAB %s\n' "$*"; }
up() { cut -d' ' -f1 /proc/uptime; }
p start.uptime=$(up)
p clock=$(date -u +%s)
# The RTC as the kernel read it at boot (timesyncd rewrites the RTC
# once it has synchronised, so /sys/class/rtc says the NTP time by now).
p rtc.boot=$(dmesg | sed -n 's/.*setting system clock to .* (\([0-9]*\)).*/\1/p' | head -n 1)
for f in sys_vendor product_name product_uuid board_asset_tag chassis_asset_tag bios_vendor; do
	p "dmi.$f=$(cat /sys/class/dmi/id/$f 2>&1)"
done

addr=
for i in $(seq 1 300); do
	addr=$(ip -4 -o addr show scope global | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p' | head -n 1)
	[ -n "$addr" ] && break
	sleep 1
done
p addr=$addr
p addr.uptime=$(up)
p route=$(ip -4 route show default | head -n 1)
gw=$(ip -4 route show default | sed -n 's/^default via \([0-9.]*\) .*/\1/p' | head -n 1)

# GET http://$1$2; reports the status line and the body's last line.
get() {
	local out
	out=$(timeout 20 bash -c 'exec 3<>"/dev/tcp/$0/80" || exit 1
		printf "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n" "$1" "$0" >&3
		cat <&3' "$1" "$2" 2>&1 | tr -d '\r')
	p "$3.status=$(printf '%s\n' "$out" | head -n 1)"
	p "$3.body=$(printf '%s\n' "$out" | tail -n 1)"
}
get 169.254.169.254 /latest/meta-data/instance-id imds
get 168.63.129.16 '/?comp=versions' wireserver

# An address outside the lab must not answer (124: timed out).
out=$(timeout 15 bash -c 'exec 3<>/dev/tcp/192.0.2.1/80' 2>&1)
p "outside=rc $? $(printf '%s' "$out" | tr '\n' ' ')"

# An SNTP request (version 4, mode 3) to the gateway, in one datagram.
mkdir -p /run/nodebake-lab-probe
{ printf '\x23'; head -c 47 /dev/zero; } >/run/nodebake-lab-probe/ntp-request
p ntp=$(timeout 15 bash -c 'exec 3<>"/dev/udp/$0/123" || exit 1
	cat /run/nodebake-lab-probe/ntp-request >&3
	dd bs=48 count=1 <&3 2>/dev/null | od -An -tx1 -v' "$gw" 2>&1 | tr -d ' \n')
p done.uptime=$(up)
p done
systemctl poweroff
`

func labProbeFiles() []spec.File {
	unit, script := labProbeUnit, labProbeScript
	return []spec.File{
		{Path: labProbeUnitPath, Content: &unit, Mode: "0644"},
		{Path: labProbeWantsPath, Link: "../nodebake-lab-probe.service", Mode: "0777"},
		{Path: labProbePath, Content: &script, Mode: "0755"},
	}
}

// parseLabReport parses the probe's "LAB key=value" lines; a line
// without "=" is a key with an empty value.
func parseLabReport(log string) map[string]string {
	r := map[string]string{}
	for _, line := range strings.Split(strings.ReplaceAll(log, "\r", ""), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "LAB "); ok {
			k, v, _ := strings.Cut(rest, "=")
			r[k] = v
		}
	}
	return r
}

// figure logs a measured figure to the test log and stdout.
func figure(t *testing.T, format string, args ...any) {
	t.Helper()
	s := fmt.Sprintf(format, args...)
	t.Log(s)
	fmt.Println("FIGURE " + s)
}

// recorder is a test server that answers every request with a fixed body
// and records who asked for what.
type recorder struct {
	body string
	mu   sync.Mutex
	seen []string // "remote-ip path"
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	host, _, _ := net.SplitHostPort(req.RemoteAddr)
	r.mu.Lock()
	r.seen = append(r.seen, host+" "+req.URL.RequestURI())
	r.mu.Unlock()
	fmt.Fprint(w, r.body)
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func token() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// TestGuestInLab boots the worker image inside a lab, as an EC2 instance
// whose clock is a year behind: the guest gets its address from the lab's
// DHCP server, fetches from test servers at 169.254.169.254 and
// 168.63.129.16, gets the time from the lab's NTP server, reaches nothing
// outside the lab, and its firmware says what the EC2 identity says.
func TestGuestInLab(t *testing.T) {
	harness.RequireSlow(t)
	Require(t)
	for _, tool := range []string{"qemu-system-x86_64", "qemu-img"} {
		harness.RequireTool(t, tool)
	}
	s := harness.WorkerSpec(t, labProbeFiles()...)
	res := harness.BuildImage(t, s, t.TempDir())

	lab := New(t, WithNTP())
	figure(t, "lab setup (namespace, bridge, addresses, DHCP and NTP servers): %s", lab.CreatedIn.Round(time.Millisecond))
	imds := &recorder{body: "i-" + token()}
	wire := &recorder{body: "wireserver-" + token()}
	lab.ServeHTTP(t, MetadataAddr+":80", imds)
	lab.ServeHTTP(t, WireServerAddr+":80", wire)

	const instanceID = "i-0123456789abcdef0"
	id := qemu.EC2Identity(instanceID)
	cfg := qemu.Config{Disk: res.ImagePath, NoReboot: true}
	id.Apply(&cfg)
	yearAgo := 365 * 24 * time.Hour
	cfg.RTCBase = time.Now().Add(-yearAgo).UTC().Truncate(time.Second)
	mac := lab.Attach(t, &cfg)

	ctx := t.Context()
	vm, err := qemu.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	t.Logf("VM work directory %s (NODEBAKE_KEEP_VM=1 keeps it); lab %s", vm.Dir(), lab.Name())

	const bootTimeout = 6 * time.Minute
	wctx, cancel := vm.Watch(ctx)
	lease, err := lab.WaitLease(wctx, mac, bootTimeout)
	cancel()
	if err != nil {
		t.Fatalf("%v\n%s", err, vm.ConsoleTail(40))
	}
	figure(t, "QEMU start -> DHCP lease of %s: %s (%s)", lease.Addr, lease.Bound.Sub(vm.StartedAt).Round(100*time.Millisecond), qemu.Accel())
	done, err := vm.WaitForFrom(ctx, qemu.Report, 0, regexp.MustCompile(`LAB done\r?\n`), bootTimeout)
	if err != nil {
		t.Fatalf("the probe did not finish: %v\nreport so far:\n%s", err, vm.ReportLog())
	}
	hostNow := time.Now()
	if err := vm.WaitExit(ctx, 2*time.Minute); err != nil {
		t.Errorf("after the probe's poweroff: %v", err)
	}
	report := vm.ReportLog()
	t.Logf("probe report:\n%s", report)
	r := parseLabReport(report)
	figure(t, "guest uptime at the probe's start %ss, at its DHCP address %ss, at the probe's end %ss; QEMU start -> probe done %s, -> QEMU exit %s",
		r["start.uptime"], r["addr.uptime"], r["done.uptime"], done.SeenAt.Sub(vm.StartedAt).Round(100*time.Millisecond), time.Since(vm.StartedAt).Round(100*time.Millisecond))

	// Network: the lab's lease, its gateway, its servers at their real
	// addresses, seen from the guest's address; nothing outside.
	if r["addr"] != lease.Addr.String() {
		t.Errorf("guest address %q, want the lab's lease %s", r["addr"], lease.Addr)
	}
	if want := "default via " + lab.Gateway().String() + " "; !strings.HasPrefix(r["route"], want) {
		t.Errorf("guest default route %q, want one via the lab's gateway %s", r["route"], lab.Gateway())
	}
	for _, c := range []struct {
		key  string
		srv  *recorder
		path string
	}{{"imds", imds, "/latest/meta-data/instance-id"}, {"wireserver", wire, "/?comp=versions"}} {
		if r[c.key+".status"] != "HTTP/1.0 200 OK" || r[c.key+".body"] != c.srv.body {
			t.Errorf("%s from the guest: status %q, body %q; want 200 and %q", c.key, r[c.key+".status"], r[c.key+".body"], c.srv.body)
		}
		// First boot asks the metadata service too (the guest says it is
		// an EC2 instance); the probe's request is the one of its path.
		got := c.srv.requests()
		probe := 0
		for _, r := range got {
			if !strings.HasPrefix(r, lease.Addr.String()+" ") {
				t.Errorf("the %s test server saw %q from outside the guest's lease %s", c.key, r, lease.Addr)
			}
			if r == lease.Addr.String()+" "+c.path {
				probe++
			}
		}
		if probe != 1 {
			t.Errorf("the %s test server saw %q, want one GET %s from %s", c.key, got, c.path, lease.Addr)
		}
	}
	// The connect fails, and its packets reached the lab and were dropped
	// there.
	if !strings.HasPrefix(r["outside"], "rc ") || strings.HasPrefix(r["outside"], "rc 0") {
		t.Errorf("a connect to 192.0.2.1 from the guest: %q, want it to fail", r["outside"])
	}
	if n, err := lab.OutsideDrops(); err != nil || n < 1 {
		t.Errorf("the lab dropped %d packets addressed outside it (%v), want the guest's SYNs to 192.0.2.1", n, err)
	}

	// Time: the RTC the kernel read at boot was a year behind; the lab's
	// NTP server told the guest the host's time.
	if rtc, err := strconv.ParseInt(r["rtc.boot"], 10, 64); err != nil {
		t.Errorf("guest RTC at boot %q: %v", r["rtc.boot"], err)
	} else if behind := vm.StartedAt.Sub(time.Unix(rtc, 0)); behind < yearAgo-time.Hour || behind > yearAgo+time.Hour {
		t.Errorf("guest RTC at boot %s is %s behind the host at QEMU's start, want about a year", time.Unix(rtc, 0).UTC(), behind)
	}
	if clock, err := strconv.ParseInt(r["clock"], 10, 64); err == nil {
		t.Logf("guest system clock at the probe's start: %s (%s behind the host)", time.Unix(clock, 0).UTC(), hostNow.Sub(time.Unix(clock, 0)).Round(time.Second))
	}
	reply, err := hex.DecodeString(r["ntp"])
	if err != nil || len(reply) != ntp.PacketSize {
		t.Errorf("the guest's NTP reply %q: %v, want %d bytes", r["ntp"], err, ntp.PacketSize)
	} else {
		p, _ := ntp.Parse(reply)
		tx := ntp.Timestamp(binary.BigEndian.Uint64(reply[40:])).Time()
		if p.Mode != ntp.ModeServer || p.Stratum != 1 || tx.Before(vm.StartedAt) || tx.After(hostNow) {
			t.Errorf("the guest's NTP reply: mode %d, stratum %d, time %s; want a server's reply with the host's time between %s and %s", p.Mode, p.Stratum, tx, vm.StartedAt, hostNow)
		}
	}
	if n := lab.NTP().Requests(); n < 1 {
		t.Errorf("the lab's NTP server answered %d requests", n)
	}

	// Firmware: the EC2 identity.
	for k, want := range map[string]string{
		"dmi.sys_vendor":      "Amazon EC2",
		"dmi.product_name":    "m5.large",
		"dmi.board_asset_tag": instanceID,
		"dmi.product_uuid":    id.UUID,
		"dmi.bios_vendor":     "Amazon EC2",
	} {
		if r[k] != want {
			t.Errorf("%s = %q, want %q", k, r[k], want)
		}
	}
	if !netip.MustParsePrefix(DefaultSubnet).Contains(lease.Addr) {
		t.Errorf("lease %s outside the lab's subnet", lease.Addr)
	}
}
