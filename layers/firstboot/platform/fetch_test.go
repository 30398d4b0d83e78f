package platform

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDecode(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name   string
		in     []byte
		base64 bool
		want   []byte
		err    error
		msg    string
	}{
		{"plain", nodeConfig, false, nodeConfig, nil, ""},
		{"gzip", gz(t, nodeConfig), false, nodeConfig, nil, ""},
		{"two gzip members", append(gz(t, nodeConfig[:10]), gz(t, nodeConfig[10:])...), false, nodeConfig, nil, ""},
		{"base64", []byte(b64(nodeConfig)), true, nodeConfig, nil, ""},
		{"base64 with line breaks", []byte(" " + b64(nodeConfig)[:8] + "\r\n" + b64(nodeConfig)[8:] + "\n"), true, nodeConfig, nil, ""},
		{"base64 of gzip", []byte(b64(gz(t, nodeConfig))), true, nodeConfig, nil, ""},
		{"exactly the limit", bytes.Repeat([]byte("x"), 1000), false, bytes.Repeat([]byte("x"), 1000), nil, ""},
		{"over the limit", bytes.Repeat([]byte("x"), 1001), false, nil, nil, "1001 bytes, more than 1000"},
		{"gzip exactly the limit", gz(t, make([]byte, 1000)), false, make([]byte, 1000), nil, ""},
		{"gzip bomb", bomb(t, 50<<20), false, nil, nil, "decompressing gzip: more than 1000 bytes"},
		{"truncated gzip", gz(t, nodeConfig)[:30], false, nil, nil, "decompressing gzip: unexpected EOF"},
		{"gzip with a bad checksum", func() []byte { b := gz(t, nodeConfig); b[len(b)-6] ^= 1; return b }(), false, nil, nil, "checksum"},
		{"gzip with trailing garbage", append(gz(t, nodeConfig), []byte(secret)...), false, nil, nil, "decompressing gzip"},
		{"bad base64", []byte(secret), true, nil, nil, "decoding base64: illegal base64 data at input byte"},
		{"unpadded base64", []byte(strings.TrimRight(b64([]byte("ab")), "=")), true, nil, nil, "decoding base64"},
		{"empty", nil, false, nil, ErrNoData, "empty"},
		{"empty base64", []byte("\n"), true, nil, ErrNoData, "empty"},
		{"empty gzip", gz(t, nil), false, nil, ErrNoData, "empty after decompressing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decode(tt.in, tt.base64, 1000)
			if tt.msg == "" {
				if err != nil || !bytes.Equal(got, tt.want) {
					t.Fatalf("decode = %d bytes, %v; want %d bytes", len(got), err, len(tt.want))
				}
				return
			}
			if err == nil || (tt.err != nil && !errors.Is(err, tt.err)) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("decode: %v; want %q", err, tt.msg)
			}
			noSecret(t, "the error", err.Error())
		})
	}
}

func TestEncodedLimit(t *testing.T) {
	for _, n := range []int64{1, 2, 3, 1000, 64 << 10, DefaultMaxSize} {
		enc := base64.StdEncoding.EncodeToString(make([]byte, n))
		wrapped := int64(len(enc)) + int64(len(enc))/64*2 // CRLF every 64 characters
		if encodedLimit(n) < wrapped {
			t.Errorf("encodedLimit(%d) = %d, below %d", n, encodedLimit(n), wrapped)
		}
		if encodedLimit(n) > 2*n+8 {
			t.Errorf("encodedLimit(%d) = %d: loose", n, encodedLimit(n))
		}
	}
}

// TestRetry checks which answers are retried and which end the lookup at
// once, against a server that answers status for the first two requests
// and then 200.
func TestRetry(t *testing.T) {
	tests := []struct {
		status  int
		extra   []int
		retried bool
	}{
		{http.StatusInternalServerError, nil, true},
		{http.StatusBadGateway, nil, true},
		{http.StatusServiceUnavailable, nil, true},
		{http.StatusTooManyRequests, nil, true},
		{http.StatusGone, []int{http.StatusGone}, true},
		{http.StatusGone, nil, false},
		{http.StatusNotFound, nil, false},
		{http.StatusBadRequest, nil, false},
		{http.StatusForbidden, nil, false},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) <= 2 {
					w.WriteHeader(tt.status)
					return
				}
				w.Write([]byte("ok"))
			}))
			defer srv.Close()
			m := newMachine(t, nil, "")
			e := newEnv(Detection{opts: m.options(srv.URL, nil)})
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			resp, err := e.do(ctx, request{method: http.MethodGet, url: srv.URL, limit: 10, retry: tt.extra})
			if err != nil {
				t.Fatal(err)
			}
			if tt.retried && (resp.status != 200 || string(resp.body) != "ok" || n.Load() != 3) {
				t.Errorf("status %d, %d requests; want 200 after 3", resp.status, n.Load())
			}
			if !tt.retried && (resp.status != tt.status || n.Load() != 1) {
				t.Errorf("status %d, %d requests; want %d at once", resp.status, n.Load(), tt.status)
			}
		})
	}
}

// TestAttemptTimeout: a server that never answers is abandoned after the
// attempt timeout and asked again, until the time limit.
func TestAttemptTimeout(t *testing.T) {
	var n atomic.Int32
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	m := newMachine(t, nil, "")
	opts := m.options(srv.URL, nil)
	opts.AttemptTimeout = 100 * time.Millisecond
	e := newEnv(Detection{opts: opts})
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	_, err := e.do(ctx, request{method: http.MethodGet, url: srv.URL, limit: 10})
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "last: no answer within 100ms") {
		t.Fatalf("do: %v; want a timeout whose last problem is the unanswered attempt", err)
	}
	if n.Load() < 3 {
		t.Errorf("%d attempts in 700ms with 100ms each, want several", n.Load())
	}
}

// FuzzDecode: any answer, base64 or not, gives at most max bytes or an
// error, never a panic; data that is neither base64 nor gzip comes out as
// it went in; and no error repeats the data.
func FuzzDecode(f *testing.F) {
	b64 := base64.StdEncoding.EncodeToString
	f.Add(nodeConfig, false)
	f.Add(gz(f, nodeConfig), false)
	f.Add([]byte(b64(gz(f, nodeConfig))), true)
	f.Add(bomb(f, 1<<20), false)
	f.Add(gz(f, nodeConfig)[:30], false)
	f.Add([]byte(secret+"\x1f\x8b"), true)
	const max = 4096
	f.Fuzz(func(t *testing.T, in []byte, isBase64 bool) {
		out, err := decode(in, isBase64, max)
		if err != nil {
			if out != nil {
				t.Fatalf("decode returned %d bytes with the error %v", len(out), err)
			}
			if bytes.Contains(in, []byte(secret)) {
				noSecret(t, "the error", err.Error())
			}
			return
		}
		if len(out) == 0 || len(out) > max {
			t.Fatalf("decode returned %d bytes, want 1 to %d", len(out), max)
		}
		if !isBase64 && !bytes.HasPrefix(in, gzipMagic) && !bytes.Equal(out, in) {
			t.Fatalf("plain data changed: %q -> %q", in, out)
		}
	})
}
