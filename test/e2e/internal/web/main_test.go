package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSteps(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello from web-1") }))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "sub", "marker")
	for _, tc := range []struct {
		args    []string
		want    string
		wantErr string
	}{
		{[]string{"write", file, "written"}, "wrote " + file, ""},
		{[]string{"check", file, "written"}, "written", ""},
		{[]string{"check", file, "other"}, "", `holds "written", want "other"`},
		{[]string{"report", file}, "written", ""},
		{[]string{"report", file + ".missing"}, "", "no such file"},
		{[]string{"fetch", srv.URL}, "hello from web-1", ""},
		{[]string{"fetch"}, "", "bad step"},
		{nil, "", "an empty step"},
	} {
		got, _, err := run(tc.args)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("run(%q): %q, %v; want an error with %q", tc.args, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("run(%q) = %q, %v; want %q", tc.args, got, err, tc.want)
		}
	}
}

// TestNoAnswer: a server that never answers (a listener that never
// accepts: the kernel completes the handshake, nothing replies) passes;
// one that answers, and a refused connection, fail.
func TestNoAnswer(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusForbidden) }))
	defer srv.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String() + "/"
	closed.Close()
	if got, err := noAnswer("http://"+silent.Addr().String()+"/", 300*time.Millisecond); err != nil || got != "no answer within 300ms" {
		t.Errorf("a silent server: %q, %v; want no answer", got, err)
	}
	for url, want := range map[string]string{srv.URL: "answered: 403 Forbidden", closedURL: "refused"} {
		if got, err := noAnswer(url, 2*time.Second); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("noAnswer(%s) = %q, %v; want an error with %q", url, got, err, want)
		}
	}
	if _, _, err := run([]string{"noanswer"}); err == nil || !strings.Contains(err.Error(), "bad step") {
		t.Errorf("noanswer without a URL: %v", err)
	}
}
