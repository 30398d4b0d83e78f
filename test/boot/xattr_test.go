package boot

import (
	"archive/tar"
	"bytes"
	"io"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/nodebake/nodebake/test/harness"
)

// capTestPath is a file the derived base adds with a file capability.
const capTestPath = "/usr/bin/nodebake-captest"

// capNetRawEP is the security.capability value of "cap_net_raw=ep"
// (VFS_CAP_REVISION_2, effective, permitted bit 13), as setcap writes it.
var capNetRawEP = string([]byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

// TestFileCapabilities builds the worker image on a base with one more
// layer holding a file with a file capability and a user xattr (the
// Debian base has no file capabilities of its own) and checks, with
// unsquashfs and getxattr, that the image keeps them.
func TestFileCapabilities(t *testing.T) {
	harness.RequireSlow(t)
	base := capBase(t, harness.BaseLayout(t), filepath.Join(t.TempDir(), "base"))
	s := harness.WorkerSpec(t, probeFiles()...)
	s.Base.Image = "oci:" + base
	s.Base.Digest = ""
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	res := harness.BuildImage(t, s, t.TempDir())
	checkImage(t, res, base)
	facts := scanBase(t, base)
	if facts.xattrs[capTestPath]["security.capability"] != capNetRawEP {
		t.Fatalf("the derived base lacks the capability of %s: %q", capTestPath, facts.xattrs[capTestPath])
	}
}

// capBase writes an OCI layout at out: the image of the layout at dir plus
// a layer with capTestPath carrying cap_net_raw=ep and user.nodebake=test.
func capBase(t *testing.T, dir, out string) string {
	t.Helper()
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil || len(im.Manifests) == 0 {
		t.Fatalf("the base layout has no image: %v", err)
	}
	desc := im.Manifests[0]
	img, err := p.Image(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("#!/bin/sh\necho nodebake capability test\n")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{
		Name: capTestPath[1:], Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(content)),
		ModTime: time.Unix(0, 0), Format: tar.FormatPAX,
		PAXRecords: map[string]string{
			"SCHILY.xattr.security.capability": capNetRawEP,
			"SCHILY.xattr.user.nodebake":       "test",
		},
	}); err != nil {
		t.Fatal(err)
	}
	tw.Write(content)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.AppendLayers(img, layer)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := layout.Write(out, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	platform := v1.Platform{OS: "linux", Architecture: "amd64"}
	if desc.Platform != nil {
		platform = *desc.Platform
	}
	if err := lp.AppendImage(img, layout.WithPlatform(platform)); err != nil {
		t.Fatal(err)
	}
	return out
}
