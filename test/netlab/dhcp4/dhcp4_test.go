package dhcp4

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	mac1 = net.HardwareAddr{0x52, 0x54, 0x00, 0x01, 0x02, 0x03}
	mac2 = net.HardwareAddr{0x52, 0x54, 0x00, 0x0a, 0x0b, 0x0c}
	gw   = netip.MustParseAddr("10.77.0.1")
	ntp  = netip.MustParseAddr("10.77.0.1")
)

// clock is a settable clock for the server.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newServer(t *testing.T, mod func(*Config)) (*Server, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	cfg := Config{
		ServerAddr: gw,
		Subnet:     netip.MustParsePrefix("10.77.0.0/24"),
		Router:     gw,
		DNS:        []netip.Addr{gw},
		NTP:        []netip.Addr{ntp},
		LeaseTime:  time.Hour,
		Now:        clk.now,
		Log:        t.Logf,
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, clk
}

// request builds a client message.
func request(t MessageType, mac net.HardwareAddr, xid uint32, opts map[Option][]byte) *Message {
	m := &Message{Op: opRequest, XID: xid, HardwareAddr: mac, Options: map[Option][]byte{OptMessageType: {byte(t)}}}
	for k, v := range opts {
		m.Options[k] = v
	}
	return m
}

// roundTrip sends m through the wire format, as the server sees it.
func roundTrip(t *testing.T, m *Message) *Message {
	t.Helper()
	p, err := Parse(m.Marshal())
	if err != nil {
		t.Fatalf("parsing a marshalled %s: %v", m.Type(), err)
	}
	return p
}

func ip4(s string) []byte { a := netip.MustParseAddr(s).As4(); return a[:] }

func TestExchange(t *testing.T) {
	var leases []Lease
	s, _ := newServer(t, func(c *Config) {
		c.Options = map[Option][]byte{245: ip4("168.63.129.16")}
		c.OnLease = func(l Lease) { leases = append(leases, l) }
	})
	clientID := []byte{0xff, 0, 0, 0, 1, 0, 2}
	offer := s.Handle(roundTrip(t, request(Discover, mac1, 7, map[Option][]byte{OptClientID: clientID})))
	if offer == nil {
		t.Fatal("no offer")
	}
	offer = roundTrip(t, offer)
	if offer.Type() != Offer || offer.XID != 7 || offer.Op != opReply || !bytes.Equal(offer.HardwareAddr, mac1) {
		t.Fatalf("offer = %+v", offer)
	}
	want := netip.MustParseAddr("10.77.0.2")
	if offer.YourAddr != want {
		t.Errorf("offered %s, want %s (the lowest free address)", offer.YourAddr, want)
	}
	wantOpts := map[Option][]byte{
		OptMessageType:   {byte(Offer)},
		OptServerID:      ip4("10.77.0.1"),
		OptSubnetMask:    {255, 255, 255, 0},
		OptBroadcastAddr: ip4("10.77.0.255"),
		OptRouter:        ip4("10.77.0.1"),
		OptDNS:           ip4("10.77.0.1"),
		OptNTP:           ip4("10.77.0.1"),
		OptLeaseTime:     {0, 0, 0x0e, 0x10},
		OptRenewalTime:   {0, 0, 0x07, 0x08},
		OptRebindingTime: {0, 0, 0x0c, 0x4e},
		OptClientID:      clientID,
		245:              ip4("168.63.129.16"),
	}
	if d := cmp.Diff(wantOpts, offer.Options); d != "" {
		t.Errorf("offer options (-want +got):\n%s", d)
	}
	if len(leases) != 0 {
		t.Errorf("a lease was reported on the offer: %+v", leases)
	}

	ack := s.Handle(roundTrip(t, request(Request, mac1, 8, map[Option][]byte{
		OptClientID: clientID, OptServerID: ip4("10.77.0.1"), OptRequestedAddr: ip4("10.77.0.2"), OptHostname: []byte("node-1"),
	})))
	if ack == nil || ack.Type() != Ack || ack.YourAddr != want || ack.XID != 8 {
		t.Fatalf("ack = %+v", ack)
	}
	if len(leases) != 1 || leases[0].Addr != want || leases[0].Hostname != "node-1" || !bytes.Equal(leases[0].ClientID, clientID) {
		t.Fatalf("leases reported = %+v", leases)
	}
	if got := s.Leases(); len(got) != 1 || got[0].Addr != want {
		t.Errorf("Leases() = %+v", got)
	}

	// A second client gets the next address; the first keeps its own on
	// a new discover.
	if o := s.Handle(request(Discover, mac2, 9, nil)); o == nil || o.YourAddr != netip.MustParseAddr("10.77.0.3") {
		t.Errorf("second client offered %+v", o)
	}
	if o := s.Handle(request(Discover, mac1, 10, map[Option][]byte{OptClientID: clientID})); o == nil || o.YourAddr != want {
		t.Errorf("first client, again, offered %+v", o)
	}

	// Renewing: unicast from the bound address, no server id.
	renew := request(Request, mac1, 11, map[Option][]byte{OptClientID: clientID})
	renew.ClientAddr = want
	if a := s.Handle(renew); a == nil || a.Type() != Ack || a.ClientAddr != want || a.YourAddr != want {
		t.Errorf("renewal answered %+v", a)
	}
	if len(leases) != 2 {
		t.Errorf("the renewal was not reported: %d leases", len(leases))
	}

	// Release frees the address for others.
	rel := request(Release, mac1, 12, map[Option][]byte{OptClientID: clientID})
	rel.ClientAddr = want
	if r := s.Handle(rel); r != nil {
		t.Errorf("release answered %+v", r)
	}
	if got := s.Leases(); len(got) != 0 {
		t.Errorf("after release, leases %+v", got)
	}
}

func TestRequestRefused(t *testing.T) {
	s, clk := newServer(t, nil)
	s.Handle(request(Discover, mac1, 1, nil))
	tests := []struct {
		name    string
		mac     net.HardwareAddr
		ciaddr  string
		opts    map[Option][]byte
		wantNak string // "" for no reply
	}{
		{"another server chosen", mac1, "", map[Option][]byte{OptServerID: ip4("10.77.0.9"), OptRequestedAddr: ip4("10.77.0.2")}, ""},
		{"an address not offered", mac1, "", map[Option][]byte{OptServerID: ip4("10.77.0.1"), OptRequestedAddr: ip4("10.77.0.7")}, "was not offered"},
		{"another client's offer", mac2, "", map[Option][]byte{OptServerID: ip4("10.77.0.1"), OptRequestedAddr: ip4("10.77.0.2")}, "was not offered"},
		{"init-reboot off the link", mac1, "", map[Option][]byte{OptRequestedAddr: ip4("192.168.9.9")}, "not on this link"},
		{"init-reboot without an address", mac1, "", nil, "no address requested"},
		{"renewing the server's own address", mac2, "10.77.0.1", nil, "not available"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request(Request, tt.mac, 2, tt.opts)
			if tt.ciaddr != "" {
				req.ClientAddr = netip.MustParseAddr(tt.ciaddr)
			}
			reply := s.Handle(req)
			if tt.wantNak == "" {
				if reply != nil {
					t.Fatalf("reply %+v, want none", reply)
				}
				return
			}
			if reply == nil || reply.Type() != Nak {
				t.Fatalf("reply %+v, want a NAK", reply)
			}
			if reply.YourAddr.IsValid() || reply.ClientAddr.IsValid() || reply.Options[OptLeaseTime] != nil {
				t.Errorf("NAK carries an address or lease: %+v", reply)
			}
			if msg := string(reply.Options[OptMessage]); !strings.Contains(msg, tt.wantNak) {
				t.Errorf("NAK message %q, want one containing %q", msg, tt.wantNak)
			}
		})
	}
	// The first case dropped mac1's offer: another client may now take it.
	if o := s.Handle(request(Discover, mac2, 3, nil)); o == nil || o.YourAddr != netip.MustParseAddr("10.77.0.2") {
		t.Errorf("after the client chose another server, offer %+v", o)
	}
	// An offer not taken up expires.
	clk.add(2 * offerHold)
	if o := s.Handle(request(Discover, mac1, 4, nil)); o == nil || o.YourAddr != netip.MustParseAddr("10.77.0.2") {
		t.Errorf("after the offer expired, offer %+v", o)
	}
}

func TestInitReboot(t *testing.T) {
	s, _ := newServer(t, nil)
	req := request(Request, mac1, 1, map[Option][]byte{OptRequestedAddr: ip4("10.77.0.50")})
	if a := s.Handle(req); a == nil || a.Type() != Ack || a.YourAddr != netip.MustParseAddr("10.77.0.50") {
		t.Fatalf("init-reboot for a free address answered %+v", a)
	}
	req2 := request(Request, mac2, 2, map[Option][]byte{OptRequestedAddr: ip4("10.77.0.50")})
	if a := s.Handle(req2); a == nil || a.Type() != Nak {
		t.Fatalf("init-reboot for another client's address answered %+v", a)
	}
}

func TestPoolAndDecline(t *testing.T) {
	s, clk := newServer(t, func(c *Config) {
		c.PoolStart = netip.MustParseAddr("10.77.0.1")
		c.PoolEnd = netip.MustParseAddr("10.77.0.2")
	})
	o := s.Handle(request(Discover, mac1, 1, nil))
	if o == nil || o.YourAddr != netip.MustParseAddr("10.77.0.2") {
		t.Fatalf("offer %+v: want 10.77.0.2 (the pool without the server's address)", o)
	}
	s.Handle(request(Request, mac1, 2, map[Option][]byte{OptServerID: ip4("10.77.0.1"), OptRequestedAddr: ip4("10.77.0.2")}))
	if o := s.Handle(request(Discover, mac2, 3, nil)); o != nil {
		t.Fatalf("pool exhausted, yet offered %+v", o)
	}
	// The client finds the address in use and declines it: it stays out
	// of the pool for a while.
	s.Handle(request(Decline, mac1, 4, map[Option][]byte{OptRequestedAddr: ip4("10.77.0.2")}))
	if o := s.Handle(request(Discover, mac2, 5, nil)); o != nil {
		t.Fatalf("declined address offered %+v", o)
	}
	clk.add(declineHold + time.Second)
	if o := s.Handle(request(Discover, mac2, 6, nil)); o == nil || o.YourAddr != netip.MustParseAddr("10.77.0.2") {
		t.Fatalf("after the decline hold, offer %+v", o)
	}
}

func TestIgnored(t *testing.T) {
	s, _ := newServer(t, nil)
	relayed := request(Discover, mac1, 1, nil)
	relayed.RelayAddr = netip.MustParseAddr("10.1.1.1")
	reply := request(Offer, mac1, 2, nil)
	reply.Op = opReply
	noType := request(Discover, mac1, 3, nil)
	delete(noType.Options, OptMessageType)
	for name, m := range map[string]*Message{"relayed": relayed, "a reply": reply, "no message type": noType, "an offer from a client": request(Offer, mac1, 4, nil)} {
		if r := s.Handle(m); r != nil {
			t.Errorf("%s answered %+v", name, r)
		}
	}
}

func TestInform(t *testing.T) {
	s, _ := newServer(t, nil)
	req := request(Inform, mac1, 1, nil)
	req.ClientAddr = netip.MustParseAddr("10.77.0.9")
	r := s.Handle(req)
	if r == nil || r.Type() != Ack || r.YourAddr.IsValid() || r.Options[OptLeaseTime] != nil || r.Options[OptNTP] == nil {
		t.Fatalf("inform answered %+v", r)
	}
}

func TestClasslessRoutes(t *testing.T) {
	s, _ := newServer(t, func(c *Config) {
		c.Router = netip.Addr{}
		c.Routes = []Route{
			{netip.MustParsePrefix("169.254.169.254/32"), gw},
			{netip.MustParsePrefix("168.63.0.0/16"), gw},
			{netip.MustParsePrefix("0.0.0.0/0"), gw},
		}
	})
	o := s.Handle(request(Discover, mac1, 1, nil))
	want := []byte{32, 169, 254, 169, 254, 10, 77, 0, 1, 16, 168, 63, 10, 77, 0, 1, 0, 10, 77, 0, 1}
	if !bytes.Equal(o.Options[OptClasslessRoutes], want) {
		t.Errorf("option 121 = %v, want %v", o.Options[OptClasslessRoutes], want)
	}
	if o.Options[OptRouter] != nil {
		t.Errorf("router option given without a Router")
	}
}

func TestValidate(t *testing.T) {
	ok := Config{ServerAddr: gw, Subnet: netip.MustParsePrefix("10.77.0.0/24")}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"ipv6 subnet", func(c *Config) { c.Subnet = netip.MustParsePrefix("fd00::/64") }, "subnet fd00::/64"},
		{"tiny subnet", func(c *Config) { c.Subnet = netip.MustParsePrefix("10.77.0.0/31") }, "/8 to /30"},
		{"host bits", func(c *Config) { c.Subnet = netip.MustParsePrefix("10.77.0.1/24") }, "host bits"},
		{"server off the subnet", func(c *Config) { c.ServerAddr = netip.MustParseAddr("10.78.0.1") }, "server address 10.78.0.1"},
		{"half a pool", func(c *Config) { c.PoolStart = gw }, "both ends"},
		{"pool off the subnet", func(c *Config) {
			c.PoolStart, c.PoolEnd = netip.MustParseAddr("10.77.0.10"), netip.MustParseAddr("10.77.1.10")
		}, "within 10.77.0.0/24"},
		{"ipv6 ntp", func(c *Config) { c.NTP = []netip.Addr{netip.MustParseAddr("::1")} }, "NTP server ::1"},
		{"managed option", func(c *Config) { c.Options = map[Option][]byte{OptNTP: {1, 2, 3, 4}} }, "option 42 is set by the server"},
		{"huge option", func(c *Config) { c.Options = map[Option][]byte{200: make([]byte, 300)} }, "at most 200"},
		{"ipv6 route", func(c *Config) { c.Routes = []Route{{netip.MustParsePrefix("fd00::/8"), gw}} }, "want IPv4"},
	}
	if err := ok.Validate(); err != nil {
		t.Fatalf("a good config: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
			if _, err := NewServer(c); err == nil {
				t.Error("NewServer accepted it")
			}
		})
	}
}

func TestParseRefuses(t *testing.T) {
	good := request(Discover, mac1, 1, map[Option][]byte{OptHostname: []byte("x")}).Marshal()
	opts := MinMessageSize
	tests := []struct {
		name string
		b    func() []byte
		want string
	}{
		{"short", func() []byte { return good[:MinMessageSize-1] }, "at least"},
		{"long", func() []byte { return append(bytes.Clone(good), make([]byte, MaxMessageSize)...) }, "more than"},
		{"bad op", func() []byte { b := bytes.Clone(good); b[0] = 3; return b }, "op 3"},
		{"not ethernet", func() []byte { b := bytes.Clone(good); b[1] = 6; return b }, "hardware type"},
		{"no cookie", func() []byte { b := bytes.Clone(good); b[fixedSize] = 0; return b }, "magic cookie"},
		{"option past the end", func() []byte { b := bytes.Clone(good[:opts+3]); b[opts+1] = 200; return b }, "runs past the end"},
		{"option without length", func() []byte { b := bytes.Clone(good[:opts+1]); b[opts] = 12; return b }, "no length"},
		{"no end", func() []byte { b := bytes.Clone(good[:opts+3]); b[opts], b[opts+1] = 53, 1; return b }, "no end option"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.b())
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrMalformed containing %q", err, tt.want)
			}
		})
	}
}

func TestMarshalLongOption(t *testing.T) {
	m := request(Discover, mac1, 1, map[Option][]byte{200: bytes.Repeat([]byte{7}, 600)})
	b := m.Marshal()
	p, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Options[200], m.Options[200]) {
		t.Errorf("a 600-byte option came back as %d bytes", len(p.Options[200]))
	}
	if b[MinMessageSize] != byte(OptMessageType) {
		t.Errorf("first option %d, want the message type", b[MinMessageSize])
	}
	if short := request(Discover, mac1, 1, nil).Marshal(); len(short) != minReplySize {
		t.Errorf("short message is %d bytes, want padding to %d", len(short), minReplySize)
	}
}

// recordConn is a PacketConn that serves queued requests and records
// what the server writes.
type recordConn struct {
	net.PacketConn
	in     chan []byte
	mu     sync.Mutex
	writes []write
	closed chan struct{}
	once   sync.Once
}

type write struct {
	to   string
	data []byte
}

func (c *recordConn) ReadFrom(b []byte) (int, net.Addr, error) {
	select {
	case p := <-c.in:
		return copy(b, p), &net.UDPAddr{IP: net.IPv4zero, Port: ClientPort}, nil
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

func (c *recordConn) WriteTo(b []byte, a net.Addr) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, write{a.String(), bytes.Clone(b)})
	return len(b), nil
}

func (c *recordConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

// TestServe checks where replies go: broadcast to a client without an
// address, unicast to one with an address, broadcast for a NAK. The real
// sockets are exercised by the lab's tests and the guest's DHCP client.
func TestServe(t *testing.T) {
	s, _ := newServer(t, nil)
	conn := &recordConn{in: make(chan []byte, 8), closed: make(chan struct{})}
	done := make(chan error)
	go func() { done <- s.Serve(conn) }()
	renew := request(Request, mac1, 3, nil)
	renew.ClientAddr = netip.MustParseAddr("10.77.0.2")
	bad := request(Request, mac2, 4, nil)
	bad.ClientAddr = netip.MustParseAddr("10.77.0.2")
	conn.in <- []byte("garbage")
	conn.in <- request(Discover, mac1, 1, nil).Marshal()
	conn.in <- request(Request, mac1, 2, map[Option][]byte{OptServerID: ip4("10.77.0.1"), OptRequestedAddr: ip4("10.77.0.2")}).Marshal()
	conn.in <- renew.Marshal()
	conn.in <- bad.Marshal()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn.mu.Lock()
		n := len(conn.writes)
		conn.mu.Unlock()
		if n == 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	conn.Close()
	if err := <-done; err != nil {
		t.Fatalf("Serve after close: %v", err)
	}
	want := []struct {
		to string
		t  MessageType
	}{{"255.255.255.255:68", Offer}, {"255.255.255.255:68", Ack}, {"10.77.0.2:68", Ack}, {"255.255.255.255:68", Nak}}
	if len(conn.writes) != len(want) {
		t.Fatalf("%d replies, want %d", len(conn.writes), len(want))
	}
	for i, w := range want {
		m, err := Parse(conn.writes[i].data)
		if err != nil {
			t.Fatalf("reply %d: %v", i, err)
		}
		if conn.writes[i].to != w.to || m.Type() != w.t {
			t.Errorf("reply %d: %s to %s, want %s to %s", i, m.Type(), conn.writes[i].to, w.t, w.to)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(request(Discover, mac1, 1, map[Option][]byte{OptClientID: {1, 2, 3}}).Marshal())
	f.Add(request(Request, mac2, 2, map[Option][]byte{200: make([]byte, 400)}).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		again, err := Parse(m.Marshal())
		if err != nil {
			t.Fatalf("re-parsing a marshalled message: %v", err)
		}
		if m.XID != again.XID || m.Type() != again.Type() || !bytes.Equal(m.HardwareAddr, again.HardwareAddr) || len(m.Options) != len(again.Options) {
			t.Fatalf("round trip changed the message: %+v -> %+v", m, again)
		}
		s, _ := newServer(t, nil)
		s.cfg.Log = nil
		s.Handle(m)
	})
}
