package nodebake

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/layers/gosource"
)

// recordingUI records what the builder says, in order; progress bars
// record the byte count read through them. The acceptance test runs the
// same code against Packer's real UI.
type recordingUI struct {
	mu    sync.Mutex
	lines []string
	bars  []*recordedBar
}

type recordedBar struct {
	name   string
	total  int64
	read   int64
	closed bool
	stream io.ReadCloser
}

func (u *recordingUI) add(s string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.lines = append(u.lines, s)
}

func (u *recordingUI) Ask(string) (string, error)          { return "", nil }
func (u *recordingUI) Askf(string, ...any) (string, error) { return "", nil }
func (u *recordingUI) Say(s string)                        { u.add("say: " + s) }
func (u *recordingUI) Sayf(f string, a ...any)             { u.Say(fmt.Sprintf(f, a...)) }
func (u *recordingUI) Message(s string)                    { u.add("say:   " + s) }
func (u *recordingUI) Error(s string)                      { u.add("error: " + s) }
func (u *recordingUI) Errorf(f string, a ...any)           { u.Error(fmt.Sprintf(f, a...)) }
func (u *recordingUI) Machine(string, ...string)           {}
func (b *recordedBar) Read(p []byte) (int, error) {
	n, err := b.stream.Read(p)
	b.read += int64(n)
	return n, err
}
func (b *recordedBar) Close() error { b.closed = true; return b.stream.Close() }
func (u *recordingUI) Lines() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.lines)
}
func (u *recordingUI) TrackProgress(src string, _, total int64, stream io.ReadCloser) io.ReadCloser {
	b := &recordedBar{name: src, total: total, stream: stream}
	u.mu.Lock()
	u.bars = append(u.bars, b)
	u.mu.Unlock()
	u.add(fmt.Sprintf("bar: %s %d", src, total))
	return b
}

func TestProgress(t *testing.T) {
	ui := &recordingUI{}
	p := newProgress(ui)
	events := []build.Event{
		{Stage: build.StageResolve, Message: "resolving base image oci:base"},
		{Stage: build.StageFetch, Message: "resolving components"},
		{Stage: build.StageFetch, Message: gosource.Progress{Component: "kubelet", Version: "v1.35.4", Compiled: 812, Total: 1403, Elapsed: 130 * time.Second}.String()},
		{Stage: build.StageFetch, Artifact: "runc", Total: -1},
		{Stage: build.StageFetch, Artifact: "kubelet", Done: 10, Total: 100},
		{Stage: build.StageFetch, Artifact: "kubelet", Done: 60, Total: 100},
		{Stage: build.StageFetch, Artifact: "kubelet", Done: 100, Total: 100},
		// A retry starts over, then the download finishes.
		{Stage: build.StageFetch, Artifact: "containerd", Done: 3 << 20, Total: 8 << 20},
		{Stage: build.StageFetch, Artifact: "containerd", Done: 1 << 20, Total: 8 << 20},
		{Stage: build.StageFetch, Artifact: "containerd", Done: 8 << 20, Total: 8 << 20},
		// A download of unknown size ends with the stage.
		{Stage: build.StageFetch, Artifact: "cni-plugins", Done: 5, Total: -1},
		{Stage: build.StageDisk, Message: "writing the disk image"},
		{Stage: build.StageCompose, Message: "composing"},
		{Stage: build.StageOutput, Message: "hashing the image"},
		{Stage: build.StageOutput, Message: "wrote out/worker.raw"},
	}
	for _, ev := range events {
		p.event(ev)
	}
	w := p.writer("go: ")
	fmt.Fprintf(w, "line one\nline ")
	fmt.Fprintf(w, "two\r\n\nthree")
	fmt.Fprintf(w, "\n")
	p.close()

	want := []string{
		"say: Resolving the base image",
		"say:   resolving base image oci:base",
		"say: Fetching components",
		"say:   resolving components",
		"say:   building kubelet v1.35.4: 812/1403 packages compiled, 2m10s",
		"say:   runc: from the cache",
		"bar: kubelet 100",
		"say:   kubelet: downloaded",
		"bar: containerd 8388608",
		"bar: containerd 8388608",
		"say:   containerd: downloaded",
		"bar: cni-plugins 0",
		"say: Writing the disk image",
		"say: Composing the root filesystem",
		"say:   composing",
		"say: Writing the outputs",
		"say:   hashing the image",
		"say:   wrote out/worker.raw",
		"say:   go: line one",
		"say:   go: line two",
		"say:   go: three",
	}
	if got := ui.Lines(); !slices.Equal(got, want) {
		t.Errorf("UI lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	wantBars := []struct {
		name string
		read int64
	}{{"kubelet", 100}, {"containerd", 3 << 20}, {"containerd", 8 << 20}, {"cni-plugins", 5}}
	if len(ui.bars) != len(wantBars) {
		t.Fatalf("%d progress bars, want %d", len(ui.bars), len(wantBars))
	}
	for i, w := range wantBars {
		b := ui.bars[i]
		if b.name != w.name || b.read != w.read || !b.closed {
			t.Errorf("bar %d: %s read %d closed %v; want %s read %d closed", i, b.name, b.read, b.closed, w.name, w.read)
		}
	}
}
