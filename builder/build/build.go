// Package build runs the whole pipeline as a short list of stages: resolve
// the spec's layers (package resolve: the base image, the components and
// the preloaded images, from the cache or their sources), normalize the
// base and render the configuration, compose the root filesystem as one
// canonical tar stream written as squashfs into a GPT disk with an ESP and
// a /var partition, convert it into the other formats, and describe and
// install the outputs. What a build writes is its Plan, known before any
// work; Export converts a built image later.
//
// The CLI and the Packer plugin are thin shells around Build.
package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/nodebake/nodebake/builder/publish"
	"github.com/nodebake/nodebake/builder/rootfs"
	"github.com/nodebake/nodebake/builder/squashfs"
	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/entry"
	"github.com/nodebake/nodebake/layers/gosource"
	"github.com/nodebake/nodebake/layers/spec"
)

// Stage names a step of the pipeline, as reported through Progress.
type Stage string

// The stages, in order.
const (
	StageResolve Stage = "resolve"
	StageFetch   Stage = "fetch"
	StageCompose Stage = "compose"
	StageDisk    Stage = "disk"
	StagePublish Stage = "publish"
	StageOutput  Stage = "output"
)

// Event is a progress report.
type Event struct {
	Stage   Stage
	Message string
	// Download progress, when Stage is StageFetch and a download runs.
	Artifact    string
	Done, Total int64
}

// Options configure a build.
type Options struct {
	// OutputDir receives <name>.raw, <name>.manifest.json, the SBOM
	// <name>.spdx.json and <name>.SHA256SUMS.
	OutputDir string
	// Cache is the content-addressed cache; required.
	Cache *cache.Cache
	// FirstbootBinary is the path of the nodebake-firstboot program baked
	// into the image; required.
	FirstbootBinary string
	// HTTPClient downloads release artifacts; http.DefaultClient when nil.
	HTTPClient *http.Client
	// Transport reaches registries; the default transport when nil.
	Transport http.RoundTripper
	// Offline forbids any download: everything must be in the cache.
	Offline bool
	// Go builds components whose source is "go". When its Progress is
	// nil, a build from source reports through Progress (StageFetch).
	Go gosource.Builder
	// Progress receives progress events; may be nil.
	Progress func(Event)
	// Workers is the number of parallel compressors; GOMAXPROCS when 0.
	Workers int
	// Formats are the formats to publish; the spec's output.formats when
	// nil.
	Formats []spec.Format
	// NetbootURL is where the netboot bundle will be served from; empty
	// lets its iPXE script use the URL it was loaded from.
	NetbootURL string
	// ToolVersion is nodebake's version, named as the SBOM's creator;
	// "dev" when empty.
	ToolVersion string
}

// Result describes a finished build.
type Result struct {
	// ImagePath is the raw image; empty when the raw format was not asked
	// for (the image was converted, then removed).
	ImagePath    string
	ManifestPath string
	// SBOMPath is the SPDX 2.3 JSON document; SumsPath the SHA256SUMS
	// file covering the image, the manifest and the SBOM.
	SBOMPath string
	SumsPath string
	// Outputs are the formats written besides raw.
	Outputs  []publish.Output
	Manifest Manifest
	// Plan is what the build was to write (see PlanFor).
	Plan *Plan
}

func (o *Options) say(stage Stage, format string, args ...any) {
	if o.Progress != nil {
		o.Progress(Event{Stage: stage, Message: fmt.Sprintf(format, args...)})
	}
}

// Build builds the image described by s, which must be defaulted and
// validated. Outputs are written under temporary names and renamed at the
// end: a failed or cancelled build leaves nothing that looks like an image.
//
// Everything read from the cache is verified against the digests recorded
// when it was stored, while it is read. When a cached blob or entry turns
// out corrupt, at whatever stage, it is evicted and the stages run again
// (what is intact is still cached), once for each: if it is corrupt again,
// the build fails with its *cache.CorruptError, a source failure.
func Build(ctx context.Context, s *spec.Spec, opts Options) (*Result, error) {
	evicted := map[string]bool{}
	for {
		res, err := buildOnce(ctx, s, opts)
		var ce *cache.CorruptError
		if err == nil || ctx.Err() != nil || !errors.As(err, &ce) || opts.Cache == nil {
			return res, err
		}
		id := string(ce.Item) + " " + ce.Key
		if evicted[id] {
			return nil, fmt.Errorf("%w (it was evicted and made again once already)", err)
		}
		if len(evicted) == maxEvictions {
			return nil, fmt.Errorf("%w (%d corrupt cache entries evicted already)", err, len(evicted))
		}
		opts.say(StageResolve, "%v; evicting it and building again", ce)
		if eerr := opts.Cache.EvictCorrupt(ce); eerr != nil {
			return nil, fmt.Errorf("evicting a corrupt cache entry: %w (after %w)", eerr, err)
		}
		evicted[id] = true
	}
}

// maxEvictions bounds the corrupt cache entries one build evicts and makes
// again.
const maxEvictions = 16

// buildOnce runs the stages once.
func buildOnce(ctx context.Context, s *spec.Spec, opts Options) (*Result, error) {
	b, err := newBuild(s, opts)
	if err != nil {
		return nil, err
	}
	defer b.cleanup()
	for _, stage := range []func(context.Context) error{
		b.resolveBase,       // open and normalize the base, read its packages and boot files
		b.resolveComponents, // fetch or build every component
		b.preloadImages,     // bake the preloaded container images
		b.renderConfig,      // the worker configuration, the first-boot program, image.json
		b.writeDisk,         // compose the root filesystem into the GPT disk image
		b.checkBase,         // the verdict on the base, verified beside the stages above
		b.publish,           // convert the image into the other formats
		b.describe,          // the manifest, the SBOM and the sums
		b.install,           // rename everything into place
	} {
		if err := stage(ctx); err != nil {
			return nil, b.firstCause(err)
		}
	}
	return b.result, nil
}

// writeRoot streams the composed root tar into the squashfs writer. A
// failure on either side stops both, and the error is the first cause.
func writeRoot(ctx context.Context, w io.WriterAt, base *rootfs.Base, overlay []entry.Entry, s *spec.Spec, workers int) (int64, error) {
	var n int64
	err := pipeStream(ctx,
		streamStage[io.Writer]{"composing the root filesystem", func(ctx context.Context, pw io.Writer) error {
			return rootfs.Compose(ctx, pw, base, overlay, rootfs.Options{ModTime: s.SourceDateEpoch, Remove: removedFromRoot})
		}},
		streamStage[io.Reader]{"writing squashfs", func(ctx context.Context, pr io.Reader) (err error) {
			n, err = squashfs.Write(ctx, w, pr, squashfs.Options{Level: s.Output.RootCompressionLevel, Workers: workers, ModTime: s.SourceDateEpoch})
			return err
		}})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// removedFromRoot are base paths the root filesystem leaves out: the kernel
// and initrd live on the ESP.
var removedFromRoot = []string{"/boot/vmlinuz-*", "/boot/initrd.img-*", "/vmlinuz", "/vmlinuz.old", "/initrd.img", "/initrd.img.old"}

func kernelCmdline(s *spec.Spec) []string {
	args := []string{"console=tty0", "console=ttyS0,115200", "systemd.show_status=auto"}
	return append(args, s.Output.KernelArgs...)
}

func sha256File(ctx context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 4<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// fatTime is the ESP's timestamp: the epoch, clamped to the FAT date range
// (which starts in 1980).
func fatTime(epoch int64) time.Time {
	t := time.Unix(epoch, 0).UTC()
	if min := time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC); t.Before(min) {
		return min
	}
	return t
}
