package spec

import (
	"net/netip"
	"slices"
	"strings"
)

// kernelArgProblem says what is wrong with one extra kernel argument; ""
// means nothing. Each argument is one word of printable ASCII without
// quotes (the kernel's own quoting would let one argument hide others),
// and none may change how the image boots: the root file system is
// nodebake's, and "--" would end the kernel's parameters and hand the
// rest to init as arguments, as bare run-level words also do.
func kernelArgProblem(a string) string {
	if a == "" {
		return "empty: want one kernel argument"
	}
	for _, r := range a {
		if r < 0x21 || r > 0x7e || r == '"' || r == '\'' {
			return "is not one kernel argument: want printable ASCII without spaces or quotes"
		}
	}
	key, _, _ := strings.Cut(a, "=")
	switch {
	case a == "--":
		return "ends the kernel's parameters: what follows would go to init as its arguments"
	case slices.Contains([]string{"root", "rootfstype", "rootflags", "ro", "rw"}, key):
		return key + " is set by nodebake (the root is the read-only squashfs partition)"
	case slices.Contains([]string{"init", "rdinit"}, key):
		return key + "= would replace the init the image boots (systemd)"
	case slices.Contains([]string{"systemd.unit", "rd.systemd.unit"}, key):
		return key + "= would boot another target than the image's"
	case !strings.ContainsAny(a, "=.") && slices.Contains([]string{"single", "s", "S", "1", "2", "3", "4", "5", "emergency", "rescue", "-b", "-s"}, a):
		return a + " is passed to init and boots it into another target than the image's"
	}
	return ""
}

func checkKernelArgs(errs *errorList, p string, args []string) {
	for i, a := range args {
		if why := kernelArgProblem(a); why != "" {
			errs.add(index(p, i), "%q: %s", a, why)
		}
	}
	if n := len(strings.Join(args, " ")); n > MaxKernelArgsLength {
		errs.add(p, "%d bytes long; at most %d", n, MaxKernelArgsLength)
	}
}

// reservedServiceIP says why no Service can have ip, an address inside
// the service network: its network address, or, for IPv4, its broadcast
// address. "" means it is not reserved.
func reservedServiceIP(network netip.Prefix, ip netip.Addr) string {
	network = network.Masked()
	if ip == network.Addr() {
		return "the network address of kubernetes.serviceCIDR " + network.String()
	}
	if ip.Is4() && ip == lastAddr(network) {
		return "the broadcast address of kubernetes.serviceCIDR " + network.String()
	}
	return ""
}

// lastAddr is the last address of a network.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
