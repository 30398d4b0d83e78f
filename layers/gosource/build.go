package gosource

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
)

// Builder runs the Go toolchain. Its zero value is usable.
type Builder struct {
	// Go is the go command; "go" when empty.
	Go string
	// Log receives the toolchain's output (module downloads, warnings,
	// errors), without the names of the packages it compiles; discarded
	// when nil.
	Log io.Writer
	// Progress, when set, receives a report on a build under way every
	// ProgressInterval, and one when it has finished.
	Progress func(Progress)
	// ProgressInterval is how often Progress is called; 10s when zero.
	ProgressInterval time.Duration
}

// DefaultProgressInterval is how often a build reports its progress.
const DefaultProgressInterval = 10 * time.Second

func (b Builder) goCmd() string {
	if b.Go != "" {
		return b.Go
	}
	return "go"
}

func (b Builder) log() io.Writer {
	if b.Log != nil {
		return b.Log
	}
	return io.Discard
}

// GoVersion reports the toolchain's version (e.g. "go1.26.8"); it is part of
// every build cache key, since another toolchain gives other bytes.
func (b Builder) GoVersion(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, b.goCmd(), "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("asking the go command for its version: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Build builds every binary of recipe r at version for linux/arch into
// outDir, which must exist. It writes nothing else into outDir.
func (b Builder) Build(ctx context.Context, r Recipe, version, arch, outDir string) error {
	if !semver.IsValid(version) {
		return fmt.Errorf("building %s: version %q is not a semantic version like v1.2.3", r.Component, version)
	}
	work, err := os.MkdirTemp("", "nodebake-gosource-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	rep := b.startReporter(r.Component, version)
	defer rep.stop()
	gomod, err := b.wrapperModule(ctx, work, r, version)
	if err != nil {
		return fmt.Errorf("building %s %s: %w", r.Component, version, err)
	}
	if err := os.WriteFile(filepath.Join(work, "go.mod"), gomod, 0o644); err != nil {
		return err
	}
	// Group binaries by their tag set: one go build per group.
	type group struct {
		tags []string
		bins []Binary
	}
	var groups []group
	for _, bin := range r.Binaries {
		tags := append(append([]string{}, r.Tags...), bin.ExtraTags...)
		key := strings.Join(tags, ",")
		found := false
		for i := range groups {
			if strings.Join(groups[i].tags, ",") == key {
				groups[i].bins = append(groups[i].bins, bin)
				found = true
			}
		}
		if !found {
			groups = append(groups, group{tags: tags, bins: []Binary{bin}})
		}
	}
	ldflags := append([]string{"-s", "-w", "-buildid="}, r.LDFlags(version)...)
	if r.CGO {
		ldflags = append(ldflags, "-linkmode=external", "-extldflags=-static")
	}
	if rep != nil {
		// The packages the binaries are built from, for the reports: `go
		// list` resolves the modules `go build` needs anyway.
		deps := map[string]bool{}
		for _, g := range groups {
			args := []string{"list", "-mod=mod", "-deps", "-f", "{{.ImportPath}}"}
			if len(g.tags) > 0 {
				args = append(args, "-tags", strings.Join(g.tags, ","))
			}
			for _, bin := range g.bins {
				args = append(args, bin.Package)
			}
			out, err := b.output(ctx, work, r, arch, args...)
			if err != nil {
				return fmt.Errorf("building %s %s: %w", r.Component, version, err)
			}
			for _, p := range strings.Fields(string(out)) {
				deps[p] = true
			}
		}
		rep.setTotal(len(deps))
	}
	for _, g := range groups {
		for _, bin := range g.bins {
			args := []string{"build", "-mod=mod", "-trimpath", "-buildvcs=false", "-v",
				"-o", filepath.Join(outDir, bin.Name),
				"-ldflags", strings.Join(ldflags, " ")}
			if len(g.tags) > 0 {
				args = append(args, "-tags", strings.Join(g.tags, ","))
			}
			args = append(args, bin.Package)
			if err := b.run(ctx, work, r, arch, rep, args...); err != nil {
				return fmt.Errorf("building %s %s (%s): %w", r.Component, version, bin.Name, err)
			}
		}
	}
	rep.finish()
	return nil
}

// command returns the go command for args, run in dir for linux/arch.
func (b Builder) command(ctx context.Context, dir string, r Recipe, arch string, args ...string) (*exec.Cmd, error) {
	cmd := exec.CommandContext(ctx, b.goCmd(), args...)
	cmd.Dir = dir
	cgo := "0"
	if r.CGO {
		cgo = "1"
		if arch != runtime.GOARCH {
			return nil, fmt.Errorf("%s needs cgo and cannot be cross-built for %s on %s", r.Component, arch, runtime.GOARCH)
		}
	}
	cmd.Env = append(os.Environ(),
		"GOOS=linux", "GOARCH="+arch, "CGO_ENABLED="+cgo,
		"GOFLAGS=", "GOWORK=off", "GO111MODULE=on", "GOTOOLCHAIN=local",
	)
	stopGroup(cmd)
	return cmd, nil
}

// stopGroup runs cmd in a process group of its own and, when the context
// ends, kills the group: the go command and the compilers and linkers it
// started, which would otherwise run on, holding its output open.
func stopGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
}

// run runs the go command; the names of the packages `go build -v`
// compiles go to rep, the rest of its output to the log.
func (b Builder) run(ctx context.Context, dir string, r Recipe, arch string, rep *reporter, args ...string) error {
	cmd, err := b.command(ctx, dir, r, arch, args...)
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	lines := &packageFilter{rep: rep, rest: io.MultiWriter(b.log(), &stderr)}
	cmd.Stdout = b.log()
	cmd.Stderr = lines
	err = cmd.Run()
	lines.flush()
	return b.cmdError(ctx, args[0], err, stderr.String())
}

// output runs the go command and returns its standard output.
func (b Builder) output(ctx context.Context, dir string, r Recipe, arch string, args ...string) ([]byte, error) {
	cmd, err := b.command(ctx, dir, r, arch, args...)
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = io.MultiWriter(b.log(), &stderr)
	out, err := cmd.Output()
	return out, b.cmdError(ctx, args[0], err, stderr.String())
}

// cmdError describes a go command that failed: the context's error when it
// was stopped, else the tail of what it said.
func (b Builder) cmdError(ctx context.Context, verb string, err error, stderr string) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	msg := strings.TrimSpace(stderr)
	if len(msg) > 2000 {
		msg = "…" + msg[len(msg)-2000:]
	}
	return fmt.Errorf("go %s: %w: %s", verb, err, msg)
}

// wrapperModule writes a go.mod that requires the recipe's module at version
// and carries over what `go build` of another module's packages would lose:
// its go and godebug lines, its excludes, and its replaces, with replaces
// that point into the module's own tree (Kubernetes' staging modules)
// mapped to the published module of the matching version.
func (b Builder) wrapperModule(ctx context.Context, work string, r Recipe, version string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, b.goCmd(), "mod", "download", "-json", r.Module+"@"+version)
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	stopGroup(cmd)
	out, err := cmd.Output()
	var info struct {
		GoMod string
		Error string
	}
	if jerr := json.Unmarshal(out, &info); jerr != nil && err == nil {
		err = jerr
	}
	if info.Error != "" {
		return nil, fmt.Errorf("downloading module %s@%s: %s", r.Module, version, info.Error)
	}
	if err != nil {
		return nil, fmt.Errorf("downloading module %s@%s: %w", r.Module, version, err)
	}
	src, err := os.ReadFile(info.GoMod)
	if err != nil {
		return nil, err
	}
	up, err := modfile.Parse(info.GoMod, src, nil)
	if err != nil {
		return nil, fmt.Errorf("parsing go.mod of %s@%s: %w", r.Module, version, err)
	}
	w := new(modfile.File)
	if err := w.AddModuleStmt("nodebake.build/" + r.Component); err != nil {
		return nil, err
	}
	goVersion := "1.24"
	if up.Go != nil {
		goVersion = up.Go.Version
	}
	if err := w.AddGoStmt(goVersion); err != nil {
		return nil, err
	}
	for _, g := range up.Godebug {
		if err := w.AddGodebug(g.Key, g.Value); err != nil {
			return nil, err
		}
	}
	if err := w.AddRequire(r.Module, version); err != nil {
		return nil, err
	}
	for _, m := range r.ExtraModules {
		if err := w.AddRequire(m, version); err != nil {
			return nil, err
		}
	}
	for _, e := range up.Exclude {
		if err := w.AddExclude(e.Mod.Path, e.Mod.Version); err != nil {
			return nil, err
		}
	}
	for _, rep := range up.Replace {
		newPath, newVersion := rep.New.Path, rep.New.Version
		if modfile.IsDirectoryPath(newPath) {
			var ok bool
			if newPath, newVersion, ok = publishedReplace(r, version, rep.Old.Path); !ok {
				// Not a published module at this version: a guard such as
				// etcd's "=> ./FORBIDDEN_DEPENDENCY"; it is no dependency.
				continue
			}
		}
		if err := w.AddReplace(rep.Old.Path, rep.Old.Version, newPath, newVersion); err != nil {
			return nil, err
		}
	}
	w.Cleanup()
	return w.Format()
}

// publishedReplace maps a replace of modPath by a directory of the
// recipe's own repository to the published module at the matching version;
// ok is false when no such module version can exist (a guard).
func publishedReplace(r Recipe, version, modPath string) (path, v string, ok bool) {
	v = version
	if r.ReplaceVersion != nil {
		v = r.ReplaceVersion(version)
	}
	_, pathMajor, valid := module.SplitPathVersion(modPath)
	if !valid || module.CheckPathMajor(v, pathMajor) != nil {
		return "", "", false
	}
	return modPath, v, true
}
