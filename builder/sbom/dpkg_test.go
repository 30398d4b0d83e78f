package sbom

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseDpkgStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []Package
		wantErr []string // substrings of the error
	}{
		{
			name: "paragraphs, sorted, continuation lines, source",
			in: `Package: zlib1g
Status: install ok installed
Architecture: amd64
Source: zlib
Version: 1:1.3.dfsg+really1.3.1-1+b1
Description: compression library - runtime
 zlib is a library implementing the deflate compression method found
 in gzip and PKZIP.
 .
 This package includes the shared library.

Package: bsdutils
Status: install ok installed
Architecture: amd64
Source: util-linux (2.41-5)
Version: 1:2.41-5
Conffiles:
 /etc/default/bsdutils 0123456789abcdef0123456789abcdef
Description: basic utilities from 4.4BSD-Lite

Package: libc6
Status: install ok installed
Architecture: i386
Version: 2.41-12
Multi-Arch: same

Package: libc6
Status: install ok installed
Architecture: amd64
Version: 2.41-12
`,
			want: []Package{
				{Name: "bsdutils", Version: "1:2.41-5", Architecture: "amd64", SourceName: "util-linux", SourceVersion: "2.41-5"},
				{Name: "libc6", Version: "2.41-12", Architecture: "amd64"},
				{Name: "libc6", Version: "2.41-12", Architecture: "i386"},
				{Name: "zlib1g", Version: "1:1.3.dfsg+really1.3.1-1+b1", Architecture: "amd64", SourceName: "zlib"},
			},
		},
		{
			name: "not installed skipped, blank lines and CRLF tolerated",
			in:   "\n\nPackage: gone\r\nStatus: deinstall ok config-files\r\nVersion: 1.0\r\n\r\n\r\nPackage: half\nStatus: install reinstreq half-installed\nVersion: 2\n\nPackage: here\nStatus: install ok installed\nVersion: 3\nArchitecture: all\n\n\n",
			want: []Package{{Name: "here", Version: "3", Architecture: "all"}},
		},
		{
			name: "no Status counts as installed",
			in:   "Package: a\nVersion: 1\n",
			want: []Package{{Name: "a", Version: "1"}},
		},
		{
			name: "empty",
			in:   "",
			want: nil,
		},
		{
			name:    "missing version names the paragraph",
			in:      "Package: a\nStatus: install ok installed\nVersion: 1\n\nPackage: broken\nStatus: install ok installed\nArchitecture: amd64\n",
			wantErr: []string{"paragraph 2", "line 5", "broken", "Version"},
		},
		{
			name:    "missing package",
			in:      "Version: 1\nStatus: install ok installed\n",
			wantErr: []string{"paragraph 1", "Package"},
		},
		{
			name:    "malformed line",
			in:      "Package: a\nVersion: 1\nthis is not a field\n",
			wantErr: []string{"line 3", "not a field"},
		},
		{
			name:    "continuation before any field",
			in:      " orphan\n",
			wantErr: []string{"line 1", "continuation"},
		},
		{
			name:    "malformed status",
			in:      "Package: a\nVersion: 1\nStatus: installed\n",
			wantErr: []string{"package a", "Status"},
		},
		{
			name:    "malformed source",
			in:      "Package: a\nVersion: 1\nSource: b 1.0\n",
			wantErr: []string{"package a", "Source"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDpkgStatus(strings.NewReader(tt.in))
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, got %+v", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("packages (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseOSRelease(t *testing.T) {
	tests := []struct{ in, want string }{
		{"PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"13\"\nVERSION_CODENAME=trixie\nID=debian\n", "debian-13"},
		{"ID=debian\nVERSION_CODENAME=forky\n", "debian-forky"},
		{"ID=debian\n", "debian"},
		{"# comment\nNAME=x\n", ""},
	}
	for _, tt := range tests {
		if got := ParseOSRelease([]byte(tt.in)); got != tt.want {
			t.Errorf("ParseOSRelease(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
