package verified

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/nodebake/nodebake/builder/authenticode"
	"github.com/nodebake/nodebake/test/qemu"
)

// TestBenchBoot times boots of the plain image, its verified disk and the
// signed one under Secure Boot, in turns, and prints the medians as
// FIGURE lines (scripts/bench-verified-boot.sh). It asserts nothing about
// time: it runs only with NODEBAKE_BENCH=1 (and NODEBAKE_SLOW=1).
func TestBenchBoot(t *testing.T) {
	if os.Getenv("NODEBAKE_BENCH") != "1" {
		t.Skip("benchmark: set NODEBAKE_BENCH=1 to run it")
	}
	rounds := 3
	if v, err := strconv.Atoi(os.Getenv("NODEBAKE_BENCH_BOOTS")); err == nil && v > 0 {
		rounds = v
	}
	f := newFixture(t)
	verified := filepath.Join(f.dir, "verified.raw")
	f.convert(t, verified, nil)
	key, vars := enrolledKey(t)
	signer, err := authenticode.ParseSigner(key.KeyPEM, key.CertPEM)
	if err != nil {
		t.Fatal(err)
	}
	signed := filepath.Join(f.dir, "signed.raw")
	f.convert(t, signed, signer)

	kinds := []struct {
		name string
		cfg  qemu.Config
	}{
		{"plain", qemu.Config{Disk: f.plain}},
		{"verity", qemu.Config{Disk: verified}},
		{"verity+secureboot", qemu.Config{Disk: signed, SecureBoot: &qemu.SecureBoot{Vars: vars}}},
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
