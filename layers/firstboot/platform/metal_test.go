package platform

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// metalServer serves the node config over TLS at /node.yaml, a redirect
// to plain http at /redirect, and 503 for the first fail requests.
func metalServer(t testing.TB, body []byte, fail int32) (*httptest.Server, *x509.CertPool) {
	var failures atomic.Int32
	failures.Store(fail)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failures.Add(-1) >= 0 {
			http.Error(w, "", http.StatusServiceUnavailable)
			return
		}
		switch r.URL.Path {
		case "/node.yaml":
			w.Write(body)
		case "/redirect":
			http.Redirect(w, r, "http://"+r.Host+"/node.yaml", http.StatusFound)
		case "/redirect-https":
			http.Redirect(w, r, "/node.yaml", http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the system-roots case fails the handshake on purpose
	srv.StartTLS()
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return srv, pool
}

func TestMetal(t *testing.T) {
	srv, pool := metalServer(t, nodeConfig, 0)
	gzSrv, gzPool := metalServer(t, gz(t, nodeConfig), 0)
	flaky, flakyPool := metalServer(t, nodeConfig, 2)
	good := digest(nodeConfig)
	tests := []struct {
		name    string
		cmdline string
		pool    *x509.CertPool
		want    []byte
		msg     string
	}{
		{"pinned https", "nodebake.url=" + srv.URL + "/node.yaml?X-Sig=" + secret + " nodebake.sha256=" + good, pool, nodeConfig, ""},
		{"upper-case digest", "nodebake.url=" + srv.URL + "/node.yaml nodebake.sha256=" + strings.ToUpper(good), pool, nodeConfig, ""},
		{"gzip, pinned by the compressed bytes", "nodebake.url=" + gzSrv.URL + "/node.yaml nodebake.sha256=" + digest(gz(t, nodeConfig)), gzPool, nodeConfig, ""},
		{"5xx then success", "nodebake.url=" + flaky.URL + "/node.yaml nodebake.sha256=" + good, flakyPool, nodeConfig, ""},
		{"https to https redirect", "nodebake.url=" + srv.URL + "/redirect-https nodebake.sha256=" + good, pool, nodeConfig, ""},
		{"digest mismatch", "nodebake.url=" + srv.URL + "/node.yaml nodebake.sha256=" + strings.Repeat("ab", 32), pool, nil, "sha256 " + good + ", want abab"},
		{"missing digest", "nodebake.url=" + srv.URL + "/node.yaml", pool, nil, "nodebake.sha256= is missing"},
		{"malformed digest", "nodebake.url=" + srv.URL + "/node.yaml nodebake.sha256=" + good[:60], pool, nil, "want 64 hex digits"},
		{"not hex", "nodebake.url=" + srv.URL + "/node.yaml nodebake.sha256=" + strings.Repeat("zz", 32), pool, nil, "want 64 hex digits"},
		{"plain http refused", "nodebake.url=http://127.0.0.1:1/node.yaml nodebake.sha256=" + good, pool, nil, "the scheme must be https"},
		{"credentials refused", "nodebake.url=https://u:p@127.0.0.1:1/node.yaml nodebake.sha256=" + good, pool, nil, "credentials in the URL"},
		{"no host", "nodebake.url=https:///node.yaml nodebake.sha256=" + good, pool, nil, "no host"},
		{"platform metal without a URL", "nodebake.platform=metal", pool, nil, "nodebake.url= is not on the kernel command line"},
		{"not found", "nodebake.url=" + srv.URL + "/missing.yaml nodebake.sha256=" + good, pool, nil, "404 Not Found"},
		{"redirect to http refused", "nodebake.url=" + srv.URL + "/redirect nodebake.sha256=" + good, pool, nil, "redirect to http://"},
		{"refused, with a signed URL", "nodebake.timeout=1 nodebake.url=https://127.0.0.1:1/node.yaml?X-Sig=" + secret + " nodebake.sha256=" + good, pool, nil, "connection refused"},
		// The system roots do not know the test server's certificate.
		{"system roots", "nodebake.url=" + srv.URL + "/node.yaml nodebake.sha256=" + good, nil, nil, "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t, dmiBareMetal, tt.cmdline)
			var log syncBuffer
			opts := m.options("http://127.0.0.1:1", &log)
			opts.RootCAs = tt.pool
			d, c, err := Lookup(context.Background(), opts)
			if d.Platform != Metal {
				t.Fatalf("platform %s", d.Platform)
			}
			noSecret(t, "the log", log.String())
			noSecret(t, "the source", c.Source)
			if tt.want != nil {
				if err != nil || string(c.Data) != string(tt.want) || !strings.HasPrefix(c.Source, "metal nodebake.url https://127.0.0.1:") {
					t.Fatalf("Lookup = %q from %q, %v", c.Data, c.Source, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), "metal nodebake.url: ") {
				t.Fatalf("Lookup: %v; want %q", err, tt.msg)
			}
			if errors.Is(err, ErrTimeout) != strings.Contains(tt.name, "refused,") {
				t.Errorf("a permanent failure was retried until the time limit: %v", err)
			}
			noSecret(t, "the error", err.Error())
		})
	}
}

func BenchmarkReadMetal(b *testing.B) {
	srv, pool := metalServer(b, nodeConfig, 0)
	m := newMachine(b, dmiBareMetal, "nodebake.url="+srv.URL+"/node.yaml nodebake.sha256="+digest(nodeConfig))
	opts := m.options("", nil)
	opts.RootCAs = pool
	for b.Loop() {
		if _, _, err := Lookup(context.Background(), opts); err != nil {
			b.Fatal(err)
		}
	}
}
