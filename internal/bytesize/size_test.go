package bytesize

import "testing"

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]int{"4096": 4096, "16KiB": 16384, "1MiB": 1 << 20, "2M": 2 << 20, "64K": 65536} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "12XB", "1.5MiB", "99999999999GiB"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	for n, want := range map[int]string{4096: "4KiB", 1 << 20: "1MiB", 1000: "1000", 3 << 30: "3GiB"} {
		if got := Format(n); got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestApprox(t *testing.T) {
	for n, want := range map[float64]string{0: "0B", 812: "812B", 999: "999B", 1000: "0.98KiB", 18841: "18.4KiB",
		191828: "187KiB", 2149581: "2.05MiB", 1 << 40: "1.00TiB"} {
		if got := Approx(n); got != want {
			t.Errorf("Approx(%v) = %q, want %q", n, got, want)
		}
	}
}
