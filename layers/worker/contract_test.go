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
	"github.com/nodebake/nodebake/layers/firstboot/growvar"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/firstboot/platform"
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
	for _, want := range []string{"ExecStart=" + firstboot.ProgramPath + "\n", "ImportCredential=" + firstboot.CredentialName + "\n", "WantedBy=multi-user.target"} {
		if !strings.Contains(text, want) {
			t.Errorf("unit lacks %q:\n%s", want, text)
		}
	}
	if l, ok := byPath[SystemdUnitDir+"/multi-user.target.wants/nodebake-firstboot.service"]; !ok || l.Linkname != "../nodebake-firstboot.service" {
		t.Errorf("unit not enabled: %+v", l)
	}

	// /var's growth: the unit runs the program and is enabled by nothing
	// but /var's fstab line; systemd-repart's definition is where the
	// program points it.
	grow, ok := byPath[SystemdUnitDir+"/"+growvar.Unit]
	if !ok || !strings.Contains(readEntry(t, grow), "ExecStart=-"+firstboot.ProgramPath+" grow-var\n") {
		t.Errorf("%s: %+v", growvar.Unit, grow)
	}
	for p := range byPath {
		if strings.HasSuffix(p, ".wants/"+growvar.Unit) {
			t.Errorf("%s is enabled by %s; only /var's mount may pull it in", growvar.Unit, p)
		}
	}
	if def, ok := byPath[growvar.DefinitionsDir+"/"+growvar.DefinitionFile]; !ok || readEntry(t, def) != growvar.Definition {
		t.Errorf("repart definition %+v", def)
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
	if fstab := files["/etc/fstab"]; !strings.Contains(fstab, "PARTLABEL="+growvar.PartLabel+"  /var  ext4  ") ||
		!strings.Contains(fstab, ",x-systemd.requires="+growvar.Unit+" ") {
		t.Errorf("/etc/fstab does not mount /var after growing it:\n%s", fstab)
	}
	// No pods without the metadata guard; the guard covers the platform
	// readers' addresses.
	for _, want := range []string{"After=containerd.service nodebake-firstboot.service " + MetadataGuardUnit + "\n", "Requires=containerd.service " + MetadataGuardUnit + "\n"} {
		if !strings.Contains(kubelet, want) {
			t.Errorf("kubelet.service lacks %q", want)
		}
	}
	for path, addrs := range map[string][]string{
		MetadataGuardRules():  {platform.MetadataIPv4 + "/32", platform.WireServerIPv4 + "/32"},
		MetadataGuardRules6(): {platform.MetadataIPv6 + "/128"},
	} {
		for _, a := range addrs {
			if !strings.Contains(files[path], "-A "+MetadataGuardChain+" -d "+a+" ") {
				t.Errorf("%s does not drop %s:\n%s", path, a, files[path])
			}
		}
		if !strings.Contains(files[SystemdUnitDir+"/"+MetadataGuardUnit], " --noflush "+path+"\n") {
			t.Errorf("%s does not load %s", MetadataGuardUnit, path)
		}
	}
	for _, u := range []string{"http://" + platform.MetadataIPv4, "http://" + platform.WireServerIPv4} {
		if u != platform.LinkLocalEndpoint && u != platform.AzureWireServer {
			t.Errorf("the guard's address %s is not one the platform readers use", u)
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

func TestWantedBy(t *testing.T) {
	tests := []struct {
		unit string
		want []string
	}{
		{"[Unit]\nDescription=x\n[Install]\nWantedBy=multi-user.target\n", []string{"multi-user.target"}},
		{"[Install]\nWantedBy=a.target b.target\nWantedBy=c.target\n", []string{"a.target", "b.target", "c.target"}},
		{"[Unit]\nWantedBy=a.target\n[Service]\nExecStart=/x\n", nil},
		{"[Unit]\n[Install]\n  WantedBy=a.target  \n[X-Other]\nWantedBy=b.target\n", []string{"a.target"}},
	}
	for _, tt := range tests {
		if got := firstboot.WantedBy(tt.unit); strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("WantedBy(%q) = %q, want %q", tt.unit, got, tt.want)
		}
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
