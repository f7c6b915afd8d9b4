// Package plan is the benchmark matrix: which workloads, rates, buffer
// geometries, attach modes and wakeups each BENCH level runs. The
// benchmarks (bench/) run it and the report (report/) reads results
// against it, so neither depends on the other.
package plan

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/slabbench/slabbench/bpftrace"
)

// Geometry is a buffer configuration: NumSubbufs sub-buffers of
// SubbufSize bytes per CPU (and the equal-memory ring buffer).
type Geometry struct {
	SubbufSize int
	NumSubbufs int
}

// Plan is the benchmark matrix of one level.
type Plan struct {
	Level     string
	Workloads []string
	// Rates in ops/s over all threads; 0 is the closed loop (rate=max).
	Rates []float64
	// Geometries for the closed loop; RateGeometries for the open loops.
	Geometries     []Geometry
	RateGeometries []Geometry
	Attaches       []bpftrace.Attach
	// Wakeups of the ringbuf and perfbuf readers: "every" record (the
	// ring buffer's default; a perf buffer woken for every event) and
	// "batched" (wake the reader once a sub-buffer's worth of bytes is
	// pending, as relay does when a sub-buffer is finished).
	Wakeups []string
	Threads int
	// PerfRecordGeometries limits the perf-record rows to the first this
	// many geometries of each rate (0: all). perf starts and stops slowly
	// under TCG (about 17 s a row in the VM).
	PerfRecordGeometries int
}

// PerfRecordRows says whether geometry i of a rate gets a perf-record row.
func (p Plan) PerfRecordRows(i int) bool {
	return p.PerfRecordGeometries == 0 || i < p.PerfRecordGeometries
}

func grid(sizes, counts []int) []Geometry {
	var g []Geometry
	for _, s := range sizes {
		for _, n := range counts {
			g = append(g, Geometry{s, n})
		}
	}
	return g
}

// For returns the matrix of a level: full, vm, quick or smoke.
func For(level string) (Plan, error) {
	p := Plan{Level: level, Workloads: []string{"openclose"}, Threads: 2,
		Attaches: []bpftrace.Attach{bpftrace.AttachTracepoint, bpftrace.AttachRawTP}, Wakeups: []string{"every", "batched"}}
	switch level {
	case "", "full":
		p.Level = "full"
		p.Rates = []float64{0, 20000, 100000}
		p.Geometries = grid([]int{4 << 10, 16 << 10, 64 << 10, 1 << 20}, []int{2, 8, 32})
		p.RateGeometries = grid([]int{4 << 10, 16 << 10, 64 << 10, 1 << 20}, []int{8})
	case "vm":
		// The VM is ~17x slower per syscall under TCG: the whole size x
		// count grid, tracepoint attachment only, open loops at one size.
		p.Rates = []float64{0, 5000, 20000}
		p.Geometries = grid([]int{4 << 10, 16 << 10, 64 << 10, 1 << 20}, []int{2, 8, 32})
		p.RateGeometries = grid([]int{16 << 10}, []int{8})
		p.Attaches = p.Attaches[:1]
	case "quick":
		p.PerfRecordGeometries = 1
		p.Rates = []float64{0, 20000}
		p.Geometries = grid([]int{4 << 10, 64 << 10}, []int{2, 8})
		p.RateGeometries = grid([]int{4 << 10}, []int{8})
		p.Attaches = p.Attaches[:1]
	case "smoke":
		p.Rates = []float64{0}
		p.Geometries = grid([]int{16 << 10}, []int{8})
		p.Attaches = p.Attaches[:1]
		p.Wakeups = p.Wakeups[:1]
	default:
		return p, fmt.Errorf("BENCH=%q: use full, vm, quick or smoke", level)
	}
	if w := os.Getenv("BENCH_WORKLOADS"); w != "" {
		p.Workloads = strings.FieldsFunc(w, func(r rune) bool { return r == ',' })
	}
	if t := os.Getenv("BENCH_THREADS"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 1 {
			return p, fmt.Errorf("BENCH_THREADS=%q: want a positive number", t)
		}
		p.Threads = n
	}
	return p, nil
}

// CaptureRows counts the leaf benchmarks of BenchmarkCapture, for the
// progress estimate.
func (p Plan) CaptureRows() int {
	rows := 0
	for _, rate := range p.Rates {
		geoms := p.Geometries
		perRate := 1 // path=none
		if rate == 0 {
			perRate += len(p.Attaches) + 1 // empty-bpf per attach, empty-kmod
		} else {
			geoms = p.RateGeometries
		}
		perGeom := 1 + 2*len(p.Attaches)*len(p.Wakeups) // relay, ringbuf and perfbuf
		rows += perRate + perGeom*len(geoms)
		for i := range geoms {
			if p.PerfRecordRows(i) {
				rows++
			}
		}
	}
	return rows * len(p.Workloads)
}

// RateName is the rate key's value: max, or ops/s.
func RateName(rate float64) string {
	if rate == 0 {
		return "max"
	}
	return strconv.FormatFloat(rate, 'f', -1, 64)
}
