package sizing

import (
	"slices"
	"strings"
)

// Set is the sizing model of a set of measurements: one Model per
// environment, path, wakeup and consumer, fitted on the fit workload's
// observations and checked on the held-out rest. It is the entry point
// for a size: ModelFor, Answer.
type Set struct {
	FitWorkload  string
	Observations []Observation
	Fitted, Held []Observation
	// HeldOutDeclared says the held-out open loops are the ones the
	// benchmark plan declared before they were measured (Split).
	HeldOutDeclared bool
	Models          []Model
	Validation      Validation
}

// MissedTarget is an open-loop row that missed its target rate in every
// run, so it reported nothing: at that rate the consumer did not keep up.
type MissedTarget struct {
	Key        Key
	PerCPURate float64 // the target, events/s per CPU
	Source     string  // the row's name
}

// FitSet fits the models on the observations of fitWorkload, validates
// them on the others, and marks each model's lowest missed target.
func FitSet(obs []Observation, missed []MissedTarget, fitWorkload string) Set {
	s := Set{FitWorkload: fitWorkload, Observations: obs}
	s.Fitted, s.Held, s.HeldOutDeclared = Split(obs, fitWorkload)
	s.Models = Fit(s.Fitted)
	for i := range s.Models {
		m := &s.Models[i]
		for _, t := range missed {
			if t.Key == m.Key && (m.MissedTarget == 0 || t.PerCPURate < m.MissedTarget) {
				m.MissedTarget, m.MissedTargetRow = t.PerCPURate, t.Source
			}
		}
	}
	s.Validation = Validate(s.Models, s.Held)
	return s
}

// Refit fits the model again on the same rows in form f and validates it
// on the same held-out rows: beside the model's, its Scores say whether
// the terms the two forms differ by earn their place.
func (s Set) Refit(f Form) Validation {
	return Validate(FitForm(s.Fitted, f), s.Held)
}

// EnvName is the environment of a key without its kernel: "native".
func (k Key) EnvName() string {
	e, _, _ := strings.Cut(k.Env, " ")
	return e
}

// ModelFor returns the model of path, wakeup and consumer in the
// environment env ("native", "vm-tcg"; any kernel).
func (s Set) ModelFor(env, path, wakeup, consumer string) (Model, bool) {
	for _, m := range s.Models {
		if m.EnvName() == env && m.Path == path && m.Wakeup == wakeup && m.Consumer == consumer {
			return m, true
		}
	}
	return Model{}, false
}

// Environments lists the environments (without kernel) that have models.
func (s Set) Environments() []string {
	var envs []string
	for _, m := range s.Models {
		if e := m.EnvName(); !slices.Contains(envs, e) {
			envs = append(envs, e)
		}
	}
	return envs
}

// Answer is the one decision (Decide) for path, wakeup and consumer in
// environment env ("native", "vm-tcg"; any kernel) at rate events/s per
// CPU over a capture of seconds.
func (s Set) Answer(env, path, wakeup, consumer string, rate, seconds float64) Answer {
	m, found := s.ModelFor(env, path, wakeup, consumer)
	k := Key{Env: env, Path: path, Wakeup: wakeup, Consumer: consumer}
	for _, o := range s.Observations {
		if !found && o.EnvName() == env && o.Path == path && o.Wakeup == wakeup && o.Consumer == consumer {
			k.Env = o.Env // the rows' environment and kernel, which Decide matches
			break
		}
	}
	return Decide(m, found, s.Observations, s.Validation, s.FitWorkload, k, rate, seconds)
}

// AnswerFor is the decision for model m's own key.
func (s Set) AnswerFor(m Model, rate, seconds float64) Answer {
	return Decide(m, true, s.Observations, s.Validation, s.FitWorkload, m.Key, rate, seconds)
}
