package sizing

import (
	"slices"

	"golang.org/x/perf/benchmath"
)

// Median is the center benchmath gives a sample, as the report's medians
// are: the mean of the two middle values of an even count. xs keeps its
// order (benchmath sorts the sample it is given).
func Median(xs []float64) float64 {
	s := benchmath.NewSample(slices.Clone(xs), &benchmath.DefaultThresholds)
	return benchmath.AssumeNothing.Summary(s, 0.95).Center
}
