package platform

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeGCE plays GCE's metadata server: it refuses requests without
// Metadata-Flavor: Google (403), marks every answer with that header
// (unless imposter), and serves instance attributes, 404 for unset ones.
type fakeGCE struct {
	mu       sync.Mutex
	attrs    map[string]string
	imposter bool // answer like some other server on the same address
	fail     int
	requests []string
}

func (f *fakeGCE) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.URL.Path)
	if !f.imposter {
		w.Header().Set("Metadata-Flavor", "Google")
	}
	if f.fail > 0 {
		f.fail--
		http.Error(w, "", http.StatusInternalServerError)
		return
	}
	if !f.imposter && r.Header.Get("Metadata-Flavor") != "Google" {
		http.Error(w, "Missing Metadata-Flavor:Google header.", http.StatusForbidden)
		return
	}
	key, ok := strings.CutPrefix(r.URL.Path, "/computeMetadata/v1/instance/attributes/")
	v, set := f.attrs[key]
	if !ok || !set {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/text")
	w.Write([]byte(v))
}

func TestGCE(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	wrapped := b64(nodeConfig)
	wrapped = wrapped[:20] + "\n" + wrapped[20:] + "\n"
	tests := []struct {
		name   string
		gce    *fakeGCE
		want   []byte
		source string
		err    error
		msg    string
	}{
		{"our attribute first", &fakeGCE{attrs: map[string]string{"nodebake-node": string(nodeConfig), "user-data": "#cloud-config"}},
			nodeConfig, "gce-metadata nodebake-node", nil, ""},
		{"user-data", &fakeGCE{attrs: map[string]string{"user-data": string(nodeConfig)}},
			nodeConfig, "gce-metadata user-data", nil, ""},
		{"user-data base64", &fakeGCE{attrs: map[string]string{"user-data": wrapped, "user-data-encoding": "base64"}},
			nodeConfig, "gce-metadata user-data", nil, ""},
		{"our attribute gzip and base64", &fakeGCE{attrs: map[string]string{"nodebake-node": b64(gz(t, nodeConfig)), "nodebake-node-encoding": "base64\n"}},
			nodeConfig, "gce-metadata nodebake-node", nil, ""},
		{"5xx then success", &fakeGCE{fail: 2, attrs: map[string]string{"user-data": string(nodeConfig)}},
			nodeConfig, "gce-metadata user-data", nil, ""},
		{"nothing set", &fakeGCE{attrs: map[string]string{"ssh-keys": "x"}},
			nil, "gce", ErrNoData, "gce: no node config from any source (gce-metadata nodebake-node: not set (404); gce-metadata user-data: not set (404))"},
		{"bad base64", &fakeGCE{attrs: map[string]string{"user-data": secret + "!!", "user-data-encoding": "base64"}},
			nil, "gce-metadata user-data", nil, "decoding base64: illegal base64 data"},
		{"unknown encoding", &fakeGCE{attrs: map[string]string{"user-data": "x", "user-data-encoding": "rot13"}},
			nil, "gce-metadata user-data", nil, `user-data-encoding "rot13"`},
		{"a broken attribute of ours does not fall through", &fakeGCE{attrs: map[string]string{"nodebake-node": "%%%", "nodebake-node-encoding": "base64", "user-data": string(nodeConfig)}},
			nil, "gce-metadata nodebake-node", nil, "decoding base64"},
		{"wrong Metadata-Flavor", &fakeGCE{imposter: true, attrs: map[string]string{"nodebake-node": string(nodeConfig)}},
			nil, "gce-metadata nodebake-node", ErrNotGCE, "Metadata-Flavor: Google"},
		{"gzip bomb", &fakeGCE{attrs: map[string]string{"user-data": b64(bomb(t, 8<<20)), "user-data-encoding": "base64"}},
			nil, "gce-metadata user-data", nil, "more than 65536"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.gce)
			defer srv.Close()
			m := newMachine(t, dmiGCE, "")
			var log syncBuffer
			d, c, err := Lookup(context.Background(), m.options(srv.URL, &log))
			if d.Platform != GCE {
				t.Fatalf("platform %s", d.Platform)
			}
			noSecret(t, "the log", log.String())
			if tt.want != nil {
				if err != nil || string(c.Data) != string(tt.want) || c.Source != tt.source {
					t.Fatalf("Lookup = %q from %q, %v; want the node config from %s", c.Data, c.Source, err, tt.source)
				}
				return
			}
			noSecret(t, "the error", err.Error())
			var pe *Error
			if !errors.As(err, &pe) || pe.Source != tt.source || (tt.err != nil && !errors.Is(err, tt.err)) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Lookup: %v; want an error from %s with %q", err, tt.source, tt.msg)
			}
		})
	}
}

func BenchmarkReadGCE(b *testing.B) {
	srv := httptest.NewServer(&fakeGCE{attrs: map[string]string{"user-data": string(nodeConfig)}})
	defer srv.Close()
	m := newMachine(b, dmiGCE, "")
	opts := m.options(srv.URL, nil)
	for b.Loop() {
		if _, _, err := Lookup(context.Background(), opts); err != nil {
			b.Fatal(err)
		}
	}
}
