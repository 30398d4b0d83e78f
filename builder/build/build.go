// Package build runs the whole pipeline: resolve the spec's layers (base
// image and components, from the cache or their sources), compose the root
// filesystem as one canonical tar stream, write it as squashfs into a GPT
// disk with an ESP and a /var partition, and write the outputs.
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
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"github.com/nodebake/nodebake/builder/disk"
	"github.com/nodebake/nodebake/builder/publish"
	"github.com/nodebake/nodebake/builder/rootfs"
	"github.com/nodebake/nodebake/builder/sbom"
	"github.com/nodebake/nodebake/builder/spec"
	"github.com/nodebake/nodebake/builder/squashfs"
	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/fetch"
	"github.com/nodebake/nodebake/layers/gosource"
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
	// Go builds components whose source is "go".
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
}

func (o *Options) say(stage Stage, format string, args ...any) {
	if o.Progress != nil {
		o.Progress(Event{Stage: stage, Message: fmt.Sprintf(format, args...)})
	}
}

// Build builds the image described by s, which must be defaulted and
// validated. Outputs are written under temporary names and renamed at the
// end: a failed or cancelled build leaves nothing that looks like an image.
func Build(ctx context.Context, s *spec.Spec, opts Options) (*Result, error) {
	if opts.Cache == nil {
		return nil, errors.New("build: no cache")
	}
	if opts.OutputDir == "" {
		return nil, errors.New("build: no output directory")
	}
	if opts.Workers == 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	specHash, err := s.Hash()
	if err != nil {
		return nil, fmt.Errorf("hashing the spec: %w", err)
	}
	if err := os.MkdirAll(opts.OutputDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the output directory: %w", err)
	}

	opts.say(StageResolve, "resolving base image %s", s.Base.Image)
	base, baseInfo, err := resolveBase(ctx, s, &opts)
	if err != nil {
		return nil, err
	}
	defer base.Close()
	debs, distro, err := basePackages(base)
	if err != nil {
		return nil, err
	}
	baseInfo.Packages = len(debs)

	opts.say(StageFetch, "resolving components")
	comps, overlay, err := resolveComponents(ctx, s, &opts)
	if err != nil {
		return nil, err
	}
	preloads, images, err := preloadImages(ctx, s, &opts)
	if err != nil {
		return nil, err
	}
	overlay = append(overlay, images...)
	cfg, err := configLayer(s, opts.FirstbootBinary, specHash, comps, baseInfo)
	if err != nil {
		return nil, err
	}
	overlay = append(overlay, cfg...)

	boot, err := bootFiles(base, s.Arch)
	if err != nil {
		return nil, err
	}

	name := s.Name
	finalImage := filepath.Join(opts.OutputDir, name+".raw")
	finalManifest := filepath.Join(opts.OutputDir, name+".manifest.json")
	finalSBOM := filepath.Join(opts.OutputDir, name+".spdx.json")
	finalSums := filepath.Join(opts.OutputDir, name+".SHA256SUMS")
	tmpImage := filepath.Join(opts.OutputDir, "."+name+".raw.partial")
	defer os.Remove(tmpImage)

	seed, err := imageSeed(specHash, baseInfo.Digest)
	if err != nil {
		return nil, err
	}
	var rootSize int64
	opts.say(StageDisk, "writing the disk image")
	dres, err := disk.Write(ctx, tmpImage, disk.Image{
		Arch:       string(s.Arch),
		Seed:       seed,
		ModTime:    fatTime(s.SourceDateEpoch),
		ESPSize:    int64(s.Output.ESPSize),
		VarSize:    int64(s.Output.VarSize),
		Kernel:     boot.kernel,
		Initrd:     boot.initrd,
		Bootloader: boot.loader,
		Cmdline:    kernelCmdline(s),
		Title:      "nodebake " + name + " (Kubernetes " + s.Kubernetes.Version + ")",
		WriteRoot: func(ctx context.Context, w io.WriterAt) (int64, error) {
			opts.say(StageCompose, "composing the root filesystem (%d base entries, %d added)", base.Len(), len(overlay))
			n, err := writeRoot(ctx, w, base, overlay, s, opts.Workers)
			rootSize = n
			return n, err
		},
	})
	if err != nil {
		return nil, fmt.Errorf("writing the disk image: %w", err)
	}

	opts.say(StageOutput, "hashing the image")
	imageSum, err := sha256File(ctx, tmpImage)
	if err != nil {
		return nil, err
	}
	formats := opts.Formats
	if formats == nil {
		formats = s.Output.Formats
	}
	if len(formats) == 0 {
		formats = []spec.Format{spec.FormatRaw}
	}
	keepRaw := slices.Contains(formats, spec.FormatRaw)
	staged, err := publish.Convert(ctx, tmpImage, publish.Options{
		Name:            name,
		OutDir:          opts.OutputDir,
		Formats:         formats,
		Seed:            seed,
		ModTime:         time.Unix(s.SourceDateEpoch, 0).UTC(),
		Workers:         opts.Workers,
		FirstbootBinary: opts.FirstbootBinary,
		NetbootURL:      opts.NetbootURL,
		Progress: func(_ spec.Format, msg string) {
			opts.say(StagePublish, "%s", msg)
		},
	})
	if err != nil {
		return nil, err
	}
	defer staged.Abort()
	m := Manifest{
		Name:          name,
		Arch:          string(s.Arch),
		SpecHash:      specHash,
		Image:         ImageInfo{File: filepath.Base(finalImage), SHA256: imageSum, Size: dres.Size, RootFilesystemSize: rootSize},
		Base:          baseInfo,
		Components:    comps,
		Images:        preloads,
		Disk:          DiskInfo{GUID: dres.DiskGUID, RootPartUUID: dres.RootPartUUID, VarPartUUID: dres.VarPartUUID, ESPPartUUID: dres.ESPPartUUID},
		KernelRelease: boot.release,
		SBOM:          filepath.Base(finalSBOM),
		Checksums:     filepath.Base(finalSums),

		SourceDateEpoch: s.SourceDateEpoch,
	}
	sumsOf := map[string]string{}
	if keepRaw {
		m.Outputs = append(m.Outputs, OutputInfo{Format: string(spec.FormatRaw),
			Files: []FileInfo{{Path: m.Image.File, SHA256: imageSum, Size: dres.Size}}})
		sumsOf[m.Image.File] = imageSum
	}
	outs, err := outputInfos(opts.OutputDir, staged)
	if err != nil {
		return nil, err
	}
	for _, oi := range outs {
		for _, f := range oi.Files {
			sumsOf[f.Path] = f.SHA256
		}
	}
	m.Outputs = append(m.Outputs, outs...)
	doc, err := sbomDocument(s, &m, debs, distro, opts.ToolVersion)
	if err != nil {
		return nil, err
	}
	sbomData, err := sbom.Generate(doc)
	if err != nil {
		return nil, err
	}
	manifestData, err := marshalManifest(&m)
	if err != nil {
		return nil, err
	}
	sumsOf[filepath.Base(finalManifest)] = sha256Hex(manifestData)
	sumsOf[m.SBOM] = sha256Hex(sbomData)
	sums := sha256Sums(sumsOf)
	imageOut := finalImage
	if !keepRaw {
		imageOut = ""
	}
	if err := install(tmpImage, imageOut, staged, []sidecar{{finalSBOM, sbomData}, {finalManifest, manifestData}, {finalSums, sums}}); err != nil {
		return nil, err
	}
	for _, o := range staged.Outputs {
		opts.say(StageOutput, "wrote %s (%s, %d MiB, %s)", o.Path, o.Format, o.Size()>>20, o.Duration.Round(100*time.Millisecond))
	}
	if keepRaw {
		opts.say(StageOutput, "wrote %s (sha256 %s)", finalImage, imageSum)
	}
	return &Result{ImagePath: imageOut, ManifestPath: finalManifest, SBOMPath: finalSBOM, SumsPath: finalSums, Outputs: staged.Outputs, Manifest: m}, nil
}

// writeRoot streams the composed root tar into the squashfs writer. A
// failure on either side stops both, and the error is the first cause.
func writeRoot(ctx context.Context, w io.WriterAt, base *rootfs.Base, overlay []rootfs.Entry, s *spec.Spec, workers int) (int64, error) {
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

// fetcher builds the release downloader of a build.
func (o *Options) fetcher(s *spec.Spec) *fetch.Fetcher {
	retries := 3
	if s.Sources.Retries != nil {
		retries = *s.Sources.Retries
	}
	fo := []fetch.Option{fetch.WithRetries(retries), fetch.WithOffline(o.Offline)}
	if o.HTTPClient != nil {
		fo = append(fo, fetch.WithClient(o.HTTPClient))
	}
	if o.Progress != nil {
		fo = append(fo, fetch.WithProgress(func(p fetch.Progress) {
			o.Progress(Event{Stage: StageFetch, Artifact: p.Artifact, Done: p.Done, Total: p.Total})
		}))
	}
	return fetch.New(o.Cache, fo...)
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
