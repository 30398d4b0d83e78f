package build

import "github.com/nodebake/nodebake/layers/resolve"

// Manifest describes a built image: written next to it as JSON.
type Manifest struct {
	Name          string                  `json:"name"`
	Arch          string                  `json:"arch"`
	SpecHash      string                  `json:"specHash"`
	Image         ImageInfo               `json:"image"`
	Base          resolve.BaseInfo        `json:"base"`
	KernelRelease string                  `json:"kernelRelease"`
	Components    []resolve.ComponentInfo `json:"components"`
	Images        []resolve.PreloadInfo   `json:"images,omitempty"`
	Disk          DiskInfo                `json:"disk"`
	// Verified describes the verified boot chain (output.verifiedBoot).
	Verified *VerifiedInfo `json:"verified,omitempty"`
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
	Files []resolve.FileInfo `json:"files"`
}

// ImageInfo is the disk image file.
type ImageInfo struct {
	File               string `json:"file"`
	SHA256             string `json:"sha256"`
	Size               int64  `json:"size"`
	RootFilesystemSize int64  `json:"rootFilesystemSize"`
}

// DiskInfo holds the derived GUIDs.
type DiskInfo struct {
	GUID         string `json:"guid"`
	ESPPartUUID  string `json:"espPartUUID"`
	RootPartUUID string `json:"rootPartUUID"`
	VarPartUUID  string `json:"varPartUUID"`
}
