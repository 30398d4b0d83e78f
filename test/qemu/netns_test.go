package qemu

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestNetNSArgs(t *testing.T) {
	c := Config{
		Disk: "/img/w.raw", Memory: 1024, CPUs: 1, Accel: AccelTCG, Binary: "qemu-system-x86_64",
		NetNS:      "nodebake-lab-1-ab",
		Tap:        "tap0",
		NICOptions: []string{"mac=52:54:00:aa:bb:cc"},
		RTCBase:    time.Date(2025, 12, 6, 4, 1, 34, 900_000_000, time.FixedZone("x", 3600)),
	}
	if _, err := c.withDefaults(); err != nil {
		t.Fatal(err)
	}
	args := c.args(newPaths("/vm", c))
	if got := pairs(args, "-netdev"); !slices.Equal(got, []string{"tap,id=n0,ifname=tap0,script=no,downscript=no"}) {
		t.Errorf("-netdev = %q, want only the tap", got)
	}
	if got := pairs(args, "-device"); !slices.Contains(got, "virtio-net-pci,netdev=n0,mac=52:54:00:aa:bb:cc") {
		t.Errorf("-device = %q, want the tap's NIC with its MAC", got)
	}
	if got := pairs(args, "-rtc"); !slices.Equal(got, []string{"base=2025-12-06T03:01:34"}) {
		t.Errorf("-rtc = %q, want the base in UTC", got)
	}
	name, full := c.command(args)
	if name != "ip" || !slices.Equal(full[:4], []string{"netns", "exec", "nodebake-lab-1-ab", "qemu-system-x86_64"}) || !slices.Equal(full[4:], args) {
		t.Errorf("command = %s %q", name, full[:4])
	}

	plain := Config{Disk: "/img/w.raw", Accel: AccelTCG, Binary: "qemu-system-x86_64"}
	a := plain.args(newPaths("/vm", plain))
	if slices.Contains(a, "-rtc") {
		t.Errorf("an -rtc option without RTCBase: %q", a)
	}
	if name, full := plain.command(a); name != "qemu-system-x86_64" || !slices.Equal(full, a) {
		t.Errorf("command without a namespace = %s %q", name, full)
	}
}

func TestNetNSRefused(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want string
	}{
		{"namespace with a slash", Config{Disk: "x", NetNS: "../etc"}, "network namespace"},
		{"namespace starting with a dash", Config{Disk: "x", NetNS: "-n"}, "network namespace"},
		{"long namespace", Config{Disk: "x", NetNS: strings.Repeat("a", 65)}, "network namespace"},
		{"tap with a comma", Config{Disk: "x", Tap: "tap0,script=/bin/evil"}, "tap"},
		{"long tap", Config{Disk: "x", Tap: "tap0123456789abc"}, "tap"},
		{"tap and user network", Config{Disk: "x", Tap: "tap0", UserNet: []string{"hostfwd=tcp::2222-:22"}}, "replaces the user network"},
		{"rtc before 1970", Config{Disk: "x", RTCBase: time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC)}, "RTC base"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.Accel = AccelTCG
			if _, err := tt.c.withDefaults(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
	ok := Config{Disk: "x", Accel: AccelTCG, NetNS: "nodebake-lab-12-0a1b", Tap: "nbtap1"}
	if _, err := ok.withDefaults(); err != nil {
		t.Errorf("a good namespace and tap: %v", err)
	}
}

func TestNICMAC(t *testing.T) {
	const uuid = "6e6f6465-6261-6b65-2d74-6573742d0001"
	c := Config{Disk: "x", UUID: uuid, Accel: AccelTCG, NetDevs: []string{"socket,listen=127.0.0.1:5000"}}
	if !slices.Contains(pairs(c.args(newPaths("/vm", c)), "-device"), "virtio-net-pci,netdev=n1,mac="+NICMAC(uuid, 1)) {
		t.Errorf("NICMAC(uuid, 1) = %s is not the MAC the first NetDevs NIC gets", NICMAC(uuid, 1))
	}
}
