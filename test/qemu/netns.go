package qemu

import (
	"fmt"
	"strings"

	bqemu "github.com/nodebake/nodebake/builder/qemu"
)

// A guest in a network namespace: QEMU runs under `ip netns exec`, and its
// first NIC is a tap device there (see Config.NetNS and Config.Tap). The
// test/netlab package builds such namespaces.

// checkNet checks the network namespace, tap and clock settings.
func (c Config) checkNet() error {
	if c.NetNS != "" && !validNetNS(c.NetNS) {
		return fmt.Errorf("qemu config: network namespace %q: want 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-'", c.NetNS)
	}
	if c.Tap != "" {
		if !validIfName(c.Tap) {
			return fmt.Errorf("qemu config: tap %q: want an interface name of 1 to 15 characters without '/', ':', ',' or spaces", c.Tap)
		}
		if len(c.UserNet) > 0 {
			return fmt.Errorf("qemu config: tap %s replaces the user network, so UserNet (%s) cannot apply", c.Tap, strings.Join(c.UserNet, ","))
		}
	}
	if !c.RTCBase.IsZero() && (c.RTCBase.Year() < 1970 || c.RTCBase.Year() > 9999) {
		return fmt.Errorf("qemu config: RTC base %s: want a year from 1970 to 9999", c.RTCBase)
	}
	return nil
}

func validNetNS(s string) bool {
	if len(s) == 0 || len(s) > 64 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// validIfName follows the kernel's dev_valid_name, and refuses a comma,
// which QEMU's option syntax would split on.
func validIfName(s string) bool {
	if len(s) == 0 || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsAny(s, "/:, \t\n\r\v\f")
}

// firstNetdev returns the -netdev value of the guest's first NIC (id n0):
// the tap when Tap is set, else the restricted user network.
func (c Config) firstNetdev() string {
	if c.Tap != "" {
		return "tap,id=n0,ifname=" + c.Tap + ",script=no,downscript=no"
	}
	return bqemu.UserNetdev(c.UserNet...)
}

// rtcFormat is the date format of QEMU's -rtc base=.
const rtcFormat = "2006-01-02T15:04:05"

// rtcArgs returns the -rtc option for RTCBase, if set.
func (c Config) rtcArgs() []string {
	if c.RTCBase.IsZero() {
		return nil
	}
	return []string{"-rtc", "base=" + c.RTCBase.UTC().Format(rtcFormat)}
}

// command returns the program to run and its arguments: QEMU with args,
// through `ip netns exec` when NetNS is set. ip execs QEMU in the same
// process, so killing the process kills QEMU.
func (c Config) command(args []string) (string, []string) {
	if c.NetNS == "" {
		return c.Binary, args
	}
	return "ip", append([]string{"netns", "exec", c.NetNS, c.Binary}, args...)
}

// NICMAC returns the MAC address the package gives NIC n (1 for the first
// of Config.NetDevs) of a VM with the given UUID: a locally administered
// address in QEMU's 52:54:00 range.
func NICMAC(uuid string, n int) string { return deriveMAC(uuid, n) }
