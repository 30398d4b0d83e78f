package verified

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/spec"
	"github.com/nodebake/nodebake/test/harness"
	"github.com/nodebake/nodebake/test/qemu"
)

// TestBenchBoot times boots of the plain image, the verified one and the
// signed one under Secure Boot (all built from the same spec), in turns, and prints the medians as
// FIGURE lines (scripts/bench-verified-boot.sh), after one FIGURE line with
// the three builds' times and sizes (warm cache). It asserts nothing about
// time: it runs only with NODEBAKE_BENCH=1 (and NODEBAKE_SLOW=1).
// NODEBAKE_BENCH_BOOTS sets the rounds of boots (default 3; 0 builds only).
func TestBenchBoot(t *testing.T) {
	if os.Getenv("NODEBAKE_BENCH") != "1" {
		t.Skip("benchmark: set NODEBAKE_BENCH=1 to run it")
	}
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("NODEBAKE_BENCH_BOOTS")); err == nil && v >= 0 {
		rounds = v
	}
	harness.RequireSlow(t)
	s := verifiedSpec(t)
	c := newCLI(t)
	key, vars := enrolledKey(t)
	verified := c.build(t, s, "verified")
	signed := c.build(t, s, "signed", "--signing-key", key.KeyPath, "--signing-cert", key.CertPath)
	plainSpec := s.Clone()
	plainSpec.Output.VerifiedBoot, plainSpec.Output.Formats = nil, []spec.Format{spec.FormatRaw}
	start := time.Now()
	plain := harness.BuildImage(t, plainSpec, filepath.Join(t.TempDir(), "plain"))
	plainTook := time.Since(start)
	pm := plain.Manifest
	figure(t, "build (warm cache), plain: %s, disk %d MiB (%d MiB allocated), root %d MiB; verified (CLI): %s, disk %d MiB (%d MiB allocated), root %d MiB + hash tree %d KiB + UKI %d MiB; signed (CLI): %s, disk %d MiB (%d MiB allocated)",
		plainTook.Round(100*time.Millisecond), pm.Image.Size>>20, allocated(t, plain.ImagePath)>>20, pm.Image.RootFilesystemSize>>20,
		verified.took.Round(100*time.Millisecond), verified.manifest.Image.Size>>20, allocated(t, verified.image)>>20,
		verified.manifest.Image.RootFilesystemSize>>20, verified.manifest.Verified.HashTreeSize>>10, verified.manifest.Verified.UKI.Size>>20,
		signed.took.Round(100*time.Millisecond), signed.manifest.Image.Size>>20, allocated(t, signed.image)>>20)
	if rounds == 0 {
		return
	}

	kinds := []struct {
		name string
		cfg  qemu.Config
	}{
		{"plain", qemu.Config{Disk: plain.ImagePath}},
		{"verity", qemu.Config{Disk: verified.image}},
		{"verity+secureboot", qemu.Config{Disk: signed.image, SecureBoot: &qemu.SecureBoot{Vars: vars}}},
	}
	samples := map[string]map[string][]float64{}
	for round := range rounds {
		for _, k := range kinds {
			r := boot(t, k.cfg, k.name)
			m := samples[k.name]
			if m == nil {
				m = map[string][]float64{}
				samples[k.name] = m
			}
			add := func(key, v string) {
				if x, err := strconv.ParseFloat(v, 64); err == nil {
					m[key] = append(m[key], x)
				}
			}
			add("firmware+loader", r["qemu.kernel"])
			add("to running", r["qemu.running"])
			kernel, user := analyze(r["analyze"])
			add("kernel+initrd", kernel)
			add("userspace", user)
			t.Logf("round %d %s: %v", round+1, k.name, r["analyze"])
		}
	}
	for _, k := range kinds {
		m := samples[k.name]
		figure(t, "TCG boot, %s, median of %d: firmware+loader %.1f s, kernel+initrd %.1f s, userspace %.1f s, QEMU start to system running %.1f s",
			k.name, len(m["to running"]), median(m["firmware+loader"]), median(m["kernel+initrd"]), median(m["userspace"]), median(m["to running"]))
	}
}

var analyzeRE = regexp.MustCompile(`([\d.]+)s \(kernel\) \+ (?:(\d+)min )?([\d.]+)s \(userspace\)`)

// analyze returns the kernel and userspace seconds of systemd-analyze's
// first line.
func analyze(line string) (kernel, user string) {
	m := analyzeRE.FindStringSubmatch(line)
	if m == nil {
		return "", ""
	}
	u, _ := strconv.ParseFloat(m[3], 64)
	if m[2] != "" {
		mins, _ := strconv.ParseFloat(m[2], 64)
		u += 60 * mins
	}
	return m[1], strconv.FormatFloat(u, 'f', 3, 64)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
