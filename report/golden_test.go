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

// TestProbePartsSayHowTheyRan: a file whose runs: line says its groups
// were run a round at a time has its part tables marked interleaved, and
// one without (the golden file above) as each row's runs in a row.
func TestProbePartsSayHowTheyRan(t *testing.T) {
	const rows = `runs: 2 per row, interleaved: scripts/bench.sh ran the group 2 times with -count 1, every row once a round
BenchmarkProbeParts/workload=openclose/producers=1/path=ringbuf/attach=tracepoint/part=empty-2 	 100 	 1000 ns/op 	 50 probe-ns/event
BenchmarkProbeParts/workload=openclose/producers=1/path=ringbuf/attach=tracepoint/part=floor-2 	 100 	 1000 ns/op 	 90 probe-ns/event
BenchmarkProbeParts/workload=openclose/producers=1/path=ringbuf/attach=tracepoint/part=empty-2 	 100 	 1000 ns/op 	 52 probe-ns/event
BenchmarkProbeParts/workload=openclose/producers=1/path=ringbuf/attach=tracepoint/part=floor-2 	 100 	 1000 ns/op 	 94 probe-ns/event
`
	sections, err := parse(strings.NewReader(rows), "interleaved.txt")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	writeProbeParts(&b, sections)
	if !strings.Contains(b.String(), "(`interleaved.txt`, runs interleaved)") {
		t.Errorf("an interleaved file's part table does not say so:\n%s", b.String())
	}
	golden, err := os.ReadFile("testdata/probeparts.golden.md")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(golden), "runs interleaved") || !strings.Contains(string(golden), "each row's runs in a row") {
		t.Errorf("testdata/probeparts-native.txt ran each row's runs in a row, and its golden tables should say so")
	}
}
