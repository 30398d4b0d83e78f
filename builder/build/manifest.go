package build

// Manifest describes a built image: written next to it as JSON.
type Manifest struct {
	Name          string          `json:"name"`
	Arch          string          `json:"arch"`
	SpecHash      string          `json:"specHash"`
	Image         ImageInfo       `json:"image"`
	Base          BaseInfo        `json:"base"`
	KernelRelease string          `json:"kernelRelease"`
	Components    []ComponentInfo `json:"components"`
	Images        []PreloadInfo   `json:"images,omitempty"`
	Disk          DiskInfo        `json:"disk"`
	// SBOM and Checksums are the file names of the SPDX document and the
	// SHA256SUMS file (image, manifest and SBOM) written next to the image.
	SBOM      string `json:"sbom"`
	Checksums string `json:"checksums"`
	// SourceDateEpoch is the time (Unix seconds) every timestamp inside
	// the image and its formats carries.
	SourceDateEpoch int64 `json:"sourceDateEpoch"`
	// Outputs are the published formats, with their files. The raw image
	// described by Image is their source; it is among them (and on disk)
	// only when the raw format was asked for.
	Outputs []OutputInfo `json:"outputs"`
}

// OutputInfo is one published format.
type OutputInfo struct {
	Format string `json:"format"`
	// Files are the format's files, relative to the output directory: one
	// file, or each file of the netboot bundle's directory.
	Files []FileInfo `json:"files"`
}

// ImageInfo is the disk image file.
type ImageInfo struct {
	File               string `json:"file"`
	SHA256             string `json:"sha256"`
	Size               int64  `json:"size"`
	RootFilesystemSize int64  `json:"rootFilesystemSize"`
}

// BaseInfo is the base OS image.
type BaseInfo struct {
	Image    string `json:"image"`
	Digest   string `json:"digest"`
	Packages int    `json:"packages"`
}

// ComponentInfo is one baked component.
type ComponentInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	From    string `json:"from"`
	// Source is the URL, image reference or module the component came from.
	Source string `json:"source"`
	// Checksum is the pinned checksum of the release artifact or image.
	Checksum string     `json:"checksum,omitempty"`
	Files    []FileInfo `json:"files"`
}

// FileInfo is one installed file.
type FileInfo struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	// SHA1 is for the SBOM (SPDX file checksums), not the manifest.
	SHA1 string `json:"-"`
	Size int64  `json:"size"`
}

// DiskInfo holds the derived GUIDs.
type DiskInfo struct {
	GUID         string `json:"guid"`
	ESPPartUUID  string `json:"espPartUUID"`
	RootPartUUID string `json:"rootPartUUID"`
	VarPartUUID  string `json:"varPartUUID"`
}
