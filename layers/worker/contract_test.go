package worker

import (
	"archive/tar"
	"encoding/json"
	"io"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nodebake/nodebake/layers/entry"
	"github.com/nodebake/nodebake/layers/firstboot"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
)

func readEntry(t *testing.T, e entry.Entry) string {
	t.Helper()
	rc, err := e.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestFactsContract checks the image side of the first-boot contract: the
// facts baked at firstboot.FactsPath are what the program parses, equal
// ImageFacts (which the CLI checks node configs against), and name
// templates the image bakes.
func TestFactsContract(t *testing.T) {
	s := load(t, minimal)
	ents, err := Render(s)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]entry.Entry{}
	for _, e := range ents {
		byPath[e.Path] = e
	}
	fe, ok := byPath[firstboot.FactsPath]
	if !ok {
		t.Fatalf("no facts at %s", firstboot.FactsPath)
	}
	facts, err := nodeconfig.ParseImageFacts([]byte(readEntry(t, fe)))
	if err != nil {
		t.Fatalf("the first-boot program would refuse the baked facts: %v", err)
	}
	if want := ImageFacts(s); !reflect.DeepEqual(facts, want) {
		t.Errorf("baked facts %+v, ImageFacts %+v", facts, want)
	}
	for _, p := range []string{facts.KubeletConfigTemplate, facts.KubeProxyConfigTemplate} {
		e, ok := byPath[p]
		if !ok || e.Type != tar.TypeReg {
			t.Errorf("the facts name %s, which the image does not bake", p)
			continue
		}
		var doc map[string]any
		if err := json.Unmarshal([]byte(readEntry(t, e)), &doc); err != nil {
			t.Errorf("%s: not a JSON object: %v", p, err)
		}
	}
	if facts.PodNetwork != string(s.Kubernetes.PodNetwork) || facts.ServiceCIDR != s.Kubernetes.ServiceCIDR || facts.ClusterCIDR != s.Kubernetes.ClusterCIDR {
		t.Errorf("facts %+v do not follow the spec", facts)
	}
}

// TestFirstbootContract checks that the program is baked where its unit
// runs it, that the unit imports the credential the program reads, and
// that it is enabled.
func TestFirstbootContract(t *testing.T) {
	prog := filepath.Join(t.TempDir(), "nodebake-firstboot")
	if err := os.WriteFile(prog, []byte("#!program"), 0o755); err != nil {
		t.Fatal(err)
	}
	ents, err := Firstboot(prog)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]entry.Entry{}
	for _, e := range ents {
		byPath[e.Path] = e
	}
	p, ok := byPath[firstboot.ProgramPath]
	if !ok || p.Mode != 0o755 || readEntry(t, p) != "#!program" {
		t.Fatalf("program entry at %s = %+v", firstboot.ProgramPath, p)
	}
	unit, ok := byPath[SystemdUnitDir+"/nodebake-firstboot.service"]
	if !ok {
		t.Fatal("no nodebake-firstboot.service")
	}
	text := readEntry(t, unit)
	for _, want := range []string{"ExecStart=" + firstboot.ProgramPath + "\n", "ImportCredential=" + firstboot.CredentialName + "\n", "WantedBy=sysinit.target"} {
		if !strings.Contains(text, want) {
			t.Errorf("unit lacks %q:\n%s", want, text)
		}
	}
	if l, ok := byPath[SystemdUnitDir+"/sysinit.target.wants/nodebake-firstboot.service"]; !ok || l.Linkname != "../nodebake-firstboot.service" {
		t.Errorf("unit not enabled: %+v", l)
	}

	for _, bad := range []string{"", filepath.Join(t.TempDir(), "missing"), t.TempDir()} {
		if _, err := Firstboot(bad); err == nil {
			t.Errorf("Firstboot(%q) accepted", bad)
		}
	}
}

// TestUnitsUseTheContract checks that the kubelet unit waits for the
// program's marker and reads its environment file, and that tmpfiles
// creates the directories the program writes to.
func TestUnitsUseTheContract(t *testing.T) {
	ents, err := Render(load(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range ents {
		if e.Type == tar.TypeReg {
			files[e.Path] = readEntry(t, e)
		}
	}
	kubelet := files[SystemdUnitDir+"/kubelet.service"]
	for _, want := range []string{"ConditionPathExists=" + firstboot.ReadyPath, "EnvironmentFile=-" + firstboot.KubeletEnvPath} {
		if !strings.Contains(kubelet, want) {
			t.Errorf("kubelet.service lacks %q", want)
		}
	}
	tmp := files["/etc/tmpfiles.d/nodebake.conf"]
	for _, d := range []string{RunDir(), firstboot.CertDir, CNIConfigDir()} {
		if !strings.Contains(tmp, "d "+d+" ") {
			t.Errorf("tmpfiles does not create %s:\n%s", d, tmp)
		}
	}
}

// TestContractDirectories checks that the directories the image derives
// from the first-boot program's paths hold all of them: tmpfiles creates
// RunDir for everything the program writes per boot, and LibDir holds
// what the image bakes for it.
func TestContractDirectories(t *testing.T) {
	for _, p := range []string{firstboot.ReadyPath, firstboot.StatusPath, firstboot.KubeletEnvPath} {
		if path.Dir(p) != RunDir() {
			t.Errorf("%s is not in %s", p, RunDir())
		}
	}
	for _, p := range []string{firstboot.ProgramPath, firstboot.FactsPath, KubeletConfigTemplate(), KubeProxyConfigTemplate(), ImageInfo(), PreloadDir()} {
		if path.Dir(p) != LibDir() {
			t.Errorf("%s is not in %s", p, LibDir())
		}
	}
	if LibDir() != "/usr/lib/nodebake" || RunDir() != "/run/nodebake" || CNIConfigDir() != "/var/lib/cni/net.d" {
		t.Errorf("directories moved: %s %s %s", LibDir(), RunDir(), CNIConfigDir())
	}
}

// TestManagedPathsCoverTheImage: every file, link and unit the image
// renders is one of the spec's managed paths (or below one), so that
// validation refuses a spec's file there rather than the build failing on
// a path given twice.
func TestManagedPathsCoverTheImage(t *testing.T) {
	s := load(t, minimal)
	ents, err := Render(s)
	if err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(t.TempDir(), "nodebake-firstboot")
	if err := os.WriteFile(prog, []byte("#!program"), 0o755); err != nil {
		t.Fatal(err)
	}
	fb, err := Firstboot(prog)
	if err != nil {
		t.Fatal(err)
	}
	specFiles := map[string]bool{}
	for _, f := range s.Files {
		specFiles[f.Path] = true
	}
	managed := s.ManagedPaths()
	for _, e := range append(ents, fb...) {
		// A spec's own resolv.conf replaces the image's (see Render).
		if specFiles[e.Path] || e.Type == tar.TypeDir || e.Path == ResolvConf {
			continue
		}
		covered := false
		for _, m := range managed {
			covered = covered || e.Path == m || strings.HasPrefix(e.Path, m+"/")
		}
		if !covered {
			t.Errorf("the image renders %s, which spec.ManagedPaths does not cover", e.Path)
		}
	}
}

// TestUnitsDenyIP: the kubelet and kube-proxy units deny IP traffic but
// loopback, the first-boot program's drop-ins (named by the same unit
// names) allow the rest, and the units still wait for node-ready.
func TestUnitsDenyIP(t *testing.T) {
	ents, err := Render(load(t, minimal))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range ents {
		if e.Type == tar.TypeReg {
			files[e.Path] = readEntry(t, e)
		}
	}
	for _, u := range []string{firstboot.KubeletUnit, firstboot.KubeProxyUnit} {
		text, ok := files[SystemdUnitDir+"/"+u]
		if !ok {
			t.Fatalf("no %s", u)
		}
		for _, want := range []string{"\nIPAddressDeny=any\n", "\nIPAddressAllow=localhost\n", "\nConditionPathExists=" + firstboot.ReadyPath + "\n", firstboot.IPAccessPath(u)} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q", u, want)
			}
		}
		if path.Dir(firstboot.IPAccessPath(u)) != firstboot.RuntimeUnitDir+"/"+u+".d" {
			t.Errorf("the drop-in %s is not in %s's drop-in directory", firstboot.IPAccessPath(u), u)
		}
	}
}

// TestSpecResolvConf: a spec's own /etc/resolv.conf replaces the image's
// placeholder, instead of being rendered twice.
func TestSpecResolvConf(t *testing.T) {
	ents, err := Render(load(t, minimal+"  - {path: /etc/resolv.conf, content: \"nameserver 192.0.2.53\\n\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		if e.Path == ResolvConf {
			got = append(got, readEntry(t, e))
		}
	}
	if len(got) != 1 || got[0] != "nameserver 192.0.2.53\n" {
		t.Errorf("resolv.conf entries %q, want only the spec's", got)
	}
}
