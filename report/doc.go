// Package report turns slabbench's benchmark results (benchfmt files written
// by go test -bench ./bench, results/<environment>-<kernel>.txt) into a
// Markdown sizing report and loss plots for engineers choosing a
// kernel-to-user transport and sizing its buffers.
//
// Read parses results files with golang.org/x/perf/benchfmt and groups the
// samples of each file by environment and kernel (from the file's config
// lines) and by the benchmark's name keys (workload, rate, path, attach,
// wakeup, subbuf, n, reader). Every metric of a row is summarised as the
// median over the row's runs (go test -count), the min–max range, and
// benchmath's distribution-free 95% confidence interval of the median.
//
// From these rows the package derives the sizing model's input
// (Observations) and fits it (FitModel, package sizing): the report leads
// with the model's answer (memory per CPU for a rate, per path), the
// model's fit and its check on held-out rows, the cost split per event
// and, where the file has BenchmarkProbeParts rows, the probe's time part
// by part; then, per file, the headline table (closed loop, tracepoint
// attachment, ring buffer woken for every record), per-rate sizing as
// measured (the smallest per-CPU memory that lost no event in any run),
// the attach modes side by side, the consumer table against the copy
// floor, and PNG plots. Every figure the report prints names its file,
// its run count and its summary.
package report
