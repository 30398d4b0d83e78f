package ntp

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestTimestamp(t *testing.T) {
	tests := []struct {
		time time.Time
		want Timestamp
	}{
		{time.Unix(0, 0), Timestamp(2208988800) << 32},
		{time.Unix(0, 500_000_000), Timestamp(2208988800)<<32 | 1<<31},
		// The last second of era 0 and the first of era 1 (2036-02-07).
		{time.Date(2036, 2, 7, 6, 28, 15, 0, time.UTC), Timestamp(0xffffffff) << 32},
		{time.Date(2036, 2, 7, 6, 28, 16, 0, time.UTC), 0},
		{time.Date(2026, 12, 6, 4, 1, 34, 250_000_000, time.UTC), Timestamp(1796529694+2208988800)<<32 | 1<<30},
	}
	for _, tt := range tests {
		got := TimestampOf(tt.time)
		if got != tt.want {
			t.Errorf("TimestampOf(%s) = %#x, want %#x", tt.time, uint64(got), uint64(tt.want))
		}
		if back := got.Time(); !back.Equal(tt.time) {
			t.Errorf("%#x.Time() = %s, want %s", uint64(got), back, tt.time)
		}
	}
	// Nanoseconds survive to within the fraction's resolution.
	now := time.Date(2026, 5, 1, 0, 0, 0, 123_456_789, time.UTC)
	if d := TimestampOf(now).Time().Sub(now); d < -time.Nanosecond || d > time.Nanosecond {
		t.Errorf("round trip of %s is off by %s", now, d)
	}
}

// clientRequest is what an SNTP client sends: version 4, mode 3 and its
// transmit time; systemd-timesyncd puts nanoseconds, not a fraction, in
// the low word.
func clientRequest() []byte {
	b := make([]byte, PacketSize)
	b[0] = 4<<3 | ModeClient
	b[2] = 6
	copy(b[40:], []byte{0xec, 0x01, 0x02, 0x03, 0x3b, 0x9a, 0xc9, 0xff})
	return b
}

// checkAsTimesyncd applies systemd-timesyncd's checks of a reply
// (timesyncd-manager.c, manager_receive_response) and returns the
// problems found.
func checkAsTimesyncd(reply []byte, req []byte) []string {
	var bad []string
	if len(reply) != PacketSize {
		bad = append(bad, "reply is not exactly 48 bytes")
		return bad
	}
	p, err := Parse(reply)
	if err != nil {
		return []string{err.Error()}
	}
	if !bytes.Equal(reply[24:32], req[40:48]) {
		bad = append(bad, "origin is not the request's transmit timestamp")
	}
	// TIME_EPOCH: any recent build date; 2020 is earlier than all of them.
	epoch := uint32(time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC).Unix() + ntpEpochOffset)
	if uint32(p.Receive>>32) < epoch || uint32(p.Transmit>>32) < epoch {
		bad = append(bad, "times before the epoch")
	}
	if p.Leap == LeapNotInSync || p.Stratum == 0 || p.Stratum >= 16 {
		bad = append(bad, "server not synchronized")
	}
	if p.Version != 3 && p.Version != 4 {
		bad = append(bad, "version not 3 or 4")
	}
	if p.Mode != ModeServer {
		bad = append(bad, "mode not server")
	}
	rootDistance := float64(p.RootDelay)/65536/2 + float64(p.RootDispersion)/65536
	if rootDistance > 5 {
		bad = append(bad, "root distance over 5 s")
	}
	return bad
}

func TestReply(t *testing.T) {
	now := time.Date(2026, 12, 6, 4, 1, 34, 0, time.UTC)
	s := &Server{Now: func() time.Time { return now }}
	req := clientRequest()
	p, err := Parse(req)
	if err != nil {
		t.Fatal(err)
	}
	reply, ok := s.Reply(p, now.Add(-time.Millisecond))
	if !ok {
		t.Fatal("no reply to a client request")
	}
	b := reply.Marshal()
	if bad := checkAsTimesyncd(b, req); len(bad) > 0 {
		t.Errorf("systemd-timesyncd would refuse the reply: %s", strings.Join(bad, "; "))
	}
	if got := reply.Transmit.Time(); !got.Equal(now) {
		t.Errorf("transmit time %s, want %s", got, now)
	}
	if got := reply.Receive.Time(); !got.Equal(now.Add(-time.Millisecond)) {
		t.Errorf("receive time %s", got)
	}
	if reply.Poll != 6 {
		t.Errorf("poll %d, want the request's 6", reply.Poll)
	}
	for _, bad := range []struct {
		name string
		mod  func(*Packet)
	}{
		{"server mode", func(p *Packet) { p.Mode = ModeServer }},
		{"symmetric active", func(p *Packet) { p.Mode = 1 }},
		{"version 0", func(p *Packet) { p.Version = 0 }},
		{"version 5", func(p *Packet) { p.Version = 5 }},
	} {
		q := p
		bad.mod(&q)
		if _, ok := s.Reply(q, now); ok {
			t.Errorf("%s: answered", bad.name)
		}
	}
	// An NTPv3 client gets a v3 reply.
	q := p
	q.Version = 3
	if r, _ := s.Reply(q, now); r.Version != 3 {
		t.Errorf("v3 request answered with v%d", r.Version)
	}
}

func TestParse(t *testing.T) {
	req := clientRequest()
	p, err := Parse(req)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Marshal(), req) {
		t.Errorf("round trip changed the packet:\n%x\n%x", p.Marshal(), req)
	}
	withExtension := append(bytes.Clone(req), make([]byte, 20)...)
	if _, err := Parse(withExtension); err != nil {
		t.Errorf("a packet with a MAC: %v", err)
	}
	for name, b := range map[string][]byte{"short": req[:47], "empty": nil, "long": make([]byte, maxRequestSize+1)} {
		if _, err := Parse(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

// TestServe runs the server on a loopback UDP socket and queries it like
// a client: a reply within the time of the query, and a malformed packet
// ignored without stopping the server.
func TestServe(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Log: t.Logf}
	done := make(chan error, 1)
	go func() { done <- s.Serve(pc) }()
	c, err := net.Dial("udp4", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("not ntp")); err != nil {
		t.Fatal(err)
	}
	req := clientRequest()
	before := time.Now()
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	if bad := checkAsTimesyncd(buf[:n], req); len(bad) > 0 {
		t.Errorf("systemd-timesyncd would refuse the reply: %s", strings.Join(bad, "; "))
	}
	p, _ := Parse(buf[:n])
	if tx := p.Transmit.Time(); tx.Before(before.Add(-time.Millisecond)) || tx.After(after.Add(time.Millisecond)) {
		t.Errorf("transmit time %s outside the query's %s to %s", tx, before, after)
	}
	if s.Requests() != 1 {
		t.Errorf("Requests() = %d, want 1", s.Requests())
	}
	pc.Close()
	if err := <-done; err != nil {
		t.Errorf("Serve after close: %v", err)
	}
}
