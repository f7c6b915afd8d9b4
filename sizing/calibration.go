package sizing

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/perf/benchfmt"
)

// CalibrationBench is the benchmark name of `slabbench calibrate`'s rows.
const CalibrationBench = "Calibrate"

// Calibration units: a row is one sample interval of one series.
const (
	UnitBacklog     = "backlog-B"
	UnitRate        = "events/s/cpu"
	UnitBusiestRate = "busiest-events/s/cpu"
)

// A Calibration is what `slabbench calibrate` observed on one machine:
// for each path and reader wakeup, at two or more rates, the backlog of a
// buffer too large to drop, sampled over time.
type Calibration struct {
	File   string
	Config map[string]string // the file's configuration lines: cpu, cpus, kernel, environment, commit
	Series []BacklogSeries
}

// A BacklogSeries is one calibration capture: a path read with one
// wakeup policy at one rate.
type BacklogSeries struct {
	Path, Wakeup string
	WakeupBytes  int     // what --wakeup-bytes was (0: every record)
	Rate         float64 // events/s per CPU, the mean over the CPUs
	BusiestRate  float64 // events/s on the busiest CPU
	Interval     float64 // seconds one sample covers
	// Backlog is, per sample interval, the most bytes one CPU's share of
	// the buffer held unread when the reader took a record.
	Backlog []float64
}

// Seconds is how long the series observed.
func (s BacklogSeries) Seconds() float64 { return float64(len(s.Backlog)) * s.Interval }

// Largest is the largest backlog the series saw.
func (s BacklogSeries) Largest() float64 {
	if len(s.Backlog) == 0 {
		return 0
	}
	return slices.Max(s.Backlog)
}

// ReadCalibration parses a calibration file (benchfmt, as calibrate
// writes it).
func ReadCalibration(r io.Reader, file string) (Calibration, error) {
	c := Calibration{File: file, Config: map[string]string{}}
	index := map[string]int{}
	br := benchfmt.NewReader(r, file)
	for br.Scan() {
		res, ok := br.Result().(*benchfmt.Result)
		if !ok {
			continue // unit metadata and syntax errors of other lines
		}
		for _, cfg := range res.Config {
			c.Config[cfg.Key] = string(cfg.Value)
		}
		base, parts := res.Name.Parts()
		if string(base) != CalibrationBench {
			continue
		}
		key := string(res.Name.Full())
		i, seen := index[key]
		if !seen {
			s, err := seriesOf(parts, res)
			if err != nil {
				return c, fmt.Errorf("%s: %s: %w", file, key, err)
			}
			index[key], i = len(c.Series), len(c.Series)
			c.Series = append(c.Series, s)
		}
		b, ok := valueOf(res, UnitBacklog)
		if !ok {
			return c, fmt.Errorf("%s: %s: a row without %s", file, key, UnitBacklog)
		}
		c.Series[i].Backlog = append(c.Series[i].Backlog, b)
	}
	if err := br.Err(); err != nil {
		return c, err
	}
	if len(c.Series) == 0 {
		return c, fmt.Errorf("%s: no Benchmark%s rows: not a calibration file (slabbench calibrate writes one)", file, CalibrationBench)
	}
	return c, nil
}

// seriesOf reads a series' keys from its name and its rates from a row.
func seriesOf(parts [][]byte, res *benchfmt.Result) (BacklogSeries, error) {
	s := BacklogSeries{}
	for _, p := range parts {
		k, v, _ := strings.Cut(strings.TrimPrefix(string(p), "/"), "=")
		switch k {
		case "path":
			s.Path = v
		case "wakeup":
			s.Wakeup = v
		case "wakeup-bytes":
			s.WakeupBytes, _ = strconv.Atoi(v)
		case "interval":
			d, err := strconv.ParseFloat(strings.TrimSuffix(v, "ms"), 64)
			if err != nil || !strings.HasSuffix(v, "ms") || d <= 0 {
				return s, fmt.Errorf("interval=%s: want milliseconds, e.g. interval=100ms", v)
			}
			s.Interval = d / 1e3
		}
	}
	var ok1, ok2 bool
	s.Rate, ok1 = valueOf(res, UnitRate)
	s.BusiestRate, ok2 = valueOf(res, UnitBusiestRate)
	if s.Path == "" || s.Wakeup == "" || s.Interval == 0 || !ok1 || !ok2 || s.Rate <= 0 {
		return s, errors.New("want path=, wakeup=, interval= in the name and " + UnitRate + " > 0 and " + UnitBusiestRate)
	}
	return s, nil
}

func valueOf(res *benchfmt.Result, unit string) (float64, bool) {
	for _, v := range res.Values {
		if v.Unit == unit {
			return v.Value, true
		}
	}
	return 0, false
}

// SeriesFor returns the series of one path and wakeup, by rate.
func (c Calibration) SeriesFor(path, wakeup string) []BacklogSeries {
	var out []BacklogSeries
	for _, s := range c.Series {
		if s.Path == path && s.Wakeup == wakeup {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b BacklogSeries) int { return cmp.Compare(a.Rate, b.Rate) })
	return out
}
