// Package artifact pushes a built nodebake image (its disk, manifest, SBOM and
// checksums) to a registry as one OCI 1.1 artifact, and pulls it back,
// verifying every blob by digest.
//
// The artifact is an OCI image manifest whose artifactType is
// application/vnd.nodebake.image.v1, whose config is the OCI empty
// descriptor ({}), and which has one layer per file. Each layer has a media
// type that says what the file is and the org.opencontainers.image.title
// annotation set to the file name, so that oras and crane can fetch the files
// by name as well.
//
// Files are never read whole into memory: a layer's digest is computed in one
// streaming pass and its content is read from the file again when uploaded;
// pulled blobs are written to disk as they arrive.
package artifact

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Media types of the artifact and its parts.
const (
	// ArtifactType is the manifest's artifactType.
	ArtifactType = "application/vnd.nodebake.image.v1"
	// MediaTypeEmpty is the media type of the empty config ({}).
	MediaTypeEmpty types.MediaType = "application/vnd.oci.empty.v1+json"

	MediaTypeDiskRaw     types.MediaType = "application/vnd.nodebake.disk.raw.v1"
	MediaTypeDiskRawZstd types.MediaType = "application/vnd.nodebake.disk.raw.v1+zstd"
	MediaTypeDiskRawGzip types.MediaType = "application/vnd.nodebake.disk.raw.v1+gzip"
	MediaTypeDiskRawXz   types.MediaType = "application/vnd.nodebake.disk.raw.v1+xz"
	MediaTypeDiskQcow2   types.MediaType = "application/vnd.nodebake.disk.qcow2.v1"
	MediaTypeDiskVMDK    types.MediaType = "application/vnd.nodebake.disk.vmdk.v1"
	MediaTypeDiskVHD     types.MediaType = "application/vnd.nodebake.disk.vhd.v1"
	MediaTypeDiskVHDX    types.MediaType = "application/vnd.nodebake.disk.vhdx.v1"
	MediaTypeDiskGCE     types.MediaType = "application/vnd.nodebake.disk.gce.v1.tar+gzip"
	MediaTypeManifest    types.MediaType = "application/vnd.nodebake.manifest.v1+json"
	MediaTypeSPDX        types.MediaType = "application/spdx+json"
	MediaTypeChecksums   types.MediaType = "text/plain"
)

// Annotation keys.
const (
	AnnotationTitle             = "org.opencontainers.image.title"
	AnnotationCreated           = "org.opencontainers.image.created"
	AnnotationVersion           = "org.opencontainers.image.version"
	AnnotationKubernetesVersion = "io.nodebake.kubernetes.version"
	AnnotationName              = "io.nodebake.image.name"
	AnnotationArch              = "io.nodebake.image.arch"
	AnnotationImageSHA256       = "io.nodebake.image.sha256"
	AnnotationSpecHash          = "io.nodebake.spec.hash"
)

// suffixes maps file name endings to media types, longest match first.
func suffixes() []struct {
	suffix string
	mt     types.MediaType
} {
	return []struct {
		suffix string
		mt     types.MediaType
	}{
		{".manifest.json", MediaTypeManifest},
		{".spdx.json", MediaTypeSPDX},
		{".gce.tar.gz", MediaTypeDiskGCE},
		{".raw.tar.gz", MediaTypeDiskGCE},
		{".tar.gz", MediaTypeDiskGCE}, // the gce format's NAME.tar.gz
		{".raw.zst", MediaTypeDiskRawZstd},
		{".raw.gz", MediaTypeDiskRawGzip},
		{".raw.xz", MediaTypeDiskRawXz},
		{".raw", MediaTypeDiskRaw},
		{".img", MediaTypeDiskRaw},
		{".qcow2", MediaTypeDiskQcow2},
		{".vmdk", MediaTypeDiskVMDK},
		{".vhdx", MediaTypeDiskVHDX},
		{".vhd", MediaTypeDiskVHD},
		{"SHA256SUMS", MediaTypeChecksums},
	}
}

// MediaTypeFor returns the layer media type for a file name.
func MediaTypeFor(fileName string) (types.MediaType, error) {
	base := filepath.Base(fileName)
	var known []string
	for _, s := range suffixes() {
		if strings.HasSuffix(base, s.suffix) {
			return s.mt, nil
		}
		known = append(known, "*"+s.suffix)
	}
	return "", fmt.Errorf("%s: no media type for this kind of file (known: %s)", base, strings.Join(known, ", "))
}

// IsDisk reports whether mt is one of the disk image media types.
func IsDisk(mt types.MediaType) bool {
	return strings.HasPrefix(string(mt), "application/vnd.nodebake.disk.")
}

// File is one file of the artifact.
type File struct {
	// Path is the file to push.
	Path string
	// Name is its name in the artifact (the title annotation, and the file
	// name a pull writes); default the base name of Path.
	Name string
	// MediaType is the layer's media type; default from Name (MediaTypeFor).
	MediaType types.MediaType
}

// Options configures Push and Pull. The zero value is usable.
type Options struct {
	// Keychain supplies registry credentials; default authn.DefaultKeychain
	// (the Docker config file and its credential helpers).
	Keychain authn.Keychain
	// Transport is the HTTP transport; default remote.DefaultTransport.
	Transport http.RoundTripper
	// Insecure allows plain-HTTP registries.
	Insecure bool

	// Push only.

	// Created is the org.opencontainers.image.created annotation. Zero:
	// the nodebake manifest's creation time if it has one, else the Unix
	// epoch (never the current time: the same files give the same digest).
	Created time.Time
	// Version is the org.opencontainers.image.version annotation; default
	// the Kubernetes version of the image, if its manifest names one.
	Version string
	// Annotations are added to the manifest's annotations.
	Annotations map[string]string

	// Pull only.

	// Digest pins the manifest digest ("sha256:<hex>"): Pull fails if the
	// reference resolves to another manifest.
	Digest string
	// Decompress writes a zstd-compressed raw disk as a sparse raw file
	// (its name without .zst), verified against the image sha256 in the
	// nodebake manifest, instead of the compressed file.
	Decompress bool
}
