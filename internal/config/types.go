package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as "10s", "5m", "1h30m".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &nodeError{n, "must be a duration (a number with a unit, such as 10s, 5m or 1h), not " + describeNode(n)}
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return &nodeError{n, fmt.Sprintf("invalid duration %q (use a number with a unit, such as 10s, 5m or 1h)", n.Value)}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ByteSize is a size in bytes written as "256MiB", "10GiB", "1GB" or a plain number.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"kB", 1000}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"TB", 1000 * 1000 * 1000 * 1000},
	{"B", 1},
}

// ParseByteSize parses "256MiB", "10GiB", "1GB" or "1234".
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			mult = u.mult
			s = strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			break
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("invalid size")
	}
	return ByteSize(v * float64(mult)), nil
}

// UnmarshalYAML parses a size with an optional unit.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &nodeError{n, "must be a size (a number with a unit, such as 256MiB or 10GiB), not " + describeNode(n)}
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return &nodeError{n, fmt.Sprintf("invalid size %q (use a number with a unit, such as 256MiB or 10GiB)", n.Value)}
	}
	*b = v
	return nil
}

// String formats the size with a binary unit.
func (b ByteSize) String() string { return FormatBytes(int64(b)) }

// FormatBytes formats n bytes for people: 1.5 GiB, 300 MiB, 12 B.
func FormatBytes(n int64) string {
	abs := n
	if abs < 0 {
		abs = -abs
	}
	switch {
	case abs >= 1<<40:
		return fmt.Sprintf("%.1f TiB", float64(n)/(1<<40))
	case abs >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case abs >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case abs >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// Secret is a string that never prints itself.
type Secret string

// String hides the value.
func (Secret) String() string { return "<secret>" }

// GoString hides the value from %#v.
func (Secret) GoString() string { return "<secret>" }

// MarshalJSON hides the value.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"<secret>"`), nil }

// Reveal returns the value, for the one place that must use it.
func (s Secret) Reveal() string { return string(s) }

type nodeError struct {
	node *yaml.Node
	msg  string
}

func (e *nodeError) Error() string { return e.msg }
