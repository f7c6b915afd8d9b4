package sizing

import "golang.org/x/perf/benchmath"

// Median is the center benchmath gives a sample, as the report's medians
// are: the mean of the two middle values of an even count.
func Median(xs []float64) float64 {
	s := benchmath.NewSample(xs, &benchmath.DefaultThresholds)
	return benchmath.AssumeNothing.Summary(s, 0.95).Center
}
