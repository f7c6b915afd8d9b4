package report

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slabbench/slabbench/sizing"
)

// testdata/handwritten.txt is hand-written test input, not a measurement;
// its header says which picks its numbers are chosen to produce.
const handwritten = "testdata/handwritten.txt"

func readHandwritten(t *testing.T) *Section {
	t.Helper()
	sections, err := ReadFile(handwritten)
	if err != nil {
		t.Fatal(err)
	}
	if len(sections) != 1 {
		t.Fatalf("%d sections, want 1", len(sections))
	}
	s := sections[0]
	if s.Environment != "testenv" || s.Kernel != "0.0-handwritten" {
		t.Fatalf("section %s/%s, want testenv/0.0-handwritten", s.Environment, s.Kernel)
	}
	return s
}

func sizingOf(t *testing.T, rs RateSizing, v Variant) Sizing {
	t.Helper()
	for _, sz := range rs.Sizings {
		if sz.Variant == v {
			return sz
		}
	}
	t.Fatalf("rate=%s: no sizing for %s", rs.Rate, v)
	return Sizing{}
}

func TestParseAndSummarise(t *testing.T) {
	s := readHandwritten(t)
	var none *Row
	for _, r := range s.Rows {
		if r.Keys["rate"] == "max" && r.Keys["path"] == "none" {
			none = r
		}
	}
	if none == nil {
		t.Fatal("no path=none row at rate=max")
	}
	m := none.Metric("ns/op")
	if none.Runs != 3 || m == nil || m.Median != 2000 || m.Min != 1900 || m.Max != 2100 {
		t.Errorf("path=none: runs %d, ns/op %+v; want 3 runs, median 2000 in [1900, 2100]", none.Runs, m)
	}
	if none.Procs != "2" || none.Name != "BenchmarkCapture/workload=openclose/rate=max/path=none" {
		t.Errorf("name %q procs %q", none.Name, none.Procs)
	}
	// The cut-off last line is a warning, not a run.
	if len(s.Warnings) != 1 {
		t.Errorf("warnings %q, want the one cut-off line", s.Warnings)
	}
	if got := s.ConfigValue("cpus"); got != "2" {
		t.Errorf("cpus config %q", got)
	}
}

func TestSizingClosedLoop(t *testing.T) {
	s := readHandwritten(t)
	rs := s.Sizing("openclose", "max")
	if rs.Missing != "" {
		t.Fatalf("rate=max missing: %s", rs.Missing)
	}

	every := sizingOf(t, rs, Variant{"ringbuf", "tracepoint", "every"})
	if every.ZeroLossBytes != 32<<10 {
		t.Errorf("ringbuf every: smallest zero-loss memory %d, want 32KiB", every.ZeroLossBytes)
	}
	if every.Pick == nil || geomLabel(every.Pick) != "16KiB×2" {
		t.Errorf("ringbuf every: pick %v, want 16KiB×2 (4KiB×8 lost 0.5%% in one run)", every.Pick)
	}
	if len(every.AtMemory) != 2 || geomLabel(every.AtMemory[1]) != "4KiB×8" {
		t.Errorf("ringbuf every: rows at 32KiB %v, want 16KiB×2 then 4KiB×8", every.AtMemory)
	}

	batched := sizingOf(t, rs, Variant{"ringbuf", "tracepoint", "batched"})
	if batched.ZeroLossBytes != 8<<10 || geomLabel(batched.Pick) != "4KiB×2" {
		t.Errorf("ringbuf batched: %d at %v, want 8KiB at 4KiB×2", batched.ZeroLossBytes, batched.Pick)
	}

	perfbuf := sizingOf(t, rs, Variant{Path: "perfbuf", Attach: "tracepoint"})
	if perfbuf.ZeroLossBytes != 0 {
		t.Errorf("perfbuf: zero-loss memory %d, want none", perfbuf.ZeroLossBytes)
	}
	if geomLabel(perfbuf.Pick) != "4KiB×8" {
		t.Errorf("perfbuf: least-loss pick %s, want 4KiB×8", geomLabel(perfbuf.Pick))
	}

	if len(rs.LeastMemory) != 1 || rs.LeastMemory[0].Variant != batched.Variant {
		t.Errorf("least memory %v, want ringbuf batched alone", rs.LeastMemory)
	}
	if rs.CostUnit != UnitOverhead {
		t.Errorf("closed-loop cost unit %s", rs.CostUnit)
	}
	if rs.Cheapest == nil || geomLabel(rs.Cheapest) != "4KiB×32" || variantOf(rs.Cheapest) != every.Variant {
		t.Errorf("cheapest %v, want ringbuf every 4KiB×32 (700 ns/event)", rs.Cheapest)
	}
	// ringbuf batched is cheaper than every other row but ran at 16KiB
	// per CPU and its own rate: not a runner-up to rank against.
	if rs.RunnerUp != nil {
		t.Errorf("runner-up %v, want none: no other variant lost nothing at 128KiB per CPU and the same rate", rs.RunnerUp.Name)
	}
}

func TestSizingOpenLoop(t *testing.T) {
	s := readHandwritten(t)
	rs := s.Sizing("openclose", "20000")
	if len(rs.LeastMemory) != 2 || rs.LeastMemory[0].ZeroLossBytes != 32<<10 {
		t.Fatalf("least memory %+v, want ringbuf and perfbuf at 32KiB", rs.LeastMemory)
	}
	if rs.CostUnit != UnitConsumer {
		t.Errorf("open-loop cost unit %s, want %s (no overhead there)", rs.CostUnit, UnitConsumer)
	}
	if rs.Cheapest == nil || variantOf(rs.Cheapest).Path != "ringbuf" {
		t.Errorf("cheapest %v, want ringbuf", rs.Cheapest)
	}
	if rs.RunnerUp == nil || variantOf(rs.RunnerUp).Path != "perfbuf" {
		t.Errorf("runner-up %v, want perfbuf at the same 32KiB per CPU and rate", rs.RunnerUp)
	}
	if got := s.Rates("openclose"); strings.Join(got, ",") != "max,20000" {
		t.Errorf("rates %v", got)
	}
}

func TestMissingPaths(t *testing.T) {
	s := readHandwritten(t)
	rs := s.Sizing("openclose", "max")
	relay := sizingOf(t, rs, Variant{Path: "relay"})
	if len(relay.Rows) != 0 || !strings.Contains(relay.Missing, "test reason for the missing relay rows") {
		t.Errorf("relay: %d rows, missing %q; want none, with the config line's reason", len(relay.Rows), relay.Missing)
	}
	perf := sizingOf(t, rs, Variant{Path: "perf-record"})
	if len(perf.Rows) != 0 || !strings.Contains(perf.Missing, "no config line") {
		t.Errorf("perf-record: %d rows, missing %q", len(perf.Rows), perf.Missing)
	}
	h := s.Headline("openclose")
	var missing []string
	for _, m := range h.Missing {
		missing = append(missing, m.What)
	}
	if got := strings.Join(missing, ","); got != "path=relay,path=perf-record,path=empty-kmod" {
		t.Errorf("headline missing %s", got)
	}
	for _, r := range h.Rows {
		if r.Keys["wakeup"] == "batched" || r.Keys["rate"] != "max" {
			t.Errorf("headline holds %s", r.Name)
		}
	}
	if len(h.Rows) != 7 || len(h.Floor) != 2 {
		t.Errorf("headline %d rows, %d floor rows; want 7 and 2", len(h.Rows), len(h.Floor))
	}
}

func TestMarkdown(t *testing.T) {
	s := readHandwritten(t)
	md := markdownOf(t, []*Section{s}, Options{PlotLinks: map[*Section]string{s: "x.loss.png"}})
	requireContains(t, md, []string{
		"## testenv, kernel 0.0-handwritten (`testdata/handwritten.txt`)",
		"- `truth: test input, no truth counter was read`",
		"### Headline: workload=openclose",
		"| 32KiB | 16KiB×2 | ringbuf | 64KiB | 1000 [1000–1000] | 0 [0–0] | 1000 [1000–1000] | 3 |",
		"- path=relay: config line `relay: rows skipped here: test reason for the missing relay rows`",
		"| perfbuf tracepoint | 8KiB, 32KiB | none of the tested sizes |",
		"16KiB×2: 0 [0–0]; 4KiB×8: 0 [0–0.5] (no difference measured between the counts)",
		"**At rate=max** (`testdata/handwritten.txt`, medians over 3 runs, [min–max]): least memory per CPU each path lost nothing with, at the rate it let the workload reach (not a ranking",
		"ringbuf tracepoint, wakeup=batched 8KiB (4KiB×2 at 400k events/s per CPU, 0 lost in 3 of 3 runs)",
		"(no other path or mode lost nothing at the same memory and rate within 5%: nothing to rank it against)",
		"next, another path or mode at the same memory and rate: perfbuf tracepoint at 4KiB×8",
		"**At rate=20000**",
		"| ringbuf | 55.0 [50.0–60.0] | 18.2M [16.7M–20.0M] | 5.00× | 0 [0–0] | 3 |",
		"for n=3: not finite",
		"![lost-% against per-CPU buffer memory, testenv 0.0-handwritten](x.loss.png)",
	})
}

func TestNoCaptureRows(t *testing.T) {
	for name, in := range map[string]string{
		"empty":         "",
		"config only":   "kernel: x\nenvironment: y\n",
		"consumer only": "BenchmarkConsumer/reader=copy-2\t100\t10 ns/op\n",
	} {
		_, err := Read(strings.NewReader(in), name+".txt")
		if !errors.Is(err, ErrNoCaptureRows) {
			t.Errorf("%s: err %v, want ErrNoCaptureRows", name, err)
		} else if !strings.Contains(err.Error(), name+".txt") {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
	if _, err := ReadFiles(); err == nil {
		t.Error("ReadFiles() without paths: no error")
	}
}

func TestPlot(t *testing.T) {
	s := readHandwritten(t)
	series := s.LossSeries()
	if len(series) != 3 { // ringbuf every, ringbuf batched, perfbuf
		t.Errorf("%d series, want 3", len(series))
	}
	var b bytes.Buffer
	if err := PlotPNG(&b, s); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b.Bytes(), []byte("\x89PNG")) {
		t.Error("not a PNG")
	}
	if got := PlotPaths([]*Section{s})[s]; got != "testdata/handwritten.loss.png" {
		t.Errorf("plot path %s", got)
	}
}

// TestRealResults reads every committed results file, whatever kernel it
// was measured on: the report must keep reading what make bench wrote.
func TestRealResults(t *testing.T) {
	results, err := filepath.Glob("../results/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(results) == 0 {
		t.Fatal("no committed results in ../results (make bench writes them)")
	}
	for _, file := range results {
		t.Run(filepath.Base(file), func(t *testing.T) { checkRealResults(t, file) })
	}
}

func checkRealResults(t *testing.T, file string) {
	sections, err := ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	md := markdownOf(t, sections, Options{})
	if !strings.Contains(md, "### Headline: workload=") {
		t.Fatalf("no headline section:\n%s", md)
	}
	rows := 0
	for _, s := range sections {
		for _, wl := range s.Workloads() {
			rows += len(s.Headline(wl).Rows)
		}
	}
	if rows == 0 {
		t.Errorf("no headline rows in %s", file)
	}
	head := md[strings.Index(md, "### Headline"):]
	if !strings.Contains(head, "| per-CPU | subbuf × n | path |") {
		t.Errorf("headline section has no table")
	}
}

// testdata/vm-handwritten.txt is hand-written test input too: a partial
// file of bench-level vm.
func TestPartialPlannedFile(t *testing.T) {
	sections, err := ReadFiles(handwritten, "testdata/vm-handwritten.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(sections) != 2 {
		t.Fatalf("%d sections, want 2", len(sections))
	}
	vm := sections[1]
	if vm.Environment != "vm-tcg" {
		t.Fatalf("second section %s", vm.Environment)
	}
	if got := strings.Join(vm.Rates("openclose"), ","); got != "max,500,750,1000" {
		t.Errorf("rates %s, want the vm plan's max,500,750,1000 (750: held out)", got)
	}
	rs := vm.Sizing("openclose", "max")
	relay := sizingOf(t, rs, Variant{Path: "relay"})
	if relay.ZeroLossBytes != 32<<10 || geomLabel(relay.Pick) != "4KiB×8" {
		t.Errorf("relay: %d at %v, want 32KiB at 4KiB×8", relay.ZeroLossBytes, relay.Pick)
	}
	if len(relay.NotRun) != 1 { // the vm plan's 3 geometries less 4KiB×2 and the skipped 16KiB×2
		t.Errorf("relay: not run %v", relay.NotRun)
	}
	if want := (SkippedRow{Geometry: "subbuf=16KiB/n=2", Reason: "not steady: wrote 3.0 times its 64KiB buffer in 1s, want 20", Runs: 2}); len(relay.Skipped) != 1 || relay.Skipped[0] != want {
		t.Errorf("relay: skipped %+v, want %+v", relay.Skipped, want)
	}
	ringbuf := sizingOf(t, rs, Variant{"ringbuf", "rawtp", "every"}) // the vm plan attaches raw tracepoints
	if !strings.Contains(ringbuf.Missing, "may be partial") {
		t.Errorf("ringbuf missing reason %q", ringbuf.Missing)
	}
	if open := vm.Sizing("openclose", "500"); !strings.Contains(open.Missing, "no BenchmarkCapture rows at this rate") {
		t.Errorf("rate=500 missing %q", open.Missing)
	}
	md := markdownOf(t, sections, Options{})
	requireContains(t, md, []string{
		"## vm-tcg, kernel 0.0-vm (`testdata/vm-handwritten.txt`)",
		"| 32KiB | 4KiB×8 | relay | 64KiB | 1200 [1200–1200] | 0 [0–0] | 400 [400–400] | 5.50 [5.00–6.00] | 2 |",
		"| path=empty-kmod | 32000 [32000–32000] | 1000 [1000–1000] | 2 |",
		"relay at 16KiB×2: skipped by the benchmark in 2 runs: not steady: wrote 3.0 times",
		"No BenchmarkConsumer rows in `testdata/vm-handwritten.txt` (make bench runs them",
	})
}

// markdownOf writes the report of sections, failing t on an error.
func markdownOf(t *testing.T, sections []*Section, opt Options) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteMarkdown(&b, sections, opt); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// requireContains fails t for every want that md lacks, and then logs md.
func requireContains(t *testing.T, md string, wants []string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(md)
	}
}

// testdata/probes-6.1.0-56.txt is a probes-level file (BENCH=probes make
// bench) of an older harness, kept as test input for the attach modes'
// comparison until the level is measured again.
func TestAttachModes(t *testing.T) {
	sections, err := ReadFiles("testdata/probes-6.1.0-56.txt")
	if err != nil {
		t.Fatal(err)
	}
	s := sections[0]
	ac := s.AttachModes("openclose")
	if got := strings.Join(ac.Attaches, ","); got != "tracepoint,rawtp,kprobe,fentry" {
		t.Errorf("attach modes %s, want the probes level's four", got)
	}
	if len(ac.Floors) != 4 {
		t.Errorf("%d empty-bpf floors, want one per attach mode", len(ac.Floors))
	}
	// Two closed-loop geometries and one open loop, both transports.
	if len(ac.Rows) != 4*2*3 {
		t.Errorf("%d capture rows side by side, want %d", len(ac.Rows), 4*2*3)
	}
	requireContains(t, markdownOf(t, sections, Options{}), []string{
		"### Attach modes: workload=openclose",
		"| 3000 | 4KiB×4 | perfbuf | fentry |",
		"path=relay: bench-level probes does not run it (bench/plan)",
		"bench-level probes does not run them",
	})
}

func TestOrdering(t *testing.T) {
	row := func(attach string, values ...float64) *Row {
		m := &Metric{Unit: UnitProbe, Values: values, Min: values[0], Max: values[len(values)-1], Median: values[len(values)/2]}
		return &Row{Keys: map[string]string{"attach": attach}, Runs: len(values), metrics: map[string]*Metric{UnitProbe: m}}
	}
	rows := []*Row{row("kprobe", 250, 260, 300), row("tracepoint", 100, 120, 140), row("fentry", 130, 150, 160), row("rawtp", 40)}
	want := "rawtp 40.0 < tracepoint 120 [100–140] ≈ fentry 150 [130–160] < kprobe 260 [250–300]"
	if got := Ordering(rows, UnitProbe); got != want {
		t.Errorf("Ordering = %q\nwant       %q", got, want)
	}
}

// TestReportLeadsWithAnswer reads every committed results file: the
// report's first section is the answer table, then the validation, where
// the rows give a sizing model (any results: nothing here names a figure
// of the committed ones).
func TestReportLeadsWithAnswer(t *testing.T) {
	files, _ := filepath.Glob("../results/*[0-9].txt")
	sections, err := ReadFiles(files...)
	if err != nil {
		t.Fatal(err)
	}
	md := markdownOf(t, sections, Options{})
	first := strings.Index(md, "\n## ")
	if first < 0 || !strings.HasPrefix(md[first+1:], "## The answer: buffer memory per CPU for an event rate") {
		t.Fatalf("the first section is not the answer:\n%.600s", md[max(first, 0):])
	}
	requireContains(t, md, []string{"## Which path for which need", "## Cost per event, split"})
	sm := FitModel(sections)
	if len(sm.Models) == 0 {
		t.Log("no sizing model in these results (no open loops that kept up): the answer's table and its validation are not checked")
		return
	}
	requireContains(t, md, []string{
		"**native " + sections[0].Kernel + ", consumer shared**",
		"| 10k |", "| 1M |",
		"### Held-out rows: dropped or not, as the model said?",
		"### Predicted against measured minimum memory",
		"| model's chance of a drop | held-out rows | mean chance | dropped |",
		"| environment | held-out rows right (expected) | open loops right (ceiling) |",
		"| environment | path, wakeup | consumer | s (B) | c (ns/event) | a (/s) | τ (ms) | H, 1 min (ms) |",
	})
	if strings.Index(md, "### Held-out rows") > strings.Index(md, "## How the numbers were obtained") {
		t.Errorf("the validation comes after the method: it belongs with the answer")
	}
	if c, n := sm.Validation.Accuracy(false); n == 0 || !strings.Contains(md, fmt.Sprintf("**%d of %d right", c, n)) {
		t.Errorf("accuracy %d of %d not in the report", c, n)
	}
	for _, env := range sm.envs() {
		v := sm.Validation.ForEnv(env)
		c, n := v.Accuracy(false)
		e, _ := v.Expected()
		if cell := fmt.Sprintf("| %s | %d of %d (%.0f%%; expected %.0f%%) |", env, c, n, 100*float64(c)/float64(n), 100*e/float64(n)); !strings.Contains(md, cell) {
			t.Errorf("the summary has no %q", cell)
		}
	}
	if best, n := sm.Validation.Ceiling(); n == 0 || !strings.Contains(md, fmt.Sprintf("is %d of %d (", best, n)) {
		t.Errorf("the ceiling %d of %d not in the report", best, n)
	}
	// Each environment's bursts are reported with the parameters its
	// models use (whether a machine has bursts is its own business).
	for _, m := range sm.Models {
		row := fmt.Sprintf("| %s | none found", m.Env)
		if m.Burst.Found() {
			row = fmt.Sprintf("| %s | %.3g | %.0f |", m.Env, m.Burst.Rate, m.Burst.Bound)
		}
		if !strings.Contains(md, row) {
			t.Errorf("the bursts of %s (%+v) are not in the report as %q", m.Env, m.Burst, row)
		}
	}
}

// TestHeldOutDeclaredByThePlan: the rows at a rate the file's bench-level
// plan declares held out (the vm plan: rate=750) are marked so, and the
// model is then fitted on every other open loop and scored on them.
func TestHeldOutDeclaredByThePlan(t *testing.T) {
	row := func(rate string) string {
		return "BenchmarkCapture/workload=openclose/rate=" + rate + "/producers=2/consumer=shared/path=relay/subbuf=4KiB/n=4-2 \t 1000 \t 1000000 ns/op \t 7 events/op \t 0 dropped-% \t 0 lost-% \t 2048 max-backlog-B\n"
	}
	in := "environment: vm-tcg\nkernel: 6.1-test\ncpus: 2\nbench-level: vm\n" + row("500") + row("750") + row("1000")
	sections, err := Read(strings.NewReader(in), "inline")
	if err != nil {
		t.Fatal(err)
	}
	obs := sections[0].Observations()
	if len(obs) != 3 {
		t.Fatalf("%d observations, want 3", len(obs))
	}
	for _, o := range obs {
		if want := o.Rate == "750"; o.HeldOut != want {
			t.Errorf("rate %s: held out %v, want %v", o.Rate, o.HeldOut, want)
		}
	}
	fit, held, declared := sizing.Split(obs, FitWorkload)
	if !declared || len(fit) != 2 || len(held) != 1 || held[0].Rate != "750" {
		t.Errorf("split: declared %v, %d fitted, held %v; want the 2 other rates fitted and rate=750 held out", declared, len(fit), held)
	}
}

// TestTermScore: a term earns its place where the form with it scores
// lower by at least the printed resolution, whether the model has it
// (refitted without) or leaves it out (refitted with).
func TestTermScore(t *testing.T) {
	model := sizing.Scores{Rows: 24, Model: 0.127}
	for _, c := range []struct {
		refit float64
		rows  int
		added bool
		want  string
	}{
		{0.138, 24, false, "0.138 (0.011 worse without it)"},
		{0.1272, 24, false, "0.127 (no worse without it: the term does not earn its place)"},
		{0.083, 24, false, "0.083 (no worse without it: the term does not earn its place)"},
		{0.1268, 24, true, "0.127 (no better with it: the term stays out)"},
		{0.120, 24, true, "0.120 (0.007 better with it: the term would earn its place)"},
		{0.120, 23, true, "—"},
	} {
		if got := termScore(model, sizing.Scores{Rows: c.rows, Model: c.refit}, c.added); got != c.want {
			t.Errorf("termScore(%v, %v rows, added %v) = %q, want %q", c.refit, c.rows, c.added, got, c.want)
		}
	}
}
