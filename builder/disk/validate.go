package disk

import (
	"fmt"
	"path"
	"strings"
)

// FieldError is one problem with an Image, located by its field
// ("ESPSize", "ExtraESP[2].Path").
type FieldError struct {
	Field string
	Msg   string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Msg }

// ValidationError lists every problem found in an Image.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		msgs[i] = fe.Error()
	}
	return "invalid disk image: " + strings.Join(msgs, "; ")
}

// Has reports whether a problem is recorded for field.
func (e *ValidationError) Has(field string) bool {
	for _, fe := range e.Errors {
		if fe.Field == field {
			return true
		}
	}
	return false
}

type problems []FieldError

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks img without writing anything and returns a
// *ValidationError listing every problem, or nil.
func (img Image) Validate() error {
	var p problems
	if _, ok := arches[img.Arch]; !ok {
		p.add("Arch", "unknown architecture %q, want amd64 or arm64", img.Arch)
	}
	if len(img.Seed) == 0 {
		p.add("Seed", "empty; every GUID derives from it")
	}
	if y := img.ModTime.UTC().Year(); y < 1980 || y > 2107 {
		p.add("ModTime", "%s is outside the FAT date range 1980..2107", img.ModTime.UTC().Format("2006-01-02T15:04:05Z"))
	}
	espOK := true
	switch s := img.ESPSize; {
	case s%MiB != 0:
		p.add("ESPSize", "%d bytes is not a multiple of 1 MiB", s)
		espOK = false
	case s < minESPSize || s > maxESPSize:
		p.add("ESPSize", "%d MiB is outside %d..%d MiB", s/MiB, minESPSize/MiB, maxESPSize/MiB)
		espOK = false
	case !ValidESPSize(s):
		p.add("ESPSize", "%d MiB gives an invalid FAT32 with go-diskfs v1.9.4 (upstream issue #418); %d MiB is known good", s/MiB, DefaultESPSize/MiB)
		espOK = false
	}
	if img.VarSize <= 0 || img.VarSize%MiB != 0 {
		p.add("VarSize", "%d bytes is not a positive multiple of 1 MiB", img.VarSize)
	}
	if img.DiskSize < 0 || img.DiskSize%MiB != 0 {
		p.add("DiskSize", "%d bytes is not a multiple of 1 MiB", img.DiskSize)
	} else if espOK && img.DiskSize > 0 && img.DiskSize < 2*partitionAlign+img.ESPSize+img.VarSize {
		p.add("DiskSize", "%d MiB cannot hold the GPT, the %d MiB ESP, a root filesystem and %d MiB of /var", img.DiskSize/MiB, img.ESPSize/MiB, img.VarSize/MiB)
	}
	checkFile(&p, "Kernel", img.Kernel, true)
	checkFile(&p, "Initrd", img.Initrd, true)
	checkFile(&p, "Bootloader", img.Bootloader, false)
	for i, f := range img.ExtraESP {
		field := fmt.Sprintf("ExtraESP[%d]", i)
		if f.Path == "" {
			p.add(field+".Path", "empty")
		}
		checkFile(&p, field, f, true)
	}
	for i, w := range img.Cmdline {
		field := fmt.Sprintf("Cmdline[%d]", i)
		switch {
		case w == "":
			p.add(field, "empty word")
		case strings.ContainsFunc(w, isControl):
			p.add(field, "%q contains a control character", w)
		case strings.HasPrefix(w, "root=") || strings.HasPrefix(w, "rootfstype="):
			p.add(field, "%q: root= and rootfstype= are set by the disk writer", w)
		}
	}
	if strings.ContainsFunc(img.Title, isControl) {
		p.add("Title", "%q contains a control character", img.Title)
	}
	if img.WriteRoot == nil {
		p.add("WriteRoot", "missing")
	}
	if img.Verified != nil {
		checkVerified(&p, img)
	}
	if _, ok := arches[img.Arch]; ok {
		checkESPTree(&p, img, espOK)
	}
	if len(p) > 0 {
		return &ValidationError{Errors: p}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// checkFile checks one input file; withPath says whether its Path is used.
func checkFile(p *problems, field string, f File, withPath bool) {
	if f.Open == nil {
		p.add(field+".Open", "missing")
	}
	if f.Size < 0 || (f.Size == 0 && !strings.HasPrefix(field, "ExtraESP")) {
		p.add(field+".Size", "%d, want > 0", f.Size)
	}
	if withPath && f.Path != "" {
		if err := checkESPPath(f.Path); err != nil {
			p.add(field+".Path", "%v", err)
		}
	}
}

// checkESPPath checks that p is a usable FAT long file name path.
func checkESPPath(p string) error {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("%q is not a clean absolute file path", p)
	}
	for _, c := range strings.Split(p[1:], "/") {
		switch {
		case len(c) > 255:
			return fmt.Errorf("%q: name %.20q... is longer than 255 characters", p, c)
		case strings.HasSuffix(c, ".") || strings.HasSuffix(c, " ") || strings.HasPrefix(c, " "):
			return fmt.Errorf("%q: name %q starts with a space or ends with a dot or space", p, c)
		case strings.ContainsAny(c, `"*:<>?\|`):
			return fmt.Errorf("%q: name %q contains a character FAT forbids", p, c)
		case strings.ContainsFunc(c, func(r rune) bool { return r < 0x20 || r > 0x7e }):
			return fmt.Errorf("%q: name %q is not printable ASCII", p, c)
		}
	}
	return nil
}

// checkESPTree checks that the ESP paths do not collide (FAT compares names
// case-insensitively) and, when the ESP size is usable, that they fit.
func checkESPTree(p *problems, img Image, checkFit bool) {
	files := espContents(img, ids{})
	var reserve int64 // room kept free, in bytes
	if v := img.Verified; v != nil {
		est := ukiEstimate(img)
		files = verifiedESPContents(img, img.Bootloader, File{Open: img.Kernel.Open, Size: est})
		// systemd-sysupdate writes the next version's UKI beside this one:
		// keep room for one half again as large.
		reserve = est + est/2
	}
	owner := map[string]string{} // lower-case path → field of the file there
	children := map[string][]string{"/": nil}
	for _, f := range files {
		if checkESPPath(f.Path) != nil {
			return // reported already
		}
		key := strings.ToLower(f.Path)
		if prev, ok := owner[key]; ok {
			p.add(f.field+".Path", "%s is also the ESP path of %s", f.Path, prev)
			continue
		}
		owner[key] = f.field
		children[strings.ToLower(path.Dir(f.Path))] = append(children[strings.ToLower(path.Dir(f.Path))], path.Base(f.Path))
		for _, d := range parentDirs(f.Path) {
			dk := strings.ToLower(d)
			if _, ok := children[dk]; !ok {
				children[dk] = nil
				parent := strings.ToLower(path.Dir(d))
				children[parent] = append(children[parent], path.Base(d))
			}
		}
	}
	for _, f := range files {
		key := strings.ToLower(f.Path)
		if _, isDir := children[key]; isDir && owner[key] == f.field {
			p.add(f.field+".Path", "%s is a directory of other ESP files", f.Path)
		}
	}
	if !checkFit {
		return
	}
	clusterBytes, clusters := fat32Geometry(img.ESPSize)
	var need int64
	for dir, names := range children {
		entries := int64(0)
		if dir == "/" {
			entries++ // volume label
		} else {
			entries += 2 // "." and ".."
		}
		for _, n := range names {
			entries += 1 + int64(len(n)+12)/13 // short entry and long name slots
		}
		need += max(1, ceilDiv(entries*32, clusterBytes))
	}
	for _, f := range files {
		need += max(1, ceilDiv(f.Size, clusterBytes))
	}
	if need > clusters {
		p.add("ESPSize", "%d MiB holds %d KiB of files and directories, the ESP contents need %d KiB",
			img.ESPSize/MiB, clusters*clusterBytes>>10, need*clusterBytes>>10)
	} else if reserve > 0 && need+ceilDiv(reserve, clusterBytes) > clusters {
		p.add("ESPSize", "%d MiB holds %d KiB, the ESP contents need %d KiB and the next version's UKI about %d KiB more",
			img.ESPSize/MiB, clusters*clusterBytes>>10, need*clusterBytes>>10, reserve>>10)
	}
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }
