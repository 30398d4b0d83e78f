package build

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nodebake/nodebake/layers/failure"
	"github.com/nodebake/nodebake/layers/spec"
)

func TestPlanOutputs(t *testing.T) {
	p, err := PlanOutputs("out", "w", []spec.Format{spec.FormatQCOW2, spec.FormatNetboot, spec.FormatGCE})
	if err != nil {
		t.Fatal(err)
	}
	if p.KeepImage || p.Image != filepath.Join("out", "w.raw") {
		t.Errorf("image %s kept %v: the raw image is written but not kept without raw", p.Image, p.KeepImage)
	}
	want := []string{
		"out/w.qcow2",
		"out/w.netboot/vmlinuz", "out/w.netboot/initrd.img", "out/w.netboot/root.squashfs", "out/w.netboot/boot.ipxe", "out/w.netboot/SHA256SUMS",
		"out/w.tar.gz",
		"out/w.manifest.json", "out/w.spdx.json", "out/w.SHA256SUMS",
	}
	if diff := cmp.Diff(want, p.Files()); diff != "" {
		t.Errorf("Files (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"out/w.qcow2", "out/w.netboot", "out/w.tar.gz", "out/w.manifest.json", "out/w.spdx.json", "out/w.SHA256SUMS"}, p.Paths()); diff != "" {
		t.Errorf("Paths (-want +got):\n%s", diff)
	}
	if o, ok := p.Output(spec.FormatNetboot); !ok || !o.Directory || o.Path != "out/w.netboot" || o.Ident != "Netboot" {
		t.Errorf("netboot output %+v", o)
	}
	if _, ok := p.Output(spec.FormatRaw); ok {
		t.Error("raw is planned though not asked for")
	}
	var targets []string
	for _, tg := range p.targets() {
		targets = append(targets, string(tg.Format)+"="+tg.Path)
	}
	if diff := cmp.Diff([]string{"qcow2=out/w.qcow2", "netboot=out/w.netboot", "gce=out/w.tar.gz"}, targets); diff != "" {
		t.Errorf("publisher targets (-want +got):\n%s", diff)
	}
}

func TestPlanEveryFormat(t *testing.T) {
	p, err := PlanOutputs("/o", "img", spec.Formats())
	if err != nil {
		t.Fatal(err)
	}
	if !p.KeepImage {
		t.Error("raw listed but not kept")
	}
	seen := map[string]bool{}
	for _, path := range p.Files() {
		if seen[path] {
			t.Errorf("%s planned twice", path)
		}
		seen[path] = true
	}
	if raw, _ := p.Output(spec.FormatRaw); raw.Path != p.Image {
		t.Errorf("the raw output %s is not the image %s", raw.Path, p.Image)
	}
	if len(p.Outputs) != len(spec.FormatTable()) {
		t.Errorf("%d outputs for %d formats", len(p.Outputs), len(spec.FormatTable()))
	}
}

func TestPlanDefaultsAndErrors(t *testing.T) {
	p, err := PlanOutputs("d", "n", nil)
	if err != nil || !slices.Equal(p.Formats, []spec.Format{spec.FormatRaw}) || !p.KeepImage {
		t.Errorf("no formats: %+v, %v; want raw", p, err)
	}
	for _, fs := range [][]spec.Format{{"iso"}, {spec.FormatVHD, spec.FormatVHD}} {
		if _, err := PlanOutputs("d", "n", fs); failure.KindOf(err) != failure.Invalid {
			t.Errorf("PlanOutputs(%v) error %v, want invalid input", fs, err)
		}
	}
	s := &spec.Spec{Name: "w", Output: spec.Output{Formats: []spec.Format{spec.FormatVMDK}}}
	p, err = PlanFor(s, Options{OutputDir: "x"})
	if err != nil || !slices.Equal(p.Formats, []spec.Format{spec.FormatVMDK}) {
		t.Errorf("PlanFor takes the spec's formats: %+v %v", p, err)
	}
	p, err = PlanFor(s, Options{OutputDir: "x", Formats: []spec.Format{spec.FormatRaw, spec.FormatQCOW2}})
	if err != nil || !strings.HasSuffix(p.Outputs[1].Path, "w.qcow2") {
		t.Errorf("PlanFor takes the options' formats over the spec's: %+v %v", p, err)
	}
}
