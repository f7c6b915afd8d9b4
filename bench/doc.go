// Package bench is slabbench's benchmark matrix, run with go test -bench.
//
// BenchmarkCapture drives a workload for b.N ops while one path captures
// its slab events, across paths (none, empty probes, relay, ringbuf,
// perfbuf, perf record), sub-buffer sizes and counts at equal memory, and
// closed- and open-loop rates. Every capture row checks captured + lost ==
// truth before it reports anything. BenchmarkConsumer measures the
// readers alone on buffers filled without a workload, against a plain copy
// of the same bytes.
//
// Sub-benchmark names are key=value parts and the metrics use hyphenated
// units, so benchstat can slice and compare them (make bench does). The
// environment variable BENCH selects the matrix (bench/plan): full
// (default), vm (the full grid at fewer rows, for the slow VM), probes
// (every attach mode side by side, in the VM), quick or smoke.
package bench
