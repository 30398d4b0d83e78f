package build

import (
	"encoding/hex"
	"fmt"
	"path/filepath"

	"github.com/nodebake/nodebake/builder/publish"
	"github.com/nodebake/nodebake/layers/resolve"
)

// imageSeed derives every identifier of an image and of its formats (disk
// and partition GUIDs, the FAT serial, the VHD and VMDK ids) from the spec
// hash and the base digest.
func imageSeed(specHash, baseDigest string) ([]byte, error) {
	seed, err := hex.DecodeString(specHash)
	if err != nil || len(seed) == 0 {
		return nil, fmt.Errorf("spec hash %q is not hex", specHash)
	}
	return append(seed, []byte(baseDigest)...), nil
}

// outputInfos lists the staged outputs with their files relative to dir,
// as the manifest and the SHA256SUMS file name them.
func outputInfos(dir string, st *publish.Staged) ([]OutputInfo, error) {
	var out []OutputInfo
	for _, o := range st.Outputs {
		oi := OutputInfo{Format: string(o.Format)}
		for _, f := range o.Files {
			rel, err := filepath.Rel(dir, f.Path)
			if err != nil {
				return nil, err
			}
			oi.Files = append(oi.Files, resolve.FileInfo{Path: filepath.ToSlash(rel), SHA256: f.SHA256, Size: f.Size})
		}
		out = append(out, oi)
	}
	return out, nil
}
