package sizing

import (
	"cmp"
	"math"
	"slices"
)

// Fit fits a model per key over the observations, in ModelForm. A key
// whose runs all dropped gets no model: nothing says how far its consumer
// falls behind when it keeps up.
func Fit(obs []Observation) []Model { return FitForm(obs, ModelForm) }

// ModelForm is the model's form: without the consumer-load term, which
// has not earned its place on held-out rows (docs/sizing.md); the report
// scores it again on every results file.
var ModelForm = Form{NoLoad: true}

// Form names the terms a model leaves out, to score the model with and
// without each on held-out rows (a term stays only if it helps there);
// the zero Form has every term.
type Form struct {
	// NoBursts leaves out the environment's bursts (Burst stays zero).
	NoBursts bool `json:"no_bursts,omitempty"`
	// NoLoad leaves out the consumer's load: an absence leaves r·s per
	// second, not r·s/(1 − ρ).
	NoLoad bool `json:"no_load,omitempty"`
}

// FitForm is Fit with the terms f leaves out.
func FitForm(obs []Observation, f Form) []Model {
	var keys []Key
	for _, o := range obs {
		if !slices.Contains(keys, o.Key) {
			keys = append(keys, o.Key)
		}
	}
	var models []Model
	var runs [][]fitRun // of each model
	for _, k := range keys {
		m, kr := fitKey(obs, k, f)
		if len(kr) == 0 {
			continue
		}
		models = append(models, m)
		runs = append(runs, kr)
	}
	var envs []string
	for _, m := range models {
		if !slices.Contains(envs, m.Env) {
			envs = append(envs, m.Env)
		}
	}
	for _, env := range envs {
		fitEnv(models, runs, env, f)
	}
	for i := len(models) - 1; i >= 0; i-- {
		if models[i].Tail == (Tail{}) {
			models = slices.Delete(models, i, i+1)
		}
	}
	slices.SortStableFunc(models, func(a, b Model) int {
		return cmp.Or(cmp.Compare(a.Env, b.Env), cmp.Compare(a.Path, b.Path), cmp.Compare(a.Wakeup, b.Wakeup), cmp.Compare(a.Consumer, b.Consumer))
	})
	return models
}

// fitKey gathers the rows of k: the model without its tails, and the
// runs to fit them on (none: nothing kept up).
func fitKey(obs []Observation, k Key, f Form) (Model, []fitRun) {
	m := Model{Key: k, Form: f, Rates: [2]float64{math.Inf(1), 0}}
	// Where no run of any size kept up at a rate, the consumer was too
	// slow for it, which no buffer fixes: those runs say nothing of its
	// absences.
	keptUp := map[string]bool{}
	for _, o := range obs {
		if o.Key == k && (o.NoDrops || o.SomeRunsKeptUp) {
			keptUp[o.Workload+" "+o.Rate] = true
		}
	}
	lost := map[string][]Observation{}
	var runs []fitRun
	var costs []float64 // consumer-ns/event of every row, kept up or not
	for _, o := range obs {
		if o.Key != k {
			continue
		}
		m.Fitted++
		m.RecordBytes, m.PerEvent = o.RecordBytes, o.perEvent()
		if !math.IsNaN(o.ConsumerNs) && o.ConsumerNs > 0 {
			costs = append(costs, o.ConsumerNs)
		}
		g := o.Workload + " " + o.Rate
		if !keptUp[g] {
			lost[g] = append(lost[g], o)
			continue
		}
		if o.NoDrops {
			m.NoDrops++
		}
		if o.NoDrops || o.SomeRunsKeptUp {
			m.Rates = [2]float64{min(m.Rates[0], o.PerCPURate), max(m.Rates[1], o.PerCPURate)}
		}
		runs = append(runs, o.fitRuns(f)...)
	}
	for _, rows := range lost {
		var rates []float64
		largest := 0
		for _, o := range rows {
			rates = append(rates, o.PerCPURate)
			largest = max(largest, o.PerCPUBytes)
		}
		if r := Median(rates); m.Unsustained == 0 || r < m.Unsustained {
			m.Unsustained, m.UnsustainedBytes = r, largest
		}
	}
	m.ConsumerNs = math.NaN()
	if len(costs) > 0 {
		m.ConsumerNs = Median(costs)
	}
	m.RunsFitted = len(runs)
	for _, r := range runs {
		m.Censored += b2i(r.Dropped)
		m.Seconds += r.Seconds
		m.LongestRun = max(m.LongestRun, r.Seconds)
	}
	return m, runs
}

// fitRounds bounds the rounds of fitEnv's alternation; it stops sooner
// once a round gains less than fitGain in log-likelihood.
const (
	fitRounds = 20
	fitGain   = 0.01
)

// fitEnv fits the tails of env's models and the environment's bursts
// together by turns: each key's tail and each group's given the bursts,
// then the bursts given the keys' tails, until the likelihood settles.
// A model whose tail does not fit is left with the zero Tail.
func fitEnv(models []Model, runs [][]fitRun, env string, f Form) {
	var idx []int
	groupRuns := map[Key][]fitRun{}
	seconds := 0.0
	for i, m := range models {
		if m.Env == env {
			idx = append(idx, i)
			groupRuns[m.group()] = append(groupRuns[m.group()], runs[i]...)
			seconds += m.Seconds
		}
	}
	var burst Burst
	last := math.Inf(-1)
	for round := 0; round < fitRounds; round++ {
		var rs [][]fitRun
		var tails []Tail
		ll := 0.0
		for _, i := range idx {
			models[i].Tail, _ = fitTail(runs[i], burst)
			ll += logLikelihood(models[i].Tail, burst, runs[i])
			rs, tails = append(rs, runs[i]), append(tails, models[i].Tail)
		}
		if ll-last < fitGain || round == fitRounds-1 || f.NoBursts {
			break
		}
		last = ll
		burst = fitBurst(rs, tails, burst)
	}
	groupTails := map[Key]Tail{}
	for g, r := range groupRuns {
		groupTails[g], _ = fitTail(r, burst)
	}
	for _, i := range idx {
		m := &models[i]
		m.GroupTail, m.Burst, m.BurstSeconds = groupTails[m.group()], burst, seconds
		for _, r := range groupRuns[m.group()] {
			m.GroupSeconds += r.Seconds
		}
	}
}

// group is the set of models whose runs also bound this one's absences:
// same environment and consumer placement, and read in whole sub-buffers
// or not.
func (m Model) group() Key {
	g := Key{Env: m.Env, Consumer: m.Consumer, Wakeup: "every"}
	if m.Batched() {
		g.Wakeup = "batched"
	}
	return g
}
