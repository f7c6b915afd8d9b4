package plan

import (
	"fmt"

	"github.com/slabbench/slabbench/event"
)

// doubling returns n sub-buffers per CPU at every per-CPU memory from lo
// to hi in ×2 steps.
func doubling(lo, hi, n int) []Geometry {
	var g []Geometry
	for m := lo; m <= hi; m *= 2 {
		g = append(g, Geometry{m / n, n})
	}
	return g
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

// For returns the matrix of a level: full, vm, probes, quick, vm-quick
// (quick's rows, attached as the vm level's) or smoke.
func For(level string) (Plan, error) {
	p := Plan{Level: level, Workloads: []string{"openclose"}, SteadyFactor: 20,
		Placements: []Placement{{2, false}, {1, false}, {1, true}},
		Attaches:   []event.Attach{event.AttachTracepoint, event.AttachRawTP}, Wakeups: []string{"every", "batched"}}
	switch level {
	case "", "full":
		fullLevel(&p)
	case "vm":
		vmLevel(&p)
	case "probes":
		probesLevel(&p)
	case "quick":
		quickLevel(&p)
	case "vm-quick":
		quickLevel(&p)
		p.Level = "vm-quick"
		p.Attaches = vmAttaches
		// An open loop the guest keeps on schedule under TCG (10,000
		// ops/s does not), at a buffer written 20 times in 500 ms there.
		p.Rates = []float64{0, 1000}
		p.RateGeometries = grid([]int{1 << 10}, []int{4})
	case "smoke":
		smokeLevel(&p)
	default:
		return p, fmt.Errorf("BENCH=%q: use full, vm, probes, quick, vm-quick or smoke", level)
	}
	return p, nil
}

// fullLevel sets the rows of BENCH=full: the native matrix.
func fullLevel(p *Plan) {
	// Natively: 1 MiB per CPU is the long group; open loops up to
	// what a capture's closed loop sustains on the machine kind
	// (results/README.md), where a perf buffer woken for every
	// record is the slowest writer. No 100,000 ops/s: none of its rows
	// kept its schedule or its rate in any run, so it bought nothing.
	p.Level = "full"
	p.Rates = []float64{0, 10000, 30000}
	// Open loops: 20 times the largest buffer fits in the 1 s
	// rows. pipecreate (frees in softirq) is the held-out workload.
	p.Workloads = []string{"openclose", "pipecreate"}
	p.OpenLoopRates = map[string][]float64{"pipecreate": {5000}}
	p.RateGrids = map[float64][]Geometry{
		10000: doubling(4<<10, 32<<10, 4),
		30000: doubling(8<<10, 128<<10, 4),
		5000:  doubling(8<<10, 64<<10, 4),
	}
	// Soak rows: 512 KiB per CPU at a fitted rate (sizing.Split),
	// large enough to hold the host's bursts whole, in runs of 6 s
	// (scripts/bench.sh), long enough to meet one (docs/sizing.md).
	p.Soak = map[float64][]Geometry{10000: {{128 << 10, 4}}}
	// Held out of the sizing model's fit: a rate declared between the
	// planned 30,000 and 100,000 (whose rows ran below target or off
	// schedule natively, results/README.md), at the sizes around the
	// paths' loss boundary there; batched readers only, to stay within
	// make bench's budget.
	p.HeldOut = map[float64][]Geometry{50000: doubling(16<<10, 128<<10, 4)}
	p.HeldOutWakeups = []string{"batched"}
	// The probe's parts with one producer: the decomposition's question
	// is the program's own cost, which a second producer only shares.
	// Its capture rows at 64KiB×2: a perf buffer woken per record wrote
	// 128KiB×2 only 18–19.5 times in a second's run on a slower day.
	p.PartsProducers = []int{1}
	p.PartsGeometry = Geometry{64 << 10, 2}
	// A pinned consumer at one fitted rate: its lag enters the sizing
	// model as a placement; a second rate did not pay for its minutes.
	p.PinnedRates = []float64{10000}
	p.Geometries = []Geometry{{16 << 10, 4}, {4 << 10, 2}, {16 << 10, 8}, {256 << 10, 4}}
	p.AttachGeometries = p.Geometries[:1]
	// One producer, shared and pinned, at 16KiB×4 only: at 1 MiB per
	// CPU a perf buffer woken per record did not write 20 times its
	// buffer in 3 s runs with one producer (left out of 864b46d's file
	// after three tries), and make bench has a budget.
	p.PlacementGeometries = p.Geometries[:1]
	p.RateGeometries = []Geometry{{16 << 10, 4}}
	p.PerfRecordGeometries = 1
	p.LongBytes = 1 << 20
}

// vmAttaches are the VM levels' attach modes: raw tracepoints. The
// guest's 6.1 kernel counts the hits it skips a raw tracepoint program
// for (missed), and the truth counter sees them; a tracepoint program's
// skipped hits are in neither there, so its loss would be a lower bound
// beside relay's exact one.
var vmAttaches = []event.Attach{event.AttachRawTP}

// vmLevel sets the rows of BENCH=vm: the VM matrix.
func vmLevel(p *Plan) {
	// Under TCG a capture writes far less than natively: buffers
	// below 128 KiB per CPU reach 20 times their size in a second;
	// from 128 KiB (a perf buffer woken per record wrote it 15–20
	// times) they are the long group. One attach mode (below); perf
	// record starts too slowly under TCG for a row per ramp-up round.
	// Open loops at rates the guest keeps on schedule (3,000 ops/s ran
	// 27–41% late), on grids straddling the loss boundary there, 1–8
	// KiB per CPU (results/README.md: the VM's loss boundary).
	p.Rates = []float64{0, 500, 1000}
	p.RateGrids = map[float64][]Geometry{
		500:  doubling(1<<10, 8<<10, 4),
		1000: doubling(1<<10, 16<<10, 4),
	}
	// Their largest sizes need more than a second to be written 20
	// times at these rates: the long group.
	p.LongAt = map[float64]int{500: 8 << 10, 1000: 16 << 10}
	// The closed loop: one geometry in the long group (128 KiB per CPU,
	// the native matrix's 16KiB×8). Two producers sharing the CPUs only:
	// the other placements are measured natively, and their 16 rows
	// were a fifth of the VM's short group, over make bench's budget.
	p.Geometries = []Geometry{{16 << 10, 8}, {4 << 10, 2}, {16 << 10, 2}}
	p.Placements = p.Placements[:1]
	p.RateGeometries = []Geometry{{4 << 10, 4}}
	// Held out of the sizing model's fit: a rate between the fitted
	// ones, batched readers and relay, declared before it was measured.
	p.HeldOut = map[float64][]Geometry{750: doubling(2<<10, 16<<10, 4)}
	p.HeldOutWakeups = []string{"batched"}
	// The probe's parts, one producer; the capture rows at half the
	// native buffer (the guest writes about 6 MB/s).
	p.PartsProducers = []int{1}
	p.PartsGeometry = Geometry{32 << 10, 2}
	p.Attaches = vmAttaches
	p.LongBytes = 128 << 10
	p.Omitted = map[string]string{"perf-record": "not run at the vm level: perf record's start-up (synthesizing every task) is too slow under TCG to repeat once per ramp-up round"}
}

// probesLevel sets the rows of BENCH=probes: every attach mode side by side, in the VM.
func probesLevel(p *Plan) {
	// Every attach mode side by side in the VM (kprobe and fentry
	// exist only there), ring and perf buffers woken for every
	// record: the closed loop at a buffer that keeps up and one that
	// drops, and an open loop. scripts/bench.sh runs it under
	// tcg-single (docs/vm.md).
	p.Placements = p.Placements[:1]
	p.Rates = []float64{0, 3000}
	p.Geometries = []Geometry{{16 << 10, 8}, {4 << 10, 2}}
	p.AttachGeometries = p.Geometries
	p.RateGeometries = []Geometry{{4 << 10, 4}}
	p.AttachRates = []float64{3000}
	p.Attaches = []event.Attach{event.AttachTracepoint, event.AttachRawTP, event.AttachKprobe, event.AttachFentry}
	p.Wakeups = p.Wakeups[:1]
	p.Omitted = map[string]string{
		"relay":       "the probes level leaves the module's rows to the vm level's file",
		"empty-kmod":  "the probes level leaves the module's rows to the vm level's file",
		"perf-record": "not run at the probes level: perf record's start-up is too slow under TCG",
		"consumers":   "the readers are the same for every attach mode; their rows are in the vm level's file",
	}
}

// quickLevel sets the rows of BENCH=quick: a few minutes of rows.
func quickLevel(p *Plan) {
	// No perf record: its start-up would dominate a quick run.
	p.Placements = p.Placements[:1]
	p.Rates = []float64{0, 10000}
	p.Geometries = []Geometry{{16 << 10, 4}}
	p.RateGeometries = grid([]int{4 << 10}, []int{4})
	p.Attaches = p.Attaches[:1]
}

// smokeLevel sets the rows of BENCH=smoke: one op per row, so the benchmarks cannot rot.
func smokeLevel(p *Plan) {
	p.SteadyFactor = 0
	p.Placements = []Placement{{2, false}, {1, true}}
	p.Rates = []float64{0}
	p.Geometries = grid([]int{16 << 10}, []int{8})
	p.PlacementGeometries = p.Geometries
	p.Attaches = p.Attaches[:1]
	p.Wakeups = p.Wakeups[:1]
	p.PartsProducers = []int{2, 1}
	p.PartsGeometry = Geometry{128 << 10, 2}
}
