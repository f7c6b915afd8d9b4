package report

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/slabbench/slabbench/internal/bytesize"
	"github.com/slabbench/slabbench/sizing"
)

// SameRate is how far apart two rows' achieved events/s per CPU may be
// for a ranking to join them.
const SameRate = 0.05

// sameConditions says whether two rows ran at the same per-CPU memory
// and placement, in the same loss class (both lossless in every run, or
// neither), their median events/s within SameRate of each other.
func sameConditions(a, b *Row) bool {
	ma, okA := a.PerCPUBytes()
	mb, okB := b.PerCPUBytes()
	ra, okRA := a.eventsPerSec()
	rb, okRB := b.eventsPerSec()
	return okA && okB && okRA && okRB && ma == mb && a.ZeroLoss() == b.ZeroLoss() &&
		a.Keys["producers"] == b.Keys["producers"] && a.Keys["consumer"] == b.Keys["consumer"] &&
		math.Abs(ra-rb) <= SameRate*math.Min(ra, rb)
}

// Comparable is a set of rows a ranking may join: open loops of one
// workload, target rate, placement and per-CPU memory, every run of
// every row lossless in the same class (exactly, or as far as a kernel
// that does not count every skipped hit can tell: LowerBound), their
// achieved events/s per CPU within SameRate of the lowest.
type Comparable struct {
	Workload, Rate      string // the rate key: ops/s over all producers
	Producers, Consumer string
	PerCPUBytes         int
	// LowerBound says the rows' loss is a lower bound (lossLowerBound).
	LowerBound bool
	// Class is the rows' loss class (rowLossClass; a lossless row is
	// also of class 1): above 0, rankings print each row's lost-%.
	Class int
	// PerCPURate is the lowest of the rows' median events/s per CPU.
	PerCPURate float64
	Rows       []*Row
}

// comparable returns the section's best Comparable set of workload's
// transport rows (the file's attach mode) of two rows or more (beats);
// false when no two rows compare.
func (s *Section) comparable(workload string) (Comparable, bool) {
	cpus, err := strconv.Atoi(s.ConfigValue("cpus"))
	if err != nil || cpus <= 0 {
		return Comparable{}, false
	}
	groups := map[string]*Comparable{}
	var keys []string
	for _, r := range s.Rows {
		v := variantOf(r)
		mem, okMem := r.PerCPUBytes()
		if r.Bench != "Capture" || r.Keys["workload"] != workload || r.Keys["rate"] == HeadlineRate || !okMem ||
			!slices.Contains(Paths, v.Path) || v.Attach != "" && v.Attach != s.Attach || r.Metric(UnitLost) == nil || s.LeftOut(r) != "" {
			continue
		}
		bound := s.lossLowerBound(r)
		// A lossless row also joins the little-loss class's sets.
		for class := rowLossClass(r); class <= max(rowLossClass(r), 1); class++ {
			key := fmt.Sprintf("%s/%s/%s/%d/%v/%d", r.Keys["rate"], r.Keys["producers"], r.Keys["consumer"], mem, bound, class)
			g := groups[key]
			if g == nil {
				g = &Comparable{Workload: workload, Rate: r.Keys["rate"], Producers: r.Keys["producers"], Consumer: r.Keys["consumer"],
					PerCPUBytes: mem, LowerBound: bound, Class: class}
				groups[key] = g
				keys = append(keys, key)
			}
			if !slices.ContainsFunc(g.Rows, func(o *Row) bool { return variantOf(o) == v }) {
				g.Rows = append(g.Rows, r)
			}
		}
	}
	var best Comparable
	for _, key := range keys {
		g := groups[key]
		g.keepSameRate(cpus)
		if len(g.Rows) >= 2 && g.beats(&best) {
			best = *g
		}
	}
	return best, len(best.Rows) >= 2
}

// beats says whether g is a better set to rank than best: little loss or
// none before much; then more rows, so that a ranking is not narrowed to
// the paths that happened to lose nothing while the others lost a few
// events (a lossless row is also of the little-loss class, whose rankings
// print each row's lost-%); then the lower class, the faster, the larger.
func (g *Comparable) beats(best *Comparable) bool {
	switch gMuch, bMuch := g.Class > 1, best.Class > 1; {
	case len(best.Rows) == 0:
		return true
	case gMuch != bMuch:
		return !gMuch
	case len(g.Rows) != len(best.Rows):
		return len(g.Rows) > len(best.Rows)
	case g.Class != best.Class:
		return g.Class < best.Class
	}
	return g.PerCPURate > best.PerCPURate*(1+SameRate) ||
		g.PerCPURate >= best.PerCPURate*(1-SameRate) && g.PerCPUBytes > best.PerCPUBytes
}

// LittleLoss is the largest median lost-% of the little-loss class.
const LittleLoss = 0.1

// rowLossClass is a row's loss class: 0 no event lost in any run, 1 a
// median lost-% of at most LittleLoss, 2 more. A path that drops much
// spends less per event than one that keeps up, so rankings stay in one.
func rowLossClass(r *Row) int {
	switch {
	case r.ZeroLoss():
		return 0
	case r.Metric(UnitLost).Median <= LittleLoss:
		return 1
	}
	return 2
}

// rowPerCPURate is a row's median events/s per CPU.
func rowPerCPURate(r *Row, cpus int) float64 {
	ev, ok := r.eventsPerSec()
	if !ok {
		return 0
	}
	producers, _ := strconv.Atoi(r.Keys["producers"])
	return sizing.PerCPURate(r.Keys["path"], ev, producers, cpus)
}

// keepSameRate keeps the rows within SameRate of the slowest row that
// reached the most of its target: a row that fell behind the others is
// dropped, not compared.
func (c *Comparable) keepSameRate(cpus int) {
	rate := func(r *Row) float64 { return rowPerCPURate(r, cpus) }
	slices.SortStableFunc(c.Rows, func(a, b *Row) int { return cmp.Compare(rate(b), rate(a)) })
	if len(c.Rows) == 0 {
		return
	}
	top := rate(c.Rows[0])
	c.Rows = slices.DeleteFunc(c.Rows, func(r *Row) bool { return rate(r) < top*(1-SameRate) })
	c.PerCPURate = math.Inf(1)
	for _, r := range c.Rows {
		c.PerCPURate = min(c.PerCPURate, rate(r))
	}
	slices.SortStableFunc(c.Rows, func(a, b *Row) int {
		return cmp.Or(cmp.Compare(pathRank(a.Keys["path"]), pathRank(b.Keys["path"])), cmp.Compare(a.Keys["wakeup"], b.Keys["wakeup"]))
	})
}

// String names the set the way a ranking cites it.
func (c Comparable) String() string {
	lossless := "no event lost in any run"
	if c.Class > 0 {
		var lost []string
		for _, r := range c.Rows {
			lost = append(lost, fmt.Sprintf("%s %s", variantLabel(r), cell(r.Metric(UnitLost), r.Runs)))
		}
		lossless = fmt.Sprintf("a median lost-%% of at most %s on each row, lost-%% median [min–max]: %s", num(LittleLoss), strings.Join(lost, ", "))
		if c.Class > 1 {
			lossless = "no two rows lost little, lost-% median [min–max]: " + strings.Join(lost, ", ")
		}
	}
	if c.LowerBound {
		lossless += " as counted, a lower bound: this kernel does not count the hits it skips a tracepoint program for"
	}
	return fmt.Sprintf("open loops of %s at rate=%s ops/s (%s events/s per CPU, within %.0f%%), producers=%s, consumer=%s, %s per CPU, %s",
		c.Workload, c.Rate, RateLabel(c.PerCPURate), 100*SameRate, c.Producers, c.Consumer, bytesize.Format(c.PerCPUBytes), lossless)
}

// LowerBoundShare is how far below the relay rows' events/op (of the
// same workload, rate and section) a tracepoint program's row may see
// before its loss counts as a lower bound.
const LowerBoundShare = 0.005

// lossLowerBound says whether the row's loss is only a lower bound: an
// eBPF tracepoint row that reported no missed events, on a kernel that
// hides the hits it skips a tracepoint program for (hidesSkippedHits).
func (s *Section) lossLowerBound(r *Row) bool {
	if r.Keys["path"] == "relay" || cmp.Or(r.Keys["attach"], "tracepoint") != "tracepoint" {
		return false
	}
	if m := r.Metric(UnitMissed); m != nil && m.Max > 0 {
		return false // this kernel counts them
	}
	return s.hidesSkippedHits()
}

// hidesSkippedHits says whether the section's kernel keeps no count of
// the hits it skips a tracepoint program for: some eBPF tracepoint row
// reported no missed events while seeing fewer events per op than the
// relay module's rows of the same workload and rate (open loops see more
// of other tasks' events per op). Such a kernel (6.1) hides them from
// the truth counter too (docs/limits.md).
func (s *Section) hidesSkippedHits() bool {
	for _, r := range s.Rows {
		if r.Bench != "Capture" || r.Keys["path"] == "relay" || cmp.Or(r.Keys["attach"], "tracepoint") != "tracepoint" {
			continue
		}
		if m := r.Metric(UnitMissed); m == nil || m.Max > 0 {
			continue
		}
		ev, ok := r.Median("events/op")
		relay := s.relayEventsPerOp(r.Keys["workload"], r.Keys["rate"])
		if ok && relay > 0 && ev < relay*(1-LowerBoundShare) {
			return true
		}
	}
	return false
}

// relayEventsPerOp is the median events/op of the relay rows of a
// workload and rate (0: none).
func (s *Section) relayEventsPerOp(workload, rate string) float64 {
	m := &Metric{}
	for _, r := range s.Rows {
		if r.Bench == "Capture" && r.Keys["path"] == "relay" && r.Keys["workload"] == workload && r.Keys["rate"] == rate {
			if ev, ok := r.Median("events/op"); ok {
				m.Values = append(m.Values, ev)
			}
		}
	}
	if len(m.Values) == 0 {
		return 0
	}
	m.summarise()
	return m.Median
}

// truthCost returns the probe-ns/event of the BenchmarkProbeParts rows
// of r's path with the truth stamp on and off (part=accounted): the
// stamp's price per event inside the probe, which is where it is paid.
// The parts run one workload and attach mode; the stamp is the same code
// whatever the row's workload and attach mode, so a row takes its path's
// price from the parts of its own attach mode where the file has them,
// else from those of another.
func (s *Section) truthCost(r *Row) (on, off *Metric) {
	for _, g := range s.probePartGroups() {
		if g.path != r.Keys["path"] {
			continue
		}
		gOn, gOff := g.probe(partsStampRow), g.probe(partsUnstampedRow)
		if gOn == nil || gOff == nil || gOn.N() == 0 || gOff.N() == 0 {
			continue
		}
		if on == nil || g.attach == r.Keys["attach"] {
			on, off = gOn, gOff
		}
	}
	return on, off
}

// cpuPerEvent is the row's probe-ns/event + consumer-ns/event, run by
// run, summarised as a Metric (nil where no run reports both).
func cpuPerEvent(r *Row) *Metric {
	m := &Metric{Unit: "cpu-ns/event"}
	for _, run := range r.PerRun(UnitProbe, UnitConsumer) {
		m.Values = append(m.Values, run[0]+run[1])
	}
	if len(m.Values) == 0 {
		return nil
	}
	m.summarise()
	return m
}

// cpuOrdering ranks the rows by CPU per event (cpuPerEvent), each with
// its path's truth stamp price beside it. Every row carries the stamp,
// and the price differs by path, so "<" needs the ranges to separate
// with the stamps and without them (each row's values less its price);
// a row whose price is not measured is listed after, unranked.
func (s *Section) cpuOrdering(rows []*Row) string {
	have, unpriced := s.rankCPU(rows)
	var sb strings.Builder
	for i, h := range have {
		if i > 0 {
			if have[i-1].separates(h) {
				sb.WriteString(" < ")
			} else {
				sb.WriteString(" ≈ ")
			}
		}
		fmt.Fprintf(&sb, "%s %s (truth stamp %s)", variantLabel(h.r), cell(h.m, h.r.Runs), h.stampCell)
	}
	if len(unpriced) > 0 {
		if sb.Len() > 0 {
			sb.WriteString("; ")
		}
		fmt.Fprintf(&sb, "unranked, no BenchmarkProbeParts pair to price its truth stamp: %s", strings.Join(unpriced, ", "))
	}
	return sb.String()
}

// cpuLeaders names the rows cpuOrdering puts first, up to its first <.
func (s *Section) cpuLeaders(rows []*Row) string {
	have, _ := s.rankCPU(rows)
	if len(have) == 0 {
		return "—"
	}
	var names []string
	for i, h := range have {
		if i > 0 && have[i-1].separates(h) {
			break
		}
		names = append(names, fmt.Sprintf("%s (%s ns)", variantLabel(h.r), num(h.m.Median)))
	}
	return strings.Join(names, " ≈ ")
}

// rankedCPU is a row's CPU per event with its path's truth stamp price.
type rankedCPU struct {
	r         *Row
	m         *Metric
	stamp     float64
	stampCell string // stamp with its range (diffCell)
}

// separates says whether p ranks below h with and without the stamps.
func (p rankedCPU) separates(h rankedCPU) bool {
	return p.m.Max < h.m.Min && p.m.Max-p.stamp < h.m.Min-h.stamp
}

// rankCPU sorts the rows by CPU per event; rows whose stamp has no price
// are returned apart, labelled.
func (s *Section) rankCPU(rows []*Row) (have []rankedCPU, unpriced []string) {
	for _, r := range rows {
		m := cpuPerEvent(r)
		if m == nil {
			continue
		}
		// The in-band truth stamp's price per event on the row's path
		// (BenchmarkProbeParts: probe-ns/event with the stamp on less
		// off), with the widest difference the two rows' ranges allow: a
		// price whose range spans 0 was not measured apart from the noise.
		st, stampCell := diffCell(s.truthCost(r))
		if math.IsNaN(st) {
			unpriced = append(unpriced, fmt.Sprintf("%s %s", variantLabel(r), cell(m, r.Runs)))
			continue
		}
		have = append(have, rankedCPU{r, m, st, stampCell})
	}
	slices.SortStableFunc(have, func(a, b rankedCPU) int { return cmp.Compare(a.m.Median, b.m.Median) })
	return have, unpriced
}
