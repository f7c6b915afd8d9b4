package bench

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/slabbench/slabbench/bpftrace"
	"github.com/slabbench/slabbench/capture"
	"github.com/slabbench/slabbench/event"
	"github.com/slabbench/slabbench/internal/testenv"
	"github.com/slabbench/slabbench/relaytrace"
	"github.com/slabbench/slabbench/workloads"
)

// partsMemory is each part row's buffer memory, all CPUs together: room
// for what a reader polling every millisecond leaves when busy producers
// keep it off the CPUs for most of a second, so that nothing is refused
// (4 MiB refused a fifth of the records natively).
const partsMemory = 64 << 20

// partsPoll is how often the part rows' reader looks: their programs
// never wake it.
const partsPoll = time.Millisecond

// BenchmarkProbeParts decomposes each capture probe's time per event
// (probe-ns/event, the kernel's own measure) by adding one part at a time,
// in one run, on the closed loop's first workload and attach mode, with
// PartsProducers producers: part=empty (attached, returns at once);
// part=floor (the transport takes a record: ring buffer reserve and
// submit, perf buffer output, relay_reserve and the sub-buffer's counts);
// part=fill (the record's fields: clock, pid, CPU and the event's own);
// part=accounted/truth=off (the per-CPU accounting and sequence numbers,
// and relay's truth window); part=accounted/truth=on (the truth stamp);
// then the capture itself, whose reader each wakeup policy wakes
// (part=capture/truth=on/wakeup=every|batched, and truth=off batched) or
// that polls every millisecond, never woken (wakeup=poll,
// Config.PollInterval). The part rows' reader polls every millisecond
// too; the eBPF part programs never wake it. Relay has one wakeup, a
// sub-buffer's end (batched), in every row from the floor up.
func BenchmarkProbeParts(b *testing.B) {
	testenv.RequireRoot(b)
	if len(matrix.PartsProducers) == 0 {
		b.Skipf("BENCH=%s has no part rows (bench/plan: PartsProducers)", matrix.Level)
	}
	attach, wl := matrix.Attaches[0], matrix.Workloads[0]
	for _, producers := range matrix.PartsProducers {
		wcfg := workloads.Config{Name: wl, Threads: producers}
		if matrix.Runs("relay") {
			benchRelayParts(b, fmt.Sprintf("workload=%s/producers=%d/path=relay/", wl, producers), wcfg)
		}
		for _, tr := range []bpftrace.Transport{bpftrace.Ringbuf, bpftrace.Perfbuf} {
			prefix := fmt.Sprintf("workload=%s/producers=%d/path=%s/attach=%s/", wl, producers, tr, attach)
			b.Run(prefix+"part=empty", func(b *testing.B) {
				benchBPFPart(b, wcfg, bpftrace.Config{Transport: tr, Attach: attach, Empty: true})
			})
			for _, part := range []struct {
				name  string
				part  bpftrace.ProbePart
				truth bool
			}{
				{"part=floor", bpftrace.PartFloor, false},
				{"part=fill", bpftrace.PartFill, false},
				{"part=accounted/truth=off", bpftrace.PartAccounted, false},
				{"part=accounted/truth=on", bpftrace.PartAccounted, true},
			} {
				b.Run(prefix+part.name, func(b *testing.B) {
					benchBPFPart(b, wcfg, bpftrace.Config{Transport: tr, Attach: attach, Part: part.part, Truth: part.truth})
				})
			}
			for _, c := range []struct {
				truth bool
				wake  string
			}{{true, "every"}, {true, "batched"}, {true, "poll"}, {false, "batched"}} {
				b.Run(fmt.Sprintf("%spart=capture/truth=%s/wakeup=%s", prefix, onOff(c.truth), c.wake), func(b *testing.B) {
					cfg := capture.Config{Path: capture.Path(tr), Attach: attach, Kinds: event.AllKinds, Truth: c.truth,
						Workload: wcfg, SubbufSize: matrix.PartsGeometry.SubbufSize, NumSubbufs: matrix.PartsGeometry.NumSubbufs, ProbeTime: true}
					switch c.wake {
					case "batched":
						cfg.WakeupBytes = cfg.SubbufSize
					case "poll":
						cfg.PollInterval = partsPoll
					}
					benchCapture(b, cfg)
				})
			}
		}
	}
}

// benchRelayParts runs the relay module's part rows: the probe's parts
// (module parameters empty and part) read by the polling reader, then
// the capture, its reader woken at each sub-buffer's end.
func benchRelayParts(b *testing.B, prefix string, wcfg workloads.Config) {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		b.Fatal(err)
	}
	for _, part := range []struct {
		name  string
		cfg   relaytrace.Config
		check partCheck
	}{
		{"part=empty", relaytrace.Config{Empty: true}, checkNothing},
		{"part=floor", relaytrace.Config{Part: relaytrace.PartFloor}, checkRecords},
		{"part=fill", relaytrace.Config{Part: relaytrace.PartFill}, checkRecords},
		{"part=accounted/truth=off", relaytrace.Config{}, checkAccounting},
		{"part=accounted/truth=on", relaytrace.Config{Truth: true}, checkAccounting},
	} {
		b.Run(prefix+part.name, func(b *testing.B) {
			if err := relaytrace.Available(""); err != nil {
				b.Skip("relay: ", err)
			}
			if paced(b, wcfg) {
				return
			}
			cfg := part.cfg
			cfg.Kinds, cfg.ProbeTime = event.AllKinds, true
			cfg.SubbufSize, cfg.NumSubbufs = partsRelaySubbuf, partsMemory/ncpu/partsRelaySubbuf
			c, err := relaytrace.Open(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			benchPart(b, wcfg, c, part.check)
		})
	}
	for _, truth := range []bool{true, false} {
		b.Run(fmt.Sprintf("%spart=capture/truth=%s/wakeup=batched", prefix, onOff(truth)), func(b *testing.B) {
			if err := relaytrace.Available(""); err != nil {
				b.Skip("relay: ", err)
			}
			benchCapture(b, capture.Config{Path: capture.PathRelay, Kinds: event.AllKinds, Truth: truth,
				Workload: wcfg, SubbufSize: matrix.PartsGeometry.SubbufSize, NumSubbufs: matrix.PartsGeometry.NumSubbufs, ProbeTime: true})
		})
	}
}

// partsRelaySubbuf is the relay part rows' sub-buffer size: the polling
// reader reads a sub-buffer once it is finished.
const partsRelaySubbuf = 256 << 10

// partCheck is what a part row checks once its run is over.
type partCheck int

const (
	// checkNothing: the empty probe writes and counts nothing.
	checkNothing partCheck = iota
	// checkRecords: the floor and fill count nothing, so the records
	// read must equal the probe's runs.
	checkRecords
	// checkAccounting: the accounted probe's accounting must balance,
	// with nothing refused.
	checkAccounting
)

// benchBPFPart opens the eBPF capture program with one part (cfg) and
// times it (benchPart).
func benchBPFPart(b *testing.B, wcfg workloads.Config, cfg bpftrace.Config) {
	if paced(b, wcfg) {
		return
	}
	cfg.Kinds, cfg.ProbeTime = event.AllKinds, true
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		b.Fatal(err)
	}
	cfg.RingbufSize, cfg.PerCPUBufferSize = partsMemory, partsMemory/ncpu
	if cfg.Transport == bpftrace.Perfbuf {
		cfg.WakeupBytes = cfg.PerCPUBufferSize - 1 // the watermark: no wakeup
	}
	check := checkAccounting
	switch {
	case cfg.Empty:
		check = checkNothing
	case cfg.Part == bpftrace.PartFloor || cfg.Part == bpftrace.PartFill:
		check = checkRecords
	}
	c, err := bpftrace.Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	benchPart(b, wcfg, c, check)
}

// partCapture is what benchPart needs of a capture: bpftrace's and
// relaytrace's both have it.
type partCapture interface {
	ReadInto(*event.Record) error
	SetDeadline(time.Time)
	Stop() error
	ProbeTime() (runs uint64, total time.Duration, err error)
	Stats() (event.Stats, error)
}

// benchPart times b.N ops of wcfg with c, one part of a capture probe,
// attached and read by a reader polling every millisecond, checks what
// check says, and reports the kernel's time per probe run.
func benchPart(b *testing.B, wcfg workloads.Config, c partCapture, check partCheck) {
	stop := make(chan struct{})
	read := make(chan pollResult, 1)
	go func() { read <- pollReader(c, stop) }()
	timeWorkload(b, wcfg)
	stopErr := c.Stop()
	close(stop)
	res := <-read
	if stopErr != nil || res.err != nil {
		b.Fatal(errors.Join(stopErr, res.err))
	}
	runs, total, err := c.ProbeTime()
	if err != nil {
		b.Fatal(err)
	}
	switch check {
	case checkAccounting:
		st, err := c.Stats()
		if err != nil {
			b.Fatal(err)
		}
		if err := st.Verify(); err != nil {
			b.Fatal(err)
		}
		if tot := st.Total(); tot.Lost > tot.Missed {
			b.Fatalf("%d records refused: the buffer of %d bytes is too small for a reader polling every %v",
				tot.Lost-tot.Missed, partsMemory, partsPoll)
		}
	case checkRecords:
		if res.records != runs {
			b.Fatalf("%d records read of %d probe runs: the buffer of %d bytes is too small for a reader polling every %v",
				res.records, runs, partsMemory, partsPoll)
		}
	}
	reportProbeTime(b, runs, uint64(total.Nanoseconds()))
}

// pollResult is what pollReader read.
type pollResult struct {
	records uint64
	err     error
}

// pollReader reads c until stop is closed and then what is left, waking
// every partsPoll.
func pollReader(c partCapture, stop <-chan struct{}) pollResult {
	var rec event.Record
	var res pollResult
	stopped := false
	c.SetDeadline(time.Now().Add(partsPoll))
	for {
		// The deadline only ends a wait on an empty buffer: it is set
		// again once it did, not per record (it may wake the poll).
		err := c.ReadInto(&rec)
		switch {
		case err == nil:
			res.records++
		case errors.Is(err, os.ErrDeadlineExceeded):
			if stopped {
				return res
			}
			select {
			case <-stop:
				stopped = true // one more round drains what is left
			default:
			}
			c.SetDeadline(time.Now().Add(partsPoll))
		default:
			res.err = err
			return res
		}
	}
}
