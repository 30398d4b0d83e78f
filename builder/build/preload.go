package build

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nodebake/nodebake/layers/entry"
	"github.com/nodebake/nodebake/layers/oci"
	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/layers/worker"
)

// PreloadInfo records a preloaded container image in the manifest.
type PreloadInfo struct {
	Ref    string `json:"ref"`
	Source string `json:"source"`
	Digest string `json:"digest"`
}

// preloadImages turns the spec's images into image archives baked under
// worker.PreloadDir; the image's preload unit imports them into
// containerd's k8s.io namespace at boot, so a node with no route to a
// registry still starts pods. Archives are cached by image digest and ref.
func preloadImages(ctx context.Context, s *spec.Spec, o *Options) ([]PreloadInfo, []entry.Entry, error) {
	var infos []PreloadInfo
	var out []entry.Entry
	for i, im := range s.Images {
		field := fmt.Sprintf("images[%d]", i)
		img, err := openImage(ctx, s, im.Image, im.Digest, o)
		if err != nil {
			return nil, nil, fmt.Errorf("%s.image: %w", field, err)
		}
		d, err := img.Digest()
		if err != nil {
			return nil, nil, fmt.Errorf("%s.image: %w", field, err)
		}
		key := fmt.Sprintf("preload/v1/%s/%s", d, im.Ref)
		dir, ok, err := o.Cache.Keyed(key)
		if err != nil {
			return nil, nil, err
		}
		if !ok {
			o.say(StageFetch, "preparing preloaded image %s", im.Ref)
			dir, err = o.Cache.PutKeyed(key, func(tmp string) error {
				return oci.WriteTarball(filepath.Join(tmp, "image.tar"), im.Ref, img)
			})
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", field, err)
			}
		}
		p := filepath.Join(dir, "image.tar")
		fi, err := os.Stat(p)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, entry.Entry{
			Path: fmt.Sprintf("%s/%02d.tar", worker.PreloadDir(), i), Type: tar.TypeReg, Mode: 0o644, Size: fi.Size(),
			Open: func() (io.ReadCloser, error) { return os.Open(p) },
		})
		infos = append(infos, PreloadInfo{Ref: im.Ref, Source: im.Image, Digest: d.String()})
	}
	return infos, out, nil
}
