package report

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata from the current output")

// TestGolden renders the hand-written inputs and compares the whole
// report with testdata/*.golden.md, as benchstat's tests do: a change in
// any sentence, cell or hint shows as a diff. go test ./report -update
// rewrites them; read the diff before committing it.
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		files  []string
	}{
		{"testdata/handwritten.golden.md", []string{handwritten}},
		{"testdata/handwritten-vm.golden.md", []string{handwritten, "testdata/vm-handwritten.txt"}},
		{"testdata/probes.golden.md", []string{"testdata/probes-6.1.0-56.txt"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			sections, err := ReadFiles(tc.files...)
			if err != nil {
				t.Fatal(err)
			}
			got := markdownOf(t, sections, Options{})
			if *update {
				if err := os.WriteFile(tc.golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(tc.golden)
			if err != nil {
				t.Fatalf("%v (go test ./report -update writes it)", err)
			}
			if got != string(want) {
				t.Errorf("report of %v differs from %s (go test ./report -run Golden -update, then read the diff):\n%s",
					tc.files, tc.golden, firstDifference(string(want), got))
			}
		})
	}
}

// firstDifference shows the first line where want and got differ.
func firstDifference(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, w, g)
		}
	}
	return "(same lines, different endings)"
}

// TestProbePartsGolden renders the probe's parts from a native
// BenchmarkProbeParts run (both placements and transports) and compares
// it with testdata/probeparts.golden.md.
func TestProbePartsGolden(t *testing.T) {
	const in, golden = "testdata/probeparts-native.txt", "testdata/probeparts.golden.md"
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sections, err := parse(f, in)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	writeProbeParts(&b, sections)
	got := b.String()
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./report -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("parts of %s differ from %s (go test ./report -run ProbePartsGolden -update, then read the diff):\n%s", in, golden, firstDifference(string(want), got))
	}
}
