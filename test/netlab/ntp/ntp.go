// Package ntp is a minimal SNTP server for nodebake's network labs: it
// answers NTP client requests (mode 3, versions 1 to 4) with the time of
// its clock as a stratum 1 server, in the NTPv4 packet format (RFC 5905;
// SNTP is RFC 4330). That is what systemd-timesyncd and other SNTP
// clients need to set a guest's clock.
package ntp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"time"
)

// Port is NTP's UDP port.
const Port = 123

// PacketSize is the size of an NTP packet without extension fields. Replies
// are exactly this long: systemd-timesyncd drops a longer one as truncated.
const PacketSize = 48

// maxRequestSize bounds a request read: the header, extension fields and
// a MAC fit well within it.
const maxRequestSize = 1024

// Modes of the packet's first byte.
const (
	ModeClient = 3
	ModeServer = 4
)

// LeapNotInSync is the leap indicator of an unsynchronized clock.
const LeapNotInSync = 3

// Timestamp is an NTP timestamp: seconds since 1900-01-01 UTC in the high
// 32 bits, the fraction of a second in the low 32 bits.
type Timestamp uint64

// ntpEpochOffset is the seconds from 1900-01-01 to 1970-01-01.
const ntpEpochOffset = 2208988800

// TimestampOf converts t to an NTP timestamp (era 0 or 1; the seconds
// wrap in 2036, as RFC 4330 section 3 describes).
func TimestampOf(t time.Time) Timestamp {
	secs := uint64(t.Unix() + ntpEpochOffset)
	frac := (uint64(t.Nanosecond()) << 32) / 1e9
	return Timestamp(secs<<32 | frac&0xffffffff)
}

// Time converts ts to a time: seconds with the high bit set are in
// 1968-2036, the others in 2036-2104 (RFC 4330 section 3).
func (ts Timestamp) Time() time.Time {
	secs := int64(ts >> 32)
	if secs&0x80000000 == 0 {
		secs += 1 << 32
	}
	nanos := (int64(ts&0xffffffff)*1e9 + 1<<31) >> 32
	return time.Unix(secs-ntpEpochOffset, nanos).UTC()
}

// Packet is an NTP packet header.
type Packet struct {
	Leap, Version, Mode uint8
	Stratum             uint8
	// Poll and Precision are log2 seconds.
	Poll, Precision int8
	// RootDelay and RootDispersion are in NTP short format (16.16 seconds).
	RootDelay, RootDispersion uint32
	// RefID is a reference clock code for stratum 1 ("LOCL", "GPS").
	RefID [4]byte
	// Reference, Origin, Receive and Transmit timestamps. The server
	// copies the client's Transmit into Origin as it is: clients check
	// that cookie, and systemd-timesyncd does not even keep a real
	// fraction in it.
	Reference, Origin, Receive, Transmit Timestamp
}

// ErrMalformed is wrapped by Parse's errors.
var ErrMalformed = errors.New("malformed NTP packet")

// Parse decodes an NTP packet header. Extension fields and a MAC after the
// 48-byte header are allowed and ignored; the whole packet may be at most
// 1024 bytes.
func Parse(b []byte) (Packet, error) {
	if len(b) < PacketSize {
		return Packet{}, fmt.Errorf("%w: %d bytes, want at least %d", ErrMalformed, len(b), PacketSize)
	}
	if len(b) > maxRequestSize {
		return Packet{}, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformed, len(b), maxRequestSize)
	}
	ts := func(off int) Timestamp { return Timestamp(binary.BigEndian.Uint64(b[off:])) }
	return Packet{
		Leap:           b[0] >> 6,
		Version:        b[0] >> 3 & 7,
		Mode:           b[0] & 7,
		Stratum:        b[1],
		Poll:           int8(b[2]),
		Precision:      int8(b[3]),
		RootDelay:      binary.BigEndian.Uint32(b[4:]),
		RootDispersion: binary.BigEndian.Uint32(b[8:]),
		RefID:          [4]byte(b[12:16]),
		Reference:      ts(16),
		Origin:         ts(24),
		Receive:        ts(32),
		Transmit:       ts(40),
	}, nil
}

// Marshal encodes p as a 48-byte packet.
func (p Packet) Marshal() []byte {
	b := make([]byte, PacketSize)
	b[0] = p.Leap<<6 | (p.Version&7)<<3 | p.Mode&7
	b[1] = p.Stratum
	b[2] = byte(p.Poll)
	b[3] = byte(p.Precision)
	binary.BigEndian.PutUint32(b[4:], p.RootDelay)
	binary.BigEndian.PutUint32(b[8:], p.RootDispersion)
	copy(b[12:16], p.RefID[:])
	for i, ts := range []Timestamp{p.Reference, p.Origin, p.Receive, p.Transmit} {
		binary.BigEndian.PutUint64(b[16+8*i:], uint64(ts))
	}
	return b
}

// Server answers NTP client requests. The zero Server serves the host's
// time.
type Server struct {
	// Now is the server's clock (default time.Now).
	Now func() time.Time
	// Log receives a line for each request refused, when set.
	Log func(format string, args ...any)

	requests atomic.Int64
}

// Requests returns how many requests the server has answered.
func (s *Server) Requests() int64 { return s.requests.Load() }

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Reply answers a request received at received, or reports false for a
// packet that is not a client request (mode 3, version 1 to 4).
func (s *Server) Reply(req Packet, received time.Time) (Packet, bool) {
	if req.Mode != ModeClient || req.Version < 1 || req.Version > 4 {
		return Packet{}, false
	}
	now := s.now()
	return Packet{
		Version:   req.Version,
		Mode:      ModeServer,
		Stratum:   1,
		Poll:      req.Poll,
		Precision: -20,
		// A root distance of about 1 ms: the server is its own reference.
		RootDispersion: 1 << 16 / 1000,
		RefID:          [4]byte{'L', 'O', 'C', 'L'},
		Reference:      TimestampOf(now.Truncate(time.Second)),
		Origin:         req.Transmit,
		Receive:        TimestampOf(received),
		Transmit:       TimestampOf(now),
	}, true
}

// Serve answers the requests that arrive on conn until conn is closed;
// then it returns nil.
func (s *Server) Serve(conn net.PacketConn) error {
	buf := make([]byte, maxRequestSize+1)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("reading NTP requests: %w", err)
		}
		received := s.now()
		req, err := Parse(buf[:n])
		if err != nil {
			s.logf("ntp: ignoring %d bytes from %s: %v", n, from, err)
			continue
		}
		reply, ok := s.Reply(req, received)
		if !ok {
			s.logf("ntp: ignoring mode %d version %d from %s", req.Mode, req.Version, from)
			continue
		}
		// Counted before the reply leaves: a client that has the reply
		// must find it counted.
		s.requests.Add(1)
		if _, err := conn.WriteTo(reply.Marshal(), from); err != nil {
			s.requests.Add(-1)
			s.logf("ntp: answering %s: %v", from, err)
			continue
		}
	}
}

func (s *Server) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log(format, args...)
	}
}
