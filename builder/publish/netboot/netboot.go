// Package netboot writes the network-boot bundle of a built nodebake disk
// image, for bare metal that boots over the network (iPXE) or any loader
// that takes a kernel, an initrd and a command line:
//
//	vmlinuz        the image's kernel
//	initrd.img     the image's initrd followed by a small uncompressed cpio
//	               archive (the kernel unpacks concatenated archives) that
//	               adds the initramfs-tools boot script scripts/nodebake-http
//	               and the nodebake-firstboot program, which downloads the
//	               root image and checks its SHA-256
//	root.squashfs  the image's read-only root filesystem, byte for byte
//	boot.ipxe      an iPXE script booting the three from one base URL
//	SHA256SUMS     the digests of the four, as sha256sum -c reads them
//
// The kernel command line is the image's own (from its loader entry) with
// root= and rootfstype= replaced by boot=nodebake-http, the root's URL and
// digest and ip=dhcp, plus fstab=no and a tmpfs /var
// (systemd.mount-extra=), since a diskless node has no /var partition.
//
// The same image and options give the same bytes.
package netboot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// File names in the bundle.
const (
	KernelName = "vmlinuz"
	InitrdName = "initrd.img"
	RootName   = "root.squashfs"
	IPXEName   = "boot.ipxe"
	SumsName   = "SHA256SUMS"
)

// Files returns the names of every file of a bundle, in the order they are
// written.
func Files() []string { return []string{KernelName, InitrdName, RootName, IPXEName, SumsName} }

// Paths inside the initrd.
const (
	BootScript    = "scripts/nodebake-http"
	FetchProgram  = "usr/lib/nodebake/nodebake-firstboot"
	bootName      = "nodebake-http"
	baseURLVar    = "${base-url}"
	defaultVarTmp = "systemd.mount-extra=tmpfs:/var:tmpfs:mode=0755"
)

//go:embed nodebake-http.sh
var bootScript []byte

// Options configure Write.
type Options struct {
	// FirstbootBinary is the statically linked nodebake-firstboot program
	// (it runs in the initrd, which has no C library to speak of); required.
	FirstbootBinary string
	// BaseURL is the http:// or https:// URL the bundle directory will be
	// served from. When set, boot.ipxe and the command line name it; when
	// empty, boot.ipxe derives it at boot (the base-url setting if set,
	// else iPXE's cwduri: the directory boot.ipxe was loaded from) and the
	// command line holds the placeholder ${base-url} (see
	// Bundle.CmdlineFor).
	BaseURL string
	// ModTime is the modification time of every file written and of every
	// member of the added cpio archive. The zero time means the Unix epoch.
	ModTime time.Time
	// ExtraArgs are appended to the kernel command line. A word whose key
	// (the text before "=") is one the bundle sets replaces the bundle's
	// word (for systemd.mount-extra=, one with the same mount point).
	ExtraArgs []string
}

// Bundle describes a written bundle.
type Bundle struct {
	Dir                              string
	Kernel, Initrd, Root, IPXE, Sums string // paths of the files
	// RootSHA256 and RootSize describe root.squashfs.
	RootSHA256 string
	RootSize   int64
	// Cmdline is the kernel command line boot.ipxe passes (without iPXE's
	// own initrd= word).
	Cmdline string
	// SHA256 maps each file name (SHA256SUMS too) to its digest.
	SHA256 map[string]string
}

// CmdlineFor returns Cmdline for a bundle served from baseURL: the
// ${base-url} placeholder (present when Options.BaseURL was empty)
// replaced.
func (b *Bundle) CmdlineFor(baseURL string) string {
	return strings.ReplaceAll(b.Cmdline, baseURLVar, strings.TrimRight(baseURL, "/"))
}

// Write reads the disk image raw and writes the bundle into dir, which
// must not exist or be empty. Everything is written into a temporary
// directory next to dir that is renamed to dir at the end; on error
// nothing is left behind.
func Write(ctx context.Context, dir string, raw string, opts Options) (b *Bundle, err error) {
	baseURL, err := checkBaseURL(opts.BaseURL)
	if err != nil {
		return nil, err
	}
	for i, a := range opts.ExtraArgs {
		if a == "" || strings.ContainsAny(a, " \t\n\r\"") {
			return nil, fmt.Errorf("netboot: ExtraArgs[%d] %q: want one word without blanks or quotes", i, a)
		}
	}
	if dir == "" {
		return nil, errors.New("netboot: no output directory")
	}
	if err := checkFirstboot(opts.FirstbootBinary); err != nil {
		return nil, err
	}
	fb := opts.FirstbootBinary
	mtime := opts.ModTime
	if mtime.IsZero() {
		mtime = time.Unix(0, 0)
	}

	img, err := os.Open(raw)
	if err != nil {
		return nil, fmt.Errorf("netboot: opening the disk image: %w", err)
	}
	defer img.Close()
	parts, err := readGPT(img, raw)
	if err != nil {
		return nil, err
	}
	espPart, rootPart, err := findPartitions(parts, raw)
	if err != nil {
		return nil, err
	}
	rootSize, err := squashfsSize(io.NewSectionReader(img, rootPart.start, rootPart.size()), rootPart.size(), raw)
	if err != nil {
		return nil, err
	}
	e, err := openESP(img, espPart, raw)
	if err != nil {
		return nil, err
	}
	entry, err := e.entry()
	if err != nil {
		return nil, err
	}

	if err := os.MkdirAll(filepath.Dir(filepath.Clean(dir)), 0o755); err != nil {
		return nil, fmt.Errorf("netboot: creating the parent of %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(filepath.Clean(dir)), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return nil, fmt.Errorf("netboot: creating a temporary directory: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	sums := map[string]string{}
	write := func(name string, fill func(io.Writer) error) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		sum, err := writeFile(filepath.Join(tmp, name), mtime, fill)
		if err != nil {
			return fmt.Errorf("netboot: writing %s: %w", name, err)
		}
		sums[name] = sum
		return nil
	}

	// vmlinuz and initrd.img, from the ESP.
	if err := write(KernelName, func(w io.Writer) error { return e.copyTo(w, entry.linux) }); err != nil {
		return nil, err
	}
	if err := write(InitrdName, func(w io.Writer) error { return writeInitrd(w, e, entry.initrd, fb, mtime) }); err != nil {
		return nil, err
	}
	// root.squashfs, the root partition's squashfs.
	if err := write(RootName, func(w io.Writer) error {
		n, err := io.Copy(w, io.NewSectionReader(img, rootPart.start, rootSize))
		if err == nil && n != rootSize {
			err = fmt.Errorf("read %d of %d bytes of the root partition of %s", n, rootSize, raw)
		}
		return err
	}); err != nil {
		return nil, err
	}

	base := baseURL
	if base == "" {
		base = baseURLVar
	}
	cmdline := kernelCmdline(entry.options, base+"/"+RootName, sums[RootName], opts.ExtraArgs)
	if err := write(IPXEName, func(w io.Writer) error {
		_, err := io.WriteString(w, ipxeScript(baseURL, cmdline))
		return err
	}); err != nil {
		return nil, err
	}
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	if err := write(SumsName, func(w io.Writer) error {
		for _, n := range names {
			if _, err := fmt.Fprintf(w, "%s  %s\n", sums[n], n); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}

	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("netboot: %w", err)
	}
	if err := os.Chtimes(tmp, mtime, mtime); err != nil {
		return nil, fmt.Errorf("netboot: %w", err)
	}
	if err := syncDir(tmp); err != nil {
		return nil, fmt.Errorf("netboot: syncing %s: %w", tmp, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("netboot: renaming %s to %s (the output directory must not exist or be empty): %w", tmp, dir, err)
	}
	_ = syncDir(filepath.Dir(filepath.Clean(dir)))

	return &Bundle{
		Dir:        dir,
		Kernel:     filepath.Join(dir, KernelName),
		Initrd:     filepath.Join(dir, InitrdName),
		Root:       filepath.Join(dir, RootName),
		IPXE:       filepath.Join(dir, IPXEName),
		Sums:       filepath.Join(dir, SumsName),
		RootSHA256: sums[RootName],
		RootSize:   rootSize,
		Cmdline:    cmdline,
		SHA256:     sums,
	}, nil
}

// checkBaseURL validates u and returns it without trailing slashes.
func checkBaseURL(u string) (string, error) {
	if u == "" {
		return "", nil
	}
	p, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("netboot: BaseURL %q: %w", u, err)
	}
	if p.Scheme != "http" && p.Scheme != "https" || p.Host == "" || p.RawQuery != "" || p.Fragment != "" {
		return "", fmt.Errorf("netboot: BaseURL %q: want http:// or https:// with a host and no query", u)
	}
	if strings.ContainsAny(u, " \t\n\"${}") {
		return "", fmt.Errorf("netboot: BaseURL %q: blanks, quotes, $ and braces are not allowed", u)
	}
	return strings.TrimRight(u, "/"), nil
}

// checkFirstboot checks that p is a statically linked ELF program.
func checkFirstboot(p string) error {
	if p == "" {
		return errors.New("netboot: FirstbootBinary: no nodebake-firstboot program given")
	}
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("netboot: FirstbootBinary: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("netboot: FirstbootBinary %s: not a regular file", p)
	}
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("netboot: FirstbootBinary %s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("netboot: FirstbootBinary %s is dynamically linked: build it with CGO_ENABLED=0", p)
		}
	}
	return nil
}

// writeFile creates p (0644), fills it through fill, syncs it, sets its
// times and returns its SHA-256.
func writeFile(p string, mtime time.Time, fill func(io.Writer) error) (string, error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	bw := &hashWriter{w: f, h: h}
	if err := fill(bw); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

type hashWriter struct {
	w io.Writer
	h hash.Hash
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	return n, err
}

func syncDir(d string) error {
	f, err := os.Open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// copyTo copies an ESP file to w.
func (e *esp) copyTo(w io.Writer, p string) error {
	r, err := e.open(p)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("%s: reading ESP file %s: %w", e.name, p, err)
	}
	return nil
}

// writeInitrd writes the image's initrd, zero padding to a multiple of 4
// bytes (where the kernel looks for the next archive), and the cpio
// archive that adds the boot script and the fetch program.
func writeInitrd(w io.Writer, e *esp, initrd string, firstboot string, mtime time.Time) error {
	cw := &countWriter{w: w}
	if err := e.copyTo(cw, initrd); err != nil {
		return err
	}
	if r := cw.n % 4; r != 0 {
		if _, err := cw.Write(make([]byte, 4-r)); err != nil {
			return err
		}
	}
	_, err := writeCpio(cw, initrdAdditions(firstboot), mtime)
	return err
}

// initrdAdditions are the members of the added archive.
func initrdAdditions(firstboot string) []cpioEntry {
	fbSize := int64(-1)
	if fi, err := os.Stat(firstboot); err == nil {
		fbSize = fi.Size()
	}
	dir := func(name string) cpioEntry { return cpioEntry{name: name, mode: 0o755, dir: true} }
	return []cpioEntry{
		dir("scripts"),
		{name: BootScript, mode: 0o644, size: int64(len(bootScript)), open: func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(bootScript)), nil
		}},
		dir("usr"),
		dir("usr/lib"),
		dir("usr/lib/nodebake"),
		{name: FetchProgram, mode: 0o755, size: fbSize, open: func() (io.ReadCloser, error) { return os.Open(firstboot) }},
	}
}

// keyOf is the part of a command-line word that decides whether one word
// replaces another: the text before "=", and for systemd.mount-extra= the
// mount point too.
func keyOf(word string) string {
	k, v, _ := strings.Cut(word, "=")
	if k == "systemd.mount-extra" {
		if parts := strings.Split(v, ":"); len(parts) >= 2 {
			return k + "=" + parts[1]
		}
	}
	return k
}

// replaced reports whether the bundle drops a word with key k from the
// image's command line: it sets its own.
func replaced(k string) bool {
	switch k {
	case "root", "rootfstype", "rootflags", "boot", "ip", "fstab", "nodebake.root", "nodebake.root.sha256", "initrd":
		return true
	}
	return false
}

// kernelCmdline rewrites the loader entry's options for a network root at
// rootURL with digest sum: root=/rootfstype= (and any boot=, ip=, fstab=)
// give way to the bundle's words, which come first; the image's other
// words follow, then extra. A word of extra with the key of one of the
// bundle's words replaces that word.
func kernelCmdline(options, rootURL, sum string, extra []string) string {
	ours := []string{
		"boot=" + bootName,
		"nodebake.root=" + rootURL,
		"nodebake.root.sha256=" + sum,
		"ip=dhcp",
		"fstab=no",
		defaultVarTmp,
	}
	overridden := map[string]bool{}
	for _, a := range extra {
		overridden[keyOf(a)] = true
	}
	var words []string
	for _, w := range ours {
		if !overridden[keyOf(w)] {
			words = append(words, w)
		}
	}
	for _, w := range strings.Fields(options) {
		k, _, _ := strings.Cut(w, "=")
		if replaced(k) || overridden[keyOf(w)] {
			continue
		}
		words = append(words, w)
	}
	return strings.Join(append(words, extra...), " ")
}

// ipxeScript is boot.ipxe. With baseURL empty the script takes the
// base-url setting when it is set, else iPXE's cwduri (the directory the
// script was loaded from; iPXE builds without that setting need base-url).
func ipxeScript(baseURL, cmdline string) string {
	var b strings.Builder
	b.WriteString("#!ipxe\n")
	b.WriteString("# nodebake network boot: kernel, initrd and the read-only root image\n")
	b.WriteString("# (root.squashfs, checked against its SHA-256 by the initrd) from one base URL.\n")
	if baseURL != "" {
		fmt.Fprintf(&b, "set base-url %s\n", baseURL)
	} else {
		b.WriteString("# base-url: set it before chaining this script, or let it default to the\n")
		b.WriteString("# directory this script was loaded from (iPXE's cwduri setting).\n")
		b.WriteString("isset ${base-url} || set base-url ${cwduri}\n")
		b.WriteString("isset ${base-url} || goto no-base-url\n")
	}
	b.WriteString("echo nodebake: booting from ${base-url}\n")
	fmt.Fprintf(&b, "kernel ${base-url}/%s initrd=%s %s || goto failed\n", KernelName, InitrdName, cmdline)
	fmt.Fprintf(&b, "initrd ${base-url}/%s || goto failed\n", InitrdName)
	b.WriteString("boot || goto failed\n")
	if baseURL == "" {
		b.WriteString(":no-base-url\n")
		b.WriteString("echo nodebake: base-url is not set and this iPXE has no cwduri setting: set base-url to the bundle's URL first\n")
		b.WriteString("exit 1\n")
	}
	b.WriteString(":failed\n")
	b.WriteString("echo nodebake: network boot from ${base-url} failed\n")
	b.WriteString("exit 1\n")
	return b.String()
}
