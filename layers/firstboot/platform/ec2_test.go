package platform

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeIMDS plays EC2's instance metadata service with IMDSv2 required, as
// AWS documents it and amazon-ec2-metadata-mock -I implements it: PUT
// /latest/api/token needs a TTL header of 1-21600 (400 otherwise) and
// answers a token; GET /latest/user-data needs a known token (401
// otherwise) and answers the user data, or 404 when there is none.
type fakeIMDS struct {
	mu       sync.Mutex
	userData []byte // nil: no user data
	disabled bool   // 403 on the token request
	fail     int    // answer this many requests with 503 first
	slow     time.Duration
	revoke   int // reject this many valid tokens with 401 (expired)
	chunked  bool
	tokens   map[string]bool
	seq      int
	requests []string
}

func (f *fakeIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	if f.fail > 0 {
		f.fail--
		f.mu.Unlock()
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	slow := f.slow
	f.mu.Unlock()
	if slow > 0 {
		select {
		case <-time.After(slow):
		case <-r.Context().Done():
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/latest/api/token":
		if r.Method != http.MethodPut {
			http.Error(w, "", http.StatusMethodNotAllowed)
			return
		}
		if f.disabled {
			http.Error(w, "", http.StatusForbidden)
			return
		}
		ttl, err := strconv.Atoi(r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"))
		if err != nil || ttl < 1 || ttl > 21600 {
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		f.seq++
		tok := fmt.Sprintf("AQAEAFake-token-%d==", f.seq)
		if f.tokens == nil {
			f.tokens = map[string]bool{}
		}
		f.tokens[tok] = true
		w.Header().Set("X-aws-ec2-metadata-token-ttl-seconds", strconv.Itoa(ttl))
		fmt.Fprint(w, tok)
	case "/latest/user-data":
		if r.Method != http.MethodGet {
			http.Error(w, "", http.StatusMethodNotAllowed)
			return
		}
		tok := r.Header.Get("X-aws-ec2-metadata-token")
		if !f.tokens[tok] {
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
		if f.revoke > 0 {
			f.revoke--
			delete(f.tokens, tok)
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
		if f.userData == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		if f.chunked {
			w.Write(f.userData[:len(f.userData)/2])
			w.(http.Flusher).Flush()
			w.Write(f.userData[len(f.userData)/2:])
			return
		}
		w.Write(f.userData)
	default:
		http.NotFound(w, r)
	}
}

func TestEC2(t *testing.T) {
	tests := []struct {
		name     string
		imds     *fakeIMDS
		maxSize  int64
		want     []byte
		err      error  // for errors.Is, when an error is wanted
		msg      string // in the error
		requests int    // 0: not checked
	}{
		{"user data", &fakeIMDS{userData: nodeConfig}, 0, nodeConfig, nil, "", 2},
		{"gzip user data", &fakeIMDS{userData: gz(t, nodeConfig)}, 0, nodeConfig, nil, "", 2},
		{"chunked answer", &fakeIMDS{userData: nodeConfig, chunked: true}, 0, nodeConfig, nil, "", 2},
		{"5xx then success", &fakeIMDS{userData: nodeConfig, fail: 3}, 0, nodeConfig, nil, "", 5},
		{"expired token is replaced", &fakeIMDS{userData: nodeConfig, revoke: 1}, 0, nodeConfig, nil, "", 4},
		{"tokens keep being refused", &fakeIMDS{userData: nodeConfig, revoke: 10}, 0, nil, nil, "refused 3 times (401)", 6},
		{"no user data", &fakeIMDS{}, 0, nil, ErrNoData, "ec2: no node config from any source (ec2-imds user-data: no user data (404))", 2},
		{"IMDS disabled", &fakeIMDS{userData: nodeConfig, disabled: true}, 0, nil, ErrIMDSDisabled, "disabled", 1},
		{"oversized", &fakeIMDS{userData: make([]byte, 70_000)}, 64 << 10, nil, nil, "more than 65536", 2},
		{"oversized chunked", &fakeIMDS{userData: make([]byte, 70_000), chunked: true}, 64 << 10, nil, nil, "more than 65536", 2},
		{"gzip bomb", &fakeIMDS{userData: bomb(t, 10<<20)}, 64 << 10, nil, nil, "decompressing gzip: more than 65536 bytes", 2},
		{"corrupt gzip", &fakeIMDS{userData: append([]byte{0x1f, 0x8b}, []byte(secret)...)}, 0, nil, nil, "decompressing gzip", 2},
		{"slow server past the deadline", &fakeIMDS{userData: nodeConfig, slow: 10 * time.Second}, 0, nil, ErrTimeout, "gave up after", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.imds)
			defer srv.Close()
			m := newMachine(t, dmiNitro, "")
			var log syncBuffer
			opts := m.options(srv.URL, &log)
			if tt.maxSize != 0 {
				opts.MaxSize = tt.maxSize
			}
			if tt.imds.slow > 0 {
				opts.Timeout, opts.AttemptTimeout = 600*time.Millisecond, 150*time.Millisecond
			}
			d, c, err := Lookup(context.Background(), opts)
			if d.Platform != EC2 {
				t.Fatalf("platform %s, want ec2", d.Platform)
			}
			noSecret(t, "the log", log.String())
			if err != nil {
				noSecret(t, "the error", err.Error())
			}
			if tt.want != nil {
				if err != nil || string(c.Data) != string(tt.want) || c.Source != "ec2-imds user-data" {
					t.Fatalf("Lookup = %q from %q, %v; want the node config from ec2-imds user-data", c.Data, c.Source, err)
				}
			} else {
				var pe *Error
				if !errors.As(err, &pe) || pe.Platform != EC2 {
					t.Fatalf("Lookup: %v, want a platform error", err)
				}
				if (tt.err != nil && !errors.Is(err, tt.err)) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("Lookup: %v, want %v with %q", err, tt.err, tt.msg)
				}
			}
			tt.imds.mu.Lock()
			defer tt.imds.mu.Unlock()
			if tt.requests != 0 && len(tt.imds.requests) != tt.requests {
				t.Errorf("%d requests %v, want %d", len(tt.imds.requests), tt.imds.requests, tt.requests)
			}
			if tt.imds.fail > 0 || tt.name == "5xx then success" {
				if !strings.Contains(log.String(), "attempt 1 failed (503 Service Unavailable)") {
					t.Errorf("no log line for the retried 503: %q", log.String())
				}
			}
		})
	}
}

// TestEC2ConnectionRefused: nothing listens, so every attempt is refused
// and retried until the time limit; the error names the source and the
// last problem.
func TestEC2ConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	m := newMachine(t, dmiNitro, "nodebake.timeout=1")
	var log syncBuffer
	opts := m.options("http://"+addr, &log)
	_, _, err = Lookup(context.Background(), opts)
	if !errors.Is(err, ErrTimeout) || !strings.HasPrefix(err.Error(), "ec2-imds user-data: asking for a session token: ") ||
		!strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("Lookup: %v; want a timeout naming the source and the refused connection", err)
	}
	if n := strings.Count(log.String(), "failed"); n < 3 {
		t.Errorf("%d retries logged in 1s, want several:\n%s", n, log.String())
	}
}

// TestEC2Cancelled: the caller's context ends the lookup.
func TestEC2Cancelled(t *testing.T) {
	srv := httptest.NewServer(&fakeIMDS{fail: 1 << 30})
	defer srv.Close()
	m := newMachine(t, dmiNitro, "")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, _, err := Lookup(ctx, m.options(srv.URL, nil))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Lookup: %v, want context.Canceled", err)
	}
}

// TestEC2Token checks the token against what the real service sends.
func TestEC2Token(t *testing.T) {
	for _, tc := range []struct {
		token, err string
	}{
		{"AQAEAGood==", ""},
		{"", "empty token"},
		{"bad token", "not printable ASCII"},
		{"bad\ttoken", "not printable ASCII"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut {
				fmt.Fprint(w, tc.token)
				return
			}
			w.Write(nodeConfig)
		}))
		m := newMachine(t, dmiNitro, "")
		_, _, err := Lookup(context.Background(), m.options(srv.URL, nil))
		srv.Close()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("token %q: %v, want %q", tc.token, err, tc.err)
		}
	}
}

func BenchmarkReadEC2(b *testing.B) {
	srv := httptest.NewServer(&fakeIMDS{userData: gz(b, nodeConfig)})
	defer srv.Close()
	m := newMachine(b, dmiNitro, "")
	opts := m.options(srv.URL, nil)
	for b.Loop() {
		if _, _, err := Lookup(context.Background(), opts); err != nil {
			b.Fatal(err)
		}
	}
}
