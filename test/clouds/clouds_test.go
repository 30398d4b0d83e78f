package clouds

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/test/harness"
)

// Page is the document under test, relative to the repository root.
const Page = "docs/clouds.md"

// checkedHeading introduces the table that says which plugin provides
// which post-processor, and at which version the recipes are checked.
const checkedHeading = "## How these recipes are checked"

// builtIn is how the table names Packer's own post-processors' plugin.
const builtIn = "built into Packer"

// page is docs/clouds.md, read and parsed.
type page struct {
	source  Block
	sourceH *HCL
	recipes []recipe
	all     []Block
	// packer is the Packer version the page says it is checked with.
	packer string
	// providers maps a post-processor type to its plugin's source address
	// ("" for Packer's own); versions maps a source address to the version
	// it is checked with.
	providers map[string]string
	versions  map[string]string
}

type recipe struct {
	Block
	hcl *HCL
}

func (r recipe) String() string {
	var types []string
	for _, p := range r.hcl.PostProcessors {
		types = append(types, p.Type)
	}
	return fmt.Sprintf("%s line %d (%s)", Page, r.Line, strings.Join(types, ", "))
}

func readPage(t *testing.T) *page {
	t.Helper()
	root := harness.RepoRoot(t)
	doc, err := os.ReadFile(filepath.Join(root, Page))
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := Blocks(doc)
	if err != nil {
		t.Fatalf("%s: %v", Page, err)
	}
	p := &page{all: blocks, providers: map[string]string{}, versions: map[string]string{}}
	var sources int
	for _, b := range blocks {
		if b.Tag != TagSource && b.Tag != TagValidate {
			continue
		}
		if b.Lang != "hcl" {
			t.Fatalf("%s line %d: a %q block tagged %s, want hcl", Page, b.Line, b.Lang, b.Tag)
		}
		h, err := ParseHCL(b.Text)
		if err != nil {
			t.Fatalf("%s line %d: %v", Page, b.Line, err)
		}
		if b.Tag == TagSource {
			sources++
			p.source, p.sourceH = b, h
			continue
		}
		p.recipes = append(p.recipes, recipe{b, h})
	}
	if sources != 1 {
		t.Fatalf("%s: %d blocks tagged %s, want 1", Page, sources, TagSource)
	}
	if len(p.recipes) == 0 {
		t.Fatalf("%s: no blocks tagged %s", Page, TagValidate)
	}
	p.readCheckedTable(t, doc)
	return p
}

var (
	backticked = regexp.MustCompile("`([^`]+)`")
	versionRe  = regexp.MustCompile(`^(Packer )?(v\d+\.\d+\.\d+)$`)
)

// readCheckedTable reads the table after checkedHeading: post-processors,
// their plugin, and the version they are checked with.
func (p *page) readCheckedTable(t *testing.T, doc []byte) {
	t.Helper()
	_, rest, ok := strings.Cut(string(doc), "\n"+checkedHeading+"\n")
	if !ok {
		t.Fatalf("%s: no %q section", Page, checkedHeading)
	}
	var rows int
	for _, l := range strings.Split(rest, "\n") {
		if strings.HasPrefix(l, "## ") {
			break
		}
		if !strings.HasPrefix(l, "| ") || strings.HasPrefix(l, "| ---") || strings.HasPrefix(l, "| post-processor ") {
			continue
		}
		cells := strings.Split(strings.Trim(l, "| "), " | ")
		if len(cells) != 3 {
			t.Fatalf("%s: row %q: want post-processors | plugin | version", Page, l)
		}
		m := versionRe.FindStringSubmatch(cells[2])
		if m == nil {
			t.Fatalf("%s: row %q: version %q, want vX.Y.Z or Packer vX.Y.Z", Page, l, cells[2])
		}
		source := ""
		if cells[1] == builtIn {
			if m[1] == "" {
				t.Fatalf("%s: row %q: Packer's own post-processors are checked with \"Packer vX.Y.Z\"", Page, l)
			}
			p.packer = m[2]
		} else {
			s := backticked.FindStringSubmatch(cells[1])
			if s == nil || !strings.HasPrefix(s[1], "github.com/hashicorp/") {
				t.Fatalf("%s: row %q: plugin %q, want `github.com/hashicorp/NAME` or %q", Page, l, cells[1], builtIn)
			}
			source = s[1]
			p.versions[source] = m[2]
		}
		for _, pp := range backticked.FindAllStringSubmatch(cells[0], -1) {
			p.providers[pp[1]] = source
		}
		rows++
	}
	if rows == 0 || p.packer == "" {
		t.Fatalf("%s: the %q table names no plugins, or not Packer's version", Page, checkedHeading)
	}
}

// commandRules are what every command of the page that does an import or
// a launch must say: UEFI everywhere, Secure Boot off, IMDSv2 with one
// hop. Each rule must match at least one command.
var commandRules = []struct {
	command string
	want    []string
}{
	{"aws ec2 register-image", []string{"--boot-mode uefi", "--ena-support"}},
	{"aws ec2 run-instances", []string{"HttpTokens=required", "HttpPutResponseHopLimit=1", "--user-data"}},
	{"gcloud compute images create", []string{"UEFI_COMPATIBLE"}},
	{"gcloud compute instances create", []string{"--metadata-from-file nodebake-node="}},
	{"az image create", []string{"--hyper-v-generation V2"}},
	{"az vm create", []string{"--security-type Standard", "--enable-agent false", "--user-data"}},
	{"openstack image create", []string{"hw_firmware_type=uefi"}},
	{"openstack server create", []string{"--user-data"}},
	{"govc vm.create", []string{"-firmware efi"}},
	{"qm create", []string{"--bios ovmf", "pre-enrolled-keys=0"}},
	{"virt-install", []string{"--boot uefi", "secure-boot", "enabled=no", "cidata"}},
	{"genisoimage", []string{"-volid cidata"}},
}

// TestRecipes checks what the page's recipes promise, without running
// anything: the fast half of the check.
func TestRecipes(t *testing.T) {
	p := readPage(t)

	formats := map[spec.Format]bool{}
	for _, f := range p.sourceH.Formats {
		if !slices.Contains(spec.Formats(), spec.Format(f)) {
			t.Errorf("%s line %d: format %q: not one of %v", Page, p.source.Line, f, spec.Formats())
		}
		formats[spec.Format(f)] = true
	}
	if _, ok := p.sourceH.Plugins["nodebake"]; !ok {
		t.Errorf("%s line %d: the source block does not require the nodebake plugin", Page, p.source.Line)
	}

	for _, r := range p.recipes {
		if len(r.hcl.PostProcessors) == 0 {
			t.Errorf("%s: no post-processor", r)
		}
		required := map[string]bool{}
		for _, s := range r.hcl.Plugins {
			required[s] = true
		}
		for i, pp := range r.hcl.PostProcessors {
			where := fmt.Sprintf("%s: post-processor %q (line %d)", r, pp.Type, r.Line+pp.Line)
			provider, known := p.providers[pp.Type]
			switch {
			case !known:
				t.Errorf("%s: not in the %q table", where, checkedHeading)
			case provider != "" && !required[provider]:
				t.Errorf("%s: its plugin %s is not in the block's required_plugins", where, provider)
			}
			if pp.Pos > 0 && strings.Contains(pp.Body, "build.") {
				t.Errorf("%s: uses build.* after the first post-processor of a chain, where Packer gives it \"<unknown>\"", where)
			}
			switch pp.Type {
			case "amazon-import":
				checkAttr(t, where, pp, "boot_mode", `"uefi"`)
				checkAttr(t, where, pp, "platform", `"linux"`)
				f := spec.Format(strings.Trim(pp.Attrs["format"], `"`))
				if !slices.Contains([]spec.Format{spec.FormatRaw, spec.FormatVMDK, spec.FormatVHD}, f) || !formats[f] {
					t.Errorf("%s: format %q: want raw, vmdk or vhd, built by the source (%v)", where, f, p.sourceH.Formats)
				}
			case "googlecompute-import":
				if pp.Pos == 0 || r.hcl.PostProcessors[i-1].Type != "artifice" {
					t.Errorf("%s: must follow artifice in a post-processors chain (it imports only artifice's or compress's artifact)", where)
				}
				if !strings.Contains(pp.Attrs["image_guest_os_features"], `"UEFI_COMPATIBLE"`) {
					t.Errorf("%s: image_guest_os_features %s lacks UEFI_COMPATIBLE", where, pp.Attrs["image_guest_os_features"])
				}
				if !formats[spec.FormatGCE] {
					t.Errorf("%s: the source does not build %s", where, spec.FormatGCE)
				}
			}
		}
	}

	for _, rule := range commandRules {
		var matched int
		for _, b := range p.all {
			for _, c := range Logical(b.Text) {
				if !strings.Contains(c, rule.command) {
					continue
				}
				matched++
				for _, w := range rule.want {
					if !strings.Contains(c, w) {
						t.Errorf("%s, block at line %d: %q lacks %q:\n%s", Page, b.Line, rule.command, w, c)
					}
				}
			}
		}
		if matched == 0 {
			t.Errorf("%s: no %q command", Page, rule.command)
		}
	}
}

func checkAttr(t *testing.T, where string, pp PostProcessor, name, want string) {
	t.Helper()
	if got := pp.Attrs[name]; got != want {
		t.Errorf("%s: %s = %s, want %s", where, name, got, want)
	}
}

// unknownArgument is the argument the control adds to every
// post-processor.
const unknownArgument = "nodebake_unknown_argument"

// TestPackerValidate runs a real `packer validate` on every recipe with
// the page's source block, with Packer and every plugin at the versions
// the page names: the slow half of the check.
func TestPackerValidate(t *testing.T) {
	harness.RequireSlow(t)
	p := readPage(t)
	root := harness.RepoRoot(t)
	harness.BaseLayout(t) // the source's spec_file, images/worker.yaml, starts from it
	packer := harness.Packer(t, p.packer)

	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// The nodebake plugin as plugin/Makefile.inc builds it, its
	// first-boot program embedded.
	start := time.Now()
	nodebake := harness.Plugin(t, bin)
	t.Logf("packer-plugin-nodebake: built in %s", time.Since(start).Round(time.Millisecond))

	environ := []string{
		"PACKER_PLUGIN_PATH=" + filepath.Join(tmp, "packer-plugins"),
		"PACKER_CONFIG_DIR=" + filepath.Join(tmp, "packer-config"),
		"PACKER_CACHE_DIR=" + filepath.Join(tmp, "packer-cache"),
		"CHECKPOINT_DISABLE=1",
	}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PACKER_") {
			environ = append(environ, kv)
		}
	}
	run(t, root, environ, packer, "plugins", "install", "--path", nodebake, "github.com/nodebake/nodebake")

	// Every plugin a recipe requires, at the version the page names.
	installed := map[string]bool{}
	for _, r := range p.recipes {
		for _, source := range r.hcl.Plugins {
			if installed[source] {
				continue
			}
			version, ok := p.versions[source]
			if !ok {
				t.Fatalf("%s requires %s, which the %q table does not name", r, source, checkedHeading)
			}
			name := strings.TrimPrefix(source, "github.com/hashicorp/")
			bin := harness.PackerPlugin(t, name, version) // logs how long it took
			run(t, root, environ, packer, "plugins", "install", "--path", bin, source)
			installed[source] = true
		}
	}

	for i, r := range p.recipes {
		var types []string
		for _, pp := range r.hcl.PostProcessors {
			types = append(types, pp.Type)
		}
		t.Run(fmt.Sprintf("line%d-%s", r.Line, strings.Join(types, "+")), func(t *testing.T) {
			dir := filepath.Join(tmp, fmt.Sprintf("recipe%d", i))
			write(t, dir, "source.pkr.hcl", p.source.Text)
			write(t, dir, "recipe.pkr.hcl", r.Text)
			start := time.Now()
			out, err := command(root, environ, packer, "validate", dir)
			if err != nil {
				t.Fatalf("%s: packer validate: %v\n%s", r, err, out)
			}
			t.Logf("FIGURE %s: packer validate passed in %s", r, time.Since(start).Round(time.Millisecond))

			// The control: every post-processor refuses an argument it
			// does not have, so its plugin's configuration was read.
			bad, lines := withUnknownArgument(r)
			broken := filepath.Join(tmp, fmt.Sprintf("recipe%d-control", i))
			write(t, broken, "source.pkr.hcl", p.source.Text)
			write(t, broken, "recipe.pkr.hcl", bad)
			out, err = command(root, environ, packer, "validate", broken)
			if err == nil {
				t.Fatalf("%s: packer validate accepted %s in every post-processor:\n%s", r, unknownArgument, out)
			}
			for j, pp := range r.hcl.PostProcessors {
				for _, w := range []string{
					fmt.Sprintf("post-processor-block %q", pp.Type),
					fmt.Sprintf("recipe.pkr.hcl:%d,", lines[j]),
				} {
					if !strings.Contains(out, w) {
						t.Errorf("%s: packer validate with %s in post-processor %q: output lacks %q:\n%s", r, unknownArgument, pp.Type, w, out)
					}
				}
			}
			if !strings.Contains(out, fmt.Sprintf("An argument named %q", unknownArgument)) {
				t.Errorf("%s: packer validate did not name %s:\n%s", r, unknownArgument, out)
			}
		})
	}
}

// withUnknownArgument returns the recipe with unknownArgument set in every
// post-processor, and the line each was put on.
func withUnknownArgument(r recipe) (string, []int) {
	src := strings.Split(strings.TrimSuffix(r.Text, "\n"), "\n")
	var (
		out   []string
		lines []int
		k     int
	)
	for n, l := range src {
		out = append(out, l)
		if k < len(r.hcl.PostProcessors) && r.hcl.PostProcessors[k].Line == n+1 {
			out = append(out, "  "+unknownArgument+` = "x"`)
			lines = append(lines, len(out))
			k++
		}
	}
	return strings.Join(out, "\n") + "\n", lines
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// command runs a program in dir and returns its combined output.
func command(dir string, environ []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = environ
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// run is command that fails the test when the program fails. A nil
// environ means this process's, for the Go tool, with cgo off.
func run(t *testing.T, dir string, environ []string, name string, args ...string) string {
	t.Helper()
	if environ == nil {
		environ = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	}
	out, err := command(dir, environ, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}
