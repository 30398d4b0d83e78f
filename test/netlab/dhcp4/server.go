package dhcp4

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Ports of DHCP.
const (
	ServerPort = 67
	ClientPort = 68
)

// How long an offer is held for its client, and a declined address kept
// out of the pool.
const (
	offerHold   = time.Minute
	declineHold = 10 * time.Minute
)

// maxExtraOptions bounds the bytes of Config.Options, so that a reply
// stays within a 576-byte message that every client accepts.
const maxExtraOptions = 200

// Config configures a Server.
type Config struct {
	// ServerAddr is the server's address on the link, sent as the server
	// identifier (option 54). It must be in Subnet.
	ServerAddr netip.Addr
	// Subnet is the link's IPv4 subnet (a /8 to a /30); its mask and
	// broadcast address go to every client.
	Subnet netip.Prefix
	// PoolStart and PoolEnd bound the leased addresses, both included.
	// Zero: every host address of Subnet. ServerAddr is never leased.
	PoolStart, PoolEnd netip.Addr
	// LeaseTime is how long a lease lasts (default 12 hours).
	LeaseTime time.Duration
	// Router is the default gateway given (option 3); zero gives none.
	Router netip.Addr
	// Routes are classless static routes (option 121). A client that gets
	// them ignores Router (RFC 3442).
	Routes []Route
	// DNS and NTP are the DNS (option 6) and NTP (option 42) servers.
	DNS, NTP []netip.Addr
	// Options are further options, sent as they are, by code. They may not
	// set an option the server sets itself.
	Options map[Option][]byte
	// Now is the server's clock (default time.Now).
	Now func() time.Time
	// Log receives a line for each message handled, when set.
	Log func(format string, args ...any)
	// OnLease is called after each acknowledgement that binds or renews a
	// lease.
	OnLease func(Lease)
}

// Lease is an address bound to a client.
type Lease struct {
	Addr         netip.Addr
	HardwareAddr net.HardwareAddr
	// ClientID is the client identifier the client sent (option 61), or
	// nil.
	ClientID []byte
	// Hostname is the host name the client sent (option 12), or "".
	Hostname string
	// Bound is when the server acknowledged it; Expires when it ends.
	Bound, Expires time.Time
}

// managed are the options the server sets itself.
var managed = []Option{OptPad, OptSubnetMask, OptRouter, OptDNS, OptBroadcastAddr, OptNTP,
	OptRequestedAddr, OptLeaseTime, OptOverload, OptMessageType, OptServerID, OptParamRequest,
	OptMessage, OptMaxMessageSize, OptRenewalTime, OptRebindingTime, OptClientID, OptClasslessRoutes, OptEnd}

// Validate checks c, reporting every problem at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !c.Subnet.IsValid() || !c.Subnet.Addr().Is4() || c.Subnet.Bits() < 8 || c.Subnet.Bits() > 30 {
		bad("dhcp4 config: subnet %s: want an IPv4 subnet from /8 to /30", c.Subnet)
	} else {
		if c.Subnet != c.Subnet.Masked() {
			bad("dhcp4 config: subnet %s has host bits set (want %s)", c.Subnet, c.Subnet.Masked())
		}
		if !c.ServerAddr.Is4() || !c.Subnet.Contains(c.ServerAddr) {
			bad("dhcp4 config: server address %s: want an IPv4 address in %s", c.ServerAddr, c.Subnet)
		}
		if c.PoolStart.IsValid() != c.PoolEnd.IsValid() {
			bad("dhcp4 config: pool %s-%s: set both ends or neither", c.PoolStart, c.PoolEnd)
		} else if c.PoolStart.IsValid() {
			if !c.Subnet.Contains(c.PoolStart) || !c.Subnet.Contains(c.PoolEnd) || c.PoolEnd.Less(c.PoolStart) {
				bad("dhcp4 config: pool %s-%s: want a range within %s", c.PoolStart, c.PoolEnd, c.Subnet)
			}
		}
	}
	if c.LeaseTime < 0 || c.LeaseTime > 365*24*time.Hour {
		bad("dhcp4 config: lease time %s: want up to a year", c.LeaseTime)
	}
	if c.Router.IsValid() && !c.Router.Is4() {
		bad("dhcp4 config: router %s: want IPv4", c.Router)
	}
	for _, set := range []struct {
		name  string
		addrs []netip.Addr
	}{{"DNS", c.DNS}, {"NTP", c.NTP}} {
		for _, a := range set.addrs {
			if !a.Is4() {
				bad("dhcp4 config: %s server %s: want IPv4", set.name, a)
			}
		}
		if len(set.addrs) > 8 {
			bad("dhcp4 config: %d %s servers: at most 8", len(set.addrs), set.name)
		}
	}
	if len(c.Routes) > 16 {
		bad("dhcp4 config: %d classless routes: at most 16", len(c.Routes))
	}
	if _, err := classlessRoutes(c.Routes...); err != nil {
		bad("dhcp4 config: %w", err)
	}
	extra := 0
	for code, v := range c.Options {
		if slices.Contains(managed, code) {
			bad("dhcp4 config: option %d is set by the server itself; use the Config field", code)
		}
		extra += 2*((len(v)+254)/255) + len(v)
	}
	if extra > maxExtraOptions {
		bad("dhcp4 config: further options take %d bytes, at most %d", extra, maxExtraOptions)
	}
	return errors.Join(errs...)
}

// Server leases addresses on one link. Use NewServer.
type Server struct {
	cfg Config
	// pool is every address the server may lease, in order.
	first, last netip.Addr

	mu       sync.Mutex
	bindings map[netip.Addr]*binding
	declined map[netip.Addr]time.Time
}

// binding is an address offered or bound to a client.
type binding struct {
	client string // clientKey
	bound  bool
	until  time.Time
	lease  Lease
}

// NewServer checks cfg, fills in its defaults and returns a server.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.LeaseTime == 0 {
		cfg.LeaseTime = 12 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, first: cfg.PoolStart, last: cfg.PoolEnd, bindings: map[netip.Addr]*binding{}, declined: map[netip.Addr]time.Time{}}
	if !s.first.IsValid() {
		s.first = cfg.Subnet.Addr().Next()
		s.last = broadcast(cfg.Subnet).Prev()
	}
	return s, nil
}

// broadcast returns the broadcast address of an IPv4 subnet.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

// mask returns the subnet mask of an IPv4 prefix length.
func mask(bits int) []byte {
	m := net.CIDRMask(bits, 32)
	return []byte(m)
}

// Leases returns the bound, unexpired leases, ordered by address.
func (s *Server) Leases() []Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	var out []Lease
	for _, b := range s.bindings {
		if b.bound && now.Before(b.until) {
			out = append(out, b.lease)
		}
	}
	slices.SortFunc(out, func(a, b Lease) int { return a.Addr.Compare(b.Addr) })
	return out
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Log != nil {
		s.cfg.Log(format, args...)
	}
}

// clientKey names a client: by its client identifier when it sends one,
// else by its hardware address.
func clientKey(m *Message) string {
	if id := m.Options[OptClientID]; len(id) > 0 {
		return "id:" + hex.EncodeToString(id)
	}
	return "hw:" + m.HardwareAddr.String()
}

// Serve answers the requests that arrive on conn (a UDP socket on port 67
// of the link, allowed to broadcast) until conn is closed; then it returns
// nil. Replies go to the client's address when it has one (ciaddr), else
// to the broadcast address.
func (s *Server) Serve(conn net.PacketConn) error {
	buf := make([]byte, MaxMessageSize+1)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("reading DHCP requests: %w", err)
		}
		req, err := Parse(buf[:n])
		if err != nil {
			s.logf("dhcp: ignoring %d bytes from %s: %v", n, from, err)
			continue
		}
		reply := s.Handle(req)
		if reply == nil {
			continue
		}
		dst := &net.UDPAddr{IP: net.IPv4bcast, Port: ClientPort}
		if req.ClientAddr.IsValid() && reply.Type() != Nak {
			dst = net.UDPAddrFromAddrPort(netip.AddrPortFrom(req.ClientAddr, ClientPort))
		}
		if _, err := conn.WriteTo(reply.Marshal(), dst); err != nil {
			s.logf("dhcp: sending %s to %s: %v", reply.Type(), dst, err)
		}
	}
}

// Handle answers one request and returns the reply, or nil when there is
// none to send (a release, a decline, a request meant for another server,
// anything that is not a client's request).
func (s *Server) Handle(req *Message) *Message {
	if req.Op != opRequest {
		return nil
	}
	if req.RelayAddr.IsValid() {
		s.logf("dhcp: ignoring %s from %s through relay %s: relays are not served", req.Type(), req.HardwareAddr, req.RelayAddr)
		return nil
	}
	reply, lease := s.handle(req)
	if lease != nil && s.cfg.OnLease != nil {
		s.cfg.OnLease(*lease)
	}
	return reply
}

func (s *Server) handle(req *Message) (*Message, *Lease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	key := clientKey(req)
	switch t := req.Type(); t {
	case Discover:
		a := s.choose(key, req.Addr(OptRequestedAddr), now)
		if !a.IsValid() {
			s.logf("dhcp: %s from %s: no free address", t, req.HardwareAddr)
			return nil, nil
		}
		if b := s.bindings[a]; b == nil || !b.bound {
			s.bindings[a] = &binding{client: key, until: now.Add(offerHold)}
		}
		s.logf("dhcp: %s from %s: offering %s", t, req.HardwareAddr, a)
		return s.reply(req, Offer, a), nil
	case Request:
		a, why := s.requested(key, req, now)
		if !a.IsValid() {
			if why == "" {
				return nil, nil
			}
			s.logf("dhcp: %s from %s: NAK: %s", t, req.HardwareAddr, why)
			return s.nak(req, why), nil
		}
		l := s.bind(key, a, req, now)
		s.logf("dhcp: %s from %s: ACK %s for %s", t, req.HardwareAddr, a, s.cfg.LeaseTime)
		return s.reply(req, Ack, a), &l
	case Decline:
		a := req.Addr(OptRequestedAddr)
		if b := s.bindings[a]; b != nil && b.client == key {
			delete(s.bindings, a)
			s.declined[a] = now.Add(declineHold)
			s.logf("dhcp: %s from %s: %s is in use on the link, kept out of the pool", t, req.HardwareAddr, a)
		}
		return nil, nil
	case Release:
		if b := s.bindings[req.ClientAddr]; b != nil && b.client == key {
			delete(s.bindings, req.ClientAddr)
			s.logf("dhcp: %s from %s: %s released", t, req.HardwareAddr, req.ClientAddr)
		}
		return nil, nil
	case Inform:
		s.logf("dhcp: %s from %s (%s)", t, req.HardwareAddr, req.ClientAddr)
		return s.reply(req, Ack, netip.Addr{}), nil
	default:
		s.logf("dhcp: ignoring %s from %s", t, req.HardwareAddr)
		return nil, nil
	}
}

// inPool reports whether a may be leased.
func (s *Server) inPool(a netip.Addr) bool {
	return a.Is4() && !a.Less(s.first) && !s.last.Less(a) && a != s.cfg.ServerAddr
}

// free reports whether a may be given to the client key now.
func (s *Server) free(a netip.Addr, key string, now time.Time) bool {
	if !s.inPool(a) {
		return false
	}
	if until, ok := s.declined[a]; ok && now.Before(until) {
		return false
	}
	b := s.bindings[a]
	return b == nil || b.client == key || !now.Before(b.until)
}

// held returns the address offered or bound to key, if any.
func (s *Server) held(key string, now time.Time) netip.Addr {
	for a, b := range s.bindings {
		if b.client == key && now.Before(b.until) {
			return a
		}
	}
	return netip.Addr{}
}

// choose picks the address to offer: the client's own, else the one it
// asks for when free, else the lowest free address.
func (s *Server) choose(key string, want netip.Addr, now time.Time) netip.Addr {
	if a := s.held(key, now); a.IsValid() {
		return a
	}
	if s.free(want, key, now) {
		return want
	}
	for a := s.first; a.IsValid() && !s.last.Less(a); a = a.Next() {
		if s.free(a, key, now) {
			return a
		}
	}
	return netip.Addr{}
}

// requested decides a DHCPREQUEST: the address to acknowledge, or the
// reason to refuse it ("" when the request is not for this server).
func (s *Server) requested(key string, req *Message, now time.Time) (netip.Addr, string) {
	want := req.Addr(OptRequestedAddr)
	if !want.IsValid() {
		want = req.ClientAddr
	}
	if id := req.Addr(OptServerID); id.IsValid() {
		// SELECTING: the client answers an offer.
		if id != s.cfg.ServerAddr {
			if b := s.bindings[want]; b != nil && b.client == key && !b.bound {
				delete(s.bindings, want)
			}
			return netip.Addr{}, ""
		}
		if b := s.bindings[want]; b != nil && b.client == key && now.Before(b.until) {
			return want, ""
		}
		return netip.Addr{}, fmt.Sprintf("%s was not offered to this client", want)
	}
	// INIT-REBOOT, RENEWING or REBINDING: the client asks to keep an
	// address. The server is the only one on the link, so it is
	// authoritative.
	switch {
	case !want.IsValid():
		return netip.Addr{}, "no address requested"
	case !s.cfg.Subnet.Contains(want):
		return netip.Addr{}, fmt.Sprintf("%s is not on this link (%s)", want, s.cfg.Subnet)
	case s.free(want, key, now):
		return want, ""
	}
	return netip.Addr{}, fmt.Sprintf("%s is not available", want)
}

// bind binds a to the client key for a lease time, dropping any other
// address the client held.
func (s *Server) bind(key string, a netip.Addr, req *Message, now time.Time) Lease {
	for other, b := range s.bindings {
		if b.client == key && other != a {
			delete(s.bindings, other)
		}
	}
	l := Lease{
		Addr:         a,
		HardwareAddr: slices.Clone(req.HardwareAddr),
		ClientID:     slices.Clone(req.Options[OptClientID]),
		Hostname:     string(req.Options[OptHostname]),
		Bound:        now,
		Expires:      now.Add(s.cfg.LeaseTime),
	}
	s.bindings[a] = &binding{client: key, bound: true, until: l.Expires, lease: l}
	return l
}

// reply builds an OFFER or ACK; yiaddr is zero for an ACK to an INFORM.
func (s *Server) reply(req *Message, t MessageType, yiaddr netip.Addr) *Message {
	m := &Message{
		Op:           opReply,
		XID:          req.XID,
		Flags:        req.Flags & flagBroadcast,
		YourAddr:     yiaddr,
		HardwareAddr: slices.Clone(req.HardwareAddr),
		Options:      map[Option][]byte{},
	}
	if t == Ack {
		m.ClientAddr = req.ClientAddr
	}
	o := m.Options
	o[OptMessageType] = []byte{byte(t)}
	o[OptServerID] = addrList(s.cfg.ServerAddr)
	o[OptSubnetMask] = mask(s.cfg.Subnet.Bits())
	o[OptBroadcastAddr] = addrList(broadcast(s.cfg.Subnet))
	if s.cfg.Router.IsValid() {
		o[OptRouter] = addrList(s.cfg.Router)
	}
	if len(s.cfg.Routes) > 0 {
		o[OptClasslessRoutes], _ = classlessRoutes(s.cfg.Routes...) // checked by Validate
	}
	if len(s.cfg.DNS) > 0 {
		o[OptDNS] = addrList(s.cfg.DNS...)
	}
	if len(s.cfg.NTP) > 0 {
		o[OptNTP] = addrList(s.cfg.NTP...)
	}
	if id := req.Options[OptClientID]; len(id) > 0 {
		o[OptClientID] = slices.Clone(id) // RFC 6842
	}
	if yiaddr.IsValid() {
		secs := func(d time.Duration) []byte { return binary.BigEndian.AppendUint32(nil, uint32(d/time.Second)) }
		o[OptLeaseTime] = secs(s.cfg.LeaseTime)
		o[OptRenewalTime] = secs(s.cfg.LeaseTime / 2)
		o[OptRebindingTime] = secs(s.cfg.LeaseTime * 7 / 8)
	}
	for code, v := range s.cfg.Options {
		o[code] = slices.Clone(v)
	}
	return m
}

// nak builds a DHCPNAK with the reason in option 56.
func (s *Server) nak(req *Message, why string) *Message {
	m := &Message{
		Op:           opReply,
		XID:          req.XID,
		Flags:        req.Flags & flagBroadcast,
		HardwareAddr: slices.Clone(req.HardwareAddr),
		Options: map[Option][]byte{
			OptMessageType: {byte(Nak)},
			OptServerID:    addrList(s.cfg.ServerAddr),
			OptMessage:     []byte(why),
		},
	}
	if id := req.Options[OptClientID]; len(id) > 0 {
		m.Options[OptClientID] = slices.Clone(id)
	}
	return m
}
