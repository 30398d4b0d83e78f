package spec

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Size is a byte count written in YAML as plain bytes or with a binary
// suffix: "256MiB", "1GiB", "512KiB", "1TiB".
type Size int64

// SizePattern is what ParseSize takes as a string (a number too large for
// 64 bits aside).
const SizePattern = `^\s*[0-9]+\s*(KiB|MiB|GiB|TiB)?\s*$`

// Binary size units.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
	TiB Size = 1 << 40
)

type sizeUnit struct {
	suffix string
	unit   Size
}

// sizeUnits lists the units, largest first.
func sizeUnits() []sizeUnit {
	return []sizeUnit{{"TiB", TiB}, {"GiB", GiB}, {"MiB", MiB}, {"KiB", KiB}}
}

// ParseSize parses a size: plain bytes ("1048576") or a non-negative integer
// with a KiB, MiB, GiB or TiB suffix ("256MiB").
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	unit := int64(1)
	for _, u := range sizeUnits() {
		if strings.HasSuffix(t, u.suffix) {
			t, unit = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), int64(u.unit)
			break
		}
	}
	if t == "" || strings.ContainsAny(t, "+-") {
		return 0, fmt.Errorf("invalid size %q: want bytes or a number with a KiB, MiB, GiB or TiB suffix", s)
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q: want bytes or a number with a KiB, MiB, GiB or TiB suffix", s)
	}
	if n > math.MaxInt64/unit {
		return 0, fmt.Errorf("invalid size %q: too large", s)
	}
	return n * unit, nil
}

// Bytes returns the size in bytes.
func (s Size) Bytes() int64 { return int64(s) }

// String formats the size with the largest unit that divides it exactly.
func (s Size) String() string {
	if s != 0 {
		for _, u := range sizeUnits() {
			if s%u.unit == 0 {
				return strconv.FormatInt(int64(s/u.unit), 10) + u.suffix
			}
		}
	}
	return strconv.FormatInt(int64(s), 10)
}

// UnmarshalYAML accepts a size string or a plain integer, other than 0:
// a field left out gets its default, a size of 0 is a mistake.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a size like \"256MiB\"")
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		return err
	}
	if v == 0 {
		return fmt.Errorf("a size of 0 is not a size: leave the field out for the default")
	}
	*s = Size(v)
	return nil
}

// MarshalYAML writes the size in its String form.
func (s Size) MarshalYAML() (any, error) { return s.String(), nil }
