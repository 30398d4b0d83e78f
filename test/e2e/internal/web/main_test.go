package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
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
