// Package dhcp4 is a small DHCPv4 server (RFC 2131 and RFC 2132) for the
// network labs of nodebake's tests. It leases addresses from one pool on
// one link and hands out the options a test asks for: router, DNS and NTP
// servers (option 42), classless static routes (RFC 3442) or any other
// option by code (Azure's wireserver address, option 245, say).
//
// It is not a general DHCP server: no relays, no failover, no persistent
// lease database. Every message it reads is bounded and checked before use.
package dhcp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// Option is a DHCP option code.
type Option byte

// The option codes this package knows by name (RFC 2132, RFC 3442).
const (
	OptPad             Option = 0
	OptSubnetMask      Option = 1
	OptRouter          Option = 3
	OptDNS             Option = 6
	OptHostname        Option = 12
	OptDomainName      Option = 15
	OptBroadcastAddr   Option = 28
	OptNTP             Option = 42
	OptRequestedAddr   Option = 50
	OptLeaseTime       Option = 51
	OptOverload        Option = 52
	OptMessageType     Option = 53
	OptServerID        Option = 54
	OptParamRequest    Option = 55
	OptMessage         Option = 56
	OptMaxMessageSize  Option = 57
	OptRenewalTime     Option = 58
	OptRebindingTime   Option = 59
	OptClientID        Option = 61
	OptClasslessRoutes Option = 121
	OptEnd             Option = 255
)

// MessageType is the value of option 53.
type MessageType byte

// The message types (RFC 2132 section 9.6).
const (
	Discover MessageType = 1
	Offer    MessageType = 2
	Request  MessageType = 3
	Decline  MessageType = 4
	Ack      MessageType = 5
	Nak      MessageType = 6
	Release  MessageType = 7
	Inform   MessageType = 8
)

func (t MessageType) String() string {
	names := [...]string{"", "DHCPDISCOVER", "DHCPOFFER", "DHCPREQUEST", "DHCPDECLINE", "DHCPACK", "DHCPNAK", "DHCPRELEASE", "DHCPINFORM"}
	if int(t) < len(names) && t != 0 {
		return names[t]
	}
	return fmt.Sprintf("DHCP message type %d", byte(t))
}

// BOOTP operations.
const (
	opRequest = 1
	opReply   = 2
)

// Sizes.
const (
	// fixedSize is the BOOTP header: op to file.
	fixedSize = 236
	// MinMessageSize is the smallest message: the header and the magic
	// cookie.
	MinMessageSize = fixedSize + 4
	// MaxMessageSize bounds a message this package reads. Ethernet frames
	// carry at most 1500 bytes of IP; a DHCP message is smaller still.
	MaxMessageSize = 1500
	// minReplySize pads replies to the BOOTP minimum that older clients
	// expect.
	minReplySize = 300
	// flagBroadcast is the BROADCAST bit of the flags field.
	flagBroadcast = 0x8000
)

var magicCookie = [4]byte{99, 130, 83, 99}

// Message is a DHCPv4 message. Addresses are IPv4; the zero netip.Addr
// stands for 0.0.0.0.
type Message struct {
	// Op is 1 (BOOTREQUEST) or 2 (BOOTREPLY).
	Op    byte
	XID   uint32
	Secs  uint16
	Flags uint16
	// ClientAddr (ciaddr), YourAddr (yiaddr), NextServer (siaddr) and
	// RelayAddr (giaddr).
	ClientAddr, YourAddr, NextServer, RelayAddr netip.Addr
	// HardwareAddr is the client's Ethernet address (chaddr).
	HardwareAddr net.HardwareAddr
	// Options by code. Parse joins repeated options (RFC 3396); Marshal
	// splits values longer than 255 bytes.
	Options map[Option][]byte
}

// Type returns the message type (option 53), or 0 when it is missing or
// malformed.
func (m *Message) Type() MessageType {
	if v := m.Options[OptMessageType]; len(v) == 1 {
		return MessageType(v[0])
	}
	return 0
}

// Addr returns the IPv4 address an option holds (requested address,
// server identifier), or the zero Addr when it is missing or not 4 bytes.
func (m *Message) Addr(o Option) netip.Addr {
	if v := m.Options[o]; len(v) == 4 {
		return netip.AddrFrom4([4]byte(v))
	}
	return netip.Addr{}
}

// ErrMalformed is wrapped by Parse's errors.
var ErrMalformed = errors.New("malformed DHCP message")

// Parse decodes a DHCPv4 message from an Ethernet client (htype 1, hlen
// 6). It refuses messages shorter than the fixed header or longer than
// MaxMessageSize, a wrong magic cookie, and options that run past the
// end. The sname and file fields are not read, option overload (52)
// included.
func Parse(b []byte) (*Message, error) {
	if len(b) < MinMessageSize {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrMalformed, len(b), MinMessageSize)
	}
	if len(b) > MaxMessageSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(b), MaxMessageSize)
	}
	if b[0] != opRequest && b[0] != opReply {
		return nil, fmt.Errorf("%w: op %d", ErrMalformed, b[0])
	}
	if b[1] != 1 || b[2] != 6 {
		return nil, fmt.Errorf("%w: hardware type %d length %d, want Ethernet (1, 6)", ErrMalformed, b[1], b[2])
	}
	if [4]byte(b[fixedSize:MinMessageSize]) != magicCookie {
		return nil, fmt.Errorf("%w: no DHCP magic cookie", ErrMalformed)
	}
	m := &Message{
		Op:           b[0],
		XID:          binary.BigEndian.Uint32(b[4:8]),
		Secs:         binary.BigEndian.Uint16(b[8:10]),
		Flags:        binary.BigEndian.Uint16(b[10:12]),
		ClientAddr:   addr4(b[12:16]),
		YourAddr:     addr4(b[16:20]),
		NextServer:   addr4(b[20:24]),
		RelayAddr:    addr4(b[24:28]),
		HardwareAddr: net.HardwareAddr(slices.Clone(b[28:34])),
		Options:      map[Option][]byte{},
	}
	opts := b[MinMessageSize:]
	for i := 0; i < len(opts); {
		code := Option(opts[i])
		if code == OptEnd {
			return m, nil
		}
		if code == OptPad {
			i++
			continue
		}
		if i+1 >= len(opts) {
			return nil, fmt.Errorf("%w: option %d has no length", ErrMalformed, code)
		}
		n := int(opts[i+1])
		if i+2+n > len(opts) {
			return nil, fmt.Errorf("%w: option %d of %d bytes runs past the end", ErrMalformed, code, n)
		}
		m.Options[code] = append(m.Options[code], opts[i+2:i+2+n]...)
		i += 2 + n
	}
	return nil, fmt.Errorf("%w: no end option", ErrMalformed)
}

// addr4 returns the address in b (4 bytes); 0.0.0.0 becomes the zero Addr.
func addr4(b []byte) netip.Addr {
	a := [4]byte(b)
	if a == [4]byte{} {
		return netip.Addr{}
	}
	return netip.AddrFrom4(a)
}

// put4 writes a (or 0.0.0.0 for the zero Addr) into b.
func put4(b []byte, a netip.Addr) {
	if a.Is4() {
		v := a.As4()
		copy(b, v[:])
	}
}

// Marshal encodes m. The message type goes first, the other options in
// ascending order of their codes; the result is padded to 300 bytes.
func (m *Message) Marshal() []byte {
	b := make([]byte, MinMessageSize, 576)
	b[0] = m.Op
	b[1], b[2] = 1, 6
	binary.BigEndian.PutUint32(b[4:8], m.XID)
	binary.BigEndian.PutUint16(b[8:10], m.Secs)
	binary.BigEndian.PutUint16(b[10:12], m.Flags)
	put4(b[12:16], m.ClientAddr)
	put4(b[16:20], m.YourAddr)
	put4(b[20:24], m.NextServer)
	put4(b[24:28], m.RelayAddr)
	copy(b[28:44], m.HardwareAddr)
	copy(b[fixedSize:], magicCookie[:])
	codes := make([]Option, 0, len(m.Options))
	for c := range m.Options {
		if c != OptPad && c != OptEnd {
			codes = append(codes, c)
		}
	}
	slices.SortFunc(codes, func(a, b Option) int {
		switch {
		case a == b:
			return 0
		case a == OptMessageType:
			return -1
		case b == OptMessageType:
			return 1
		}
		return int(a) - int(b)
	})
	for _, c := range codes {
		v := m.Options[c]
		for {
			n := min(len(v), 255)
			b = append(b, byte(c), byte(n))
			b = append(b, v[:n]...)
			v = v[n:]
			if len(v) == 0 {
				break
			}
		}
	}
	b = append(b, byte(OptEnd))
	for len(b) < minReplySize {
		b = append(b, 0)
	}
	return b
}

// addrList encodes IPv4 addresses as an option value (router, DNS
// servers, NTP servers); the server's Config checks they are IPv4.
func addrList(addrs ...netip.Addr) []byte {
	var b []byte
	for _, a := range addrs {
		if a.Is4() {
			v := a.As4()
			b = append(b, v[:]...)
		}
	}
	return b
}

// Route is a classless static route (RFC 3442).
type Route struct {
	Dest    netip.Prefix
	Gateway netip.Addr
}

// classlessRoutes encodes routes as the value of option 121: for each,
// the prefix length, the significant octets of the destination, and the
// gateway.
func classlessRoutes(routes ...Route) ([]byte, error) {
	var b []byte
	for _, r := range routes {
		if !r.Dest.Addr().Is4() || !r.Gateway.Is4() {
			return nil, fmt.Errorf("classless route %s via %s: want IPv4", r.Dest, r.Gateway)
		}
		d := r.Dest.Masked()
		bits := d.Bits()
		a := d.Addr().As4()
		g := r.Gateway.As4()
		b = append(b, byte(bits))
		b = append(b, a[:(bits+7)/8]...)
		b = append(b, g[:]...)
	}
	return b, nil
}
