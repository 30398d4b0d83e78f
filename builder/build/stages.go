package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/nodebake/nodebake/builder/disk"
	"github.com/nodebake/nodebake/builder/publish"
	"github.com/nodebake/nodebake/builder/rootfs"
	"github.com/nodebake/nodebake/builder/sbom"
	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/entry"
	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/fetch"
	"github.com/nodebake/nodebake/layers/gosource"
	"github.com/nodebake/nodebake/layers/resolve"
	"github.com/nodebake/nodebake/layers/spec"
)

// run is the state of one build, carried from stage to stage.
type run struct {
	spec     *spec.Spec
	opts     Options
	plan     *Plan
	specHash string
	seed     []byte
	layers   *resolve.Resolver
	tmpImage string

	base      *rootfs.Base
	baseCheck *backgroundCheck
	baseInfo  resolve.BaseInfo
	debs      []sbom.Package
	distro    string
	boot      bootSet
	comps     []resolve.ComponentInfo
	preloads  []resolve.PreloadInfo
	overlay   []entry.Entry
	verified  *disk.Verified // with output.verifiedBoot

	disk     disk.Result
	rootSize int64
	imageSum string
	staged   *publish.Staged
	manifest Manifest
	sidecars []sidecar
	result   *Result
}

// newBuild checks the options and plans the outputs.
func newBuild(s *spec.Spec, opts Options) (*run, error) {
	if opts.Cache == nil {
		return nil, errors.New("build: no cache")
	}
	if opts.OutputDir == "" {
		return nil, errors.New("build: no output directory")
	}
	if opts.Workers == 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	plan, err := PlanFor(s, opts)
	if err != nil {
		return nil, err
	}
	specHash, err := s.Hash()
	if err != nil {
		return nil, fmt.Errorf("hashing the spec: %w", err)
	}
	if err := os.MkdirAll(opts.OutputDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating the output directory: %w", err)
	}
	b := &run{spec: s, opts: opts, plan: plan, specHash: specHash, tmpImage: partial(plan.Image)}
	goBuilder := opts.Go
	if goBuilder.Progress == nil && opts.Progress != nil {
		goBuilder.Progress = func(p gosource.Progress) { opts.say(StageFetch, "%s", p) }
	}
	ro := []resolve.Option{
		resolve.WithOffline(opts.Offline),
		resolve.WithGo(goBuilder),
		resolve.WithLog(func(msg string) { opts.say(StageFetch, "%s", msg) }),
	}
	if opts.HTTPClient != nil {
		ro = append(ro, resolve.WithHTTPClient(opts.HTTPClient))
	}
	if opts.Transport != nil {
		ro = append(ro, resolve.WithTransport(opts.Transport))
	}
	if opts.Progress != nil {
		ro = append(ro, resolve.WithDownloads(func(p fetch.Progress) {
			opts.Progress(Event{Stage: StageFetch, Artifact: p.Artifact, Done: p.Done, Total: p.Total})
		}))
	}
	b.layers = resolve.New(s, opts.Cache, ro...)
	return b, nil
}

// cleanup removes what a build left under temporary names.
func (b *run) cleanup() {
	b.baseCheck.wait()
	if b.base != nil {
		b.base.Close()
	}
	os.Remove(b.tmpImage)
	if b.staged != nil {
		b.staged.Abort()
	}
}

func (b *run) resolveBase(ctx context.Context) error {
	b.opts.say(StageResolve, "resolving base image %s", b.spec.Base.Image)
	img, info, err := b.layers.Base(ctx)
	if err != nil {
		return err
	}
	b.baseInfo = info
	if b.seed, err = imageSeed(b.specHash, info.Digest); err != nil {
		return err
	}
	say := func(format string, args ...any) { b.opts.say(StageResolve, format, args...) }
	e, err := normalizedBase(ctx, b.opts.Cache, img, b.spec.SourceDateEpoch, say)
	if err != nil {
		return err
	}
	b.baseCheck = verifyInBackground(e, baseTar)
	if b.base, err = rootfs.OpenBase(e.Path(baseTar)); err != nil {
		return fmt.Errorf("base.image: %w", err)
	}
	if b.debs, b.distro, err = basePackages(b.base); err != nil {
		return err
	}
	b.baseInfo.Packages = len(b.debs)
	b.boot, err = bootFiles(b.base, b.spec.Arch)
	return err
}

// checkBase waits for the verdict on the normalized base the image was
// composed from.
func (b *run) checkBase(context.Context) error {
	if err := b.baseCheck.wait(); err != nil {
		return fmt.Errorf("base.image: %w", err)
	}
	return nil
}

// firstCause returns the error a build that failed with err reports: a
// corrupt normalized base explains whatever went wrong after it was read.
func (b *run) firstCause(err error) error {
	if berr := b.baseCheck.wait(); errors.Is(berr, cache.ErrCorrupt) {
		return fmt.Errorf("base.image: %w", berr)
	}
	return err
}

func (b *run) resolveComponents(ctx context.Context) error {
	b.opts.say(StageFetch, "resolving components")
	comps, ents, err := b.layers.Components(ctx)
	if err != nil {
		return err
	}
	b.comps = comps
	b.overlay = append(b.overlay, ents...)
	return nil
}

func (b *run) preloadImages(ctx context.Context) error {
	preloads, ents, err := b.layers.Preloads(ctx)
	if err != nil {
		return err
	}
	b.preloads = preloads
	b.overlay = append(b.overlay, ents...)
	return nil
}

func (b *run) renderConfig(context.Context) error {
	cfg, err := configLayer(b.spec, b.opts.FirstbootBinary, b.specHash, b.comps, b.baseInfo)
	if err != nil {
		return err
	}
	b.overlay = append(b.overlay, cfg...)
	return nil
}

func (b *run) writeDisk(ctx context.Context) error {
	s := b.spec
	b.opts.say(StageDisk, "writing the disk image")
	varSize := s.Output.VarSize
	if s.Output.DiskSize > 0 {
		varSize = spec.MinVarSize // the least /var may get from the disk size
	}
	res, err := disk.Write(ctx, b.tmpImage, disk.Image{
		Arch:       string(s.Arch),
		Seed:       b.seed,
		ModTime:    fatTime(s.SourceDateEpoch),
		ESPSize:    int64(s.Output.ESPSize),
		VarSize:    int64(varSize),
		DiskSize:   int64(s.Output.DiskSize),
		Kernel:     b.boot.kernel,
		Initrd:     b.boot.initrd,
		Bootloader: b.boot.loader,
		Cmdline:    kernelCmdline(s),
		Title:      "nodebake " + s.Name + " (Kubernetes " + s.Kubernetes.Version + ")",
		Verified:   b.verified,
		WriteRoot: func(ctx context.Context, w io.WriterAt) (int64, error) {
			b.opts.say(StageCompose, "composing the root filesystem (%d base entries, %d added)", b.base.Len(), len(b.overlay))
			n, err := writeRoot(ctx, w, b.base, b.overlay, s, b.opts.Workers)
			b.rootSize = n
			return n, err
		},
	})
	var ve *disk.ValidationError
	if errors.As(err, &ve) {
		for _, fe := range ve.Errors {
			if fe.Field == "DiskSize" {
				// Only the root filesystem's size, known now, says
				// whether the spec's disk size is enough.
				return failure.Errorf(failure.Invalid, "output.diskSize: %s", fe.Msg)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("writing the disk image: %w", err)
	}
	b.disk = res
	b.opts.say(StageOutput, "hashing the image")
	b.imageSum, err = sha256File(ctx, b.tmpImage)
	return err
}

func (b *run) publish(ctx context.Context) error {
	var err error
	b.staged, err = publish.Convert(ctx, b.tmpImage, publish.Options{
		Targets:         b.plan.targets(),
		Seed:            b.seed,
		ModTime:         time.Unix(b.spec.SourceDateEpoch, 0).UTC(),
		Workers:         b.opts.Workers,
		FirstbootBinary: b.opts.FirstbootBinary,
		NetbootURL:      b.opts.NetbootURL,
		Progress: func(_ spec.Format, msg string) {
			b.opts.say(StagePublish, "%s", msg)
		},
	})
	return err
}

// describe writes the manifest, the SBOM and the sums (in memory).
func (b *run) describe(context.Context) error {
	// The SHA1s of the components' files, taken as they were composed.
	if err := b.layers.CompleteDigests(b.comps); err != nil {
		return err
	}
	s, p, d := b.spec, b.plan, b.disk
	m := Manifest{
		Name:          s.Name,
		Arch:          string(s.Arch),
		SpecHash:      b.specHash,
		Image:         ImageInfo{File: filepath.Base(p.Image), SHA256: b.imageSum, Size: d.Size, RootFilesystemSize: b.rootSize},
		Base:          b.baseInfo,
		Components:    b.comps,
		Images:        b.preloads,
		Disk:          DiskInfo{GUID: d.DiskGUID, RootPartUUID: d.RootPartUUID, VarPartUUID: d.VarPartUUID, ESPPartUUID: d.ESPPartUUID},
		Verified:      b.verifiedInfo(),
		KernelRelease: b.boot.release,
		SBOM:          filepath.Base(p.SBOM),
		Checksums:     filepath.Base(p.Sums),

		SourceDateEpoch: s.SourceDateEpoch,
	}
	sumsOf := map[string]string{}
	if p.KeepImage {
		m.Outputs = append(m.Outputs, OutputInfo{Format: string(spec.FormatRaw),
			Files: []resolve.FileInfo{{Path: m.Image.File, SHA256: b.imageSum, Size: d.Size}}})
		sumsOf[m.Image.File] = b.imageSum
	}
	outs, err := outputInfos(p.Dir, b.staged)
	if err != nil {
		return err
	}
	for _, oi := range outs {
		for _, f := range oi.Files {
			sumsOf[f.Path] = f.SHA256
		}
	}
	m.Outputs = append(m.Outputs, outs...)
	doc, err := sbomDocument(s, &m, b.debs, b.distro, b.opts.ToolVersion)
	if err != nil {
		return err
	}
	sbomData, err := sbom.Generate(doc)
	if err != nil {
		return err
	}
	manifestData, err := marshalManifest(&m)
	if err != nil {
		return err
	}
	sumsOf[filepath.Base(p.Manifest)] = sha256Hex(manifestData)
	sumsOf[m.SBOM] = sha256Hex(sbomData)
	b.manifest = m
	b.sidecars = []sidecar{{p.SBOM, sbomData}, {p.Manifest, manifestData}, {p.Sums, sha256Sums(sumsOf)}}
	return nil
}

// install renames the outputs into place, the image last.
func (b *run) install(context.Context) error {
	p := b.plan
	imageOut := p.Image
	if !p.KeepImage {
		imageOut = ""
	}
	if err := install(b.tmpImage, imageOut, b.staged, b.sidecars); err != nil {
		return err
	}
	for _, o := range b.staged.Outputs {
		b.opts.say(StageOutput, "wrote %s (%s, %d MiB, %s)", o.Path, o.Format, o.Size()>>20, o.Duration.Round(100*time.Millisecond))
	}
	if p.KeepImage {
		b.opts.say(StageOutput, "wrote %s (sha256 %s)", p.Image, b.imageSum)
	}
	b.result = &Result{ImagePath: imageOut, ManifestPath: p.Manifest, SBOMPath: p.SBOM, SumsPath: p.Sums,
		Outputs: b.staged.Outputs, Manifest: b.manifest, Plan: p}
	return nil
}
