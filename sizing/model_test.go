package sizing

import (
	"fmt"
	"math"
	"testing"
)

// synthetic returns the rows a consumer absent for exactly lag seconds
// would give on a ×2 grid of 4 sub-buffers per CPU, at each rate.
func synthetic(k Key, workload string, lag float64, rates []float64, lo, hi int) []Observation {
	const s = 88
	var obs []Observation
	for _, r := range rates {
		for m := lo; m <= hi; m *= 2 {
			o := Observation{Key: k, Workload: workload, Rate: fmt.Sprint(r / 3), PerCPURate: r,
				PerCPUBytes: m, Subbufs: 4, RecordBytes: s, Runs: 6, Source: fmt.Sprintf("%v@%d", r, m)}
			backlog := r * s * lag
			if k.Batched() {
				backlog += float64(m) / 4
			}
			o.NoDrops = backlog <= float64(m)
			o.MaxBacklog = min(backlog, float64(m))
			obs = append(obs, o)
		}
	}
	return obs
}

func TestFitRecoversLag(t *testing.T) {
	for _, k := range []Key{
		{Env: "native x", Path: "ringbuf", Wakeup: "every", Consumer: "shared"},
		{Env: "native x", Path: "perfbuf", Wakeup: "batched", Consumer: "shared"},
		{Env: "vm y", Path: "relay", Consumer: "shared"},
	} {
		const lag = 0.004
		obs := synthetic(k, "openclose", lag, []float64{30e3, 90e3, 300e3}, 8<<10, 1<<20)
		fit, held := Split(obs, "openclose")
		if len(fit) == 0 || len(held) == 0 {
			t.Fatalf("%v: split %d fitted, %d held out; want both", k, len(fit), len(held))
		}
		for _, o := range fit {
			if o.PerCPURate == 90e3 {
				t.Fatalf("%v: the middle rate was fitted (%s); Split fits every other rate", k, o.Source)
			}
		}
		models := Fit(fit)
		if len(models) != 1 {
			t.Fatalf("%v: %d models, want 1", k, len(models))
		}
		m := models[0]
		if math.Abs(m.Lag-lag)/lag > 1e-9 {
			t.Errorf("%v: fitted L = %v s, want %v (from %s)", k, m.Lag, lag, m.LagFrom)
		}
		v := Validate(models, append(held, synthetic(k, "pipecreate", lag, []float64{45e3}, 8<<10, 1<<20)...))
		if c, n := v.Accuracy(false); c != n || n == 0 {
			t.Errorf("%v: held-out accuracy %d/%d, want all", k, c, n)
		}
		for _, b := range v.Boundaries {
			if r := b.Ratio(); !(r > float64(b.Lossy)/float64(b.NoDrops) && r <= 1) {
				t.Errorf("%v %s rate %s: need %.0f B against loss-free %d, lossy %d: ratio %.2f outside the grid step",
					k, b.Workload, b.Rate, b.Need, b.NoDrops, b.Lossy, r)
			}
		}
	}
}

func TestFitNeedsALossFreeRow(t *testing.T) {
	k := Key{Env: "native x", Path: "ringbuf", Wakeup: "every", Consumer: "shared"}
	obs := synthetic(k, "openclose", 1, []float64{300e3}, 8<<10, 64<<10)
	if models := Fit(obs); len(models) != 0 {
		t.Fatalf("fitted %v from rows that all lost", models)
	}
	v := Validate(nil, obs)
	if c, n := v.Accuracy(false); n != 0 || c != 0 {
		t.Fatalf("accuracy %d/%d without a model, want 0/0", c, n)
	}
}

func TestMinBytesBatched(t *testing.T) {
	m := Model{Key: Key{Path: "relay"}, RecordBytes: 80, Lag: 0.001}
	// 100k/s × 80 B × 1 ms = 8000 B readable backlog, plus one of 4
	// sub-buffers being written: 8000 × 4/3.
	if got, want := m.MinBytes(100e3, 4), 8000.0*4/3; math.Abs(got-want) > 1e-6 {
		t.Errorf("relay MinBytes = %v, want %v", got, want)
	}
	if got := m.MinBytes(100e3, 1); !math.IsInf(got, 1) {
		t.Errorf("relay with one sub-buffer: MinBytes = %v, want +Inf", got)
	}
	m.Key = Key{Path: "ringbuf", Wakeup: "every"}
	if got := m.MinBytes(100e3, 1); got != 8000 {
		t.Errorf("ringbuf woken per record: MinBytes = %v, want 8000", got)
	}
}

func TestUnsustainedAndRecommend(t *testing.T) {
	k := Key{Env: "native x", Path: "perfbuf", Wakeup: "batched", Consumer: "shared"}
	obs := synthetic(k, "openclose", 0.002, []float64{30e3}, 8<<10, 256<<10)
	// A rate where the consumer did not keep up: every size lost.
	for _, m := range []int{64 << 10, 128 << 10} {
		obs = append(obs, Observation{Key: k, Workload: "openclose", Rate: "fast", PerCPURate: 1e6, PerCPUBytes: m,
			Subbufs: 4, RecordBytes: 88, Runs: 6, LostPct: 40, MaxBacklog: float64(m), Source: "fast"})
	}
	models := Fit(obs)
	if len(models) != 1 {
		t.Fatalf("%d models", len(models))
	}
	m := models[0]
	if m.Unsustained != 1e6 || m.UnsustainedBytes != 128<<10 {
		t.Errorf("unsustained at %v up to %d, want 1e6 up to 128KiB", m.Unsustained, m.UnsustainedBytes)
	}
	if math.Abs(m.Lag-0.002)/0.002 > 1e-9 {
		t.Errorf("L = %v: the rate nothing kept up at must not set it", m.Lag)
	}
	r := m.Recommend(30e3)
	// 30k × 88 B × 2 ms × 4/3 = 7040 B: at least the 8 KiB floor.
	if r.PerCPUBytes != MinPerCPU || r.SubbufBytes != MinPerCPU/Subbufs || r.WakeupBytes != r.SubbufBytes || r.Unsustained {
		t.Errorf("at 30k: %+v", r)
	}
	r = m.Recommend(300e3) // 70400 B → 128 KiB
	if r.PerCPUBytes != 128<<10 || r.Margin() < 1 || r.Margin() >= 2 {
		t.Errorf("at 300k: %d per CPU, margin %.2f; want 128KiB, margin in [1, 2)", r.PerCPUBytes, r.Margin())
	}
	if !m.Recommend(2e6).Unsustained {
		t.Errorf("2M events/s per CPU is above a rate nothing kept up at")
	}
}

// TestFitQuantileOfRuns gives every row the same 20 runs, absent 1, 2,
// ... 20 ms, on buffers that hold some of them: L must be the 95th
// percentile, 19 ms, although the rows too small for it dropped in the
// runs above their size (the Kaplan–Meier estimate takes those as lower
// bounds). A fit that dropped the censored runs would say less; one that
// took the longest run, 20 ms.
func TestFitQuantileOfRuns(t *testing.T) {
	k := Key{Env: "native x", Path: "perfbuf", Wakeup: "every", Consumer: "shared"}
	const rate, s = 100e3, 96
	var obs []Observation
	for m := 32 << 10; m <= 512<<10; m *= 2 {
		o := Observation{Key: k, Workload: "openclose", Rate: "10000", PerCPURate: rate, PerCPUBytes: m,
			Subbufs: 4, RecordBytes: s, Source: fmt.Sprint(m)}
		o.NoDrops, o.SomeRunsKeptUp = true, false
		for ms := 1; ms <= 20; ms++ {
			backlog := rate * s * float64(ms) / 1e3
			run := Run{Dropped: backlog > float64(m), Backlog: min(backlog, float64(m)), PerCPURate: rate}
			o.PerRun = append(o.PerRun, run)
			if run.Dropped {
				o.NoDrops = false
			} else {
				o.SomeRunsKeptUp = true
			}
		}
		o.SomeRunsKeptUp = o.SomeRunsKeptUp && !o.NoDrops
		o.Runs = len(o.PerRun)
		obs = append(obs, o)
	}
	models := Fit(obs)
	if len(models) != 1 {
		t.Fatalf("%d models, want 1", len(models))
	}
	m := models[0]
	if math.Abs(m.Lag-0.019) > 1e-9 || m.LowerBound {
		t.Errorf("L = %v s (lower bound %v), want the 95th percentile, 0.019", m.Lag, m.LowerBound)
	}
	if m.RunsFitted != 100 || m.Censored == 0 {
		t.Errorf("%d runs fitted, %d censored: want 100, some", m.RunsFitted, m.Censored)
	}
	// Run by run, against L = 19 ms: the rows that hold 3.4, 6.8 and 13.6
	// ms are said to drop, and 17, 14 and 7 of their runs did; the two
	// that hold 27 and 55 ms are said not to, and none of their 40 did.
	if c, n := Validate(models, obs).RunAccuracy(); c != 78 || n != 100 {
		t.Errorf("runs classified right: %d of %d, want 78 of 100", c, n)
	}
	// Only the two smallest rows, and part of the runs: the runs that
	// dropped hide the top of the distribution, so the fit says twice
	// the longest absence it saw.
	models = Fit(obs[:2])
	if m, want := models[0], 2*float64(64<<10)/(rate*s); !m.LowerBound || math.Abs(m.Lag-want) > 1e-9 {
		t.Errorf("from the small rows: L = %v s, lower bound %v; want twice what the 64KiB row holds, %v", m.Lag, m.LowerBound, want)
	}
}

// TestFitGroupTail: two batched paths in one environment and placement,
// one of whose runs showed a 10 ms absence that the other's never did.
// Both get the longer L; a reader woken per record, in another group,
// keeps its own.
func TestFitGroupTail(t *testing.T) {
	ring := Key{Env: "native x", Path: "ringbuf", Wakeup: "batched", Consumer: "shared"}
	perf := Key{Env: "native x", Path: "perfbuf", Wakeup: "batched", Consumer: "shared"}
	every := Key{Env: "native x", Path: "ringbuf", Wakeup: "every", Consumer: "shared"}
	obs := synthetic(ring, "openclose", 0.010, []float64{30e3}, 8<<10, 1<<20)
	obs = append(obs, synthetic(perf, "openclose", 0.001, []float64{30e3}, 8<<10, 1<<20)...)
	obs = append(obs, synthetic(every, "openclose", 0.002, []float64{30e3}, 8<<10, 1<<20)...)
	want := map[Key]struct {
		lag   float64
		group bool
	}{ring: {0.010, false}, perf: {0.010, true}, every: {0.002, false}}
	for _, m := range Fit(obs) {
		w := want[m.Key]
		if math.Abs(m.Lag-w.lag) > 1e-9 || m.FromGroup != w.group {
			t.Errorf("%v: L = %v s (from the group: %v), want %v (%v)", m.Key, m.Lag, m.FromGroup, w.lag, w.group)
		}
	}
}
