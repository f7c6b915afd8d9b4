package sizing

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// tailMin is the fewest samples a fitted tail stands on; it stands on the
// largest tailShare of a series' samples where that is more: few enough
// to be the rare backlogs (other tasks' bursts, long absences), not the
// reader's every wakeup (results/README.md, "Calibration").
const (
	tailMin   = 5
	tailShare = 1.0 / 50
)

// rateSlack is how far outside the calibrated rates an asked rate still
// counts as observed: a capture at a target rate runs within a few
// percent of it.
const rateSlack = 1.1

// Need is the per-CPU memory a capture of seconds at the series' rate
// needs for a chance of a drop of at most risk: the backlog that a share q
// of the sample intervals passes, q such that a capture spanning
// seconds/Interval intervals meets one with chance risk. Where q is below
// one sample of the series, the backlog comes from a tail fitted to its
// largest samples and extrapolated is true; it is then never below the
// largest backlog seen. The tail is exponential past a threshold (peaks
// over a threshold), with its scale not known but estimated from the few
// excesses it stands on: the predictive tail of that estimate (a Lomax
// tail, k excesses of mean m passing x with chance (1 + x/(k m))^-k), so
// that an answer from a dozen samples is larger than one from hundreds
// with the same mean, as a point estimate is not (results/README.md,
// "Calibration").
func (s BacklogSeries) Need(seconds, risk float64) (need float64, extrapolated bool) {
	n := len(s.Backlog)
	if n == 0 {
		return 0, true
	}
	desc := slices.Clone(s.Backlog)
	slices.SortFunc(desc, func(a, b float64) int { return cmp.Compare(b, a) })
	intervals := math.Max(seconds/s.Interval, 1)
	q := -math.Expm1(math.Log1p(-risk) / intervals)
	if k := q * float64(n); k >= 1 {
		return desc[int(math.Ceil(k))-1], false
	}
	top := max(tailMin, int(float64(n)*tailShare))
	if top >= n {
		top = n - 1
	}
	if top < 1 {
		return desc[0], true
	}
	threshold := desc[top]
	var excess float64
	for _, x := range desc[:top] {
		excess += x - threshold
	}
	k := float64(top)
	// (k/n)(1 + x/excess)^-k = q, excess being k m.
	need = threshold + excess*math.Expm1(math.Log(k/(float64(n)*q))/k)
	return math.Max(need, desc[0]), true
}

// ObservedAnswer is a calibration's answer for one path and wakeup.
type ObservedAnswer struct {
	Path, Wakeup  string
	Rate, Seconds float64
	// Need is the per-CPU memory for the capture; PerCPUBytes that rounded
	// up to a power of two, in Subbufs sub-buffers of SubbufBytes.
	Need        float64
	PerCPUBytes int
	SubbufBytes int
	// WakeupBytes is --wakeup-bytes: the calibrated one, or one
	// sub-buffer where that is less (0 for a reader woken per record).
	WakeupBytes int
	// Extrapolated says how the answer goes beyond what was observed: ""
	// when the rate is within the calibrated ones and the capture's risk
	// within what the samples show.
	Extrapolated string
	// Nearest is the series at the calibrated rate nearest Rate: its
	// largest backlog and how long it observed are the evidence to show.
	Nearest BacklogSeries
	Rates   []float64 // the calibrated rates, ascending
	// HalfBytes is half of PerCPUBytes (0 below MinPerCPU), and HalfRisk
	// the chance of a drop the same samples give it: what the rounding up
	// to a power of two buys.
	HalfBytes int
	HalfRisk  float64
}

// Answer sizes path read with wakeup for rate events/s per CPU and a
// capture of seconds, with a chance of a drop of at most Risk, from the
// backlogs observed: each series' Need, interpolated linearly in the rate
// between the calibrated rates (a backlog is a burst, rate-independent,
// plus what piles up during the reader's absences, in proportion to the
// rate) and extrapolated along the nearest two outside them. ok is false
// when the calibration has no series of that path and wakeup.
func (c Calibration) Answer(path, wakeup string, rate, seconds float64) (ObservedAnswer, bool) {
	series := c.SeriesFor(path, wakeup)
	if len(series) == 0 {
		return ObservedAnswer{}, false
	}
	a := ObservedAnswer{Path: path, Wakeup: wakeup, Rate: rate, Seconds: seconds}
	for _, s := range series {
		a.Rates = append(a.Rates, s.Rate)
	}
	var tail bool
	a.Need, a.Nearest, tail = needAtRisk(series, rate, seconds, Risk)
	lo, hi := a.Rates[0], a.Rates[len(a.Rates)-1]
	switch {
	case rate < lo/rateSlack || rate > hi*rateSlack:
		a.Extrapolated = fmt.Sprintf("the rate is outside the calibrated %.0f-%.0f events/s per CPU", lo, hi)
	case tail:
		a.Extrapolated = fmt.Sprintf("a %.0f%% chance over %.0f s is beyond what %s s of samples show: a fitted tail", 100*Risk, seconds,
			strconv.FormatFloat(math.Round(10*a.Nearest.Seconds())/10, 'f', -1, 64))
	}
	a.PerCPUBytes, a.SubbufBytes = RoundUp(a.Need)
	if wakeup == "batched" {
		a.WakeupBytes = min(a.Nearest.WakeupBytes, a.SubbufBytes)
	}
	if half := a.PerCPUBytes / 2; half >= MinPerCPU {
		a.HalfBytes, a.HalfRisk = half, riskAt(series, rate, seconds, float64(half))
	}
	return a, true
}

// needAtRisk is the need of series (ascending rates) at rate for a
// capture of seconds and a chance of a drop of risk (each series' Need,
// interpolated by needAt), the series nearest rate, and whether a series'
// need came from its fitted tail.
func needAtRisk(series []BacklogSeries, rate, seconds, risk float64) (need float64, nearest BacklogSeries, tail bool) {
	needs := make([]float64, len(series))
	for i, s := range series {
		var ext bool
		needs[i], ext = s.Need(seconds, risk)
		tail = tail || ext
	}
	need, nearest = needAt(series, needs, rate)
	return need, nearest, tail
}

// riskAt is the chance of a drop needAtRisk gives a per-CPU memory of
// bytes: the least risk whose need it holds (a need falls as the risk
// grows), found by bisection on the risk's logarithm; 1 where not even
// a near-certain drop's need fits.
func riskAt(series []BacklogSeries, rate, seconds, bytes float64) float64 {
	const lowest, highest = 1e-9, 0.999
	fits := func(risk float64) bool { need, _, _ := needAtRisk(series, rate, seconds, risk); return need <= bytes }
	if fits(lowest) {
		return lowest
	}
	if !fits(highest) {
		return 1
	}
	lo, hi := math.Log(lowest), math.Log(highest)
	for range 60 {
		if mid := (lo + hi) / 2; fits(math.Exp(mid)) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return math.Exp(hi)
}

// needAt interpolates the needs of series (ascending rates) at rate,
// along the nearest two outside them, and returns the series nearest it.
func needAt(series []BacklogSeries, needs []float64, rate float64) (float64, BacklogSeries) {
	nearest := 0
	for i, s := range series {
		if math.Abs(s.Rate-rate) < math.Abs(series[nearest].Rate-rate) {
			nearest = i
		}
	}
	if len(series) == 1 {
		return needs[0] * rate / series[0].Rate, series[0]
	}
	i := 0
	for i < len(series)-2 && rate > series[i+1].Rate {
		i++
	}
	r0, r1, y0, y1 := series[i].Rate, series[i+1].Rate, needs[i], needs[i+1]
	need := y0 + (y1-y0)*(rate-r0)/(r1-r0)
	if need < 0 || rate < r0 && need > y0 {
		// Below the calibrated rates a line can fall past zero, or rise
		// where the needs fell: take the lowest rate's need in proportion.
		need = y0 * rate / r0
	}
	return need, series[nearest]
}
