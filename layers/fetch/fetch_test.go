package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/failure"
)

const name = "kubelet v1.35.4"

func digestOf(b []byte) cache.Digest {
	return cache.Digest{Algorithm: "sha256", Hex: fmt.Sprintf("%x", sha256.Sum256(b))}
}

func newCache(t *testing.T) *cache.Cache {
	t.Helper()
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// server counts requests and answers request n (from 1) with handlers[n-1],
// repeating the last handler for later requests.
type server struct {
	*httptest.Server
	requests atomic.Int32
}

func newServer(t *testing.T, handlers ...http.HandlerFunc) *server {
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(s.requests.Add(1))
		handlers[min(n, len(handlers))-1](w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) count() int { return int(s.requests.Load()) }

func serve(body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Write(body)
	}
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", code) }
}

// truncate announces the whole body but sends only half of it, then closes
// the connection.
func truncate(t *testing.T, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", len(body))
		buf.Write(body[:len(body)/2])
		buf.Flush()
	}
}

var content = bytes.Repeat([]byte("kubelet binary "), 100_000) // ~1.5 MB

func blobNames(t *testing.T, c *cache.Cache, algo string) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(c.Dir(), "blobs", algo))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestFetch(t *testing.T) {
	fast := []Option{WithBackoff(time.Millisecond), WithRetries(2)}
	tests := []struct {
		name         string
		handlers     func(t *testing.T) []http.HandlerFunc
		wantRequests int
		wantErr      string
	}{
		{name: "good", handlers: func(*testing.T) []http.HandlerFunc { return []http.HandlerFunc{serve(content)} }, wantRequests: 1},
		{name: "500 then ok", handlers: func(*testing.T) []http.HandlerFunc { return []http.HandlerFunc{status(500), serve(content)} }, wantRequests: 2},
		{name: "429 then ok", handlers: func(*testing.T) []http.HandlerFunc { return []http.HandlerFunc{status(429), serve(content)} }, wantRequests: 2},
		{name: "truncated then ok", handlers: func(t *testing.T) []http.HandlerFunc {
			return []http.HandlerFunc{truncate(t, content), serve(content)}
		}, wantRequests: 2},
		{name: "always truncated", handlers: func(t *testing.T) []http.HandlerFunc { return []http.HandlerFunc{truncate(t, content)} },
			wantRequests: 3, wantErr: "unexpected EOF (after 3 attempts)"},
		{name: "always 503", handlers: func(*testing.T) []http.HandlerFunc { return []http.HandlerFunc{status(503)} },
			wantRequests: 3, wantErr: "503 Service Unavailable (after 3 attempts)"},
		{name: "404 not retried", handlers: func(*testing.T) []http.HandlerFunc { return []http.HandlerFunc{status(404)} },
			wantRequests: 1, wantErr: ": 404 Not Found"},
		{name: "403 not retried", handlers: func(*testing.T) []http.HandlerFunc { return []http.HandlerFunc{status(403)} },
			wantRequests: 1, wantErr: ": 403 Forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCache(t)
			s := newServer(t, tt.handlers(t)...)
			url := s.URL + "/v1.35.4/bin/linux/amd64/kubelet"
			p, err := New(c, fast...).Fetch(context.Background(), Artifact{Name: name, URL: url, Digest: digestOf(content)})
			if got := s.count(); got != tt.wantRequests {
				t.Errorf("requests = %d, want %d", got, tt.wantRequests)
			}
			if tt.wantErr != "" {
				var de *DownloadError
				if !errors.As(err, &de) || failure.KindOf(err) != failure.Source {
					t.Fatalf("Fetch error = %v (kind %v), want a *DownloadError of kind source", err, failure.KindOf(err))
				}
				if !strings.HasPrefix(err.Error(), "fetching "+name+": GET "+url+": ") || !strings.HasSuffix(err.Error(), tt.wantErr) {
					t.Errorf("Fetch error = %q, want it to end in %q", err, tt.wantErr)
				}
				if names := blobNames(t, c, "sha256"); len(names) != 0 {
					t.Errorf("cache not empty after failure: %v", names)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, content) {
				t.Fatalf("cached content wrong (%d bytes, %v)", len(b), err)
			}
		})
	}
}

func TestFetch404Message(t *testing.T) {
	s := newServer(t, status(404))
	url := s.URL + "/kubelet"
	_, err := New(newCache(t)).Fetch(context.Background(), Artifact{Name: name, URL: url, Digest: digestOf(content)})
	want := "fetching kubelet v1.35.4: GET " + url + ": 404 Not Found"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
	var de *DownloadError
	if !errors.As(err, &de) || de.StatusCode != 404 || de.URL != url || de.Artifact != name {
		t.Errorf("DownloadError = %+v", de)
	}
}

func TestFetchChecksumMismatch(t *testing.T) {
	c := newCache(t)
	s := newServer(t, serve([]byte("tampered")))
	want := digestOf(content)
	_, err := New(c, WithBackoff(time.Millisecond)).Fetch(context.Background(), Artifact{Name: name, URL: s.URL, Digest: want})
	var ce *cache.ChecksumError
	if !errors.As(err, &ce) || failure.KindOf(err) != failure.Source {
		t.Fatalf("error = %v (kind %v), want a *cache.ChecksumError of kind source", err, failure.KindOf(err))
	}
	msg := fmt.Sprintf("checksum mismatch for %s: expected %s, got %s", name, want, digestOf([]byte("tampered")))
	if err.Error() != msg {
		t.Errorf("error = %q, want %q", err, msg)
	}
	if s.count() != 1 {
		t.Errorf("requests = %d, want 1 (a mismatch is not retried)", s.count())
	}
	if names := blobNames(t, c, "sha256"); len(names) != 0 {
		t.Errorf("cache not empty after mismatch: %v", names)
	}
}

// failTransport fails the test on any request.
type failTransport struct{ t *testing.T }

func (f failTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.t.Errorf("unexpected request %s", r.URL)
	return nil, errors.New("network use forbidden")
}

func TestFetchCacheHit(t *testing.T) {
	c := newCache(t)
	s := newServer(t, serve(content))
	a := Artifact{Name: name, URL: s.URL + "/kubelet", Digest: digestOf(content)}
	first, err := New(c).Fetch(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	var events []Progress
	f := New(c, WithClient(&http.Client{Transport: failTransport{t}}), WithProgress(func(p Progress) { events = append(events, p) }))
	second, err := f.Fetch(context.Background(), a)
	if err != nil || second != first {
		t.Fatalf("cached Fetch = %s, %v; want %s", second, err, first)
	}
	if len(events) != 1 || !events[0].Finished || !events[0].Cached {
		t.Errorf("events = %+v, want one Finished Cached event", events)
	}
	// Offline works too.
	if _, err := New(c, WithOffline(true)).Fetch(context.Background(), a); err != nil {
		t.Fatal(err)
	}
}

func TestFetchCorruptCacheRefetches(t *testing.T) {
	c := newCache(t)
	s := newServer(t, serve(content))
	a := Artifact{Name: name, URL: s.URL, Digest: digestOf(content)}
	p, err := New(c).Fetch(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("bit rot"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(c).Fetch(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if s.count() != 2 {
		t.Errorf("requests = %d, want 2", s.count())
	}
	if err := c.Verify(a.Digest); err != nil {
		t.Error(err)
	}
}

// TestFetchVerifyOnRead: a cached artifact is returned unhashed; reading
// it through the cache finds damage, and once it is evicted Fetch gets it
// again.
func TestFetchVerifyOnRead(t *testing.T) {
	c := newCache(t)
	s := newServer(t, serve(content))
	a := Artifact{Name: name, URL: s.URL, Digest: digestOf(content)}
	f := New(c, WithVerifyOnRead(true))
	p, err := f.Fetch(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	damaged := bytes.Clone([]byte(content))
	damaged[3] ^= 1
	if err := os.WriteFile(p, damaged, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Fetch(context.Background(), a); err != nil || s.count() != 1 {
		t.Fatalf("Fetch of a damaged cached copy = %v after %d requests; want it returned without a request", err, s.count())
	}
	rc, err := c.OpenBlob(a.Digest)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(rc)
	rc.Close()
	var ce *cache.CorruptError
	if !errors.As(err, &ce) || ce.Key != a.Digest.String() {
		t.Fatalf("reading the damaged copy = %v, want a *cache.CorruptError naming %s", err, a.Digest)
	}
	if err := c.EvictCorrupt(ce); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Fetch(context.Background(), a); err != nil || s.count() != 2 {
		t.Fatalf("Fetch after eviction = %v after %d requests, want a second download", err, s.count())
	}
	if err := c.Verify(a.Digest); err != nil {
		t.Error(err)
	}
}

func TestFetchOfflineMiss(t *testing.T) {
	s := newServer(t, serve(content))
	_, err := New(newCache(t), WithOffline(true)).Fetch(context.Background(), Artifact{Name: name, URL: s.URL, Digest: digestOf(content)})
	if !errors.Is(err, cache.ErrNotCached) || failure.KindOf(err) != failure.Source || !strings.Contains(err.Error(), "fetching "+name+": offline and not in the cache") {
		t.Fatalf("error = %v, want ErrNotCached", err)
	}
	if s.count() != 0 {
		t.Errorf("requests = %d, want 0", s.count())
	}
}

func TestFetchCancelDuringBackoff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		cancel() // cancel while the client waits to retry
		http.Error(w, "busy", 503)
	})
	start := time.Now()
	_, err := New(newCache(t), WithBackoff(time.Minute)).Fetch(ctx, Artifact{Name: name, URL: s.URL, Digest: digestOf(content)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Fetch took %v after cancel", d)
	}
}

func TestFetchConnectionRefusedRetried(t *testing.T) {
	s := httptest.NewServer(http.NotFoundHandler())
	url := s.URL + "/x"
	s.Close()
	_, err := New(newCache(t), WithRetries(1), WithBackoff(time.Millisecond)).Fetch(context.Background(), Artifact{Name: name, URL: url, Digest: digestOf(content)})
	var de *DownloadError
	if !errors.As(err, &de) || de.Attempts != 2 || de.Err == nil {
		t.Fatalf("error = %v (%+v), want a DownloadError after 2 attempts", err, de)
	}
	if !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error = %q, want it to mention connection refused", err)
	}
}

func TestFetchProgress(t *testing.T) {
	s := newServer(t, serve(content))
	var events []Progress
	_, err := New(newCache(t), WithProgress(func(p Progress) { events = append(events, p) })).
		Fetch(context.Background(), Artifact{Name: name, URL: s.URL, Digest: digestOf(content)})
	if err != nil {
		t.Fatal(err)
	}
	if len(events) < 2 {
		t.Fatalf("got %d events, want several", len(events))
	}
	// Throttled: far fewer events than 32 KiB reads.
	if max := len(content)/(256<<10) + 3; len(events) > max {
		t.Errorf("got %d events, want at most %d", len(events), max)
	}
	last := events[len(events)-1]
	want := Progress{Artifact: name, Done: int64(len(content)), Total: int64(len(content)), Finished: true}
	if last != want {
		t.Errorf("last event = %+v, want %+v", last, want)
	}
	for _, e := range events[:len(events)-1] {
		if e.Finished || e.Done > e.Total {
			t.Errorf("bad intermediate event %+v", e)
		}
	}
}

func TestFetchSHA512(t *testing.T) {
	s := newServer(t, serve(content))
	d := cache.Digest{Algorithm: "sha512", Hex: fmt.Sprintf("%x", sha512.Sum512(content))}
	c := newCache(t)
	p, err := New(c).Fetch(context.Background(), Artifact{Name: name, URL: s.URL, Digest: d})
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(c.Dir(), "blobs", "sha512", d.Hex) {
		t.Errorf("path = %s", p)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, content) {
		t.Error("content differs")
	}
}

func TestFetchBadInput(t *testing.T) {
	tests := []struct {
		name    string
		a       Artifact
		wantErr string
	}{
		{"no digest", Artifact{Name: name, URL: "https://example.invalid/x"}, "fetching kubelet v1.35.4: digest: unsupported digest algorithm"},
		{"ftp url", Artifact{Name: name, URL: "ftp://example.invalid/x", Digest: digestOf(content)}, `url "ftp://example.invalid/x": want an http or https URL`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(newCache(t), WithClient(&http.Client{Transport: failTransport{t}})).Fetch(context.Background(), tt.a)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestDownloadErrorUnwrap(t *testing.T) {
	err := error(&DownloadError{Artifact: "a", URL: "u", Err: io.ErrUnexpectedEOF})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Error("DownloadError does not unwrap")
	}
}
