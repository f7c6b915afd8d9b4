package report

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"
)

// Confidence is the level of the confidence interval of the median.
const Confidence = 0.95

// Config is one file configuration line ("key: value") as the benchmark
// printed it. Values holds each distinct value in the order they appeared
// (usually one; a file made of several runs may repeat a key).
type Config struct {
	Key    string
	Values []string
}

// Section is what one results file holds for one environment and kernel.
type Section struct {
	File        string // the path the results were read from
	Environment string // config line "environment:", or "unknown"
	Kernel      string // config line "kernel:", or "unknown"
	// Attach is the attach mode of the file's headline, answer and
	// ranking rows: the one most eBPF capture rows use (PrimaryAttach).
	Attach   string
	Config   []Config
	Rows     []*Row   // in the order the rows first appear in the file
	Warnings []string // lines benchfmt could not parse
	// Skipped holds what the benchmarks logged under each row name (see
	// skipReasons): for a row without results, why it was skipped.
	Skipped map[string][]string

	config map[string]int
	rows   map[string]*Row
}

// ConfigValue returns the first value of a config line, or "".
func (s *Section) ConfigValue(key string) string {
	if i, ok := s.config[key]; ok {
		return s.Config[i].Values[0]
	}
	return ""
}

// ErrNoCaptureRows is wrapped by Read's error for a file without any
// BenchmarkCapture result.
var ErrNoCaptureRows = errors.New("no BenchmarkCapture rows")

// ReadFile reads one results file. It is an error when the file holds no
// BenchmarkCapture result.
func ReadFile(path string) ([]*Section, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: pass a results file such as results/native-$(uname -r).txt", err)
	}
	defer f.Close()
	return Read(f, path)
}

// Read parses benchfmt from r; file names the input in the report and in
// errors. Lines benchfmt cannot parse (e.g. a last line cut off while the
// file is still being written) become the sections' Warnings.
func Read(r io.Reader, file string) ([]*Section, error) {
	sections, err := parse(r, file)
	if err != nil {
		return nil, err
	}
	for _, s := range sections {
		if slices.ContainsFunc(s.Rows, func(r *Row) bool { return r.Bench == "Capture" }) {
			return sections, nil
		}
	}
	return nil, fmt.Errorf("%s: %w: pass a results file written by `go test -bench BenchmarkCapture ./bench` (make bench writes results/<environment>-<kernel>.txt)", file, ErrNoCaptureRows)
}

// parse reads the sections of a results file, whatever benchmarks it holds.
func parse(r io.Reader, file string) ([]*Section, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	skipped := skipReasons(data)
	br := benchfmt.NewReader(bytes.NewReader(data), file)
	var sections []*Section
	byEnv := map[[3]string]*Section{}
	var warnings []string
	for br.Scan() {
		switch rec := br.Result().(type) {
		case *benchfmt.SyntaxError:
			warnings = append(warnings, rec.Error())
		case *benchfmt.Result:
			if rec.Iters == 0 {
				// A row the benchmark skipped after its first
				// round: the testing package still prints it, with
				// NaN ns/op.
				continue
			}
			env := orUnknown(rec.GetConfig("environment"))
			kernel := orUnknown(rec.GetConfig("kernel"))
			// Rows of another harness version are a section of their
			// own, never merged into this one's rankings or model.
			key := [3]string{env, kernel, rec.GetConfig("commit")}
			s := byEnv[key]
			if s == nil {
				s = &Section{File: file, Environment: env, Kernel: kernel,
					config: map[string]int{}, rows: map[string]*Row{}}
				byEnv[key] = s
				sections = append(sections, s)
			}
			s.add(rec)
		}
	}
	if err := br.Err(); err != nil {
		return nil, err
	}
	for _, s := range sections {
		s.Warnings = warnings
		s.Skipped = skipped
		for _, row := range s.Rows {
			row.summarise()
		}
		s.Attach = PrimaryAttach(s.Rows)
	}
	return sections, nil
}

// skipReasons finds what the benchmarks said under a row's name (a
// "--- SKIP: name" or "--- BENCH: name" line, or the name alone as go
// test -v prints it, then the indented log lines "file.go:N: text"): for
// a row without results, why it was skipped. Keys
// are row names without the -procs suffix; one reason per run.
func skipReasons(data []byte) map[string][]string {
	out := map[string][]string{}
	name := ""
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if n, ok := strings.CutPrefix(trimmed, "--- SKIP: "); ok {
			name = n
			continue
		}
		if n, ok := strings.CutPrefix(trimmed, "--- BENCH: "); ok {
			name = n
			continue
		}
		if strings.HasPrefix(line, "Benchmark") {
			// go test -v names a row on a line of its own before it
			// runs it; a result line has fields after the name.
			name = ""
			if f := strings.Fields(line); len(f) == 1 {
				name = f[0]
			}
			continue
		}
		if name == "" || !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") {
			name = ""
			continue
		}
		// "bench_test.go:299: not steady: ..."
		if _, text, ok := strings.Cut(trimmed, ".go:"); ok {
			if _, text, ok = strings.Cut(text, ": "); ok {
				out[trimProcs(name)] = append(out[trimProcs(name)], text)
			}
		}
	}
	return out
}

// trimProcs drops a name's -GOMAXPROCS suffix ("-2"), if it has one.
func trimProcs(name string) string {
	i := strings.LastIndex(name, "-")
	if i < 0 || i == len(name)-1 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}

// ReadFiles reads each path in turn (see ReadFile).
func ReadFiles(paths ...string) ([]*Section, error) {
	if len(paths) == 0 {
		return nil, errors.New("no results files: pass one or more results/<environment>-<kernel>.txt files")
	}
	var all []*Section
	for _, p := range paths {
		s, err := ReadFile(p)
		if err != nil {
			return nil, err
		}
		all = append(all, s...)
	}
	return all, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func (s *Section) add(res *benchfmt.Result) {
	for _, c := range res.Config {
		if !c.File {
			continue
		}
		v := string(c.Value)
		if i, ok := s.config[c.Key]; ok {
			if !slices.Contains(s.Config[i].Values, v) {
				s.Config[i].Values = append(s.Config[i].Values, v)
			}
			continue
		}
		s.config[c.Key] = len(s.Config)
		s.Config = append(s.Config, Config{Key: c.Key, Values: []string{v}})
	}
	full := res.Name.String()
	row := s.rows[full]
	if row == nil {
		base, parts := res.Name.Parts()
		bench := strings.TrimPrefix(string(base), "Benchmark") // benchfmt drops the prefix
		row = &Row{Bench: bench, Name: "Benchmark" + bench,
			Keys: map[string]string{}, metrics: map[string]*Metric{}}
		row.Line = lineOf(res)
		for _, p := range parts {
			switch {
			case len(p) > 0 && p[0] == '-':
				row.Procs = string(p[1:])
			default:
				row.Name += string(p)
				if k, v, ok := strings.Cut(strings.TrimPrefix(string(p), "/"), "="); ok {
					row.Keys[k] = v
				}
			}
		}
		s.rows[full] = row
		s.Rows = append(s.Rows, row)
	}
	row.Runs++
	line := map[string]float64{Iterations: float64(res.Iters)}
	row.lines = append(row.lines, line)
	for _, v := range res.Values {
		unit, val := v.Unit, v.Value
		if v.OrigUnit != "" { // benchfmt tidies ns to sec and MB to B; keep the file's unit
			unit, val = v.OrigUnit, v.OrigValue
		}
		m := row.metrics[unit]
		if m == nil {
			m = &Metric{Unit: unit}
			row.metrics[unit] = m
			row.units = append(row.units, unit)
		}
		m.Values = append(m.Values, val)
		line[unit] = val
	}
}

func lineOf(res *benchfmt.Result) int {
	_, line := res.Pos()
	return line
}
