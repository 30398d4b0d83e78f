package netroot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var payload = bytes.Repeat([]byte("nodebake root image "), 50000) // ~1 MiB

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// server serves payload at /root.squashfs after failing the first
// failures requests with status fail (0: no failures).
func server(t *testing.T, failures int32, fail int) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		if r.URL.Path != "/root.squashfs" {
			http.NotFound(w, r)
			return
		}
		if i <= failures {
			http.Error(w, "not yet", fail)
			return
		}
		w.Write(payload)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func opts(t *testing.T, url, digest string) Options {
	return Options{
		URL:        url,
		SHA256:     digest,
		Out:        filepath.Join(t.TempDir(), "root.squashfs"),
		Timeout:    10 * time.Second,
		MinBackoff: 10 * time.Millisecond,
		MaxBackoff: 50 * time.Millisecond,
	}
}

func TestFetchGood(t *testing.T) {
	srv, n := server(t, 0, 0)
	o := opts(t, srv.URL+"/root.squashfs", strings.ToUpper(sum(payload)))
	res, err := Fetch(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(o.Out)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("output differs from the payload (%v)", err)
	}
	if res.Bytes != int64(len(payload)) || res.Attempts != 1 || n.Load() != 1 {
		t.Errorf("result %+v after %d requests, want %d bytes in 1 attempt", res, n.Load(), len(payload))
	}
	t.Log(res.Describe(o.Out))
}

func TestFetchWrongChecksum(t *testing.T) {
	srv, n := server(t, 0, 0)
	o := opts(t, srv.URL+"/root.squashfs", sum([]byte("something else")))
	_, err := Fetch(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Fatalf("Fetch = %v, want a checksum error", err)
	}
	if _, serr := os.Stat(o.Out); !os.IsNotExist(serr) {
		t.Errorf("the output file is left behind after a checksum mismatch: %v", serr)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1: a checksum mismatch is not retried", n.Load())
	}
}

func TestFetchRetries5xx(t *testing.T) {
	srv, n := server(t, 2, http.StatusInternalServerError)
	o := opts(t, srv.URL+"/root.squashfs", sum(payload))
	var log bytes.Buffer
	o.Log = &log
	res, err := Fetch(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Attempts != 3 || n.Load() != 3 {
		t.Errorf("attempts %d, requests %d, want 3", res.Attempts, n.Load())
	}
	if strings.Count(log.String(), "retrying") != 2 {
		t.Errorf("log %q, want two retry lines", log.String())
	}
}

func TestFetch404Fails(t *testing.T) {
	srv, n := server(t, 0, 0)
	o := opts(t, srv.URL+"/missing.squashfs", sum(payload))
	_, err := Fetch(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("Fetch = %v, want a 404 error", err)
	}
	if n.Load() != 1 {
		t.Errorf("%d requests, want 1: a 404 is not retried", n.Load())
	}
	if _, serr := os.Stat(o.Out); !os.IsNotExist(serr) {
		t.Errorf("output file exists after a 404: %v", serr)
	}
}

func TestFetchGivesUp(t *testing.T) {
	srv, _ := server(t, 1<<30, http.StatusServiceUnavailable)
	o := opts(t, srv.URL+"/root.squashfs", sum(payload))
	o.Timeout = 300 * time.Millisecond
	start := time.Now()
	res, err := Fetch(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), "giving up") {
		t.Fatalf("Fetch = %v, want giving up", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("gave up after %s, want about the timeout", el)
	}
	if res.Attempts < 2 {
		t.Errorf("%d attempts, want retries", res.Attempts)
	}
}

func TestFetchConnectionRefusedRetries(t *testing.T) {
	srv, _ := server(t, 0, 0)
	u := srv.URL
	srv.Close()
	o := opts(t, u+"/root.squashfs", sum(payload))
	o.Timeout = 200 * time.Millisecond
	res, err := Fetch(context.Background(), o)
	if err == nil || res.Attempts < 2 {
		t.Fatalf("Fetch = %v after %d attempts, want retries then an error", err, res.Attempts)
	}
}

func TestValidate(t *testing.T) {
	good := Options{URL: "http://10.0.2.100/root.squashfs", SHA256: sum(nil), Out: "/run/x"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Options){
		"scheme":  func(o *Options) { o.URL = "ftp://h/x" },
		"no host": func(o *Options) { o.URL = "http:///x" },
		"short":   func(o *Options) { o.SHA256 = "abc" },
		"not hex": func(o *Options) { o.SHA256 = strings.Repeat("g", 64) },
		"no out":  func(o *Options) { o.Out = "" },
	} {
		o := good
		mod(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, o)
		}
	}
}

func TestCleanURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://h/a//root.squashfs":       "http://h/a/root.squashfs",
		"http://h//root.squashfs":         "http://h/root.squashfs",
		"http://h:8080/a/b?x=//y":         "http://h:8080/a/b?x=//y",
		"https://h/a///b":                 "https://h/a/b",
		"http://10.0.2.100/root.squashfs": "http://10.0.2.100/root.squashfs",
		"http://h":                        "http://h",
	} {
		if got := CleanURL(in); got != want {
			t.Errorf("CleanURL(%q) = %q, want %q", in, got, want)
		}
	}
}
