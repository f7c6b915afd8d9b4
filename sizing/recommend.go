package sizing

import (
	"math"
	"math/bits"
)

// Subbufs is the sub-buffer count of a recommendation: the count the
// benchmark's open-loop grid ran, so the model was fitted on it.
const Subbufs = 4

// MinPerCPU is the smallest per-CPU memory recommended: Subbufs
// sub-buffers of 2 KiB, 8 KiB in all.
const MinPerCPU = Subbufs * 2 << 10

// Recommendation is a model's answer at one rate and capture length.
type Recommendation struct {
	Model
	Rate    float64 // events/s per CPU asked for
	Seconds float64 // the capture's length
	// Hold is the absence the buffer outlasts (Model.Hold at Risk) and
	// Burst the burst it holds (Model.BurstBytes at Risk).
	Hold, Burst float64
	// Need is the model's minimum per-CPU memory at Rate; PerCPUBytes
	// that rounded up to a power of two, in Subbufs sub-buffers.
	Need        float64
	PerCPUBytes int
	SubbufBytes int
	// WakeupBytes is what --wakeup-bytes should be (batched readers: one
	// sub-buffer); 0 for a reader woken per record and for relay.
	WakeupBytes int
	// Unsustained says whether the fit saw every tested size lose at
	// Rate or below. Whether to give the size at all is Decide's.
	Unsustained bool
}

// Margin is the recommended memory over the model's minimum.
func (r Recommendation) Margin() float64 { return Margin(r.PerCPUBytes, r.Need) }

// Margin is perCPUBytes over need; 0 over a need of 0 (nothing to hold:
// no margin to state).
func Margin(perCPUBytes int, need float64) float64 {
	if need <= 0 {
		return 0
	}
	return float64(perCPUBytes) / need
}

// RiskAt is the model's chance of a drop in the capture at the
// recommended memory (at most Risk: the memory is rounded up).
func (r Recommendation) RiskAt() float64 {
	readable := float64(r.PerCPUBytes)
	if r.Batched() {
		readable -= float64(r.SubbufBytes)
	}
	return -math.Expm1(-r.Seconds * r.Exceed(readable, r.Rate))
}

// Extrapolated says whether the capture is longer than the runs of what
// sets the need (the environment's bursts, the key's tail or its
// group's) lasted together, so that what it sizes for is the fitted
// form's, not what the runs met.
func (r Recommendation) Extrapolated() bool { return r.Seconds > r.Exposure(r.Rate, r.Seconds) }

// RoundUp is the per-CPU memory for a need of bytes: a power of two, at
// least MinPerCPU, in Subbufs sub-buffers of subbuf bytes.
func RoundUp(need float64) (perCPU, subbuf int) {
	perCPU = MinPerCPU
	if need > MinPerCPU {
		perCPU = 1 << bits.Len64(uint64(math.Ceil(need))-1)
	}
	return perCPU, perCPU / Subbufs
}

// Recommend sizes the buffer for rate events/s per CPU over a capture of
// seconds, for a chance of a drop under Risk.
func (m Model) Recommend(rate, seconds float64) Recommendation {
	r := Recommendation{Model: m, Rate: rate, Seconds: seconds, Hold: m.Hold(seconds, Risk), Burst: m.BurstBytes(seconds, Risk), Need: m.MinBytes(rate, Subbufs, seconds, Risk)}
	r.PerCPUBytes, r.SubbufBytes = RoundUp(r.Need)
	if m.Wakeup == "batched" {
		r.WakeupBytes = r.SubbufBytes
	}
	r.Unsustained = m.Unsustained > 0 && rate >= m.Unsustained
	return r
}

// inRange is rate within the fitted rates that kept up, give or take a
// factor of two.
func (m Model) inRange(rate float64) bool {
	return rate >= m.Rates[0]/2 && rate <= 2*m.Rates[1]
}

// Cost is what one event costs on a path, from the measured row an
// answer stands on (CostFor); NaN where no row says.
type Cost struct {
	ProbeNs, ConsumerNs float64
	// OverheadNs is the workload's slowdown per event, measured in the
	// closed loop only.
	OverheadNs float64
	// From and OverheadFrom are the rows the costs come from ("": none).
	From, OverheadFrom string
}
