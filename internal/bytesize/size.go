// Package bytesize parses and prints byte sizes the way slabbench's flags and
// benchmark names write them: 4096, 16KiB, 1MiB.
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

var units = []struct {
	suffix string
	mult   int64
}{
	{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10},
	{"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1},
}

// Parse parses "4096", "16KiB", "1MiB" (also "16K", "1M").
func Parse(s string) (int, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			mult = u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q: write bytes as 4096, 16KiB or 1MiB", s)
	}
	if n > (1<<40)/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int(n * mult), nil
}

// Format writes n with the largest binary unit that divides it exactly.
func Format(n int) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return strconv.Itoa(n)
}

// Flag is a flag.Value holding a size.
type Flag struct{ Bytes int }

func (f *Flag) String() string { return Format(f.Bytes) }

// Set parses s.
func (f *Flag) Set(s string) error {
	n, err := Parse(s)
	if err != nil {
		return err
	}
	f.Bytes = n
	return nil
}

// Approx writes n bytes to three significant digits for a person reading
// a table: 812B, 18.4KiB, 187KiB, 2.05MiB.
func Approx(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	u := 0
	for n >= 1000 && u < len(units)-1 {
		n /= 1024
		u++
	}
	switch {
	case u == 0:
		return fmt.Sprintf("%.0f%s", n, units[u])
	case n < 10:
		return fmt.Sprintf("%.2f%s", n, units[u])
	case n < 100:
		return fmt.Sprintf("%.1f%s", n, units[u])
	}
	return fmt.Sprintf("%.0f%s", n, units[u])
}
