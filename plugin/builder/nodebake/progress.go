package nodebake

import (
	"bytes"
	"io"
	"strings"
	"sync"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/nodebake/nodebake/builder/build"
)

// detailIndent sets the lines of a stage off from its title.
const detailIndent = "  "

// stageTitles introduce each stage of the pipeline in the UI.
var stageTitles = map[build.Stage]string{
	build.StageResolve: "Resolving the base image",
	build.StageFetch:   "Fetching components",
	build.StageCompose: "Composing the root filesystem",
	build.StageDisk:    "Writing the disk image",
	build.StageOutput:  "Writing the outputs",
}

// progress forwards build events to Packer's UI: one ui.Say when a stage
// starts, then its messages, indented under it (ui.Message is deprecated
// and Packer shows it like ui.Say), and downloads as Packer progress bars
// (ui.TrackProgress).
type progress struct {
	mu        sync.Mutex
	ui        packersdk.Ui
	stage     build.Stage
	downloads map[string]*download
}

func newProgress(ui packersdk.Ui) *progress {
	return &progress{ui: ui, downloads: map[string]*download{}}
}

func (p *progress) event(ev build.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev.Stage != p.stage {
		if p.stage == build.StageFetch {
			p.closeDownloads()
		}
		p.stage = ev.Stage
		title := stageTitles[ev.Stage]
		if title == "" {
			title = string(ev.Stage)
		}
		p.ui.Say(title)
	}
	if ev.Artifact != "" {
		p.download(ev)
		return
	}
	if ev.Message != "" && !strings.EqualFold(ev.Message, stageTitles[ev.Stage]) {
		p.ui.Say(detailIndent + ev.Message)
	}
}

// download moves the progress bar of one artifact. An event with no size
// and no bytes is an artifact found in the cache.
func (p *progress) download(ev build.Event) {
	d := p.downloads[ev.Artifact]
	if d != nil && ev.Done < d.done {
		// A retry starts over.
		d.close()
		delete(p.downloads, ev.Artifact)
		d = nil
	}
	if d == nil {
		if ev.Total < 0 && ev.Done == 0 {
			p.ui.Say(detailIndent + ev.Artifact + ": from the cache")
			return
		}
		d = &download{}
		d.bar = p.ui.TrackProgress(ev.Artifact, 0, max(ev.Total, 0), d)
		p.downloads[ev.Artifact] = d
	}
	d.advance(ev.Done)
	if ev.Total > 0 && ev.Done >= ev.Total {
		d.close()
		delete(p.downloads, ev.Artifact)
		p.ui.Say(detailIndent + ev.Artifact + ": downloaded")
	}
}

func (p *progress) closeDownloads() {
	for name, d := range p.downloads {
		d.close()
		delete(p.downloads, name)
	}
}

// close ends the open progress bars.
func (p *progress) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeDownloads()
}

// writer returns a writer that says each line written to it, indented and
// prefixed.
func (p *progress) writer(prefix string) io.Writer {
	return &lineWriter{ui: p.ui, prefix: prefix}
}

// download is one progress bar. Packer's bar counts the bytes read through
// the stream it wraps; the stream here yields as many bytes as the
// download has advanced.
type download struct {
	bar     io.ReadCloser
	done    int64
	pending int64
	buf     []byte
}

// Read hands out the pending byte count; it never blocks.
func (d *download) Read(b []byte) (int, error) {
	if d.pending == 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), d.pending))
	d.pending -= int64(n)
	return n, nil
}

func (d *download) Close() error { return nil }

func (d *download) advance(done int64) {
	if done <= d.done {
		return
	}
	d.pending += done - d.done
	d.done = done
	if d.buf == nil {
		d.buf = make([]byte, 1<<20)
	}
	for d.pending > 0 {
		if _, err := d.bar.Read(d.buf); err != nil {
			break
		}
	}
}

func (d *download) close() { d.bar.Close() }

// lineWriter says complete lines through the UI.
type lineWriter struct {
	mu     sync.Mutex
	ui     packersdk.Ui
	prefix string
	buf    []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		if line := strings.TrimRight(string(w.buf[:i]), "\r"); line != "" {
			w.ui.Say(detailIndent + w.prefix + line)
		}
		w.buf = w.buf[i+1:]
	}
}
